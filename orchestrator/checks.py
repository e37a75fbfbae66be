"""What a protocol or a campaign asks of the instruments it will run on, checked before anything moves.

A protocol file is valid on its own (:mod:`protocols.schema`) yet may ask more than a channel can
do: a current above the channel's range for the cell's active mass, a record interval shorter
than the instrument can read, a cut-off beyond the cell's safety limits (the limit would stop
the cell first, as a fault). ``relaxlab run`` and ``relaxlab campaign run`` call these checks
before connecting to anything, and ``relaxlab validate --lab`` calls the same ones, so
``validate`` rejects whatever ``run`` would.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drivers.emstat4 import EmStat4Config
from drivers.emstat4.methodscript import Limits
from drivers.keithley2450 import Keithley2450Config, Keithley2450Potentiostat
from drivers.techniques import GITT, ConstantCurrent, ConstantVoltage, Loop, Rest, Sweep
from orchestrator.campaign_file import Campaign
from orchestrator.example_lab import check_lab
from orchestrator.lab import InstrumentConfig, Lab
from orchestrator.schedule import split_phases
from protocols.schema import Heat, Manual, Protocol, Step, Xrd

#: Shortest record interval each potentiostat can keep: the 2450 is read by the host over VISA
#: (a reading at 1 NPLC takes 20 ms plus the round trip); an EmStat4 samples on the instrument.
MIN_RECORD_INTERVAL_S = {"keithley2450": 0.1, "emstat4": 0.01}
#: Step kinds ``relaxlab run`` drives (one potentiostat channel).
RUN_STEP_KINDS = ("cc", "cv", "rest", "gitt", "sweep", "loop")


@dataclass(frozen=True)
class ChannelLimits:
    """What one channel (a potentiostat with a cell of a given window on it) can do."""

    name: str
    max_current_A: float
    min_record_interval_s: float
    voltage_min_V: float
    voltage_max_V: float
    min_current_A: float = 0.0
    instrument_max_V: float = 6.0
    instrument_limit: str = ""


def _keithley_max_current_A() -> float:
    """The channel current limit a Keithley 2450 potentiostat is built with (its default)."""
    default = inspect.signature(Keithley2450Potentiostat.__init__).parameters["max_current_A"].default
    return float(default)


def instrument_limits(config: InstrumentConfig) -> tuple[float, float]:
    """(largest current in A, shortest record interval in s) of a lab-file potentiostat."""
    if isinstance(config, EmStat4Config):
        return Limits.for_model(config.model).max_current_A, MIN_RECORD_INTERVAL_S["emstat4"]
    return _keithley_max_current_A(), MIN_RECORD_INTERVAL_S["keithley2450"]


def lab_channel(lab: Lab, cell: str | None) -> ChannelLimits:
    """The limits of one cell (channel) of a lab file."""
    config = lab.cell(cell)
    instrument = lab.instruments[config.instrument]
    current, record = instrument_limits(instrument)
    if isinstance(instrument, EmStat4Config):
        limits = Limits.for_model(instrument.model)
        return ChannelLimits(config.name, current, record, config.voltage_min, config.voltage_max,
                             min_current_A=limits.current_ranges_A[0] * 1e-3, instrument_max_V=limits.max_potential_V,
                             instrument_limit=f"the EmStat4 {instrument.model}'s +-{limits.max_potential_V:g} V")  # fmt: skip
    if not isinstance(instrument, Keithley2450Config):  # a model that states no limits of its own
        return ChannelLimits(config.name, current, record, config.voltage_min, config.voltage_max)
    return ChannelLimits(config.name, current, record, config.voltage_min, config.voltage_max,
                         instrument_max_V=instrument.compliance,
                         instrument_limit=f"the 2450's compliance ({instrument.compliance:g} V; `compliance` in the lab file)")  # fmt: skip


def simulated_channel() -> ChannelLimits:
    """A channel of the simulated campaign lab (a Keithley 2450, cells kept within 1.0-4.95 V)."""
    return ChannelLimits(
        "simulated", _keithley_max_current_A(), MIN_RECORD_INTERVAL_S["keithley2450"], 1.0, 4.95
    )


def _flat(steps: Iterable[Step]) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        out.extend(step.steps if isinstance(step, Loop) else [step])
    return out


def _voltages(step: Step) -> list[tuple[str, float]]:
    if isinstance(step, ConstantCurrent) and step.cutoffs.voltage_V is not None:
        return [("voltage cut-off", step.cutoffs.voltage_V)]
    if isinstance(step, ConstantVoltage):
        return [("held voltage", step.voltage_V)]
    if isinstance(step, GITT):
        return [("voltage cut-off", step.cutoff_voltage_V)]
    if isinstance(step, Sweep):
        return [
            ("sweep start", step.start_V),
            ("sweep vertex", step.vertex1_V),
            ("sweep vertex", step.vertex2_V),
        ]
    return []


def step_problems(steps: Sequence[Step], mass_g: float, channel: ChannelLimits) -> list[str]:
    """Why ``steps`` cannot run on ``channel`` with ``mass_g`` of active material (empty if they can)."""
    problems: list[str] = []
    for index, step in enumerate(steps):
        label = f"step {index + 1} ({step.kind})"
        for inner in _flat([step]):
            if isinstance(inner, ConstantCurrent | GITT):
                current_A = abs(inner.current_mA_g) * mass_g / 1000.0
                if 0 < current_A < channel.min_current_A:
                    problems.append(
                        f"{label}: {abs(inner.current_mA_g):g} mA/g on {mass_g * 1000:g} mg is {current_A:.3g} A, "
                        f"below the {channel.min_current_A:g} A the instrument of {channel.name} can set"
                    )
                if current_A > channel.max_current_A:
                    problems.append(
                        f"{label}: {abs(inner.current_mA_g):g} mA/g on {mass_g * 1000:g} mg is "
                        f"{current_A * 1000:.4g} mA, above the {channel.max_current_A * 1000:g} mA the channel "
                        f"({channel.name}) can source; lower the current (e.g. current: 20 mA/g) or the mass"
                    )
            record = getattr(inner, "record_interval_s", None)
            if (
                isinstance(inner, ConstantCurrent | ConstantVoltage | Rest | Sweep | GITT)
                and record is not None
            ) and record < channel.min_record_interval_s:
                problems.append(
                    f"{label}: record_interval {record:g} s is shorter than the "
                    f"{channel.min_record_interval_s:g} s the instrument of {channel.name} can keep "
                    f"(e.g. record_interval: 10 s)"
                )
            for what, volts in _voltages(inner):
                if channel.instrument_limit and volts > channel.instrument_max_V:
                    problems.append(
                        f"{label}: {what} {volts:g} V is above {channel.instrument_limit} on {channel.name}"
                    )
                if not channel.voltage_min_V <= volts <= channel.voltage_max_V:
                    problems.append(
                        f"{label}: {what} {volts:g} V is outside the cell's safety limits "
                        f"{channel.voltage_min_V:g}-{channel.voltage_max_V:g} V on {channel.name} (the limit "
                        f"would stop the cell first); keep it inside, or widen voltage_min/voltage_max in the lab file"
                    )
    return list(dict.fromkeys(problems))


def run_problems(protocol: Protocol, lab: Lab, cell: str | None) -> list[str]:
    """Why ``relaxlab run`` cannot run ``protocol`` on ``cell`` of ``lab`` (empty if it can)."""
    source = str(protocol.source or protocol.name)
    problems: list[str] = []
    others = sorted({s.kind for s in protocol.steps if isinstance(s, Heat | Xrd | Manual)})
    if others:  # the in-process simulated lab runs them; a lab lacking an oven/diffractometer cannot
        try:
            check_lab(protocol, lab)
        except ValueError as exc:
            problems.append(f"{source}: {exc}")
    channel = lab_channel(lab, cell)
    mass = lab.cell(cell).active_mass
    steps = [s for s in protocol.steps if not isinstance(s, Heat | Xrd | Manual)]
    problems += [f"{source}: {p}" for p in step_problems(steps, mass, channel)]
    return problems


def campaign_problems(campaign: Campaign, lab: Lab | None = None, ovens: int | None = None) -> list[str]:
    """Why ``relaxlab campaign run`` cannot run ``campaign`` (on ``lab``'s channels, or on the
    simulated lab when ``lab`` is None); empty if it can. Any cell may land on any channel, so each
    cell must fit every channel."""
    source = str(campaign.source or campaign.name)
    if lab is not None:
        channels = [lab_channel(lab, c.name) for c in lab.cells]
    else:
        channels = [simulated_channel()]
    problems: list[str] = []
    heating = [c.id for c in campaign.cells if split_phases(c.protocol.steps)[0]]
    if heating and lab is not None and not lab.ovens:
        problems.append(
            f"{source}: campaign {campaign.name!r} heats powder portions (e.g. for {heating[0]}), but lab file "
            f'{lab.source} has no oven: add one (an instrument with driver = "eurotherm"), or run the campaign '
            "on the simulated lab (without --lab)"
        )
    if heating and lab is None and ovens is not None and ovens < 1:
        problems.append(
            f"{source}: campaign {campaign.name!r} heats powder portions; give it an oven (--ovens 1)"
        )
    for cell in campaign.cells:
        steps = [s for s in split_phases(cell.protocol.steps)[1] if not isinstance(s, Heat | Xrd | Manual)]
        for channel in channels:
            for problem in step_problems(steps, cell.mass_g, channel):
                problems.append(f"{source}: cell {cell.id}: {problem}")
    # one line per distinct problem: the same step on 30 cells is said once, naming the first cell
    seen: dict[str, str] = {}
    for problem in problems:
        key = problem.split(": cell ", 1)[-1].split(": ", 1)[-1]
        seen.setdefault(key, problem)
    return list(seen.values())


__all__ = [
    "MIN_RECORD_INTERVAL_S",
    "ChannelLimits",
    "campaign_problems",
    "instrument_limits",
    "lab_channel",
    "run_problems",
    "simulated_channel",
    "step_problems",
]
