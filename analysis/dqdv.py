"""Mass-normalised differential capacity dQ/dV with peak-preserving smoothing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.steps import CYCLE, DIRECTION, HALF_CAPACITY, HALF_CYCLE, HALF_DIRECTION, SEGMENT, annotate

DQDV = "dqdv_mAh_g_V"


def dqdv(
    voltage_V: np.ndarray,
    capacity_mAh_g: np.ndarray,
    bin_width_V: float = 0.005,
    smooth_window_V: float = 0.04,
    polyorder: int = 2,
) -> pd.DataFrame:
    """dQ/dV of one charge or discharge curve.

    Voltage and capacity magnitude Q are averaged in voltage bins of ``bin_width_V``; Q is
    interpolated linearly from these bin means onto the uniform grid of bin centres; a
    Savitzky-Golay filter then returns the smoothed derivative. The filter is symmetric,
    so symmetric peaks keep their position. Magnitudes are used, so the result is positive
    on charge and negative on discharge (capacity grows while the voltage falls).

    Parameters
    ----------
    voltage_V : ndarray
        Voltage per point.
    capacity_mAh_g : ndarray
        Capacity passed within the step (either sign).
    bin_width_V : float
        Voltage grid spacing.
    smooth_window_V : float
        Savitzky-Golay window width in volt (rounded to an odd number of bins).
    polyorder : int
        Savitzky-Golay polynomial order.

    Returns
    -------
    DataFrame
        Columns ``voltage_V`` (bin centres) and ``dqdv_mAh_g_V``; empty for fewer than
        two points or a voltage span below two bins.
    """
    v = np.asarray(voltage_V, dtype=float)
    q = np.abs(np.asarray(capacity_mAh_g, dtype=float))
    ok = np.isfinite(v) & np.isfinite(q)
    v, q = v[ok], q[ok]
    empty = pd.DataFrame({S.VOLTAGE: np.zeros(0), DQDV: np.zeros(0)})
    if v.size < 2 or bin_width_V <= 0:
        return empty
    vmin = float(v.min())
    nbins = int(np.floor((float(v.max()) - vmin) / bin_width_V)) + 1
    if nbins < 3:
        return empty
    idx = np.minimum(((v - vmin) / bin_width_V).astype(np.int64), nbins - 1)
    counts = np.bincount(idx, minlength=nbins)
    sums = np.bincount(idx, weights=q, minlength=nbins)
    centres = vmin + (np.arange(nbins) + 0.5) * bin_width_V
    filled = counts > 0
    v_sums = np.bincount(idx, weights=v, minlength=nbins)
    # each bin's mean (V, Q) lies on the curve; interpolate Q at the bin centres from them
    q_grid = np.interp(centres, v_sums[filled] / counts[filled], sums[filled] / counts[filled])
    window = max(int(round(smooth_window_V / bin_width_V)), polyorder + 1)
    window += 1 - window % 2
    if window > nbins:
        window = nbins if nbins % 2 else nbins - 1
    if window <= polyorder:
        deriv = np.gradient(q_grid, bin_width_V)
    else:
        from scipy.signal import savgol_filter  # here, not at import: scipy.signal is slow to import

        deriv = savgol_filter(q_grid, window, polyorder, deriv=1, delta=bin_width_V, mode="interp")
    return pd.DataFrame({S.VOLTAGE: centres, DQDV: deriv})


def dqdv_by_segment(
    df: pd.DataFrame,
    bin_width_V: float = 0.005,
    smooth_window_V: float = 0.04,
    min_capacity_mAh_g: float = 1.0,
) -> pd.DataFrame:
    """dQ/dV of every charge and discharge half-cycle of a run.

    A half-cycle's CC part and sweeps count; the points of a CV hold (whose voltage does not
    move) and rests are left out; capacity is the half-cycle's, so a GITT half-cycle is one
    curve.

    Parameters
    ----------
    df : DataFrame
        A run table.
    bin_width_V, smooth_window_V : float
        See :func:`dqdv`.
    min_capacity_mAh_g : float
        Half-cycles passing less charge are skipped.

    Returns
    -------
    DataFrame
        Long table: ``segment`` (the half-cycle number), ``cycle``, ``direction``,
        ``voltage_V``, ``dqdv_mAh_g_V``.
    """
    a = annotate(df)
    keep = (a[HALF_CYCLE] > 0) & (a[DIRECTION] != "rest") & (a[S.STEP_TYPE].astype(str).str.lower() != "cv")
    parts = []
    for half, g in a[keep].groupby(HALF_CYCLE):
        cap = g[HALF_CAPACITY].to_numpy()
        if cap.size < 3 or cap.max() - cap.min() < min_capacity_mAh_g:
            continue
        d = dqdv(g[S.VOLTAGE].to_numpy(), cap, bin_width_V, smooth_window_V)
        if d.empty:
            continue
        direction = g[HALF_DIRECTION].iloc[0]
        d.insert(0, DIRECTION, direction)
        d.insert(0, CYCLE, g[CYCLE].iloc[0])
        d.insert(0, SEGMENT, half)
        parts.append(d)
    if not parts:
        return pd.DataFrame(columns=[SEGMENT, CYCLE, DIRECTION, S.VOLTAGE, DQDV])
    return pd.concat(parts, ignore_index=True)
