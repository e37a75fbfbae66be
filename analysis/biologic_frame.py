"""EC-Lab columns to relaxlab's run frame: charge increments from EC-Lab's counters (checked
against its per-half-cycle counter), step types, impedance rows left out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.biologic_header import _IMPEDANCE_COLUMNS, _MODE_TYPES, COUNTER_TOLERANCE
from analysis.errors import DataFileError


def _first(raw: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in raw.columns), None)


def _normalise_names(columns: list[str]) -> list[str]:
    """EC-Lab spells averages both ``<Ewe>/V`` and ``<Ewe/V>``; use the first form."""
    out = []
    for c in columns:
        c = str(c).strip()
        m = re.fullmatch(r"<([^<>/]+)/([^<>]+)>", c)
        out.append(f"<{m.group(1)}>/{m.group(2)}" if m else c)
    return out


def _increments(raw: pd.DataFrame, t: np.ndarray, current_mA: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Charge per point (mAh, passed since the previous point) and where it came from."""
    n = len(raw)
    if "dq/mA.h" in raw.columns:
        dq = raw["dq/mA.h"].to_numpy(float)
        if np.isfinite(dq).all():
            return dq, "EC-Lab's dq/mA.h counter"
    q_col = _first(raw, ("(Q-Qo)/mA.h",))
    if q_col is not None:
        q = raw[q_col].to_numpy(float)
        inc = np.diff(q, prepend=0.0)  # (Q-Qo) at the first point: charge since the start
        dt = np.diff(t, prepend=t[0])
        scale = max(float(np.nanmax(np.abs(q))) if n else 0.0, 1e-12)
        prev = np.concatenate(([0.0], q[:-1]))
        # a restart: the counter falls back to (near) zero from a real value in one point
        dropped = (np.abs(prev) > 1e-3 * scale) & (np.abs(q) < 0.1 * np.abs(prev))
        if current_mA is not None:  # and the current confirms it: q is this point's charge
            expect = current_mA * dt / 3600.0
            resets = dropped & (np.abs(q - expect) < np.abs(inc - expect))
        else:
            resets = dropped & (np.abs(q) < 1e-2 * np.abs(prev))
        resets[0] = False
        # after a reset (Q-Qo) counts from zero: the point's own value is its charge
        inc[resets] = q[resets]
        return inc, "EC-Lab's (Q-Qo) counter" + (f" ({int(resets.sum())} restarts)" if resets.any() else "")
    if current_mA is None:
        return np.zeros(n), "no current (open circuit)"
    dt = np.diff(t, prepend=t[0])
    return current_mA * dt / 3600.0, "the current integrated over each recording interval"


def counter_segments(raw: pd.DataFrame, inc: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges over which EC-Lab's ``Q charge/discharge/mA.h`` counts without restarting.

    EC-Lab restarts that counter at each half cycle and also where the current changes sign
    inside one (an impedance step discharging before a charge). A restart at point k is
    recognised when the counter's value is the point's own charge rather than the previous
    value plus it. Returns (first, last) row pairs, inclusive.
    """
    hc = raw["half cycle"].to_numpy()
    q = raw["Q charge/discharge/mA.h"].to_numpy(float)
    scale = max(float(np.nanmax(np.abs(q))) if q.size else 0.0, 1e-12)
    prev = np.concatenate(([0.0], q[:-1]))
    go_on = np.abs(q - prev - inc)
    restart = np.abs(q - inc)
    new = (go_on > 1e-6 * scale) & (restart < go_on)
    new[1:] |= hc[1:] != hc[:-1]
    new[0] = True
    starts = np.flatnonzero(new)
    ends = np.concatenate((starts[1:] - 1, [len(q) - 1]))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _check_counter(raw: pd.DataFrame, inc: np.ndarray, path: Path) -> str:
    """Compare our charge with EC-Lab's ``Q charge/discharge`` counter over each of its runs."""
    if "Q charge/discharge/mA.h" not in raw.columns or "half cycle" not in raw.columns:
        return "no EC-Lab half-cycle counter to check against"
    q_ec = raw["Q charge/discharge/mA.h"].to_numpy(float)
    scale = max(float(np.nanmax(np.abs(q_ec))), 1e-12)
    worst = 0.0
    segments = counter_segments(raw, inc)
    for a, b in segments:
        ours = float(inc[a : b + 1].sum())
        theirs = float(q_ec[b])
        ref = max(abs(theirs), 1e-3 * scale)
        if abs(ours - theirs) > COUNTER_TOLERANCE * ref:
            raise DataFileError(
                path,
                f"charge cannot be trusted: EC-Lab's counters disagree in half cycle "
                f"{raw['half cycle'].iloc[a]} (rows {a}-{b}): {ours:.6g} mAh by point increments, "
                f"{theirs:.6g} mAh by 'Q charge/discharge'",
            )
        worst = max(worst, abs(ours - theirs) / ref)
    return f"matches EC-Lab's charge counter over {len(segments)} half cycles/runs (worst {worst:.1e})"


def frame_from_biologic(
    raw: pd.DataFrame, path: Path, active_mass_g: float | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Convert EC-Lab columns to the stored-run schema.

    Parameters
    ----------
    raw : DataFrame
        EC-Lab columns (``time/s``, ``Ewe/V``, ``Ecell/V`` or ``<Ewe>/V``, ``I/mA`` or
        ``<I>/mA``, ``dq/mA.h``, ``(Q-Qo)/mA.h`` or ``(Q-Qo)/C``, ``Ns``, ``mode``, ...).
    path : Path
        The file, for messages.
    active_mass_g : float or None
        Active mass; may be None only for open-circuit (rest-only) data.

    Returns
    -------
    (DataFrame, dict)
        The run table and notes: ``charge_source``, ``charge_check``, ``rest_only``,
        ``dropped_impedance_rows``, ``source_rows`` (raw row of each output row) and, where
        the file has them, EC-Lab's ``half cycle`` and ``cycle number`` per output row
        (``ec_lab_half_cycle``, ``ec_lab_cycle_number``).
        Capacity within a step includes the charge recorded at the step's first point
        (EC-Lab records the charge passed since the previous point).

    Raises
    ------
    DataFileError
        For impedance-only data, missing columns, no points, a cycling file without a mass
        or a charge that disagrees with EC-Lab's own counter.
    """
    raw = raw.copy()
    raw.columns = _normalise_names(list(raw.columns))
    for coulomb, mah in (("(Q-Qo)/C", "(Q-Qo)/mA.h"), ("dQ/C", "dQ/mA.h")):
        if coulomb in raw.columns and mah not in raw.columns:
            raw[mah] = raw[coulomb].to_numpy(float) / 3.6
    notes: dict[str, Any] = {"dropped_impedance_rows": 0}
    if any(c in raw.columns for c in _IMPEDANCE_COLUMNS):
        freq = raw["freq/Hz"].to_numpy(float) if "freq/Hz" in raw.columns else np.ones(len(raw))
        eis = np.isfinite(freq) & (freq > 0)
        if eis.all() or "time/s" not in raw.columns:
            raise DataFileError(path, "impedance data only (freq/Hz, Re(Z) columns), not a cycling file")
        notes["dropped_impedance_rows"] = int(eis.sum())
    else:
        eis = np.zeros(len(raw), dtype=bool)
    t_col = _first(raw, ("time/s",))
    v_col = _first(raw, ("Ewe/V", "Ecell/V", "<Ewe>/V", "<Ecell>/V"))
    i_col = _first(raw, ("I/mA", "<I>/mA"))
    lacking = [name for name, col in (("time/s", t_col), ("Ewe/V, Ecell/V or <Ewe>/V", v_col)) if col is None]
    if lacking:
        raise DataFileError(path, f"not a cycling file: it has no {' and no '.join(lacking)} column")
    assert t_col is not None and v_col is not None
    timed = np.flatnonzero(np.isfinite(raw[t_col].to_numpy(float)))
    raw = raw.iloc[timed].reset_index(drop=True)
    eis = eis[timed]
    if raw.empty:
        raise DataFileError(path, "no data points")
    # charge per point on every row, impedance rows included (a potentiostatic EIS away
    # from open circuit passes charge); the charge of dropped rows goes to the next kept row
    t_all = raw[t_col].to_numpy(float)
    i_all = raw[i_col].to_numpy(float) if i_col is not None else None
    inc_all, source = _increments(raw, t_all, i_all)
    check = _check_counter(raw, inc_all, path)
    keep = ~eis & np.isfinite(raw[v_col].to_numpy(float))
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        raise DataFileError(path, "no data points with a voltage")
    total_all = np.cumsum(inc_all)
    total_kept = total_all[kept]
    inc = np.diff(
        total_kept, prepend=total_kept[0] - inc_all[kept[0]] if kept[0] == 0 else total_all[kept[0] - 1]
    )
    rows = timed[kept]
    raw = raw.iloc[kept].reset_index(drop=True)
    t = raw[t_col].to_numpy(float)
    current_mA = raw[i_col].to_numpy(float) if i_col is not None else None
    if current_mA is None:
        dq = raw["dq/mA.h"].to_numpy(float) if "dq/mA.h" in raw.columns else inc
        dt = np.diff(t, prepend=t[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            current_mA = np.where(dt > 0, dq * 3600.0 / dt, 0.0)
    rest_only = bool(np.all(np.abs(current_mA) == 0) and np.all(inc == 0))
    notes["rest_only"] = rest_only
    notes["charge_source"] = source
    notes["charge_check"] = check
    if active_mass_g is None and not rest_only:
        raise DataFileError(path, "active mass unknown")  # replaced by the caller's message
    mass = active_mass_g
    current = current_mA / 1000.0
    mode = raw["mode"].to_numpy(int) if "mode" in raw.columns else None
    keys = [raw[c].to_numpy() for c in ("Ns", "cycle number", "half cycle") if c in raw.columns]
    if mode is not None:
        keys.append(mode)
    if keys:
        change = np.zeros(len(raw), dtype=bool)
        for k in keys:
            change[1:] |= k[1:] != k[:-1]
        step = np.cumsum(change)
    else:
        step = S.steps_from_current(current)
    starts = np.concatenate(([True], step[1:] != step[:-1]))
    total = np.cumsum(inc)
    before = total - inc
    base_idx = np.maximum.accumulate(np.where(starts, np.arange(len(raw)), 0))
    charge_mAh = total - before[base_idx]
    if mode is not None:
        stype = np.array([_MODE_TYPES.get(int(m), "other") for m in mode], dtype=object)
    else:
        thr = S.current_threshold_A(current)
        stype = np.where(np.abs(current) > thr, "cc", "rest").astype(object)
    stype = stype[base_idx]
    temp_col = next((c for c in raw.columns if c.lower().startswith("temperature")), None)
    per_g = (1.0 / mass) if mass else 0.0
    df = pd.DataFrame(
        {
            S.TIME: t,
            S.VOLTAGE: raw[v_col].to_numpy(float),
            S.CURRENT: current,
            S.SPECIFIC_CURRENT: current * 1000.0 * per_g if mass else np.zeros(len(raw)),
            S.CAPACITY: charge_mAh * per_g if mass else np.zeros(len(raw)),
            S.STEP: step.astype(np.int64),
            S.STEP_TYPE: stype.astype(str),
            S.TEMPERATURE: raw[temp_col].to_numpy(float) if temp_col else np.nan,
        }
    )
    notes["source_rows"] = rows
    # EC-Lab's own cycle bookkeeping, for segmentations that want it (not schema columns)
    for col, key in (("half cycle", "ec_lab_half_cycle"), ("cycle number", "ec_lab_cycle_number")):
        if col in raw.columns:
            notes[key] = raw[col].to_numpy()
    return df, notes
