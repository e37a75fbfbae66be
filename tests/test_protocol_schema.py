"""Protocol files: parsing quantities, compiling to techniques, and locating every error."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.quantities import QuantityError, parse_quantity
from drivers.techniques import GITT, ConstantCurrent, ConstantVoltage, Loop, Rest, Sweep
from protocols.schema import (
    Heat,
    Manual,
    ProtocolError,
    Xrd,
    list_examples,
    load_protocol,
    parse_protocol,
    validate_protocol_file,
)

RELAX = """\
name: relaxation-4.8V-24h
description: charge to 4.8 V, 24 h open circuit, discharge to 1.85 V
defaults: {record_interval: 10 s}
steps:
  - cc: {current: 20 mA/g, until: {voltage: 4.8 V}}
  - rest: {duration: 24 h, record_interval: 60 s}
  - cc: {current: -20 mA/g, until: {voltage: 1.85 V}}
"""


def write(tmp_path: Path, text: str, name: str = "relax.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("C/10", "mA/g", 20.0),
        ("-C/10", "mA/g", -20.0),
        ("2C", "mA/g", 400.0),
        ("24 h", "s", 86400.0),
        ("140 degC", "degC", 140.0),
        ("140 C", "degC", 140.0),
        ("5 degC/min", "degC/min", 5.0),
        ("200 mAh/g", "mAh/g", 200.0),
        ("200 mA h/g", "mAh/g", 200.0),
        ("1 mV/h", "mV/s", 1 / 3600),
        ("7 mg", "g", 0.007),
    ],
)
def test_quantities_as_people_write_them(text: str, unit: str, expected: float) -> None:
    assert parse_quantity(text, unit) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "unit"), [("24 hours!", "s"), ("4,8 V", "V"), ("4.8 V", "s"), ("V", "V")])
def test_unreadable_quantities_are_rejected(text: str, unit: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text, unit)


def test_relaxation_compiles_to_techniques(tmp_path: Path) -> None:
    protocol = load_protocol(write(tmp_path, RELAX))
    charge, rest, discharge = protocol.steps
    assert protocol.name == "relaxation-4.8V-24h"
    assert isinstance(charge, ConstantCurrent) and charge.current_mA_g == 20.0
    assert charge.cutoffs.voltage_V == 4.8 and charge.record_interval_s == 10.0
    assert isinstance(rest, Rest) and rest.duration_s == 86400.0 and rest.record_interval_s == 60.0
    assert isinstance(discharge, ConstantCurrent) and discharge.current_mA_g == -20.0
    assert discharge.cutoffs.voltage_V == 1.85
    assert protocol.source == tmp_path / "relax.yaml"


def test_aliases_c_rate_and_shorthand_cutoffs() -> None:
    protocol = parse_protocol(
        {
            "name": "p",
            "steps": [
                {"charge": {"current": "C/10", "until": "200 mAh/g"}},
                {"discharge": {"current": "C/10", "until": {"voltage": "2 V", "time": "12 h"}}},
                {"cv": {"voltage": "4.8 V", "until": "2 mA/g"}},
                {"rest": {"duration": "1 h", "until": {"dvdt": "1 mV/h"}}},
            ],
        }
    )
    charge, discharge, hold, rest = protocol.steps
    assert isinstance(charge, ConstantCurrent) and charge.current_mA_g == pytest.approx(20.0)
    assert charge.cutoffs.capacity_mAh_g == 200.0 and charge.cutoffs.voltage_V is None
    assert isinstance(discharge, ConstantCurrent) and discharge.current_mA_g == pytest.approx(-20.0)
    assert discharge.cutoffs.duration_s == 43200.0 and discharge.cutoffs.voltage_V == 2.0
    assert isinstance(hold, ConstantVoltage) and hold.cutoffs.current_mA_g == 2.0
    assert isinstance(rest, Rest) and rest.dvdt_V_s == pytest.approx(1e-3 / 3600)


def test_gitt_sweep_heat_xrd_manual_loop() -> None:
    protocol = parse_protocol(
        {
            "name": "all",
            "steps": [
                {"gitt": {"current": "C/10", "pulse": "30 min", "rest": "8 h", "until": "4.8 V"}},
                {"sweep": {"start": "3 V", "vertices": ["4.8 V", "1.5 V"], "rate": "0.05 mV/s", "cycles": 2}},
                {"heat": {"temperature": "140 degC", "hold": "0 s", "ramp": "5 degC/min"}},
                {"xrd": {"every": "10 min"}},
                {"rest": {"duration": "2 h"}},
                {"manual": {"instruction": "weigh", "record": {"mass": "mg"}, "duration": "5 min"}},
                {"loop": {"count": 2, "steps": [{"charge": {"current": "20 mA/g", "until": "4.8 V"}}]}},
            ],
        }
    )
    gitt, sweep, heat, xrd, _, manual, loop = protocol.steps
    assert gitt == GITT(20.0, 1800.0, 28800.0, 4.8, record_interval_s=60.0)
    assert isinstance(sweep, Sweep) and (sweep.vertex1_V, sweep.vertex2_V, sweep.cycles) == (4.8, 1.5, 2)
    assert isinstance(heat, Heat) and (heat.temperature_C, heat.hold_s, heat.ramp_C_min) == (140.0, 0.0, 5.0)
    assert isinstance(xrd, Xrd) and xrd.every_s == 600.0 and xrd.during_next_step
    assert manual == Manual("weigh", (("mass", "mg"),), 300.0)
    assert isinstance(loop, Loop) and loop.count == 2 and loop.steps[0].current_mA_g == 20.0


def test_loop_over_values_unrolls_with_rising_cutoff() -> None:
    protocol = load_protocol("window-opening")
    charges = [s.cutoffs.voltage_V for s in protocol.steps if isinstance(s, ConstantCurrent) and s.charging]
    assert charges == [4.2, 4.4, 4.5, 4.6, 4.7, 4.8]
    assert len(protocol.steps) == 12


def test_parameters_override_defaults() -> None:
    default = load_protocol("titration-portion")
    hot = load_protocol("titration-portion", {"temperature": "110 degC", "time": "90 s"})
    heat_default = next(s for s in default.steps if isinstance(s, Heat))
    heat_hot = next(s for s in hot.steps if isinstance(s, Heat))
    assert (heat_default.temperature_C, heat_default.hold_s) == (140.0, 86400.0)
    assert (heat_hot.temperature_C, heat_hot.hold_s) == (110.0, 90.0)
    assert "110 degC" in hot.description


def test_error_location_and_example_for_a_bad_duration(tmp_path: Path) -> None:
    path = write(tmp_path, RELAX.replace("duration: 24 h", "duration: 24 hours!"))
    issues = validate_protocol_file(path)
    assert [str(i) for i in issues] == [
        f"{path}: steps[1].rest.duration: '24 hours!' is not a duration (example: duration: 24 h)"
    ]
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    assert info.value.issues == issues


def test_every_error_is_reported_with_its_location(tmp_path: Path) -> None:
    text = """\
name: bad
colour: red
steps:
  - cc: {current: 20 mA/g}
  - rest: {duration: 24}
  - cc: {current: 0 mA/g, until: {voltage: 7 V, capacty: 3 mAh/g}}
  - charge: {current: -20 mA/g, until: 4.8 V}
  - sweep: {start: 3 V, rate: 0.05 mV/s}
  - heat: {temperature: $temp, hold: 1 h}
  - boil: {}
  - loop: {count: 2, steps: [{heat: {temperature: 140 degC, hold: 1 h}}]}
  - gitt: {current: C/10, pulse: 30 min, rest: 8 h, until: {capacity: 200 mAh/g}}
  - manual: {instruction: weigh, record: {mass: mgg}}
  - xrd: {every: 10 min}
"""
    issues = validate_protocol_file(write(tmp_path, text, "bad.yaml"))
    locations = [i.location for i in issues]
    assert locations == [
        "colour",
        "steps[0].cc.until",
        "steps[1].rest.duration",
        "steps[2].cc.current",
        "steps[2].cc.until.capacty",
        "steps[2].cc.until.voltage",
        "steps[3].charge.current",
        "steps[4].sweep",
        "steps[5].heat",
        "steps[6]",
        "steps[7].loop.steps[0]",
        "steps[8].gitt.until.capacity",
        "steps[8].gitt.until.voltage",
        "steps[9].manual.record.mass",
        "steps[10].xrd.every",
    ]
    assert all(i.example for i in issues), [str(i) for i in issues if not i.example]
    by_location = {i.location: i.message for i in issues}
    assert "no unit" in by_location["steps[1].rest.duration"]
    assert "6 V" in by_location["steps[2].cc.until.voltage"]
    assert "$temp" in by_location["steps[5].heat"]
    assert "'boil'" in by_location["steps[6]"]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    issues = validate_protocol_file(write(tmp_path, "name: x\nsteps:\n  - rest: {duration: 1 h\n"))
    assert len(issues) == 1 and issues[0].location.startswith("line ")


def test_unknown_parameter_is_an_error() -> None:
    issues = validate_protocol_file("titration-portion", {"pressure": "1 bar"})
    assert [i.location for i in issues] == ["parameters"]
    assert "pressure" in issues[0].message


@pytest.mark.parametrize("name", list_examples())
def test_every_example_validates(name: str) -> None:
    assert validate_protocol_file(name) == []
    assert load_protocol(name).steps


def test_examples_cover_section_4() -> None:
    expected = {
        "galvanostatic-cycling", "relaxation-4.5V-24h", "relaxation-4.8V-24h", "relaxation-200mAhg-24h",
        "in-electrolyte-relaxation-xrd", "out-of-electrolyte-relaxation", "solid-state-55C",
        "titration-portion", "ocv-before-discharge", "gitt-8h", "gitt-200h", "cv-0.05mVs",
        "window-opening", "in-situ-xrd-cycling",
    }  # fmt: skip
    assert expected <= set(list_examples())
