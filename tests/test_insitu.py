"""In-situ XRD with cycling and relaxation, and out-of-electrolyte relaxation, on the simulated lab.

The in-situ run reproduces the paper's picture: two cycles at 20 mA/g between 2.0 and 4.8 V
with a 24 h open-circuit rest after the first charge, one pattern every 20 minutes, the
lattice parameter joined with the cycling data on the shared clock.
"""

from __future__ import annotations

import numpy as np
import pytest
from bluesky.utils import FailedStatus
from event_model import DocumentNames, schema_validators

from analysis.insitu import lattice_vs_li
from drivers.techniques import ConstantCurrent, Cutoffs, Rest
from orchestrator.insitu_lab import build_insitu_rig, points_frame, xrd_frame
from protocols.insitu import XRD_STREAM, insitu_xrd_protocol, out_of_electrolyte_relaxation
from protocols.plans import charge

SCAN_S = 1200.0
REST_S = 24 * 3600.0
RECORD_S = 60.0
I_mA_g = 20.0


def _cycle_steps() -> list:
    cc = ConstantCurrent
    return [
        cc(I_mA_g, Cutoffs(voltage_V=4.8), RECORD_S),
        Rest(REST_S, RECORD_S),
        cc(-I_mA_g, Cutoffs(voltage_V=2.0), RECORD_S),
        cc(I_mA_g, Cutoffs(voltage_V=4.8), RECORD_S),
        cc(-I_mA_g, Cutoffs(voltage_V=2.0), RECORD_S),
    ]


@pytest.fixture(scope="module")
def insitu(tmp_path_factory):
    rig = build_insitu_rig(tmp_path_factory.mktemp("insitu"), scan_time_s=SCAN_S, seed=11)
    (uid,) = rig.run(
        insitu_xrd_protocol(rig.channel, rig.diffractometer, _cycle_steps(), md={"sample": "s1"})
    )
    docs = rig.documents(uid)
    points = points_frame(docs)
    scans = xrd_frame(docs)
    # Only scans measured entirely inside one step describe that step.
    bounds = points.groupby("step")["time_s"].agg(["min", "max"])
    scans["step"] = -1
    for step, (t0, t1) in bounds.iterrows():
        inside = (scans["scan_start_s"] >= t0) & (scans["scan_end_s"] <= t1)
        scans.loc[inside, "step"] = step
    joined = lattice_vs_li(points, scans[["time_s", "lattice_A", "lattice_err_A", "step"]])
    return rig, docs, points, scans, joined


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    r2 = 1.0 - np.sum(residual**2) / np.sum((y - y.mean()) ** 2)
    return float(slope), float(r2)


def test_one_run_with_points_and_scans_interleaved_on_the_clock(insitu) -> None:
    rig, docs, points, scans, _ = insitu
    names = [n for n, _ in docs]
    assert names.count("start") == 1 and names.count("stop") == 1
    assert docs[-1][1]["exit_status"] == "success"
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    assert sorted(streams.values()) == ["primary", XRD_STREAM]
    # Scans arrive while the steps run: xrd events sit between pages of points.
    order = [streams[d["descriptor"]] for n, d in docs if n in ("event", "event_page")]
    first_page, last_page = order.index("primary"), len(order) - 1 - order[::-1].index("primary")
    between = order[first_page:last_page].count(XRD_STREAM)
    assert between >= 0.9 * order.count(XRD_STREAM) > 100
    # Scans follow each other every scan_time on the clock, across rests and step changes,
    # and each event is stamped with its scan's end, inside the points' time span.
    assert np.allclose(np.diff(scans["scan_end_s"]), SCAN_S)
    assert np.allclose(scans["scan_end_s"] - scans["scan_start_s"], SCAN_S)
    events = [d for n, d in docs if n == "event" and streams[d["descriptor"]] == XRD_STREAM]
    origin = docs[0][1]["clock_start_s"]
    stamps = np.array([e["timestamps"]["xrd_lattice_A"] for e in events]) - origin
    assert np.allclose(stamps, scans["scan_end_s"])
    assert points["time_s"].min() < stamps.min() and stamps.max() <= points["time_s"].max()
    # Every step of the protocol is in the points, the rest included.
    assert list(points.groupby("step")["step_type"].first()) == ["cc", "rest", "cc", "cc", "cc"]
    assert rig.keithley.output_on is False  # open circuit at the end


def test_documents_validate_against_the_event_model_schemas(insitu) -> None:
    _, docs, *_ = insitu
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(_plain(doc))


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def test_lattice_shrinks_linearly_in_the_ni_region_and_stays_flat_in_the_o_region(insitu) -> None:
    *_, joined = insitu
    first_charge = joined[joined["step"] == 0]
    ni = first_charge[first_charge["voltage_V"] < 4.25]  # sloping Ni2+ -> Ni3+/4+ region
    o = first_charge[(first_charge["voltage_V"] > 4.33) & (first_charge["voltage_V"] < 4.5)]  # O plateau
    assert len(ni) >= 5 and len(o) >= 10
    ni_slope, r2 = _fit_line(ni["li_content"].to_numpy(), ni["lattice_A"].to_numpy())
    o_slope, _ = _fit_line(o["li_content"].to_numpy(), o["lattice_A"].to_numpy())
    assert r2 > 0.95
    assert ni_slope > 0  # Li removed (x falls) -> a shrinks
    assert abs(o_slope) < 0.1 * ni_slope


def test_end_of_charge_to_4p8_V_is_4p111_A(insitu) -> None:
    _, _, points, scans, _ = insitu
    # The scan straddling the cut-off mixes charge and rest; the electrode as charged is the
    # first scan measured entirely at open circuit, starting within one scan of the cut-off.
    end_of_charge = points.loc[points["step"] == 0, "time_s"].max()
    first_rest = scans[scans["step"] == 1].iloc[0]
    assert first_rest["scan_start_s"] - end_of_charge <= SCAN_S
    assert abs(first_rest["lattice_A"] - 4.111) <= 0.005 + first_rest["lattice_err_A"]


def test_structural_hysteresis_between_charge_and_discharge_in_the_o_region(insitu) -> None:
    *_, joined = insitu
    charge2 = joined[(joined["step"] == 3) & (joined["voltage_V"] > 4.33)].sort_values("li_content")
    discharge2 = joined[(joined["step"] == 4) & (joined["voltage_V"] < 2.5)]
    lo, hi = charge2["li_content"].min(), charge2["li_content"].max()
    common = discharge2[(discharge2["li_content"] > lo) & (discharge2["li_content"] < hi)]
    assert len(common) >= 3, "charge and discharge O regions overlap in Li content"
    a_charge = np.interp(common["li_content"], charge2["li_content"], charge2["lattice_A"])
    gap = common["lattice_A"].to_numpy() - a_charge
    error = 3 * (common["lattice_err_A"].to_numpy() + charge2["lattice_err_A"].max())
    assert np.all(np.abs(gap) > error)
    # After the Ni intermediate is reduced at the start of discharge, a is larger than on
    # charge at the same Li content: the lattice does not retrace its path.
    assert np.all(gap > 0)


def test_relaxation_at_open_circuit_moves_the_peaks_to_lower_angle(insitu) -> None:
    _, _, _, scans, joined = insitu
    rest = scans[scans["step"] == 1]
    assert len(rest) >= REST_S / SCAN_S - 2
    first, last = rest.iloc[0], rest.iloc[-1]
    assert last["lattice_A"] - first["lattice_A"] > 3 * (first["lattice_err_A"] + last["lattice_err_A"])
    # It keeps going the same way through the day (no step back beyond the noise).
    a = rest["lattice_A"].to_numpy()
    assert np.all(np.diff(a) > -3 * rest["lattice_err_A"].to_numpy()[1:])
    # Seen directly in the patterns: the strongest reflection's centroid moves to lower 2theta.
    assert _centroid_deg(last) < _centroid_deg(first)
    # The voltage relaxes at open circuit while this happens (one time axis).
    v = joined.loc[joined["step"] == 1, "voltage_V"].to_numpy()
    assert v[-1] < v[0]


def _centroid_deg(scan) -> float:
    x, y = np.asarray(scan["two_theta"]), np.asarray(scan["intensity"])
    peak = x[np.argmax(np.where((x > 40) & (x < 48), y, 0))]
    window = np.abs(x - peak) < 0.6
    base = np.median(y[(x > 50) & (x < 55)])
    return float(np.sum(x[window] * (y[window] - base)) / np.sum(y[window] - base))


def test_out_of_electrolyte_relaxation_heated_then_xrd(tmp_path) -> None:
    rig = build_insitu_rig(tmp_path, scan_time_s=SCAN_S, seed=5)
    rig.run(charge(rig.channel, I_mA_g, voltage_V=4.8, record_interval_s=600.0))
    charged = rig.cell.sample.copy()
    a_charged = charged.lattice_A()
    t_charged = rig.clock.now()
    (uid,) = rig.run(
        out_of_electrolyte_relaxation(
            rig.exsitu, rig.operator, 24 * 3600.0, 55.0, stage=rig.stage, n_scans=2, log_interval_s=3600.0
        )
    )
    docs = rig.documents(uid)
    assert docs[-1][1]["exit_status"] == "success"
    start = docs[0][1]
    assert start["temperature_C"] == 55.0 and start["handling"] == ["recover", "wash", "dry"]
    assert [step for _, step in rig.operator.log] == ["recover", "wash", "dry", "mount"]
    scans = xrd_frame(docs)
    assert len(scans) == 2
    # The scans start after the electrode was mounted, not before (no stale in-situ scans).
    mounted = rig.operator.log[-1][0] - start["clock_start_s"]
    assert scans["scan_start_s"].min() >= mounted - 1e-6
    # The fitted lattice is the model's (the scan-averaged value the simulator used) ...
    truth = [record.lattice_A for record in rig.exsitu_sim.written]
    assert np.allclose(scans["lattice_A"], truth, atol=0.003)
    # ... grew by relaxing, and more than the same electrode would have at 25 C.
    at_25 = charged.copy()
    at_25.relax(float(scans["scan_end_s"].iloc[-1] + start["clock_start_s"] - t_charged), 25.0)
    err = scans["lattice_err_A"].max()
    assert scans["lattice_A"].iloc[-1] > at_25.lattice_A() + 3 * err > a_charged + 3 * err
    # The stage was read at temperature during the hold, then cooled.
    temps = [
        d["data"]["stage_temperature"] for n, d in docs if n == "event" and "stage_temperature" in d["data"]
    ]
    assert temps[0] == 55.0 and temps[-1] == 25.0 and len(temps) == 1 + 24 + 1


def test_a_diffractometer_that_stops_exporting_fails_the_run_at_open_circuit(tmp_path) -> None:
    rig = build_insitu_rig(tmp_path, scan_time_s=SCAN_S)
    rig.diffractometer.before_poll = rig.catch_up_cell  # the scan job is not running
    # The RunEngine raises the step's "stopped" status; the stop document has the cause.
    with pytest.raises((TimeoutError, FailedStatus)):
        rig.run(insitu_xrd_protocol(rig.channel, rig.diffractometer, [Rest(6 * 3600.0, RECORD_S)]))
    stop = rig.docs[-1][1]
    assert rig.docs[-1][0] == "stop" and stop["exit_status"] == "fail"
    assert "no finished scan appeared" in stop["reason"]
    assert rig.keithley.output_on is False
    # The points measured until then are in the run: the XRD timeout is 2 scan times.
    frame = points_frame(rig.docs)
    assert frame["time_s"].max() == pytest.approx(2 * SCAN_S, abs=RECORD_S + 1)
