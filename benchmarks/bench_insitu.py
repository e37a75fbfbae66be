"""In-situ XRD and heated-relaxation benchmarks (prints figures, asserts nothing).

1. 24 h open-circuit relaxation after a charge to 4.8 V with in-situ XRD: one pattern every
   20 minutes (72 patterns) and a potentiostat point every 60 s, through
   :func:`protocols.insitu.insitu_xrd_protocol` on the simulated rig (SimClock, simulated
   Keithley 2450 + cell, simulated diffractometer writing files, folder-watching driver
   fitting each pattern). Target <= 1 s of wall time. The time spent writing patterns
   (simulator), reading them and fitting them (driver) is reported separately, for folder
   polls every 60 s and every 300 s (each poll lists the whole export folder).
2. 24 h heated relaxation (120 C) with oven dynamics: :func:`protocols.heating.heated_relaxation`
   on the simulated Eurotherm (Modbus RTU over an in-process transport), read every 60 s.

Each figure is printed as wall and CPU time (this process; on a machine shared with other work
the wall time moves with the load, the CPU time much less), against its target, and as a ratio
to a baseline measured in this process: a bare bluesky ``count`` of 1,000 events of an
``ophyd.sim`` detector (:func:`benchmarks.bench_commands.bluesky_baseline_s`).

Run: ``python -m benchmarks.bench_insitu``.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench_commands import bluesky_baseline_s
from drivers.clock import SimClock
from drivers.eurotherm import EurothermDriver
from drivers.oven import Oven
from drivers.techniques import ConstantCurrent, Cutoffs, Rest
from orchestrator.insitu_lab import build_insitu_rig, points_frame, xrd_frame
from orchestrator.simtime import sim_run_engine
from protocols.heating import heated_relaxation
from protocols.insitu import insitu_xrd_protocol
from simulators.eurotherm import SimulatedEurotherm
from simulators.xrd import SimulatedDiffractometer

TARGET_S = 1.0
#: Wall time of the bare bluesky baseline (set by :func:`main`).
BASELINE_S = float("nan")
DAY_S = 24 * 3600.0
SCAN_S = 1200.0


def _timed(totals: dict[str, float], key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` adding its CPU time (this process) to ``totals[key]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.process_time() - t

    return wrapper


def _verdict(wall: float, cpu: float) -> str:
    """Wall and CPU time against the target and the baseline."""
    met = "met" if wall <= TARGET_S else ("met in CPU time" if cpu <= TARGET_S else "MISSED")
    return (
        f"wall {wall:.2f} s, CPU {cpu:.2f} s; target {TARGET_S:.1f} s: {met}; "
        f"{wall / BASELINE_S:.2f} x the bare-bluesky baseline"
    )


def bench_insitu_relaxation(folder: Path, poll_interval_s: float) -> None:
    print(f"--- export folder polled every {poll_interval_s:g} s while a scan is awaited")
    rig = build_insitu_rig(folder, scan_time_s=SCAN_S, poll_interval_s=poll_interval_s)
    charge = [ConstantCurrent(20.0, Cutoffs(voltage_V=4.8), 60.0)]
    t = time.perf_counter()
    rig.run(insitu_xrd_protocol(rig.channel, rig.diffractometer, charge))
    t_charge = time.perf_counter() - t
    sim_h = (rig.clock.now() - rig.docs[0][1]["clock_start_s"]) / 3600
    print(f"(setup) charge to 4.8 V with XRD: {sim_h:.1f} h simulated in {t_charge:.2f} s wall")

    totals: dict[str, float] = defaultdict(float)
    watcher = rig.diffractometer.watcher
    analysis, write_scan = watcher.analysis, SimulatedDiffractometer._write_scan
    watcher.analysis = dataclasses.replace(
        analysis, fit=_timed(totals, "fit", analysis.fit), read=_timed(totals, "read", analysis.read)
    )
    SimulatedDiffractometer._write_scan = _timed(totals, "write", write_scan)  # type: ignore[method-assign]
    try:
        rest = [Rest(DAY_S, 60.0)]
        t, cpu = time.perf_counter(), time.process_time()
        (uid,) = rig.run(insitu_xrd_protocol(rig.channel, rig.diffractometer, rest))
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    finally:
        watcher.analysis = analysis
        SimulatedDiffractometer._write_scan = write_scan  # type: ignore[method-assign]
    docs = rig.documents(uid)
    points, scans = points_frame(docs), xrd_frame(docs)
    n_points = rig.xrd_sim.two_theta_deg.size
    print(f"24 h open-circuit relaxation with in-situ XRD: {len(scans)} patterns, {len(points)} points")
    print(f"  {_verdict(wall, cpu)}")
    other = cpu - sum(totals.values())
    print(
        f"  CPU: patterns of {n_points} points: simulate+write {totals['write']:.2f} s, "
        f"read {totals['read']:.2f} s, fit {totals['fit']:.2f} s; "
        f"everything else (potentiostat, RunEngine, documents) {other:.2f} s"
    )
    per = (totals["write"] + totals["read"] + totals["fit"]) / max(len(scans), 1)
    print(f"  per pattern {per * 1e3:.1f} ms (write+read+fit)")
    print(
        f"  lattice {scans['lattice_A'].iloc[0]:.4f} -> {scans['lattice_A'].iloc[-1]:.4f} A over the day; "
        f"voltage {points['voltage_V'].iloc[0]:.3f} -> {points['voltage_V'].iloc[-1]:.3f} V"
    )


def bench_heated_relaxation() -> None:
    clock = SimClock()
    RE, simtime = sim_run_engine(clock)  # as the lab builds it
    sim = SimulatedEurotherm(clock)
    oven = Oven(EurothermDriver.in_process(sim), clock, poll_interval_s=10.0)
    events = []
    RE.subscribe(lambda name, doc: events.append(doc) if name == "event" else None)
    t0 = clock.now()
    t, cpu = time.perf_counter(), time.process_time()
    RE(heated_relaxation(oven, 120.0, hold_s=DAY_S, cool_to_C=30.0, log_interval_s=60.0))
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    sim_h = (clock.now() - t0) / 3600
    print(f"24 h heated relaxation at 120 C (Eurotherm over Modbus RTU, in process): {sim_h:.1f} h simulated")
    print(f"  {_verdict(wall, cpu)}")
    print(f"  {len(events)} readings, {simtime.advances} clock advances, {oven.polls} watch/settle polls")


def main() -> None:
    global BASELINE_S
    BASELINE_S = bluesky_baseline_s()
    print(f"baseline: bare bluesky count, 1,000 events: {BASELINE_S:.3f} s wall (in this process)")
    for poll_interval_s in (60.0, 300.0):
        with tempfile.TemporaryDirectory() as tmp:
            bench_insitu_relaxation(Path(tmp), poll_interval_s)
    bench_heated_relaxation()


if __name__ == "__main__":
    main()
