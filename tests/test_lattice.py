"""Cubic lattice fits on simulated and real patterns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.lattice import (
    DIAMOND_HKL,
    LatticeFitError,
    bragg_two_theta_deg,
    d_spacing_A,
    doublet,
    fit_cubic_lattice,
    fit_pattern_lattice,
    fit_peak,
)
from analysis.patterns import read_pattern
from simulators.diffractometer import SimulatedDiffractometer

DATA = Path(__file__).parents[2] / "shared" / "data" / "xrd"


class _FixedClock:
    def now(self) -> float:
        return 1767225600.0


def _sim_pattern(tmp_path, a_A: float, seed: int = 0):
    sim = SimulatedDiffractometer(_FixedClock(), tmp_path, lambda: a_A, seed=seed)
    return sim.two_theta_deg, sim.pattern(a_A, np.random.default_rng(seed))


def _need(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real data file {name} not available")
    return path


@pytest.mark.parametrize(("a_true", "a_guess"), [(4.111, 4.13), (4.150, 4.13), (4.162, 4.18)])
def test_recovers_simulated_lattice_parameter(tmp_path, a_true, a_guess):
    x, y = _sim_pattern(tmp_path, a_true)
    fit = fit_cubic_lattice(x, y, a_guess)
    assert fit.a_A == pytest.approx(a_true, abs=0.002)
    assert 0 < fit.a_err_A < 0.002
    assert fit.n_peaks_used >= 4
    strong = {p.hkl for p in fit.peaks if p.ok}
    assert {(2, 0, 0), (2, 2, 0)} <= strong


def test_be_window_peaks_are_not_taken_for_sample_reflections(tmp_path):
    x, y = _sim_pattern(tmp_path, 4.111)
    fit = fit_cubic_lattice(x, y, 4.111)
    p200 = next(p for p in fit.peaks if p.hkl == (2, 0, 0))
    assert p200.two_theta_deg == pytest.approx(
        bragg_two_theta_deg(d_spacing_A(4.111, (2, 0, 0)), 1.54056), abs=0.01
    )


def test_zero_shift_is_fitted_when_asked(tmp_path):
    x, y = _sim_pattern(tmp_path, 4.140)
    shifted = x + 0.06  # instrument zero error
    plain = fit_cubic_lattice(shifted, y, 4.13)
    with_zero = fit_cubic_lattice(shifted, y, 4.13, fit_zero_shift=True)
    assert with_zero.zero_shift_deg == pytest.approx(0.06, abs=0.01)
    assert with_zero.a_A == pytest.approx(4.140, abs=0.002)
    assert abs(plain.a_A - 4.140) > abs(with_zero.a_A - 4.140)


def test_flat_pattern_raises_lattice_fit_error():
    x = np.linspace(20, 100, 2501)
    y = np.random.default_rng(1).poisson(300.0, x.size).astype(float)
    with pytest.raises(LatticeFitError, match="usable reflection"):
        fit_cubic_lattice(x, y, 4.13)


def test_peak_position_uncertainty_matches_scatter():
    x = np.linspace(43, 45, 200)
    centres, errors = [], []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        y = rng.poisson(doublet(x, 44.0, 0.12, 0.4, 500.0) + 200.0).astype(float)
        fit = fit_peak(x, y, 44.02, 0.8)
        centres.append(fit.two_theta_deg)
        errors.append(fit.two_theta_err_deg)
    assert np.mean(centres) == pytest.approx(44.0, abs=0.001)
    assert 0.5 < np.std(centres) / np.mean(errors) < 2.0


def test_real_nio_xrdml_gives_rock_salt_nio():
    fit = fit_pattern_lattice(read_pattern(_need("V2O5_0p4005-NiO_0p6016--8min.xrdml")), 4.15)
    assert fit.a_A == pytest.approx(4.17, abs=0.01)
    assert fit.n_peaks_used == 6


def test_real_mno_xy_gives_rock_salt_mno():
    fit = fit_pattern_lattice(read_pattern(_need("MnO.xy")), 4.42)
    assert fit.a_A == pytest.approx(4.445, abs=0.005)
    assert fit.residual_rms_deg < 0.02


def test_real_si_standard_with_diamond_reflections():
    pattern = read_pattern(_need("Si-Std_SRM640d_D8D_20-97_7_16hm.brml"))
    fit = fit_pattern_lattice(pattern, 5.42, hkl=DIAMOND_HKL)
    assert fit.a_A == pytest.approx(5.431, abs=0.005)  # NIST SRM 640d: 5.43123 A
    assert fit.n_peaks_used == 7
