"""The simulated operator's hands on a lab file's simulated instruments: a cell built from a
heated powder portion is made of that powder as its recorded history left it.

On a lab file in simulated mode each channel's simulator holds one simulated cell (see
:meth:`orchestrator.simlab.SimulatedLab.cell_for`). When a campaign's operator builds a fresh
cell from a powder portion (the ``build_cell`` request of :func:`protocols.campaign.cell_job`),
:class:`SimulatedBuilder` puts on the channel's simulator a new cell whose sample is

* the campaign's powder charged to its end point (``charged_to``, as
  :func:`charged_powder`: the same charge the fully simulated lab gives it), then
* relaxed along the thermal history that portion's run *recorded*: the oven's temperature log
  while the portion was in (its "transfers" stream says when it went in and came out) and the
  bench temperature from the run's first record to its last
  (:func:`analysis.thermal_history.history_from_record`, as the report's rate-law fit reads it).

The history comes from data a real lab also has (the portion run, from the local journal or
the shared Tiled server), never from the oven's simulator, so it travels between stations as a
real portion does: with its record. Bench time outside the portion's run (before it was weighed,
between its run and the cell's build) is not counted: stations run independent simulated
clocks, so those intervals are not known across them.

Only the orchestrator reaches this module, and only in simulated mode (a lab whose simulators
run in this process); drivers and plans never see it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.units import parse_quantity
from simulators.cell import Cell
from simulators.sample import Sample

if TYPE_CHECKING:
    import pandas as pd

#: Room temperature of the simulated bench, as in :class:`orchestrator.simlab.SimulatedCampaignLab`.
BENCH_C = 25.0

#: Reads a portion's recorded oven log and transfers (the frame of
#: :func:`orchestrator.run_frames.read_oven_record`) for a build request's context; None when
#: the portion has no run (nothing was heated).
RecordSource = Callable[[Mapping[str, Any]], "pd.DataFrame | None"]


def charge_powder(sample: Sample, charged_to: str, current_mA_g: float = 20.0) -> None:
    """Charge ``sample`` as a large (0.1 g) cell at ``current_mA_g`` to ``charged_to`` (a voltage,
    e.g. ``"4.8 V"``, or a capacity, e.g. ``"200 mAh/g"``, then capped at 4.8 V)."""
    cell = Cell(sample, active_mass_g=0.1)
    current_A = current_mA_g * 0.1 / 1000.0
    text = str(charged_to)
    if "mAh" in text:
        cell.constant_current(current_A, 30 * 86400.0, v_upper_V=4.8,
                              capacity_limit_mAh_g=parse_quantity(text, "mAh/g"))  # fmt: skip
    else:
        cell.constant_current(current_A, 30 * 86400.0, v_upper_V=parse_quantity(text, "V"))


_charged: dict[tuple[int, str], tuple[Any, dict[str, float]]] = {}
_charged_lock = threading.Lock()


def charged_powder(material: Any, charged_to: str) -> Sample:
    """A fresh sample of the powder ``material`` charged to ``charged_to`` (computed once per pair)."""
    key = (id(material), str(charged_to))
    with _charged_lock:
        kept = _charged.get(key)
        if kept is None or kept[0] is not material:
            sample = Sample(material)
            charge_powder(sample, str(charged_to))
            kept = _charged[key] = (material, sample.to_dict())
    return Sample.from_dict(material, kept[1])


def portion_sample(material: Any, charged_to: str, record: pd.DataFrame | None, bench_C: float = BENCH_C) -> Sample:
    """The charged powder after the thermal history ``record`` (a portion run's oven log and
    transfers) shows; the charged powder itself when nothing was recorded."""
    from analysis.thermal_history import history_from_record

    sample = charged_powder(material, charged_to)
    if record is None or len(record) < 2:
        return sample
    log = record[record["stream"] == "oven"]
    moves = record[record["stream"] == "transfers"]
    times = record["timestamp_s"].astype(float)
    history = history_from_record(
        float(times.min()), float(times.max()), bench_C,
        log["timestamp_s"].astype(float).to_numpy(), log["temperature_C"].astype(float).to_numpy(),
        list(zip(moves["timestamp_s"].astype(float), moves["portion_location"], strict=True)),
    )  # fmt: skip
    sample.relax_history(history.times_s, history.temperatures_C)
    sample.state.temperature_C = bench_C
    return sample


class SimulatedBuilder:
    """An operator responder (:data:`drivers.operator.Responder`) that wraps another one and,
    when a cell is built from a powder portion, mounts on the channel's simulator a cell of the
    powder as the portion's recorded history left it (with the active mass the operator
    recorded).

    ``channel_instruments`` maps each channel device's ``name`` to its instrument in
    ``simulation`` (a :class:`~orchestrator.simlab.SimulatedLab`); ``record`` reads the
    portion's record for a request's context. Requests other than ``build_cell`` with a
    ``portion`` and ``charged_to`` in their context go to the wrapped responder unchanged.
    """

    def __init__(self, responder: Any, simulation: Any, channel_instruments: Mapping[str, str],
                 record: RecordSource, bench_C: float = BENCH_C) -> None:  # fmt: skip
        self.responder = responder
        self.simulation = simulation
        self.instruments = dict(channel_instruments)
        self.record = record
        self.bench_C = bench_C
        self.built: dict[str, dict[str, Any]] = {}  # cell -> what it was built from (for tests, logs)
        self._lock = threading.Lock()

    def __call__(self, request: Any, done: Callable[[dict[str, float]], None], failed: Callable[[str], None]) -> None:
        ctx = request.context
        channel = ctx.get("channel")
        simulated = self.instruments.get(str(getattr(channel, "name", ""))) in self.simulation.instruments
        if ctx.get("action") != "build_cell" or not ctx.get("portion") or not ctx.get("charged_to") or not simulated:
            self.responder(request, done, failed)  # a real channel's cell is built by a real operator
            return

        def built(values: dict[str, float]) -> None:
            try:
                self._mount(request.job, ctx, values)
            except Exception as exc:  # an operator who cannot build the cell says so
                failed(f"the simulated operator could not build cell {request.job}: {exc}")
                return
            done(values)

        self.responder(request, built, failed)

    def _mount(self, cell_id: str, ctx: Mapping[str, Any], values: Mapping[str, float]) -> None:
        channel = ctx["channel"]
        instrument = self.instruments[channel.name]
        old = self.simulation.cell_on(instrument)
        record = self.record(ctx)
        sample = portion_sample(old.material, str(ctx["charged_to"]), record, self.bench_C)
        mass_g = float(values["active_mass"]) / 1000.0 if "active_mass" in values else old.active_mass_g
        fresh = Cell(sample, active_mass_g=mass_g, temperature_C=old.temperature_C, noise_seed=old.noise_seed)
        self.simulation.mount_cell(instrument, fresh)
        with self._lock:
            self.built[cell_id] = {"portion": ctx["portion"], "instrument": instrument,
                                   "records": 0 if record is None else len(record), "state": sample.to_dict()}  # fmt: skip


def channel_instruments(lab: Any, channels: Mapping[str, Any]) -> dict[str, str]:
    """Each channel device's name -> the instrument of its lab-file cell (``channels``: lab cell
    name -> device, as :class:`~orchestrator.connect.ConnectedLab` holds them)."""
    return {device.name: lab.cell(name).instrument for name, device in channels.items()}
