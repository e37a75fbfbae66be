"""GITT: end-of-rest voltages on charge and discharge and the gap between them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.steps import CYCLE, DIRECTION, SEGMENT, SOC, annotate


def gitt_rest_ends(df: pd.DataFrame, min_rest_s: float = 0.0) -> pd.DataFrame:
    """End-of-rest voltage of every rest that follows a current pulse.

    Parameters
    ----------
    df : DataFrame
        A run table.
    min_rest_s : float
        Shorter rests are ignored.

    Returns
    -------
    DataFrame
        Columns ``segment``, ``cycle``, ``direction`` (of the pulse before the rest),
        ``soc_mAh_g`` (net charge passed since the run start, at the end of the rest),
        ``rest_s`` and ``voltage_V`` (last voltage of the rest).
    """
    a = annotate(df)
    g = a.groupby(SEGMENT, sort=True)
    seg = pd.DataFrame(
        {
            "direction": g[DIRECTION].first(),
            "cycle": g[CYCLE].first(),
            "start_s": g[S.TIME].first(),
            "end_s": g[S.TIME].last(),
            "soc_mAh_g": g[SOC].last(),
            "voltage_V": g[S.VOLTAGE].last(),
        }
    )
    prev_dir = seg["direction"].shift(1, fill_value="")
    prev_end = seg["end_s"].shift(1)
    seg["rest_s"] = seg["end_s"] - prev_end.fillna(seg["start_s"])
    keep = (seg["direction"] == "rest") & prev_dir.isin(["charge", "discharge"])
    keep &= seg["rest_s"] >= min_rest_s
    out = seg[keep].copy()
    out["direction"] = prev_dir[keep]
    out = out.reset_index()
    return out[["segment", "cycle", "direction", "soc_mAh_g", "rest_s", "voltage_V"]]


def has_gitt(df: pd.DataFrame, min_pulses: int = 3) -> bool:
    """Whether a run contains a GITT sequence.

    True when a step is typed "gitt" or when at least ``min_pulses`` pulse-then-rest
    pairs go in one direction within one cycle.

    Parameters
    ----------
    df : DataFrame
        A run table.
    min_pulses : int
        Pairs needed to call a sequence GITT.

    Returns
    -------
    bool
    """
    if S.STEP_TYPE in df.columns and (df[S.STEP_TYPE].astype(str).str.lower() == "gitt").any():
        return True
    ends = gitt_rest_ends(df)
    if ends.empty:
        return False
    return bool(ends.groupby(["cycle", "direction"]).size().max() >= min_pulses)


def gitt_gap(rest_ends: pd.DataFrame, n_grid: int = 50, cycle: int | None = None) -> pd.DataFrame:
    """Charge and discharge end-of-rest voltages on a common state-of-charge grid.

    Each branch is interpolated linearly in state of charge (net charge since the run
    start) over the range both branches cover.

    Parameters
    ----------
    rest_ends : DataFrame
        Output of :func:`gitt_rest_ends`.
    n_grid : int
        Number of grid points.
    cycle : int, optional
        Use this cycle only; default the first cycle with both branches.

    Returns
    -------
    DataFrame
        Columns ``soc_mAh_g``, ``charge_V``, ``discharge_V``, ``gap_V``, ``mid_V``; empty
        when the branches do not overlap.
    """
    cols = ["soc_mAh_g", "charge_V", "discharge_V", "gap_V", "mid_V"]
    if rest_ends.empty:
        return pd.DataFrame(columns=cols)
    if cycle is None:
        both = rest_ends.groupby("cycle")["direction"].nunique()
        both = both[both == 2]
        if both.empty:
            return pd.DataFrame(columns=cols)
        cycle = int(both.index[0])
    sel = rest_ends[rest_ends["cycle"] == cycle]
    ch = sel[sel["direction"] == "charge"].sort_values("soc_mAh_g")
    dis = sel[sel["direction"] == "discharge"].sort_values("soc_mAh_g")
    if len(ch) < 2 or len(dis) < 2:
        return pd.DataFrame(columns=cols)
    lo = max(ch["soc_mAh_g"].min(), dis["soc_mAh_g"].min())
    hi = min(ch["soc_mAh_g"].max(), dis["soc_mAh_g"].max())
    if not hi > lo:
        return pd.DataFrame(columns=cols)
    grid = np.linspace(lo, hi, n_grid)
    vc = np.interp(grid, ch["soc_mAh_g"], ch["voltage_V"])
    vd = np.interp(grid, dis["soc_mAh_g"], dis["voltage_V"])
    return pd.DataFrame(
        {"soc_mAh_g": grid, "charge_V": vc, "discharge_V": vd, "gap_V": vc - vd, "mid_V": 0.5 * (vc + vd)}
    )
