"""Step durations from the cell model: the same physics the simulated lab runs.

``campaign plan`` (and the progress ETA of a campaign) need to know how long a charge to
4.5 V takes before anything runs. A fixed "typical capacity" is wrong by a factor that
depends on the cut-off (a charge to 4.5 V is not a charge to 4.8 V), so each cell's
electrochemical steps are run once through the material's cell model, from the state the
cell starts in (a pristine electrode, or the campaign's charged powder after its heating).
Steps the model does not decide (rests, heat holds, manual steps, XRD, sweeps) keep their
exact or declared durations from :func:`orchestrator.schedule.estimate_step_s`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from drivers.techniques import GITT, ConstantCurrent, ConstantVoltage, Loop, Rest, Sweep
from orchestrator.campaign_file import Campaign
from orchestrator.schedule import estimate_step_s
from orchestrator.units import parse_quantity
from protocols.schema import Heat, Manual, Step
from simulators.cell import Cell, Sample
from simulators.material import Material, MaterialError, load_material

#: Longest step the model is asked to run (a step that never ends is estimated as this).
HORIZON_S = 60 * 86400.0
#: Mass of the model cell (g): durations of specific-current steps do not depend on it.
MASS_G = 0.005
ROOM_C = 25.0


@functools.lru_cache(maxsize=16)
def _material(name: str) -> Material:
    return load_material(None if name in ("x04", "default", "") else name)


def _charged_sample(material: Material, charged_to: str | None) -> Sample:
    """A pristine sample, or the powder charged at 20 mA/g to a voltage or a capacity."""
    sample = Sample(material)
    if charged_to:
        cell = Cell(sample, active_mass_g=MASS_G)
        current_A = 20.0 * MASS_G / 1000.0
        if "mAh" in charged_to:
            capacity = parse_quantity(charged_to, "mAh/g")
            cell.constant_current(current_A, HORIZON_S, v_upper_V=4.8, capacity_limit_mAh_g=capacity)
        else:
            cell.constant_current(current_A, HORIZON_S, v_upper_V=parse_quantity(charged_to, "V"))
    return sample


def _run(cell: Cell, step: Step) -> float:
    """Advance ``cell`` through one step; its duration in seconds."""
    if isinstance(step, ConstantCurrent):
        current_A = step.current_mA_g * cell.active_mass_g / 1000.0
        cut = step.cutoffs
        limit = min(cut.duration_s or HORIZON_S, HORIZON_S)
        return cell.constant_current(
            current_A,
            limit,
            v_upper_V=cut.voltage_V if step.current_mA_g > 0 else None,
            v_lower_V=cut.voltage_V if step.current_mA_g < 0 else None,
            capacity_limit_mAh_g=cut.capacity_mAh_g,
        ).elapsed_s
    if isinstance(step, ConstantVoltage):
        cut = step.cutoffs
        limit_A = None if cut.current_mA_g is None else cut.current_mA_g * cell.active_mass_g / 1000.0
        return cell.constant_voltage(step.voltage_V, min(cut.duration_s or HORIZON_S, HORIZON_S), limit_A).elapsed_s
    if isinstance(step, Rest):
        cell.rest(step.duration_s)
        return step.duration_s
    if isinstance(step, GITT):
        current_A = step.current_mA_g * cell.active_mass_g / 1000.0
        total = 0.0
        for _ in range(step.max_pulses):
            pulse = cell.constant_current(
                current_A,
                step.pulse_s,
                v_upper_V=step.cutoff_voltage_V if current_A > 0 else None,
                v_lower_V=step.cutoff_voltage_V if current_A < 0 else None,
            )
            total += pulse.elapsed_s
            if pulse.reason != "time":
                break
            cell.rest(step.rest_s)
            total += step.rest_s
        return total
    if isinstance(step, Loop):
        return sum(_run(cell, inner) for _ in range(step.count) for inner in step.steps)
    if isinstance(step, Heat):
        cell.sample.relax(step.hold_s, step.temperature_C)
        return estimate_step_s(step)
    if isinstance(step, Manual):
        cell.sample.relax(step.duration_s, ROOM_C)
        return estimate_step_s(step)
    if isinstance(step, Sweep):
        duration = estimate_step_s(step)
        cell.rest(duration)  # the model's state after a sweep matters little to what follows
        return duration
    return estimate_step_s(step)


@functools.lru_cache(maxsize=256)
def model_durations(steps: tuple[Step, ...], material: str = "x04", charged_to: str | None = None) -> tuple[float, ...]:
    """Duration of each step (s), running the electrochemical ones through the cell model.

    Parameters
    ----------
    steps : tuple of Step
        A protocol's steps (techniques, loops, heat, XRD and manual steps), in order.
    material : str
        Material name (``x04``, ``x05``) or material file path.
    charged_to : str, optional
        The powder the cell is built from was charged to this (``"4.5 V"``, ``"200 mAh/g"``);
        ``None``: a pristine electrode.

    Returns
    -------
    tuple of float
        Seconds per step, finite (a step that would never end counts as ``HORIZON_S``).
    """
    cell = Cell(_charged_sample(_material(material), charged_to), active_mass_g=MASS_G)
    out = []
    for step in steps:
        seconds = _run(cell, step)
        out.append(seconds if math.isfinite(seconds) else HORIZON_S)
    return tuple(out)


def model_estimator(material: str, charged_to: str | None) -> StepEstimator:
    """A per-protocol duration function for :func:`orchestrator.schedule.plan_campaign`."""
    return functools.partial(_estimate, material=material, charged_to=charged_to)


def campaign_estimator(campaign: Campaign) -> StepEstimator | None:
    """The cell model's duration function for a campaign's material and powder.

    ``None`` when the material cannot be loaded (the schedule then falls back to
    :func:`orchestrator.schedule.estimate_step_s`).
    """
    material = campaign.batch.material
    try:
        _material(material)
    except MaterialError:
        return None
    return model_estimator(material, campaign.powder.charged_to if campaign.powder else None)


def _estimate(steps: Sequence[Step], material: str, charged_to: str | None) -> tuple[float, ...]:
    return model_durations(tuple(steps), material, charged_to)


StepEstimator = functools.partial[tuple[float, ...]]
