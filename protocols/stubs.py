"""Plan stubs: the small pieces relaxlab's protocols are composed from.

Stubs open no run; they are ``yield from``-ed inside one. Each streams the points of its step
into the open run as event pages while the step runs.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from bluesky import plan_stubs as bps
from bluesky.utils import Msg, short_uid

from drivers.device import PotentiostatChannel
from drivers.techniques import ConstantCurrent, Cutoffs, Loop, Rest, Technique

MsgGen = Generator[Msg, Any, Any]

#: Name of the event stream that carries the potentiostat's points.
STREAM = "primary"


def declare_points_stream(channel: PotentiostatChannel, stream: str = STREAM) -> MsgGen:
    """Declare the stream that :func:`run_step` fills (once per run).

    Yields
    ------
    msg : Msg
        A 'declare_stream' message.
    """
    yield from bps.declare_stream(channel, name=stream, collect=True)


def run_step(channel: PotentiostatChannel, technique: Technique | Loop, stream: str = STREAM) -> MsgGen:
    """Run one technique and stream its points into the open run, page by page.

    Parameters
    ----------
    channel
        The potentiostat channel.
    technique
        Any :mod:`drivers.techniques` value object.
    stream
        The event stream the points go to (declared with :func:`declare_points_stream`).

    Yields
    ------
    msg : Msg
        'prepare', 'kickoff', 'wait', 'complete', then 'trigger'/'wait'/'collect' per page and
        a final 'wait'.

    Raises
    ------
    Exception
        The channel's ``fault`` (instrument error, safety limit) once its points are collected.

    Returns
    -------
    str
        Why the step ended ("voltage", "capacity", "time", ...).
    """
    # Plain messages rather than plan_stubs calls: this loop runs once per page for weeks, and
    # every plan_stubs call records a traceback (bluesky's Plan wrapper).
    started = short_uid("start")
    yield Msg("prepare", channel, technique, group=started)
    yield Msg("kickoff", channel, group=started)
    yield Msg("wait", None, group=started)
    group = short_uid("step")
    done = yield Msg("complete", channel, group=group)
    while True:
        page = short_uid("page")
        yield Msg("trigger", channel, group=page)
        yield Msg("wait", None, group=page)
        yield Msg("collect", channel, stream=False, return_payload=False, name=stream)
        if done.done:
            break
    yield Msg("wait", None, group=group)
    if channel.fault is not None:
        raise channel.fault
    return channel.end_reason


def charge_step(
    channel: PotentiostatChannel,
    current_mA_g: float,
    voltage_V: float | None = None,
    capacity_mAh_g: float | None = None,
    duration_s: float | None = None,
    record_interval_s: float = 10.0,
) -> MsgGen:
    """Constant-current charge to the first of a voltage, capacity or time cut-off.

    Yields
    ------
    msg : Msg
        The messages of :func:`run_step`.
    """
    technique = ConstantCurrent(
        abs(current_mA_g), Cutoffs(voltage_V, capacity_mAh_g, duration_s), record_interval_s
    )
    return (yield from run_step(channel, technique))


def discharge_step(
    channel: PotentiostatChannel,
    current_mA_g: float,
    voltage_V: float | None = None,
    capacity_mAh_g: float | None = None,
    duration_s: float | None = None,
    record_interval_s: float = 10.0,
) -> MsgGen:
    """Constant-current discharge (negative current) to the first cut-off.

    Yields
    ------
    msg : Msg
        The messages of :func:`run_step`.
    """
    technique = ConstantCurrent(
        -abs(current_mA_g), Cutoffs(voltage_V, capacity_mAh_g, duration_s), record_interval_s
    )
    return (yield from run_step(channel, technique))


def rest_step(
    channel: PotentiostatChannel,
    duration_s: float,
    record_interval_s: float = 60.0,
    dvdt_V_s: float | None = None,
) -> MsgGen:
    """Open circuit for ``duration_s``, recording every ``record_interval_s``.

    Yields
    ------
    msg : Msg
        The messages of :func:`run_step`.
    """
    return (yield from run_step(channel, Rest(duration_s, record_interval_s, dvdt_V_s)))
