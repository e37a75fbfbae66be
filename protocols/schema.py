"""Protocol files: YAML descriptions of an experiment, validated and compiled to step objects.

A protocol file names its steps in order; quantities are written as people write them and
parsed with :func:`drivers.quantities.parse_quantity`::

    name: relaxation-4.8V-24h
    description: charge to 4.8 V, 24 h open circuit, discharge to 1.85 V
    defaults: {record_interval: 10 s}
    steps:
      - charge: {current: 20 mA/g, until: 4.8 V}
      - rest: {duration: 24 h, record_interval: 60 s}
      - discharge: {current: 20 mA/g, until: {voltage: 1.85 V}}

Step kinds (one key per list item):

``cc``
    constant specific current, signed (positive = charge): ``{current: -C/10, until: ...}``.
``charge`` / ``discharge``
    ``cc`` with the sign set by the name; ``current`` is a magnitude.
``cv``
    voltage hold: ``{voltage: 4.8 V, until: {current: 2 mA/g, time: 2 h}}``.
``rest``
    open circuit: ``{duration: 24 h, until: {dvdt: 1 mV/h}}``.
``gitt``
    ``{current: C/10, pulse: 30 min, rest: 8 h, until: 4.8 V, max_pulses: 100}``.
``sweep``
    voltammetry: ``{start: 3 V, vertices: [4.8 V, 1.5 V], rate: 0.05 mV/s, cycles: 2}``
    (cyclic) or ``{start: 3 V, to: 4.8 V, rate: 0.05 mV/s}`` (linear).
``heat``
    oven step: ``{temperature: 140 degC, hold: 24 h, ramp: 5 degC/min, atmosphere: Ar}``.
``xrd``
    ``{every: 10 min}`` scans repeatedly during the next step; ``{scans: 1}`` scans now.
``manual``
    operator instruction: ``{instruction: "Weigh the electrode", record: {mass: mg}}``.
``loop``
    ``{count: 2, steps: [...]}`` repeats electrochemical steps;
    ``{over: {upper: [4.2 V, 4.6 V]}, steps: [...]}`` runs them once per value, with ``$upper``
    replaced by the value (unrolled into plain steps).

``until`` takes a mapping of cut-offs (the first one met ends the step) or one quantity whose
unit says what it is (``4.8 V``, ``200 mAh/g``, ``10 h``). ``cc``/``charge``/``discharge``
accept ``voltage``, ``capacity`` and ``time``; ``cv`` accepts ``current`` and ``time``;
``rest`` accepts ``dvdt``; ``gitt`` accepts ``voltage``.

``parameters: {temperature: 140 degC}`` declares values (with defaults) that steps use as
``$temperature``; a campaign overrides them per condition. A bare number is read in the
field's unit (V, mA/g, mAh/g, degC, mV/s), except durations, which need a unit.

This module reads files; the parts live beside it: :mod:`protocols.steps` (the step objects
and bounds), :mod:`protocols.step_models` (the pydantic models of the steps),
:mod:`protocols.schema_errors` (examples and error locations), :mod:`protocols.substitution`
(``$name`` parameters) and :mod:`protocols.unroll` (compiling steps and unrolling loops).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from protocols.schema_errors import _loc
from protocols.steps import (
    ELECTROCHEMICAL,
    STEP_KINDS,
    Heat,
    Manual,
    Protocol,
    ProtocolError,
    ProtocolIssue,
    Step,
    Xrd,
)
from protocols.textfiles import InputFileError, load_yaml, read_text_file, yaml_problem
from protocols.unroll import _compile

EXAMPLES_DIR = Path(__file__).parent / "examples"


def _read(path: Path) -> tuple[Any, list[ProtocolIssue]]:
    file = str(path)
    try:
        text = read_text_file(path, "protocol file")
    except InputFileError as exc:
        return None, [ProtocolIssue(file, "", exc.reason)]
    try:
        return load_yaml(text), []
    except yaml.YAMLError as exc:
        where, message = yaml_problem(exc)
        return None, [ProtocolIssue(file, where, message)]


def resolve_protocol_path(name: str | Path, base_dir: str | Path | None = None) -> Path:
    """A protocol file path: as given, relative to ``base_dir``, or a built-in example name.

    Parameters
    ----------
    name : str or Path
        A path (absolute, or relative to ``base_dir`` or the working directory) or the name
        of a file in ``protocols/examples`` with or without ``.yaml``.
    base_dir : str or Path, optional
        Directory that relative paths are taken from first (a campaign file's folder).

    Returns
    -------
    Path
        The first candidate that exists, else the path as given.
    """
    path = Path(name)
    candidates = []
    if base_dir is not None and not path.is_absolute():
        candidates.append(Path(base_dir) / path)
    candidates += [path, EXAMPLES_DIR / path.name, EXAMPLES_DIR / f"{path.name}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return path


def list_examples() -> list[str]:
    """Names of the built-in example protocols (``protocols/examples/*.yaml``)."""
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml"))


def parse_protocol(
    data: Any, source: str = "<memory>", parameters: Mapping[str, Any] | None = None
) -> Protocol:
    """Validate and compile protocol data already read from YAML.

    Raises
    ------
    ProtocolError
        With every issue found.
    """
    protocol, issues = _compile(data, source, parameters, None)
    if protocol is None:
        raise ProtocolError(issues)
    return protocol


def validate_protocol_file(
    path: str | Path, parameters: Mapping[str, Any] | None = None
) -> list[ProtocolIssue]:
    """Every problem in a protocol file, each with its location and a valid example.

    Parameters
    ----------
    path : str or Path
        The protocol file (or a built-in example name).
    parameters : mapping, optional
        Values for the protocol's declared parameters (as a campaign condition gives them).

    Returns
    -------
    list of ProtocolIssue
        Empty when the file is valid.
    """
    resolved = resolve_protocol_path(path)
    data, issues = _read(resolved)
    if issues:
        return issues
    return _compile(data, str(path), parameters, resolved)[1]


def load_protocol(path: str | Path, parameters: Mapping[str, Any] | None = None) -> Protocol:
    """Read, validate and compile a protocol file.

    Parameters
    ----------
    path : str or Path
        The protocol file, or the name of a built-in example (``relaxation-4.8V-24h``).
    parameters : mapping, optional
        Values overriding the protocol's declared parameters, e.g. ``{"temperature": "110 degC"}``.

    Returns
    -------
    Protocol
        Its steps are :mod:`drivers.techniques` objects (``Loop`` included) and
        :class:`Heat`, :class:`Xrd`, :class:`Manual` steps.

    Raises
    ------
    ProtocolError
        With every issue found (``.issues``), e.g.
        ``relax.yaml: steps[1].rest.duration: '24 hours!' is not a duration (example: duration: 24 h)``.
    """
    resolved = resolve_protocol_path(path)
    data, issues = _read(resolved)
    if issues:
        raise ProtocolError(issues)
    protocol, issues = _compile(data, str(path), parameters, resolved)
    if protocol is None:
        raise ProtocolError(issues)
    return protocol


__all__ = [
    "ELECTROCHEMICAL",
    "EXAMPLES_DIR",
    "STEP_KINDS",
    "Heat",
    "Manual",
    "Protocol",
    "ProtocolError",
    "ProtocolIssue",
    "Step",
    "Xrd",
    "list_examples",
    "load_protocol",
    "parse_protocol",
    "resolve_protocol_path",
    "validate_protocol_file",
    "_loc",
]
