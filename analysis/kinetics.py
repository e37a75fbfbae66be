"""Relaxation (LMCT) kinetics: the rate law, its exact solution and a fit at constant temperature.

Rate law for the remaining Ni-intermediate fraction ``u`` at constant temperature::

    du/dt = -k(T) exp(-beta (1 - u)) u,   k(T) = k413 exp(-Ea/R (1/T - 1/413.15 K))

Separating variables gives ``E1(beta u) = E1(beta u0) + k t exp(-beta)`` with ``E1`` the
exponential integral, which :func:`advance_fraction` inverts by Newton's method in ln u.
Fits over recorded (non-isothermal) histories are in :mod:`analysis.kinetics_histories`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import exp1

R_J_MOL_K = 8.314462618
T_REF_K = 413.15


def rate_constant(temperature_C: np.ndarray | float, k413_per_s: float, ea_J_mol: float) -> np.ndarray:
    """Arrhenius rate constant k(T) in 1/s."""
    t_k = np.asarray(temperature_C, dtype=float) + 273.15
    return k413_per_s * np.exp(-ea_J_mol / R_J_MOL_K * (1.0 / t_k - 1.0 / T_REF_K))


def advance_fraction(u0: np.ndarray | float, ktau: np.ndarray | float, beta: float) -> np.ndarray:
    """``u`` after an Arrhenius-weighted time ``ktau = int k(T(t)) dt`` starting from ``u0``.

    Solves ``E1(beta u) = E1(beta u0) + exp(-beta) ktau`` by Newton's method in ln u.
    """
    u0a, ka = np.broadcast_arrays(np.asarray(u0, float), np.asarray(ktau, float))
    beta = max(float(beta), 1e-9)
    target = exp1(beta * u0a) + np.clip(ka, 0.0, None) * np.exp(-beta)
    top = np.log(np.clip(u0a, 1e-300, None))
    y = top.copy()
    for _ in range(80):
        u = np.exp(y)
        step = (exp1(beta * u) - target) / np.exp(-beta * u)
        y = np.clip(y + step, -700.0, top)
        if np.all(np.abs(step) < 1e-13):
            break
    return np.exp(y)


def remaining_fraction(
    duration_s: np.ndarray | float,
    temperature_C: np.ndarray | float,
    k413_per_s: float,
    ea_J_mol: float,
    beta: float,
    u0: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Remaining Ni-intermediate fraction after relaxing at constant temperature.

    Parameters
    ----------
    duration_s : array_like
        Relaxation times.
    temperature_C : array_like
        Relaxation temperatures (broadcast with ``duration_s``).
    k413_per_s : float
        Rate constant at 413.15 K (140 C).
    ea_J_mol : float
        Activation energy.
    beta : float
        Slow-down exponent (> 0).
    u0 : array_like
        Fraction at the start.

    Returns
    -------
    ndarray
        ``u`` for each (duration, temperature).
    """
    t, temp = np.broadcast_arrays(np.asarray(duration_s, float), np.asarray(temperature_C, float))
    return advance_fraction(u0, rate_constant(temp, k413_per_s, ea_J_mol) * t, beta)


@dataclass(frozen=True)
class KineticsFit:
    """Fitted relaxation kinetics with standard errors (from the Jacobian at the optimum)."""

    k413_per_s: float
    ea_J_mol: float
    beta: float
    k413_stderr: float
    ea_stderr: float
    beta_stderr: float
    rms_residual: float
    n: int
    covariance: np.ndarray = field(repr=False)

    def predict(
        self, duration_s: np.ndarray, temperature_C: np.ndarray, u0: np.ndarray | float = 1.0
    ) -> np.ndarray:
        """Model ``u`` at the given conditions."""
        return remaining_fraction(duration_s, temperature_C, self.k413_per_s, self.ea_J_mol, self.beta, u0)

    def to_dict(self) -> dict[str, float]:
        """Plain dictionary of the fit results (every field but the covariance)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.repr}


def fit_kinetics_arrays(
    duration_s: Sequence[float] | np.ndarray,
    temperature_C: Sequence[float] | np.ndarray,
    u: Sequence[float] | np.ndarray,
    u0: Sequence[float] | np.ndarray | float = 1.0,
) -> KineticsFit:
    """Least-squares fit of k413, Ea and beta to remaining fractions.

    Parameters
    ----------
    duration_s, temperature_C, u : array_like
        One entry per cell: relaxation time, temperature, remaining Ni fraction.
    u0 : array_like or float
        Fraction at the start of relaxation (1 after a charge to 4.8 V).

    Returns
    -------
    KineticsFit

    Raises
    ------
    ValueError
        With fewer than four finite points.
    """
    t = np.asarray(duration_s, float)
    temp = np.asarray(temperature_C, float)
    y = np.asarray(u, float)
    u0a = np.broadcast_to(np.asarray(u0, float), y.shape)
    ok = np.isfinite(t) & np.isfinite(temp) & np.isfinite(y) & np.isfinite(u0a)
    t, temp, y, u0a = t[ok], temp[ok], y[ok], u0a[ok]
    if y.size < 4:
        raise ValueError(f"a kinetics fit of 3 parameters needs at least 4 cells, got {y.size}")

    def resid(p: np.ndarray) -> np.ndarray:
        return remaining_fraction(t, temp, np.exp(p[0]), p[1] * 1e3, p[2], u0a) - y

    best = None
    lower, upper = [np.log(1e-12), 1.0, 1e-6], [np.log(10.0), 300.0, 60.0]
    for lnk in (np.log(1e-4), np.log(1e-2)):
        for beta in (1.0, 5.0, 12.0):
            res = least_squares(resid, [lnk, 60.0, beta], bounds=(lower, upper), x_scale=[1.0, 10.0, 1.0])
            if best is None or res.cost < best.cost:
                best = res
    assert best is not None
    dof = max(y.size - 3, 1)
    s2 = 2.0 * best.cost / dof
    jac = best.jac
    try:
        cov = np.linalg.inv(jac.T @ jac) * s2
    except np.linalg.LinAlgError:
        cov = np.full((3, 3), np.nan)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    k413 = float(np.exp(best.x[0]))
    return KineticsFit(
        k413_per_s=k413,
        ea_J_mol=float(best.x[1] * 1e3),
        beta=float(best.x[2]),
        k413_stderr=float(k413 * se[0]),
        ea_stderr=float(se[1] * 1e3),
        beta_stderr=float(se[2]),
        rms_residual=float(np.sqrt(2.0 * best.cost / y.size)),
        n=int(y.size),
        covariance=cov,
    )


def fit_relaxation_kinetics(
    table: pd.DataFrame,
    ni_reference_mAh_g: float,
    temperature_col: str = "temperature_C",
    duration_col: str = "duration_s",
    ni_col: str = "ni_plateau_mAh_g",
    u0_col: str | None = None,
) -> KineticsFit:
    """Fit the relaxation rate law to a campaign table.

    ``u`` = Ni-plateau capacity / the in-cycling Ni plateau (``ni_reference_mAh_g``).

    Parameters
    ----------
    table : DataFrame
        One row per cell with relaxation temperature, duration and Ni plateau.
    ni_reference_mAh_g : float
        The in-cycling (unrelaxed) Ni-plateau capacity.
    temperature_col, duration_col, ni_col : str
        Column names.
    u0_col : str, optional
        Column with each cell's starting fraction; default 1.

    Returns
    -------
    KineticsFit
    """
    missing = [c for c in (temperature_col, duration_col, ni_col) if c not in table.columns]
    if missing:
        raise ValueError(f"campaign table lacks column(s) {missing}")
    u = table[ni_col].to_numpy(float) / ni_reference_mAh_g
    u0 = table[u0_col].to_numpy(float) if u0_col else 1.0
    return fit_kinetics_arrays(table[duration_col], table[temperature_col], u, u0)
