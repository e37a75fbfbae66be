"""Plan stubs: the small pieces relaxlab's protocols are composed from.

Stubs open no run; they are ``yield from``-ed inside one. Each streams the points of its step
into the open run as event pages while the step runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bluesky import plan_stubs as bps
from bluesky.protocols import Readable
from bluesky.utils import Msg, MsgGenerator, short_uid
from ophyd.status import Status

from drivers.base import StepProgress
from drivers.device import PotentiostatChannel
from drivers.operator import Timer
from drivers.techniques import ConstantCurrent, Cutoffs, Loop, Rest, Technique

#: Name of the event stream that carries the potentiostat's points.
STREAM = "primary"


def declare_points_stream(channel: PotentiostatChannel, stream: str = STREAM) -> MsgGenerator:
    """Declare the stream that :func:`run_step` fills (once per run).

    Yields
    ------
    msg : Msg
        A 'declare_stream' message.
    """
    yield from bps.declare_stream(channel, name=stream, collect=True)


PageWait = Callable[[PotentiostatChannel, Status], MsgGenerator]


def trigger_page(channel: PotentiostatChannel, done: Status) -> MsgGenerator:
    """Trigger the channel's next page and wait for it (the default of :func:`stream_step`).

    Yields
    ------
    msg : Msg
        'trigger' of the channel, 'wait' on its group.

    Returns
    -------
    bool
        True: a page is ready to collect.
    """
    page = short_uid("page")
    yield Msg("trigger", channel, group=page)
    yield Msg("wait", None, group=page)
    return True


def stream_step(
    channel: PotentiostatChannel,
    technique: Technique | Loop,
    stream: str = STREAM,
    next_page: PageWait = trigger_page,
    resume: StepProgress | None = None,
    on_started: Callable[[], None] | None = None,
) -> MsgGenerator:
    """The one loop that runs a step and streams its points into the open run, page by page.

    Every plan that runs a technique composes this (:func:`run_step`,
    :func:`protocols.campaign.job_step`, :func:`protocols.insitu.insitu_step`); they differ
    only in how they wait for the next page (``next_page``).

    Parameters
    ----------
    channel
        The potentiostat channel.
    technique
        Any :mod:`drivers.techniques` value object.
    stream
        The event stream the points go to (declared with :func:`declare_points_stream`).
    next_page
        ``next_page(channel, done)`` waits for the next page (``done`` is the step's
        'complete' status) and returns True when the channel has a page to collect.
    resume
        How far the step got before: the channel re-attaches to it on the instrument
        instead of starting it.
    on_started
        Called once the step runs (e.g. to persist where it started).

    Yields
    ------
    msg : Msg
        'prepare', 'kickoff', 'wait', 'complete', then per wake-up the messages of
        ``next_page`` and a 'collect' when a page is ready; a final 'wait'.

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
    resuming = {} if resume is None else {"resume": resume}
    yield Msg("prepare", channel, technique, group=started, **resuming)
    yield Msg("kickoff", channel, group=started)
    yield Msg("wait", None, group=started)
    if on_started is not None:
        on_started()
    group = short_uid("step")
    done = yield Msg("complete", channel, group=group)
    while True:
        if (yield from next_page(channel, done)):
            yield Msg("collect", channel, stream=False, return_payload=False, name=stream)
            if done.done:
                break
    yield Msg("wait", None, group=group)
    if channel.fault is not None:
        raise channel.fault
    return channel.end_reason


def run_step(channel: PotentiostatChannel, technique: Technique | Loop, stream: str = STREAM) -> MsgGenerator:
    """Run one technique and stream its points into the open run, page by page:
    :func:`stream_step` waiting for each page with :func:`trigger_page`.

    Yields
    ------
    msg : Msg
        'prepare', 'kickoff', 'wait', 'complete', then 'trigger'/'wait'/'collect' per page and
        a final 'wait'.

    Returns
    -------
    str
        Why the step ended; the channel's ``fault`` is raised as :func:`stream_step` does.
    """
    return (yield from stream_step(channel, technique, stream))


def constant_current_step(
    channel: PotentiostatChannel,
    current_mA_g: float,
    voltage_V: float | None = None,
    capacity_mAh_g: float | None = None,
    duration_s: float | None = None,
    record_interval_s: float = 10.0,
) -> MsgGenerator:
    """Constant specific current (positive charges) to the first of a voltage, capacity or time
    cut-off.

    Yields
    ------
    msg : Msg
        The messages of :func:`run_step`.

    Returns
    -------
    str
        Why the step ended.
    """
    cutoffs = Cutoffs(voltage_V, capacity_mAh_g, duration_s)
    return (yield from run_step(channel, ConstantCurrent(current_mA_g, cutoffs, record_interval_s)))


def rest_step(
    channel: PotentiostatChannel,
    duration_s: float,
    record_interval_s: float = 60.0,
    dvdt_V_s: float | None = None,
) -> MsgGenerator:
    """Open circuit for ``duration_s``, recording every ``record_interval_s``.

    Yields
    ------
    msg : Msg
        The messages of :func:`run_step`.
    """
    return (yield from run_step(channel, Rest(duration_s, record_interval_s, dvdt_V_s)))


def log_reading(device: Readable[Any], stream: str = "oven") -> MsgGenerator:
    """One reading of ``device`` into ``stream`` (trigger_and_read as plain messages: it runs
    every minute of every heating).

    Yields
    ------
    msg : Msg
        'trigger', 'wait', 'create', 'read', 'save'.
    """
    group = short_uid("log")
    yield Msg("trigger", device, group=group)
    yield Msg("wait", None, group=group)
    yield Msg("create", None, name=stream)
    yield Msg("read", device)
    yield Msg("save")


def read_clock(timer: Timer) -> MsgGenerator:
    """The clock time now, asked of ``timer`` with a 'read' message (plans never call the clock).

    Returns
    -------
    float
        Seconds, on the lab's clock.
    """
    reading = yield Msg("read", timer)
    return float(reading[timer.name]["value"])
