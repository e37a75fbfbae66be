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
from simulators.xrd import SimulatedDiffractometer

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


def test_doublet_and_single_line_fits_batched_together_give_what_separate_fits_give(tmp_path, monkeypatch):
    import analysis.lattice as lattice
    from analysis.peak_fit import _fit_windows

    x, y = _sim_pattern(tmp_path, 4.118, seed=3)
    batched = fit_cubic_lattice(x, y, 4.13)

    def separately(windows, ka1_A, ka2_A, ka2_ratio, gain):
        return _fit_windows(windows, ka1_A, ka2_A, ka2_ratio, gain), _fit_windows(windows, ka1_A, None, None, gain)

    monkeypatch.setattr(lattice, "_fit_windows_with_and_without_ka2", separately)
    separate = fit_cubic_lattice(x, y, 4.13)
    assert batched.ka2_used and batched.ka2_note == separate.ka2_note
    assert batched.a_A == pytest.approx(separate.a_A, abs=1e-3 * separate.a_err_A)
    assert batched.a_err_A == pytest.approx(separate.a_err_A, rel=1e-6)
    for mine, theirs in zip(batched.peaks, separate.peaks, strict=True):
        assert mine.two_theta_deg == pytest.approx(theirs.two_theta_deg, abs=1e-3 * theirs.two_theta_err_deg)


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
    plain = fit_cubic_lattice(shifted, y, 4.13, fit_zero_shift=False, fit_displacement=False)
    with_zero = fit_cubic_lattice(shifted, y, 4.13, fit_displacement=False)
    assert with_zero.zero_shift_deg == pytest.approx(0.06, abs=0.01)
    assert with_zero.a_A == pytest.approx(4.140, abs=0.001)
    assert abs(plain.a_A - 4.140) > abs(with_zero.a_A - 4.140)
    # by default zero shift and displacement are both refined; a stays put
    default = fit_cubic_lattice(shifted, y, 4.13)
    assert default.a_A == pytest.approx(4.140, abs=0.002)
    assert default.quality_ok


def test_sample_displacement_is_taken_out_by_default(tmp_path):
    x, y = _sim_pattern(tmp_path, 4.140)
    # a sample 0.1 mm low on a 200 mm goniometer: 2theta shifts by -2 s cos(theta) / R
    shift_deg = np.degrees(-2 * 0.1 / 200.0 * np.cos(np.radians(x / 2)))
    plain = fit_cubic_lattice(x + shift_deg, y, 4.13, fit_zero_shift=False, fit_displacement=False)
    fit = fit_cubic_lattice(x + shift_deg, y, 4.13)
    assert abs(plain.a_A - 4.140) > 0.002  # the uncorrected error
    assert fit.a_A == pytest.approx(4.140, abs=0.0015)
    assert fit.displacement_deg < -0.02


def test_scaled_intensities_keep_their_peaks(tmp_path):
    # a pattern divided by 1000 (a normalised export) has the same peaks; counting statistics
    # on the scaled numbers would call every peak insignificant
    x, y = _sim_pattern(tmp_path, 4.150)
    raw = fit_cubic_lattice(x, y, 4.13)
    scaled = fit_cubic_lattice(x, y / 1000.0, 4.13)
    assert scaled.noise_gain == pytest.approx(raw.noise_gain / 1000.0, rel=0.05)
    assert scaled.n_peaks_used == raw.n_peaks_used
    assert scaled.a_A == pytest.approx(raw.a_A, abs=1e-5)
    assert raw.noise_gain == pytest.approx(1.0, rel=0.2)  # Poisson counts


def tetragonal_peaks(a_A: float, c_A: float) -> list[tuple[float, int]]:
    """(2-theta at Cu K-alpha1, relative height) of the reflections of a tetragonal rock-salt-like
    phase: the cubic fit finds peaks, but their positions do not follow one cubic lattice."""
    hkl_heights = [((1, 1, 1), 60), ((2, 0, 0), 100), ((0, 0, 2), 50), ((2, 2, 0), 50), ((2, 0, 2), 50),
                   ((3, 1, 1), 20), ((1, 1, 3), 10), ((2, 2, 2), 15), ((4, 0, 0), 8), ((0, 0, 4), 4)]  # fmt: skip
    peaks = []
    for (h, k, el), height in hkl_heights:
        d = 1 / np.sqrt((h * h + k * k) / a_A**2 + el * el / c_A**2)
        peaks.append((bragg_two_theta_deg(d, 1.54056), height))
    return peaks


def test_quality_gate_rejects_a_non_cubic_phase():
    # a tetragonal (a = 4.12, c = 4.22 A) rock-salt-like phase
    x = np.arange(20, 100, 0.01)
    y = np.full_like(x, 100.0)
    for two_theta, height in tetragonal_peaks(4.12, 4.22):
        y += doublet(x, two_theta, 0.12, 0.5, height * 40)
    y = np.random.default_rng(3).poisson(y).astype(float)
    fit = fit_cubic_lattice(x, y, 4.13)
    assert not fit.quality_ok
    assert any("miss the cubic lattice" in p for p in fit.quality_problems)


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


# Reference lattice parameters (Angstrom):
#   Si, NIST SRM 640d certificate (revised 2010-05-26): a = 5.43123(8) A at 22.5 C
#     (the 2010 Powder Diffraction paper by Black et al. gave 0.543159(20) nm before the revision).
#   NiO (bunsenite), ICDD PDF 00-047-1049: a = 4.1771 A (Handbook of Mineralogy: 4.1769 A).
#   MnO (manganosite, synthetic), NBS Circular 539 vol. 5 (Swanson & Tatge 1955), ICDD PDF
#     00-007-0230: a = 4.445 A.
SI_640D_A = 5.43123
NIO_A = 4.1771
MNO_A = 4.445


def test_real_nio_xrdml_gives_rock_salt_nio():
    fit = fit_pattern_lattice(read_pattern(_need("V2O5_0p4005-NiO_0p6016--8min.xrdml")), 4.15)
    assert fit.a_A == pytest.approx(NIO_A, abs=0.001)
    assert fit.n_peaks_used == 6
    assert fit.ka2_used  # Ni beta filter, no monochromator: K-alpha2 is there and the fit says so
    assert fit.quality_ok, fit.quality_problems


def test_real_mno_xy_gives_rock_salt_mno():
    fit = fit_pattern_lattice(read_pattern(_need("MnO.xy")), 4.42)
    assert fit.a_A == pytest.approx(MNO_A, abs=0.001)
    assert fit.residual_rms_deg < 0.02
    assert fit.ka2_used  # resolved doublets in the file
    assert fit.quality_ok, fit.quality_problems


def test_real_si_standard_with_diamond_reflections():
    pattern = read_pattern(_need("Si-Std_SRM640d_D8D_20-97_7_16hm.brml"))
    fit = fit_pattern_lattice(pattern, 5.42, hkl=DIAMOND_HKL)
    assert fit.a_A == pytest.approx(SI_640D_A, abs=0.0005)
    assert fit.n_peaks_used == 7
    assert fit.quality_ok, fit.quality_problems
    # measured through a Johansson K-alpha1 monochromator although the header states a
    # K-alpha2 ratio of 0.5: optics and fit agree on K-alpha1 only
    assert not fit.ka2_used
    assert "Johansson" in fit.ka2_note
    assert fit.geometry == "fixed_incidence"  # a detector scan at theta = 17 deg


def test_real_si_trusting_the_header_ka2_is_worse():
    pattern = read_pattern(_need("Si-Std_SRM640d_D8D_20-97_7_16hm.brml"))
    trusted = fit_pattern_lattice(pattern, 5.42, hkl=DIAMOND_HKL, ka2_decide=False)
    decided = fit_pattern_lattice(pattern, 5.42, hkl=DIAMOND_HKL)
    assert trusted.ka2_used and not decided.ka2_used
    assert abs(trusted.a_A - SI_640D_A) > 3 * abs(decided.a_A - SI_640D_A)
    worst = max(p.chi2_red for p in trusted.peaks if p.ok)
    assert worst > 10 * max(p.chi2_red for p in decided.peaks if p.ok)


def test_real_bruker_raw_v3_pattern_fits_its_double_perovskite_cell():
    # Ba2CaWO6 (Fm-3m double perovskite, a close to 8.39 A) in a RAW1.01 file: the binary reader
    # gives a pattern the fit accepts, with its resolved K-alpha doublets recognised
    pattern = read_pattern(_need("brukerraw_test.RAW"))
    hkl = [(2, 0, 0), (2, 2, 0), (2, 2, 2), (4, 0, 0), (4, 2, 0), (4, 2, 2)]
    fit = fit_pattern_lattice(pattern, 8.37, hkl=hkl, search_frac=0.03)
    assert fit.a_A == pytest.approx(8.39, abs=0.01)
    assert fit.n_peaks_used == 6 and fit.ka2_used
    assert fit.quality_ok, fit.quality_problems
