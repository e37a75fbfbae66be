"""Capacity passed inside voltage windows: the Ni and O discharge plateaus."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.steps import CYCLE, INCREMENT, annotate

#: Materials whose discharge has the Ni (4.5-2.5 V) and O (2.5-1.85 V) plateaus of the paper
#: (Li-rich Li2TiO3-LiTi0.5Ni0.5O2, by material id or formula). Other chemistries define none.
MATERIAL_WINDOWS: dict[str, dict[str, tuple[float, float]]] = {
    key: {"ni": S.NI_WINDOW_V, "o": S.O_WINDOW_V}
    for key in ("x04", "x05", "li1.17ti0.58ni0.25o2", "li1.2ti0.6ni0.2o2", "ltno")
}


def material_windows(material: object) -> dict[str, tuple[float, float]] | None:
    """The Ni and O plateau windows a material defines (``None`` when it defines none).

    Parameters
    ----------
    material : str, dict or None
        A material id (``"x04"``), a formula, or a mapping with explicit ``ni_window_V`` and
        ``o_window_V`` entries.

    Returns
    -------
    dict or None
        ``{"ni": (low, high), "o": (low, high)}`` in volt.
    """
    if isinstance(material, dict):
        if "ni_window_V" in material and "o_window_V" in material:
            return {"ni": tuple(material["ni_window_V"]), "o": tuple(material["o_window_V"])}  # type: ignore[dict-item]
        material = material.get("name") or material.get("formula")
    if not material:
        return None
    key = str(material).strip().lower()
    if key in MATERIAL_WINDOWS:
        return MATERIAL_WINDOWS[key]
    return MATERIAL_WINDOWS["ltno"] if "ltno" in key or key.startswith("li1.17ti0.58ni") else None


def window_share(
    v_from: np.ndarray, v_to: np.ndarray, dq: np.ndarray, window_V: tuple[float, float]
) -> float:
    """Charge passed while the voltage was inside a window, for linear segments.

    Each interval carries charge ``dq`` while the voltage goes linearly from ``v_from`` to
    ``v_to``; the share of ``dq`` inside the window is the share of that voltage span
    inside it (a flat interval counts wholly if its voltage is inside). Exact for a
    piecewise-linear curve and insensitive to noise going back and forth across an edge.

    Parameters
    ----------
    v_from, v_to : ndarray
        Voltages at the start and end of each interval.
    dq : ndarray
        Charge (magnitude) passed in each interval.
    window_V : tuple of float
        Window edges, either order.

    Returns
    -------
    float
        Charge inside the window (units of ``dq``).
    """
    low, high = sorted(window_V)
    lo = np.minimum(v_from, v_to)
    hi = np.maximum(v_from, v_to)
    span = hi - lo
    overlap = np.clip(np.minimum(hi, high) - np.maximum(lo, low), 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(span > 0, overlap / span, ((lo >= low) & (lo < high)).astype(float))
    return float(np.dot(frac, dq))


def plateau_capacities(
    voltage_V: np.ndarray,
    capacity_mAh_g: np.ndarray,
    ni_window_V: tuple[float, float] = S.NI_WINDOW_V,
    o_window_V: tuple[float, float] = S.O_WINDOW_V,
) -> dict[str, float]:
    """Ni- and O-plateau capacities of one discharge curve.

    Parameters
    ----------
    voltage_V : ndarray
        Voltage per point.
    capacity_mAh_g : ndarray
        Capacity passed since the start of the discharge, either sign (magnitudes are used).
    ni_window_V, o_window_V : tuple of float
        Window edges for the Ni plateau (default 4.5-2.5 V) and O plateau (2.5-1.85 V).

    Returns
    -------
    dict
        ``ni_plateau_mAh_g``, ``o_plateau_mAh_g`` and ``total_mAh_g``.
    """
    v = np.asarray(voltage_V, dtype=float)
    q = np.abs(np.asarray(capacity_mAh_g, dtype=float))
    dq = np.abs(np.diff(q))
    return {
        "ni_plateau_mAh_g": window_share(v[:-1], v[1:], dq, ni_window_V),
        "o_plateau_mAh_g": window_share(v[:-1], v[1:], dq, o_window_V),
        "total_mAh_g": float(dq.sum()),
    }


def discharge_plateaus(
    df: pd.DataFrame,
    ni_window_V: tuple[float, float] = S.NI_WINDOW_V,
    o_window_V: tuple[float, float] = S.O_WINDOW_V,
) -> pd.DataFrame:
    """Ni- and O-plateau discharge capacities for every cycle of a run.

    All discharge charge of a cycle counts (several discharge steps, e.g. GITT pulses,
    add up; rests pass no charge).

    Parameters
    ----------
    df : DataFrame
        A run table (annotated or not).
    ni_window_V, o_window_V : tuple of float
        Plateau windows (either order).

    Returns
    -------
    DataFrame
        Columns ``cycle``, ``discharge_mAh_g``, ``ni_plateau_mAh_g``, ``o_plateau_mAh_g``;
        cycles without discharge are left out.
    """
    a = annotate(df)
    v = a[S.VOLTAGE].to_numpy(float)
    dq = np.clip(-a[INCREMENT].to_numpy(float), 0.0, None)[1:]
    cyc = a[CYCLE].to_numpy()[1:]
    rows = []
    for c in np.unique(cyc[dq > 0]):
        sel = (cyc == c) & (dq > 0)
        idx = np.nonzero(sel)[0]
        v0, v1, d = v[idx], v[idx + 1], dq[idx]
        rows.append(
            {
                "cycle": int(c),
                "discharge_mAh_g": float(d.sum()),
                "ni_plateau_mAh_g": window_share(v0, v1, d, ni_window_V),
                "o_plateau_mAh_g": window_share(v0, v1, d, o_window_V),
            }
        )
    cols = ["cycle", "discharge_mAh_g", "ni_plateau_mAh_g", "o_plateau_mAh_g"]
    return pd.DataFrame(rows, columns=cols)
