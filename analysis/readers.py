"""Load users' data files (.mpr, .mpt, .csv) into the stored-run schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from analysis.biologic import read_mpr, read_mpt
from analysis.csvfile import ColumnMap, read_csv_run
from analysis.errors import DataFileError


def load_run(
    path: str | Path,
    mass_mg: float | None = None,
    columns: ColumnMap | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Read a data file by its suffix.

    Parameters
    ----------
    path : str or Path
        A BioLogic .mpr or .mpt file, or a .csv/.txt table.
    mass_mg : float, optional
        Active mass in milligram (default: from the BioLogic log/header; required for CSV
        unless capacity and specific current are both given per gram).
    columns : mapping, optional
        Column map for CSV files (see :func:`analysis.csvfile.read_csv_run`).

    Returns
    -------
    (dict, DataFrame)
        Metadata and run table in the stored-run schema.

    Raises
    ------
    DataFileError
        For unsupported suffixes and every problem with the file itself.
    """
    path = Path(path)
    mass_g = None if mass_mg is None else mass_mg / 1000.0
    suffix = path.suffix.lower()
    if suffix == ".mpr":
        return read_mpr(path, mass_g)
    if suffix == ".mpt":
        return read_mpt(path, mass_g)
    if suffix in (".csv", ".txt", ".tsv"):
        if not columns:
            raise DataFileError(path, "a CSV file needs a column map (ours=theirs[@unit],...)")
        return read_csv_run(path, columns, mass_g, sep="\t" if suffix == ".tsv" else None)
    raise DataFileError(path, f"unsupported file type {suffix or '(none)'}; use .mpr, .mpt or .csv")
