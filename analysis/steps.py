"""Step segmentation, half-cycles, cycles and per-step/per-cycle capacities.

Charge is counted per interval between consecutive points. Within one *counter block* (a
step, or a sub-step when the table has a ``substep`` column: a GITT pulse or rest, a loop's
charge or discharge) the instrument's capacity counter is used; where the counter restarts (a
new block, or an unexplained drop of the counter inside a block, as EC-Lab's ``(Q-Qo)`` at a
loop) the increment is whichever of "the counter went on" and "the counter restarted" agrees
with the integrated current, and the integrated current itself when neither does. So a counter
that restarts at every GITT pulse is never counted as charge passed.

A *half-cycle* is a run of charge (or discharge) that is not interrupted by a significant
current in the other direction: rests inside it (GITT) and a CV hold after a CC step belong to
it; a reversal that passes less than 1 % of the largest segment's charge (noise around zero
current in a CV sweep) does not start a new half-cycle, unless it is a whole charge or
discharge step of its own (a short pulse the protocol asked for). A *cycle* starts with a charge
half-cycle that follows a discharge half-cycle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema as S

SEGMENT = "segment"
DIRECTION = "direction"
CYCLE = "cycle"
HALF_CYCLE = "half_cycle"
HALF_DIRECTION = "half_cycle_direction"
HALF_CAPACITY = "half_cycle_capacity_mAh_g"
SEG_CAPACITY = "segment_capacity_mAh_g"
INCREMENT = "increment_mAh_g"
SOC = "soc_mAh_g"
#: Segment that the increment on each row belongs to (a rest's first row hands its
#: increment back to the pulse before it).
OWNER = "increment_segment"
SUBSTEP = "substep"

#: Step types whose current has one sign by definition (never split by current sign).
_SINGLE_SIGN = {"cc", "cv", "charge", "discharge"}
_REST = {"rest", "ocv", "open_circuit"}
_DIRECTION_NAMES = np.array(["discharge", "rest", "charge"])
#: A current reversal passing less than this share of the largest segment's charge is noise.
SIGNIFICANT_SHARE = 0.01
#: Absolute slack (mAh/g) when comparing a counter step with the integrated current.
_TOL_MAH_G = 1e-6

_ADDED = (
    SEGMENT,
    DIRECTION,
    CYCLE,
    HALF_CYCLE,
    HALF_DIRECTION,
    HALF_CAPACITY,
    SEG_CAPACITY,
    INCREMENT,
    SOC,
    OWNER,
)


def _starts(keys: np.ndarray) -> np.ndarray:
    return np.concatenate(([True], keys[1:] != keys[:-1])) if keys.size else keys.astype(bool)


def is_annotated(df: pd.DataFrame) -> bool:
    """True when :func:`annotate` has already been applied to ``df``."""
    return all(c in df.columns for c in _ADDED)


def counter_blocks(df: pd.DataFrame) -> np.ndarray:
    """Start flags of the blocks within which the capacity counter runs on (step, sub-step)."""
    step = df[S.STEP].to_numpy()
    starts = _starts(step)
    if SUBSTEP in df.columns:
        sub = df[SUBSTEP].to_numpy()
        starts = starts | _starts(np.where(pd.isna(sub), -1, sub).astype(np.int64))
    return starts


def integrated_increments(df: pd.DataFrame, active_mass_g: float | None = None) -> np.ndarray:
    """Charge per interval (mAh/g, positive on charge) from the current, by trapezoids.

    Uses ``specific_current_mA_g`` where finite, else ``current_A`` and the mass; NaN where
    neither is known. The first point's increment is 0.
    """
    t = df[S.TIME].to_numpy(float)
    j = (
        df[S.SPECIFIC_CURRENT].to_numpy(float)
        if S.SPECIFIC_CURRENT in df.columns
        else np.full(t.size, np.nan)
    )
    if active_mass_g and active_mass_g > 0:
        j = np.where(np.isfinite(j), j, df[S.CURRENT].to_numpy(float) * 1000.0 / active_mass_g)
    inc = np.zeros(t.size)
    if t.size > 1:
        inc[1:] = 0.5 * (j[1:] + j[:-1]) * np.diff(t) / 3600.0
    return inc


def _increments(
    out: pd.DataFrame, block_start: np.ndarray, mass: float | None, sign: np.ndarray
) -> np.ndarray:
    """Signed charge per interval from the counter, corrected where it restarts."""
    n = len(out)
    expected = integrated_increments(out, mass)
    e = np.abs(expected)
    known = np.isfinite(e)
    cap = out[S.CAPACITY].to_numpy(float)
    cap = np.where(np.isfinite(cap), cap, np.nan)
    prev = np.concatenate(([np.nan], cap[:-1]))
    go_on = np.abs(cap - prev)  # the counter went on
    restart = np.abs(cap)  # the counter restarted between the two points
    slack = 2.0 * np.where(known, e, 0.0) + _TOL_MAH_G
    same = ~block_start
    dropped = (np.abs(cap) < np.abs(prev)) & (go_on > slack)  # a reset inside a block
    closer_restart = np.abs(restart - e) < np.abs(go_on - e)
    # at a new block a restart is presumed: the counter went on only if that is clearly closer
    went_on = np.abs(go_on - e) < 0.5 * np.abs(restart - e)
    use_restart = np.where(same, dropped & known & closer_restart, ~(known & went_on))
    mag = np.where(use_restart, restart, go_on)
    # neither explains the current (garbage or missing counter): the integrated current
    bad = ~np.isfinite(mag) | (known & (mag > slack) & np.where(same, dropped, True))
    mag = np.where(bad & known, e, mag)
    mag = np.where(np.isfinite(mag), mag, 0.0)
    if n:
        mag[0] = 0.0
    # sign: the current's, else the direction of the point (or of the one before)
    prev_sign = np.concatenate(([0], sign[:-1])) if n else sign
    s = np.where(known & (expected != 0), np.sign(expected), np.where(sign != 0, sign, prev_sign))
    return mag * s


def annotate(df: pd.DataFrame, active_mass_g: float | None = None) -> pd.DataFrame:
    """Add segments, half-cycles, cycles, charge increments and state of charge.

    A *segment* is a run of points in one counter block (step or sub-step) with one current
    direction. Steps of type "cc"/"cv" keep one direction (that of their dominant current),
    "rest" steps are rests, and other steps (e.g. "gitt", "sweep", or steps derived from
    files) are split where the current sign changes, so GITT pulses and their rests become
    separate segments. Half-cycles and cycles are defined in the module docstring.

    Parameters
    ----------
    df : DataFrame
        A run table in the stored-run schema (missing columns are derived, see
        :func:`analysis.schema.normalise_run`); an optional ``substep`` column marks where
        the capacity counter restarts inside a step.
    active_mass_g : float, optional
        Active mass, only needed when capacity or specific current must be derived.

    Returns
    -------
    DataFrame
        A copy with added columns ``segment``, ``direction`` ("charge", "discharge", "rest",
        of the point's segment), ``half_cycle`` (0 before the first charge or discharge),
        ``half_cycle_direction``, ``half_cycle_capacity_mAh_g`` (charge passed so far in the
        half-cycle, positive), ``cycle`` (from 1), ``increment_mAh_g`` (signed charge since
        the previous point, positive on charge), ``segment_capacity_mAh_g`` (magnitude
        passed so far in the segment), ``soc_mAh_g`` (net charge since the run start) and
        ``increment_segment`` (the segment each row's increment counts for).
    """
    if is_annotated(df):
        return df
    own_steps = S.STEP in df.columns and not df[S.STEP].isna().all()  # steps the file or run defines
    out = S.normalise_run(df, active_mass_g)
    mass = active_mass_g if active_mass_g and active_mass_g > 0 else None
    n = len(out)
    current = out[S.CURRENT].to_numpy(float)
    thr = S.current_threshold_A(current) if n else 0.0
    point_sign = np.where(current > thr, 1, np.where(current < -thr, -1, 0))

    block_start = counter_blocks(out)
    block_id = np.cumsum(block_start) - 1
    moving = point_sign != 0
    n_blocks = int(block_id[-1]) + 1 if n else 0
    pos = np.bincount(block_id, weights=(point_sign > 0) & moving, minlength=n_blocks)
    neg = np.bincount(block_id, weights=(point_sign < 0) & moving, minlength=n_blocks)
    dominant = np.where(pos + neg == 0, 0, np.where(pos >= neg, 1, -1))
    first_types = [str(t).lower() for t in out[S.STEP_TYPE].to_numpy()[block_start]]
    single = np.array([t in _SINGLE_SIGN for t in first_types], dtype=bool)[block_id]
    rest = np.array([t in _REST for t in first_types], dtype=bool)[block_id]
    sign = np.where(single, dominant[block_id] if n else 0, np.where(rest, 0, point_sign))

    seg_start = block_start | _starts(sign)
    segment = np.cumsum(seg_start) - 1
    inc = _increments(out, block_start, mass, sign)

    # the interval ending on a rest's first point belongs to the segment before it
    prev_sign = np.concatenate(([0], sign[:-1])) if n else sign
    owner = segment.copy()
    hand_back = seg_start & (sign == 0) & (prev_sign != 0)
    owner[hand_back] = segment[hand_back] - 1
    own = np.where(hand_back, 0.0, np.abs(inc))
    seg_cum = np.cumsum(own)
    first = _first_index(seg_start)
    seg_cap = seg_cum - seg_cum[first] + own[first] if n else seg_cum

    n_seg = int(segment[-1]) + 1 if n else 0
    seg_sign = np.zeros(n_seg, dtype=int)
    seg_sign[segment[seg_start]] = sign[seg_start]
    seg_charge = np.bincount(owner, weights=np.abs(inc), minlength=n_seg)
    # a whole charge or discharge step of the protocol always counts, however short
    deliberate = np.zeros(n_seg, dtype=bool)
    if own_steps and n:
        deliberate[segment[seg_start]] = single[seg_start]
    seg_half, half_dir = _half_cycles(seg_sign, seg_charge, deliberate)
    half = seg_half[segment] if n else np.zeros(0, dtype=int)
    hdir = half_dir[half] if n else np.zeros(0, dtype=int)
    # charge passed in the half-cycle's direction (noise back and forth nets out)
    hinc = inc * hdir
    hcum = np.cumsum(hinc)
    hstart = _first_index(_starts(half)) if n else np.zeros(0, dtype=int)
    hcap = hcum - hcum[hstart] + hinc[hstart] if n else hcum
    cyc_of_half = _cycles(half_dir)

    out[SEGMENT] = segment
    out[DIRECTION] = _DIRECTION_NAMES[sign + 1]
    out[HALF_CYCLE] = half
    out[HALF_DIRECTION] = _DIRECTION_NAMES[hdir + 1]
    out[HALF_CAPACITY] = np.where(hdir != 0, hcap, 0.0)
    out[CYCLE] = cyc_of_half[half] if n else np.zeros(0, dtype=int)
    out[INCREMENT] = inc
    out[SEG_CAPACITY] = seg_cap
    out[SOC] = np.cumsum(inc)
    out[OWNER] = owner
    return out


def _first_index(starts: np.ndarray) -> np.ndarray:
    idx = np.where(starts, np.arange(starts.size), 0)
    return np.maximum.accumulate(idx)


def _half_cycles(
    seg_sign: np.ndarray, seg_charge: np.ndarray, deliberate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Half-cycle index per segment and direction (+1, -1; 0 for index 0) per half-cycle.

    A segment starts a half-cycle when its direction differs from the current one and it is
    either a whole single-direction step (``deliberate``) or passes more than
    :data:`SIGNIFICANT_SHARE` of the largest segment's charge.
    """
    moving = seg_sign != 0
    top = float(seg_charge[moving].max()) if moving.any() else 0.0
    big = seg_charge > max(SIGNIFICANT_SHARE * top, _TOL_MAH_G)
    significant = moving & (big | (deliberate & (seg_charge > _TOL_MAH_G)))
    half = np.zeros(seg_sign.size, dtype=int)
    dirs = [0]
    current = 0
    for k in range(seg_sign.size):
        if significant[k] and seg_sign[k] != current:
            current = int(seg_sign[k])
            dirs.append(current)
        half[k] = len(dirs) - 1
    return half, np.asarray(dirs, dtype=int)


def _cycles(half_dir: np.ndarray) -> np.ndarray:
    """Cycle number per half-cycle: +1 at each charge half-cycle following a discharge one."""
    prev = np.concatenate(([0], half_dir[:-1]))
    return 1 + np.cumsum((half_dir > 0) & (prev < 0))


def step_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per segment (step, or the part of a step with one current direction).

    Parameters
    ----------
    df : DataFrame
        A run table (annotated or not).

    Returns
    -------
    DataFrame
        Columns ``segment``, ``step``, ``step_type``, ``direction``, ``cycle``,
        ``half_cycle``, ``start_s``, ``end_s``, ``duration_s``, ``voltage_start_V``,
        ``voltage_end_V``, ``capacity_mAh_g`` (magnitude passed in the segment),
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
            "half_cycle": g[HALF_CYCLE].first(),
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


def half_cycle_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per half-cycle (a charge or a discharge, CC and CV parts and inner rests together).

    Returns
    -------
    DataFrame
        Columns ``half_cycle``, ``cycle``, ``direction``, ``step_types`` (e.g. "cc+cv"),
        ``start_s``, ``end_s``, ``duration_s``, ``voltage_start_V``, ``voltage_end_V``,
        ``capacity_mAh_g`` (net charge passed in the half-cycle's direction),
        ``charge_mAh_g`` and ``discharge_mAh_g`` (all positive and all negative charge in it).
    """
    a = annotate(df)
    cols = [HALF_CYCLE, CYCLE, HALF_DIRECTION, DIRECTION, S.STEP_TYPE, S.TIME, S.VOLTAGE, INCREMENT]
    a = a.loc[a[HALF_CYCLE].to_numpy() > 0, cols]
    inc = a[INCREMENT].to_numpy()
    g = a.assign(_ch=np.clip(inc, 0, None), _dis=np.clip(-inc, 0, None)).groupby(HALF_CYCLE, sort=True)
    moving = a[a[DIRECTION] != "rest"].groupby(HALF_CYCLE)
    kinds = a[[HALF_CYCLE, S.STEP_TYPE]].astype({S.STEP_TYPE: str}).drop_duplicates()
    types = kinds.groupby(HALF_CYCLE, sort=True)[S.STEP_TYPE].agg("+".join)
    table = pd.DataFrame(
        {
            "cycle": g[CYCLE].first(),
            "direction": g[HALF_DIRECTION].first(),
            "step_types": types,
            "start_s": g[S.TIME].first(),
            "end_s": moving[S.TIME].last(),
            "voltage_start_V": g[S.VOLTAGE].first(),
            "voltage_end_V": moving[S.VOLTAGE].last(),
            "charge_mAh_g": g["_ch"].sum(),
            "discharge_mAh_g": g["_dis"].sum(),
        }
    )
    table["duration_s"] = table["end_s"] - table["start_s"]
    table["capacity_mAh_g"] = np.where(
        table["direction"] == "charge",
        table["charge_mAh_g"] - table["discharge_mAh_g"],
        table["discharge_mAh_g"] - table["charge_mAh_g"],
    )
    return table.reset_index()
