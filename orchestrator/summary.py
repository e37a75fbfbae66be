"""What a run measured, computed from its exported points (the same columns that
``relaxlab data export`` writes), so anyone can recompute it from the file.

The summary fits the technique: a relaxation run (charge, open-circuit rest, discharge) gets
the relaxation summary; cycling, GITT, CV and window-opening runs get a per-cycle table
(charge, discharge, coulombic efficiency, plateaus where the material defines them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.cycles import cycle_table
from analysis.figures import cycling_figure, gitt_figure, run_name, voltammogram_figure
from analysis.gitt import has_gitt
from analysis.ocv import ocv_before_discharge
from analysis.plateaus import material_windows, plateau_capacities
from analysis.steps import annotate, half_cycle_table

#: The one definition of a cell's OCV (see :data:`analysis.schema.OCV_READ_S`).
OCV_READ_S = S.OCV_READ_S
#: A rest at least this long after a charge or before a discharge makes a relaxation run.
RELAXATION_REST_S = 900.0
#: How the per-cycle and per-half-cycle capacities are integrated (``capacity_method`` of a
#: summary that has them): see :mod:`analysis.steps`.
CAPACITY_METHOD = (
    "within each step and sub-step the instrument's charge counter (the current read at each "
    "poll times the time since the previous poll); across counter restarts the recorded current "
    "by trapezoids; a half-cycle is its net charge, reversals under 1 % of the largest segment "
    "counted against it"
)


def relaxation_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Charge capacity, voltage at the end of the rest, OCV, discharge and plateau capacities.

    ``ocv_V`` is the last voltage of the open-circuit rest before the first discharge (the one
    definition used by the report and the campaign tables too)."""
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
    ocv = ocv_before_discharge(frame, OCV_READ_S) if len(frame) else float("nan")
    out["ocv_V"] = float(ocv) if np.isfinite(ocv) else None
    out["points"] = len(frame)
    out["duration_h"] = (
        float(frame["time_s"].iloc[-1] - frame["time_s"].iloc[0]) / 3600.0 if len(frame) else 0.0
    )
    return out


def technique(start: dict[str, Any], frame: pd.DataFrame) -> str:
    """ "relaxation", "gitt", "cv" or "cycling": what kind of run this is, from its steps and data."""
    types = set(str(t) for t in start.get("step_types", []))
    types |= set(frame["step_type"].astype(str).unique()) if "step_type" in frame else set()
    if "sweep" in types:
        return "cv"
    if "gitt" in types or has_gitt(frame):
        return "gitt"
    if "loop" in types:
        return "cycling"
    if not len(frame) or len(cycle_table(frame, None, None)) > 1:
        return "cycling"
    # a rest of at least OCV_REST_S after a charge or before a discharge: a relaxation run
    steps = frame.groupby("step", sort=True).agg(
        kind=("step_type", "first"),
        current=("current_A", "mean"),
        t0=("time_s", "first"),
        t1=("time_s", "last"),
    )
    kinds = [
        ("rest" if k == "rest" else "charge" if c > 0 else "discharge")
        for k, c in zip(steps["kind"], steps["current"], strict=True)
    ]
    lengths = (steps["t1"] - steps["t0"]).to_numpy()
    for k, kind in enumerate(kinds):
        if kind == "rest" and lengths[k] >= RELAXATION_REST_S - 1e-6:
            after_charge = k > 0 and kinds[k - 1] == "charge"
            before_discharge = k + 1 < len(kinds) and kinds[k + 1] == "discharge"
            if after_charge or before_discharge:
                return "relaxation"
    return "cycling"


def cycles(start: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """The per-cycle table of a run, with plateau columns when its material defines the windows."""
    windows = material_windows(start.get("material"))
    ni, o = (windows["ni"], windows["o"]) if windows else (None, None)
    mass = start.get("active_mass_g")
    return cycle_table(annotate(frame, mass), ni, o)


def run_summary(start: dict[str, Any], frame: pd.DataFrame, with_cycles: bool = False) -> dict[str, Any]:
    """The summary that fits the run's technique (see the module docstring), JSON-ready.

    ``with_cycles`` adds the per-cycle and per-half-cycle tables to a relaxation summary too
    (``relaxlab report --json`` gives them for every run)."""
    kind = technique(start, frame)
    out: dict[str, Any] = {"technique": kind, "name": run_name(start)}
    if kind == "relaxation":
        out.update(relaxation_summary(frame))
        if material_windows(start.get("material")) is None:
            out.pop("ni_plateau_mAh_g", None)
            out.pop("o_plateau_mAh_g", None)
        if not with_cycles:
            return out
    table = cycles(start, frame)
    halves = half_cycle_table(annotate(frame, start.get("active_mass_g")))
    out["cycles"] = _records(table)
    out["capacity_method"] = CAPACITY_METHOD
    out["half_cycles"] = _records(
        halves[
            [
                "half_cycle",
                "cycle",
                "direction",
                "step_types",
                "duration_s",
                "voltage_end_V",
                "capacity_mAh_g",
            ]
        ]
    )
    if kind != "relaxation":
        out["points"] = len(frame)
        out["duration_h"] = (
            float(frame["time_s"].iloc[-1] - frame["time_s"].iloc[0]) / 3600.0 if len(frame) else 0.0
        )
    return out


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    rows = table.to_dict(orient="records")
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in rows
    ]


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable text of :func:`run_summary` (a table for cycles)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return "-" if v is None else str(v)

    tables = ("cycles", "half_cycles", "capacity_method")
    head = [f"{k:26s} {fmt(v)}" for k, v in summary.items() if k not in tables]
    if "cycles" not in summary:
        return "\n".join(head)
    table = pd.DataFrame(summary["cycles"])
    if table.empty:
        return "\n".join([*head, "no complete charge or discharge in this run"])
    method = [f"capacities: {summary['capacity_method']}"] if "capacity_method" in summary else []
    cols = {
        "cycle": "cycle", "charge_mAh_g": "charge mAh/g", "discharge_mAh_g": "discharge mAh/g",
        "coulombic_efficiency": "CE %", "charge_end_V": "charge to V", "discharge_end_V": "discharge to V",
        "ni_plateau_mAh_g": "Ni plateau mAh/g", "o_plateau_mAh_g": "O plateau mAh/g",
    }  # fmt: skip
    shown = table[[c for c in cols if c in table.columns]].copy()
    shown["coulombic_efficiency"] = 100.0 * shown["coulombic_efficiency"].astype(float)
    for c in shown.columns:
        digits = 0 if c == "cycle" else 2 if c.endswith("_V") else 1
        shown[c] = [
            f"{v:.{digits}f}" if v is not None and np.isfinite(v) else "-" for v in shown[c].astype(float)
        ]
    text = shown.rename(columns=cols).to_string(index=False)
    return "\n".join([*head, "", text, *method])


def summary_png(
    start: dict[str, Any], frame: pd.DataFrame, path: Path, kind: str | None = None
) -> Path | None:
    """The figure that fits the technique: voltammogram (CV), GITT curve, else voltage vs capacity."""
    kind = kind or technique(start, frame)
    fig = None
    if kind == "cv":
        fig = voltammogram_figure([(start, frame)])
    elif kind == "gitt":
        fig = gitt_figure(frame, start)
    if fig is None:
        fig = cycling_figure([(start, frame)])
    if fig is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def voltage_capacity_png(start: dict[str, Any], frame: pd.DataFrame, path: Path) -> Path | None:
    """Voltage vs capacity per half-cycle (plateau windows shaded where the material defines them)."""
    return summary_png(start, frame, path, kind="cycling")
