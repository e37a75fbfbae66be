"""Relaxation (LMCT) kinetics: the rate law, its exact solution and a campaign fit.

Rate law for the remaining Ni-intermediate fraction ``u`` at constant temperature::

    du/dt = -k(T) exp(-beta (1 - u)) u,   k(T) = k413 exp(-Ea/R (1/T - 1/413.15 K))

Separating variables gives ``E1(beta u) = E1(beta u0) + k t exp(-beta)`` with ``E1`` the
exponential integral, which :func:`remaining_fraction` inverts by Newton's method in ln u.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
    t, temp, u0a = np.broadcast_arrays(
        np.asarray(duration_s, float), np.asarray(temperature_C, float), np.asarray(u0, float)
    )
    beta = max(float(beta), 1e-9)
    k = rate_constant(temp, k413_per_s, ea_J_mol)
    target = exp1(beta * u0a) + k * np.clip(t, 0.0, None) * np.exp(-beta)
    y = np.log(np.clip(u0a, 1e-300, None))
    for _ in range(60):
        u = np.exp(y)
        g = exp1(beta * u) - target
        step = g / np.exp(-beta * u)
        y = np.clip(y + step, -700.0, np.log(np.clip(u0a, 1e-300, None)))
        if np.all(np.abs(step) < 1e-13):
            break
    return np.exp(y)


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
        """Plain dictionary of the fit results."""
        return {
            "k413_per_s": self.k413_per_s,
            "k413_stderr": self.k413_stderr,
            "ea_J_mol": self.ea_J_mol,
            "ea_stderr": self.ea_stderr,
            "beta": self.beta,
            "beta_stderr": self.beta_stderr,
            "rms_residual": self.rms_residual,
            "n": self.n,
        }


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


# ---------------------------------------------------------------------------------------------
# Fits over recorded temperature histories


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
        if np.all(np.abs(step) < 1e-12):
            break
    return np.exp(y)


@dataclass(frozen=True)
class ThermalHistory:
    """What one sample's temperature was, from the end of its charge to its discharge.

    ``times_s`` (increasing, absolute clock seconds) and ``temperatures_C``, linear in between.
    """

    times_s: np.ndarray
    temperatures_C: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.times_s, float)
        c = np.asarray(self.temperatures_C, float)
        if t.shape != c.shape or t.size < 2 or np.any(np.diff(t) < 0) or not np.all(np.isfinite(c)):
            raise ValueError(
                "a thermal history needs >= 2 increasing times and finite temperatures of the same "
                "length, e.g. ThermalHistory(np.array([0.0, 3600.0]), np.array([25.0, 25.0]))"
            )
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "temperatures_C", c)

    @property
    def is_isothermal(self) -> bool:
        """True when the temperature never changed (a sample that stayed on the bench)."""
        return bool(np.ptp(self.temperatures_C) == 0)

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1] - self.times_s[0])

    def quadrature(self, max_step_K: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Nodes ``1/T - 1/413.15 K`` and weights (s) integrating any ``f(T)`` over the history
        (midpoint rule on sub-intervals of at most ``max_step_K``)."""
        xs: list[np.ndarray] = []
        ws: list[np.ndarray] = []
        t, c = self.times_s, self.temperatures_C
        for i in range(t.size - 1):
            dt = t[i + 1] - t[i]
            if dt <= 0:
                continue
            n = max(1, int(np.ceil(abs(c[i + 1] - c[i]) / max_step_K)))
            mid = c[i] + (c[i + 1] - c[i]) * (np.arange(n) + 0.5) / n
            xs.append(1.0 / (mid + 273.15) - 1.0 / T_REF_K)
            ws.append(np.full(n, dt / n))
        if not xs:
            return np.zeros(1), np.zeros(1)
        x, w = np.concatenate(xs), np.concatenate(ws)
        # merge equal temperatures (long holds and bench waits) to keep fits fast
        key = np.round(x, 12)
        uniq, inv = np.unique(key, return_inverse=True)
        return uniq, np.bincount(inv, weights=w)


def history_from_record(
    start_s: float,
    end_s: float,
    bench_C: float,
    oven_times_s: Sequence[float] | np.ndarray = (),
    oven_C: Sequence[float] | np.ndarray = (),
    transfers: Sequence[tuple[float, str]] = (),
) -> ThermalHistory:
    """A sample's history from what a campaign records.

    Parameters
    ----------
    start_s, end_s : float
        When the powder was ready (end of charge, washed and dried) and when the sample's
        discharge started (clock seconds).
    bench_C : float
        Bench (room) temperature, where the sample is whenever it is not in the oven.
    oven_times_s, oven_C : array_like
        The oven's temperature log.
    transfers : sequence of (time_s, location)
        Each move of the sample; ``"bench"`` takes it out of the oven, any other location
        (an oven's name) puts it in.

    Returns
    -------
    ThermalHistory
    """
    ot = np.asarray(oven_times_s, float)
    oc = np.asarray(oven_C, float)
    order = np.argsort(ot, kind="stable")
    ot, oc = ot[order], oc[order]
    times = [float(start_s)]
    temps = [float(bench_C)]
    inside_since: float | None = None
    for when, where in sorted(transfers, key=lambda m: m[0]):
        when = min(max(float(when), float(start_s)), float(end_s))
        if where != "bench" and inside_since is None:
            inside_since = when
        elif where == "bench" and inside_since is not None:
            if ot.size == 0:
                raise ValueError("the sample went into an oven but there is no oven log")
            inner = (ot > inside_since) & (ot < when)
            seg_t = np.concatenate([[inside_since], ot[inner], [when]])
            seg_c = np.interp(seg_t, ot, oc)
            times += [inside_since, *seg_t, when]
            temps += [float(bench_C), *seg_c, float(bench_C)]
            inside_since = None
    if inside_since is not None:
        raise ValueError("the sample went into an oven and never came out before its discharge")
    times.append(float(end_s))
    temps.append(float(bench_C))
    return ThermalHistory(np.asarray(times), np.asarray(temps))


@dataclass(frozen=True)
class HistoryFit:
    """Rate-law parameters fitted over recorded histories, with fit and bootstrap errors.

    ``u = 1`` is the Ni intermediate at the end of the reference charge (``reference_state``);
    ``u0`` gives the other charge states' starting fraction on that scale. ``ni_ref_mAh_g``
    is the Ni-plateau capacity that ``u = 1`` gives on discharge.
    """

    k413_per_s: float
    ea_J_mol: float
    beta: float
    ni_ref_mAh_g: float
    u0: dict[str, float]
    reference_state: str
    stderr: dict[str, float]
    bootstrap_std: dict[str, float]
    interval95: dict[str, tuple[float, float]]
    rms_residual_mAh_g: float
    n: int
    residuals_mAh_g: np.ndarray = field(repr=False)
    predicted_mAh_g: np.ndarray = field(repr=False)

    def uncertainty(self, name: str) -> float:
        """The larger of the fit's standard error and the bootstrap spread (half-width of the central 68 %)."""
        return float(np.nanmax([self.stderr.get(name, np.nan), self.bootstrap_std.get(name, np.nan)]))

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "Ea_kJ_mol": self.ea_J_mol / 1e3,
            "Ea_kJ_mol_err": self.uncertainty("Ea_kJ_mol"),
            "Ea_kJ_mol_95": list(self.interval95["Ea_kJ_mol"]),
            "beta": self.beta,
            "beta_err": self.uncertainty("beta"),
            "beta_95": list(self.interval95["beta"]),
            "k413_per_s": self.k413_per_s,
            "k413_per_s_err": self.uncertainty("k413_per_s"),
            "k413_per_s_95": list(self.interval95["k413_per_s"]),
            "ni_ref_mAh_g": self.ni_ref_mAh_g,
            "u_equals_1_at": f"end of the charge to {self.reference_state}",
            "u0": dict(self.u0),
            "rms_residual_mAh_g": self.rms_residual_mAh_g,
            "n_cells": self.n,
        }
        return out


_NAMES = ("ln_k413", "Ea_kJ_mol", "beta", "ln_ni_ref")


def _state_order(states: Sequence[str]) -> list[str]:
    """Charge states, the one that leaves the most intermediate (highest voltage) first."""

    def rank(s: str) -> tuple[int, float]:
        text = str(s).replace(" ", "")
        try:
            if text.endswith("V"):
                return (0, -float(text[:-1]))
        except ValueError:
            pass
        return (1, 0.0)

    return sorted(dict.fromkeys(states), key=rank)


def fit_kinetics_histories(
    histories: Sequence[ThermalHistory],
    ni_mAh_g: Sequence[float] | np.ndarray,
    charge_state: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    n_boot: int = 60,
    seed: int = 0,
) -> HistoryFit:
    """Fit k413, Ea, beta (and the Ni plateau of ``u = 1``) to cells with recorded histories.

    Each cell's Ni plateau is modelled as ``ni_ref * u`` with ``u`` integrated over its whole
    temperature history from ``u0`` (1 for the reference charge state, the highest-voltage one
    present; fitted for the others). Uncertainties: standard errors from the Jacobian at the
    optimum, and the spread of refits (half-width of their central 68 %) on two-stage bootstrap resamples (the groups,
    i.e. conditions, within each charge state, then the cells within each group); 95 % intervals are the wider of the Jacobian (t distribution) and
    the bootstrap percentile intervals.

    Parameters
    ----------
    histories : sequence of ThermalHistory
        One per cell.
    ni_mAh_g : array_like
        Ni-plateau capacity of each cell's discharge.
    charge_state : sequence of str, optional
        What each cell's powder was charged to ("4.5 V", "4.8 V", "200 mAh/g"); default all the same.
    groups : sequence of str, optional
        Condition of each cell, for the bootstrap (default: each cell its own group).
    n_boot : int
        Bootstrap refits (0: none).
    seed : int
        Bootstrap random seed.

    Returns
    -------
    HistoryFit

    Raises
    ------
    ValueError
        With fewer cells than parameters + 2, or no spread in the histories.
    """
    from scipy import stats as st

    y = np.asarray(ni_mAh_g, float)
    n = y.size
    if len(histories) != n:
        raise ValueError("one history per cell")
    states = list(charge_state) if charge_state is not None else ["the powder's charge"] * n
    order = _state_order(states)
    ref, others = order[0], order[1:]
    sidx = np.array([order.index(s) for s in states])
    quad = [h.quadrature() for h in histories]
    xs = np.concatenate([q[0] for q in quad])
    ws = np.concatenate([q[1] for q in quad])
    cell_of = np.concatenate([np.full(q[0].size, i) for i, q in enumerate(quad)])
    ok = np.isfinite(y)
    n_par = 4 + len(others)
    if ok.sum() < n_par + 2:
        raise ValueError(
            f"a kinetics fit of {n_par} parameters needs at least {n_par + 2} cells, got {ok.sum()}"
        )

    def model(p: np.ndarray, use: np.ndarray) -> np.ndarray:
        lnk, ea, beta, lnn = p[:4]
        u0 = np.concatenate([[1.0], p[4:]])[sidx]
        boltz = np.exp(-ea * 1e3 / R_J_MOL_K * xs)
        tau = np.bincount(cell_of, weights=ws * boltz, minlength=n)
        u = advance_fraction(u0, np.exp(lnk) * tau, beta)
        return (np.exp(lnn) * u)[use]

    def fit(use: np.ndarray, starts: list[np.ndarray]) -> Any:
        best = None
        lower = [np.log(1e-12), 5.0, 0.01, np.log(1e-3)] + [0.02] * len(others)
        upper = [np.log(10.0), 300.0, 40.0, np.log(1e4)] + [1.0] * len(others)
        for x0 in starts:
            res = least_squares(lambda p: model(p, use) - y[use], np.clip(x0, lower, upper),
                                bounds=(lower, upper), x_scale=[1.0, 10.0, 1.0, 0.1] + [0.1] * len(others))  # fmt: skip
            if best is None or res.cost < best.cost:
                best = res
        return best

    use = np.flatnonzero(ok)
    ymax = float(np.nanmax(y[use]))
    starts = [
        np.array([lnk, ea, b, np.log(ymax * 1.1)] + [0.7] * len(others))
        for lnk in (np.log(1e-4), np.log(1e-2))
        for ea in (50.0, 90.0)
        for b in (2.0, 8.0)
    ]
    best = fit(use, starts)
    dof = max(use.size - n_par, 1)
    s2 = 2.0 * best.cost / dof
    try:
        cov = np.linalg.inv(best.jac.T @ best.jac) * s2
    except np.linalg.LinAlgError:
        cov = np.full((n_par, n_par), np.nan)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    p = best.x

    def derived(q: np.ndarray) -> dict[str, float]:
        return {"k413_per_s": float(np.exp(q[0])), "Ea_kJ_mol": float(q[1]), "beta": float(q[2]),
                "ni_ref_mAh_g": float(np.exp(q[3]))}  # fmt: skip

    values = derived(p)
    stderr = {"k413_per_s": values["k413_per_s"] * se[0], "Ea_kJ_mol": se[1], "beta": se[2],
              "ni_ref_mAh_g": values["ni_ref_mAh_g"] * se[3]}  # fmt: skip
    tq = float(st.t.ppf(0.975, dof))
    interval = {
        "k413_per_s": (float(np.exp(p[0] - tq * se[0])), float(np.exp(p[0] + tq * se[0]))),
        "Ea_kJ_mol": (float(p[1] - tq * se[1]), float(p[1] + tq * se[1])),
        "beta": (float(p[2] - tq * se[2]), float(p[2] + tq * se[2])),
    }
    boot_std: dict[str, float] = {}
    if n_boot > 0:
        # Two-stage bootstrap: conditions resampled within each charge state (so a condition that
        # the model misses counts as one observation, not as its replicates), then the
        # replicate cells within each drawn condition. The unheated reference of each charge
        # state is always kept: it anchors that state's start.
        rng = np.random.default_rng(seed)
        grp = np.asarray(list(groups) if groups is not None else [str(i) for i in range(n)])[use]
        st_of = np.asarray(states)[use]
        members = {g: use[grp == g] for g in dict.fromkeys(grp)}
        strata: dict[str, list[str]] = {}
        for g in members:
            strata.setdefault(str(st_of[grp == g][0]), []).append(g)
        pinned = {g for g, m in members.items() if all(histories[i].is_isothermal for i in m)}
        draws = []
        for _ in range(n_boot):
            chosen: list[str] = []
            for names in strata.values():
                free = [g for g in names if g not in pinned]
                chosen += [g for g in names if g in pinned]
                if free:
                    chosen += list(rng.choice(free, size=len(free), replace=True))
            pick = np.concatenate(
                [rng.choice(members[g], size=members[g].size, replace=True) for g in chosen]
            )
            res = fit(pick, [p])
            draws.append(derived(res.x))
        frame = pd.DataFrame(draws)
        for name in ("k413_per_s", "Ea_kJ_mol", "beta", "ni_ref_mAh_g"):
            # the spread of the refits as the half-width of their central 68 %: a resample that
            # leaves a parameter unidentified (a refit at a bound) widens the 95 % interval
            # below but does not turn the standard uncertainty into that bound
            lo68, hi68 = np.percentile(frame[name], [15.865, 84.135])
            boot_std[name] = float(0.5 * (hi68 - lo68))
        for name in ("k413_per_s", "Ea_kJ_mol", "beta"):
            lo, hi = np.percentile(frame[name], [2.5, 97.5])
            interval[name] = (min(interval[name][0], float(lo)), max(interval[name][1], float(hi)))
    pred = np.full(n, np.nan)
    pred[use] = model(p, use)
    resid = y - pred
    return HistoryFit(
        k413_per_s=values["k413_per_s"],
        ea_J_mol=values["Ea_kJ_mol"] * 1e3,
        beta=values["beta"],
        ni_ref_mAh_g=values["ni_ref_mAh_g"],
        u0={ref: 1.0, **{s: float(v) for s, v in zip(others, p[4:], strict=True)}},
        reference_state=ref,
        stderr={k: float(v) for k, v in stderr.items()},
        bootstrap_std=boot_std,
        interval95=interval,
        rms_residual_mAh_g=float(np.sqrt(np.nanmean(resid**2))),
        n=int(use.size),
        residuals_mAh_g=resid,
        predicted_mAh_g=pred,
    )
