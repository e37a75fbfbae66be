"""In-situ XRD: lattice parameter joined with cycling data (vs time and vs Li content)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.steps import SOC, annotate

#: Charge of one electron per formula unit of the x = 0.4 material (mAh/g).
MAH_G_PER_LI_X04 = 324.6
#: Li per formula unit of pristine Li1.17Ti0.58Ni0.25O2.
LI_PRISTINE_X04 = 1.17


def lattice_vs_li(
    cycling: pd.DataFrame,
    lattice: pd.DataFrame,
    mah_g_per_li: float = MAH_G_PER_LI_X04,
    li_start: float = LI_PRISTINE_X04,
) -> pd.DataFrame:
    """Join lattice parameters with the cycling state at the same times.

    Voltage and state of charge are interpolated linearly in time at each lattice time;
    the Li content is ``li_start - soc / mah_g_per_li`` (charge removes Li).

    Parameters
    ----------
    cycling : DataFrame
        A run table (same time base as ``lattice``).
    lattice : DataFrame
        Columns ``time_s`` and ``lattice_A``.
    mah_g_per_li : float
        Specific charge of one Li (one electron) per formula unit, 324.6 mAh/g for x = 0.4.
    li_start : float
        Li content at the start of the cycling data.

    Returns
    -------
    DataFrame
        ``lattice`` sorted by time with added ``voltage_V``, ``soc_mAh_g`` and
        ``li_content``; NaN outside the cycling time range.

    Raises
    ------
    ValueError
        When ``lattice`` lacks ``time_s`` or ``lattice_A``.
    """
    missing = [c for c in (S.TIME, "lattice_A") if c not in lattice.columns]
    if missing:
        raise ValueError(f"lattice table lacks column(s) {missing}")
    a = annotate(cycling)
    t = a[S.TIME].to_numpy(float)
    order = np.argsort(t, kind="stable")
    t = t[order]
    out = lattice.sort_values(S.TIME).reset_index(drop=True).copy()
    tx = out[S.TIME].to_numpy(float)
    inside = (tx >= t[0]) & (tx <= t[-1]) if t.size else np.zeros(tx.size, bool)
    for col, src in ((S.VOLTAGE, S.VOLTAGE), (SOC, SOC)):
        vals = a[src].to_numpy(float)[order]
        out[col] = np.where(inside, np.interp(tx, t, vals) if t.size else np.nan, np.nan)
    out["li_content"] = li_start - out[SOC] / mah_g_per_li
    return out
