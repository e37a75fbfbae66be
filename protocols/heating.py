"""Bluesky plans for heating steps in an oven (relaxation of recovered powders).

The oven is any ophyd movable/readable whose ``set(T)`` finishes once the temperature has
settled and whose ``stop()`` puts the heater in a safe state, such as
:class:`drivers.eurotherm.Oven`. Waiting uses ``bps.sleep`` only, which the orchestrator
replaces in simulated mode, so the plans never depend on the wall clock themselves.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg

Plan = Generator[Msg, Any, Any]


def _safe_state(oven: Any) -> Plan:
    """Put the oven in its safe state (``stop``)."""
    yield from bps.stop(oven)


def hold_with_log(oven: Any, hold_s: float, log_interval_s: float) -> Plan:
    """Hold for ``hold_s`` seconds, reading the oven every ``log_interval_s``.

    Parameters
    ----------
    oven : ophyd device
        Readable oven.
    hold_s : float
        Hold duration, seconds (>= 0).
    log_interval_s : float
        Seconds between readings (> 0); the last interval is shortened so that the hold
        ends exactly at ``hold_s``.

    Yields
    ------
    Msg
        ``sleep`` messages and the messages of ``trigger_and_read``.
    """
    ticks = math.ceil(hold_s / log_interval_s - 1e-9) if hold_s > 0 else 0
    previous = 0.0
    for k in range(1, ticks + 1):
        at = min(k * log_interval_s, hold_s)
        yield from bps.sleep(at - previous)
        previous = at
        yield from bps.trigger_and_read([oven])


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


def heat_hold_cool(
    oven: Any, temperature_C: float, hold_s: float, cool_to_C: float, log_interval_s: float
) -> Plan:
    """Heat to ``temperature_C``, hold ``hold_s`` with a reading every ``log_interval_s``, cool.

    The hold is timed from the moment the oven reported settled; the oven is read once when
    settled at each temperature.

    Yields
    ------
    Msg
        ``set``/``wait`` for heating and cooling, each followed by ``trigger``/``read``, and the
        messages of :func:`hold_with_log` in between.
    """
    yield from bps.mv(oven, temperature_C)
    yield from bps.trigger_and_read([oven])
    yield from hold_with_log(oven, hold_s, log_interval_s)
    yield from bps.mv(oven, cool_to_C)
    yield from bps.trigger_and_read([oven])


def heated_relaxation(
    oven: Any,
    temperature_C: float,
    hold_s: float,
    cool_to_C: float = 25.0,
    log_interval_s: float = 60.0,
    *,
    md: dict[str, Any] | None = None,
) -> Plan:
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
        Movable and readable oven, e.g. :class:`drivers.eurotherm.Oven`.
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
    metadata: dict[str, Any] = {
        "plan_name": "heated_relaxation",
        "plan_args": {
            "temperature_C": temperature_C,
            "hold_s": hold_s,
            "cool_to_C": cool_to_C,
            "log_interval_s": log_interval_s,
        },
        "temperature_C": float(temperature_C),
        "hold_s": float(hold_s),
        "cool_to_C": float(cool_to_C),
        "log_interval_s": float(log_interval_s),
        "oven": getattr(oven, "name", str(oven)),
    }
    metadata.update(md or {})

    def inner() -> Plan:
        yield from bps.open_run(md=metadata)
        yield from heat_hold_cool(oven, temperature_C, hold_s, cool_to_C, log_interval_s)
        return (yield from bps.close_run())

    return bpp.finalize_wrapper(inner(), _safe_state(oven))
