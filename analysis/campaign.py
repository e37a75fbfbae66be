"""Campaign summaries: per-cell measures and per-condition mean and standard deviation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.ocv import ocv_before_discharge
from analysis.plateaus import discharge_plateaus

MEASURES = ("ni_plateau_mAh_g", "o_plateau_mAh_g", "ocv_V")
_NOT_CONDITIONS = {"replicate", "cell", "sample", "run", "uid", "run_uid", "name"}


def cell_measures(
    metadata: dict[str, Any],
    df: pd.DataFrame,
    rest_time_s: float = 900.0,
    ni_window_V: tuple[float, float] = S.NI_WINDOW_V,
    o_window_V: tuple[float, float] = S.O_WINDOW_V,
) -> dict[str, Any]:
    """Measures of one cell for a campaign table.

    Takes the first cycle that has a discharge: its Ni- and O-plateau capacities, and the
    OCV of the rest before the first discharge. Scalar metadata entries are copied.

    Parameters
    ----------
    metadata : dict
        Run metadata (sample, cell, material, relaxation conditions, ...).
    df : DataFrame
        The run table.
    rest_time_s : float
        OCV read-out time within the rest.
    ni_window_V, o_window_V : tuple of float
        Plateau windows.

    Returns
    -------
    dict
        Scalar metadata plus ``ni_plateau_mAh_g``, ``o_plateau_mAh_g``,
        ``discharge_mAh_g`` and ``ocv_V`` (NaN where the run has no such data).
    """
    row: dict[str, Any] = {
        k: v for k, v in metadata.items() if isinstance(v, str | int | float | bool | np.number)
    }
    plateaus = discharge_plateaus(df, ni_window_V, o_window_V)
    if plateaus.empty:
        row.update(ni_plateau_mAh_g=np.nan, o_plateau_mAh_g=np.nan, discharge_mAh_g=np.nan)
    else:
        first = plateaus.iloc[0]
        row.update(
            ni_plateau_mAh_g=float(first["ni_plateau_mAh_g"]),
            o_plateau_mAh_g=float(first["o_plateau_mAh_g"]),
            discharge_mAh_g=float(first["discharge_mAh_g"]),
        )
    row["ocv_V"] = ocv_before_discharge(df, rest_time_s)
    return row


def campaign_table(runs: Sequence[tuple[dict[str, Any], pd.DataFrame]], **kwargs: Any) -> pd.DataFrame:
    """One row per run from :func:`cell_measures` (keyword arguments are passed on)."""
    return pd.DataFrame([cell_measures(meta, df, **kwargs) for meta, df in runs])


def condition_columns(table: pd.DataFrame, measures: Sequence[str]) -> list[str]:
    """Columns that define a condition: everything except measures and replicate/cell ids."""
    skip = set(measures) | _NOT_CONDITIONS | {"discharge_mAh_g", "active_mass_g"}
    return [c for c in table.columns if c not in skip and not c.endswith("_mAh_g")]


def summarise_conditions(
    table: pd.DataFrame,
    conditions: Sequence[str] | None = None,
    measures: Sequence[str] | None = None,
    csv_path: str | Path | None = None,
) -> pd.DataFrame:
    """Mean and sample standard deviation of each measure per condition.

    Parameters
    ----------
    table : DataFrame
        One row per cell: condition columns (e.g. ``temperature_C``, ``duration_s``),
        replicate ids and measured values.
    conditions : sequence of str, optional
        Grouping columns; default every column that is not a measure or an id
        (``replicate``, ``cell``, ``sample``).
    measures : sequence of str, optional
        Measured columns; default those of ``ni_plateau_mAh_g``, ``o_plateau_mAh_g``,
        ``ocv_V`` present.
    csv_path : str or Path, optional
        Also write the summary there.

    Returns
    -------
    DataFrame
        One row per condition: the condition columns, ``n`` (replicates) and
        ``<measure>_mean``, ``<measure>_std`` (ddof = 1; NaN for a single replicate).
    """
    if measures is None:
        measures = [m for m in MEASURES if m in table.columns]
    missing = [m for m in measures if m not in table.columns]
    if missing:
        raise ValueError(f"campaign table lacks measure column(s) {missing}")
    if conditions is None:
        conditions = condition_columns(table, measures)
    conditions = list(conditions)
    if not conditions:
        grouped = table.assign(_all="all").groupby("_all", dropna=False)
    else:
        grouped = table.groupby(conditions, dropna=False, sort=True)
    parts = {"n": grouped.size()}
    for m in measures:
        parts[f"{m}_mean"] = grouped[m].mean()
        parts[f"{m}_std"] = grouped[m].std(ddof=1)
    summary = pd.DataFrame(parts).reset_index()
    if not conditions:
        summary = summary.drop(columns="_all")
    if csv_path is not None:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        summary.to_csv(csv_path, index=False)
    return summary
