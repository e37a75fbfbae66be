"""Eurotherm driver on the wire: hand-worked Modbus RTU frames, validators, error replies."""

from __future__ import annotations

import pytest

from drivers.eurotherm import EurothermDriver
from drivers.transport import InstrumentError, InstrumentTimeout
from tests.protocol import expected_protocol, modbus_frame


def frame(hexbody: str) -> bytes:
    return modbus_frame(hexbody)


def eurotherm(**kwargs):
    """Factory for expected_protocol: the driver on a scripted endpoint, as on a simulator."""
    return lambda io: EurothermDriver.in_process(io, name="oven TC", **kwargs)


def script(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes | None]]:
    """Hex bodies worked by hand -> frames with the independent CRC; "" = no reply."""
    return [(frame(s), frame(r) if r else None) for s, r in pairs]


def test_crc_matches_frames_published_in_modbus_literature():
    # Modbus over Serial Line spec style examples: read holding registers.
    assert frame("1103006B0003") == bytes.fromhex("1103006B00037687")
    assert frame("010300000001") == bytes.fromhex("010300000001840A")


# (request body, reply body) worked by hand; CRCs appended by the independent
# CRC-16 of tests/protocol.py.
READS = [
    # PV = 0x0578 = 1400 -> 140.0 C (1 decimal)
    ("read_process_value_C", {}, "010300010001", "0103020578", 140.0),
    # negative temperatures are signed: 0xFF83 = -125 -> -12.5 C
    ("read_process_value_C", {}, "010300010001", "010302FF83", -12.5),
    # working set point, register 5, 2 decimals: 0x3039 = 12345 -> 123.45 C
    ("read_working_setpoint_C", {"decimals": 2}, "010300050001", "0103023039", 123.45),
    # output power on a 2400 is register 3: 0x01DF = 479 -> 47.9 %
    ("read_output_power_pct", {}, "010300030001", "01030201DF", 47.9),
    # ... and register 4 on a 3200
    ("read_output_power_pct", {"series": "3200"}, "010300040001", "01030201DF", 47.9),
    # rate limit register 35 = 0x23: 0x0032 = 50 -> 5.0 C/min
    ("read_rate_limit_C_min", {}, "010300230001", "0103020032", 5.0),
    # slave address 7
    ("read_target_setpoint_C", {"address": 7}, "070300020001", "07030200FA", 25.0),
    # float register of PV: 0x8000 + 2*1 = 0x8002, two registers; 0x430C0000 = 140.0
    ("read_process_value_C", {"float_registers": True}, "010380020002", "010304430C0000", 140.0),
    # 3200 status word, register 75 = 0x4B
    ("read_status_word", {"series": "3200"}, "0103004B0001", "0103020010", 16),
    # alarm 1 state is bit 0 of the 2400's fast status byte, register 74 = 0x4A:
    # 0x0011 = alarm 1 + manual
    ("read_alarm_active", {}, "0103004A0001", "0103020011", True),
    ("read_alarm_active", {}, "0103004A0001", "0103020010", False),
    # ... and of the 3200's status word, register 75 = 0x4B
    ("read_alarm_active", {"series": "3200"}, "0103004B0001", "0103020001", True),
    # alarm 1 set point (its threshold), register 13 = 0x0D: 0x09C4 = 2500 -> 250.0 C
    ("read_high_limit_C", {}, "0103000D0001", "01030209C4", 250.0),
]


@pytest.mark.parametrize(("method", "kwargs", "request_hex", "reply_hex", "value"), READS)
def test_reads_follow_the_register_table(method, kwargs, request_hex, reply_hex, value):
    with expected_protocol(eurotherm(**kwargs), script([(request_hex, reply_hex)])) as driver:
        assert getattr(driver, method)() == pytest.approx(value)


WRITES = [
    # target set point 140.0 C -> 1400 = 0x0578, function 16, one register at 2
    ("write_target_setpoint_C", 140.0, {}, "011000020001020578", "011000020001"),
    # 2.3 C/min must be sent as 23 (0x17), not truncated to 22
    ("write_rate_limit_C_min", 2.3, {}, "011000230001020017", "011000230001"),
    # manual mode: register 273 = 0x0111 <- 1
    ("write_manual", True, {}, "011001110001020001", "011001110001"),
    # negative set point -5.5 C -> -55 = 0xFFC9 (signed)
    ("write_target_setpoint_C", -5.5, {"setpoint_limits_C": (-50.0, 300.0)},
     "01100002000102FFC9", "011000020001"),
    # float write of the set point: 140.0 = 0x430C0000 at 0x8004
    ("write_target_setpoint_C", 140.0, {"float_registers": True},
     "0110800400020443 0C0000", "011080040002"),
    # 3200 comms set point, register 26 = 0x1A
    ("write_comms_setpoint_C", 80.0, {"series": "3200"}, "0110001A0001020320", "0110001A0001"),
    # 3200 remote: register 276 = 0x0114 <- 1
    ("write_remote", True, {"series": "3200"}, "011001140001020001", "011001140001"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "value", "kwargs", "request_hex", "reply_hex"), WRITES)
def test_writes_follow_the_register_table(method, value, kwargs, request_hex, reply_hex):
    with expected_protocol(eurotherm(**kwargs), script([(request_hex, reply_hex)])) as driver:
        getattr(driver, method)(value)


def test_safe_state_is_manual_zero_output_then_low_set_point():
    pairs = [
        ("011001110001020001", "011001110001"),  # 273 <- 1 manual
        ("011000030001020000", "011000030001"),  # 3 <- 0.0 %
        ("0110000200010200FA", "011000020001"),  # 2 <- 25.0 C
    ]
    with expected_protocol(eurotherm(), script(pairs)) as driver:
        driver.safe_state(25.0)


def test_arming_the_high_limit_writes_alarm_1_and_reads_it_back():
    pairs = [
        ("0110000D00010209C4", "0110000D0001"),  # 13 <- 250.0 C = 2500 = 0x09C4
        ("0103000D0001", "01030209C4"),  # read back: 250.0 C
    ]
    with expected_protocol(eurotherm(), script(pairs)) as driver:
        assert driver.arm_high_limit_C(250.0) == 250.0


def test_a_high_limit_that_does_not_read_back_is_one_clear_error():
    pairs = [
        ("0110000D00010209C4", "0110000D0001"),
        ("0103000D0001", "0103020FA0"),  # the unit keeps 400.0 C
    ]
    with (
        expected_protocol(eurotherm(), script(pairs)) as driver,
        pytest.raises(
            InstrumentError,
            match=r"oven TC: alarm 1 set point reads 400.0 C after writing 250.0 C.*not armed",
        ),
    ):
        driver.arm_high_limit_C(250.0)


def test_acknowledging_alarms_writes_1_to_register_274():
    pairs = [("011001120001020001", "011001120001")]  # 274 = 0x0112 <- 1
    with expected_protocol(eurotherm(), script(pairs)) as driver:
        driver.acknowledge_alarms()


def test_a_high_limit_outside_the_alarm_range_is_refused_before_anything_is_sent():
    with expected_protocol(eurotherm(), []) as driver, pytest.raises(ValueError, match="alarm1_setpoint"):
        driver.arm_high_limit_C(1000.0)


def test_3200_manual_output_goes_to_register_3():
    pairs = [("011000030001020064", "011000030001")]  # 10.0 % -> 100
    with expected_protocol(eurotherm(series="3200"), script(pairs)) as driver:
        driver.write_manual_output_pct(10.0)


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("write_target_setpoint_C", 300.1),
        ("write_target_setpoint_C", -0.1),
        ("write_target_setpoint_C", float("nan")),
        ("write_rate_limit_C_min", -1.0),
        ("write_rate_limit_C_min", 1000.0),
        ("write_manual_output_pct", 100.5),
    ],
)
def test_out_of_range_values_raise_before_anything_is_sent(method, value):
    with expected_protocol(eurotherm(), []) as driver, pytest.raises(ValueError, match="oven TC"):
        getattr(driver, method)(value)  # the script is empty: any byte sent fails the test


def test_read_only_and_unknown_parameters_are_refused():
    with expected_protocol(eurotherm(), []) as driver:
        with pytest.raises(ValueError, match="read-only"):
            driver.write("process_value", 20.0)
        with pytest.raises(KeyError, match="comms_setpoint"):
            driver.write_comms_setpoint_C(50.0)  # a 2400 has no comms set point


@pytest.mark.parametrize(
    ("reply_hex", "message"),
    [("018302", "illegal data address"), ("018303", "illegal data value")],
)
def test_exception_replies_raise_clear_errors(reply_hex, message):
    with (
        expected_protocol(eurotherm(), script([("010300010001", reply_hex)])) as driver,
        pytest.raises(InstrumentError, match=message) as info,
    ):
        driver.read_process_value_C()
    assert "oven TC" in str(info.value)
    assert "process_value" in str(info.value)


def test_reply_with_bad_crc_is_a_garbled_reply():
    pairs = [(frame("010300010001"), bytes.fromhex("01030205780000"))]
    with (
        expected_protocol(eurotherm(), pairs) as driver,
        pytest.raises(InstrumentError, match="oven TC.*garbled") as info,
    ):
        driver.read_process_value_C()
    assert not isinstance(info.value, InstrumentTimeout)


def test_no_reply_is_a_timeout_naming_the_instrument():
    with (
        expected_protocol(eurotherm(), script([("010300010001", "")])) as driver,
        pytest.raises(InstrumentTimeout, match="oven TC.*no reply"),
    ):
        driver.read_process_value_C()
