"""Simulated Eurotherm: raw Modbus frames, and the driver against it in process and over TCP."""

from __future__ import annotations

import socket
import threading

import pytest

from drivers.clock import SimClock
from drivers.eurotherm import EurothermDriver
from drivers.transport import InstrumentError, InstrumentTimeout
from simulators.eurotherm import SimulatedEurotherm


def crc16(data: bytes) -> bytes:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes([crc & 0xFF, crc >> 8])


def frame(hexbody: str) -> bytes:
    body = bytes.fromhex(hexbody)
    return body + crc16(body)


def ask(sim: SimulatedEurotherm, request: bytes) -> bytes:
    sim.receive(request)
    return sim.take_output()


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def sim(clock: SimClock) -> SimulatedEurotherm:
    return SimulatedEurotherm(clock)


# ------------------------------------------------------------------------- raw frames
def test_reads_pv_as_scaled_integer(sim):
    assert ask(sim, frame("010300010001")) == frame("01030200FA")


def test_write_single_register_echoes_and_applies(sim):
    request = frame("0106000205DC")  # register 2 <- 1500 = 150.0 C
    assert ask(sim, request) == request
    assert ask(sim, frame("010300020001")) == frame("01030205DC")
    assert sim.oven.settings.target_setpoint_C == 150.0


def test_write_multiple_registers_replies_with_start_and_count(sim):
    # registers 30, 31 (output high 80.0 %, output low 5.0 %)
    assert ask(sim, frame("0110001E00020403200032")) == frame("0110001E0002")
    assert sim.oven.settings.output_high_pct == 80.0
    assert sim.oven.settings.output_low_pct == 5.0


def test_block_read_spans_consecutive_registers(sim):
    # registers 1, 2, 3: PV 25.0, SP 25.0, output 0.0
    assert ask(sim, frame("010300010003")) == frame("01030600FA00FA0000")


def test_float_registers_hold_the_same_values_high_word_first(sim):
    sim.receive(frame("0106000205DC"))
    sim.take_output()
    # target SP as float at 0x8004: 150.0 = 0x43160000
    assert ask(sim, frame("010380040002")) == frame("01030443160000")
    # float write of the set point 80.5 = 0x42A10000
    assert ask(sim, frame("0110800400020442A10000")) == frame("011080040002")
    assert sim.oven.settings.target_setpoint_C == 80.5


def test_bad_crc_frames_are_ignored_without_reply(sim):
    good = frame("0106000205DC")
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    assert ask(sim, bad) == b""
    assert sim.bad_crc_frames == 1
    assert sim.oven.settings.target_setpoint_C == 25.0
    assert ask(sim, good) == good  # the next good frame is answered


@pytest.mark.parametrize(
    ("request_hex", "reply_hex"),
    [
        ("010300070001", "018302"),  # register 7 does not exist
        ("010300010006", "018302"),  # block 1..6 crosses the missing register 4
        ("010300040001", "018302"),  # register 4 exists on a 3200 only
        ("010600020FA1", "018603"),  # SP 400.1 C above the set-point limit 400
        ("01060023FFFF", "018603"),  # negative rate limit
        ("010600010100", "018603"),  # PV is read-only
        ("010600030064", "018603"),  # output is not writable in automatic mode
        ("010300010000", "018303"),  # zero registers
        ("010100010001", "018101"),  # function 1 (read coils) is not supported
    ],
)
def test_exception_replies(sim, request_hex, reply_hex):
    assert ask(sim, frame(request_hex)) == frame(reply_hex)


def test_other_slaves_are_ignored_and_broadcasts_write_silently(sim):
    assert ask(sim, frame("020300010001")) == b""
    assert ask(sim, frame("0006000203E8")) == b""  # broadcast SP 100.0
    assert sim.oven.settings.target_setpoint_C == 100.0


def test_frames_split_across_writes_are_reassembled(sim):
    request = frame("010300010001")
    sim.receive(request[:3])
    assert sim.take_output() == b""
    sim.receive(request[3:] + request)  # rest of one frame and a whole second one
    assert sim.take_output() == frame("01030200FA") * 2


def test_3200_status_word_and_remote_set_point(clock):
    sim = SimulatedEurotherm(clock, series="3200")
    assert ask(sim, frame("0103004B0001")) == frame("0103020000")
    ask(sim, frame("010601110001"))  # manual
    assert ask(sim, frame("0103004B0001")) == frame("0103020010")  # bit 4 manual
    ask(sim, frame("0106001A0320"))  # comms SP 80.0 (used only in remote)
    assert sim.oven.settings.target_setpoint_C == 25.0
    ask(sim, frame("010601140001"))  # remote
    assert sim.oven.settings.target_setpoint_C == 80.0


# ------------------------------------------------------------------------- driver in process
def test_driver_round_trip_in_process(clock, sim):
    driver = EurothermDriver.in_process(sim)
    assert driver.read_process_value_C() == 25.0
    driver.write_pid(12.5, 240, 40)
    assert driver.read_pid() == (12.5, 240.0, 40.0)
    driver.write_rate_limit_C_min(2.5)
    assert driver.read_rate_limit_C_min() == 2.5
    driver.heat_to(100.0)
    clock.advance_by(600)
    pv = driver.read_process_value_C()
    assert 25.0 < pv < 100.0  # ramping at 2.5 C/min: about 50 C after 10 min
    assert driver.read_working_setpoint_C() == pytest.approx(25.0 + 2.5 * 10, abs=0.2)
    assert driver.read_output_power_pct() > 0


def test_driver_float_registers_give_full_resolution(clock, sim):
    ints = EurothermDriver.in_process(sim)
    floats = EurothermDriver.in_process(sim, float_registers=True)
    ints.heat_to(60.0)
    clock.advance_by(123.0)
    value = floats.read_process_value_C()
    assert value == pytest.approx(sim.oven.air_C, rel=1e-6)
    assert ints.read_process_value_C() == round(sim.oven.air_C, 1)


@pytest.mark.parametrize(("series", "requests"), [("2400", 2), ("3200", 1)])
@pytest.mark.parametrize("float_registers", [False, True])
def test_readings_come_in_block_reads_with_the_values_of_single_reads(clock, series, requests, float_registers):
    sim = SimulatedEurotherm(clock, series=series)
    driver = EurothermDriver.in_process(sim, series=series, float_registers=float_registers)
    driver.heat_to(90.0)
    clock.advance_by(300.0)
    frames = sim.frames
    readings = driver.read_readings()
    assert sim.frames - frames == requests  # 2400: registers 1..3 and 5 (it has no 4); 3200: 1..5
    assert readings == {
        "process_value_C": driver.read_process_value_C(),
        "working_setpoint_C": driver.read_working_setpoint_C(),
        "output_power_pct": driver.read_output_power_pct(),
    }
    assert 25.0 < readings["process_value_C"] < 90.0 and readings["output_power_pct"] > 0
    frames = sim.frames
    assert driver.read_many(["integral_time", "proportional_band", "derivative_time"]) == {
        "integral_time": 300.0, "proportional_band": 10.0, "derivative_time": 50.0
    }  # fmt: skip
    assert sim.frames - frames == 2  # 6 alone (no register 7), then 8..9


def test_driver_3200_remote_comms_set_point(clock):
    sim = SimulatedEurotherm(clock, series="3200")
    driver = EurothermDriver.in_process(sim, series="3200")
    driver.write_comms_setpoint_C(70.0)
    driver.write_remote(True)
    clock.advance_by(3600)
    assert driver.read_process_value_C() == pytest.approx(70.0, abs=0.2)
    driver.safe_state(25.0)
    assert driver.read_manual() and driver.read_output_power_pct() == 0.0
    assert driver.read_status_word() & 0x10


def test_driver_exception_reply_from_simulator_is_clear(clock):
    sim = SimulatedEurotherm(clock, setpoint_limits_C=(0.0, 200.0))
    driver = EurothermDriver.in_process(sim, name="glass oven")  # driver allows up to 300 C
    with pytest.raises(InstrumentError, match="glass oven.*illegal data value.*target_setpoint"):
        driver.write_target_setpoint_C(250.0)
    sim2 = SimulatedEurotherm(clock)  # a 2400 has no register 4
    driver2 = EurothermDriver.in_process(sim2, series="3200", name="oven B")
    with pytest.raises(InstrumentError, match="oven B.*illegal data address"):
        driver2.read_output_power_pct()


class CorruptingEndpoint:
    """Flips a bit in every request on its way to the simulator (a noisy line)."""

    def __init__(self, sim: SimulatedEurotherm) -> None:
        self.sim = sim

    def receive(self, data: bytes) -> None:
        self.sim.receive(data[:-1] + bytes([data[-1] ^ 0x01]))

    def take_output(self) -> bytes:
        return self.sim.take_output()


def test_request_with_bad_crc_times_out_naming_the_instrument(sim):
    driver = EurothermDriver.in_process(CorruptingEndpoint(sim), name="glass oven")
    with pytest.raises(InstrumentTimeout, match="glass oven.*no reply"):
        driver.read_process_value_C()
    assert sim.bad_crc_frames == 1


# ------------------------------------------------------------------------- over TCP
class LoopbackServer:
    """Tiny TCP server: bytes in -> simulator -> bytes out (one client at a time)."""

    def __init__(self, endpoint) -> None:
        self.endpoint = endpoint
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    self.endpoint.receive(data)
                    out = self.endpoint.take_output()
                if out:
                    conn.sendall(out)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.tcp
def test_driver_over_tcp_socket_url(clock, sim):
    server = LoopbackServer(sim)
    # the timeout only guards against a hang: a loaded machine may take seconds to serve a reply
    driver = EurothermDriver.from_url(f"socket://127.0.0.1:{server.port}", timeout_s=60.0)
    try:
        assert driver.read_process_value_C() == 25.0
        driver.heat_to(120.0)
        with server.lock:
            clock.advance_by(7200)
        assert driver.read_target_setpoint_C() == 120.0
        assert driver.read_process_value_C() == pytest.approx(120.0, abs=0.2)
        driver.safe_state(25.0)
        assert driver.read_manual()
    finally:
        driver.close()
        server.close()


@pytest.mark.tcp
def test_bad_crc_over_tcp_times_out_naming_the_instrument(clock, sim):
    server = LoopbackServer(CorruptingEndpoint(sim))
    url = f"socket://127.0.0.1:{server.port}"
    driver = EurothermDriver.from_url(url, timeout_s=0.2)
    try:
        with pytest.raises(InstrumentTimeout, match=f"Eurotherm at {url}.*no reply"):
            driver.read_process_value_C()
    finally:
        driver.close()
        server.close()
