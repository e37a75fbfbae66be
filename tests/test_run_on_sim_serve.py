"""`relaxlab run --sim-clock` drives the instruments of a running `relaxlab sim serve --stepped`,
whose banner prints the lab-file lines that reach them; the served lab's simulated time moves only
as the orchestrator waits, so what the run records does not depend on how busy the machine is."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.simtime import ServedClock
from orchestrator.storage import read_journal
from tests.test_tcp_end_to_end import free_port

pytestmark = pytest.mark.tcp
runner = CliRunner()

CELLS = """
[[cells]]
name = "cell-1"
instrument = "smu1"
sample = "LTNO-x04-demo"
material = "x04"
active_mass = "7 mg"
voltage_max = "4.95 V"
voltage_min = "1.0 V"
"""
PROTOCOL = """
name: half-hour-charge
defaults: {record_interval: 60 s}
steps:
  - cc: {current: 20 mA/g, until: {voltage: 4.8 V, time: 30 min}}
  - rest: {duration: 10 min}
"""


def _lab_and_protocol(tmp_path, banner: str):
    """A lab file of the banner's lines (and a cell on the served 2450), and the protocol."""
    lab_file = tmp_path / "lab.toml"
    lab_file.write_text('[lab]\nname = "served"\n' + "\n".join(
        line for line in banner.splitlines() if not line.startswith("#")
    ) + CELLS)  # fmt: skip
    protocol = tmp_path / "charge.yaml"
    protocol.write_text(PROTOCOL)
    return lab_file, protocol


@pytest.fixture
def served(tmp_path_factory):
    """A `relaxlab sim serve --stepped` process: its simulated time moves only when the
    orchestrator that runs on it waits (or a client moves it), never with the wall clock."""
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    clock_file = folder / "clock.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "sim", "serve", "simulated", "--base-port", str(port),
         "--stepped", "--clock-file", str(clock_file)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    banner = []
    for _ in range(100):  # the banner ends with the campaign hint
        banner.append(proc.stdout.readline())
        if banner[-1].startswith("# or a campaign") or not banner[-1]:
            break
    yield port, clock_file, "".join(banner), folder
    proc.terminate()
    proc.wait(60)


def test_banner_prints_the_lab_file_lines_of_each_served_instrument(served) -> None:
    port, clock_file, banner, folder = served
    lines = "".join(line for line in banner.splitlines(keepends=True) if not line.startswith("#"))
    smu = tomllib.loads(lines)["instruments"]["smu1"]
    assert smu == {
        "driver": "keithley2450",
        "resource": f"TCPIP0::127.0.0.1::{port}::SOCKET",
        "simulated": True,
    }
    assert f"relaxlab run PROTOCOL --lab simulated --sim-clock {clock_file}" in banner
    assert json.loads(clock_file.read_text())["instruments"] == {"smu1": smu["resource"]}


@pytest.mark.parametrize("lab", ["banner", "simulated"])
def test_run_drives_the_served_instrument_in_its_simulated_time(served, tmp_path, lab) -> None:
    port, clock_file, banner, _ = served
    lab_file, protocol = _lab_and_protocol(tmp_path, banner)
    mover = ServedClock(json.loads(clock_file.read_text())["control"])
    served_start_s = mover.now()
    lab_arg = str(lab_file) if lab == "banner" else "simulated"  # "sim" resources map to the served ones
    result = runner.invoke(
        app,
        ["run", str(protocol), "--lab", lab_arg, "--sim-clock", str(clock_file), "--json",
         "--data-dir", str(tmp_path / "data"), "--no-tiled"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # the charge is cut off by time: 20 mA/g for 30 min is 10 mAh/g; then the 10 min rest
    (charge,) = [h for h in summary["half_cycles"] if h["direction"] == "charge"]
    assert charge["capacity_mAh_g"] == pytest.approx(20.0 * 0.5, rel=1e-3)
    assert summary["duration_h"] == pytest.approx((30 + 10) / 60, abs=1 / 3600)
    start, frame = read_journal(tmp_path / "data", summary["run"])
    # the run lived on the served lab's time line, which it moved (nobody else did) to its end
    assert start["clock_start_s"] == served_start_s
    assert mover.request("NOW") == served_start_s + frame["time_s"].iloc[-1]
    mover.close()
    # ... and, served over TCP in another process, it recorded exactly what the same protocol
    # records on the in-process simulated lab (simulated time: the same inputs, the same data)
    here = runner.invoke(app, ["run", str(protocol), "--lab", "simulated", "--json",
                               "--data-dir", str(tmp_path / "here"), "--no-tiled"])  # fmt: skip
    assert here.exit_code == 0, here.output
    _, reference = read_journal(tmp_path / "here", json.loads(here.stdout)["run"])
    columns = ["time_s", "voltage_V", "current_A", "capacity_mAh_g", "step"]
    pd.testing.assert_frame_equal(frame[columns], reference[columns])


def test_run_without_the_clock_on_a_served_lab_says_to_pass_it(served, tmp_path) -> None:
    port, clock_file, banner, _ = served
    lab_file, protocol = _lab_and_protocol(tmp_path, banner)
    result = runner.invoke(app, ["run", str(protocol), "--lab", str(lab_file), "--no-tiled",
                                 "--data-dir", str(tmp_path / "data")])  # fmt: skip
    assert result.exit_code != 0
    assert "--sim-clock CLOCK_FILE" in result.output
    assert "Traceback" not in result.output


def test_a_host_that_died_waiting_at_the_hold_is_not_the_next_host_waiting_there() -> None:
    """A crash drill kills the orchestrator waiting at the held moment, lets the lab run on, holds
    it at the next moment and waits until the next orchestrator waits there. The killed one's move
    must not answer for it: the drill then killed the next orchestrator at once, still charging
    (it happened under load, when the dead move's thread was slow to notice its closed socket)."""
    import socket
    import threading

    from simulators.clockserver import ClockControl, SteppedClock

    clock = SteppedClock(1000.0)
    control = ClockControl(clock, threading.RLock()).start()
    try:
        drill = ServedClock(control.address)
        drill.request("HOLD 1100")
        host, port = control.address.split(":")
        dying = socket.create_connection((host, int(port)))
        dying.sendall(b"ADVANCE 1200\n")  # the orchestrator waits at the hold...
        assert drill.request("WAIT_HELD 600") == 1000.0
        dying.close()  # ...and is killed there
        with pytest.raises(ConnectionError, match="nothing is held"):
            drill.request("WAIT_HELD 0.5")  # no host waits at the hold now
        assert drill.request("RELEASE") == 1000.0
        assert clock.now() == 1000.0  # the dead host's move was dropped
        drill.close()
    finally:
        control.stop()


def test_a_stepped_served_clock_moves_only_when_told_never_back_and_holds_where_asked() -> None:
    import threading

    from simulators.clockserver import ClockControl, SteppedClock

    clock = SteppedClock(1000.0)
    control = ClockControl(clock, threading.RLock()).start()
    try:
        host, other = ServedClock(control.address), ServedClock(control.address)
        assert host.now() == 1000.0 and host.request("NOW") == 1000.0  # it started where the lab is
        host.set_time(1010.0)  # the orchestrator's clock moves: the served one follows
        assert other.request("NOW") == 1010.0
        assert other.request("ADVANCE 1005") == 1010.0  # never back
        assert other.request("HOLD 1100") == 1010.0
        moved: list[float] = []
        mover = threading.Thread(target=lambda: moved.append(host.request("ADVANCE 1200")))
        mover.start()
        assert other.request("WAIT_HELD 600") == 1010.0  # the host waits at the hold, time stands
        assert other.request("ADVANCE 1050") == 1050.0  # the holder moves it (the host is dead, say)
        assert other.request("RELEASE") == 1050.0
        mover.join(600)
        assert moved == [1200.0]
        host.close()
        other.close()
    finally:
        control.stop()


def test_one_orchestrator_at_a_time_drives_a_stepped_lab() -> None:
    import threading

    from simulators.clockserver import ClockControl, SteppedClock

    clock = SteppedClock(1000.0)
    control = ClockControl(clock, threading.RLock()).start()
    try:
        first = ServedClock(control.address, lease="pid 101 on bench")
        with pytest.raises(ValueError, match=r"driven by another orchestrator \(pid 101 on bench\)"):
            ServedClock(control.address, lease="pid 202 on bench")
        watcher = ServedClock(control.address)  # no lease: may look, not move
        with pytest.raises(ConnectionError, match=r"driven by another orchestrator \(pid 101 on bench\)"):
            watcher.request("ADVANCE 2000")
        first.set_time(1010.0)  # the lessee moves it
        assert watcher.request("NOW") == 1010.0
        first.close()  # its orchestrator ended (or died): the lab is free again
        second = ServedClock(control.address, lease="pid 202 on bench")
        assert second.now() == 1010.0
        second.set_time(1020.0)
        assert watcher.request("NOW") == 1020.0
        second.close()
        assert watcher.request("ADVANCE 1030") == 1030.0  # nobody leases it: the drill moves it on
        watcher.close()
    finally:
        control.stop()


@pytest.mark.parametrize("command", ["run", "campaign"])
def test_a_second_orchestrator_on_a_driven_stepped_lab_is_refused_before_anything_moves(
    served, tmp_path, command
) -> None:
    port, clock_file, banner, _ = served
    lab_file, protocol = _lab_and_protocol(tmp_path, banner)
    control = json.loads(clock_file.read_text())["control"]
    first = ServedClock(control, lease="pid 4242 on the bench")  # what the first orchestrator holds
    before = first.now()
    data = tmp_path / "data"
    args = (["run", str(protocol), "--lab", str(lab_file), "--no-tiled"] if command == "run"
            else ["campaign", "run", "charge-end", "--lab", str(lab_file)])  # fmt: skip
    result = runner.invoke(app, [*args, "--sim-clock", str(clock_file), "--data-dir", str(data)])
    assert result.exit_code != 0
    assert "driven by another orchestrator (pid 4242 on the bench)" in result.output
    assert "Traceback" not in result.output
    assert not data.exists()  # nothing written
    assert first.request("NOW") == before  # and the lab did not move
    first.close()
