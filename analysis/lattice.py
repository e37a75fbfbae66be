"""Cubic lattice parameter from a powder pattern by single-peak fitting.

Steps of :func:`fit_cubic_lattice`:

1. Coarse search: the lattice parameter within ``a_guess_A * (1 +- search_frac)`` whose
   predicted K-alpha1 reflections sit on the most (background-subtracted) intensity, summed
   over the requested reflections. This locates the reflections jointly, so a lone foreign
   peak (Be window, impurity) does not capture one of them.
2. Each reflection is fitted in a small window by a pseudo-Voigt profile on a linear
   background: a K-alpha1 + K-alpha2 doublet or a K-alpha1 line alone. **Which one** is
   decided per pattern from the optics the file states (a K-alpha1 monochromator such as a
   Johansson crystal removes K-alpha2 whatever ratio the header repeats) and from the fits
   themselves: both are fitted and the one with the lower chi2 is kept (with a monochromator
   stated, K-alpha2 must lower chi2 by 20 % to be believed). **Noise** comes from the data:
   the scatter of second differences on the background gives the gain ``g`` in
   ``var = g * intensity`` (``g = 1`` for raw counts; scaled or summed intensities get their
   own), used for the weights and the significance test. All windows, with and without
   K-alpha2, are fitted at once by a vectorised, bounded Levenberg-Marquardt with analytic
   derivatives (each window's fit independent of the others; converged ones stop costing).
3. Least squares of the K-alpha1 positions against Bragg's law in ``a``, a zero shift and a
   sample-displacement term (both on by default). The displacement shift is ``D cos(theta)``
   for a coupled theta/2theta scan and ``D sin(2theta) / (2 sin(omega))`` for a detector scan
   at fixed incidence ``omega`` (the file says which). With six or seven reflections ``a``, the
   zero and the displacement are nearly collinear, so both carry a Gaussian prior of
   0.05 deg (a well-aligned diffractometer and a flat sample); the position errors get a floor
   of 0.002 deg. When the file states its axial Soller slits (acceptance ``delta``), their
   first-order centroid shift ``-(delta**2 / 12) cot(2theta)`` is taken out.
4. A quality gate (:attr:`LatticeFit.quality_ok`, :attr:`LatticeFit.quality_problems`): the
   share of expected reflections found, the rms and reduced chi2 of the positions about the
   cubic lattice, and plausible zero/displacement. A pattern of another phase (corundum read
   as rock salt) fails it; callers must not use a failed fit as the next starting value.

Default reflections are those of rock-salt (Fm-3m): (111), (200), (220), (311), (222), (400).
Pass ``hkl=DIAMOND_HKL`` for silicon or any other list of cubic reflections.

Single reflections (step 2) are fitted in :mod:`analysis.peak_fit`; the result types and the
quality gate are :mod:`analysis.lattice_types`; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from analysis.lattice_types import (
    DIAMOND_HKL as DIAMOND_HKL,
)
from analysis.lattice_types import (
    DISPLACEMENT_PRIOR_DEG,
    POSITION_FLOOR_DEG,
    ZERO_PRIOR_DEG,
)
from analysis.lattice_types import (
    HKL as HKL,
)
from analysis.lattice_types import (
    ROCKSALT_HKL as ROCKSALT_HKL,
)
from analysis.lattice_types import (
    LatticeFit as LatticeFit,
)
from analysis.lattice_types import (
    LatticeFitError as LatticeFitError,
)
from analysis.lattice_types import (
    PeakFit as PeakFit,
)
from analysis.lattice_types import (
    quality_problems as quality_problems,
)
from analysis.patterns import CU_KA1_A, CU_KA2_A, CU_KA2_RATIO, Pattern
from analysis.peak_fit import (
    _background,
    _fit_windows,
    _fit_windows_with_and_without_ka2,
    _fwhm_estimate,
    _Window,
    _window,
)
from analysis.peak_fit import (
    bragg_two_theta_deg as bragg_two_theta_deg,
)
from analysis.peak_fit import (
    d_spacing_A as d_spacing_A,
)
from analysis.peak_fit import (
    doublet as doublet,
)
from analysis.peak_fit import (
    fit_peak as fit_peak,
)
from analysis.peak_fit import (
    ka2_two_theta_deg as ka2_two_theta_deg,
)
from analysis.peak_fit import (
    noise_gain as noise_gain,
)
from analysis.peak_fit import (
    pseudo_voigt as pseudo_voigt,
)


def _coarse_a(
    x: np.ndarray,
    signal: np.ndarray,
    a_guess_A: float,
    hkl: Sequence[HKL],
    ka1_A: float,
    search_frac: float,
) -> float:
    """Lattice parameter whose reflections collect the most (root) signal."""
    q = np.array([np.sqrt(sum(i * i for i in h)) for h in hkl])
    step = float(np.median(np.diff(x)))
    # grid fine enough that the highest-angle reflection moves < step/2 per grid point
    theta_max = np.radians(min(x[-1], 170.0) / 2.0)
    da = max(a_guess_A * (step / 2.0) * np.pi / 180.0 / (2.0 * np.tan(theta_max)), 1e-6)
    grid = np.arange(a_guess_A * (1 - search_frac), a_guess_A * (1 + search_frac) + da, da)
    tt = bragg_two_theta_deg(grid[:, None] / q[None, :], ka1_A)
    inside = np.isfinite(tt) & (tt >= x[0]) & (tt <= x[-1])
    root = np.sqrt(np.clip(signal, 0.0, None))
    vals = np.interp(np.where(inside, tt, x[0]), x, root)
    score = np.where(inside, vals, 0.0).sum(axis=1)
    return float(grid[int(np.argmax(score))])


def fit_cubic_lattice(
    two_theta_deg: np.ndarray,
    intensity: np.ndarray,
    a_guess_A: float,
    *,
    hkl: Sequence[HKL] = ROCKSALT_HKL,
    ka1_A: float = CU_KA1_A,
    ka2_A: float | None = CU_KA2_A,
    ka2_ratio: float | None = CU_KA2_RATIO,
    ka2_decide: bool = True,
    monochromator: str | None = None,
    fit_zero_shift: bool = True,
    fit_displacement: bool = True,
    geometry: str = "coupled",
    omega_deg: float | None = None,
    axial_soller_deg: float | None = None,
    noise: str | float = "data",
    search_frac: float = 0.02,
    min_peaks: int = 3,
) -> LatticeFit:
    """Fit the cubic lattice parameter of one pattern (see the module docstring).

    Parameters
    ----------
    two_theta_deg, intensity : numpy.ndarray
        The pattern (ascending angles).
    a_guess_A : float
        Starting lattice parameter; the answer is searched within ``+- search_frac`` of it.
    hkl : sequence of (h, k, l)
        Reflections to use (rock-salt by default); those outside the scanned range are skipped.
    ka1_A, ka2_A, ka2_ratio : float
        Wavelengths and the K-alpha2/K-alpha1 ratio the file states (``ka2_A=None``: K-alpha1
        only, nothing to decide).
    ka2_decide : bool
        Fit with and without K-alpha2 and keep the better (see ``monochromator``); False uses
        the stated wavelengths as they are.
    monochromator : str, optional
        A K-alpha1 monochromator named by the file: K-alpha1 only unless K-alpha2 lowers the
        profile chi2 by more than 20 %.
    fit_zero_shift, fit_displacement : bool
        Refine a 2theta zero shift and a sample-displacement term (with Gaussian priors of
        :data:`ZERO_PRIOR_DEG` and :data:`DISPLACEMENT_PRIOR_DEG`).
    geometry : {"coupled", "fixed_incidence"}
        Coupled theta/2theta scan (displacement ``D cos theta``) or detector scan at fixed
        incidence ``omega_deg`` (``D sin 2theta / (2 sin omega)``).
    omega_deg : float, optional
        Incidence angle of a fixed-incidence scan.
    axial_soller_deg : float, optional
        Axial Soller acceptance stated by the file; its centroid shift is corrected.
    noise : "data" or float
        Noise gain ``g`` (``var = g * intensity``): estimated from the data, or given
        (1 for raw counts).
    search_frac : float
        Half-width of the coarse search, as a fraction of ``a_guess_A``.
    min_peaks : int
        Fewest usable reflections accepted.

    Returns
    -------
    LatticeFit
        Check :attr:`LatticeFit.quality_ok` before trusting ``a_A``.

    Raises
    ------
    LatticeFitError
        When fewer than ``min_peaks`` reflections could be fitted.
    """
    x = np.asarray(two_theta_deg, dtype=float)
    y = np.asarray(intensity, dtype=float)
    if x.size < 16:
        raise LatticeFitError(f"pattern has only {x.size} points")
    if not a_guess_A > 0 or not 0 < search_frac < 0.5:
        raise ValueError(f"need a_guess_A > 0 and 0 < search_frac < 0.5 ({a_guess_A}, {search_frac})")
    if geometry not in ("coupled", "fixed_incidence"):
        raise ValueError(f"geometry must be 'coupled' or 'fixed_incidence', got {geometry!r}")
    if geometry == "fixed_incidence" and not (omega_deg and 0 < omega_deg < 90):
        raise ValueError(f"a fixed-incidence scan needs omega_deg in (0, 90), got {omega_deg}")
    hkl = [(int(h[0]), int(h[1]), int(h[2])) for h in hkl]
    if not hkl or (0, 0, 0) in hkl:
        raise ValueError(f"hkl must list reflections other than (0, 0, 0), got {hkl}")
    gain = noise_gain(y) if noise == "data" else float(noise)
    if not gain > 0:
        raise ValueError(f"noise gain must be > 0, got {noise}")
    step = float(np.median(np.diff(x)))
    bg = _background(y, int(round(2.0 / step)))
    signal = gaussian_filter1d(y, 1.5) - bg
    a0 = _coarse_a(x, signal, a_guess_A, hkl, ka1_A, search_frac)
    expected = {h: bragg_two_theta_deg(d_spacing_A(a_guess_A, h), ka1_A) for h in hkl}
    coarse = {h: bragg_two_theta_deg(d_spacing_A(a0, h), ka1_A) for h in hkl}
    positions = sorted(v for v in coarse.values() if np.isfinite(v))
    slots: list[_Window | PeakFit] = []
    for h in hkl:
        c = coarse[h]
        if not np.isfinite(c) or c < x[0] + 0.3 or c > x[-1] - 0.3:
            continue
        others = [abs(p - c) for p in positions if p != c]
        room = min(others) / 2.0 if others else 3.0
        # locate the maximum near the coarse position, then size the window from its width
        near = (x >= c - min(0.25, room)) & (x <= c + min(0.25, room))
        if not near.any():
            continue
        idx = np.flatnonzero(near)
        i_max = int(idx[np.argmax(signal[idx])])
        fwhm = max(_fwhm_estimate(x, signal, i_max), 2.0 * step)
        split = float(ka2_two_theta_deg(x[i_max], ka1_A, ka2_A) - x[i_max]) if ka2_A else 0.0
        half = float(np.clip(3.0 * fwhm + split, 0.4, 2.0))
        half = min(half, max(room, 0.3))
        slots.append(
            _window(x, y, float(x[i_max]), half, min(fwhm, half), min(0.2, half / 2.0), h, float(expected[h]))
        )
    windows = [s for s in slots if isinstance(s, _Window)]
    with_ka2: list[PeakFit] | None = None
    if ka2_A and ka2_ratio and ka2_decide:  # both fits, as one batch
        with_ka2, alone = _fit_windows_with_and_without_ka2(windows, ka1_A, ka2_A, ka2_ratio, gain)
    elif ka2_A and ka2_ratio:
        with_ka2 = _fit_windows(windows, ka1_A, ka2_A, ka2_ratio, gain)
    ka2_note = "the file states no K-alpha2"
    use_ka2 = with_ka2 is not None
    fits = with_ka2
    if with_ka2 is not None and ka2_decide:
        chi_both = _total_chi2(with_ka2, windows)
        chi_alone = _total_chi2(alone, windows)
        bar = 0.8 if monochromator else 1.0
        use_ka2 = chi_both < bar * chi_alone
        because = f"profile chi2 {chi_both:.3g} with K-alpha2, {chi_alone:.3g} without"
        if monochromator:
            ka2_note = f"{monochromator} monochromator stated; {because}: " + (
                "K-alpha2 present after all" if use_ka2 else "K-alpha1 only"
            )
        else:
            ka2_note = f"{because}: " + ("K-alpha1 + K-alpha2" if use_ka2 else "K-alpha1 only")
        fits = with_ka2 if use_ka2 else alone
    elif with_ka2 is not None:
        ka2_note = "K-alpha1 + K-alpha2 as stated (not decided from the fit)"
    if fits is None:
        fits = _fit_windows(windows, ka1_A, None, None, gain)
    fitted = iter(fits)
    peaks = [s if isinstance(s, PeakFit) else next(fitted) for s in slots]
    good = [p for p in peaks if p.ok]
    if len(good) < min_peaks:
        why = "; ".join(f"{p.hkl}: {p.reason}" for p in peaks if not p.ok) or "none in range"
        raise LatticeFitError(f"only {len(good)} usable reflection(s), need {min_peaks} (rejected: {why})")
    shift = _ShiftModel(fit_zero_shift, fit_displacement, geometry, omega_deg, axial_soller_deg)
    fit = _refine(good, peaks, a0, ka1_A, shift)
    in_range = [h for h in hkl if np.isfinite(coarse[h]) and x[0] + 0.3 <= coarse[h] <= x[-1] - 0.3]
    fit = replace(
        fit,
        ka2_used=use_ka2,
        ka2_note=ka2_note,
        noise_gain=gain,
        n_peaks_expected=len(in_range),
    )
    return replace(fit, quality_problems=quality_problems(fit))


def _total_chi2(fits: list[PeakFit], windows: Sequence[_Window]) -> float:
    """Sum of the windows' chi2 (reduced chi2 times degrees of freedom)."""
    total = 0.0
    for f, w in zip(fits, windows, strict=True):
        if np.isfinite(f.chi2_red):
            total += f.chi2_red * max(w.xs.size - 6, 1)
    return total


@dataclass(frozen=True)
class _ShiftModel:
    """Instrument terms of the position refinement."""

    zero: bool
    displacement: bool
    geometry: str
    omega_deg: float | None
    axial_soller_deg: float | None

    def basis(self, two_theta_deg: np.ndarray) -> np.ndarray:
        """Shape of the displacement shift (deg per deg of ``D``)."""
        r = np.radians(two_theta_deg)
        if self.geometry == "fixed_incidence":
            return np.sin(r) / (2.0 * np.sin(np.radians(self.omega_deg or 90.0)))
        return np.cos(r / 2.0)

    def axial(self, two_theta_deg: np.ndarray) -> np.ndarray:
        """First-order axial-divergence centroid shift (deg), zero when no Soller is stated."""
        if not self.axial_soller_deg:
            return np.zeros_like(two_theta_deg)
        delta = np.radians(self.axial_soller_deg)
        return -np.degrees(delta * delta / 12.0) / np.tan(np.radians(two_theta_deg))


def _refine(
    good: list[PeakFit], peaks: list[PeakFit], a0: float, ka1_A: float, shift: _ShiftModel
) -> LatticeFit:
    """Least squares of the peak positions in a, zero shift and displacement (with priors)."""
    q = np.array([np.sqrt(sum(i * i for i in p.hkl)) for p in good])
    obs = np.array([p.two_theta_deg for p in good])
    sig = np.sqrt(np.array([p.two_theta_err_deg for p in good]) ** 2 + POSITION_FLOOR_DEG**2)
    names = ["a"] + (["zero"] if shift.zero else []) + (["disp"] if shift.displacement else [])
    prior = np.array([np.inf] + [ZERO_PRIOR_DEG] * shift.zero + [DISPLACEMENT_PRIOR_DEG] * shift.displacement)

    def bragg(a: float) -> np.ndarray:
        s = np.clip(ka1_A * q / (2.0 * a), -1.0, 1.0 - 1e-12)
        return np.degrees(2.0 * np.arcsin(s))

    def calc(params: np.ndarray) -> np.ndarray:
        tt = bragg(params[0])
        out = tt + shift.axial(tt)
        k = 1
        if shift.zero:
            out = out + params[k]
            k += 1
        if shift.displacement:
            out = out + params[k] * shift.basis(tt)
        return out

    def residuals(params: np.ndarray) -> np.ndarray:
        return np.concatenate(((obs - calc(params)) / sig, params[1:] / prior[1:]))

    def jacobian(params: np.ndarray) -> np.ndarray:
        tt = bragg(params[0])
        s = np.clip(ka1_A * q / (2.0 * params[0]), -1.0, 1.0 - 1e-12)
        d_a = np.degrees(2.0 * s / (params[0] * np.sqrt(1.0 - s * s)))  # -d(2theta)/da
        cols = [d_a / sig]
        if shift.zero:
            cols.append(-1.0 / sig)
        if shift.displacement:
            cols.append(-shift.basis(tt) / sig)
        top = np.column_stack(cols)
        bottom = np.zeros((len(params) - 1, len(params)))
        for i in range(1, len(params)):
            bottom[i - 1, i] = 1.0 / prior[i]
        return np.vstack((top, bottom))

    # Gauss-Newton with step halving: a few parameters, a nearly linear problem
    x = np.array([a0] + [0.0] * (len(names) - 1))
    r = residuals(x)
    cost = 0.5 * float(r @ r)
    jac = jacobian(x)
    for _ in range(50):
        step = np.linalg.lstsq(jac, -r, rcond=None)[0]
        t = 1.0
        while t > 1e-6:
            trial = x + t * step
            r_trial = residuals(trial)
            cost_trial = 0.5 * float(r_trial @ r_trial)
            if cost_trial <= cost:
                break
            t *= 0.5
        else:
            break
        x, r, jac = trial, r_trial, jacobian(trial)
        done = cost - cost_trial <= 1e-15 * max(cost, 1.0) or np.all(np.abs(t * step) <= 1e-12)
        cost = cost_trial
        if done:
            break
    data_r = (obs - calc(x)) / sig
    dof = obs.size - 1  # the priors pay for the instrument terms
    chi2_red = float(data_r @ data_r / dof) if dof > 0 else 1.0
    cov = np.linalg.pinv(jac.T @ jac) * max(chi2_red, 1.0)
    errs = np.sqrt(np.diag(cov))
    rms = float(np.sqrt(np.mean((obs - calc(x)) ** 2)))
    value = dict(zip(names, x, strict=True))
    error = dict(zip(names, errs, strict=True))
    return LatticeFit(
        a_A=float(x[0]),
        a_err_A=float(errs[0]),
        zero_shift_deg=float(value.get("zero", 0.0)),
        zero_shift_err_deg=float(error.get("zero", 0.0)),
        peaks=tuple(peaks),
        wavelength_A=ka1_A,
        residual_rms_deg=rms,
        displacement_deg=float(value.get("disp", 0.0)),
        displacement_err_deg=float(error.get("disp", 0.0)),
        axial_shift_deg=float(np.degrees(np.radians(shift.axial_soller_deg or 0.0) ** 2 / 12.0)),
        chi2_red=chi2_red,
        geometry=shift.geometry,
    )


def fit_pattern_lattice(pattern: Pattern, a_guess_A: float, **kwargs) -> LatticeFit:
    """:func:`fit_cubic_lattice` on a :class:`~analysis.patterns.Pattern`, using what its file states.

    Wavelengths, the K-alpha1 monochromator, the scan geometry (coupled or fixed incidence
    with its omega) and the axial Soller slits come from the pattern; keyword arguments
    (``hkl``, ``fit_zero_shift``, ``search_frac``, ...) override them.
    """
    wl = pattern.wavelength
    meta = pattern.metadata
    kwargs.setdefault("ka1_A", wl.ka1_A)
    kwargs.setdefault("ka2_A", wl.ka2_A)
    kwargs.setdefault("ka2_ratio", wl.ka2_ratio)
    kwargs.setdefault("monochromator", wl.monochromator or meta.get("monochromator"))
    geometry = meta.get("geometry")
    if geometry == "fixed_incidence" and meta.get("omega_deg"):
        kwargs.setdefault("geometry", "fixed_incidence")
        kwargs.setdefault("omega_deg", float(meta["omega_deg"]))
    if meta.get("axial_soller_deg"):
        kwargs.setdefault("axial_soller_deg", float(meta["axial_soller_deg"]))
    return fit_cubic_lattice(pattern.two_theta_deg, pattern.intensity, a_guess_A, **kwargs)
