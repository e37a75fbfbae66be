"""Matplotlib figures for the report (object API on the Agg canvas; no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import schema as S
from analysis.dqdv import DQDV, dqdv_by_segment
from analysis.gitt import gitt_gap, gitt_rest_ends
from analysis.plateaus import material_windows
from analysis.steps import (
    CYCLE,
    DIRECTION,
    HALF_CAPACITY,
    HALF_CYCLE,
    HALF_DIRECTION,
    SEG_CAPACITY,
    SEGMENT,
    annotate,
)  # fmt: skip

if TYPE_CHECKING:  # annotations only: analysis.kinetics imports scipy.optimize
    from analysis.kinetics import KineticsFit
    from analysis.ocv import LineFit

Run = tuple[dict[str, Any], pd.DataFrame]
_NI_COLOUR, _O_COLOUR = "#f4a261", "#8ecae6"
#: Legend placed outside the axes, on the right.
_OUTSIDE: dict[str, Any] = {
    "loc": "upper left",
    "bbox_to_anchor": (1.02, 1.0),
    "borderaxespad": 0.0,
    "fontsize": 7,
}


def run_name(meta: dict[str, Any], i: int = 0) -> str:
    """A name that tells runs apart: campaign cell id, else protocol, sample and run id."""
    if meta.get("name"):
        return str(meta["name"])
    if meta.get("replicate") is not None and meta.get("cell"):
        return str(meta["cell"])
    parts = [str(meta[k]) for k in ("protocol", "sample") if meta.get(k)]
    if not parts and meta.get("cell"):
        parts.append(str(meta["cell"]))
    if meta.get("uid"):
        parts.append(str(meta["uid"])[:8])
    return " · ".join(parts) if parts else f"run {i + 1}"


_name = run_name


def _duration_text(seconds: float) -> str:
    """Whole hours, else whole minutes, else seconds: 86400 -> "24 h", 600 -> "10 min", 90 -> "90 s"."""
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if seconds >= size and abs(seconds / size - round(seconds / size)) < 1e-9:
            return f"{round(seconds / size):d} {unit}"
    return f"{seconds / 3600:.3g} h" if seconds >= 36000 else f"{seconds:.4g} s"


def condition_label(condition: dict[str, Any]) -> str:
    """Readable relaxation condition: ``{"temperature_C": 140, "duration_s": 86400}`` -> "24 h at 140 °C"."""
    cond = {
        k: v for k, v in condition.items() if v is not None and not (isinstance(v, float) and np.isnan(v))
    }
    words = []
    dur = next((cond.pop(k) for k in ("duration_s", "relax_duration_s") if k in cond), None)
    temp = next((cond.pop(k) for k in ("temperature_C", "relax_temperature_C") if k in cond), None)
    if dur is not None:
        words.append(_duration_text(float(dur)))
    if temp is not None:
        words.append(f"at {float(temp):g} °C" if words else f"{float(temp):g} °C")
    for key, value in cond.items():
        text = f"{value:g}" if isinstance(value, int | float | np.number) else str(value)
        unit = {"charge_to_V": " V", "charge_to_mAh_g": " mAh/g"}.get(key, "")
        words.append(f"{key.removesuffix('_V').removesuffix('_mAh_g').replace('_', ' ')} {text}{unit}")
    return " ".join(words[:2]) + ("; " + "; ".join(words[2:]) if len(words) > 2 else "") if words else "all"


def _cycling_first(runs: Sequence[Run]) -> list[tuple[int, Run]]:
    """Runs with a charge (cycling runs) first, then the others, original order kept."""
    return sorted(enumerate(runs), key=lambda r: not (annotate(r[1][1])[DIRECTION] == "charge").any())


def _colours(n: int) -> list[Any]:
    """n distinguishable colours (tab10, tab20, then a continuous map)."""
    if n <= 10:
        return [f"C{k}" for k in range(n)]
    cmap = colormaps["tab20"] if n <= 20 else colormaps["viridis"]
    return [cmap(k / max(n - 1, 1)) if n > 20 else cmap(k) for k in range(n)]


def shade_plateaus(ax: Any, windows: dict[str, tuple[float, float]] | None) -> bool:
    """Shade the Ni and O plateau voltage windows (y) when the material defines them.

    The axis keeps the range of the data (the shading never widens it). Returns whether
    anything was shaded.
    """
    if not windows:
        return False
    ylim = ax.get_ylim()
    ax.axhspan(
        *sorted(windows["ni"]), color=_NI_COLOUR, alpha=0.18, lw=0, label="Ni plateau window", zorder=0
    )
    ax.axhspan(*sorted(windows["o"]), color=_O_COLOUR, alpha=0.25, lw=0, label="O plateau window", zorder=0)
    ax.set_ylim(ylim)
    return True


def _windows_of(runs: Sequence[Run]) -> dict[str, tuple[float, float]] | None:
    """The plateau windows when every run's material defines the same ones, else None."""

    found = [material_windows(meta.get("material")) for meta, _ in runs]
    if not found or any(w is None for w in found) or any(w != found[0] for w in found):
        return None
    return found[0]


def half_cycle_curves(df: pd.DataFrame) -> list[tuple[int, str, pd.DataFrame]]:
    """(cycle, direction, points) of each charge and discharge half-cycle, CC and CV together,
    with the rests inside it (GITT) and without the rest that follows it."""
    a = annotate(df)
    curves = []
    for _, g in a[a[HALF_CYCLE] > 0].groupby(HALF_CYCLE, sort=True):
        moving = np.nonzero((g[DIRECTION] != "rest").to_numpy())[0]
        if not moving.size:
            continue
        g = g.iloc[: moving[-1] + 1]
        if g[HALF_CAPACITY].iloc[-1] <= 0:
            continue
        curves.append((int(g[CYCLE].iloc[0]), str(g[HALF_DIRECTION].iloc[0]), g))
    return curves


def cycling_figure(runs: Sequence[Run], labels: Sequence[str] | None = None) -> Figure | None:
    """Voltage against capacity of every half-cycle of every run (solid charge, dashed discharge).

    One run: coloured by cycle. Several runs: coloured by run (or by ``labels``, e.g. the
    condition, one colour per distinct label). Every run is drawn; the legend sits outside the
    axes; the Ni/O windows are shaded only when every run's material defines them.
    """
    curves = [(i, meta, half_cycle_curves(df)) for i, (meta, df) in enumerate(runs)]
    curves = [c for c in curves if c[2]]
    if not curves:
        return None
    fig = Figure(figsize=(8.5, 4.8))
    ax = fig.add_subplot()
    entries: list[tuple[str, Any]] = []  # legend: one solid line per cycle, run or condition
    if len(curves) == 1:
        _, meta, halves = curves[0]
        n_cyc = max(c for c, _, _ in halves)
        cmap = colormaps["viridis"]
        for cyc, direction, g in halves:
            colour = cmap(0.85 * (cyc - 1) / max(n_cyc - 1, 1))
            style = "-" if direction == "charge" else "--"
            ax.plot(g[HALF_CAPACITY], g[S.VOLTAGE], style, color=colour, lw=1.1)
            if n_cyc <= 12 and f"cycle {cyc}" not in dict(entries):
                entries.append((f"cycle {cyc}", colour))
        if n_cyc > 12:
            sm = ScalarMappable(norm=Normalize(1, n_cyc), cmap=cmap)
            fig.colorbar(sm, ax=ax, label="cycle")
        ax.set_title(f"{run_name(meta)}: {n_cyc} cycle{'s' if n_cyc > 1 else ''}", fontsize=10)
    else:
        keys = list(labels) if labels is not None else [run_name(m, i) for i, (m, _) in enumerate(runs)]
        distinct = list(dict.fromkeys(keys[i] for i, _, _ in curves))
        colours = dict(zip(distinct, _colours(len(distinct)), strict=True))
        for i, _, halves in curves:
            for _, direction, g in halves:
                style = "-" if direction == "charge" else "--"
                ax.plot(g[HALF_CAPACITY], g[S.VOLTAGE], style, color=colours[keys[i]], lw=1.0)
        entries = list(colours.items())
        ax.set_title(
            f"{len(curves)} runs" + (f", {len(distinct)} conditions" if labels is not None else ""),
            fontsize=10,
        )
    shade_plateaus(ax, _windows_of([(m, pd.DataFrame()) for _, m, _ in curves]))
    ax.set_xlabel("Capacity in the half-cycle (mAh/g)")
    ax.set_ylabel("Voltage (V)")
    shaded, shaded_names = ax.get_legend_handles_labels()
    drawn = {d for _, _, halves in curves for _, d, _ in halves}
    styles = [(d, "0.3", ls) for ls, d in (("-", "charge"), ("--", "discharge")) if d in drawn]
    lines = [(name, colour, "-") for name, colour in entries]
    handles: list[Any] = [Line2D([], [], color=c, ls=ls, lw=1.1) for _, c, ls in styles + lines] + list(
        shaded
    )
    ax.legend(handles, [n for n, _, _ in styles + lines] + shaded_names, **_OUTSIDE)
    fig.tight_layout()
    return fig


def voltammogram_figure(runs: Sequence[Run]) -> Figure | None:
    """Cyclic voltammogram: specific current against voltage of every sweep, coloured by cycle."""
    fig = Figure(figsize=(8.5, 4.8))
    ax = fig.add_subplot()
    drawn = 0
    for i, (meta, df) in enumerate(runs):
        a = annotate(df)
        sweep = a[a[S.STEP_TYPE].astype(str) == "sweep"]
        if sweep.empty:
            continue
        n_cyc = int(sweep[CYCLE].max())
        cmap = colormaps["viridis"]
        for cyc, g in sweep.groupby(CYCLE):
            colour = (
                cmap(0.85 * (cyc - sweep[CYCLE].min()) / max(n_cyc - 1, 1))
                if len(runs) == 1
                else f"C{i % 10}"
            )
            name = f"cycle {cyc}" if len(runs) == 1 else (run_name(meta, i) if drawn == 0 else None)
            ax.plot(g[S.VOLTAGE], g[S.SPECIFIC_CURRENT], color=colour, lw=0.9, label=name)
            drawn += 1
    if not drawn:
        return None
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("Voltage (V)")
    ax.set_ylabel("Current (mA/g)  [charge > 0]")
    ax.set_title(
        f"Cyclic voltammogram: {run_name(runs[0][0])}" if len(runs) == 1 else "Cyclic voltammograms",
        fontsize=10,
    )
    ax.legend(**_OUTSIDE)
    fig.tight_layout()
    return fig


def discharge_condition_figure(
    curves: Sequence[tuple[str, pd.DataFrame]],
    summary: pd.DataFrame,
    label_col: str = "condition",
    windows: dict[str, tuple[float, float]] | None = None,
) -> Figure | None:
    """First-discharge curves coloured by condition, and plateau capacities (mean +- std)."""
    has_bars = not summary.empty and "ni_plateau_mAh_g_mean" in summary.columns
    if not curves and not has_bars:
        return None
    fig = Figure(figsize=(13, 5))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    labels = list(dict.fromkeys(label for label, _ in curves))
    colours = dict(zip(labels, _colours(len(labels)), strict=True))
    seen: set[str] = set()
    for label, seg in curves:
        cap = seg[HALF_CAPACITY] if HALF_CAPACITY in seg else seg[SEG_CAPACITY]
        ax1.plot(cap, seg[S.VOLTAGE], color=colours[label], lw=1.0, label=None if label in seen else label)
        seen.add(label)
    if curves:
        shade_plateaus(ax1, windows)
        ax1.legend(**_OUTSIDE)
    ax1.set_xlabel("Discharge capacity (mAh/g)")
    ax1.set_ylabel("Voltage (V)")
    ax1.set_title(f"Discharge after relaxation ({len(curves)} cells, {len(labels)} conditions)", fontsize=10)
    if has_bars:
        x = np.arange(len(summary))
        w = 0.38
        bars = ((-w / 2, "ni", _NI_COLOUR, "Ni plateau"), (w / 2, "o", _O_COLOUR, "O plateau"))
        for off, key, colour, name in bars:
            mean = summary[f"{key}_plateau_mAh_g_mean"].to_numpy(float)
            std_col = f"{key}_plateau_mAh_g_std"
            std = np.nan_to_num(summary[std_col].to_numpy(float)) if std_col in summary else None
            ax2.bar(x + off, mean, w, yerr=std, capsize=3, color=colour, edgecolor="k", lw=0.5, label=name)
        ax2.set_xticks(x, summary[label_col].astype(str), rotation=40, ha="right", fontsize=8)
        ax2.set_ylabel("Capacity (mAh/g), mean ± std")
        ax2.set_title("Plateau capacities per condition", fontsize=10)
        ax2.legend(fontsize=7)
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    return fig


def dqdv_figure(runs: Sequence[Run], labels: Sequence[str] | None = None) -> Figure | None:
    """Mass-normalised dQ/dV of every charge and discharge half-cycle (CV holds left out:
    their voltage does not move). One run: coloured by cycle; several: by run or label."""
    parts = [(i, meta, dqdv_by_segment(df)) for i, (meta, df) in enumerate(runs)]
    parts = [p for p in parts if not p[2].empty]
    if not parts:
        return None
    fig = Figure(figsize=(8.5, 4.8))
    ax = fig.add_subplot()
    single = len(parts) == 1
    keys = list(labels) if labels is not None else [run_name(m, i) for i, (m, _) in enumerate(runs)]
    distinct = list(dict.fromkeys(keys[i] for i, _, _ in parts))
    colours = dict(zip(distinct, _colours(len(distinct)), strict=True))
    seen: set[Any] = set()
    for i, _, d in parts:
        n_cyc = int(d[CYCLE].max())
        for (cyc, _), g in d.groupby([CYCLE, SEGMENT], sort=True):
            if single:
                colour = colormaps["viridis"](0.85 * (cyc - 1) / max(n_cyc - 1, 1))
                key: Any = f"cycle {cyc}" if n_cyc <= 12 else None
            else:
                colour, key = colours[keys[i]], keys[i]
            ax.plot(g[S.VOLTAGE], g[DQDV], color=colour, lw=0.9, label=None if key in seen else key)
            seen.add(key)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("Voltage (V)")
    ax.set_ylabel("dQ/dV (mAh g⁻¹ V⁻¹)  [discharge < 0]")
    ax.set_title(
        f"Differential capacity: {run_name(parts[0][1])}" if single else "Differential capacity", fontsize=10
    )
    if seen - {None}:
        ax.legend(**_OUTSIDE)
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


def gitt_figure(df: pd.DataFrame, meta: dict[str, Any] | None = None) -> Figure | None:
    """GITT curve with end-of-rest voltages on charge and discharge, and their gap."""
    a = annotate(df)
    ends = gitt_rest_ends(a)
    if ends.empty:
        return None
    gap = gitt_gap(ends)
    fig = Figure(figsize=(8.5, 4.8))
    ax = fig.add_subplot()
    ax.plot(a["soc_mAh_g"], a[S.VOLTAGE], color="0.6", lw=0.8, label="GITT curve")
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
    ax.set_title(f"GITT: {run_name(meta)}" if meta else "GITT", fontsize=10)
    ax.legend(**_OUTSIDE)
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
    """Points of the first discharge half-cycle (CC and CV together, with
    ``half_cycle_capacity_mAh_g``)."""
    for _, direction, g in half_cycle_curves(df):
        if direction == "discharge":
            return g
    return annotate(df).iloc[0:0]


__all__ = [
    "cycling_figure", "discharge_condition_figure", "dqdv_figure", "first_discharge",
    "gantt_figure", "gitt_figure", "kinetics_figure", "lattice_figure", "ocv_figure",
    "shade_plateaus", "condition_label", "half_cycle_curves", "run_name", "voltammogram_figure",
]  # fmt: skip
