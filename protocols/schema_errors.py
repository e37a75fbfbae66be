"""Protocol-file errors: a valid example for every step and field, and pydantic errors turned
into :class:`~protocols.steps.ProtocolIssue` s naming where they are."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

from protocols.steps import ProtocolIssue

STEP_EXAMPLES: dict[str, str] = {
    "cc": "cc: {current: 20 mA/g, until: {voltage: 4.8 V}}",
    "charge": "charge: {current: C/10, until: {voltage: 4.8 V, capacity: 300 mAh/g}}",
    "discharge": "discharge: {current: 20 mA/g, until: 1.85 V}",
    "cv": "cv: {voltage: 4.8 V, until: {current: 2 mA/g, time: 2 h}}",
    "rest": "rest: {duration: 24 h, record_interval: 60 s}",
    "gitt": "gitt: {current: C/10, pulse: 30 min, rest: 8 h, until: 4.8 V}",
    "sweep": "sweep: {start: 3 V, vertices: [4.8 V, 1.5 V], rate: 0.05 mV/s, cycles: 2}",
    "heat": "heat: {temperature: 140 degC, hold: 24 h, ramp: 5 degC/min}",
    "xrd": "xrd: {every: 10 min}",
    "manual": "manual: {instruction: Weigh the electrode, record: {mass: mg}}",
    "loop": "loop: {count: 2, steps: [{charge: {current: 20 mA/g, until: 4.8 V}}]}",
}

FIELD_EXAMPLES: dict[str, str] = {
    "current": "current: 20 mA/g",
    "until": "until: {voltage: 4.8 V}",
    "voltage": "voltage: 4.8 V",
    "capacity": "capacity: 200 mAh/g",
    "time": "time: 10 h",
    "dvdt": "dvdt: 1 mV/h",
    "duration": "duration: 24 h",
    "record_interval": "record_interval: 10 s",
    "pulse": "pulse: 30 min",
    "rest": "rest: 8 h",
    "max_pulses": "max_pulses: 100",
    "start": "start: 3 V",
    "vertices": "vertices: [4.8 V, 1.5 V]",
    "to": "to: 4.8 V",
    "rate": "rate: 0.05 mV/s",
    "cycles": "cycles: 2",
    "temperature": "temperature: 140 degC",
    "hold": "hold: 24 h",
    "ramp": "ramp: 5 degC/min",
    "cool_to": "cool_to: 25 degC",
    "atmosphere": "atmosphere: Ar",
    "log_interval": "log_interval: 5 min",
    "every": "every: 10 min",
    "scans": "scans: 1",
    "scan_time": "scan_time: 10 min",
    "two_theta": "two_theta: [15, 70]",
    "instruction": "instruction: Weigh the electrode",
    "record": "record: {mass: mg}",
    "count": "count: 2",
    "over": "over: {upper: [4.4 V, 4.6 V, 4.8 V]}",
    "steps": "steps: [{rest: {duration: 1 h}}]",
    "name": "name: relaxation-4.8V-24h",
    "description": "description: charge, rest, discharge",
    "defaults": "defaults: {record_interval: 10 s}",
    "parameters": "parameters: {temperature: 140 degC}",
}
_TOP_EXAMPLE = "name: relax, description: charge and rest, steps: [{rest: {duration: 24 h}}]"
_GITT_EXAMPLES = {"current": "current: C/10", "until": "until: {voltage: 4.8 V}"}
_CV_EXAMPLES = {"until": "until: {current: 2 mA/g, time: 2 h}", "current": "current: 2 mA/g"}
_REST_EXAMPLES = {"until": "until: {dvdt: 1 mV/h}"}


def _example_for(kind: str, path: Sequence[str | int]) -> str:
    names = [p for p in path if isinstance(p, str)]
    if not names:
        return STEP_EXAMPLES.get(kind, "")
    key = names[-1]
    special = {"gitt": _GITT_EXAMPLES, "cv": _CV_EXAMPLES, "rest": _REST_EXAMPLES}.get(kind, {})
    if key == "rest" and kind != "gitt":
        return STEP_EXAMPLES["rest"]
    return special.get(key) or FIELD_EXAMPLES.get(key, STEP_EXAMPLES.get(kind, ""))


# ---------------------------------------------------------------------------------------------
# error formatting


def _loc(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _unwrap(annotation: Any) -> Any:
    """The model class inside ``Annotated[X | None, ...]`` (or the annotation itself)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return annotation


def _fields_at(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    current: Any = model
    for part in path:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        if isinstance(part, int) or part not in current.model_fields:
            break
        current = _unwrap(current.model_fields[part].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _issues_from(
    exc: ValidationError, model: type[BaseModel], file: str, prefix: str, kind: str
) -> list[ProtocolIssue]:
    issues = []
    for err in exc.errors():
        path = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        # pydantic names union branches in the location; keep only field names and indices
        path = [p for p in path if isinstance(p, int) or "[" not in p]
        where = _loc([prefix, *path]) if path else prefix
        given = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, path[:-1])
            message = f"{path[-1]!r} is not a field here (fields: {', '.join(allowed)})"
            example = _example_for(kind, path[:-1]) if path[:-1] else STEP_EXAMPLES.get(kind, _TOP_EXAMPLE)
            issues.append(ProtocolIssue(file, where, message, example))
            continue
        if err["type"] == "missing":
            message = "missing"
        elif err["type"] not in ("value_error",) and not isinstance(given, dict | list) and given is not None:
            message = f"{given!r}: {message}"
        issues.append(ProtocolIssue(file, where, message, _example_for(kind, path)))
    return issues
