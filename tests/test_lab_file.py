"""Lab files: validated as a whole, one clear message naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.lab import LabFileError, load_lab

GOOD = """
[lab]
name = "bench"

[instruments.smu1]
driver = "keithley2450"
resource = "TCPIP0::192.168.1.20::inst0::INSTR"

[[cells]]
name = "A1"
instrument = "smu1"
active_mass = "7 mg"
voltage_max = "4.9 V"
"""


def write(tmp_path: Path, text: str, name: str = "lab.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_lab_file_parses_quantities(tmp_path) -> None:
    lab = load_lab(write(tmp_path, GOOD))
    assert lab.cells[0].active_mass == pytest.approx(0.007)
    assert lab.cells[0].voltage_max == 4.9
    assert lab.instruments["smu1"].poll_interval == 1.0


def test_yaml_lab_files_are_accepted(tmp_path) -> None:
    text = """
instruments:
  smu1: {driver: keithley2450, resource: "GPIB0::18::INSTR"}
cells:
  - {name: A1, instrument: smu1, active_mass: 7.5 mg}
"""
    lab = load_lab(write(tmp_path, text, "lab.yaml"))
    assert lab.cells[0].active_mass == pytest.approx(0.0075)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'active_mass = "7 mg"',
            'active_mass = "7 V"',
            r"cells\.0\.active_mass: '7 V' is not a quantity in g",
        ),
        (
            'active_mass = "7 mg"',
            "active_mass = -3",
            r"cells\.0\.active_mass: Input should be greater than",
        ),
        ('instrument = "smu1"', 'instrument = "smu9"', r"no instrument named 'smu9' \(defined: smu1\)"),
        (
            'driver = "keithley2450"',
            'driver = "keithley2400"',
            r"instruments\.smu1\.driver: Input should be 'keithley2450'",
        ),
        (
            'voltage_max = "4.9 V"',
            'voltage_max = "0.5 V"',
            r"voltage_min \(1.0 V\) must be below voltage_max \(0.5 V\)",
        ),
        ('name = "A1"', 'name = "A1"\ncolour = "red"', r"cells\.0\.colour: Extra inputs are not permitted"),
    ],
)
def test_bad_lab_file_one_message_naming_field(tmp_path, old, new, message) -> None:
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(LabFileError, match=message) as info:
        load_lab(path)
    assert str(path) in str(info.value)


def test_unreadable_toml_is_reported(tmp_path) -> None:
    with pytest.raises(LabFileError, match="cannot be read"):
        load_lab(write(tmp_path, "[lab\nname="))


def test_simulated_instrument_must_be_local(tmp_path) -> None:
    text = GOOD.replace(
        'resource = "TCPIP0::192.168.1.20::inst0::INSTR"',
        'resource = "TCPIP0::10.0.0.5::5025::SOCKET"\nsimulated = true',
    )
    with pytest.raises(LabFileError, match="in-process .* or on 127.0.0.1"):
        load_lab(write(tmp_path, text))


def test_two_cells_on_one_channel_rejected(tmp_path) -> None:
    text = GOOD + '\n[[cells]]\nname = "A2"\ninstrument = "smu1"\nactive_mass = "7 mg"\n'
    with pytest.raises(LabFileError, match="channel 1 of 'smu1' already holds cell 'A1'"):
        load_lab(write(tmp_path, text))


def test_unreachable_instrument_fails_before_any_step(tmp_path) -> None:
    from drivers.transport import InstrumentError
    from orchestrator.runner import Session

    text = GOOD.replace("TCPIP0::192.168.1.20::inst0::INSTR", "TCPIP0::127.0.0.1::1::SOCKET")
    with pytest.raises(
        InstrumentError, match=r"smu1 \(TCPIP0::127.0.0.1::1::SOCKET\): cannot reach the instrument"
    ):
        Session(load_lab(write(tmp_path, text)), data_dir=tmp_path / "data", tiled=False)


OVEN = '\n[instruments.oven1]\ndriver = "eurotherm"\nresource = "/dev/ttyUSB1"\naddress = 1\n'


def test_a_real_oven_must_say_whether_its_controller_cuts_the_heater(tmp_path) -> None:
    """The controller-held over-temperature limit relies on wiring no command can check: a real
    oven's table says instrument_limit = true or false, or is refused naming the field."""
    with pytest.raises(
        LabFileError, match=r"instruments\.oven1: instrument_limit is required .*instrument_limit = true"
    ):
        load_lab(write(tmp_path, GOOD + OVEN))
    assert (
        load_lab(write(tmp_path, GOOD + OVEN + "instrument_limit = false\n"))
        .instruments["oven1"]
        .instrument_limit
        is False
    )
    simulated = OVEN.replace('"/dev/ttyUSB1"', '"sim"') + "simulated = true\n"
    assert load_lab(write(tmp_path, GOOD + simulated)).instruments["oven1"].instrument_limit is True
