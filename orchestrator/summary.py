"""What a relaxation run measured, computed from its exported points (the same columns that
``relaxlab data export`` writes), so anyone can recompute it from the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.figures import cycling_figure
from analysis.plateaus import plateau_capacities


def relaxation_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Charge capacity, voltage at the end of the rest, discharge and plateau capacities."""
    out: dict[str, Any] = {}
    steps = list(frame.groupby("step", sort=True))
    charges = [g for _, g in steps if g["step_type"].iloc[0] == "cc" and g["current_A"].mean() > 0]
    rests = [g for _, g in steps if g["step_type"].iloc[0] == "rest"]
    discharges = [g for _, g in steps if g["step_type"].iloc[0] == "cc" and g["current_A"].mean() < 0]
    if charges:
        out["charge_capacity_mAh_g"] = float(np.abs(charges[0]["capacity_mAh_g"]).max())
        out["charge_end_voltage_V"] = float(charges[0]["voltage_V"].iloc[-1])
    if rests:
        rest = rests[0]
        out["rest_duration_h"] = float(rest["time_s"].iloc[-1] - rest["time_s"].iloc[0]) / 3600.0
        out["rest_end_voltage_V"] = float(rest["voltage_V"].iloc[-1])
    if discharges:
        d = discharges[0]
        capacity = np.abs(d["capacity_mAh_g"].to_numpy())
        out["discharge_capacity_mAh_g"] = float(capacity.max())
        plateaus = plateau_capacities(d["voltage_V"].to_numpy(), capacity)
        out["ni_plateau_mAh_g"] = float(plateaus["ni_plateau_mAh_g"])
        out["o_plateau_mAh_g"] = float(plateaus["o_plateau_mAh_g"])
    out["points"] = len(frame)
    out["duration_h"] = (
        float(frame["time_s"].iloc[-1] - frame["time_s"].iloc[0]) / 3600.0 if len(frame) else 0.0
    )
    return out


def voltage_capacity_png(start: dict[str, Any], frame: pd.DataFrame, path: Path) -> Path | None:
    """Voltage vs capacity, Ni (4.5-2.5 V) and O (2.5-1.85 V) plateaus shaded."""
    fig = cycling_figure([(start, frame)])
    if fig is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
