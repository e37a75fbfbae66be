"""The EmStat4 driver's exchanges, byte for byte, as ``(sent, reply)`` pairs (tests/protocol.py).

Replies are written from the MethodSCRIPT manual (not taken from the simulator), so these
check the driver against the documented protocol: ``t``, ``i``, ``v``, ``e`` (a step's
script, its data packages) and ``Z``, and errors mapped by their code.
"""

from __future__ import annotations

import pytest

from drivers.clock import SimClock
from drivers.emstat4 import EmStat4Driver
from drivers.techniques import ConstantCurrent, Cutoffs
from drivers.transport import InProcessTransport, InstrumentError
from tests.protocol import expected_protocol

MASS_G = 0.007
STEP = ConstantCurrent(20, Cutoffs(voltage_V=4.8))


def emstat4(io) -> EmStat4Driver:
    return EmStat4Driver(InProcessTransport(io, name="es4"), SimClock(), name="es4")


def _script(index: int = 0) -> tuple[bytes, str]:
    compiled = emstat4(None).compile(STEP, MASS_G, index)
    return compiled.text().encode("ascii"), compiled.ident


def test_firmware_version_is_both_lines() -> None:
    with expected_protocol(emstat4, [("t", "tes4_hr1300#Jan  6 2026 10:00:00\nR*")]) as es4:
        assert es4.firmware_version() == "es4_hr1300#Jan  6 2026 10:00:00 R*"


def test_serial_number_and_methodscript_version() -> None:
    with expected_protocol(emstat4, [("i", "iES4HR25SIM001"), ("v", "v1.8")]) as es4:
        assert es4.serial_number() == "ES4HR25SIM001"
        assert es4.methodscript_version() == "1.8"


def test_abort_with_nothing_running_is_code_0006() -> None:
    with expected_protocol(emstat4, [("Z", "Z!0006")]) as es4:
        assert es4.abort_script() is False


def test_abort_of_a_running_script_reads_to_its_end() -> None:
    with expected_protocol(emstat4, [("Z", "Z\n-\n*\nTbye\n")]) as es4:
        assert es4.abort_script() is True


def test_a_step_is_one_script_and_its_packages_become_points() -> None:
    script, ident = _script()
    # t = 1 s, E = 3.700 V, I = 140 uA (1 mA range 0x15), q = 0.5 mAh/g, substep 0, package 1:
    # value = (hex - 2**27) * prefix, as in the manual
    package = "Peb8000001 ;ab8000E74m,10;ba800008Cu,10,215;ja80001F4m;jb8000000i;jc8000001i"
    pairs = [
        (script, f"e\nT{ident}"),
        (None, f"M000A\n{package}"),
        ("Z", "Z\n*\n"),
    ]
    with expected_protocol(emstat4, pairs) as es4:
        run = es4.start_step(STEP, MASS_G, 0)
        points, done = run.poll()
        assert not done
        (point,) = points
        assert point.time_s - run.started_at_s == pytest.approx(1.0)
        assert point.voltage_V == pytest.approx(3.7)
        assert point.current_A == pytest.approx(140e-6)
        assert point.capacity_mAh_g == pytest.approx(0.5)
        run.abort()
        assert run.done and run.end_reason == "aborted"


@pytest.mark.parametrize("busy", ["e!0006", "!0006"])
def test_busy_is_recognised_by_its_code_whatever_precedes_it(busy: str) -> None:
    script, _ = _script()
    with (
        expected_protocol(emstat4, [(script, busy)]) as es4,
        pytest.raises(InstrumentError, match="already running"),
    ):
        es4.start_step(STEP, MASS_G, 0)


def test_a_rejected_script_names_code_line_and_column() -> None:
    script, _ = _script()
    with (
        expected_protocol(emstat4, [(script, "e\n!4001: Line 3, Col 1\n")]) as es4,
        pytest.raises(InstrumentError, match=r"0x4001 .*unknown.* line 3, column 1"),
    ):
        es4.start_step(STEP, MASS_G, 0)


def test_a_runtime_error_stops_the_run_and_switches_the_cell_off() -> None:
    script, ident = _script()
    pairs = [
        (script, f"e\nT{ident}"),
        (None, "M000A\n!4205: Line 30\n"),
        # on_finished: is skipped after an error, so the driver switches the cell off itself
        (b"e\ncell_off\n\n", b"e\n\n"),
    ]
    with expected_protocol(emstat4, pairs) as es4:
        run = es4.start_step(STEP, MASS_G, 0)
        with pytest.raises(InstrumentError, match="0x4205 .*outside the allowed bounds.* line 30"):
            run.poll()
        es4._read_lines()  # the clean-up script's reply
