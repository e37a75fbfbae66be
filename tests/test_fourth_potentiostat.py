"""A fourth potentiostat model, added in its own package (tests/acmepot), runs a protocol from a
lab file on the simulated lab: the registry is the only place it is made known."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drivers import registry
from orchestrator.lab import LabFileError, parse_lab
from orchestrator.runner import Session
from protocols.plans import run_protocol
from protocols.schema import load_protocol
from tests import acmepot

ROOT = Path(__file__).resolve().parents[1]
LAB = {
    "instruments": {"p4": {"driver": "acmepot", "resource": "sim", "simulated": True}},
    "cells": [{"name": "c1", "instrument": "p4", "active_mass": "7 mg"}],
}


@pytest.fixture
def acme():
    acmepot.install()
    yield acmepot.MODEL
    registry.unregister("acmepot")


def test_the_fourth_model_runs_a_protocol_from_a_lab_file(tmp_path, acme) -> None:
    protocol = tmp_path / "rest.yaml"
    protocol.write_text("name: rest\nsteps:\n  - rest: {duration: 1 h, record_interval: 10 min}\n")
    session = Session(parse_lab(LAB), data_dir=tmp_path / "data", tiled=False)
    try:
        channel = session.channel()
        (uid,) = session.run(run_protocol(channel, list(load_protocol(protocol).steps), {"cell": "c1"}))
        _, frame = session.read(uid)
        commands = session.connected.simulation.instruments["p4"].commands
    finally:
        session.close()
    assert channel.driver.name == "p4"
    assert commands[:2] == ["*IDN?", "RST"]  # identified and reset through the contract's connect
    assert list(frame["step_type"].unique()) == ["rest"]
    times = frame["time_s"].to_numpy()
    assert times[-1] - times[0] == pytest.approx(3600.0)
    assert set(times[1:] - times[:-1]) == {600.0}
    assert frame["voltage_V"].between(1.0, 5.0).all() and (frame["current_A"] == 0).all()


def test_the_fourth_model_has_its_own_lab_file_fields(acme) -> None:
    bad = {**LAB, "instruments": {"p4": {**LAB["instruments"]["p4"], "compliance": "5 V"}}}
    with pytest.raises(LabFileError, match=r"instruments\.p4\.compliance: Extra inputs are not permitted"):
        parse_lab(bad)


def test_an_unregistered_model_is_refused_naming_the_registered_ones() -> None:
    with pytest.raises(
        LabFileError, match=r"instruments\.p4\.driver: Input should be 'keithley2450'.*'eurotherm'"
    ):
        parse_lab(LAB)


def test_nothing_outside_its_package_knows_the_fourth_model() -> None:
    runtime = ["relaxlab", "orchestrator", "drivers", "protocols", "simulators", "analysis"]
    mentions = [
        path
        for folder in runtime
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in (".py", ".toml", ".yaml") and "acmepot" in path.read_text()
    ]
    assert mentions == []


def test_the_fourth_models_driver_implements_the_potentiostat_contract_for_mypy() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "/dev/null", "--ignore-missing-imports",
         "--follow-imports=silent", "tests/acmepot"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
