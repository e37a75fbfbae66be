"""Compiling a protocol file's steps: step kinds, loops unrolled (counts and values), the
sequence checked as a whole."""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from drivers.techniques import (
    Loop,
    Technique,
    TechniqueError,
)
from protocols.schema_errors import STEP_EXAMPLES, _issues_from
from protocols.step_models import STEP_MODELS, Defaults, _Strict
from protocols.steps import (
    ELECTROCHEMICAL,
    MAX_COUNT,
    MAX_NAME,
    MAX_STEPS,
    STEP_KINDS,
    Protocol,
    ProtocolIssue,
    Step,
    Xrd,
)
from protocols.substitution import _substitute

# ---------------------------------------------------------------------------------------------
# compilation


class _Header(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=r"^[^\x00-\x1f]+$")
    description: str = ""
    defaults: Defaults = Defaults()
    parameters: dict[str, Any] = Field(default_factory=dict)
    steps: list[Any] = Field(min_length=1)


@dataclass
class _Context:
    file: str
    defaults: Defaults
    issues: list[ProtocolIssue]

    def add(self, location: str, message: str, example: str = "") -> None:
        issue = ProtocolIssue(self.file, location, message, example)
        if issue not in self.issues:
            self.issues.append(issue)


def _step_kind(raw: Any, where: str, ctx: _Context) -> tuple[str, Any] | None:
    if not isinstance(raw, dict) or len(raw) != 1:
        shown = list(raw) if isinstance(raw, dict) else raw
        ctx.add(
            where,
            f"a step is one of {', '.join(STEP_KINDS)} with its fields, got {shown!r}",
            "- rest: {duration: 24 h}",
        )
        return None
    ((kind, body),) = raw.items()
    if kind not in STEP_KINDS:
        ctx.add(where, f"unknown step {kind!r} (steps: {', '.join(STEP_KINDS)})", "- rest: {duration: 24 h}")
        return None
    if body is None:
        body = {}
    if not isinstance(body, dict):
        ctx.add(
            f"{where}.{kind}", f"expected the step's fields as a mapping, got {body!r}", STEP_EXAMPLES[kind]
        )
        return None
    return kind, body


def _compile_one(raw: Any, where: str, env: Mapping[str, Any], ctx: _Context, in_loop: bool) -> list[Step]:
    parsed = _step_kind(raw, where, ctx)
    if parsed is None:
        return []
    kind, body = parsed
    if kind == "loop":
        if in_loop:
            ctx.add(f"{where}.loop", "loops cannot be nested", STEP_EXAMPLES["loop"])
            return []
        return _compile_loop(body, f"{where}.loop", env, ctx)
    if in_loop and kind not in ELECTROCHEMICAL:
        ctx.add(
            where,
            f"a loop holds only electrochemical steps ({', '.join(ELECTROCHEMICAL)}); {kind!r} is not one",
            STEP_EXAMPLES["loop"],
        )
        return []
    missing: list[str] = []
    body = _substitute(body, env, missing)
    for name in dict.fromkeys(missing):
        ctx.add(
            f"{where}.{kind}",
            f"${name} is not a parameter of this protocol",
            "parameters: {temperature: 140 degC}",
        )
    if missing:
        return []
    model = STEP_MODELS[kind]
    try:
        validated = model.model_validate(body)
    except ValidationError as exc:
        for issue in _issues_from(exc, model, ctx.file, f"{where}.{kind}", kind):
            ctx.add(issue.location, issue.message, issue.example)
        return []
    try:
        return [validated.build(ctx.defaults)]
    except TechniqueError as exc:
        ctx.add(f"{where}.{kind}", str(exc).split(". A valid example")[0], STEP_EXAMPLES[kind])
        return []


class _LoopHead(_Strict):
    count: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    over: dict[str, list[Any]] | None = None
    steps: list[Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> _LoopHead:
        if (self.count is None) == (self.over is None):
            raise ValueError("give either count (repeat) or over (one pass per value), not both")
        if self.over is not None:
            lengths = {len(v) for v in self.over.values()}
            if not self.over or len(lengths) != 1 or 0 in lengths:
                raise ValueError("over needs lists of values of the same, non-zero length")
        return self


def _compile_loop(body: dict[str, Any], where: str, env: Mapping[str, Any], ctx: _Context) -> list[Step]:
    try:
        head = _LoopHead.model_validate(body)
    except ValidationError as exc:
        for issue in _issues_from(exc, _LoopHead, ctx.file, where, "loop"):
            ctx.add(issue.location, issue.message, issue.example)
        return []
    before = len(ctx.issues)
    if head.count is not None:
        inner: list[Technique] = []
        for j, raw in enumerate(head.steps):
            inner.extend(
                typing.cast(list[Technique], _compile_one(raw, f"{where}.steps[{j}]", env, ctx, True))
            )
        if len(ctx.issues) > before:
            return []
        return [Loop(tuple(inner), head.count)]
    assert head.over is not None
    unrolled: list[Step] = []
    n = len(next(iter(head.over.values())))
    for k in range(n):
        local = {**env, **{name: values[k] for name, values in head.over.items()}}
        for j, raw in enumerate(head.steps):
            unrolled.extend(_compile_one(raw, f"{where}.steps[{j}]", local, ctx, True))
    return [] if len(ctx.issues) > before else unrolled


def _check_sequence(steps_raw: list[Any], compiled: list[list[Step]], ctx: _Context) -> None:
    """Cross-step rules: an ``xrd`` with ``every`` needs a next step that takes time."""
    for i, group in enumerate(compiled):
        if len(group) == 1 and isinstance(group[0], Xrd) and group[0].during_next_step:
            if i + 1 >= len(steps_raw):
                ctx.add(
                    f"steps[{i}].xrd.every",
                    "xrd with every runs during the next step, but none follows",
                    "xrd: {scans: 1}",
                )
                continue
            following = steps_raw[i + 1]
            kind = next(iter(following)) if isinstance(following, dict) and len(following) == 1 else None
            if kind in ("xrd", "manual"):
                ctx.add(
                    f"steps[{i}].xrd.every",
                    f"xrd with every runs during the next step, which must not be {kind!r}",
                    "xrd: {every: 10 min} followed by rest: {duration: 24 h}",
                )


def _location_key(issue: ProtocolIssue) -> tuple[bool, list[tuple[int, int | str]]]:
    """Sort key: file order (``steps[10]`` after ``steps[9]``, top-level fields first)."""
    parts = re.split(r"(\d+)", issue.location)
    return issue.location.startswith("steps["), [(0, int(p)) if p.isdigit() else (1, p) for p in parts if p]


def _compile(
    data: Any, file: str, parameters: Mapping[str, Any] | None, source: Path | None
) -> tuple[Protocol | None, list[ProtocolIssue]]:
    issues: list[ProtocolIssue] = []
    if not isinstance(data, dict):
        issues.append(
            ProtocolIssue(
                file,
                "",
                "expected a mapping with name and steps at the top level",
                "name: rest-1h\nsteps:\n  - rest: {duration: 1 h}",
            )
        )
        return None, issues
    try:
        header = _Header.model_validate(data)
    except ValidationError as exc:
        head_issues = _issues_from(exc, _Header, file, "", "")
        issues.extend(head_issues)
        header = None
    steps_raw: list[Any] = data["steps"] if isinstance(data.get("steps"), list) else []
    declared = dict(data.get("parameters") or {}) if isinstance(data.get("parameters"), dict) else {}
    for name in parameters or {}:
        if name not in declared:
            known = ", ".join(declared) or "none"
            issues.append(
                ProtocolIssue(
                    file,
                    "parameters",
                    f"unknown parameter {name!r} (declared: {known})",
                    "parameters: {temperature: 140 degC}",
                )
            )
    env = {**declared, **(parameters or {})}
    defaults = header.defaults if header is not None else Defaults()
    ctx = _Context(file, defaults, issues)
    compiled = [_compile_one(raw, f"steps[{i}]", env, ctx, False) for i, raw in enumerate(steps_raw)]
    _check_sequence(steps_raw, compiled, ctx)
    issues.sort(key=_location_key)
    if issues or header is None:
        return None, issues
    steps = tuple(s for group in compiled for s in group)
    if len(steps) > MAX_STEPS:
        issue = ProtocolIssue(
            file,
            "steps",
            f"expands to {len(steps)} steps, more than {MAX_STEPS}",
            "loop: {count: 10, steps: [...]}",
        )
        return None, [issue]
    description = _substitute(header.description, env, [])
    return Protocol(header.name, description, steps, source, env), issues
