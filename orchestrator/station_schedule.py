"""Which station runs what, from the schedule of ``relaxlab campaign plan``.

The schedule is planned on as many channels and ovens as the stations file lists, in file
order (``ch01`` is the first channel of the first station, ``oven1`` the first oven). Each cell
gets its channel (so its station) and its turn on that channel; each heated powder portion
gets the oven the schedule heats it in (so the station holding that oven), where the
portion's operator steps (weighing it, loading it) are done too. The cells of a station's turn
are queued together (one ``campaign_cells`` item) once every portion they are built from has
a finished run; the portions of an oven station are queued at once (one ``campaign_portions``
item) and share its ovens in the schedule's order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from drivers.techniques import Loop, Technique, technique_from_dict
from orchestrator.campaign_file import Campaign
from orchestrator.schedule import split_phases
from orchestrator.stations_file import StationsFile
from protocols.schema import Heat, Manual, Step

_TECHNIQUE_TYPES = (*Technique.__args__, Loop)  # type: ignore[attr-defined]


def step_to_dict(step: Step) -> dict[str, Any]:
    """A step (technique, operator step or heating) as plain data, to queue it on a station."""
    return dataclasses.asdict(step)  # type: ignore[call-overload, no-any-return]


def step_from_dict(data: dict[str, Any]) -> Step:
    """The step :func:`step_to_dict` gave (as it comes out of a queue item)."""
    fields = {k: v for k, v in data.items() if k != "kind"}
    if data.get("kind") == "manual":
        fields["record"] = tuple(tuple(pair) for pair in fields.get("record", ()))
        return Manual(**fields)
    if data.get("kind") == "heat":
        return Heat(**fields)
    return technique_from_dict(data)


@dataclass
class Assignment:
    cell: str
    station: str
    channel: str
    turn: int
    start_s: float
    portion: str | None = None  # the heated portion it is built from (None: no portion phase)


@dataclass
class PortionAssignment:
    portion: str
    station: str
    oven: str
    start_s: float
    cells: list[str] = field(default_factory=list)


@dataclass
class StationPlan:
    cells: list[Assignment]
    portions: dict[str, PortionAssignment]

    def turns(self) -> dict[str, list[list[Assignment]]]:
        """Each station's turns in order, each the cells queued together."""
        by: dict[tuple[str, int], list[Assignment]] = {}
        for a in self.cells:
            by.setdefault((a.station, a.turn), []).append(a)
        out: dict[str, list[list[Assignment]]] = {}
        for (station, _), group in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            out.setdefault(station, []).append(sorted(group, key=lambda a: a.start_s))
        return out


def check_dispatchable(campaign: Campaign, stations: StationsFile | None = None) -> None:
    """Refuse (one clear error) a campaign with steps that dispatching does not run: a cell's
    steps are operator steps and electrochemical ones; a portion's, operator steps and heating
    (which needs an oven in the stations file)."""
    for cell in campaign.cells:
        portion_phase, cell_phase = split_phases(cell.protocol.steps)
        for step in portion_phase:
            if not isinstance(step, (Manual, Heat)):
                raise ValueError(f"campaign {campaign.name!r}: portion of cell {cell.id} has a {step.kind} step; "
                                 "campaigns across stations run operator steps and heating on powder portions")  # fmt: skip
        for step in cell_phase:
            if not isinstance(step, (*_TECHNIQUE_TYPES, Manual)):
                raise ValueError(
                    f"campaign {campaign.name!r}: cell {cell.id} has a {step.kind} step; campaigns across "
                    "stations run operator and electrochemical steps on cells (charge, rest, discharge, GITT, "
                    "CV, loops) for now: run this one in one process (relaxlab campaign run without --stations)"
                )
        if portion_phase and stations is not None and not stations.ovens():
            raise ValueError(f"campaign {campaign.name!r} heats powder portions (e.g. for {cell.id}), but no "
                             'station of the stations file lists an oven: add ovens = ["..."] to one')  # fmt: skip


def assign(campaign: Campaign, stations: StationsFile) -> StationPlan:
    """Each cell's station, channel and turn, and each heated portion's station and oven, from
    the ``campaign plan`` schedule on the stations' channels and ovens."""
    from orchestrator.estimate import campaign_estimator
    from orchestrator.schedule import plan_campaign

    channels = stations.channels()
    ovens = stations.ovens()
    if not channels:
        raise ValueError("the stations file lists no channel: add channels = [...] to a station")
    frame = plan_campaign(campaign, channels=len(channels), ovens=max(1, len(ovens)),
                          durations=campaign_estimator(campaign)).frame  # fmt: skip
    portions: dict[str, PortionAssignment] = {}
    heated = {c.portion for c in campaign.cells if c.portion and split_phases(c.protocol.steps)[0]}
    on_ovens = frame[frame["channel"].str.startswith("oven") & frame["cell"].isin(heated)]
    for row in on_ovens.sort_values("start_s").itertuples(index=False):
        if str(row.cell) not in portions:
            station, oven = ovens[int(str(row.channel).removeprefix("oven")) - 1]
            portions[str(row.cell)] = PortionAssignment(str(row.cell), station, oven, float(row.start_s))
    for name in sorted(heated - set(portions)):  # operator steps only: done at the first oven's station
        portions[name] = PortionAssignment(name, ovens[0][0], ovens[0][1], 0.0)
    by_cell = {c.id: c for c in campaign.cells}
    on_channels = frame[frame["channel"].str.startswith("ch")]
    first = on_channels.groupby("cell").agg(channel=("channel", "first"), start_s=("start_s", "min")).reset_index()
    cells: list[Assignment] = []
    for slot, rows in first.sort_values("start_s").groupby("channel", sort=False):
        station, channel = channels[int(str(slot).removeprefix("ch")) - 1]
        for turn, row in enumerate(rows.itertuples(index=False)):
            portion = by_cell[str(row.cell)].portion
            portion = portion if portion in portions else None
            cells.append(Assignment(str(row.cell), station, channel, turn, float(row.start_s), portion))
            if portion is not None:
                portions[portion].cells.append(str(row.cell))
    return StationPlan(cells, portions)
