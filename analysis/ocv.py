"""Rest voltages and the OCV-versus-Ni-fraction line (equilibrium potential)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.steps import CYCLE, DIRECTION, SEGMENT, annotate


def rest_voltages(df: pd.DataFrame, rest_time_s: float = 900.0) -> pd.DataFrame:
    """Voltage of every rest at a chosen time after the rest began.

    Parameters
    ----------
    df : DataFrame
        A run table.
    rest_time_s : float
        Time since the start of the rest at which the voltage is read (linear
        interpolation between points).

    Returns
    -------
    DataFrame
        Columns ``segment``, ``cycle``, ``start_s``, ``duration_s``, ``voltage_V`` (NaN when
        the rest is shorter than ``rest_time_s``), ``end_voltage_V``, ``previous_direction``
        and ``next_direction`` ("charge", "discharge" or "" at the run ends).
    """
    a = annotate(df)
    seg = a[SEGMENT].to_numpy()
    seg_dir = a.groupby(SEGMENT)[DIRECTION].first()
    moving = seg_dir[seg_dir != "rest"]
    rows = []
    for s_id, g in a[a[DIRECTION] == "rest"].groupby(SEGMENT):
        t = g[S.TIME].to_numpy(float)
        v = g[S.VOLTAGE].to_numpy(float)
        elapsed = t - t[0]
        if seg.size and s_id > 0:
            # the rest begins when the previous segment ended
            prev_end = a[S.TIME].to_numpy(float)[np.searchsorted(seg, s_id) - 1]
            elapsed = t - prev_end
        duration = float(elapsed[-1])
        value = float(np.interp(rest_time_s, elapsed, v)) if duration >= rest_time_s else np.nan
        before = moving[moving.index < s_id]
        after = moving[moving.index > s_id]
        rows.append(
            {
                "segment": int(s_id),
                "cycle": int(g[CYCLE].iloc[0]),
                "start_s": float(t[0]),
                "duration_s": duration,
                "voltage_V": value,
                "end_voltage_V": float(v[-1]),
                "previous_direction": before.iloc[-1] if len(before) else "",
                "next_direction": after.iloc[0] if len(after) else "",
            }
        )
    cols = [
        "segment", "cycle", "start_s", "duration_s", "voltage_V", "end_voltage_V",
        "previous_direction", "next_direction",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def ocv_before_discharge(df: pd.DataFrame, rest_time_s: float = 900.0) -> float:
    """Open-circuit voltage of the rest just before the first discharge.

    This is the OCV of a fresh relaxed cell in the titration (15 min rest, then discharge).

    Parameters
    ----------
    df : DataFrame
        A run table.
    rest_time_s : float
        Read the voltage this long after the rest began; if the rest is shorter, its last
        voltage is used.

    Returns
    -------
    float
        The voltage, or NaN when no rest precedes a discharge.
    """
    rests = rest_voltages(df, rest_time_s)
    rests = rests[rests["next_direction"] == "discharge"]
    if rests.empty:
        return float("nan")
    first = rests.iloc[0]
    return float(first["voltage_V"] if np.isfinite(first["voltage_V"]) else first["end_voltage_V"])


@dataclass(frozen=True)
class LineFit:
    """A least-squares line ``y = intercept + slope * x`` with standard errors.

    For OCV against Ni fraction the intercept is the equilibrium potential (V).
    """

    slope: float
    intercept: float
    slope_stderr: float
    intercept_stderr: float
    r_squared: float
    n: int

    def __call__(self, x: np.ndarray | float) -> np.ndarray | float:
        """Evaluate the line."""
        return self.intercept + self.slope * np.asarray(x)

    def to_dict(self) -> dict[str, float]:
        """Plain dictionary of the fit results."""
        return asdict(self)


def fit_ocv_line(ni_fraction: np.ndarray, ocv_V: np.ndarray) -> LineFit:
    """Least-squares line of OCV against the fraction of Ni intermediate left.

    Parameters
    ----------
    ni_fraction : ndarray
        Ni-plateau capacity of each cell divided by the in-cycling Ni plateau (0..1).
    ocv_V : ndarray
        OCV of each cell.

    Returns
    -------
    LineFit
        Slope, intercept (the equilibrium potential at zero intermediate) and their
        standard errors.

    Raises
    ------
    ValueError
        With fewer than three finite points or no spread in the fraction.
    """
    x = np.asarray(ni_fraction, dtype=float)
    y = np.asarray(ocv_V, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        raise ValueError(f"an OCV line needs at least 3 cells, got {x.size}")
    if np.ptp(x) == 0:
        raise ValueError("all cells have the same Ni fraction; no line can be fitted")
    from scipy import stats  # here, not at import: scipy.stats costs every command that reads a run

    res = stats.linregress(x, y)
    return LineFit(
        slope=float(res.slope),
        intercept=float(res.intercept),
        slope_stderr=float(res.stderr),
        intercept_stderr=float(res.intercept_stderr),
        r_squared=float(res.rvalue**2),
        n=int(x.size),
    )
