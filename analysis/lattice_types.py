"""Results of a cubic lattice fit (peaks, lattice parameter), its quality gate, reflection lists
and the fit's error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HKL = tuple[int, int, int]

#: Rock-salt (Fm-3m) reflections used by default.
ROCKSALT_HKL: tuple[HKL, ...] = ((1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1), (2, 2, 2), (4, 0, 0))
#: Diamond-structure (Fd-3m, e.g. Si) reflections.
DIAMOND_HKL: tuple[HKL, ...] = (
    (1, 1, 1),
    (2, 2, 0),
    (3, 1, 1),
    (4, 0, 0),
    (3, 3, 1),
    (4, 2, 2),
    (5, 1, 1),
)


class LatticeFitError(ValueError):
    """Too few reflections could be fitted to determine the lattice parameter."""


@dataclass(frozen=True)
class PeakFit:
    """Result of fitting one reflection.

    ``two_theta_deg`` is the K-alpha1 position. ``ok`` is False (with ``reason``) when the
    reflection was not found or its fit is unusable; such peaks are not used for ``a``.
    """

    hkl: HKL
    expected_deg: float
    two_theta_deg: float
    two_theta_err_deg: float
    fwhm_deg: float
    eta: float
    height: float
    background: float
    ok: bool
    reason: str = ""
    chi2_red: float = float("nan")


@dataclass(frozen=True)
class LatticeFit:
    """Cubic lattice parameter, the peak fits behind it, and its quality verdict.

    ``ka2_used`` says whether the peaks were fitted as K-alpha1 + K-alpha2 doublets and
    ``ka2_note`` why. ``quality_ok`` is False (with ``quality_problems``) when the fit must
    not be trusted; such a fit is reported, never used as the next starting value.
    """

    a_A: float
    a_err_A: float
    zero_shift_deg: float
    zero_shift_err_deg: float
    peaks: tuple[PeakFit, ...]
    wavelength_A: float
    residual_rms_deg: float
    displacement_deg: float = 0.0
    displacement_err_deg: float = 0.0
    axial_shift_deg: float = 0.0
    chi2_red: float = float("nan")
    ka2_used: bool = True
    ka2_note: str = ""
    noise_gain: float = 1.0
    n_peaks_expected: int = 0
    geometry: str = "coupled"
    quality_problems: tuple[str, ...] = ()

    @property
    def n_peaks_used(self) -> int:
        return sum(p.ok for p in self.peaks)

    @property
    def quality_ok(self) -> bool:
        return not self.quality_problems


#: Prior widths (deg) of the zero shift and the displacement term, position-error floor (deg).
ZERO_PRIOR_DEG = 0.05
DISPLACEMENT_PRIOR_DEG = 0.05
POSITION_FLOOR_DEG = 0.002
#: Quality gate: largest rms (deg) and reduced chi2 of the positions, least share and least
#: number of the expected reflections found, largest zero shift / displacement (deg).
GATE_RMS_DEG = 0.02
GATE_CHI2 = 50.0
GATE_FOUND_FRACTION = 0.5
GATE_MIN_FOUND = 4
GATE_OFFSET_DEG = 0.2


def quality_problems(fit: LatticeFit) -> tuple[str, ...]:
    """Why a lattice fit must not be trusted (empty when it passes the gate)."""
    out = []
    if fit.n_peaks_expected and (
        fit.n_peaks_used < GATE_FOUND_FRACTION * fit.n_peaks_expected or fit.n_peaks_used < GATE_MIN_FOUND
    ):
        out.append(f"only {fit.n_peaks_used} of {fit.n_peaks_expected} expected reflections found")
    if fit.residual_rms_deg > GATE_RMS_DEG:
        out.append(
            f"peak positions miss the cubic lattice by {fit.residual_rms_deg:.3f} deg rms "
            f"(limit {GATE_RMS_DEG} deg): wrong phase or reflections?"
        )
    if np.isfinite(fit.chi2_red) and fit.chi2_red > GATE_CHI2:
        out.append(f"chi2 of the peak positions {fit.chi2_red:.0f} (limit {GATE_CHI2:.0f})")
    if abs(fit.zero_shift_deg) > GATE_OFFSET_DEG or abs(fit.displacement_deg) > GATE_OFFSET_DEG:
        out.append(
            f"implausible zero shift {fit.zero_shift_deg:.3f} deg / displacement "
            f"{fit.displacement_deg:.3f} deg (limit {GATE_OFFSET_DEG} deg)"
        )
    return tuple(out)
