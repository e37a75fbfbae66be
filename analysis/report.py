"""One self-contained HTML report (with PNG figures) from runs and campaign tables."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import figures as F
from analysis import schema as S
from analysis.campaign import MEASURES, condition_columns, summarise_conditions
from analysis.campaign import campaign_table as table_from_runs
from analysis.campaign_fits import add_sections
from analysis.cycles import cycle_table
from analysis.gitt import gitt_gap, gitt_rest_ends, has_gitt
from analysis.insitu import lattice_vs_li
from analysis.kinetics import fit_relaxation_kinetics
from analysis.ocv import fit_ocv_line
from analysis.plateaus import material_windows
from analysis.steps import annotate

Run = tuple[dict[str, Any], pd.DataFrame]
#: Metadata keys that describe a relaxation condition when runs are grouped without a table.
CONDITION_KEYS = (
    "temperature_C", "duration_s", "relax_temperature_C", "relax_duration_s", "charge_to",
    "charge_to_V", "charge_to_mAh_g", "condition",
)  # fmt: skip


class _Page:
    """Collects report sections and writes the figures."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.sections: list[str] = []
        self.figures: list[Path] = []
        #: What the report left out, and why (shown at the end of the page).
        self.omitted: list[str] = []

    def figure(self, name: str, title: str, fig: Figure | None, note: str = "", why_not: str = "") -> None:
        if fig is None:
            if why_not:
                self.omitted.append(f"{title}: {why_not}")
            return
        path = self.out / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        self.figures.append(path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.sections.append(
            f"<h2>{html.escape(title)}</h2>\n{note}\n"
            f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
        )

    def table(self, title: str, df: pd.DataFrame, note: str = "") -> None:
        body = df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="")
        self.sections.append(f"<h2>{html.escape(title)}</h2>\n{note}\n{body}")

    def write(self, title: str) -> Path:
        style = (
            "body{font-family:sans-serif;max-width:1150px;margin:auto;padding:1em}"
            "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;font-size:90%}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
        )
        doc = (
            f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            + "\n".join(self.sections)
            + "\n</body></html>\n"
        )
        if self.omitted:
            items = "".join(f"<li>{html.escape(o)}</li>" for o in self.omitted)
            doc = doc.replace("\n</body>", f"\n<h2>Left out</h2>\n<ul>{items}</ul>\n</body>")
        index = self.out / "index.html"
        index.write_text(doc, encoding="utf-8")
        return index


def _label(values: Sequence[Any], names: Sequence[str]) -> str:
    """Readable condition label, e.g. "24 h at 140 °C"."""
    return F.condition_label(dict(zip(names, values, strict=True)))


def _run_label(meta: dict[str, Any], conds: list[str], table: pd.DataFrame | None) -> str | None:
    if conds and all(c in meta for c in conds):
        return _label([meta[c] for c in conds], conds)
    if table is not None and conds:
        for key in ("cell", "sample"):
            if key in table.columns and meta.get(key) is not None:
                rows = table[table[key].astype(str) == str(meta[key])]
                if len(rows):
                    return _label([rows.iloc[0][c] for c in conds], conds)
    return None


def _ni_reference(table: pd.DataFrame, conds: list[str]) -> tuple[float, str]:
    """In-cycling Ni plateau: cells relaxed for 0 s, else the largest condition mean."""
    if "duration_s" in table.columns:
        zero = table[table["duration_s"] == 0]["ni_plateau_mAh_g"].dropna()
        if len(zero):
            return float(zero.mean()), "mean Ni plateau of the cells relaxed for 0 s"
    means = table.groupby(conds)["ni_plateau_mAh_g"].mean() if conds else table["ni_plateau_mAh_g"]
    return float(np.nanmax(means)), "largest Ni plateau among the conditions (no 0 s cells)"


def build_report(
    out_dir: str | Path,
    runs: list[tuple[dict[str, Any], pd.DataFrame]],
    campaign_table: pd.DataFrame | None = None,
    lattice: pd.DataFrame | None = None,
    schedule: pd.DataFrame | None = None,
    fits: dict[str, Any] | None = None,
) -> Path:
    """Write PNG figures and one self-contained ``index.html`` (figures embedded).

    Only figures the data supports are drawn, and a "Left out" list at the end of the page
    says what was not drawn and why. Every run is shown: a table of every cycle, cycling curves
    (V vs capacity of every half-cycle, coloured by cycle, run or condition; plateau windows
    shaded only for materials that define them), voltammograms for CV runs and dQ/dV when runs
    have charge/discharge; discharge curves per
    relaxation condition and the plateau-capacity bar chart (mean +- std) when a campaign
    table is given or runs carry condition metadata (``temperature_C``, ``duration_s``,
    ...); OCV vs Ni fraction with the fitted line and the relaxation-kinetics fit when the
    table has the columns and enough cells; lattice vs time and vs Li content when
    ``lattice`` is given; GITT when a run contains one; the Gantt chart when ``schedule``
    (columns cell, start_s, end_s, label) is given. ``campaign_summary.csv`` is written
    beside the page when there is a campaign.

    Parameters
    ----------
    out_dir : str or Path
        Output directory (created).
    runs : list of (dict, DataFrame)
        Run metadata (``active_mass_g``, ``sample``, ``cell``, ``material``, conditions)
        and run tables in the stored-run schema.
    campaign_table : DataFrame, optional
        One row per cell: condition columns, replicate, ``ni_plateau_mAh_g``,
        ``o_plateau_mAh_g``, ``ocv_V``; derived from ``runs`` when omitted.
    lattice : DataFrame, optional
        ``time_s`` and ``lattice_A`` (same time base as the runs).
    schedule : DataFrame, optional
        ``cell``, ``start_s``, ``end_s``, ``label``.

    Returns
    -------
    Path
        The ``index.html`` written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = _Page(out)
    runs = [(meta, annotate(df, meta.get("active_mass_g"))) for meta, df in runs]

    labels = _condition_labels(runs)
    if runs:
        _runs_section(page, runs, labels)

    _campaign(page, out, runs, campaign_table, fits)
    _campaign_omissions(page, out)

    if runs:
        page.figure(
            "dqdv", "dQ/dV", F.dqdv_figure(runs, labels),
            "<p>Per charge and discharge half-cycle; CV holds left out (their voltage does not move).</p>",
            why_not="no half-cycle passes 1 mAh/g over a moving voltage",
        )  # fmt: skip

    if lattice is not None and not lattice.empty:
        joined = lattice.sort_values(S.TIME).reset_index(drop=True)
        best = None
        for _, df in runs:
            j = lattice_vs_li(df, lattice)
            hits = int(j["li_content"].notna().sum())
            if hits and (best is None or hits > best[0]):
                best = (hits, j)
        if best is not None:
            joined = best[1]
        page.figure("lattice", "Lattice parameter", F.lattice_figure(joined))

    for i, (meta, df) in enumerate(runs):
        if has_gitt(df):
            gap = gitt_gap(gitt_rest_ends(df))
            note = ""
            if not gap.empty:
                note = (
                    f"<p>End-of-rest gap between charge and discharge: median "
                    f"{gap['gap_V'].median():.3f} V, minimum {gap['gap_V'].min():.3f} V; "
                    f"mid-gap median {gap['mid_V'].median():.3f} V.</p>"
                )
            page.figure(f"gitt_{i + 1}", f"GITT: {F.run_name(meta, i)}", F.gitt_figure(df, meta), note,
                        why_not="no rest follows a current pulse")  # fmt: skip

    if schedule is not None and not schedule.empty:
        need = {"cell", "start_s", "end_s"}
        if need <= set(schedule.columns):
            page.figure("gantt", "Campaign schedule", F.gantt_figure(schedule))

    return page.write("relaxlab report")


def _campaign_omissions(page: _Page, out: Path) -> None:
    """Say which campaign figures were not drawn and what they need."""
    names = {p.stem for p in page.figures}
    if not any("Campaign summary" in sec for sec in page.sections):
        return
    if "ocv_fit" not in names:
        page.omitted.append(
            "OCV vs Ni intermediate: needs ocv_V and the Ni plateau of at least 3 cells (and a line that can be fitted)"
        )
    if "kinetics" not in names and "arrhenius" not in names:
        page.omitted.append(
            "Relaxation kinetics: needs at least 4 conditions over 2 or more temperatures and 2 or more "
            "non-zero relaxation times, with 0 s cells (or the largest Ni plateau) as the reference"
        )


def _condition_labels(runs: list[Run]) -> list[str] | None:
    """Readable condition of each run when every run carries one (colour by condition), else None."""
    labels = []
    for meta, _ in runs:
        cond = {k: meta[k] for k in CONDITION_KEYS if k in meta and not isinstance(meta[k], dict)}
        if not cond:
            return None
        labels.append(F.condition_label(cond))
    return labels if len(set(labels)) > 1 else None


def _mass_from_currents(df: pd.DataFrame) -> float:
    """Active mass (g) implied by current_A and specific_current_mA_g, NaN when no current flows."""
    i = df[S.CURRENT].to_numpy(float)
    j = df[S.SPECIFIC_CURRENT].to_numpy(float)
    ok = np.isfinite(i) & np.isfinite(j) & (np.abs(j) > 0)
    return float(np.median(i[ok] * 1000.0 / j[ok])) if ok.any() else float("nan")


def _runs_section(page: _Page, runs: list[Run], labels: list[str] | None) -> None:
    """The runs table, every cycle of every run, the cycling curves and voltammograms."""
    rows, cycle_rows = [], []
    no_windows: list[str] = []
    for i, (meta, df) in enumerate(runs):
        windows = material_windows(meta.get("material"))
        if windows is None:
            no_windows.append(f"{F.run_name(meta, i)} ({meta.get('material') or 'material not given'})")
        cyc = cycle_table(df, *((windows["ni"], windows["o"]) if windows else (None, None)))
        first = cyc.iloc[0] if len(cyc) else pd.Series(dtype=float)
        rows.append(
            {
                "run": F.run_name(meta, i),
                "material": meta.get("material") or "",
                "active_mass_mg": 1e3 * (meta.get("active_mass_g") or _mass_from_currents(df)),
                "points": len(df),
                "cycles": len(cyc),
                "first_charge_mAh_g": first.get("charge_mAh_g", np.nan),
                "first_discharge_mAh_g": first.get("discharge_mAh_g", np.nan),
                "first_ce_%": 100 * first.get("coulombic_efficiency", np.nan),
                "ni_plateau_mAh_g": first.get("ni_plateau_mAh_g", np.nan),
                "o_plateau_mAh_g": first.get("o_plateau_mAh_g", np.nan),
            }
        )
        for _, r in cyc.iterrows():
            cycle_rows.append({"run": F.run_name(meta, i), **r.to_dict()})
    page.table(
        "Runs", pd.DataFrame(rows),
        "<p>First cycle of each run. Charge and discharge are the net charge of each half-cycle "
        "(CC and CV together, GITT pulses added), from the instrument's counter where it runs on "
        "and from the integrated current where it restarts.</p>",
    )  # fmt: skip
    if no_windows:
        page.omitted.append(
            "Ni/O plateau capacities and shaded windows for " + ", ".join(no_windows)
            + ": the material defines no such windows (they are the Li-rich Li-Ti-Ni-O plateaus of the paper)"
        )  # fmt: skip
    if cycle_rows:
        table = pd.DataFrame(cycle_rows)
        table["coulombic_efficiency"] = 100 * table["coulombic_efficiency"]
        page.table("Cycles", table.rename(columns={"coulombic_efficiency": "ce_%"}))
    flat = [F.run_name(m, i) for i, (m, df) in enumerate(runs) if not F.half_cycle_curves(df)]
    if flat:
        page.omitted.append(f"Cycling curves of {', '.join(flat)}: no charge or discharge in the run")
    shaded = F._windows_of(runs) is not None
    page.figure(
        "cycling", "Cycling curves", F.cycling_figure(runs, labels),
        "<p>Every half-cycle of every run"
        + (", coloured by relaxation condition" if labels else (", coloured by run" if len(runs) > 1 else ", coloured by cycle"))
        + (". Shaded: Ni-plateau (4.5-2.5 V) and O-plateau (2.5-1.85 V) windows.</p>" if shaded else ".</p>"),
        why_not="no run has a charge or a discharge",
    )  # fmt: skip
    cv_runs = [(m, df) for m, df in runs if (df[S.STEP_TYPE].astype(str) == "sweep").any()]
    if cv_runs:
        page.figure("voltammogram", "Cyclic voltammetry", F.voltammogram_figure(cv_runs))


def _campaign(
    page: _Page, out: Path, runs: list[Run], table: pd.DataFrame | None, fits: dict[str, Any] | None = None
) -> None:
    """Campaign sections: summary table/CSV, discharge per condition, OCV line, kinetics.

    With ``fits`` (:func:`analysis.campaign_fits.fit_campaign`) the OCV lines per charge state
    and the rate law fitted over the recorded temperature histories replace the plain fits."""
    if table is None:
        keys = [k for k in CONDITION_KEYS if any(k in meta for meta, _ in runs)]
        if len(runs) < 2 or not keys:
            return
        kept = [(meta, df) for meta, df in runs if all(k in meta for k in keys)]
        if len(kept) < len(runs):
            left = [F.run_name(m, i) for i, (m, _) in enumerate(runs) if not all(k in m for k in keys)]
            page.omitted.append(
                f"Campaign summary for {', '.join(left)}: no relaxation condition ({', '.join(keys)})"
            )
        runs = kept
        if len(runs) < 2:
            return
        table = table_from_runs(runs, rest_time_s=S.OCV_READ_S)
        measures = [m for m in MEASURES if m in table.columns]
        conds = [k for k in keys if k in table.columns]
    else:
        measures = [m for m in MEASURES if m in table.columns]
        conds = condition_columns(table, measures)
    if not measures:
        return
    summary = summarise_conditions(table, conds, measures, csv_path=out / "campaign_summary.csv")
    labels = [_label(r, conds) for r in summary[conds].itertuples(index=False)] if conds else "all"
    summary.insert(0, "condition", labels)
    page.table(
        "Campaign summary (mean and std over replicates)",
        summary.drop(columns=conds),
        "<p>Also written to campaign_summary.csv. ocv_V: the last voltage of the open-circuit rest "
        "before the first discharge (after 15 min in the titration), the same value as in the campaign "
        "table of <code>relaxlab campaign run</code> and in <code>relaxlab run</code>'s summary.</p>",
    )
    curves = []
    for meta, df in runs:
        label = _run_label(meta, conds, table)
        seg = F.first_discharge(df)
        if label is not None and not seg.empty:
            curves.append((label, seg))
    page.figure(
        "discharge_conditions",
        "Discharge per relaxation condition",
        F.discharge_condition_figure(curves, summary, windows=F._windows_of(runs) if runs else None),
    )

    if fits is not None:
        add_sections(page, fits)
        return
    if "ni_plateau_mAh_g" not in table.columns or table["ni_plateau_mAh_g"].notna().sum() < 3:
        return
    if "ni_fraction" in table.columns:
        frac, how = table["ni_fraction"].to_numpy(float), "ni_fraction column of the table"
        ref = np.nan
    else:
        ref, how = _ni_reference(table, conds)
        frac = table["ni_plateau_mAh_g"].to_numpy(float) / ref
    if "ocv_V" in table.columns:
        try:
            fit = fit_ocv_line(frac, table["ocv_V"].to_numpy(float))
        except ValueError:
            fit = None
        if fit is not None:
            note = (
                f"<p>Ni fraction = Ni plateau / in-cycling Ni plateau ({html.escape(how)}). "
                f"Least-squares line: OCV = {fit.intercept:.4f} ({fit.intercept_stderr:.4f}) V "
                f"+ {fit.slope:.4f} ({fit.slope_stderr:.4f}) V x fraction; R² = {fit.r_squared:.4f}; "
                f"n = {fit.n}. Intercept = equilibrium potential.</p>"
            )
            page.figure("ocv_fit", "OCV vs Ni intermediate", F.ocv_figure(frac, table["ocv_V"], fit), note)
    kin_cols = {"temperature_C", "duration_s"}
    if kin_cols <= set(table.columns) and np.isfinite(ref) and len(table) >= 4:
        usable = table.dropna(subset=["temperature_C", "duration_s", "ni_plateau_mAh_g"])
        pairs = usable[["temperature_C", "duration_s"]].drop_duplicates()
        nonzero = usable.loc[usable["duration_s"] > 0, "duration_s"].nunique()
        # three parameters: need >= 4 conditions, 2 temperatures and 2 relaxation times
        if len(pairs) >= 4 and usable["temperature_C"].nunique() >= 2 and nonzero >= 2:
            try:
                kfit = fit_relaxation_kinetics(usable, ref)
            except (ValueError, np.linalg.LinAlgError):
                return
            d = kfit.to_dict()
            note = (
                f"<p>du/dt = -k(T) exp(-β(1-u)) u fitted to u = Ni plateau / {ref:.1f} mAh/g: "
                f"k413 = {d['k413_per_s']:.3g} ± {d['k413_stderr']:.2g} 1/s, "
                f"Ea = {d['ea_J_mol'] / 1e3:.1f} ± {d['ea_stderr'] / 1e3:.1f} kJ/mol, "
                f"β = {d['beta']:.2f} ± {d['beta_stderr']:.2f}; rms residual {d['rms_residual']:.3f}.</p>"
            )
            u = usable["ni_plateau_mAh_g"].to_numpy(float) / ref
            page.figure("kinetics", "Relaxation kinetics", F.kinetics_figure(usable, u, kfit), note)
