"""Crash drill: SIGKILL the orchestrator at random moments of a campaign on TCP-served channels.

    python -m benchmarks.drill_random_kills [--campaigns 10] [--kills 2] [--seed 1] [--max-dead-s 900]

Each campaign (charge to 4.8 V at 100 mA/g, 3 h rest, discharge to 1.85 V; four cells) runs on two
EmStat4s and two Keithley 2450s served over TCP (``relaxlab sim serve --stepped`` in this process)
by an orchestrator in a child process. The served lab's simulated time moves only as the
orchestrator waits, so a kill lands at a chosen simulated moment whatever the machine's load: the
lab is held at a seeded random moment, the orchestrator is killed there, the instruments run on
alone for a seeded random dead time (EmStat4 scripts go on and buffer, Keithley 2450s keep
sourcing inside the instrument-side limits), then the campaign is resumed in a new child
(``run_campaign(..., resume=True)``, as ``relaxlab campaign run --resume`` does), and so on.

Printed: a row per kill (moment, what each cell was doing, dead time) and a row per cell of each
campaign against the same campaign run uninterrupted on a fresh served lab: points stored then
lost, points in transit when the host died (numbered by the EmStat4, counted, never stored),
points doubled, voltage range, charge and discharge capacity deviation. Figures, not assertions;
``tests/test_crash_drill.py`` runs a short seeded version with assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CAMPAIGN = """\
name: drill
protocol: charge-rest-discharge
replicates: 4
cell_prefix: K
samples:
  batch: {id: LTNO-x04-B1, material: x04}
  cell_mass: 5 mg
matrix:
  charge_end: [4.8 V]
  rest: [3 h]
  current: [100 mA/g]
"""
CUT_OFFS_V = (1.85, 4.8)  # the campaign's discharge and charge cut-offs
LIMITS_V = (1.0, 4.95)  # the lab cells' voltage_min and voltage_max (the lab file's defaults)
PHASES = {0: "mount", 1: "charge", 2: "rest", 3: "discharge"}  # protocol step index -> phase
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lab_data() -> dict[str, Any]:
    """Two EmStat4s and two Keithley 2450s on free loopback ports, one 5 mg cell each."""
    resources = {"es1": f"socket://127.0.0.1:{free_port()}", "es2": f"socket://127.0.0.1:{free_port()}",
                 "smu1": f"TCPIP0::127.0.0.1::{free_port()}::SOCKET",
                 "smu2": f"TCPIP0::127.0.0.1::{free_port()}::SOCKET"}  # fmt: skip
    instruments = {name: {"driver": "emstat4" if name.startswith("es") else "keithley2450",
                          "resource": resource, "simulated": True,
                          "poll_interval": "30 s" if name.startswith("es") else "10 s"}
                   for name, resource in resources.items()}  # fmt: skip
    cells = [{"name": f"ch-{name}", "instrument": name, "active_mass": "5 mg"} for name in resources]
    return {"lab": {"name": "drill"}, "instruments": instruments, "cells": cells}


def lab_toml(lab: dict[str, Any]) -> str:
    lines = [f'[lab]\nname = "{lab["lab"]["name"]}"\n']
    for name, inst in lab["instruments"].items():
        lines.append(f"[instruments.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in inst.items()]
        lines.append("")
    for cell in lab["cells"]:
        lines.append("[[cells]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in cell.items()]
        lines.append("")
    return "\n".join(lines)


def weigh(request: Any, done: Any, failed: Any) -> None:
    """The operator, answering at once (in simulated time) that each cell holds 5 mg."""
    done({name: 5.0 for name, _ in request.record})


class ServedLab:
    """A lab file's simulated instruments served on 127.0.0.1 on a stepped clock (as
    ``relaxlab sim serve --stepped``), with a control connection of our own to move and hold it."""

    def __init__(self, folder: Path, lab: dict[str, Any]) -> None:
        from orchestrator.lab import parse_lab
        from orchestrator.simlab import SimulatedLab
        from orchestrator.simtime import ServedClock, write_clock_file
        from simulators.clockserver import ClockControl, SteppedClock

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "lab.toml").write_text(lab_toml(lab))
        (folder / "campaign.yaml").write_text(CAMPAIGN)
        self.clock = SteppedClock()
        self.sim = SimulatedLab(parse_lab(lab), self.clock)
        self.sim.serve_all()
        self.control = ClockControl(self.clock, self.sim.lock).start()
        write_clock_file(self.clock, folder / "clock.json", control=self.control.address)
        self.mover = ServedClock(self.control.address)  # holds and moves the lab while no host does

    def now(self) -> float:
        return self.mover.request("NOW")

    def orchestrate(self, data: Path, resume: bool, hold_s: float | None) -> tuple[str, dict[str, Any]]:
        """Run (or resume) the campaign in a child process. With ``hold_s``: hold the lab at that
        simulated moment, SIGKILL the child once it waits there, and return ("killed", {}).
        Else (or if the campaign ends first) ("finished", the child's result)."""
        log = self.folder / f"child-{time.monotonic_ns()}.log"
        if hold_s is not None:
            self.mover.request(f"HOLD {float(hold_s)!r}")
        with open(log, "w") as out:
            child = subprocess.Popen(child_command(self.folder, data, resume), stdout=out, stderr=subprocess.STDOUT,
                                     cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
            try:
                while hold_s is not None and child.poll() is None:
                    try:  # the guard is wall time only so that a hung child cannot hang the drill
                        self.mover.request("WAIT_HELD 1")
                    except ConnectionError:
                        continue  # not there yet
                    os.kill(child.pid, signal.SIGKILL)
                    child.wait()
                    self._hosts_gone()
                    return "killed", {}
                child.wait()
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
                if hold_s is not None:
                    self.mover.request("RELEASE")
        text = log.read_text()
        if child.returncode != 0 or not text.strip():
            raise RuntimeError(f"the orchestrator failed (exit {child.returncode}):\n{text[-3000:]}")
        return "finished", json.loads(text.strip().splitlines()[-1])

    def _hosts_gone(self, guard_s: float = 120.0) -> None:
        """Wait until every served instrument sees the killed host's connection closed. The
        kernel closes a dead process's sockets, but on a loaded machine it may handle that a
        moment after the process is reaped: output pushed meanwhile went to a dead socket, so
        what was lost with the host varied with the load. Now the instruments run on only once
        the host is gone from them, and keep their output for the next host, on every run."""
        deadline = time.monotonic() + guard_s  # a guard against a hang, not a measurement
        while any(server.live_hosts() for server in self.sim.servers.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the killed orchestrator's instrument connections never closed")
            time.sleep(0.01)

    def run_alone(self, dead_s: float) -> None:
        """The instruments run on for ``dead_s`` with no host (the orchestrator is dead)."""
        self.mover.request(f"ADVANCE {self.now() + float(dead_s)!r}")

    def close(self) -> None:
        self.mover.close()
        self.control.stop()
        self.sim.close()


def child_command(folder: Path, data: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "benchmarks.drill_random_kills", "--child", str(folder / "campaign.yaml"),
            str(folder / "lab.toml"), str(folder / "clock.json"), str(data), *(["--resume"] if resume else [])]  # fmt: skip


def child(campaign_file: str, lab_file: str, clock_file: str, data: str, resume: bool) -> None:
    """The orchestrator (what ``relaxlab campaign run --lab LAB --sim-clock CLOCK`` runs, with an
    operator that answers at once): prints its result as one JSON line."""
    from orchestrator.campaign_file import load_campaign
    from orchestrator.campaign_run import run_campaign
    from orchestrator.lab import load_lab
    from orchestrator.simtime import read_clock_file

    result = run_campaign(load_campaign(campaign_file), Path(data), lab=load_lab(lab_file), resume=resume,
                          clock=read_clock_file(Path(clock_file)), responder=weigh)  # fmt: skip
    print(json.dumps({"failed": result.failed, "cells": result.cells}, default=str))


@dataclass
class Kill:
    campaign: int
    moment_h: float  # simulated hours after the campaign started
    phases: dict[str, str]  # cell -> what it was doing
    dead_s: float


@dataclass
class CellOutcome:
    campaign: int
    cell: str
    channel: str
    runs: int
    lost: int  # stored (spooled) by the host, missing from the record
    in_transit: int  # sent by the instrument before the host died, never read (vs the reference)
    counted: int  # what the campaign reports as lost in transit (points_lost)
    doubled: int
    past_cut_off: (
        int  # points beyond a cut-off that are not the last of their step (never, if stopped in time)
    )
    v_min: float
    v_max: float
    charge_dev_pct: float
    discharge_dev_pct: float
    failed: str | None = None


@dataclass
class Drill:
    kills: list[Kill] = field(default_factory=list)
    cells: list[CellOutcome] = field(default_factory=list)
    wall_s: float = 0.0


def reference(folder: Path) -> tuple[dict[str, Any], tuple[float, float]]:
    """The campaign uninterrupted on a fresh served lab: its result and the simulated span of
    its steps (first point to last)."""
    from orchestrator.storage import read_runs

    served = ServedLab(folder, lab_data())
    try:
        _, result = served.orchestrate(folder / "data", False, None)
    finally:
        served.close()
    state = json.loads((folder / "data" / "campaigns" / "drill" / "state.json").read_text())
    stamps = [
        read_runs(folder / "data", state["cells"][c]["runs"])[1]["timestamp_s"] for c in result["cells"]
    ]
    return result, (min(float(s.iloc[0]) for s in stamps), max(float(s.iloc[-1]) for s in stamps))


def killed_campaign(
    folder: Path,
    number: int,
    ref: dict[str, Any],
    ref_data: Path,
    span: tuple[float, float],
    rng: random.Random,
    kills: int,
    max_dead_s: float,
) -> tuple[list[Kill], list[CellOutcome]]:
    """One campaign killed ``kills`` times at seeded random moments within the reference's span
    (shifted by the dead time so far), resumed after each; compared with the reference."""
    served = ServedLab(folder, lab_data())
    data = folder / "data"
    state_path = data / "campaigns" / "drill" / "state.json"
    done: list[Kill] = []
    try:
        t0 = served.now()
        moments = sorted(rng.uniform(*span) for _ in range(kills))
        dead_total, result = 0.0, None
        for moment in moments:
            hold = max(moment + dead_total, served.now() + 1.0)
            how, result = served.orchestrate(data, resume=bool(done), hold_s=hold)
            if how == "finished":
                break
            state = json.loads(state_path.read_text())
            phases = {cell: PHASES.get((info.get("running") or {}).get("index"), "between steps")
                      for cell, info in sorted(state["cells"].items())}  # fmt: skip
            dead = rng.uniform(0.0, max_dead_s)
            served.run_alone(dead)
            dead_total += dead
            done.append(Kill(number, (served.now() - dead - t0) / 3600.0, phases, dead))
        if result is None or not result:
            _, result = served.orchestrate(data, resume=True, hold_s=None)
    finally:
        served.close()
    return done, compare(number, data, result, ref, ref_data)


def _keys(frame: Any) -> set[tuple[int, int, float]]:
    """(step, substep, seconds into the sub-step) of every point."""
    first = frame.groupby(["step", "substep"])["timestamp_s"].transform("min")
    rel = (frame["timestamp_s"] - first).round(3)
    return set(zip(frame["step"].astype(int), frame["substep"].astype(int), rel, strict=True))


def compare(
    number: int,
    data: Path,
    result: dict[str, Any],
    ref: dict[str, Any],
    ref_data: Path,
    killed_at_s: float | None = None,
) -> list[CellOutcome]:
    """Each cell of a killed campaign against the reference. ``killed_at_s``: the simulated
    moment of its only kill; in transit then counts exactly the reference's points up to that
    moment (sent before the host died: the two runs are the same until then) missing from the
    record. Without it (several kills shift the record against the reference) the count is the
    reference's points missing from the record, which also counts a point that ends a step at
    another moment after the resume (e.g. a cut-off reached after a longer rest)."""
    from orchestrator.storage import read_runs

    state = json.loads((data / "campaigns" / "drill" / "state.json").read_text())
    ref_state = json.loads((ref_data / "campaigns" / "drill" / "state.json").read_text())
    out = []
    for cell, row in sorted(result["cells"].items()):
        if cell in result["failed"]:
            out.append(CellOutcome(number, cell, "", 0, 0, 0, 0, 0, 0, float("nan"), float("nan"), float("nan"),
                                   float("nan"), failed=str(result["failed"][cell])))  # fmt: skip
            continue
        runs = state["cells"][cell]["runs"]
        start, frame = read_runs(data, runs)
        stamps = frame["timestamp_s"].to_numpy()
        spooled = set()
        for session in {str(s) for s in _spools(data, runs)}:
            path = data / "spool" / session / f"{start['channel']}.jsonl"
            if path.exists():
                spooled |= {
                    float(json.loads(line)[1]) for line in path.read_text().splitlines() if line.strip()
                }
        lost = len(spooled - set(stamps.tolist()))
        r = ref["cells"][cell]
        # an EmStat4 times every point itself: the record is the reference's, point for point
        # (times within each sub-step), but for what was in transit when the host died
        in_transit = 0
        if str(row.get("channel")).startswith("ch-es"):
            _, ref_frame = read_runs(ref_data, ref_state["cells"][cell]["runs"])
            if killed_at_s is None:
                in_transit = len(_keys(ref_frame) - _keys(frame))
            else:
                sent = ref_frame.loc[ref_frame["timestamp_s"] <= killed_at_s, "timestamp_s"]
                in_transit = len(set(sent.tolist()) - set(stamps.tolist()))
        doubled = int(frame.duplicated(["step", "substep", "timestamp_s"]).sum())
        low, high = CUT_OFFS_V
        beyond = ((frame["current_A"] < 0) & (frame["voltage_V"] < low - 1e-6)) | (
            (frame["current_A"] > 0) & (frame["voltage_V"] > high + 1e-6)
        )
        last = ~frame.duplicated(["step", "substep"], keep="last")
        past_cut_off = int((beyond & ~last).sum())

        def dev(key: str, row: dict[str, Any] = row, r: dict[str, Any] = r) -> float:
            return 100.0 * (row[key] - r[key]) / abs(r[key])

        out.append(CellOutcome(number, cell, str(row.get("channel")), len(runs), lost, in_transit,
                               int(row.get("points_lost") or 0), doubled, past_cut_off, float(frame["voltage_V"].min()),
                               float(frame["voltage_V"].max()), dev("charge_capacity_mAh_g"),
                               dev("discharge_capacity_mAh_g")))  # fmt: skip
    return out


def _spools(data: Path, runs: list[str]) -> list[str]:
    from orchestrator.storage import read_journal

    return [read_journal(data, uid)[0].get("spool") for uid in runs]


def drill(folder: Path, campaigns: int, kills: int, seed: int, max_dead_s: float) -> Drill:
    t0 = time.perf_counter()
    ref, span = reference(folder / "reference")
    rng = random.Random(seed)
    out = Drill()
    for number in range(1, campaigns + 1):
        k, cells = killed_campaign(folder / f"campaign-{number}", number, ref, folder / "reference" / "data", span,
                                   rng, kills, max_dead_s)  # fmt: skip
        out.kills += k
        out.cells += cells
        print(f"campaign {number}: {len(k)} kills ({', '.join(sorted({p for x in k for p in x.phases.values()}))}), "
              f"{sum(c.lost for c in cells)} lost, {sum(c.doubled for c in cells)} doubled, "
              f"{sum(1 for c in cells if c.failed)} failed, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
    out.wall_s = time.perf_counter() - t0
    return out


def print_drill(result: Drill) -> None:
    print(f"{'campaign':>8} {'kill at (h)':>11} {'dead (s)':>8}  what each cell (r1..r4) was doing")
    for k in result.kills:
        print(f"{k.campaign:8d} {k.moment_h:11.3f} {k.dead_s:8.0f}  {', '.join(k.phases.values())}")
    print()
    print(f"{'campaign':>8} {'cell':>24} {'channel':>8} {'runs':>4} {'lost':>4} {'transit':>7} {'counted':>7} {'doubled':>7} "
          f"{'past':>4} {'V min':>6} {'V max':>6} {'charge %':>8} {'disch. %':>8}")  # fmt: skip
    for c in result.cells:
        if c.failed:
            print(f"{c.campaign:8d} {c.cell:>24} FAILED: {c.failed}")
            continue
        print(f"{c.campaign:8d} {c.cell:>24} {c.channel:>8} {c.runs:4d} {c.lost:4d} {c.in_transit:7d} {c.counted:7d} {c.doubled:7d} "
              f"{c.past_cut_off:4d} {c.v_min:6.3f} {c.v_max:6.3f} {c.charge_dev_pct:+8.3f} {c.discharge_dev_pct:+8.3f}")  # fmt: skip
    ok = [c for c in result.cells if not c.failed]
    low, high = CUT_OFFS_V
    print(
        f"\n{len(result.kills)} kills in {len({k.campaign for k in result.kills})} campaigns, "
        f"{len(result.cells) - len(ok)} cells failed, {sum(c.lost for c in ok)} points lost, "
        f"{sum(c.in_transit for c in ok)} in transit when the host died ({sum(c.counted for c in ok)} counted), "
        f"{sum(c.doubled for c in ok)} doubled, {sum(c.past_cut_off for c in ok)} points past a cut-off before "
        f"the step's last, voltage {min(c.v_min for c in ok):.3f}-{max(c.v_max for c in ok):.3f} V (cut-offs "
        f"{low}-{high} V, cell limits {LIMITS_V[0]}-{LIMITS_V[1]} V), "
        f"largest capacity deviation {max(max(abs(c.charge_dev_pct), abs(c.discharge_dev_pct)) for c in ok):.3f} %; "
        f"{result.wall_s:.0f} s wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--kills", type=int, default=2, help="kills per campaign")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-dead-s", type=float, default=900.0, help="longest simulated time with no host")
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--child", nargs=4, metavar=("CAMPAIGN", "LAB", "CLOCK", "DATA"))
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(*args.child, resume=args.resume)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print_drill(drill(args.folder or Path(tmp), args.campaigns, args.kills, args.seed, args.max_dead_s))


if __name__ == "__main__":
    main()
