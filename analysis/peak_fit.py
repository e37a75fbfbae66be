"""Single reflections of a powder pattern: Bragg geometry, pseudo-Voigt K-alpha doublets, windows
around expected positions and their batched Levenberg-Marquardt fit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from analysis.lattice_types import HKL, PeakFit
from analysis.patterns import CU_KA1_A, CU_KA2_A, CU_KA2_RATIO


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
    window centre and background slope. Padding points carry zero weight. ``ratio`` is the
    K-alpha2/K-alpha1 ratio of every window, or one per window (0: K-alpha1 alone), so that a
    doublet fit and a K-alpha1-only fit of the same windows run as one batch.
    """

    def __init__(
        self,
        windows: Sequence[_Window],
        ka1_A: float,
        ka2_A: float | None,
        ratio: float | np.ndarray,
        gain: float = 1.0,
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
        ratios = np.broadcast_to(np.asarray(ratio, dtype=float), (len(windows),))
        self.ratio = ratios[:, None]
        self.k = ka2_A / ka1_A if ka2_A is not None and ratios.any() else 0.0
        self.n_points = np.array([w.xs.size for w in windows])

    def _components(self, x: np.ndarray, center: np.ndarray, fwhm: np.ndarray, eta: np.ndarray):
        """Pseudo-Voigt shape and its derivatives by centre, width and eta."""
        inv_half = (2.0 / fwhm)[:, None]
        u = (x - center[:, None]) * inv_half
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

    def evaluate(self, p: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Weighted residuals (windows x points) and Jacobian (windows x points x 6), of the
        windows ``rows`` only when given (``p`` then holds their parameters)."""
        x, y, w, dx, ratio = self.x, self.y, self.weights, self.dx, self.ratio
        if rows is not None:
            x, y, w, dx, ratio = x[rows], y[rows], w[rows], dx[rows], ratio[rows]
        f, dc, dw, de = self._components(x, p[:, 0], p[:, 1], p[:, 2])
        if self.k:
            c2, dc2_dc1 = self._ka2(p[:, 0])
            f2, dc2, dw2, de2 = self._components(x, c2, p[:, 1], p[:, 2])
            f = f + ratio * f2
            dc = dc + (ratio * dc2_dc1[:, None]) * dc2
            dw = dw + ratio * dw2
            de = de + ratio * de2
        h = p[:, 3:4]
        r = (h * f + p[:, 4:5] + p[:, 5:6] * dx - y) * w
        jac = np.stack((h * dc * w, h * dw * w, h * de * w, f * w, w, dx * w), axis=-1)
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
        if running.all():
            r_new, jac_new = model.evaluate(trial)
        else:  # windows that have converged keep their residuals: only the others are evaluated
            rows = np.flatnonzero(running)
            r_new, jac_new = r.copy(), jac.copy()
            r_new[rows], jac_new[rows] = model.evaluate(trial[rows], rows)
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
    ratio = float(ka2_ratio) if ka2_A is not None and ka2_ratio else 0.0
    return _fit_batch(list(windows), np.full(len(windows), ratio), ka1_A, ka2_A, gain)


def _fit_windows_with_and_without_ka2(
    windows: Sequence[_Window], ka1_A: float, ka2_A: float, ka2_ratio: float, gain: float = 1.0
) -> tuple[list[PeakFit], list[PeakFit]]:
    """:func:`_fit_windows` with the K-alpha2 doublet and with K-alpha1 alone, as one batch.

    Each window's fit is independent of the others in the batch, so this gives what the two
    calls give, with the per-iteration overhead of the vectorised fit paid once.
    """
    n = len(windows)
    ratios = np.concatenate((np.full(n, float(ka2_ratio)), np.zeros(n)))
    fits = _fit_batch(list(windows) * 2, ratios, ka1_A, ka2_A, gain)
    return fits[:n], fits[n:]


def _fit_batch(
    windows: list[_Window], ratios: np.ndarray, ka1_A: float, ka2_A: float | None, gain: float
) -> list[PeakFit]:
    """Fit and judge every window (K-alpha2/K-alpha1 ratio ``ratios[i]``, 0 for none)."""
    if not windows:
        return []
    model = _DoubletBatch(windows, ka1_A, ka2_A, ratios, gain)
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
