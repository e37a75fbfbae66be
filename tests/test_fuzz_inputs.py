"""Property-based fuzzing of protocol, lab and campaign files through ``relaxlab validate``.

Valid files are mutated at random (a value replaced by junk, a key dropped or added, a key
doubled) and random text or bytes are fed in as files. Whatever comes in, the command answers
with ``ok`` or with errors and exit 1: never a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestrator.cli import app

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PROTOCOL: dict[str, Any] = {
    "name": "fuzz",
    "defaults": {"record_interval": "10 s"},
    "steps": [
        {"charge": {"current": "20 mA/g", "until": {"voltage": "4.8 V", "capacity": "300 mAh/g"}}},
        {"rest": {"duration": "24 h", "record_interval": "60 s", "until": {"dvdt": "1 mV/h"}}},
        {"cv": {"voltage": "4.8 V", "until": {"current": "2 mA/g", "time": "2 h"}}},
        {"gitt": {"current": "C/10", "pulse": "30 min", "rest": "8 h", "until": "4.8 V", "max_pulses": 10}},
        {"sweep": {"start": "3 V", "vertices": ["4.8 V", "1.5 V"], "rate": "0.05 mV/s", "cycles": 2}},
        {"loop": {"count": 2, "steps": [{"discharge": {"current": "20 mA/g", "until": "1.85 V"}}]}},
        {"heat": {"temperature": "140 degC", "hold": "1 h", "ramp": "5 degC/min"}},
        {"manual": {"instruction": "weigh", "record": {"mass": "mg"}}},
    ],
}
LAB: dict[str, Any] = {
    "lab": {"name": "fuzz", "seed": 1},
    "instruments": {
        "smu1": {"driver": "keithley2450", "resource": "sim", "simulated": True, "poll_interval": "1 s"},
        "es1": {"driver": "emstat4", "resource": "COM5", "model": "HR", "sample_interval": "1 s"},
        "oven1": {
            "driver": "eurotherm",
            "resource": "/dev/ttyUSB1",
            "address": 1,
            "over_temperature": "250 degC",
            "instrument_limit": True,
        },
    },
    "cells": [
        {
            "name": "A1",
            "instrument": "smu1",
            "active_mass": "7 mg",
            "voltage_max": "4.95 V",
            "voltage_min": "1.0 V",
        },
        {"name": "A2", "instrument": "es1", "channel": 1, "active_mass": "5 mg", "temperature": "25 degC"},
    ],
}
CAMPAIGN: dict[str, Any] = {
    "name": "fuzz",
    "protocol": "titration-portion",
    "replicates": 2,
    "cell_prefix": "F",
    "samples": {
        "batch": {"id": "B1", "material": "x04"},
        "powder": {"id": "P1", "charged_to": "4.8 V", "mass": "100 mg"},
        "cell_mass": "7 mg",
    },
    "matrix": {"temperature": ["25 degC", "140 degC"], "time": ["1 h"]},
}

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "1e308 s",
            "inf s",
            "nan V",
            "-1 h",
            "0 V",
            "1 ns",
            "C/0",
            "1e9",
            "",
            ".",
            "../../x",
            "a/b",
            "$undefined",
            "20 mA/g",
            "24 h",
            "7 mg",
            "1e-300 g",
            "4.8 V",
            "x" * 300,
            "\u00e9\u4e2d",
            "\x07",
        ]
    ),  # fmt: skip
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


@st.composite
def mutated(draw: Any, base: dict[str, Any]) -> str:
    """YAML text of ``base`` with a few random mutations (possibly a doubled key)."""
    data = _copy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JUNK)
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["colour", "steps", "name", "until", "matrix", "cells", "x"]))] = (
                draw(JUNK)
            )
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if draw(st.booleans()) and text:  # double a line: a duplicate key (or just a repeated item)
        lines = text.splitlines()
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
        text = "\n".join(lines) + "\n"
    return text


def validate(content: str | bytes, name: str, *extra: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        result = CliRunner(env={"RELAXLAB_DATA": str(Path(tmp) / "data")}).invoke(
            app, ["validate", str(path), *extra]
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{result.exception!r} on:\n{content!r}\n{result.output}"
        )
        assert "Traceback" not in result.output
        assert result.exit_code in (0, 1), result.output
        assert not (Path(tmp) / "data").exists()


@SETTINGS
@given(mutated(PROTOCOL))
def test_mutated_protocol_files_never_traceback(text: str) -> None:
    validate(text, "protocol.yaml", "--lab", "simulated")


@SETTINGS
@given(mutated(LAB))
def test_mutated_lab_files_never_traceback(text: str) -> None:
    validate(text, "lab.yaml")


@SETTINGS
@given(mutated(CAMPAIGN))
def test_mutated_campaign_files_never_traceback(text: str) -> None:
    validate(text, "campaign.yaml")


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)), st.sampled_from(["f.yaml", "f.toml"]))
def test_random_text_and_bytes_never_traceback(content: str | bytes, name: str) -> None:
    validate(content, name)


TOML_PIECES = st.sampled_from(
    ['[lab]\n', 'name = "x"\n', "[instruments.smu1]\n", 'driver = "keithley2450"\n', 'resource = "sim"\n',
     "simulated = true\n", "[[cells]]\n", 'name = "A1"\n', 'instrument = "smu1"\n', 'active_mass = "7 mg"\n',
     "active_mass = nan\n", "channel = 0\n", "poll_interval = inf\n", 'name = "../x"\n', "a = [[[[1]]]]\n",
     "x = {y = {z = 1}}\n", "[cells]\n", '[instruments."a/b"]\n', "seed = -1\n", "baudrate = 1e99\n"]
)  # fmt: skip


@SETTINGS
@given(st.lists(TOML_PIECES, max_size=14))
def test_random_toml_lab_files_never_traceback(pieces: list[str]) -> None:
    validate("".join(pieces), "lab.toml")
