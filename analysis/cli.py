"""Command line: ``report`` from users' data files (.mpr, .mpt, .csv)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from analysis.csvfile import parse_column_map
from analysis.cycles import cycle_table
from analysis.errors import DataFileError
from analysis.figures import run_name
from analysis.plateaus import material_windows
from analysis.readers import load_run
from analysis.report import build_report
from analysis.steps import half_cycle_table

app = typer.Typer(help="Analyse cycling data and write reports.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Analyse cycling data and write reports."""


@app.command()
def report(
    files: Annotated[list[Path], typer.Argument(help="Data files: .mpr, .mpt or .csv.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory for index.html and PNGs.")],
    mass_mg: Annotated[
        float | None,
        typer.Option("--mass-mg", help="Active mass in mg (default: from the .mpl log / .mpt header)."),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="CSV column map ours=theirs[@unit],... e.g. "
            "'time_s=Time@h,voltage_V=Voltage,current_A=Current@mA'.",
        ),
    ] = None,
    campaign: Annotated[
        Path | None, typer.Option("--campaign", help="CSV: one row per cell with conditions and measures.")
    ] = None,
    lattice: Annotated[Path | None, typer.Option("--lattice", help="CSV with time_s and lattice_A.")] = None,
    schedule: Annotated[
        Path | None, typer.Option("--schedule", help="CSV with cell, start_s, end_s, label.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each file's per-cycle and per-half-cycle tables as JSON.")
    ] = False,
    material: Annotated[
        str | None,
        typer.Option(
            "--material",
            help="Active material (e.g. x04 or Li1.17Ti0.58Ni0.25O2): its Ni/O plateau windows are used.",
        ),
    ] = None,
) -> None:
    """Read data files and write an HTML report with figures."""
    try:
        col_map = parse_column_map(columns) if columns else None
        runs = [load_run(f, mass_mg=mass_mg, columns=col_map) for f in files]
        if material:
            runs = [({**meta, "material": material}, df) for meta, df in runs]
        tables = [pd.read_csv(p) if p is not None else None for p in (campaign, lattice, schedule)]
    except (DataFileError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    index = build_report(out, runs, campaign_table=tables[0], lattice=tables[1], schedule=tables[2])
    if not as_json:
        typer.echo(str(index))
        return
    summaries = []
    for meta, df in runs:
        windows = material_windows(meta.get("material"))
        cyc = cycle_table(df, *((windows["ni"], windows["o"]) if windows else (None, None)))
        summaries.append(
            {"name": run_name(meta), "material": meta.get("material"), "cycles": _records(cyc),
             "half_cycles": _records(half_cycle_table(df))}
        )  # fmt: skip
    typer.echo(json.dumps({"report": str(index), "runs": summaries}, indent=2, default=str))


def _records(table: pd.DataFrame) -> list[dict[str, object]]:
    rows = table.astype(object).where(table.notna(), None).to_dict(orient="records")
    return [{str(k): v for k, v in r.items()} for r in rows]


if __name__ == "__main__":  # pragma: no cover
    app()
