"""Keithley 2450 over a link that delivers a reply late, after the driver gave up on it.

Over a socket (``relaxlab sim serve``, a real 2450 on TCPIP SOCKET) a reply that missed its
timeout is still in the pipe: it arrives after the driver has written its next bytes. The
driver must then get back in step before it trusts a reply again, on every query path
(settings read back, readings, the error queue), and fail with one clear error when it cannot.
"""

from __future__ import annotations

import pytest

from drivers.clock import SimClock
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.techniques import ConstantCurrent, Cutoffs, Rest
from drivers.transport import InProcessTransport, InstrumentError
from tests.protocol import expected_protocol

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04096218,1.7.12b"


def keithley(io) -> Keithley2450:
    return Keithley2450(InProcessTransport(io, name="k"), "k")


# --- (sent, reply) scripts: the exact bytes of a recovery ----------------------------------------


def test_late_identity_reply_is_read_past_and_the_error_queue_gets_its_own_answer() -> None:
    # The reported failure: *IDN? times out, its reply arrives once the driver has written its
    # next bytes, and :SYST:ERR? must not read it as its own answer.
    script = [
        ("*IDN?", None),  # no reply in time
        ("*ESE 101;*ESE?;*ESE 0", f"{IDN}\n101"),  # the late identity, then the marker
        ("*IDN?", IDN),
        (":SYST:ERR?", '0,"No error"'),
    ]
    with expected_protocol(keithley, script) as k:
        assert k.identity == IDN
        assert k.next_error() == (0, "No error")
    # expected_protocol checked on exit that no reply was left unread


def test_a_reply_of_the_wrong_shape_in_the_error_queue_is_a_resync_not_an_error() -> None:
    script = [
        (":SYST:ERR?", IDN),  # someone else's (late) reply: not code,"message"
        ("*ESE 101;*ESE?;*ESE 0", '-222,"Parameter data out of range"\n101'),  # its own, late
        (":SYST:ERR?", '-222,"Parameter data out of range"'),
        (":SYST:ERR?", '0,"No error"'),
    ]
    with expected_protocol(keithley, script) as k:
        assert k.errors() == [(-222, "Parameter data out of range")]


def test_a_marker_that_times_out_is_followed_by_a_new_one() -> None:
    script = [
        (':READ? "defbuffer1", READ, SOUR', None),
        ("*ESE 101;*ESE?;*ESE 0", None),  # the marker's reply is late too
        ("*ESE 102;*ESE?;*ESE 0", "3.9E+00,1.4E-04\n101\n102"),  # both late ones, then the new marker
        (':READ? "defbuffer1", READ, SOUR', "3.91E+00,1.4E-04"),
    ]
    with expected_protocol(keithley, script) as k:
        assert k.read() == (3.91, 1.4e-4)


def test_an_unrecoverable_desync_is_one_error_naming_the_command() -> None:
    def three_attempts(io) -> Keithley2450:
        k = keithley(io)
        k.retries = 2
        return k

    script = [
        (":SYST:ERR?", IDN),
        ("*ESE 101;*ESE?;*ESE 0", None),  # never back in step
        ("*ESE 102;*ESE?;*ESE 0", None),
    ]
    with (
        expected_protocol(three_attempts, script) as k,
        pytest.raises(InstrumentError, match=r"k: no valid reply in 3 attempts.*SYST:ERR\?") as caught,
    ):
        k.next_error()
    assert type(caught.value) is InstrumentError  # one error, not a timeout of some marker


# --- the simulated 2450 behind a link that delivers late ---------------------------------------


class LateLink:
    """A byte endpoint in front of a simulator: the replies to the requests named in ``late``
    (the n-th time each is sent, from 1) arrive only once the host has written its next bytes,
    as a late reply does over a socket. ``take_output`` (the host's non-blocking read) does not
    see them before then."""

    def __init__(self, endpoint, late: dict[str, set[int]]) -> None:
        self.endpoint = endpoint
        self.late = late
        self.seen: dict[str, int] = {}
        self.delayed = 0
        self._held = b""
        self._ready = b""

    def receive(self, data: bytes) -> None:
        self._ready += self._held  # the late reply lands in the pipe behind the host's write
        self._held = b""
        self.endpoint.receive(data)
        out = self.endpoint.take_output()
        request = data.decode("ascii").strip()
        self.seen[request] = self.seen.get(request, 0) + 1
        if out and self.seen[request] in self.late.get(request, ()):
            self._held, self.delayed = out, self.delayed + 1
        else:
            self._ready += out

    def take_output(self) -> bytes:
        out, self._ready = self._ready, b""
        return out


def _smu(late: dict[str, set[int]]):
    from simulators.cell import Cell, Sample
    from simulators.keithley2450 import SimulatedKeithley2450
    from simulators.material import load_material

    clock = SimClock()
    cell = Cell(Sample(load_material(None)), active_mass_g=0.007)
    link = LateLink(SimulatedKeithley2450(cell, clock), late)
    driver = Keithley2450Potentiostat(
        Keithley2450(InProcessTransport(link, name="smu"), "smu"), clock, poll_interval_s=10
    )
    return clock, link, driver


def _run(clock, run) -> list:
    points = []
    while run.end_reason is None:
        clock.set_time(clock.now() + run.next_poll_delay_s())
        points += run.poll()[0]
    return points


def _charge_then_rest(late: dict[str, set[int]]):
    clock, link, driver = _smu(late)
    driver.initialise()
    charge = _run(clock, driver.start_step(ConstantCurrent(20, Cutoffs(duration_s=1800), 60), 0.007, 0))
    rest = _run(clock, driver.start_step(Rest(3600, record_interval_s=300), 0.007, 1))
    return link, driver, charge + rest


def test_late_replies_on_a_simulated_2450_lose_no_measurement() -> None:
    # the poll (the newest reading and the buffer's end), and the trigger model's start
    end, state = ':FETC? "defbuffer1", READ, SOUR, REL;:TRAC:ACT:END? "defbuffer1"', ":TRIG:STAT?"
    late = {"*IDN?": {1}, ":SYST:ERR?": {1, 4}, end: {3, 10, 18}, ":SOUR:FUNC?": {2}, state: {2}}
    _, _, reference = _charge_then_rest({})
    link, driver, points = _charge_then_rest(late)
    assert link.delayed == 8  # every late reply was delivered late
    assert driver.instrument.in_sync
    # the same points at the same times with the same values as on a perfect link
    assert [(p.time_s, p.voltage_V, p.current_A, p.capacity_mAh_g, p.substep) for p in points] == [
        (p.time_s, p.voltage_V, p.current_A, p.capacity_mAh_g, p.substep) for p in reference
    ]
    assert driver.instrument.errors() == []  # nothing the instrument refused


def test_without_resynchronising_the_late_identity_is_read_as_the_error_queue() -> None:
    # The reported bug, on the same link: a retry with only a non-blocking drain (the data is
    # not there yet) reads the late *IDN? reply as the answer to the next query.
    clock, link, driver = _smu({"*IDN?": {1}})
    transport = driver.instrument.transport
    transport.write_line("*IDN?")
    with pytest.raises(InstrumentError):
        transport.read_line(command="*IDN?")
    transport.read_available()  # nothing has arrived yet
    assert "2450" in transport.query("*IDN?")  # the late reply, taken for the retry's
    assert "KEITHLEY" in transport.query(":SYST:ERR?")  # and the retry's reply for this one
    # the driver, on the same link, recovers
    _, _, fresh = _smu({"*IDN?": {1}})
    assert "MODEL 2450" in fresh.initialise()
    assert fresh.instrument.next_error() == (0, "No error")
