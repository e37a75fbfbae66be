"""Bluesky plans for heating steps in an oven (relaxation of recovered powders).

The oven is any ophyd movable/readable whose ``set(T)`` finishes once the temperature has
settled and whose ``stop()`` puts the heater in a safe state, such as
:class:`drivers.oven.Oven`. Waiting uses ``bps.sleep`` only, which the orchestrator
replaces in simulated mode, so the plans never depend on the wall clock themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator

from drivers.operator import Timer
from protocols.devices import HeatingStage
from protocols.jobs import await_status, finish, start, wait_for
from protocols.steps import Heat
from protocols.stubs import log_reading, read_clock

#: Seconds between oven readings while the temperature moves (ramp, settling, cool-down).
RAMP_LOG_S = 30.0


def _safe_state(oven: HeatingStage) -> MsgGenerator:
    """Put the oven in its safe state (``stop``)."""
    yield from bps.stop(oven)


def check_heating(hold_name: str, hold_s: float, log_interval_s: float, **temperatures_C: float) -> None:
    """Refuse a heating step's bad values before anything moves.

    Raises
    ------
    ValueError
        Naming the first bad value: a non-finite temperature, a negative or non-finite hold
        (``hold_name``), a non-positive log interval.
    """
    for label, value in temperatures_C.items():
        if not math.isfinite(value):
            raise ValueError(f"{label} must be finite, got {value}")
    if not (math.isfinite(hold_s) and hold_s >= 0):
        raise ValueError(f"{hold_name} must be >= 0, got {hold_s}")
    if not (math.isfinite(log_interval_s) and log_interval_s > 0):
        raise ValueError(f"log_interval_s must be > 0, got {log_interval_s}")


def _wait_s(timer: Timer | None, seconds: float) -> MsgGenerator:
    """Wait ``seconds``: with a timer only this job waits, without one the whole plan sleeps."""
    if timer is None:
        yield Msg("sleep", None, seconds)  # plain message: bps.sleep records a traceback per call
    else:
        yield from await_status("set", timer, seconds)


def logged_set(
    oven: HeatingStage, timer: Timer | None, temperature_C: float, every_s: float = RAMP_LOG_S, stream: str = "oven"
) -> MsgGenerator:
    """Set the oven and wait until it has settled, then read it.

    With a ``timer`` only this job waits, and the oven is also read before the set and every
    ``every_s`` while the temperature moves; without one the plan waits for the set (``mv``).

    Yields
    ------
    msg : Msg
        'set' on the oven, a wait for it (per reading a timer 'set' and relaxlab_wait_for with a
        timer, a 'wait' without), and the log's 'trigger'/'create'/'read'/'save'; the settled
        reading last.
    """
    if timer is None:
        yield from bps.mv(oven, temperature_C)
        yield from log_reading(oven, stream)
        return
    yield from log_reading(oven, stream)
    settled, group = yield from start("set", oven, temperature_C)
    while not settled.done:
        tick, _ = yield from start("set", timer, every_s)
        yield from wait_for([settled, tick])
        yield from log_reading(oven, stream)  # a reading at each tick, and one at the moment it settled
    yield from finish(group)


def preheat(oven: HeatingStage, timer: Timer | None, step: Heat, stream: str = "oven") -> MsgGenerator:
    """Bring the (empty) oven to the step's temperature at its ramp rate; logged.

    Yields
    ------
    msg : Msg
        See :func:`logged_set`.
    """
    if step.ramp_C_min is not None:
        if timer is None:
            yield from bps.mv(oven.ramp_rate, step.ramp_C_min)
        else:
            yield from await_status("set", oven.ramp_rate, step.ramp_C_min)
    yield from logged_set(oven, timer, step.temperature_C, stream=stream)


def heat(
    oven: HeatingStage,
    step: Heat,
    timer: Timer | None = None,
    *,
    stream: str = "oven",
    hold_started_s: float | None = None,
    on_hold: Callable[[float], None] | None = None,
    preheated: bool = False,
    unload: Callable[[], MsgGenerator] | None = None,
) -> MsgGenerator:
    """Ramp to temperature, hold with a temperature log, cool: relaxlab's one heating path.

    The oven is read into ``stream`` once settled at each temperature and every
    ``step.log_interval_s`` during the hold (the last interval shortened so that the hold
    ends on time); the hold is timed from the moment the oven reported settled.

    With a ``timer`` (a campaign job, see :mod:`protocols.jobs`) only this job waits, and the
    temperature is also logged every :data:`RAMP_LOG_S` while it moves; with ``preheated`` the
    oven is at temperature already (see :func:`preheat`); ``unload()`` (the operator taking
    the sample out) runs at the end of the hold, before the cool-down. ``hold_started_s``
    resumes a hold that started then (the oven is asked for the temperature again, which it
    already holds, and only the remaining time is waited). ``on_hold(t)`` is called when the
    hold starts. Without a timer the plan itself waits (``mv`` and ``sleep``).

    Yields
    ------
    msg : Msg
        'set'/'wait' (oven, timer), relaxlab_wait_for or 'sleep', and the log's
        'trigger'/'create'/'read'/'save'.
    """
    if not preheated or hold_started_s is not None:
        if hold_started_s is None:
            yield from preheat(oven, timer, step, stream)
        else:
            yield from logged_set(oven, timer, step.temperature_C, stream=stream)
    now = (yield from read_clock(timer)) if timer is not None else 0.0
    if hold_started_s is None:
        hold_started_s = now
    if on_hold is not None:
        on_hold(hold_started_s)
    remaining = step.hold_s - (now - hold_started_s)
    while remaining > 1e-9:
        chunk = min(step.log_interval_s, remaining)
        yield from _wait_s(timer, chunk)
        remaining -= chunk
        yield from log_reading(oven, stream)
    if unload is not None:
        yield from unload()
    yield from logged_set(oven, timer, step.cool_to_C, stream=stream)


def heated_relaxation(
    oven: HeatingStage,
    temperature_C: float,
    hold_s: float,
    cool_to_C: float = 25.0,
    log_interval_s: float = 60.0,
    *,
    md: dict[str, Any] | None = None,
) -> MsgGenerator:
    """Heat a sample to a temperature, hold it there, cool it down: one run.

    The oven is set to ``temperature_C`` and the plan waits until it has settled (the
    oven's own tolerance and settle time); the temperature is read once then, then every
    ``log_interval_s`` during the hold of ``hold_s`` seconds (the hold is timed from the
    moment the oven reported settled). Then the oven is set to ``cool_to_C`` and the plan
    waits until it has settled there, and reads once more. On any exit, normal or not,
    the oven is put in its safe state (``stop``).

    Parameters
    ----------
    oven : ophyd device
        Movable and readable oven, e.g. :class:`drivers.oven.Oven`.
    temperature_C : float
        Hold temperature, C.
    hold_s : float
        Hold duration at temperature, seconds (>= 0).
    cool_to_C : float
        Temperature to cool to before the run ends, C. It must be reachable: at or above
        the oven's surroundings.
    log_interval_s : float
        Seconds between temperature readings during the hold (> 0).
    md : dict, optional
        Extra metadata for the start document.

    Yields
    ------
    Msg
        ``open_run``, ``set``/``wait`` for heating and cooling, ``sleep`` and
        ``trigger``/``read`` messages for the logged hold, ``close_run``, and a final
        ``stop`` of the oven.

    Raises
    ------
    ValueError
        On a negative hold, a non-positive log interval or non-finite temperatures
        (raised when the plan is created, before anything moves).
    """
    check_heating("hold_s", hold_s, log_interval_s, temperature_C=temperature_C, cool_to_C=cool_to_C)
    args = {"temperature_C": temperature_C, "hold_s": hold_s, "cool_to_C": cool_to_C, "log_interval_s": log_interval_s}
    metadata: dict[str, Any] = {"plan_name": "heated_relaxation", "plan_args": args,
                                **{key: float(value) for key, value in args.items()},
                                "oven": getattr(oven, "name", str(oven))}  # fmt: skip
    metadata.update(md or {})

    def inner() -> MsgGenerator:
        yield from bps.open_run(md=metadata)
        step = Heat(temperature_C, hold_s, cool_to_C=cool_to_C, log_interval_s=log_interval_s)
        yield from heat(oven, step, stream="primary")
        return (yield from bps.close_run())

    return bpp.finalize_wrapper(inner(), _safe_state(oven))
