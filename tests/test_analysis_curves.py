"""Known answers on synthetic curves: steps, cycles, plateaus, dQ/dV, OCV, GITT, lattice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import schema as S
from analysis.cycles import cycle_table
from analysis.dqdv import DQDV, dqdv, dqdv_by_segment
from analysis.gitt import gitt_gap, gitt_rest_ends, has_gitt
from analysis.insitu import lattice_vs_li
from analysis.ocv import fit_ocv_line, ocv_before_discharge, rest_voltages
from analysis.plateaus import discharge_plateaus, plateau_capacities
from analysis.steps import annotate, step_table
from analysis.synthetic import DISCHARGE_V, cc, rest, standard_cycle, synthetic_run

MASS_G = 0.007


def two_cycles(noise_V: float = 0.0) -> pd.DataFrame:
    parts = standard_cycle(60.0, 140.0, ocv_V=4.0) + standard_cycle(45.0, 170.0, ocv_V=3.9)
    return synthetic_run(parts, active_mass_g=MASS_G, noise_V=noise_V, seed=3)


def test_step_table_and_cycles_from_step_column():
    table = step_table(two_cycles())
    assert list(table["direction"]) == ["charge", "rest", "discharge"] * 2
    assert list(table["cycle"]) == [1, 1, 1, 2, 2, 2]
    np.testing.assert_allclose(table["capacity_mAh_g"], [280, 0, 210, 280, 0, 225], atol=1e-9)


def test_cycle_table_capacities_and_plateaus():
    cyc = cycle_table(two_cycles())
    np.testing.assert_allclose(cyc["charge_mAh_g"], [280, 280], atol=1e-9)
    np.testing.assert_allclose(cyc["discharge_mAh_g"], [210, 225], atol=1e-9)
    np.testing.assert_allclose(cyc["ni_plateau_mAh_g"], [60, 45], atol=1e-6)
    np.testing.assert_allclose(cyc["o_plateau_mAh_g"], [140, 170], atol=1e-6)
    np.testing.assert_allclose(cyc["coulombic_efficiency"], [210 / 280, 225 / 280])


def test_segmentation_from_current_sign_when_file_has_no_steps():
    bare = two_cycles()[[S.TIME, S.VOLTAGE, S.CURRENT]]
    table = step_table(annotate(bare, active_mass_g=MASS_G))
    assert list(table["direction"]) == ["charge", "rest", "discharge"] * 2
    assert list(table["cycle"]) == [1, 1, 1, 2, 2, 2]
    # capacity integrated from a constant current is exact
    np.testing.assert_allclose(table["capacity_mAh_g"], [280, 0, 210, 280, 0, 225], rtol=1e-6)


def test_positive_discharge_capacity_gives_the_same_plateaus():
    df = two_cycles()
    flipped = df.assign(**{S.CAPACITY: df[S.CAPACITY].abs()})
    pd.testing.assert_frame_equal(discharge_plateaus(df), discharge_plateaus(flipped))


def test_plateau_windows_are_configurable():
    v_knots = DISCHARGE_V  # 4.8, 4.5, 3.6, 2.5, 2.0, 1.85
    q_knots = (0, 10, 60, 70, 190, 200)
    q = np.linspace(0, 200, 4001)
    v = np.interp(q, q_knots, v_knots)
    got = plateau_capacities(v, -q, ni_window_V=(4.5, 3.0))
    # 4.5 -> 3.6 V spans 50 mAh/g; 3.6 -> 3.0 V is 0.6/1.1 of the next 10 mAh/g
    assert got["ni_plateau_mAh_g"] == pytest.approx(50 + 10 * 0.6 / 1.1, abs=1e-9)
    assert got["o_plateau_mAh_g"] == pytest.approx(130, abs=1e-9)
    assert got["total_mAh_g"] == pytest.approx(200, abs=1e-9)


def test_plateaus_are_robust_to_voltage_noise():
    cyc = discharge_plateaus(two_cycles(noise_V=0.005))
    np.testing.assert_allclose(cyc["ni_plateau_mAh_g"], [60, 45], atol=1.0)
    np.testing.assert_allclose(cyc["o_plateau_mAh_g"], [140, 170], atol=1.0)


def gaussian_discharge(centres=(3.8, 2.2), widths=(0.03, 0.05), caps=(70.0, 150.0), n=20000):
    """Discharge whose dQ/dV is a sum of Gaussians: Q(V) is a sum of error functions."""
    from scipy.special import erf

    v = np.linspace(4.6, 1.9, n)
    q = np.zeros_like(v)
    for c, w, a in zip(centres, widths, caps, strict=True):
        q += a * 0.5 * (1 - erf((v - c) / (np.sqrt(2) * w)))
    return v, q


def test_dqdv_peaks_stay_at_known_voltages_after_smoothing():
    v, q = gaussian_discharge()
    rng = np.random.default_rng(1)
    noisy_v = v + rng.normal(0, 0.002, v.size)
    d = dqdv(noisy_v, -q, bin_width_V=0.005, smooth_window_V=0.04)
    assert (d[DQDV] <= 0.5).all() and d[DQDV].min() < -500  # discharge peaks are negative
    for centre in (3.8, 2.2):
        near = d[(d[S.VOLTAGE] - centre).abs() < 0.15]
        peak_v = near[S.VOLTAGE].to_numpy()[np.argmin(near[DQDV].to_numpy())]
        assert abs(peak_v - centre) < 0.010
    # the area under each peak is its capacity
    area = -np.trapezoid(d[DQDV], d[S.VOLTAGE])
    assert area == pytest.approx(220, rel=0.03)


def test_dqdv_of_a_charge_is_positive_and_per_segment_table_has_both_directions():
    df = two_cycles()
    d = dqdv_by_segment(df)
    assert set(d["direction"]) == {"charge", "discharge"}
    assert (d.loc[d["direction"] == "charge", DQDV] > -1e-6).all()
    # charge: 3.0 -> 4.4 V over 120 mAh/g, so the slope region is 120/1.4 mAh/g/V
    mid = d[(d["direction"] == "charge") & (d[S.VOLTAGE].between(3.3, 4.1)) & (d["cycle"] == 1)]
    np.testing.assert_allclose(mid[DQDV], 120 / 1.4, rtol=1e-3)


def test_rest_voltage_at_a_chosen_time():
    parts = [
        cc((0, 100), (3.0, 4.5)),
        rest(3600.0, 4.5, 4.0, n=3601, tau_s=600.0),
        cc((0, 100), (4.3, 3.0), -20),
    ]
    df = synthetic_run(parts)
    rests = rest_voltages(df, rest_time_s=900.0)
    assert len(rests) == 1
    # the rest's first point is logged 1 s after the charge ended
    expected = 4.0 + 0.5 * np.exp(-(900.0 - 1.0) / 600.0)
    assert rests["voltage_V"].iloc[0] == pytest.approx(expected, abs=1e-4)
    assert rests["next_direction"].iloc[0] == "discharge"
    assert ocv_before_discharge(df, 900.0) == pytest.approx(expected, abs=1e-4)
    assert np.isnan(rest_voltages(df, rest_time_s=7200.0)["voltage_V"].iloc[0])


def test_ocv_line_recovers_intercept_and_slope():
    x = np.linspace(0.05, 0.9, 12)
    exact = fit_ocv_line(x, 3.74 + 0.52 * x)
    assert exact.intercept == pytest.approx(3.74, abs=1e-12)
    assert exact.slope == pytest.approx(0.52, abs=1e-12)
    rng = np.random.default_rng(7)
    noisy = fit_ocv_line(x, 3.74 + 0.52 * x + rng.normal(0, 0.01, x.size))
    assert 0 < noisy.intercept_stderr < 0.02
    assert abs(noisy.intercept - 3.74) < 3 * noisy.intercept_stderr
    assert abs(noisy.slope - 0.52) < 3 * noisy.slope_stderr
    with pytest.raises(ValueError, match="at least 3"):
        fit_ocv_line([0.1, 0.2], [3.8, 3.9])


def gitt_run() -> pd.DataFrame:
    """Ten 10 mAh/g charge pulses then ten discharge pulses; rests relax to OCV +- 0.2 V."""
    parts = []
    for k in range(10):
        q0 = 10.0 * k
        parts += [cc((q0, q0 + 10), (3.8 + 0.004 * q0, 3.9 + 0.004 * q0), 20, 50)]
        parts += [rest(8 * 3600.0, 3.9 + 0.004 * q0, 3.7 + 0.004 * (q0 + 10), 40, tau_s=1800)]
    for k in range(10):
        q0 = 100.0 - 10.0 * k
        parts += [cc((0, 10), (3.2 + 0.004 * q0, 3.1 + 0.004 * q0), -20, 50)]
        parts += [rest(8 * 3600.0, 3.1 + 0.004 * q0, 3.3 + 0.004 * (q0 - 10), 40, tau_s=1800)]
    return synthetic_run(parts)


def test_gitt_end_of_rest_voltages_and_gap():
    ends = gitt_rest_ends(gitt_run())
    assert list(ends["direction"]) == ["charge"] * 10 + ["discharge"] * 10
    np.testing.assert_allclose(
        ends["soc_mAh_g"], list(range(10, 101, 10)) + list(range(90, -1, -10)), atol=1e-9
    )
    gap = gitt_gap(ends)
    # end of 8 h rest with tau 0.5 h: within exp(-16) of the asymptotes, 3.7+0.004q and 3.3+0.004q
    np.testing.assert_allclose(gap["gap_V"], 0.4, atol=1e-5)
    np.testing.assert_allclose(gap["mid_V"], 3.5 + 0.004 * gap["soc_mAh_g"], atol=1e-5)
    assert has_gitt(gitt_run())
    assert not has_gitt(two_cycles())


def test_gitt_pulses_inside_one_step_are_split():
    df = gitt_run()
    # one "gitt" step per direction, capacity counted from the start of that step
    df[S.STEP] = np.where(np.arange(len(df)) < len(df) // 2, 0, 1)
    inc = df[S.CAPACITY].diff().abs().fillna(0).where(df[S.STEP_TYPE].eq("cc"), 0)
    inc[df[S.STEP_TYPE].eq("cc") & df[S.STEP_TYPE].shift().ne("cc")] = 0
    sign = np.where(df[S.STEP] == 0, 1, -1)
    df[S.CAPACITY] = inc.groupby(df[S.STEP]).cumsum() * sign
    df[S.STEP_TYPE] = "gitt"
    table = step_table(df)
    assert (table["direction"] != "rest").sum() == 20
    np.testing.assert_allclose(table.loc[table["direction"] != "rest", "capacity_mAh_g"], 10, atol=1e-9)
    gap = gitt_gap(gitt_rest_ends(df))
    np.testing.assert_allclose(gap["gap_V"], 0.4, atol=1e-5)


def test_lattice_joined_on_time_gives_li_content():
    df = synthetic_run([cc((0, 280), (3.0, 4.6), 20, 1000)])
    end = df[S.TIME].iloc[-1]
    lattice = pd.DataFrame({S.TIME: [end * 0.5, 0.0, end, end + 100], "lattice_A": [4.13, 4.15, 4.11, 4.11]})
    j = lattice_vs_li(df, lattice, mah_g_per_li=324.6, li_start=1.17)
    assert list(j[S.TIME]) == sorted(lattice[S.TIME])
    np.testing.assert_allclose(j["li_content"].iloc[:3], [1.17, 1.17 - 140 / 324.6, 1.17 - 280 / 324.6])
    np.testing.assert_allclose(j[S.VOLTAGE].iloc[1], 3.8, atol=1e-9)
    assert np.isnan(j["li_content"].iloc[3])  # after the cycling data ends
