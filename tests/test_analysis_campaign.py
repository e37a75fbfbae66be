"""Campaign summaries and the relaxation-kinetics fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

from analysis.campaign import campaign_table, cell_measures, summarise_conditions
from analysis.kinetics import fit_kinetics_arrays, fit_relaxation_kinetics, rate_constant, remaining_fraction
from analysis.synthetic import rest, standard_cycle, synthetic_run

TRUE = {"k413_per_s": 3.61e-3, "ea_J_mol": 65.8e3, "beta": 6.34}


def test_summary_mean_and_std_per_condition(tmp_path):
    table = pd.DataFrame(
        {
            "temperature_C": [25, 25, 25, 140, 140, 140],
            "duration_s": [86400] * 6,
            "replicate": [1, 2, 3, 1, 2, 3],
            "ni_plateau_mAh_g": [60.0, 62.0, 64.0, 5.0, 6.0, 7.0],
            "o_plateau_mAh_g": [150.0, 150.0, 150.0, 190.0, 192.0, 194.0],
            "ocv_V": [4.0, 4.1, 4.2, 3.75, 3.76, 3.77],
        }
    )
    csv = tmp_path / "sub" / "summary.csv"
    summary = summarise_conditions(table, csv_path=csv)
    assert list(summary["temperature_C"]) == [25, 140]
    assert list(summary["n"]) == [3, 3]
    np.testing.assert_allclose(summary["ni_plateau_mAh_g_mean"], [62.0, 6.0])
    np.testing.assert_allclose(summary["ni_plateau_mAh_g_std"], [2.0, 1.0])
    np.testing.assert_allclose(summary["o_plateau_mAh_g_std"], [0.0, 2.0])
    np.testing.assert_allclose(summary["ocv_V_mean"], [4.1, 3.76])
    pd.testing.assert_frame_equal(pd.read_csv(csv), summary, check_dtype=False)
    assert "replicate" not in summary.columns


def test_cell_measures_from_a_relaxed_cell_run():
    # a fresh relaxed cell: 15 min OCV rest, then discharge
    parts = [rest(900.0, 3.9, 3.85, 901), *standard_cycle(30.0, 180.0)[2:]]
    runs = [({"cell": "A1", "temperature_C": 80.0, "duration_s": 86400.0}, synthetic_run(parts))]
    row = cell_measures(*runs[0])
    assert row["ni_plateau_mAh_g"] == pytest.approx(30.0, abs=1e-6)
    assert row["o_plateau_mAh_g"] == pytest.approx(180.0, abs=1e-6)
    assert row["ocv_V"] == pytest.approx(3.85 + 0.05 * np.exp(-5 * 900 / 900), abs=1e-3)
    table = campaign_table(runs)
    assert table.loc[0, "cell"] == "A1" and table.loc[0, "temperature_C"] == 80.0


def test_remaining_fraction_matches_numerical_integration_and_the_calibration_targets():
    k = rate_constant(110.0, TRUE["k413_per_s"], TRUE["ea_J_mol"])
    sol = solve_ivp(
        lambda t, u: -k * np.exp(-TRUE["beta"] * (1 - u)) * u, (0, 3e5), [0.8], rtol=1e-10, atol=1e-12,
        t_eval=[600, 3600, 86400, 3e5],
    )  # fmt: skip
    ours = remaining_fraction(sol.t, 110.0, **TRUE, u0=0.8)
    np.testing.assert_allclose(ours, sol.y[0], rtol=1e-7)
    # docs/model.md: 24 h at 25/50/80/110/140 C converts 12/33/59/79/92 %
    converted = 1 - remaining_fraction(86400.0, [25, 50, 80, 110, 140], **TRUE)
    np.testing.assert_allclose(converted, [0.12, 0.33, 0.59, 0.79, 0.92], atol=0.006)


def synthetic_campaign(seed: int, noise: float = 0.01) -> pd.DataFrame:
    temps = [25, 50, 80, 110, 140] + [140] * 6
    times = [86400] * 5 + [90, 900, 3600, 4 * 3600, 12 * 3600, 0]
    rows = []
    rng = np.random.default_rng(seed)
    for temp, t in zip(temps, times, strict=True):
        for rep in range(3):
            u = remaining_fraction(t, temp, **TRUE)
            rows.append(
                {"temperature_C": temp, "duration_s": t, "replicate": rep,
                 "ni_plateau_mAh_g": 70.0 * (u + rng.normal(0, noise))}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_kinetics_fit_recovers_known_parameters_within_their_errors():
    table = synthetic_campaign(seed=11)
    fit = fit_relaxation_kinetics(table, ni_reference_mAh_g=70.0)
    for name, err in (("k413_per_s", "k413_stderr"), ("ea_J_mol", "ea_stderr"), ("beta", "beta_stderr")):
        value, se = getattr(fit, name), getattr(fit, err)
        assert 0 < se < 0.2 * abs(value), name  # informative errors
        assert abs(value - TRUE[name]) < 3 * se, name
    assert fit.rms_residual == pytest.approx(0.01, rel=0.35)
    assert fit.n == len(table)


def test_kinetics_fit_errors_shrink_with_less_noise():
    quiet = fit_kinetics_arrays(*_arrays(synthetic_campaign(seed=2, noise=0.002)))
    loud = fit_kinetics_arrays(*_arrays(synthetic_campaign(seed=2, noise=0.02)))
    assert quiet.ea_stderr < loud.ea_stderr / 4
    assert abs(quiet.ea_J_mol - TRUE["ea_J_mol"]) < 3 * quiet.ea_stderr


def _arrays(table: pd.DataFrame):
    return table["duration_s"], table["temperature_C"], table["ni_plateau_mAh_g"] / 70.0


def test_kinetics_fit_needs_enough_cells():
    with pytest.raises(ValueError, match="at least 4"):
        fit_kinetics_arrays([0, 90, 900], [140, 140, 140], [1.0, 0.8, 0.6])
