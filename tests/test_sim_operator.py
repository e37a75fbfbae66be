"""The simulated operator on a lab file builds each cell from its portion as the portion's run
recorded it (orchestrator.sim_operator): the charged powder, relaxed along the recorded oven log
while the portion was in the oven, at the bench temperature otherwise."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from orchestrator.sim_operator import SimulatedBuilder, charged_powder, portion_sample
from simulators.cell import Cell
from simulators.material import load_material, resolve_material
from simulators.sample import Sample

MATERIAL = load_material(resolve_material("x04"))


def _record(oven_C: float, hold_s: float, before_s: float = 600.0) -> pd.DataFrame:
    """A portion run's record: oven log from preheat (``before_s`` on the bench) through the hold."""
    t = np.arange(0.0, before_s + hold_s + 1.0, 60.0)
    log = pd.DataFrame({"timestamp_s": t, "stream": "oven", "temperature_C": oven_C, "portion_location": None})
    moves = pd.DataFrame({"timestamp_s": [before_s, before_s + hold_s], "stream": "transfers",
                          "temperature_C": np.nan, "portion_location": ["oven1", "bench"]})  # fmt: skip
    return pd.concat([log, moves]).sort_values("timestamp_s", kind="stable").reset_index(drop=True)


def test_the_sample_is_the_charged_powder_relaxed_along_the_recorded_history() -> None:
    charged = charged_powder(MATERIAL, "4.5 V")
    assert charged.to_dict() != Sample(MATERIAL).to_dict()  # charged: Ni and O hold charge
    assert portion_sample(MATERIAL, "4.5 V", None).to_dict() == charged.to_dict()  # nothing recorded
    states = [portion_sample(MATERIAL, "4.5 V", _record(140.0, s)).state.converted_total_mAh_g
              for s in (90.0, 600.0, 3600.0)]  # fmt: skip
    assert states[0] < states[1] < states[2]  # longer holds convert more
    warm = portion_sample(MATERIAL, "4.5 V", _record(80.0, 3600.0)).state.converted_total_mAh_g
    assert warm < states[2]  # a cooler oven converts less
    # the same as relaxing by hand: bench before the load, the hold at 140 C
    by_hand = charged_powder(MATERIAL, "4.5 V")
    by_hand.relax_history([0.0, 600.0, 600.0, 4200.0, 4200.0], [25.0, 25.0, 140.0, 140.0, 25.0])
    assert portion_sample(MATERIAL, "4.5 V", _record(140.0, 3600.0)).state.converted_total_mAh_g == pytest.approx(
        by_hand.state.converted_total_mAh_g, rel=1e-9)  # fmt: skip


class _Simulation:
    def __init__(self) -> None:
        self.instruments = {"smu-a": object()}
        self.cells = {"smu-a": Cell(Sample(MATERIAL), 0.007)}

    def cell_on(self, name: str) -> Cell:
        return self.cells[name]

    def mount_cell(self, name: str, cell: Cell) -> None:
        self.cells[name] = cell


def _build(channel: str, **context: object) -> SimpleNamespace:
    ctx = {"action": "build_cell", "portion": "P1", "charged_to": "4.5 V", "channel": SimpleNamespace(name=channel)}
    return SimpleNamespace(job="C1", context={**ctx, **context})


def test_the_builder_mounts_the_portions_cell_with_the_recorded_mass_and_leaves_the_rest_alone() -> None:
    sim = _Simulation()
    asked: list[str] = []

    def operator(request: SimpleNamespace, done: object, failed: object) -> None:
        asked.append(request.job)
        done({"active_mass": 4.5})  # type: ignore[operator]

    records: list[object] = []
    builder = SimulatedBuilder(operator, sim, {"pos0": "smu-a", "pos9": "real-smu"},
                               lambda ctx: records.append(ctx["portion"]) or _record(140.0, 600.0))  # fmt: skip
    answers: list[object] = []
    builder(_build("pos0"), answers.append, answers.append)
    assert answers == [{"active_mass": 4.5}] and asked == ["C1"] and records == ["P1"]
    cell = sim.cells["smu-a"]
    assert cell.active_mass_g == pytest.approx(0.0045)
    expected = portion_sample(MATERIAL, "4.5 V", _record(140.0, 600.0)).to_dict()
    assert cell.sample.to_dict() == pytest.approx(expected)
    # a real channel, another request, or a campaign without a charged powder: the operator only
    before = sim.cells["smu-a"]
    for request in (_build("pos9"), _build("pos0", action="restore_cell"), _build("pos0", charged_to=None)):
        builder(request, answers.append, answers.append)
    assert sim.cells["smu-a"] is before and records == ["P1"] and len(answers) == 4


def test_a_record_that_cannot_be_read_fails_the_build_with_its_reason() -> None:
    def unreadable(ctx: object) -> None:
        raise LookupError("portion run abc is neither in this station's journal nor on a Tiled server")

    builder = SimulatedBuilder(lambda r, done, f: done({"active_mass": 5.0}), _Simulation(), {"pos0": "smu-a"}, unreadable)
    failed: list[str] = []
    builder(_build("pos0"), lambda values: None, failed.append)
    assert len(failed) == 1 and "could not build cell C1" in failed[0] and "portion run abc" in failed[0]
