"""The shared (sent, reply) helper fails when a driver strays from its script."""

from __future__ import annotations

import pytest

from drivers.transport import InProcessTransport
from tests.protocol import expected_protocol, modbus_frame


def line_io(io) -> InProcessTransport:
    return InProcessTransport(io, name="scripted")


def test_lines_bytes_and_unprompted_output_pass_when_the_driver_follows_the_script() -> None:
    pairs = [("*IDN?", "ACME,1"), (":OUTP ON", None), (b"\x01\x02", b"\x03"), (None, "stream 1\nstream 2")]
    with expected_protocol(line_io, pairs) as t:
        assert t.query("*IDN?") == "ACME,1"
        t.write(b":OUTP")  # a request may arrive in pieces
        t.write(b" ON\n")
        t.write(b"\x01\x02")
        assert t.read_exactly(1) == b"\x03"
        assert [t.read_line(), t.read_line()] == ["stream 1", "stream 2"]


@pytest.mark.parametrize(
    ("pairs", "action", "message"),
    [
        ([("*IDN?", "x")], lambda t: t.write_line("*IDN"), r"sent b'\*IDN\\n'..., expected b'\*IDN\?\\n'"),
        ([("*IDN?", "x")], lambda t: None, r"never sent: \[b'\*IDN\?\\n'\]"),
        ([("*IDN?", "x")], lambda t: t.write_line("*IDN?"), r"reply never read: b'x\\n'"),
        ([], lambda t: t.write_line("*RST"), "the script is finished"),
        ([(":OUTP ON", None)], lambda t: t.write(b":OUTP"), "incomplete request"),
    ],
)
def test_a_driver_that_strays_fails_the_test(pairs, action, message) -> None:
    with pytest.raises(AssertionError, match=message), expected_protocol(line_io, pairs) as t:
        action(t)


def test_modbus_frames_carry_the_published_crc() -> None:
    # Modbus over Serial Line: read 3 holding registers from 0x006B on slave 0x11 -> CRC 0x8776
    assert modbus_frame("11 03 00 6B 00 03") == bytes.fromhex("1103006B00037687")
