"""Campaign scheduling: which cell runs on which channel when, oven runs shared per condition.

The plan is a greedy list schedule with these rules:

* A protocol whose heating comes before any electrochemical step (a powder portion relaxed in
  the oven, then built into a fresh cell) has a *portion phase*: its manual steps and heat
  steps up to the last heat. Cells whose portion phases heat identically share ONE oven run
  (one run per heating condition); their cells are ready when that run ends.
* The rest is the *cell phase*. Manual steps before the first electrochemical step (building
  the cell) are operator tasks; the cell then holds a potentiostat channel from its first to
  its last electrochemical step. A heat step inside that span puts the cell in an oven
  (exclusive use); scans (``xrd: {scans: n}``) and in-situ XRD (``xrd: {every: ...}`` during
  the next step) use a diffractometer.
* Manual steps take their ``duration`` (0 s by default); one operator does them one at a time.

Durations are estimates: rests, heat holds and GITT rests exactly; heating and cooling at the
step's ramp (10 degC/min if none is given). Steps that end on a cut-off come from a duration
function: ``campaign plan`` passes the cell model's (:mod:`orchestrator.estimate`, the physics
the simulated lab runs); without one a constant-current step takes its capacity cut-off over its
current, or a typical 280 mAh/g when it ends on voltage.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from drivers.techniques import GITT, ConstantCurrent, ConstantVoltage, Loop, Rest, Sweep
from orchestrator.campaign_file import Campaign
from protocols.schema import Heat, Manual, Step, Xrd

#: Capacity assumed for a constant-current step that ends on a voltage cut-off (mAh/g).
TYPICAL_CAPACITY_MAH_G = 280.0
#: Heating/cooling rate assumed when a heat step gives none (degC/min).
DEFAULT_RAMP_C_MIN = 10.0
#: Hold time assumed for a voltage hold with only a current cut-off (s).
DEFAULT_CV_S = 7200.0
ROOM_C = 25.0

COLUMNS = ["cell", "channel", "task", "start_s", "end_s", "label"]


def estimate_step_s(step: Step, typical_capacity_mAh_g: float = TYPICAL_CAPACITY_MAH_G) -> float:
    """Estimated duration of one step, seconds.

    Parameters
    ----------
    step : Step
        A technique, ``Loop``, :class:`Heat`, :class:`Xrd` or :class:`Manual`.
    typical_capacity_mAh_g : float
        Capacity passed by a constant-current step that ends on its voltage cut-off.

    Returns
    -------
    float
        Seconds (0 for an ``xrd`` that runs during the next step).
    """
    if isinstance(step, ConstantCurrent):
        capacity = step.cutoffs.capacity_mAh_g or typical_capacity_mAh_g
        if step.cutoffs.capacity_mAh_g is None and step.cutoffs.voltage_V is None:
            capacity = math.inf
        seconds = capacity / abs(step.current_mA_g) * 3600.0
        return min(seconds, step.cutoffs.duration_s or math.inf)
    if isinstance(step, ConstantVoltage):
        return step.cutoffs.duration_s or DEFAULT_CV_S
    if isinstance(step, Rest):
        return step.duration_s
    if isinstance(step, GITT):
        per_pulse = abs(step.current_mA_g) * step.pulse_s / 3600.0
        pulses = min(step.max_pulses, math.ceil(typical_capacity_mAh_g / per_pulse))
        return pulses * (step.pulse_s + step.rest_s)
    if isinstance(step, Sweep):
        legs = abs(step.vertex1_V - step.start_V)
        if not step.linear:
            legs += abs(step.vertex2_V - step.vertex1_V) + abs(step.start_V - step.vertex2_V)
            legs *= step.cycles
        return legs * 1000.0 / step.scan_rate_mV_s
    if isinstance(step, Loop):
        return step.count * sum(estimate_step_s(s, typical_capacity_mAh_g) for s in step.steps)
    if isinstance(step, Heat):
        ramp = (step.ramp_C_min or DEFAULT_RAMP_C_MIN) / 60.0
        return (
            abs(step.temperature_C - ROOM_C) + abs(step.temperature_C - step.cool_to_C)
        ) / ramp + step.hold_s
    if isinstance(step, Xrd):
        return 0.0 if step.during_next_step else step.scans * step.scan_time_s
    if isinstance(step, Manual):
        return step.duration_s
    raise TypeError(f"cannot estimate the duration of {step!r}")


def duration_label(seconds: float) -> str:
    """A duration as people write it: ``90 s``, ``10 min``, ``1.5 h``, ``14 d``."""
    if seconds >= 2 * 86400.0:
        return f"{seconds / 86400.0:.3g} d"
    if seconds >= 3600.0:
        return f"{seconds / 3600.0:.3g} h"
    if seconds >= 120.0 or (seconds >= 60.0 and seconds % 60.0 == 0):
        return f"{seconds / 60.0:.3g} min"
    return f"{seconds:.3g} s"


def _cc_label(step: ConstantCurrent) -> str:
    cut = step.cutoffs
    ends = [f"{value:g} {unit}" for value, unit in ((cut.voltage_V, "V"), (cut.capacity_mAh_g, "mAh/g"))
            if value is not None]  # fmt: skip
    name = "charge" if step.current_mA_g > 0 else "discharge"
    return f"{name} {abs(step.current_mA_g):g} mA/g to {' or '.join(ends) or 'time'}"


#: A short human label for each kind of step.
_LABELS: dict[type, Callable[[typing.Any], str]] = {
    ConstantCurrent: _cc_label,
    ConstantVoltage: lambda s: f"hold {s.voltage_V:g} V",
    Rest: lambda s: f"rest {duration_label(s.duration_s)}",
    GITT: lambda s: f"GITT {s.current_mA_g:g} mA/g, rests {duration_label(s.rest_s)}",
    Sweep: lambda s: f"sweep {s.scan_rate_mV_s:g} mV/s",
    Loop: lambda s: f"loop x{s.count}",
    Heat: lambda s: f"heat {s.temperature_C:g} C for {duration_label(s.hold_s)}",
    Xrd: lambda s: f"XRD every {s.every_s / 60:g} min" if s.every_s else f"XRD {s.scans} scan(s)",
    Manual: lambda s: s.instruction[:60],
}


def describe_step(step: Step) -> str:
    """A short human label for a step."""
    return _LABELS[type(step)](step)


def _electrochemical(step: Step) -> bool:
    return not isinstance(step, Heat | Xrd | Manual)


def split_phases(steps: Sequence[Step]) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
    """(portion phase, cell phase): the heat-before-electrochemistry prefix and the rest."""
    first_echem = next((i for i, s in enumerate(steps) if _electrochemical(s)), len(steps))
    heats = [i for i, s in enumerate(steps[:first_echem]) if isinstance(s, Heat)]
    if not heats:
        return (), tuple(steps)
    cut = heats[-1] + 1
    return tuple(steps[:cut]), tuple(steps[cut:])


@dataclass(frozen=True)
class Schedule:
    """A computed campaign schedule.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per task: cell, channel (the resource: ``ch1``, ``oven1``, ``xrd1``,
        ``operator``), task (step kind), start_s, end_s, label.
    makespan_s : float
        Time from the start until the last task ends (the ETA).
    channels, ovens, diffractometers : int
        The resources the schedule was computed for.
    """

    frame: pd.DataFrame
    makespan_s: float
    channels: int
    ovens: int
    diffractometers: int = 1

    def gantt_png(self, path: str | Path, title: str | None = None) -> Path:
        """Draw the schedule as a Gantt chart (one row per resource) into a PNG file.

        Returns
        -------
        Path
            The file written.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        resources = sorted(set(self.frame["channel"]), key=_resource_order)
        colours = {
            "cc": "tab:blue",
            "cv": "tab:cyan",
            "rest": "tab:green",
            "gitt": "tab:purple",
            "sweep": "tab:olive",
            "loop": "tab:blue",
            "heat": "tab:red",
            "xrd": "tab:orange",
            "manual": "tab:gray",
        }
        fig, ax = plt.subplots(figsize=(12, 0.35 * len(resources) + 1.8))
        for row in self.frame.itertuples():
            y = resources.index(row.channel)
            width = max((row.end_s - row.start_s) / 3600.0, 0.05)
            ax.barh(
                y,
                width,
                left=row.start_s / 3600.0,
                height=0.7,
                color=colours.get(row.task, "k"),
                edgecolor="white",
                linewidth=0.3,
            )
        ax.set_yticks(range(len(resources)), resources)
        ax.invert_yaxis()
        ax.set_xlabel("time from start (h)")
        ax.axvline(self.makespan_s / 3600.0, color="k", linestyle="--", linewidth=0.8)
        handles = [
            plt.Rectangle((0, 0), 1, 1, color=c) for k, c in colours.items() if k in set(self.frame.task)
        ]
        ax.legend(
            handles,
            [k for k in colours if k in set(self.frame.task)],
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=7,
        )
        ax.set_title(
            title or f"{self.channels} channels, {self.ovens} oven(s): ETA {self.makespan_s / 3600:.1f} h"
        )
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _resource_order(name: str) -> tuple[int, int, str]:
    order = {"operator": 0, "oven": 1, "xrd": 2, "ch": 3}
    for prefix, rank in sorted(order.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(prefix):
            digits = name[len(prefix) :]
            return rank, int(digits) if digits.isdigit() else 0, name
    return 9, 0, name


class _Pool:
    """Identical resources, each with its booked intervals (gaps can be filled if ``gaps``)."""

    def __init__(self, prefix: str, count: int, gaps: bool = True) -> None:
        # channels are named as the simulated lab names them (ch01, ch02 ...), and ties go to
        # the lowest number, as a campaign run takes the first free channel of its pool
        width = 2 if prefix == "ch" else 1
        self.busy: dict[str, list[tuple[float, float]]] = {
            f"{prefix}{i + 1:0{width}d}": [] for i in range(count)
        }
        self.order = {name: i for i, name in enumerate(self.busy)}
        self.gaps = gaps

    def _start_on(self, name: str, after: float, duration: float) -> float:
        intervals = self.busy[name]
        if not self.gaps:
            return max([after, *(e for _, e in intervals)])
        start = after
        for s, e in intervals:  # sorted by start
            if start + duration <= s and not (duration == 0 and start == s and e > s):
                return start
            start = max(start, e)
        return start

    def earliest(self, after: float, duration: float = 0.0) -> tuple[str, float]:
        """The resource that can start a task of ``duration`` first at or after ``after``, and when."""
        starts = {name: self._start_on(name, after, duration) for name in self.busy}
        name = min(starts, key=lambda n: (starts[n], self.order[n]))
        return name, starts[name]

    def book(self, name: str, start: float, end: float) -> None:
        self.busy[name].append((start, end))
        self.busy[name].sort()


@dataclass
class _Planner:
    channels: _Pool
    ovens: _Pool
    xrd: _Pool
    operator: _Pool
    rows: list[dict[str, object]] = field(default_factory=list)

    def row(self, cell: str, resource: str, step: Step, start: float, end: float) -> None:
        self.rows.append(
            {
                "cell": cell,
                "channel": resource,
                "task": step.kind,
                "start_s": start,
                "end_s": end,
                "label": describe_step(step),
            }
        )

    def pool_for(self, step: Step) -> _Pool:
        if isinstance(step, Manual):
            return self.operator
        if isinstance(step, Heat):
            return self.ovens
        return self.xrd

    def portion_phase(self, label: str, steps: Sequence[Step], durations: Sequence[float]) -> float:
        """Manual steps at the operator, heat steps in one oven; returns when it is done."""
        oven: str | None = None
        # start the operator's preparation so that it ends when an oven is free
        first = next(i for i, s in enumerate(steps) if isinstance(s, Heat))
        lead = sum(durations[:first])
        t = max(0.0, self.ovens.earliest(lead, durations[first])[1] - lead)
        for step, duration in zip(steps, durations, strict=True):
            pool = self.pool_for(step)
            if isinstance(step, Heat) and oven is not None:
                name, start = oven, pool._start_on(oven, t, duration)  # the powder stays in its oven
            else:
                name, start = pool.earliest(t, duration)
            oven = name if isinstance(step, Heat) else oven
            t = start + duration
            pool.book(name, start, t)
            self.row(label, name, step, start, t)
        return t

    def cell_phase(self, cell: str, steps: Sequence[Step], ready: float, durations: Sequence[float]) -> None:
        """Place one cell's steps; it holds its channel from when it is built (the operator
        mounts it on the channel, as a campaign run does) to its last electrochemical step."""
        echem = [i for i, s in enumerate(steps) if _electrochemical(s)]
        last = echem[-1] if echem else -1
        t = ready
        channel: str | None = None
        held_from = 0.0
        if echem:
            channel, t = self.channels.earliest(t)
            held_from = t
        pending: Xrd | None = None
        for i, step in enumerate(steps):
            if isinstance(step, Xrd) and step.during_next_step:
                pending = step
                continue
            duration = durations[i]
            if _electrochemical(step):
                name, start = typing.cast(str, channel), t
            else:
                name, start = self.pool_for(step).earliest(t, duration)
            if pending is not None:
                xrd_name, start = self.xrd.earliest(start, duration)
                self.xrd.book(xrd_name, start, start + duration)
                self.row(cell, xrd_name, pending, start, start + duration)
                pending = None
            t = start + duration
            if not _electrochemical(step):
                self.pool_for(step).book(name, start, t)
            self.row(cell, name, step, start, t)
            if i == last and channel is not None:
                self.channels.book(channel, held_from, t)


def plan_campaign(
    campaign: Campaign,
    channels: int,
    ovens: int = 1,
    diffractometers: int = 1,
    typical_capacity_mAh_g: float = TYPICAL_CAPACITY_MAH_G,
    durations: Callable[[Sequence[Step]], Sequence[float]] | None = None,
) -> Schedule:
    """Schedule every cell of a campaign on the available channels, ovens and diffractometers.

    Parameters
    ----------
    campaign : Campaign
        From :func:`orchestrator.campaign_file.load_campaign`.
    channels : int
        Potentiostat channels (>= 1).
    ovens : int
        Ovens (>= 1 when any protocol heats).
    diffractometers : int
        Diffractometers (>= 1 when any protocol uses XRD).
    typical_capacity_mAh_g : float
        Capacity assumed for constant-current steps that end on a voltage (when ``durations``
        is not given).
    durations : callable, optional
        A cell's protocol steps -> the duration of each (s); e.g. the cell model's
        :func:`orchestrator.estimate.model_estimator`. Default: :func:`estimate_step_s`.

    Returns
    -------
    Schedule
        Tasks and makespan (ETA, seconds from the start).

    Raises
    ------
    ValueError
        On fewer than one channel, or no oven/diffractometer when the protocols need one.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    kinds = {s.kind for cell in campaign.cells for s in cell.protocol.steps}
    if "heat" in kinds and ovens < 1:
        raise ValueError("the campaign heats samples: ovens must be >= 1")
    if "xrd" in kinds and diffractometers < 1:
        raise ValueError("the campaign uses XRD: diffractometers must be >= 1")
    planner = _Planner(
        _Pool("ch", channels),
        _Pool("oven", ovens),
        _Pool("xrd", diffractometers),
        _Pool("operator", 1),
    )

    def durations_of(steps: Sequence[Step]) -> tuple[float, ...]:
        if durations is not None:
            return tuple(durations(steps))
        return tuple(estimate_step_s(s, typical_capacity_mAh_g) for s in steps)

    # one oven run per heating condition
    ready: dict[tuple[Step, ...], float] = {}
    work = []
    for index, cell in enumerate(campaign.cells):
        prefix, rest = split_phases(cell.protocol.steps)
        seconds = durations_of(cell.protocol.steps)
        if prefix and prefix not in ready:
            ready[prefix] = planner.portion_phase(cell.portion or cell.id, prefix, seconds[: len(prefix)])
        # cells in order of readiness, longer cell phases first among equals
        cell_seconds = seconds[len(prefix) :]
        work.append((ready.get(prefix, 0.0), -sum(cell_seconds), index, cell, rest, cell_seconds))
    for at, _, _, cell, rest, cell_seconds in sorted(work, key=lambda w: w[:3]):
        planner.cell_phase(cell.id, rest, at, cell_seconds)
    frame = pd.DataFrame(planner.rows, columns=COLUMNS)
    makespan = float(frame["end_s"].max()) if len(frame) else 0.0
    return Schedule(frame, makespan, channels, ovens, diffractometers)


__all__ = ["Schedule", "describe_step", "duration_label", "estimate_step_s", "plan_campaign", "split_phases"]
