"""Relaxation kinetics fitted over recorded temperature histories (each cell's whole path from
the end of its charge to its discharge), with fit and bootstrap uncertainties."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from analysis.kinetics import R_J_MOL_K, advance_fraction
from analysis.thermal_history import ThermalHistory


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
