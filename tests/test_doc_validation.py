"""The faster event-page validator accepts and rejects exactly what event-model's own does."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from event_model import DocumentNames, schema_validators

from orchestrator import doc_validation

KEYS = ("voltage_V", "step")


def _page(n: int = 3) -> dict:
    return {
        "descriptor": "d-uid",
        "uid": [f"u{i}" for i in range(n)],
        "time": [100.0 + i for i in range(n)],
        "seq_num": list(range(1, n + 1)),
        "data": {"voltage_V": [4.0 + 0.1 * i for i in range(n)], "step": [0] * n},
        "timestamps": {k: [100.0 + i for i in range(n)] for k in KEYS},
        "filled": {},
    }


def _with(path: tuple, value: object) -> dict:
    page = copy.deepcopy(_page())
    target = page
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return page


def _without(key: str) -> dict:
    page = _page()
    del page[key]
    return page


PAGES = {
    "valid": _page(),
    "valid, empty": _page(0),
    "valid, numpy columns": _with(("data", "voltage_V"), np.array([4.0, 4.1, 4.2])),
    "valid, tuple of times": _with(("time",), (1.0, 2.0, 3.0)),
    "valid, integral float seq_num": _with(("seq_num",), [1.0, 2.0, 3.0]),
    "valid, anything in a data column": _with(("data", "step"), ["a", None, {"x": 1}]),
    "a time is a string": _with(("time",), [1.0, "2", 3.0]),
    "a time is a bool": _with(("time",), [1.0, True, 3.0]),
    "a seq_num is not integral": _with(("seq_num",), [1, 2.5, 3]),
    "a seq_num is a bool": _with(("seq_num",), [1, False, 3]),
    "every uid is a number": _with(("uid",), [1, 2, 3]),
    "time is not an array": _with(("time",), 5.0),
    "a data column is not an array": _with(("data", "voltage_V"), 4.0),
    "a filled entry is a number": _with(("filled",), {"voltage_V": [1, 2, 3]}),
    "no uid": _without("uid"),
    "no data": _without("data"),
    "an unknown key": _with(("extra",), 1),
}


def _errors(validator: object, page: dict) -> list[tuple[str, list, list]]:
    return sorted(
        (e.message, list(e.absolute_path), list(e.absolute_schema_path))
        for e in validator.iter_errors(page)  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("name", list(PAGES))
def test_same_verdict_and_errors_as_event_model(name: str) -> None:
    doc_validation.install()
    original, faster = doc_validation.replaced, schema_validators[DocumentNames.event_page]
    assert original is not None and faster is not original  # installed in place of event-model's own
    expected = _errors(original, PAGES[name])
    assert _errors(faster, PAGES[name]) == expected
    assert bool(expected) == (not name.startswith("valid"))  # the table means what it says


def _event() -> dict:
    return {
        "descriptor": "d-uid",
        "uid": "u1",
        "time": 100.0,
        "seq_num": 1,
        "data": {"oven_temperature": 120.0, "image": [[1, 2], [3, 4]]},
        "timestamps": {"oven_temperature": 100.0, "image": 100.0},
        "filled": {"image": False},
    }


def _event_with(key: str, value: object) -> dict:
    event = _event()
    event[key] = value
    return event


def _event_without(key: str) -> dict:
    event = _event()
    del event[key]
    return event


EVENTS = {
    "valid": _event(),
    "valid, no filled": _event_without("filled"),
    "valid, integral float seq_num": _event_with("seq_num", 3.0),
    "valid, integer time": _event_with("time", 100),
    "valid, numpy time": _event_with("time", np.float64(1.5)),
    "valid, filled by a datum id": _event_with("filled", {"image": "datum-1"}),
    "seq_num is a bool": _event_with("seq_num", True),
    "seq_num is not integral": _event_with("seq_num", 1.5),
    "time is a string": _event_with("time", "100"),
    "time is a bool": _event_with("time", False),
    "uid is a number": _event_with("uid", 7),
    "descriptor is None": _event_with("descriptor", None),
    "data is a list": _event_with("data", [1.0]),
    "timestamps missing": _event_without("timestamps"),
    "a filled entry is a number": _event_with("filled", {"image": 1}),
    "filled is a list": _event_with("filled", [False]),
    "an unknown key": _event_with("extra", 1),
    "no uid": _event_without("uid"),
    "not a dict": ["uid", "u1"],
}


@pytest.mark.parametrize("name", list(EVENTS))
def test_events_same_verdict_and_errors_as_event_model(name: str) -> None:
    doc_validation.install()
    original, faster = doc_validation.replaced_event, schema_validators[DocumentNames.event]
    assert original is not None and isinstance(faster, doc_validation.FastEventValidator)
    expected = _errors(original, EVENTS[name])
    assert _errors(faster, EVENTS[name]) == expected
    assert bool(expected) == (not name.startswith("valid"))
    assert faster.is_valid(EVENTS[name]) == (not expected)
    if expected:
        with pytest.raises(Exception, match="."):
            faster.validate(EVENTS[name])
    else:
        faster.validate(EVENTS[name])
