"""The numbers a titration campaign is run for: E_eq from the OCV line, and the LMCT rate law
(Ea, beta, k413) fitted over each cell's recorded temperature history; per-condition means and
standard deviations with the runs behind each.

:func:`fit_campaign` takes the campaign table (one row per cell, see
:func:`analysis.campaign.campaign_table`) and one :class:`~analysis.thermal_history.ThermalHistory`
per cell, and returns plain data (JSON-ready); :func:`add_sections` draws its figures into a
report page (Arrhenius plot, log-time kinetics, OCV vs Ni fraction per charge state).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats
from scipy.special import exp1

from analysis.campaign import condition_columns
from analysis.kinetics import R_J_MOL_K, T_REF_K
from analysis.kinetics_histories import HistoryFit, fit_kinetics_histories
from analysis.ocv import fit_ocv_line
from analysis.thermal_history import ThermalHistory

#: The charge state the paper's OCV extrapolation used (Fig. 6e-f: powder charged to 4.5 V).
OCV_CHARGE_STATE = "4.5 V"
#: An OCV line needs the Ni fraction to spread at least this much across its cells.
MIN_FRACTION_SPREAD = 0.2


def _state(value: Any) -> str:
    text = str(value) if value is not None and value == value else "unknown"
    return text.strip()


def _same_state(a: str, b: str) -> bool:
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


def condition_summary(table: pd.DataFrame, conditions: list[str]) -> list[dict[str, Any]]:
    """Per condition: mean and std of each measure, n, and the runs (cells) behind it."""
    measures = [m for m in ("ni_plateau_mAh_g", "o_plateau_mAh_g", "ocv_V") if m in table.columns]
    rows = []
    for key, g in table.groupby(conditions, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = {
            c: (v.item() if hasattr(v, "item") else v) for c, v in zip(conditions, key, strict=True)
        }
        row["n"] = int(len(g))
        for m in measures:
            vals = g[m].to_numpy(float)
            row[f"{m}_mean"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else None
            row[f"{m}_std"] = float(np.nanstd(vals, ddof=1)) if np.isfinite(vals).sum() > 1 else None
        row["cells"] = [str(c) for c in g.get("cell", pd.Series(dtype=str))]
        row["runs"] = [str(r) for r in g.get("run", pd.Series(dtype=str))]
        rows.append(row)
    return rows


def ocv_fits(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One OCV-vs-Ni-fraction line per charge state, where it means something.

    Only titrations of a charged powder (``charged_to`` known) count. The fraction is each
    cell's Ni plateau over the mean of that charge state's unheated
    cells (``duration_s == 0``; else its largest condition mean). A line is fitted only when
    the cells have an OCV and the fraction spreads by at least :data:`MIN_FRACTION_SPREAD`;
    its intercept is the equilibrium potential only for the paper's charge state
    (:data:`OCV_CHARGE_STATE`); after other charges it includes the O-couple hysteresis.
    """
    out: list[dict[str, Any]] = []
    if not {"ocv_V", "ni_plateau_mAh_g"} <= set(table.columns):
        return out
    states = (
        table["charged_to"].map(_state)
        if "charged_to" in table.columns
        else pd.Series("unknown", table.index)
    )
    for state in dict.fromkeys(states):
        if state in ("", "unknown", "None"):  # not a titration of one charged powder: no OCV line
            continue
        g = table[states == state].dropna(subset=["ocv_V", "ni_plateau_mAh_g"])
        if len(g) < 3:
            continue
        ref = g.loc[g["duration_s"] == 0, "ni_plateau_mAh_g"] if "duration_s" in g.columns else g.iloc[:0]
        ref_value = float(ref.mean()) if len(ref) else float(g["ni_plateau_mAh_g"].max())
        frac = g["ni_plateau_mAh_g"].to_numpy(float) / ref_value
        if np.ptp(frac) < MIN_FRACTION_SPREAD:
            continue
        fit = fit_ocv_line(frac, g["ocv_V"].to_numpy(float))
        tq = float(stats.t.ppf(0.975, max(fit.n - 2, 1)))
        se = fit.intercept_stderr
        # replicate scatter: refit on bootstrap resamples of the cells within each condition
        rng = np.random.default_rng(0)
        conds = [c for c in ("campaign", "temperature_C", "duration_s") if c in g.columns]
        members = [np.flatnonzero(m) for m in (g.groupby(conds).ngroup().to_numpy()[:, None] ==
                                                np.arange(g.groupby(conds).ngroups)).T] if conds else [np.arange(len(g))]  # fmt: skip
        draws = []
        for _ in range(200):
            pick = np.concatenate([rng.choice(m, size=m.size, replace=True) for m in members])
            if np.ptp(frac[pick]) > 0:
                res = stats.linregress(frac[pick], g["ocv_V"].to_numpy(float)[pick])
                draws.append(res.intercept)
        boot = float(np.std(draws, ddof=1)) if len(draws) > 2 else float("nan")
        lo, hi = fit.intercept - tq * se, fit.intercept + tq * se
        if len(draws) > 2:
            blo, bhi = np.percentile(draws, [2.5, 97.5])
            lo, hi = min(lo, float(blo)), max(hi, float(bhi))
        is_eq = _same_state(state, OCV_CHARGE_STATE)
        out.append({
            "charge_state": state,
            "means_E_eq": is_eq,
            "note": ("intercept = equilibrium potential E_eq (powder charged to 4.5 V, as in the paper)" if is_eq
                     else f"powder charged to {state}: the intercept includes the O-couple hysteresis, not E_eq"),
            "intercept_V": fit.intercept,
            "intercept_V_err": float(np.nanmax([se, boot])),
            "intercept_V_95": [lo, hi],
            "slope_V": fit.slope,
            "slope_V_err": fit.slope_stderr,
            "r_squared": fit.r_squared,
            "ni_fraction_reference_mAh_g": ref_value,
            "n": fit.n,
            "cells": [str(c) for c in g.get("cell", pd.Series(dtype=str))],
            "runs": [str(r) for r in g.get("run", pd.Series(dtype=str))],
            "_frac": frac.tolist(),
            "_ocv": g["ocv_V"].tolist(),
        })  # fmt: skip
    return out


def fit_campaign(
    table: pd.DataFrame, histories: Mapping[str, ThermalHistory], n_boot: int = 60
) -> dict[str, Any]:
    """E_eq, the rate law and per-condition statistics of one or more titration campaigns.

    Parameters
    ----------
    table : DataFrame
        One row per cell: ``cell``, ``run``, ``charged_to``, ``campaign``, ``temperature_C``,
        ``duration_s``, ``ni_plateau_mAh_g``, ``o_plateau_mAh_g``, ``ocv_V``.
    histories : mapping
        Cell id -> its recorded thermal history (cells without one are left out of the kinetics fit).
    n_boot : int
        Bootstrap refits for the kinetics uncertainties.

    Returns
    -------
    dict
        ``E_eq_V`` (+ ``_err``, ``_95``, the charge state it assumes), ``Ea_kJ_mol``, ``beta``,
        ``k413_per_s`` (each with ``_err`` and ``_95``), ``kinetics`` (the whole fit, the cells
        and runs in it), ``ocv_lines`` and ``conditions`` (mean +- std and the runs of each).
    """
    measures = [m for m in ("ni_plateau_mAh_g", "o_plateau_mAh_g", "ocv_V") if m in table.columns]
    conds = condition_columns(table, measures)
    result: dict[str, Any] = {"conditions": condition_summary(table, conds) if conds else []}
    lines = ocv_fits(table)
    result["ocv_lines"] = [{k: v for k, v in line.items() if not k.startswith("_")} for line in lines]
    eq = next((line for line in lines if line["means_E_eq"]), None)
    if eq is not None:
        result.update(E_eq_V=eq["intercept_V"], E_eq_V_err=eq["intercept_V_err"], E_eq_V_95=eq["intercept_V_95"],
                      E_eq_charge_state=eq["charge_state"])  # fmt: skip
    else:
        result.update(
            E_eq_V=None,
            E_eq_note=f"no OCV series of powder charged to {OCV_CHARGE_STATE} with a spread of Ni fractions",
        )
    usable = (
        table[table["cell"].astype(str).isin(histories) & table["ni_plateau_mAh_g"].notna()]
        if "cell" in table
        else table.iloc[:0]
    )
    kin = None
    if len(usable) >= 7 and "temperature_C" in usable and usable["duration_s"].gt(0).any():
        hist = [histories[str(c)] for c in usable["cell"]]
        states = [_state(s) for s in usable.get("charged_to", pd.Series("unknown", usable.index))]
        groups = [
            f"{r.get('campaign', '')}|{r.get('temperature_C')}|{r.get('duration_s')}"
            for _, r in usable.iterrows()
        ]
        try:
            kin = fit_kinetics_histories(
                hist, usable["ni_plateau_mAh_g"].to_numpy(float), states, groups, n_boot=n_boot
            )
        except ValueError as exc:
            result["kinetics_note"] = str(exc)
    if kin is not None:
        d = kin.to_dict()
        result.update({k: d[k] for k in ("Ea_kJ_mol", "Ea_kJ_mol_err", "Ea_kJ_mol_95", "beta", "beta_err", "beta_95",
                                         "k413_per_s", "k413_per_s_err", "k413_per_s_95")})  # fmt: skip
        d["cells"] = [str(c) for c in usable["cell"]]
        d["runs"] = [str(r) for r in usable.get("run", pd.Series(dtype=str))]
        d["how"] = (
            "du/dt = -k(T) exp(-beta (1-u)) u integrated over each cell's recorded temperature history "
            "(bench from the end of the powder's charge, oven log while in the oven, bench until its "
            "discharge); Ni plateau = ni_ref u; errors: max(Jacobian SE, bootstrap over conditions and replicates: half-width of the central 68 % of refits); 95 %: the wider of t and bootstrap percentile intervals"
        )
        result["kinetics"] = d
        result["_kin"] = (kin, usable, hist)
    else:
        result.update(Ea_kJ_mol=None, beta=None, k413_per_s=None)
    result["_lines"] = lines
    return result


def public(result: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready part of :func:`fit_campaign`'s result."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------
# figures


def arrhenius_figure(kin: HistoryFit, table: pd.DataFrame, hist: list[ThermalHistory]) -> Figure | None:
    """ln k vs 1000/T: the fitted line with its 95 % band, and per heated cell the k at its
    hold temperature that reproduces its Ni plateau over its own history."""

    rows = []
    states = [_state(s) for s in table.get("charged_to", pd.Series("unknown", table.index))]
    for (_, r), h, state in zip(table.iterrows(), hist, states, strict=True):
        if not r.get("duration_s", 0) > 0:
            continue
        u = r["ni_plateau_mAh_g"] / kin.ni_ref_mAh_g
        u0 = kin.u0.get(state, 1.0)
        if not 0 < u < u0:
            continue
        x, w = h.quadrature()
        s_i = float(np.sum(w * np.exp(-kin.ea_J_mol / R_J_MOL_K * x)))  # int k/k413 dt
        need = (exp1(kin.beta * u) - exp1(kin.beta * u0)) * np.exp(kin.beta)  # int k dt it took
        k413_i = need / s_i
        t_hold = float(r["temperature_C"]) + 273.15
        rows.append((1000.0 / t_hold, np.log(k413_i) - kin.ea_J_mol / R_J_MOL_K * (1 / t_hold - 1 / T_REF_K)))
    if not rows:
        return None
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    pts = np.array(rows)
    ax.plot(pts[:, 0], pts[:, 1], "o", alpha=0.7, label="cells (k at the hold temperature)")
    inv = np.linspace(pts[:, 0].min() - 0.05, pts[:, 0].max() + 0.05, 50)
    line = np.log(kin.k413_per_s) - kin.ea_J_mol / R_J_MOL_K * (1e-3 * inv - 1 / T_REF_K)
    ax.plot(
        inv,
        line,
        "-",
        color="k",
        label=f"fit: Ea = {kin.ea_J_mol / 1e3:.1f} ± {kin.uncertainty('Ea_kJ_mol'):.1f} kJ/mol",
    )
    lo_ea, hi_ea = kin.interval95["Ea_kJ_mol"]
    band = [np.log(kin.k413_per_s) - e * 1e3 / R_J_MOL_K * (1e-3 * inv - 1 / T_REF_K) for e in (lo_ea, hi_ea)]
    ax.fill_between(
        inv, np.minimum(*band), np.maximum(*band), color="0.8", alpha=0.6, label="95 % interval of Ea"
    )
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("ln k (1/s)")
    ax.legend(fontsize=8)
    return fig


def log_time_figure(kin: HistoryFit, table: pd.DataFrame) -> Figure | None:
    """Ni plateau vs hold time (log axis; unheated cells at the left edge) per temperature and
    charge state: cells and the fitted model over each cell's own history."""
    if "duration_s" not in table or "temperature_C" not in table:
        return None
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    pred = kin.predicted_mAh_g
    tmin = max(float(table.loc[table["duration_s"] > 0, "duration_s"].min() or 60.0) / 3.0, 1.0)
    keys = [c for c in ("charged_to", "temperature_C") if c in table.columns]
    for i, (key, g) in enumerate(table.assign(_pred=pred).groupby(keys)):
        if g["duration_s"].nunique() < 2:
            continue
        t = np.where(g["duration_s"] > 0, g["duration_s"], tmin)
        colour = f"C{i % 10}"
        label = ", ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        ax.plot(t, g["ni_plateau_mAh_g"], "o", color=colour, alpha=0.7, label=label)
        order = np.argsort(t, kind="stable")
        ax.plot(t[order], g["_pred"].to_numpy()[order], "-", color=colour)
    if not ax.lines:
        return None
    ax.set_xscale("log")
    ax.set_xlabel(f"hold time (s; unheated at {tmin:g} s)")
    ax.set_ylabel("Ni plateau (mAh/g)")
    ax.legend(fontsize=8, title="points: cells; lines: fit over the recorded histories", title_fontsize=7)
    return fig


def ocv_line_figure(line: Mapping[str, Any]) -> Figure:
    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    frac = np.asarray(line["_frac"]) * 100
    ax.plot(frac, line["_ocv"], "o", label="cells")
    xs = np.linspace(0, max(frac.max(), 1.0), 50)
    ax.plot(xs, line["intercept_V"] + line["slope_V"] * xs / 100, "-",
            label=f"intercept {line['intercept_V']:.3f} ± {line['intercept_V_err']:.3f} V")  # fmt: skip
    ax.set_xlabel("Ni intermediate left (% of the unheated cells)")
    ax.set_ylabel("OCV after 15 min (V)")
    ax.set_title(f"powder charged to {line['charge_state']}", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def add_sections(page: Any, result: Mapping[str, Any]) -> None:
    """Draw the campaign fits into a report page (``page.figure(name, title, fig, note)``)."""
    import html

    for i, line in enumerate(result.get("_lines", [])):
        note = (f"<p>{html.escape(line['note'])}. Intercept {line['intercept_V']:.4f} ± {line['intercept_V_err']:.4f} V "
                f"(95 %: {line['intercept_V_95'][0]:.4f}-{line['intercept_V_95'][1]:.4f} V), R² = {line['r_squared']:.3f}, "
                f"n = {line['n']}.</p>")  # fmt: skip
        page.figure(f"ocv_fit_{i + 1}" if i else "ocv_fit", f"OCV vs Ni intermediate ({line['charge_state']})",
                    ocv_line_figure(line), note)  # fmt: skip
    if "_kin" in result:
        kin, usable, hist = result["_kin"]
        d = result["kinetics"]
        note = (f"<p>{html.escape(d['how'])}. Ea = {d['Ea_kJ_mol']:.1f} ± {d['Ea_kJ_mol_err']:.1f} kJ/mol, "
                f"β = {d['beta']:.2f} ± {d['beta_err']:.2f}, k(413 K) = {d['k413_per_s']:.3g} ± {d['k413_per_s_err']:.2g} 1/s "
                f"(u = 1 at the {html.escape(d['u_equals_1_at'])}); rms residual {d['rms_residual_mAh_g']:.2f} mAh/g, "
                f"{d['n_cells']} cells.</p>")  # fmt: skip
        page.figure("arrhenius", "Arrhenius plot", arrhenius_figure(kin, usable, hist), note)
        page.figure("kinetics_log_time", "Relaxation kinetics (log time)", log_time_figure(kin, usable))
