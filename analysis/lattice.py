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
   own), used for the weights and the significance test. All windows are fitted at once by a
   vectorised, bounded Levenberg-Marquardt with analytic derivatives.
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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d, uniform_filter1d

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


def noise_gain(intensity: np.ndarray) -> float:
    """Gain ``g`` of the noise model ``var = g * intensity``, estimated from the data.

    Second differences of neighbouring points cancel a smooth signal and have variance
    ``6 var`` for white noise; on the flatter half of the pattern (the background) the median
    of ``d2**2 / (6 * level)`` over a chi2(1) median (0.455) gives ``g``. Raw counts give
    about 1; intensities scaled by ``c`` give about ``c``.
    """
    y = np.asarray(intensity, dtype=float)
    if y.size < 16:
        return 1.0
    d2 = y[:-2] - 2.0 * y[1:-1] + y[2:]
    level = uniform_filter1d(y, 9, mode="nearest")[1:-1]
    slope = np.abs(np.gradient(uniform_filter1d(y, 9, mode="nearest")))[1:-1]
    flat = slope <= np.median(slope)
    use = flat & (level > 0)
    if use.sum() < 8:
        return 1.0
    ratio = d2[use] ** 2 / (6.0 * level[use])
    g = float(np.median(ratio) / 0.455)
    return g if np.isfinite(g) and g > 0 else 1.0


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


@dataclass(frozen=True)
class _Window:
    """One reflection's fit window, starting values and bounds (see :func:`fit_peak`)."""

    xs: np.ndarray
    ys: np.ndarray
    xc: float
    p0: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    max_shift_deg: float
    fwhm_hi: float
    hkl: HKL
    expected_deg: float


def _failed_peak(hkl: HKL, expected_deg: float, reason: str) -> PeakFit:
    nan = float("nan")
    return PeakFit(hkl, expected_deg, nan, nan, nan, nan, nan, nan, False, reason)


def _window(
    x: np.ndarray,
    intensity: np.ndarray,
    center_guess_deg: float,
    half_window_deg: float,
    fwhm_guess_deg: float,
    max_shift_deg: float,
    hkl: HKL,
    expected_deg: float,
) -> _Window | PeakFit:
    """Cut the window and set up the doublet fit; a failed :class:`PeakFit` if it is too small."""
    sel = (x >= center_guess_deg - half_window_deg) & (x <= center_guess_deg + half_window_deg)
    xs, ys = x[sel], intensity[sel]
    if xs.size < 8:
        return _failed_peak(hkl, expected_deg, "fewer than 8 points in the fit window")
    xc = center_guess_deg
    edge = max(2, xs.size // 10)
    bg0 = float(min(np.median(ys[:edge]), np.median(ys[-edge:])))
    height0 = max(float(ys.max()) - bg0, 1.0)
    step = float(np.median(np.diff(xs)))
    fwhm_lo, fwhm_hi = max(step, 0.005), max(4.0 * half_window_deg / 3.0, 2.0 * step)
    fwhm0 = min(max(fwhm_guess_deg, fwhm_lo * 1.01), fwhm_hi * 0.99)
    p0 = np.array([xc, fwhm0, 0.5, height0, bg0, 0.0])
    lower = np.array([xc - max_shift_deg, fwhm_lo, 0.0, 0.0, -np.inf, -np.inf])
    upper = np.array([xc + max_shift_deg, fwhm_hi, 1.0, np.inf, np.inf, np.inf])
    return _Window(xs, ys, xc, p0, lower, upper, max_shift_deg, fwhm_hi, hkl, expected_deg)


_LN2 = float(np.log(2.0))


class _DoubletBatch:
    """Residuals and analytic Jacobians of several doublet windows at once (padded rows).

    Parameters per window: K-alpha1 centre, FWHM, eta, K-alpha1 height, background at the
    window centre and background slope. Padding points carry zero weight.
    """

    def __init__(
        self, windows: Sequence[_Window], ka1_A: float, ka2_A: float | None, ratio: float, gain: float = 1.0
    ):
        n = max(w.xs.size for w in windows)
        self.x = np.empty((len(windows), n))
        self.y = np.zeros((len(windows), n))
        self.weights = np.zeros((len(windows), n))
        for i, w in enumerate(windows):
            m = w.xs.size
            self.x[i, :m], self.x[i, m:] = w.xs, w.xs[-1]
            self.y[i, :m] = w.ys
            self.weights[i, :m] = 1.0 / np.sqrt(gain * np.maximum(w.ys, gain))
        self.dx = self.x - np.array([w.xc for w in windows])[:, None]
        self.ratio = ratio
        self.k = ka2_A / ka1_A if ka2_A is not None and ratio else 0.0
        self.n_points = np.array([w.xs.size for w in windows])

    def _components(self, center: np.ndarray, fwhm: np.ndarray, eta: np.ndarray):
        """Pseudo-Voigt shape and its derivatives by centre, width and eta."""
        inv_half = (2.0 / fwhm)[:, None]
        u = (self.x - center[:, None]) * inv_half
        u2 = u * u
        lor = 1.0 / (1.0 + u2)
        gau = np.exp(-_LN2 * u2)
        e = eta[:, None]
        shape = gau + e * (lor - gau)
        d_du = -2.0 * u * (e * lor * lor + (1.0 - e) * _LN2 * gau)
        return shape, -d_du * inv_half, -d_du * u / fwhm[:, None], lor - gau

    def _ka2(self, center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """K-alpha2 positions and their derivatives by the K-alpha1 positions."""
        th1 = np.radians(center / 2.0)
        s2 = np.minimum(np.sin(th1) * self.k, 1.0)
        th2 = np.arcsin(s2)
        return np.degrees(2.0 * th2), self.k * np.cos(th1) / np.maximum(np.cos(th2), 1e-9)

    def evaluate(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted residuals (windows x points) and Jacobian (windows x points x 6)."""
        f, dc, dw, de = self._components(p[:, 0], p[:, 1], p[:, 2])
        if self.k:
            c2, dc2_dc1 = self._ka2(p[:, 0])
            f2, dc2, dw2, de2 = self._components(c2, p[:, 1], p[:, 2])
            f = f + self.ratio * f2
            dc = dc + (self.ratio * dc2_dc1)[:, None] * dc2
            dw = dw + self.ratio * dw2
            de = de + self.ratio * de2
        h = p[:, 3:4]
        w = self.weights
        r = (h * f + p[:, 4:5] + p[:, 5:6] * self.dx - self.y) * w
        jac = np.stack((h * dc * w, h * dw * w, h * de * w, f * w, w, self.dx * w), axis=-1)
        return r, jac


def _solve_batch(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve ``a @ x = g`` for a stack of small systems (least-norm where singular)."""
    try:
        return np.linalg.solve(a, g[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(ai, gi, rcond=None)[0] for ai, gi in zip(a, g, strict=True)])


def _levenberg_marquardt(
    model: _DoubletBatch,
    p0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_iter: int = 200,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bounded Levenberg-Marquardt on every window at once.

    Parameters at a bound whose gradient points outward are held fixed for that step; trial
    points are clipped into the bounds; the damping follows Nielsen's gain-ratio rule. A
    window has converged when the Gauss-Newton decrement (the cost reduction the local
    linear model still promises) is below ``tol`` times the residual variance per point
    (``2 cost / dof``): the parameters are then within about ``sqrt(2 tol)`` of their
    standard errors of the minimum (0.014 sigma by default), far below the statistical
    uncertainty, and weakly determined peaks (which make Gauss-Newton zig-zag along the
    width-shape valley) stop creeping. It has also converged when no step lowers its cost.

    Returns the parameters, the costs (half sum of squared residuals), the Jacobians at the
    solution and a flag per window saying it converged within ``max_iter`` evaluations.
    """
    p = np.clip(p0, lower, upper)
    r, jac = model.evaluate(p)
    cost = 0.5 * np.einsum("pn,pn->p", r, r)
    n_win, n_par = p.shape
    dof = np.maximum(model.n_points - n_par, 1)
    lam = np.full(n_win, 1e-3)
    nu = np.full(n_win, 2.0)
    running = np.ones(n_win, dtype=bool)
    converged = np.zeros(n_win, dtype=bool)
    diag_idx = np.arange(n_par)
    for _ in range(max_iter):
        jac_t = jac.transpose(0, 2, 1)
        grad = (jac_t @ r[:, :, None])[:, :, 0]
        a0 = jac_t @ jac
        diag = a0[:, diag_idx, diag_idx]
        frozen = ((p <= lower) & (grad > 0)) | ((p >= upper) & (grad < 0))
        scale = np.maximum(diag, 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300)
        free = ~frozen
        a = a0 * (free[:, :, None] & free[:, None, :])
        g = np.where(frozen, 0.0, grad)
        # the damped (Levenberg-Marquardt) and undamped (Gauss-Newton) systems, solved together
        undamped = a.copy()
        undamped[:, diag_idx, diag_idx] = np.where(frozen, 1.0, scale)
        a[:, diag_idx, diag_idx] = np.where(frozen, 1.0, diag + lam[:, None] * scale)
        steps = _solve_batch(np.concatenate((a, undamped)), np.concatenate((g, g)))
        decrement = 0.5 * np.einsum("pk,pk->p", g, steps[n_win:])
        small = running & (decrement <= tol * 2.0 * cost / dof)
        converged |= small
        running &= ~small
        if not running.any():
            break
        trial = np.where(running[:, None], np.clip(p - steps[:n_win], lower, upper), p)
        delta = trial - p
        predicted = -np.einsum("pk,pk->p", grad, delta) - 0.5 * np.einsum("pk,pkl,pl->p", delta, a0, delta)
        r_new, jac_new = model.evaluate(trial)
        cost_new = 0.5 * np.einsum("pn,pn->p", r_new, r_new)
        better = running & np.isfinite(cost_new) & (cost_new <= cost)
        gain = (cost - cost_new) / np.where(predicted > 0, predicted, np.inf)
        p = np.where(better[:, None], trial, p)
        r = np.where(better[:, None], r_new, r)
        jac = np.where(better[:, None, None], jac_new, jac)
        cost = np.where(better, cost_new, cost)
        # Nielsen's damping update: shrink after good steps, grow after poor or failed ones
        shrink = np.maximum(1.0 / 3.0, 1.0 - (2.0 * np.clip(gain, 0.0, 1.0) - 1.0) ** 3)
        lam = np.where(better, np.maximum(lam * shrink, 1e-12), np.where(running, lam * nu, lam))
        nu = np.where(better, 2.0, np.where(running, nu * 2.0, nu))
        stuck = running & (lam > 1e12)
        converged |= stuck
        running &= ~stuck
        if not running.any():
            break
    return p, cost, jac, converged


def _fit_windows(
    windows: Sequence[_Window], ka1_A: float, ka2_A: float | None, ka2_ratio: float | None, gain: float = 1.0
) -> list[PeakFit]:
    """Fit every window's doublet (jointly vectorised, independent parameters) and judge it."""
    if not windows:
        return []
    ratio = float(ka2_ratio) if ka2_A is not None and ka2_ratio else 0.0
    model = _DoubletBatch(windows, ka1_A, ka2_A, ratio, gain)
    p0 = np.array([w.p0 for w in windows])
    lower = np.array([w.lower for w in windows])
    upper = np.array([w.upper for w in windows])
    params, cost, jac, converged = _levenberg_marquardt(model, p0, lower, upper)
    out = []
    for i, w in enumerate(windows):
        p = params[i]
        if not np.all(np.isfinite(p)):
            out.append(_failed_peak(w.hkl, w.expected_deg, "fit failed: non-finite parameters"))
            continue
        dof = max(w.xs.size - p.size, 1)
        chi2_red = float(2.0 * cost[i] / dof)
        try:
            cov = np.linalg.inv(jac[i].T @ jac[i]) * max(chi2_red, 1.0)
            err = float(np.sqrt(cov[0, 0]))
        except np.linalg.LinAlgError:
            err = float("nan")
        background = float(p[4] + p[5] * (p[0] - w.xc))
        noise = np.sqrt(gain * max(background + p[3], gain))
        reason = ""
        if not converged[i]:
            reason = "fit did not converge (too many iterations)"
        elif p[3] < 5.0 * noise:
            reason = f"not significant (height {p[3]:.1f} < 5 x noise {noise:.1f})"
        elif abs(p[0] - w.xc) > 0.98 * w.max_shift_deg:
            reason = "position ran into the search bound"
        elif p[1] >= 0.98 * w.fwhm_hi:
            reason = "width ran into its upper bound (no distinct peak)"
        elif not np.isfinite(err) or err <= 0:
            reason = "position uncertainty undefined"
        out.append(
            PeakFit(
                w.hkl,
                w.expected_deg,
                float(p[0]),
                err,
                float(p[1]),
                float(p[2]),
                float(p[3]),
                background,
                not reason,
                reason,
                chi2_red,
            )
        )
    return out


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

    The fit is a Poisson-weighted, bounded Levenberg-Marquardt least-squares fit with
    analytic derivatives. Returns a :class:`PeakFit`; ``ok`` is False when the window holds
    too few points, the fit fails, the peak is not significant (height below 5 standard
    deviations of the counting noise), or its position or width ran into a bound.
    """
    x = np.asarray(two_theta_deg, dtype=float)
    y = np.asarray(intensity, dtype=float)
    win = _window(x, y, center_guess_deg, half_window_deg, fwhm_guess_deg, max_shift_deg, hkl, expected_deg)
    if isinstance(win, PeakFit):
        return win
    return _fit_windows([win], ka1_A, ka2_A, ka2_ratio)[0]


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
    with_ka2 = _fit_windows(windows, ka1_A, ka2_A, ka2_ratio, gain) if ka2_A and ka2_ratio else None
    ka2_note = "the file states no K-alpha2"
    use_ka2 = with_ka2 is not None
    fits = with_ka2
    if with_ka2 is not None and ka2_decide:
        alone = _fit_windows(windows, ka1_A, None, None, gain)
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
