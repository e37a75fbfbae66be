"""The paper's relaxation protocol end to end on the simulated lab (in-process)."""

from __future__ import annotations

import numpy as np
import pytest
from event_model import DocumentNames, schema_validators

from orchestrator.summary import relaxation_summary


def test_capacities_match_the_paper(paper_run) -> None:
    _, _, _, frame, _ = paper_run
    s = relaxation_summary(frame)
    # docs/model.md: first charge ~290 mAh/g; in-cycling Ni plateau ~70, O plateau ~150 mAh/g;
    # a 24 h room-temperature rest converts ~12 % of the Ni intermediate.
    assert 270 < s["charge_capacity_mAh_g"] < 300
    assert s["charge_end_voltage_V"] == pytest.approx(4.8, abs=1e-3)
    assert 55 < s["ni_plateau_mAh_g"] < 72
    assert 140 < s["o_plateau_mAh_g"] < 165
    assert s["rest_duration_h"] == pytest.approx(24.0, abs=1e-6)
    # relaxed towards E_eq + (s + M) f_Ni (about 4.39 V for the 4.8 V intermediate), minus LMCT
    assert 4.2 < s["rest_end_voltage_V"] < 4.6


def test_steps_end_at_their_cutoffs_and_hand_over_without_delay(paper_run) -> None:
    _, _, _, frame, _ = paper_run
    steps = [g for _, g in frame.groupby("step")]
    charge, rest, discharge = steps
    assert list(frame.groupby("step")["step_type"].first()) == ["cc", "rest", "cc"]
    # Charge on a 2450: the voltage limit clamps at 4.8 V; the host sees it within a poll.
    assert charge["voltage_V"].max() <= 4.8 + 1e-6
    # Discharge ends within one poll interval (1 s at 20 mA/g) of crossing 1.85 V.
    assert 1.85 - 0.01 < discharge["voltage_V"].iloc[-1] <= 1.85
    # Hand-over: the next step starts at the instant the previous one ended.
    assert rest["time_s"].iloc[0] == pytest.approx(charge["time_s"].iloc[-1], abs=1e-9)
    assert discharge["time_s"].iloc[0] == pytest.approx(rest["time_s"].iloc[-1], abs=1e-9)
    # Current sign convention: positive on charge, negative on discharge, zero at rest.
    # The last charge point is read with the 2450 holding the cell at its voltage limit: the
    # hold current that flows there, decaying from the set current, not 0.
    assert (charge["current_A"] > 0).all()
    assert charge["current_A"].iloc[-1] <= charge["current_A"].iloc[-2] * (1 + 1e-9)
    assert (discharge["current_A"] < 0).all()
    assert np.allclose(rest["current_A"], 0.0)
    assert charge["specific_current_mA_g"].iloc[1] == pytest.approx(20.0)


def test_every_document_is_valid_event_model(paper_run) -> None:
    _, _, _, _, docs = paper_run
    names = [name for name, _ in docs]
    assert names[0] == "start" and names[-1] == "stop"
    assert "event_page" in names
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
    stop = docs[-1][1]
    assert stop["exit_status"] == "success"


def test_start_document_describes_the_experiment(paper_run) -> None:
    _, _, start, _, _ = paper_run
    assert start["sample"] == "s1" and start["cell"] == "cell-1"
    assert start["active_mass_g"] == pytest.approx(0.007)
    assert start["protocol"] == "relaxation"
    assert start["protocol_parameters"]["rest_s"] == 86400.0
    assert start["protocol_parameters"]["charge_current_mA_g"] == 20.0
    assert [s["kind"] for s in start["steps"]] == ["cc", "rest", "cc"]


def test_tiled_holds_the_same_data_as_the_journal(paper_run) -> None:
    session, uid, _, journal_frame, _ = paper_run
    start, tiled_frame = session.read(uid, source="tiled")
    assert start["uid"] == uid
    assert len(tiled_frame) == len(journal_frame)
    for column in ("time_s", "voltage_V", "current_A", "capacity_mAh_g", "step"):
        np.testing.assert_allclose(tiled_frame[column], journal_frame[column])


def test_same_protocol_and_seed_give_identical_data(paper_run, tmp_path) -> None:
    from orchestrator.lab import load_lab
    from orchestrator.runner import Session
    from protocols.plans import relaxation_protocol

    _, _, _, first, _ = paper_run
    session = Session(load_lab("simulated"), data_dir=tmp_path, tiled=False)
    try:
        (uid,) = session.run(relaxation_protocol(session.channel(), md={"sample": "s1", "cell": "cell-1"}))
        _, second = session.read(uid)
    finally:
        session.close()
    assert first.equals(second)
