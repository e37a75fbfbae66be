"""Plans: each opens one bluesky run, with everything needed to interpret it in the start
document (sample, cell, active mass, material and every protocol parameter).

Every plan leaves the cell at open circuit when it ends, whether it finished, failed or was
aborted (:func:`open_circuit_wrapper` / :func:`open_circuit_decorator`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from bluesky import preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator, make_decorator

from drivers.device import PotentiostatChannel
from drivers.techniques import ConstantCurrent, Cutoffs, Loop, Rest, Technique
from protocols.stubs import declare_points_stream, run_step


def open_circuit_wrapper(plan: MsgGenerator, channels: Sequence[PotentiostatChannel]) -> MsgGenerator:
    """Run ``plan``; whatever happens, put every channel at open circuit afterwards.

    Yields
    ------
    msg : Msg
        The plan's messages, then a 'stop' per channel.
    """

    def _open_circuit() -> MsgGenerator:
        for channel in channels:
            yield Msg("stop", channel)

    return (yield from bpp.finalize_wrapper(plan, _open_circuit()))


open_circuit_decorator = make_decorator(open_circuit_wrapper)


def technique_to_dict(technique: Technique | Loop) -> dict[str, Any]:
    """A technique as plain metadata (kind and every parameter)."""
    return dataclasses.asdict(technique)


def cell_metadata(channel: PotentiostatChannel, cell_md: dict[str, Any] | None) -> dict[str, Any]:
    md = {
        "active_mass_g": float(channel.active_mass_g.get()),
        "channel": channel.name,
        "instrument": str(channel.instrument.get()),
    }
    md.update(cell_md or {})
    return md


StepPlan = Callable[[PotentiostatChannel, Technique | Loop], MsgGenerator]


def run_protocol(
    channel: PotentiostatChannel,
    steps: Sequence[Technique | Loop],
    md: dict[str, Any] | None = None,
    step_plan: StepPlan = run_step,
) -> MsgGenerator:
    """Run a sequence of steps on one channel as one run.

    Parameters
    ----------
    channel
        The potentiostat channel with its cell.
    steps
        Technique value objects, run in order.
    md
        Extra start-document metadata (sample, cell, material, campaign ...).
    step_plan
        Runs one step, streaming its points, and returns why it ended: by default
        :func:`protocols.stubs.run_step`; :func:`protocols.insitu.insitu_xrd_protocol` passes
        one that also collects the diffractometer's scans.

    Yields
    ------
    msg : Msg
        'open_run', the messages of each step, 'close_run', and the open-circuit 'stop'.
    """
    start_md = {
        "plan_name": "run_protocol",
        "steps": [technique_to_dict(s) for s in steps],
        "step_types": [s.kind for s in steps],
        **cell_metadata(channel, md),
    }

    @open_circuit_decorator([channel])
    @bpp.run_decorator(md=start_md)
    def _inner() -> MsgGenerator:
        yield from declare_points_stream(channel)
        reasons = []
        for step in steps:
            reasons.append((yield from step_plan(channel, step)))
        return reasons

    return (yield from _inner())


def one_step(
    channel: PotentiostatChannel, step: Technique, plan_name: str, md: dict[str, Any] | None
) -> MsgGenerator:
    """One step as one run, named ``plan_name`` in its start document.

    Yields
    ------
    msg : Msg
        The messages of :func:`run_protocol`.
    """
    return (yield from run_protocol(channel, [step], {"plan_name": plan_name, **(md or {})}))


def charge(
    channel: PotentiostatChannel,
    current_mA_g: float,
    voltage_V: float | None = 4.8,
    capacity_mAh_g: float | None = None,
    record_interval_s: float = 10.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator:
    """Charge at a specific current to a voltage or a capacity: :func:`one_step` of a
    positive constant current."""
    step = ConstantCurrent(abs(current_mA_g), Cutoffs(voltage_V, capacity_mAh_g), record_interval_s)
    return (yield from one_step(channel, step, "charge", md))


def discharge(
    channel: PotentiostatChannel,
    current_mA_g: float,
    voltage_V: float = 1.85,
    record_interval_s: float = 10.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator:
    """Discharge at a specific current to a voltage: :func:`one_step` of a negative constant
    current."""
    step = ConstantCurrent(-abs(current_mA_g), Cutoffs(voltage_V), record_interval_s)
    return (yield from one_step(channel, step, "discharge", md))


def rest(
    channel: PotentiostatChannel,
    duration_s: float,
    record_interval_s: float = 60.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator:
    """Open-circuit rest for a duration: :func:`one_step` of a :class:`~drivers.techniques.Rest`."""
    return (yield from one_step(channel, Rest(duration_s, record_interval_s), "rest", md))


def relaxation_protocol(
    channel: PotentiostatChannel,
    charge_current_mA_g: float = 20.0,
    charge_voltage_V: float | None = 4.8,
    charge_capacity_mAh_g: float | None = None,
    rest_s: float = 86400.0,
    discharge_current_mA_g: float = 20.0,
    discharge_voltage_V: float = 1.85,
    record_interval_s: float = 10.0,
    rest_record_interval_s: float = 60.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator:
    """Charge, relax at open circuit, discharge: the paper's relaxation protocol, one run.

    Parameters
    ----------
    channel
        The potentiostat channel with its cell.
    charge_current_mA_g, discharge_current_mA_g
        Specific currents (magnitudes), mA per g of active material.
    charge_voltage_V, charge_capacity_mAh_g
        Charge cut-offs; the first reached ends the charge.
    rest_s
        Open-circuit rest, seconds.
    discharge_voltage_V
        Discharge cut-off.

    Yields
    ------
    msg : Msg
        The messages of :func:`run_protocol`.
    """
    params = {
        "charge_current_mA_g": charge_current_mA_g,
        "charge_voltage_V": charge_voltage_V,
        "charge_capacity_mAh_g": charge_capacity_mAh_g,
        "rest_s": rest_s,
        "discharge_current_mA_g": discharge_current_mA_g,
        "discharge_voltage_V": discharge_voltage_V,
        "record_interval_s": record_interval_s,
        "rest_record_interval_s": rest_record_interval_s,
    }
    steps: list[Technique] = [
        ConstantCurrent(
            abs(charge_current_mA_g),
            Cutoffs(voltage_V=charge_voltage_V, capacity_mAh_g=charge_capacity_mAh_g),
            record_interval_s,
        ),
        Rest(rest_s, rest_record_interval_s),
        ConstantCurrent(
            -abs(discharge_current_mA_g), Cutoffs(voltage_V=discharge_voltage_V), record_interval_s
        ),
    ]
    full_md = {
        "plan_name": "relaxation_protocol",
        "protocol": "relaxation",
        "protocol_parameters": params,
        **(md or {}),
    }
    return (yield from run_protocol(channel, steps, full_md))


__all__ = [
    "charge",
    "discharge",
    "open_circuit_decorator",
    "open_circuit_wrapper",
    "relaxation_protocol",
    "rest",
    "run_protocol",
]
