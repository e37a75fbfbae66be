"""Generic CSV import with a column map and units."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.errors import DataFileError

#: Unit factors to the schema unit, per schema column.
UNITS: dict[str, dict[str, float | None]] = {
    S.TIME: {"s": 1.0, "ms": 1e-3, "min": 60.0, "h": 3600.0},
    S.VOLTAGE: {"V": 1.0, "mV": 1e-3},
    S.CURRENT: {"A": 1.0, "mA": 1e-3, "uA": 1e-6, "µA": 1e-6},
    S.SPECIFIC_CURRENT: {"mA/g": 1.0, "A/g": 1e3, "A/kg": 1.0},
    S.CAPACITY: {"mAh/g": 1.0, "Ah/kg": 1.0, "mAh": None, "Ah": None, "uAh": None, "µAh": None},
    S.TEMPERATURE: {"C": 1.0, "degC": 1.0, "°C": 1.0, "K": 1.0},
    S.STEP: {"": 1.0},
    S.STEP_TYPE: {"": 1.0},
}
_ABS_CAPACITY_MAH = {"mAh": 1.0, "Ah": 1e3, "uAh": 1e-3, "µAh": 1e-3}

ColumnMap = Mapping[str, str | tuple[str, str]]


def parse_column_map(text: str) -> dict[str, str | tuple[str, str]]:
    """Parse ``"ours=theirs[@unit],..."`` into a column map.

    Example: ``"time_s=Time@h,voltage_V=Voltage,current_A=Current@mA"``.
    """
    out: dict[str, str | tuple[str, str]] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in item:
            raise ValueError(f"column map entry {item!r} is not ours=theirs[@unit]")
        ours, theirs = (x.strip() for x in item.split("=", 1))
        if "@" in theirs:
            name, unit = theirs.rsplit("@", 1)
            out[ours] = (name.strip(), unit.strip())
        else:
            out[ours] = theirs
    return out


def _default_unit(col: str) -> str:
    return next(iter(UNITS[col]))


def read_csv_run(
    path: str | Path,
    columns: ColumnMap,
    active_mass_g: float | None = None,
    sep: str | None = None,
    decimal: str = ".",
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Read a CSV of cycling data into the stored-run schema.

    Parameters
    ----------
    path : str or Path
        The file.
    columns : mapping
        Our column name -> their column name, or -> (their name, unit). Units per column:
        time s/ms/min/h; voltage V/mV; current A/mA/uA; capacity mAh/g or absolute
        mAh/Ah (divided by the mass); temperature C/K. Needs ``time_s``, ``voltage_V`` and
        ``current_A`` (or ``specific_current_mA_g``). Unmapped schema columns are derived
        (steps from current sign changes, capacity by integrating the current). A time
        column of date-time strings becomes seconds since the first row.
    active_mass_g : float, optional
        Active mass in gram; needed to derive per-gram quantities.
    sep : str, optional
        Field separator; default sniffed.
    decimal : str
        Decimal mark.

    Returns
    -------
    (dict, DataFrame)
        Metadata (``active_mass_g``, ``sample``, ``cell``, ``source_file``) and run table.

    Raises
    ------
    DataFileError
        When the file is missing or unreadable, lacks a mapped column, or values are not
        numeric.
    ValueError
        For a column map naming unknown schema columns or units.
    """
    path = Path(path)
    spec: dict[str, tuple[str, str]] = {}
    for ours, theirs in columns.items():
        if ours not in UNITS:
            raise ValueError(f"unknown column {ours!r} in column map; known: {sorted(UNITS)}")
        name, unit = theirs if isinstance(theirs, tuple) else (theirs, _default_unit(ours))
        if unit not in UNITS[ours]:
            raise ValueError(f"unit {unit!r} not supported for {ours}; use one of {list(UNITS[ours])}")
        spec[ours] = (name, unit)
    for need in (S.TIME, S.VOLTAGE):
        if need not in spec:
            raise ValueError(f"column map must give {need}")
    if S.CURRENT not in spec and S.SPECIFIC_CURRENT not in spec:
        raise ValueError("column map must give current_A or specific_current_mA_g")
    if not path.is_file():
        raise DataFileError(path, "file not found")
    try:
        raw = pd.read_csv(path, sep=sep, decimal=decimal, engine="python" if sep is None else "c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"unreadable CSV ({' '.join(str(exc).split())})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    absent = [name for name, _ in spec.values() if name not in raw.columns]
    if absent:
        raise DataFileError(path, f"missing column(s) {absent}; the file has {list(raw.columns)}")
    out = pd.DataFrame(index=raw.index)
    for ours, (name, unit) in spec.items():
        col = raw[name]
        if ours == S.STEP_TYPE:
            out[ours] = col.astype(str)
            continue
        if ours == S.TIME and not pd.api.types.is_numeric_dtype(col):
            stamps = pd.to_datetime(col, errors="coerce")
            if stamps.notna().mean() > 0.9:
                out[ours] = (stamps - stamps.dropna().iloc[0]).dt.total_seconds()
                continue
        values = pd.to_numeric(col, errors="coerce")
        if values.isna().mean() > 0.5:
            raise DataFileError(path, f"column {name!r} ({ours}) is not numeric")
        factor = UNITS[ours][unit]
        if ours == S.CAPACITY and factor is None:
            if not active_mass_g:
                raise DataFileError(path, f"capacity in {unit} needs the active mass")
            values = values * _ABS_CAPACITY_MAH[unit] / active_mass_g
        elif ours == S.TEMPERATURE and unit == "K":
            values = values - 273.15
        elif ours == S.STEP:
            values = values.ffill().fillna(0).astype(np.int64)
        else:
            values = values * factor
        out[ours] = values
    out = out.dropna(subset=[S.TIME, S.VOLTAGE]).reset_index(drop=True)
    if out.empty:
        raise DataFileError(path, "no data rows with both time and voltage")
    if S.CAPACITY in out.columns:
        out[S.CAPACITY] = _capacity_within_step(out)
    try:
        df = S.normalise_run(out, active_mass_g)
    except ValueError as exc:
        raise DataFileError(path, str(exc)) from None
    meta = {
        "active_mass_g": active_mass_g,
        "sample": path.stem,
        "cell": path.stem,
        "material": "",
        "source_file": str(path),
    }
    return meta, df


def _capacity_within_step(out: pd.DataFrame) -> np.ndarray:
    """Capacity since each step began (cumulative counters are rebased per step)."""
    cap = out[S.CAPACITY].to_numpy(float)
    if S.STEP in out.columns:
        step = out[S.STEP].to_numpy()
    elif S.CURRENT in out.columns:
        step = S.steps_from_current(out[S.CURRENT].to_numpy(float))
    else:
        step = S.steps_from_current(out[S.SPECIFIC_CURRENT].to_numpy(float))
    if S.STEP not in out.columns:
        out[S.STEP] = step
    starts = np.concatenate(([True], step[1:] != step[:-1]))
    before = np.concatenate(([0.0], cap[:-1]))
    base = np.where(starts, np.arange(cap.size), 0)
    base = np.maximum.accumulate(base)
    # first step: rebase on its own first value; later steps: on the last value before them
    ref = np.where(base == 0, cap[0], before[base])
    return cap - ref
