"""A simulated in-situ XRD rig: one cell on a simulated Keithley 2450 and a diffractometer.

Everything runs on one :class:`~drivers.clock.SimClock` driven by
:class:`~orchestrator.simtime.SimulatedTime` (as in :class:`orchestrator.runner.Session`):

* the cell physics (:class:`simulators.cell.Cell`) behind a simulated Keithley 2450, reached
  through :class:`~drivers.transport.InProcessTransport` by the real driver, wrapped in a
  :class:`~drivers.device.PotentiostatChannel`;
* a :class:`simulators.xrd.SimulatedDiffractometer` repeating scans of that cell's
  sample (``lattice_A`` is ``cell.sample.lattice_A``) into an export folder, read by the real
  folder-watching :class:`~drivers.xrd.Diffractometer`, whose ``before_poll`` first brings
  the cell up to the present (so the lattice follows the electrochemistry between the
  potentiostat's polls) and then lets the simulator write the scans finished by now;
* for the out-of-electrolyte route, a simulated operator (:class:`SimulatedOperator`: each
  manual step takes a chosen nominal time), a hot plate (:class:`SimulatedStage`, settles
  at once) and a second diffractometer whose scan job starts when the operator mounts the
  recovered electrode (:class:`RecoveredElectrode`: a copy of the sample taken out of the
  cell, relaxing in closed form at the temperature it is kept at).

What is simulated rather than measured: the operator's work (only its duration), the stage's
thermal dynamics (none; use the simulated Eurotherm for those), and the diffraction patterns
(computed from the model's lattice parameter).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from bluesky import RunEngine
from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal
from ophyd.status import Status

from drivers.clock import SimClock
from drivers.device import PotentiostatChannel
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.transport import InProcessTransport
from drivers.xrd import Diffractometer
from orchestrator.simtime import SimulatedTime, sim_run_engine
from orchestrator.storage import frame_from_documents
from orchestrator.xrd_analysis import pattern_watcher
from simulators.cell import Cell, Sample
from simulators.keithley2450 import SimulatedKeithley2450
from simulators.material import load_material, resolve_material  # a shipped name (x04, x05) or a file
from simulators.xrd import SimulatedDiffractometer

#: Nominal durations of the operator's manual steps, seconds *(chosen)*.
OPERATOR_STEP_S: dict[str, float] = {"recover": 900.0, "wash": 600.0, "dry": 3600.0, "mount": 600.0}


class RecoveredElectrode:
    """The charged sample taken out of the cell, relaxing wherever it is kept.

    Relaxation is applied lazily, in closed form (``Sample.relax``) over each interval of
    constant temperature, whenever the lattice is asked for or the temperature changes.
    """

    def __init__(self, sample: Sample, clock: SimClock, temperature_C: float = 25.0) -> None:
        self.sample = sample
        self.clock = clock
        self.temperature_C = float(temperature_C)
        self._t = clock.now()

    def catch_up(self) -> None:
        now = self.clock.now()
        if now > self._t:
            self.sample.relax(now - self._t, self.temperature_C)
        self._t = now

    def set_temperature(self, temperature_C: float) -> None:
        self.catch_up()
        self.temperature_C = float(temperature_C)

    def lattice_A(self) -> float:
        self.catch_up()
        return self.sample.lattice_A()


class SimulatedOperator:
    """Carries out manual steps in simulated time: each takes its nominal duration.

    ``set(instruction)`` returns a Status finishing after ``durations_s[instruction]`` of
    clock time. ``"recover"`` takes the sample out of the cell (into a
    :class:`RecoveredElectrode`); ``"mount"`` starts the ex-situ scan job on it.
    """

    parent = None

    def __init__(self, rig: InsituRig, durations_s: dict[str, float] | None = None) -> None:
        self.name = "operator"
        self.rig = rig
        self.durations_s = dict(OPERATOR_STEP_S if durations_s is None else durations_s)
        self.log: list[tuple[float, str]] = []

    def set(self, instruction: str) -> Status:
        if instruction not in self.durations_s:
            raise ValueError(f"operator: unknown instruction {instruction!r}")
        status = Status(obj=self)
        clock = self.rig.clock

        def done() -> None:
            self.log.append((clock.now(), instruction))
            if instruction == "recover":
                self.rig.recover_electrode()
            elif instruction == "mount":
                self.rig.start_exsitu_job()
            status.set_finished()

        clock.call_later(self.durations_s[instruction], done)
        return status

    def stop(self, *, success: bool = False) -> None:
        """Nothing to stop: a person finishes what they started."""


class SimulatedStage(Device):
    """A hot plate holding the recovered electrode; reaches its set point at once."""

    temperature = Cpt(Signal, value=25.0, kind=Kind.hinted)

    def __init__(self, rig: InsituRig, *, name: str = "stage", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.rig = rig

    def set(self, temperature_C: float) -> Status:
        if not math.isfinite(temperature_C):
            raise ValueError(f"{self.name}: temperature must be finite, got {temperature_C}")
        if self.rig.electrode is not None:
            self.rig.electrode.set_temperature(temperature_C)
        self.temperature.put(float(temperature_C), timestamp=self.rig.clock.now())
        status = Status(obj=self)
        self.rig.clock.call_later(0.0, status.set_finished)
        return status

    def trigger(self) -> Status:
        self.temperature.put(self.temperature.get(), timestamp=self.rig.clock.now())
        status = Status(obj=self)
        status.set_finished()
        return status


@dataclass
class InsituRig:
    """The simulated in-situ lab (build it with :func:`build_insitu_rig`)."""

    clock: SimClock
    RE: RunEngine
    simtime: SimulatedTime
    cell: Cell
    keithley: SimulatedKeithley2450
    channel: PotentiostatChannel
    xrd_sim: SimulatedDiffractometer
    diffractometer: Diffractometer
    exsitu: Diffractometer
    export_root: Path
    xrd_options: dict[str, Any]
    docs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    electrode: RecoveredElectrode | None = None
    exsitu_sim: SimulatedDiffractometer | None = None
    operator: SimulatedOperator | None = None
    stage: SimulatedStage | None = None

    def run(self, plan: Generator[Any, Any, Any], **md: Any) -> tuple[str, ...]:
        """Run a plan in simulated time; returns the uids of the runs it opened."""
        uids: Any = self.RE(plan, clock_start_s=self.clock.now(), **md)
        return tuple(uids)

    def documents(self, uid: str) -> list[tuple[str, dict[str, Any]]]:
        """The documents of run ``uid`` (in emission order)."""
        out: list[tuple[str, dict[str, Any]]] = []
        inside = False
        for name, doc in self.docs:
            if name == "start":
                inside = doc["uid"] == uid
            if inside:
                out.append((name, doc))
            if name == "stop" and inside:
                break
        return out

    # --- simulated physical actions (called by the simulated operator) -------------------
    def catch_up_cell(self) -> None:
        """Bring the cell (and its sample) up to the present, as the instrument would be."""
        self.keithley._catch_up()

    def recover_electrode(self, temperature_C: float = 25.0) -> RecoveredElectrode:
        self.catch_up_cell()
        self.electrode = RecoveredElectrode(self.cell.sample.copy(), self.clock, temperature_C)
        return self.electrode

    def start_exsitu_job(self) -> SimulatedDiffractometer:
        if self.electrode is None:
            raise RuntimeError("mount: no electrode has been recovered")
        self.exsitu_sim = SimulatedDiffractometer(
            self.clock,
            self.export_root / "exsitu",
            self.electrode.lattice_A,
            prefix=f"exsitu_{int(self.clock.now())}",
            **self.xrd_options,
        )
        return self.exsitu_sim


def build_insitu_rig(
    export_root: str | Path,
    *,
    scan_time_s: float = 1200.0,
    two_theta_deg: tuple[float, float] = (30.0, 100.0),
    step_deg: float = 0.05,
    poll_interval_s: float = 60.0,
    active_mass_g: float = 0.007,
    material: str | None = None,
    seed: int = 0,
    page_age_s: float = 3600.0,
    noise_seed: int | None = None,
) -> InsituRig:
    """A simulated in-situ rig on a fresh SimClock, RunEngine and pristine cell.

    Parameters
    ----------
    export_root
        Folder for the diffractometers' export folders (``insitu/`` and ``exsitu/``).
    scan_time_s
        Duration of one scan (back to back, first starting now).
    two_theta_deg, step_deg
        Scan range and step (coarser is faster).
    poll_interval_s
        Clock seconds between export-folder polls while a scan is awaited.
    active_mass_g, material, noise_seed
        The cell (``material`` is a material file name, default x = 0.4).
    seed
        Seed of the diffraction counting noise.
    page_age_s
        Clock seconds after which a page of points is handed to the run.

    Returns
    -------
    InsituRig
    """
    root = Path(export_root)
    (root / "insitu").mkdir(parents=True, exist_ok=True)
    (root / "exsitu").mkdir(parents=True, exist_ok=True)
    clock = SimClock()
    RE, simtime = sim_run_engine(clock)

    material_file = resolve_material(material) if material else None
    cell = Cell(Sample(load_material(material_file)), active_mass_g=active_mass_g, noise_seed=noise_seed)
    keithley = SimulatedKeithley2450(cell, clock)
    driver = Keithley2450Potentiostat(
        Keithley2450(InProcessTransport(keithley, name="smu1 (simulated)"), "smu1"), clock
    )
    driver.initialise()
    channel = PotentiostatChannel(
        name="cell1", driver=driver, clock=clock, active_mass_g=active_mass_g, page_age_s=page_age_s
    )
    xrd_options: dict[str, Any] = {
        "scan_time_s": scan_time_s,
        "two_theta_start_deg": two_theta_deg[0],
        "two_theta_stop_deg": two_theta_deg[1],
        "step_deg": step_deg,
        "seed": seed,
    }
    xrd_sim = SimulatedDiffractometer(clock, root / "insitu", cell.sample.lattice_A, **xrd_options)

    def watch(folder: Path, name: str, before_poll: Callable[[], Any]) -> Diffractometer:
        watcher = pattern_watcher(folder, clock, scan_time_s=scan_time_s, a_guess_A=4.14)
        return Diffractometer(
            watcher, clock, name=name, poll_interval_s=poll_interval_s, before_poll=before_poll
        )

    rig: InsituRig

    def insitu_poll() -> None:
        rig.catch_up_cell()
        xrd_sim.catch_up()

    def exsitu_poll() -> None:
        if rig.exsitu_sim is not None:
            rig.exsitu_sim.catch_up()

    rig = InsituRig(
        clock=clock,
        RE=RE,
        simtime=simtime,
        cell=cell,
        keithley=keithley,
        channel=channel,
        xrd_sim=xrd_sim,
        diffractometer=watch(root / "insitu", "xrd", insitu_poll),
        exsitu=watch(root / "exsitu", "xrd_exsitu", exsitu_poll),
        export_root=root,
        xrd_options=xrd_options,
    )
    rig.operator = SimulatedOperator(rig)
    rig.stage = SimulatedStage(rig)
    RE.subscribe(lambda name, doc: rig.docs.append((name, doc)))
    return rig


# --- run tables ---------------------------------------------------------------------------
def points_frame(docs: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """The potentiostat points of a run (export columns, ``time_s`` from the run's clock start)."""
    return frame_from_documents(iter(docs))[1]


def xrd_frame(docs: list[tuple[str, dict[str, Any]]], stream: str = "xrd") -> pd.DataFrame:
    """One row per scan of a run: ``time_s`` (scan middle, same origin as :func:`points_frame`),
    ``scan_start_s``/``scan_end_s`` (same origin), ``lattice_A``, ``lattice_err_A``,
    ``filename``, ``two_theta`` and ``intensity`` (arrays)."""
    start = next(doc for name, doc in docs if name == "start")
    prefixes: dict[str, tuple[str, ...]] = {
        doc["uid"]: tuple(f"{device}_" for device in doc.get("object_keys", {}))
        for name, doc in docs
        if name == "descriptor" and doc.get("name") == stream
    }
    rows = []
    for name, doc in docs:
        if name != "event" or doc["descriptor"] not in prefixes:
            continue
        row = {}
        for key, value in doc["data"].items():
            for prefix in prefixes[doc["descriptor"]]:
                if key.startswith(prefix):
                    key = key[len(prefix) :]
                    break
            row[key] = value
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["time_s", "scan_start_s", "scan_end_s", "lattice_A", "lattice_err_A"])
    frame = pd.DataFrame(rows)
    origin = float(start.get("clock_start_s", frame["scan_start_s"].iloc[0]))
    frame["scan_start_s"] = frame["scan_start_s"].astype(float) - origin
    frame["scan_end_s"] = frame["scan_end_s"].astype(float) - origin
    frame.insert(0, "time_s", 0.5 * (frame["scan_start_s"] + frame["scan_end_s"]))
    return frame
