"""Step segmentation, direction, cycles and per-step/per-cycle capacities."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema as S

SEGMENT = "segment"
DIRECTION = "direction"
CYCLE = "cycle"
SEG_CAPACITY = "segment_capacity_mAh_g"
INCREMENT = "increment_mAh_g"
SOC = "soc_mAh_g"
#: Segment that the increment on each row belongs to (a rest's first row hands its
#: increment back to the pulse before it).
OWNER = "increment_segment"

#: Step types whose current has one sign by definition (never split by current sign).
_SINGLE_SIGN = {"cc", "cv", "charge", "discharge"}
_REST = {"rest", "ocv", "open_circuit"}
_DIRECTION_NAMES = np.array(["discharge", "rest", "charge"])


def _starts(keys: np.ndarray) -> np.ndarray:
    return np.concatenate(([True], keys[1:] != keys[:-1])) if keys.size else keys.astype(bool)


def is_annotated(df: pd.DataFrame) -> bool:
    """True when :func:`annotate` has already been applied to ``df``."""
    return all(c in df.columns for c in (SEGMENT, DIRECTION, CYCLE, SEG_CAPACITY, INCREMENT, SOC, OWNER))


def annotate(df: pd.DataFrame, active_mass_g: float | None = None) -> pd.DataFrame:
    """Add segments, directions, cycles, capacity increments and state of charge.

    A *segment* is a run of points in one step with one current direction. Steps of type
    "cc"/"cv" keep one direction (that of their dominant current), "rest" steps are rests,
    and other steps (e.g. "gitt", "sweep", or steps derived from files) are split where the
    current sign changes, so GITT pulses and their rests become separate segments.
    A *cycle* starts with the first charge segment that follows a discharge segment.

    Parameters
    ----------
    df : DataFrame
        A run table in the stored-run schema (missing columns are derived, see
        :func:`analysis.schema.normalise_run`).
    active_mass_g : float, optional
        Active mass, only needed when capacity must be derived from current.

    Returns
    -------
    DataFrame
        A copy with added columns ``segment``, ``direction`` ("charge", "discharge",
        "rest"), ``cycle`` (from 1), ``increment_mAh_g`` (signed charge since the previous
        point, positive on charge), ``segment_capacity_mAh_g`` (magnitude passed so far in
        the segment), ``soc_mAh_g`` (net charge since the run start) and
        ``increment_segment`` (the segment each row's increment counts for).
    """
    if is_annotated(df):
        return df
    out = S.normalise_run(df, active_mass_g)
    n = len(out)
    current = out[S.CURRENT].to_numpy(float)
    step = out[S.STEP].to_numpy()
    thr = S.current_threshold_A(current) if n else 0.0
    point_sign = np.where(current > thr, 1, np.where(current < -thr, -1, 0))

    step_start = _starts(step)
    step_id = np.cumsum(step_start) - 1
    # dominant sign per step for single-sign step types
    moving = point_sign != 0
    pos = np.bincount(step_id, weights=(point_sign > 0) & moving, minlength=step_id.max() + 1 if n else 0)
    neg = np.bincount(step_id, weights=(point_sign < 0) & moving, minlength=pos.size)
    dominant = np.where(pos >= neg, 1, -1)
    dominant = np.where(pos + neg == 0, 0, dominant)
    # step types are looked at once per step (a step has one type: its first point's)
    first_types = [str(t).lower() for t in out[S.STEP_TYPE].to_numpy()[step_start]]
    single = np.array([t in _SINGLE_SIGN for t in first_types], dtype=bool)[step_id]
    rest = np.array([t in _REST for t in first_types], dtype=bool)[step_id]
    sign = np.where(single, dominant[step_id], np.where(rest, 0, point_sign))

    seg_start = step_start | _starts(sign)
    segment = np.cumsum(seg_start) - 1

    # capacity increments: magnitude from the capacity column, sign from the current
    cap = out[S.CAPACITY].to_numpy(float)
    cap = np.where(np.isfinite(cap), cap, 0.0)
    dmag = np.zeros(n)
    if n > 1:
        dmag[1:] = np.abs(np.diff(cap))
    # a step's first point carries the charge passed since the step began
    dmag[step_start] = np.abs(cap[step_start])
    prev_sign = np.concatenate(([0], sign[:-1])) if n else sign
    inc_sign = np.where(sign != 0, sign, prev_sign)
    inc = dmag * inc_sign
    # the interval ending on a rest's first point belongs to the pulse before it (loggers
    # record the pulse's last charge on the first rest point)
    owner = segment.copy()
    hand_back = seg_start & (sign == 0) & (prev_sign != 0)
    owner[hand_back] = segment[hand_back] - 1
    own = np.where(hand_back, 0.0, np.abs(inc))
    seg_cum = np.cumsum(own)
    first = _first_index(seg_start)
    seg_cap = seg_cum - seg_cum[first] + own[first]

    n_seg = int(segment[-1]) + 1 if n else 0
    seg_sign = np.zeros(n_seg, dtype=int)
    seg_sign[segment[seg_start]] = sign[seg_start]
    out[SEGMENT] = segment
    out[DIRECTION] = _DIRECTION_NAMES[sign + 1]
    out[CYCLE] = _cycles(seg_sign)[segment] if n else np.zeros(0, dtype=int)
    out[INCREMENT] = inc
    out[SEG_CAPACITY] = seg_cap
    out[SOC] = np.cumsum(inc)
    out[OWNER] = owner
    return out


def _first_index(starts: np.ndarray) -> np.ndarray:
    idx = np.where(starts, np.arange(starts.size), 0)
    return np.maximum.accumulate(idx)


def _cycles(seg_sign: np.ndarray) -> np.ndarray:
    """Cycle number per segment: +1 at each charge segment following a discharge segment."""
    moving = seg_sign != 0
    last = np.where(moving, seg_sign, 0)
    # previous non-rest sign for each segment
    idx = np.where(moving, np.arange(seg_sign.size), -1)
    prev_idx = np.concatenate(([-1], np.maximum.accumulate(idx)[:-1]))
    prev = np.where(prev_idx >= 0, last[np.maximum(prev_idx, 0)], 0)
    new_cycle = (seg_sign > 0) & (prev < 0)
    return 1 + np.cumsum(new_cycle)


def step_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per segment (step, or the part of a step with one current direction).

    Parameters
    ----------
    df : DataFrame
        A run table (annotated or not).

    Returns
    -------
    DataFrame
        Columns ``segment``, ``step``, ``step_type``, ``direction``, ``cycle``, ``start_s``,
        ``end_s``, ``duration_s``, ``voltage_start_V``, ``voltage_end_V``,
        ``capacity_mAh_g`` (magnitude passed in the segment),
        ``specific_current_mA_g`` (mean), ``temperature_C`` (mean), ``n_points``.
    """
    a = annotate(df)
    owner = a[OWNER].to_numpy()
    n_seg = int(a[SEGMENT].max()) + 1 if len(a) else 0
    cap = np.bincount(owner, weights=np.abs(a[INCREMENT].to_numpy()), minlength=n_seg)
    g = a.groupby(SEGMENT, sort=True)
    t = g[S.TIME]
    table = pd.DataFrame(
        {
            "step": g[S.STEP].first(),
            "step_type": g[S.STEP_TYPE].first(),
            "direction": g[DIRECTION].first(),
            "cycle": g[CYCLE].first(),
            "start_s": t.first(),
            "end_s": t.last(),
            "voltage_start_V": g[S.VOLTAGE].first(),
            "voltage_end_V": g[S.VOLTAGE].last(),
            "specific_current_mA_g": g[S.SPECIFIC_CURRENT].mean(),
            "temperature_C": g[S.TEMPERATURE].mean(),
            "n_points": g.size(),
        }
    )
    table["duration_s"] = table["end_s"] - table["start_s"]
    table["capacity_mAh_g"] = cap[table.index.to_numpy()]
    return table.reset_index()


def cycle_table(
    df: pd.DataFrame,
    ni_window_V: tuple[float, float] = S.NI_WINDOW_V,
    o_window_V: tuple[float, float] = S.O_WINDOW_V,
) -> pd.DataFrame:
    """Charge, discharge and plateau capacities per cycle.

    Parameters
    ----------
    df : DataFrame
        A run table.
    ni_window_V, o_window_V : tuple of float
        Voltage windows (either order) for the Ni and O discharge plateaus.

    Returns
    -------
    DataFrame
        Columns ``cycle``, ``charge_mAh_g``, ``discharge_mAh_g``, ``coulombic_efficiency``,
        ``ni_plateau_mAh_g``, ``o_plateau_mAh_g``, ``max_voltage_V``, ``min_voltage_V``.
    """
    from analysis.plateaus import discharge_plateaus

    a = annotate(df)
    inc = a[INCREMENT].to_numpy()
    cyc = a[CYCLE].to_numpy()
    n = int(cyc.max()) + 1 if len(a) else 1
    charge = np.bincount(cyc, weights=np.clip(inc, 0, None), minlength=n)
    discharge = np.bincount(cyc, weights=np.clip(-inc, 0, None), minlength=n)
    g = a.groupby(CYCLE)[S.VOLTAGE]
    table = pd.DataFrame(
        {
            "cycle": np.arange(n)[1:],
            "charge_mAh_g": charge[1:],
            "discharge_mAh_g": discharge[1:],
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(table["charge_mAh_g"] > 0, table["discharge_mAh_g"] / table["charge_mAh_g"], np.nan)
    table["coulombic_efficiency"] = ce
    table["max_voltage_V"] = table["cycle"].map(g.max())
    table["min_voltage_V"] = table["cycle"].map(g.min())
    plateaus = discharge_plateaus(a, ni_window_V, o_window_V)
    table = table.merge(plateaus[["cycle", "ni_plateau_mAh_g", "o_plateau_mAh_g"]], on="cycle", how="left")
    return table
