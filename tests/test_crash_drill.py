"""The crash drill in small: a campaign on TCP-served EmStat4 and Keithley 2450 channels, its
orchestrator SIGKILLed at three seeded random moments (charge, rest or discharge), the instruments
left alone for a random while each time, resumed after each kill.

The served lab's time moves only as the orchestrator waits (``sim serve --stepped``), so the kill
moments and every figure are the same on every run, on any machine load.
``python -m benchmarks.drill_random_kills`` runs the full drill (20 kills and more).
"""

from __future__ import annotations

import random

import pytest

from benchmarks.drill_random_kills import LIMITS_V, killed_campaign, reference

pytestmark = pytest.mark.tcp


def test_three_random_kills_lose_and_double_nothing_and_end_within_1_percent(tmp_path) -> None:
    ref, span = reference(tmp_path / "reference")
    assert not ref["failed"]
    kills, cells = killed_campaign(tmp_path / "killed", 1, ref, tmp_path / "reference" / "data", span,
                                   random.Random(74), kills=3, max_dead_s=900.0)  # fmt: skip
    # seed 74 kills once in each phase
    assert [set(k.phases.values()) for k in kills] == [{"charge"}, {"rest"}, {"discharge"}]
    low, high = LIMITS_V
    for cell in cells:
        assert cell.failed is None, cell
        assert cell.runs == 4  # the first run and one resumed run per kill
        assert cell.lost == 0 and cell.doubled == 0, cell
        # what the EmStat4 sent while its host was dying never reached it: counted, never hidden
        assert cell.counted == cell.in_transit, cell
        assert low <= cell.v_min and cell.v_max <= high, cell  # inside the cells' limits
        assert cell.past_cut_off == 0, cell  # each step stopped at the first point past its cut-off
        assert abs(cell.charge_dev_pct) <= 1.0 and abs(cell.discharge_dev_pct) <= 1.0, cell
