"""Cubic lattice parameter from a powder pattern by single-peak fitting.

Steps of :func:`fit_cubic_lattice`:

1. Coarse search: the lattice parameter within ``a_guess_A * (1 +- search_frac)`` whose
   predicted K-alpha1 reflections sit on the most (background-subtracted) intensity, summed
   over the requested reflections. This locates the reflections jointly, so a lone foreign
   peak (Be window, impurity) does not capture one of them.
2. Each reflection is fitted in a small window by a pseudo-Voigt K-alpha1 + K-alpha2 doublet
   (shared width and mixing; K-alpha2 position from the wavelength ratio, intensity ratio
   fixed) on a linear background, weighted by Poisson statistics
   (:func:`scipy.optimize.least_squares`).
3. Weighted least squares of the K-alpha1 positions against Bragg's law in ``a`` (and an
   optional zero shift), giving ``a`` and its standard error.

Default reflections are those of rock-salt (Fm-3m): (111), (200), (220), (311), (222), (400).
Pass ``hkl=DIAMOND_HKL`` for silicon or any other list of cubic reflections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d, uniform_filter1d
from scipy.optimize import least_squares

from analysis.patterns import CU_KA1_A, CU_KA2_A, CU_KA2_RATIO, Pattern

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


@dataclass(frozen=True)
class LatticeFit:
    """Cubic lattice parameter and the peak fits behind it."""

    a_A: float
    a_err_A: float
    zero_shift_deg: float
    zero_shift_err_deg: float
    peaks: tuple[PeakFit, ...]
    wavelength_A: float
    residual_rms_deg: float

    @property
    def n_peaks_used(self) -> int:
        return sum(p.ok for p in self.peaks)


def d_spacing_A(a_A: float, hkl: HKL) -> float:
    """Interplanar spacing of a cubic lattice."""
    h, k, l = hkl  # noqa: E741
    return a_A / np.sqrt(h * h + k * k + l * l)


def bragg_two_theta_deg(d_A: float | np.ndarray, wavelength_A: float) -> float | np.ndarray:
    """2theta (degrees) of spacing ``d_A``; NaN where the reflection is out of reach."""
    s = wavelength_A / (2.0 * np.asarray(d_A, dtype=float))
    with np.errstate(invalid="ignore"):
        out = np.degrees(2.0 * np.arcsin(np.where(s <= 1.0, s, np.nan)))
    return float(out) if np.ndim(out) == 0 else out


def ka2_two_theta_deg(two_theta_ka1_deg: np.ndarray | float, ka1_A: float, ka2_A: float):
    """K-alpha2 position belonging to a K-alpha1 position (same d)."""
    s = np.sin(np.radians(np.asarray(two_theta_ka1_deg) / 2.0)) * (ka2_A / ka1_A)
    return np.degrees(2.0 * np.arcsin(np.clip(s, -1.0, 1.0)))


def pseudo_voigt(x: np.ndarray, center: float, fwhm: float, eta: float) -> np.ndarray:
    """Unit-height pseudo-Voigt: ``eta`` Lorentzian + ``1 - eta`` Gaussian, same FWHM."""
    u = (x - center) / (0.5 * fwhm)
    return eta / (1.0 + u * u) + (1.0 - eta) * np.exp(-np.log(2.0) * u * u)


def doublet(
    x: np.ndarray,
    center1_deg: float,
    fwhm_deg: float,
    eta: float,
    height: float,
    ka1_A: float = CU_KA1_A,
    ka2_A: float | None = CU_KA2_A,
    ka2_ratio: float | None = CU_KA2_RATIO,
) -> np.ndarray:
    """K-alpha1 + K-alpha2 pseudo-Voigt doublet (K-alpha1 height ``height``)."""
    y = pseudo_voigt(x, center1_deg, fwhm_deg, eta)
    if ka2_A is not None and ka2_ratio:
        c2 = float(ka2_two_theta_deg(center1_deg, ka1_A, ka2_A))
        y = y + ka2_ratio * pseudo_voigt(x, c2, fwhm_deg, eta)
    return height * y


def _background(y: np.ndarray, width_pts: int) -> np.ndarray:
    """Smooth lower envelope (rolling minimum, then rolling mean)."""
    width_pts = max(3, width_pts)
    return uniform_filter1d(minimum_filter1d(y, width_pts, mode="nearest"), width_pts, mode="nearest")


def _fwhm_estimate(x: np.ndarray, s: np.ndarray, i_max: int) -> float:
    """Width at half maximum of background-free signal ``s`` around index ``i_max``."""
    half = s[i_max] / 2.0
    lo = i_max
    while lo > 0 and s[lo] > half:
        lo -= 1
    hi = i_max
    while hi < s.size - 1 and s[hi] > half:
        hi += 1
    return float(x[hi] - x[lo])


def fit_peak(
    two_theta_deg: np.ndarray,
    intensity: np.ndarray,
    center_guess_deg: float,
    half_window_deg: float,
    *,
    fwhm_guess_deg: float = 0.15,
    max_shift_deg: float = 0.3,
    ka1_A: float = CU_KA1_A,
    ka2_A: float | None = CU_KA2_A,
    ka2_ratio: float | None = CU_KA2_RATIO,
    hkl: HKL = (0, 0, 0),
    expected_deg: float = float("nan"),
) -> PeakFit:
    """Fit one doublet on a linear background within ``center_guess_deg +- half_window_deg``.

    Returns a :class:`PeakFit`; ``ok`` is False when the window holds too few points, the fit
    fails, the peak is not significant (height below 5 standard deviations of the counting
    noise), or its position or width ran into a bound.
    """
    x = two_theta_deg
    sel = (x >= center_guess_deg - half_window_deg) & (x <= center_guess_deg + half_window_deg)
    xs, ys = x[sel], intensity[sel]

    def failed(reason: str) -> PeakFit:
        nan = float("nan")
        return PeakFit(hkl, expected_deg, nan, nan, nan, nan, nan, nan, False, reason)

    if xs.size < 8:
        return failed("fewer than 8 points in the fit window")
    xc = center_guess_deg
    weights = 1.0 / np.sqrt(np.maximum(ys, 1.0))
    edge = max(2, xs.size // 10)
    bg0 = float(min(np.median(ys[:edge]), np.median(ys[-edge:])))
    height0 = max(float(ys.max()) - bg0, 1.0)
    step = float(np.median(np.diff(xs)))
    fwhm_lo, fwhm_hi = max(step, 0.005), max(4.0 * half_window_deg / 3.0, 2.0 * step)
    p0 = np.array([xc, np.clip(fwhm_guess_deg, fwhm_lo * 1.01, fwhm_hi * 0.99), 0.5, height0, bg0, 0.0])
    lower = [xc - max_shift_deg, fwhm_lo, 0.0, 0.0, -np.inf, -np.inf]
    upper = [xc + max_shift_deg, fwhm_hi, 1.0, np.inf, np.inf, np.inf]

    ratio = float(ka2_ratio) if ka2_A is not None and ka2_ratio else 0.0
    dx = xs - xc
    ln2 = np.log(2.0)

    def components(p: np.ndarray, center: float):
        """Pseudo-Voigt value and its derivatives by center, width and eta."""
        u = (xs - center) * (2.0 / p[1])
        lor = 1.0 / (1.0 + u * u)
        gau = np.exp(-ln2 * u * u)
        shape = p[2] * lor + (1.0 - p[2]) * gau
        d_du = -2.0 * u * (p[2] * lor * lor + (1.0 - p[2]) * ln2 * gau)
        return shape, d_du * (-2.0 / p[1]), d_du * (-u / p[1]), lor - gau

    def ka2(center: float) -> tuple[float, float]:
        """K-alpha2 position and its derivative by the K-alpha1 position."""
        th1 = np.radians(center / 2.0)
        s2 = min(np.sin(th1) * ka2_A / ka1_A, 1.0)  # type: ignore[operator]
        th2 = np.arcsin(s2)
        return float(np.degrees(2.0 * th2)), float(
            (ka2_A / ka1_A) * np.cos(th1) / max(np.cos(th2), 1e-9)  # type: ignore[operator]
        )

    def residuals(p: np.ndarray) -> np.ndarray:
        shape = components(p, p[0])[0]
        if ratio:
            shape = shape + ratio * components(p, ka2(p[0])[0])[0]
        return (p[3] * shape + p[4] + p[5] * dx - ys) * weights

    def jacobian(p: np.ndarray) -> np.ndarray:
        f1, dc1, dw1, de1 = components(p, p[0])
        jac = np.empty((xs.size, 6))
        if ratio:
            c2, dc2_dc1 = ka2(p[0])
            f2, dc2, dw2, de2 = components(p, c2)
            f1 = f1 + ratio * f2
            dc1 = dc1 + ratio * dc2 * dc2_dc1
            dw1 = dw1 + ratio * dw2
            de1 = de1 + ratio * de2
        jac[:, 0] = p[3] * dc1
        jac[:, 1] = p[3] * dw1
        jac[:, 2] = p[3] * de1
        jac[:, 3] = f1
        jac[:, 4] = 1.0
        jac[:, 5] = dx
        return jac * weights[:, None]

    try:
        res = least_squares(residuals, p0, jac=jacobian, bounds=(lower, upper), x_scale="jac", max_nfev=200)
    except (ValueError, np.linalg.LinAlgError) as exc:
        return failed(f"fit failed: {exc}")
    p = res.x
    dof = max(xs.size - p.size, 1)
    chi2_red = float(2.0 * res.cost / dof)
    try:
        cov = np.linalg.inv(res.jac.T @ res.jac) * max(chi2_red, 1.0)
        err = float(np.sqrt(cov[0, 0]))
    except np.linalg.LinAlgError:
        err = float("nan")
    background = float(p[4] + p[5] * (p[0] - xc))
    noise = np.sqrt(max(background + p[3], 1.0))
    reason = ""
    if not res.success:
        reason = f"fit did not converge ({res.message})"
    elif p[3] < 5.0 * noise:
        reason = f"not significant (height {p[3]:.1f} < 5 x noise {noise:.1f})"
    elif abs(p[0] - xc) > 0.98 * max_shift_deg:
        reason = "position ran into the search bound"
    elif p[1] >= 0.98 * fwhm_hi:
        reason = "width ran into its upper bound (no distinct peak)"
    elif not np.isfinite(err) or err <= 0:
        reason = "position uncertainty undefined"
    return PeakFit(
        hkl,
        expected_deg,
        float(p[0]),
        err,
        float(p[1]),
        float(p[2]),
        float(p[3]),
        background,
        not reason,
        reason,
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
    fit_zero_shift: bool = False,
    search_frac: float = 0.02,
    min_peaks: int = 3,
) -> LatticeFit:
    """Fit the cubic lattice parameter of one pattern.

    Parameters
    ----------
    two_theta_deg, intensity : numpy.ndarray
        The pattern (ascending angles).
    a_guess_A : float
        Starting lattice parameter; the answer is searched within ``+- search_frac`` of it.
    hkl : sequence of (h, k, l)
        Reflections to use (rock-salt by default); those outside the scanned range are skipped.
    ka1_A, ka2_A, ka2_ratio : float
        Wavelengths and K-alpha2/K-alpha1 ratio (``ka2_A=None`` for monochromatic data).
    fit_zero_shift : bool
        Also fit a constant 2theta zero shift (needs one more reflection).
    search_frac : float
        Half-width of the coarse search, as a fraction of ``a_guess_A``.
    min_peaks : int
        Fewest usable reflections accepted.

    Returns
    -------
    LatticeFit

    Raises
    ------
    LatticeFitError
        When fewer than ``min_peaks`` reflections (``+1`` with a zero shift) could be fitted.
    """
    x = np.asarray(two_theta_deg, dtype=float)
    y = np.asarray(intensity, dtype=float)
    if x.size < 16:
        raise LatticeFitError(f"pattern has only {x.size} points")
    if not a_guess_A > 0 or not 0 < search_frac < 0.5:
        raise ValueError(f"need a_guess_A > 0 and 0 < search_frac < 0.5 ({a_guess_A}, {search_frac})")
    hkl = [(int(h[0]), int(h[1]), int(h[2])) for h in hkl]
    if not hkl or (0, 0, 0) in hkl:
        raise ValueError(f"hkl must list reflections other than (0, 0, 0), got {hkl}")
    step = float(np.median(np.diff(x)))
    bg = _background(y, int(round(2.0 / step)))
    signal = gaussian_filter1d(y, 1.5) - bg
    a0 = _coarse_a(x, signal, a_guess_A, hkl, ka1_A, search_frac)
    expected = {h: bragg_two_theta_deg(d_spacing_A(a_guess_A, h), ka1_A) for h in hkl}
    coarse = {h: bragg_two_theta_deg(d_spacing_A(a0, h), ka1_A) for h in hkl}
    positions = sorted(v for v in coarse.values() if np.isfinite(v))
    peaks: list[PeakFit] = []
    for h in hkl:
        key = h
        c = coarse[key]
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
        peaks.append(
            fit_peak(
                x,
                y,
                float(x[i_max]),
                half,
                fwhm_guess_deg=min(fwhm, half),
                max_shift_deg=min(0.2, half / 2.0),
                ka1_A=ka1_A,
                ka2_A=ka2_A,
                ka2_ratio=ka2_ratio,
                hkl=key,
                expected_deg=float(expected[key]),
            )
        )
    good = [p for p in peaks if p.ok]
    need = min_peaks + (1 if fit_zero_shift else 0)
    if len(good) < need:
        why = "; ".join(f"{p.hkl}: {p.reason}" for p in peaks if not p.ok) or "none in range"
        raise LatticeFitError(f"only {len(good)} usable reflection(s), need {need} (rejected: {why})")
    return _refine(good, peaks, a0, ka1_A, fit_zero_shift)


def _refine(
    good: list[PeakFit], peaks: list[PeakFit], a0: float, ka1_A: float, fit_zero_shift: bool
) -> LatticeFit:
    """Weighted least squares of the peak positions in a (and a zero shift)."""
    q = np.array([np.sqrt(sum(i * i for i in p.hkl)) for p in good])
    obs = np.array([p.two_theta_deg for p in good])
    sig = np.array([p.two_theta_err_deg for p in good])

    def calc(params: np.ndarray) -> np.ndarray:
        s = np.clip(ka1_A * q / (2.0 * params[0]), -1.0, 1.0)
        shift = params[1] if fit_zero_shift else 0.0
        return np.degrees(2.0 * np.arcsin(s)) + shift

    def residuals(params: np.ndarray) -> np.ndarray:
        return (obs - calc(params)) / sig

    p0 = np.array([a0, 0.0]) if fit_zero_shift else np.array([a0])
    res = least_squares(residuals, p0, x_scale="jac")
    dof = obs.size - p0.size
    chi2_red = float(2.0 * res.cost / dof) if dof > 0 else 1.0
    cov = np.linalg.pinv(res.jac.T @ res.jac) * max(chi2_red, 1.0)
    errs = np.sqrt(np.diag(cov))
    rms = float(np.sqrt(np.mean((obs - calc(res.x)) ** 2)))
    return LatticeFit(
        a_A=float(res.x[0]),
        a_err_A=float(errs[0]),
        zero_shift_deg=float(res.x[1]) if fit_zero_shift else 0.0,
        zero_shift_err_deg=float(errs[1]) if fit_zero_shift else 0.0,
        peaks=tuple(peaks),
        wavelength_A=ka1_A,
        residual_rms_deg=rms,
    )


def fit_pattern_lattice(pattern: Pattern, a_guess_A: float, **kwargs) -> LatticeFit:
    """:func:`fit_cubic_lattice` on a :class:`~analysis.patterns.Pattern`, using its wavelengths.

    Keyword arguments are passed on (``hkl``, ``fit_zero_shift``, ``search_frac``, ...).
    """
    wl = pattern.wavelength
    kwargs.setdefault("ka1_A", wl.ka1_A)
    kwargs.setdefault("ka2_A", wl.ka2_A)
    kwargs.setdefault("ka2_ratio", wl.ka2_ratio)
    return fit_cubic_lattice(pattern.two_theta_deg, pattern.intensity, a_guess_A, **kwargs)
