"""The per-cycle table: charge, discharge, coulombic efficiency, end voltages and plateaus.

It joins the half-cycles of :mod:`analysis.steps` with the discharge plateaus of
:mod:`analysis.plateaus` (which itself builds on :mod:`analysis.steps`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.plateaus import discharge_plateaus
from analysis.steps import CYCLE, annotate, half_cycle_table


def cycle_table(
    df: pd.DataFrame,
    ni_window_V: tuple[float, float] | None = S.NI_WINDOW_V,
    o_window_V: tuple[float, float] | None = S.O_WINDOW_V,
) -> pd.DataFrame:
    """Charge, discharge, coulombic efficiency and plateau capacities per cycle.

    Parameters
    ----------
    df : DataFrame
        A run table.
    ni_window_V, o_window_V : tuple of float or None
        Voltage windows (either order) for the Ni and O discharge plateaus; ``None`` leaves
        the plateau columns out (a material that defines no such windows).

    Returns
    -------
    DataFrame
        Columns ``cycle``, ``charge_mAh_g``, ``discharge_mAh_g`` (net charge of the cycle's
        charge and discharge half-cycles; NaN when the cycle has none), ``coulombic_efficiency`` (discharge / charge), ``max_voltage_V``,
        ``min_voltage_V``, ``charge_end_V``, ``discharge_end_V`` and, with windows,
        ``ni_plateau_mAh_g``, ``o_plateau_mAh_g``.
    """
    a = annotate(df)
    halves = half_cycle_table(a)
    cycles = sorted(halves["cycle"].unique()) if len(halves) else []
    table = pd.DataFrame({"cycle": np.asarray(cycles, dtype=int)})
    g = a.groupby(CYCLE)[S.VOLTAGE]
    for direction in ("charge", "discharge"):
        sel = halves[halves["direction"] == direction].groupby("cycle")
        table[f"{direction}_mAh_g"] = table["cycle"].map(sel["capacity_mAh_g"].sum()).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(table["charge_mAh_g"] > 0, table["discharge_mAh_g"] / table["charge_mAh_g"], np.nan)
    table["coulombic_efficiency"] = ce
    table["max_voltage_V"] = table["cycle"].map(g.max())
    table["min_voltage_V"] = table["cycle"].map(g.min())
    for direction in ("charge", "discharge"):
        ends = halves[halves["direction"] == direction].groupby("cycle")["voltage_end_V"].last()
        table[f"{direction}_end_V"] = table["cycle"].map(ends)
    if ni_window_V is not None and o_window_V is not None:
        plateaus = discharge_plateaus(a, ni_window_V, o_window_V)
        table = table.merge(
            plateaus[["cycle", "ni_plateau_mAh_g", "o_plateau_mAh_g"]], on="cycle", how="left"
        )
    return table
