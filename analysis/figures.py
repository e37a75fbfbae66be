"""Matplotlib figures for the report (object API on the Agg canvas; no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import schema as S
from analysis.dqdv import DQDV, dqdv_by_segment
from analysis.gitt import gitt_gap, gitt_rest_ends
from analysis.kinetics import KineticsFit
from analysis.ocv import LineFit
from analysis.steps import DIRECTION, SEG_CAPACITY, SEGMENT, annotate

Run = tuple[dict[str, Any], pd.DataFrame]
_NI_COLOUR, _O_COLOUR = "#f4a261", "#8ecae6"


def _name(meta: dict[str, Any], i: int) -> str:
    return str(meta.get("cell") or meta.get("sample") or f"run {i + 1}")


def _cycling_first(runs: Sequence[Run]) -> list[tuple[int, Run]]:
    """Runs with a charge (cycling runs) first, then the others, original order kept."""
    return sorted(enumerate(runs), key=lambda r: not (annotate(r[1][1])[DIRECTION] == "charge").any())


def shade_plateaus(
    ax: Any, ni_window_V: tuple[float, float] = S.NI_WINDOW_V, o_window_V: tuple[float, float] = S.O_WINDOW_V
) -> None:
    """Shade the Ni and O plateau voltage windows on a voltage axis (y)."""
    ax.axhspan(*sorted(ni_window_V), color=_NI_COLOUR, alpha=0.18, lw=0, label="Ni plateau window")
    ax.axhspan(*sorted(o_window_V), color=_O_COLOUR, alpha=0.25, lw=0, label="O plateau window")


def cycling_figure(runs: Sequence[Run], max_runs: int = 8) -> Figure | None:
    """Voltage against capacity for each charge/discharge segment, plateaus shaded."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    drawn = 0
    for i, (meta, df) in _cycling_first(runs)[:max_runs]:
        a = annotate(df)
        moving = a[a[DIRECTION] != "rest"]
        colour = f"C{i % 10}"
        for j, (_, seg) in enumerate(moving.groupby(SEGMENT)):
            if seg[SEG_CAPACITY].iloc[-1] <= 0:
                continue
            style = "-" if seg[DIRECTION].iloc[0] == "charge" else "--"
            label = _name(meta, i) if j == 0 else None
            ax.plot(seg[SEG_CAPACITY], seg[S.VOLTAGE], style, color=colour, lw=1.2, label=label)
            drawn += 1
    if not drawn:
        return None
    shade_plateaus(ax)
    ax.set_xlabel("Capacity (mAh/g)  [solid: charge, dashed: discharge]")
    ax.set_ylabel("Voltage (V)")
    ax.set_title("Cycling curves")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def discharge_condition_figure(
    curves: Sequence[tuple[str, pd.DataFrame]], summary: pd.DataFrame, label_col: str = "condition"
) -> Figure | None:
    """First-discharge curves coloured by condition, and plateau capacities (mean +- std)."""
    has_bars = not summary.empty and "ni_plateau_mAh_g_mean" in summary.columns
    if not curves and not has_bars:
        return None
    fig = Figure(figsize=(11, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    labels = list(dict.fromkeys(label for label, _ in curves))
    seen: set[str] = set()
    for label, seg in curves:
        k = labels.index(label)
        ax1.plot(
            seg[SEG_CAPACITY],
            seg[S.VOLTAGE],
            color=f"C{k % 10}",
            lw=1.1,
            label=None if label in seen else label,
        )
        seen.add(label)
    shade_plateaus(ax1)
    ax1.set_xlabel("Discharge capacity (mAh/g)")
    ax1.set_ylabel("Voltage (V)")
    ax1.set_title("Discharge after relaxation")
    if curves:
        ax1.legend(fontsize=7)
    if has_bars:
        x = np.arange(len(summary))
        w = 0.38
        bars = ((-w / 2, "ni", _NI_COLOUR, "Ni plateau"), (w / 2, "o", _O_COLOUR, "O plateau"))
        for off, key, colour, name in bars:
            mean = summary[f"{key}_plateau_mAh_g_mean"].to_numpy(float)
            std_col = f"{key}_plateau_mAh_g_std"
            std = np.nan_to_num(summary[std_col].to_numpy(float)) if std_col in summary else None
            ax2.bar(x + off, mean, w, yerr=std, capsize=3, color=colour, edgecolor="k", lw=0.5, label=name)
        ax2.set_xticks(x, summary[label_col].astype(str), rotation=45, ha="right", fontsize=7)
        ax2.set_ylabel("Capacity (mAh/g), mean ± std")
        ax2.set_title("Plateau capacities per condition")
        ax2.legend(fontsize=7)
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    return fig


def dqdv_figure(runs: Sequence[Run], max_runs: int = 8) -> Figure | None:
    """Mass-normalised dQ/dV of every charge and discharge segment."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    drawn = 0
    for i, (meta, df) in _cycling_first(runs)[:max_runs]:
        d = dqdv_by_segment(df)
        for j, (_, seg) in enumerate(d.groupby(SEGMENT)):
            ax.plot(
                seg[S.VOLTAGE],
                seg[DQDV],
                color=f"C{i % 10}",
                lw=1.0,
                label=_name(meta, i) if j == 0 else None,
            )
            drawn += 1
    if not drawn:
        return None
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("Voltage (V)")
    ax.set_ylabel("dQ/dV (mAh g⁻¹ V⁻¹)  [discharge < 0]")
    ax.set_title("Differential capacity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ocv_figure(ni_fraction: np.ndarray, ocv_V: np.ndarray, fit: LineFit) -> Figure:
    """OCV against remaining Ni-intermediate fraction with the least-squares line."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    ax.plot(np.asarray(ni_fraction) * 100, ocv_V, "o", label="cells")
    xs = np.linspace(0.0, max(1.0, float(np.nanmax(ni_fraction))), 50)
    ax.plot(xs * 100, fit(xs), "-", label=f"fit, R² = {fit.r_squared:.3f}")
    ax.plot(
        [0],
        [fit.intercept],
        "s",
        color="C3",
        label=f"E_eq = {fit.intercept:.3f} ± {fit.intercept_stderr:.3f} V",
    )
    ax.set_xlabel("Ni intermediate remaining (%)")
    ax.set_ylabel("OCV (V)")
    ax.set_title("OCV vs Ni intermediate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def kinetics_figure(table: pd.DataFrame, u: np.ndarray, fit: KineticsFit) -> Figure:
    """Remaining Ni fraction against relaxation time per temperature, with the fitted law."""
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    t = table["duration_s"].to_numpy(float)
    temp = table["temperature_C"].to_numpy(float)
    for k, tc in enumerate(np.unique(temp[np.isfinite(temp)])):
        sel = temp == tc
        ax.plot(t[sel] / 3600, u[sel], "o", color=f"C{k % 10}", label=f"{tc:g} °C")
        grid = np.linspace(0, max(t.max(), 1.0), 200)
        ax.plot(grid / 3600, fit.predict(grid, tc), "-", color=f"C{k % 10}", lw=1)
    ax.set_xlabel("Relaxation time (h)")
    ax.set_ylabel("Remaining Ni fraction u")
    ax.set_title(
        f"k413 = {fit.k413_per_s:.2e} 1/s, Ea = {fit.ea_J_mol / 1e3:.1f} kJ/mol, β = {fit.beta:.2f}",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def lattice_figure(joined: pd.DataFrame) -> Figure:
    """Lattice parameter against time and (when known) against Li content."""
    has_li = "li_content" in joined.columns and joined["li_content"].notna().any()
    fig = Figure(figsize=(11 if has_li else 6, 4.2))
    axes = np.atleast_1d(np.asarray(fig.subplots(1, 2 if has_li else 1), dtype=object))
    t0 = joined[S.TIME].min()
    axes[0].plot((joined[S.TIME] - t0) / 3600, joined["lattice_A"], "o-", ms=3)
    axes[0].set_xlabel("Time (h)")
    axes[0].set_ylabel("Lattice parameter a (Å)")
    axes[0].set_title("Lattice vs time")
    if has_li:
        axes[1].plot(joined["li_content"], joined["lattice_A"], "o-", ms=3)
        axes[1].invert_xaxis()
        axes[1].set_xlabel("Li content x in LixTi0.58Ni0.25O2")
        axes[1].set_ylabel("Lattice parameter a (Å)")
        axes[1].set_title("Lattice vs Li content")
    fig.tight_layout()
    return fig


def gitt_figure(df: pd.DataFrame) -> Figure | None:
    """GITT curve with end-of-rest voltages on charge and discharge, and their gap."""
    a = annotate(df)
    ends = gitt_rest_ends(a)
    if ends.empty:
        return None
    gap = gitt_gap(ends)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    ax.plot(a["soc_mAh_g"], a[S.VOLTAGE], color="0.75", lw=0.8, label="GITT curve")
    for direction, colour in (("charge", "C3"), ("discharge", "C0")):
        sel = ends[ends["direction"] == direction]
        label = f"end of rest, {direction}"
        ax.plot(sel["soc_mAh_g"], sel["voltage_V"], "o", ms=4, color=colour, label=label)
    if not gap.empty:
        ax.plot(
            gap["soc_mAh_g"],
            gap["mid_V"],
            ":",
            color="k",
            lw=1,
            label=f"mid-gap (gap {gap['gap_V'].median():.2f} V median)",
        )
    ax.set_xlabel("State of charge (mAh/g since run start)")
    ax.set_ylabel("Voltage (V)")
    ax.set_title("GITT")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def gantt_figure(schedule: pd.DataFrame) -> Figure:
    """Campaign Gantt chart: one row per cell, one bar per scheduled step."""
    cells = list(dict.fromkeys(schedule["cell"].astype(str)))
    fig = Figure(figsize=(10, 0.5 * len(cells) + 1.8))
    ax = fig.add_subplot()
    t0 = float(schedule["start_s"].min())
    labels = list(dict.fromkeys(schedule["label"].astype(str))) if "label" in schedule else []
    for _, row in schedule.iterrows():
        y = cells.index(str(row["cell"]))
        lab = str(row.get("label", ""))
        k = labels.index(lab) if lab in labels else 0
        start = (float(row["start_s"]) - t0) / 3600
        width = (float(row["end_s"]) - float(row["start_s"])) / 3600
        ax.barh(y, width, left=start, height=0.6, color=f"C{k % 10}", edgecolor="k", lw=0.4)
        if width > 0:
            ax.text(start + width / 2, y, lab, ha="center", va="center", fontsize=6, clip_on=True)
    ax.set_yticks(range(len(cells)), cells)
    ax.invert_yaxis()
    ax.set_xlabel("Time since campaign start (h)")
    ax.set_title("Campaign schedule")
    fig.tight_layout()
    return fig


def first_discharge(df: pd.DataFrame) -> pd.DataFrame:
    """Points of the first discharge segment (with ``segment_capacity_mAh_g``)."""
    a = annotate(df)
    dis = a[a[DIRECTION] == "discharge"]
    if dis.empty:
        return dis
    return dis[dis[SEGMENT] == dis[SEGMENT].iloc[0]]


__all__ = [
    "cycling_figure", "discharge_condition_figure", "dqdv_figure", "first_discharge",
    "gantt_figure", "gitt_figure", "kinetics_figure", "lattice_figure", "ocv_figure",
    "shade_plateaus",
]  # fmt: skip
