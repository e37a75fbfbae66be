"""The stored-run table schema and its normalisation.

Every reader and every analysis works on one DataFrame layout (one row per data point):

``time_s``, ``voltage_V``, ``current_A`` (positive = charge), ``specific_current_mA_g``,
``capacity_mAh_g`` (charge passed within the step, per gram, signed like the current),
``step`` (int), ``step_type`` (str: "cc", "cv", "rest", "gitt", "sweep", ...), ``temperature_C``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIME = "time_s"
VOLTAGE = "voltage_V"
CURRENT = "current_A"
SPECIFIC_CURRENT = "specific_current_mA_g"
CAPACITY = "capacity_mAh_g"
STEP = "step"
STEP_TYPE = "step_type"
TEMPERATURE = "temperature_C"

COLUMNS = (TIME, VOLTAGE, CURRENT, SPECIFIC_CURRENT, CAPACITY, STEP, STEP_TYPE, TEMPERATURE)

#: The one definition of a cell's OCV (run summary, report, campaign table): the voltage this
#: long into the open-circuit rest before the first discharge, or that rest's last voltage when
#: it is shorter. Infinite: the last voltage of that rest (15 min in the titration, 24 h after
#: an in-place relaxation).
OCV_READ_S = float("inf")

#: Default Ni-plateau and O-plateau discharge windows (V), as in the paper's titration.
NI_WINDOW_V = (2.5, 4.5)
O_WINDOW_V = (1.85, 2.5)


def current_threshold_A(current_A: np.ndarray, relative: float = 1e-4, floor_A: float = 1e-12) -> float:
    """Current magnitude below which a point counts as open circuit.

    Parameters
    ----------
    current_A : ndarray
        Currents of the run.
    relative : float
        Fraction of the largest current magnitude.
    floor_A : float
        Absolute lower bound.

    Returns
    -------
    float
        The threshold in ampere.
    """
    finite = np.abs(current_A[np.isfinite(current_A)])
    top = float(finite.max()) if finite.size else 0.0
    return max(relative * top, floor_A)


def steps_from_current(current_A: np.ndarray, threshold_A: float | None = None) -> np.ndarray:
    """Step index from changes of the current sign (for files without a step column).

    Parameters
    ----------
    current_A : ndarray
        Currents, positive on charge.
    threshold_A : float, optional
        Magnitude below which the current counts as zero (rest); default from
        :func:`current_threshold_A`.

    Returns
    -------
    ndarray of int
        Step index per point, starting at 0.
    """
    current_A = np.asarray(current_A, dtype=float)
    if current_A.size == 0:
        return np.zeros(0, dtype=np.int64)
    thr = current_threshold_A(current_A) if threshold_A is None else threshold_A
    sign = np.where(current_A > thr, 1, np.where(current_A < -thr, -1, 0))
    change = np.concatenate(([False], sign[1:] != sign[:-1]))
    return np.cumsum(change).astype(np.int64)


def capacity_from_current(
    time_s: np.ndarray, current_A: np.ndarray, step: np.ndarray, active_mass_g: float
) -> np.ndarray:
    """Charge passed within each step (mAh/g, signed like the current), by trapezoids.

    Parameters
    ----------
    time_s, current_A, step : ndarray
        Time, current and step index per point.
    active_mass_g : float
        Active mass in gram.

    Returns
    -------
    ndarray
        Capacity within the step per point, zero at each step's first point.
    """
    t = np.asarray(time_s, dtype=float)
    i = np.asarray(current_A, dtype=float)
    inc = np.zeros_like(t)
    if t.size > 1:
        inc[1:] = 0.5 * (i[1:] + i[:-1]) * np.diff(t) / 3.6 / active_mass_g
    step = np.asarray(step)
    starts = np.concatenate(([True], step[1:] != step[:-1]))
    inc[starts] = 0.0
    total = np.cumsum(inc)
    return total - _at_run_start(total, starts)


def _at_run_start(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Broadcast, for each point, the value at the first point of its run of equal keys."""
    idx = np.where(starts, np.arange(values.size), 0)
    np.maximum.accumulate(idx, out=idx)
    return values[idx]


def normalise_run(df: pd.DataFrame, active_mass_g: float | None = None) -> pd.DataFrame:
    """Complete a run table to the full schema.

    Fills what can be derived: ``step`` from current sign changes, ``step_type`` ("cc" or
    "rest"), ``capacity_mAh_g`` by integrating the current, ``specific_current_mA_g`` from
    the mass, ``temperature_C`` as NaN.

    Parameters
    ----------
    df : DataFrame
        Needs ``time_s``, ``voltage_V`` and ``current_A`` (or ``specific_current_mA_g``).
    active_mass_g : float, optional
        Active mass; needed when capacity or specific current must be derived from current.

    Returns
    -------
    DataFrame
        A copy with all schema columns, sorted by nothing (row order kept), index reset.

    Raises
    ------
    ValueError
        When required columns are missing or the mass is needed but not given.
    """
    out = df.reset_index(drop=True).copy()
    missing = [c for c in (TIME, VOLTAGE) if c not in out.columns]
    if missing:
        raise ValueError(f"run table lacks required column(s) {missing}")
    mass = active_mass_g if active_mass_g and active_mass_g > 0 else None
    if CURRENT not in out.columns:
        if SPECIFIC_CURRENT in out.columns and mass is not None:
            out[CURRENT] = out[SPECIFIC_CURRENT].to_numpy(float) * mass / 1000.0
        elif SPECIFIC_CURRENT in out.columns:
            out[CURRENT] = out[SPECIFIC_CURRENT].to_numpy(float) / 1000.0  # per-gram stand-in
            mass = 1.0
        else:
            raise ValueError("run table lacks current_A (and specific_current_mA_g)")
    current = out[CURRENT].to_numpy(float)
    if STEP not in out.columns or out[STEP].isna().all():
        out[STEP] = steps_from_current(current)
    out[STEP] = out[STEP].to_numpy().astype(np.int64)
    if STEP_TYPE not in out.columns:
        thr = current_threshold_A(current)
        step = out[STEP].to_numpy()
        starts = np.concatenate(([True], step[1:] != step[:-1]))
        moving = pd.Series(np.abs(current) > thr).groupby(np.cumsum(starts)).transform("mean")
        out[STEP_TYPE] = np.where(moving.to_numpy() > 0.5, "cc", "rest")
    if SPECIFIC_CURRENT not in out.columns:
        if mass is None:
            out[SPECIFIC_CURRENT] = np.nan
        else:
            out[SPECIFIC_CURRENT] = current * 1000.0 / mass
    if CAPACITY not in out.columns:
        if mass is None:
            raise ValueError("capacity_mAh_g is missing and no active mass is known to derive it")
        out[CAPACITY] = capacity_from_current(out[TIME].to_numpy(float), current, out[STEP].to_numpy(), mass)
    if TEMPERATURE not in out.columns:
        out[TEMPERATURE] = np.nan
    return out
