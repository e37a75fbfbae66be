"""The paper's protocol through real pyvisa-py sockets to the simulated 2450 served on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from orchestrator.lab import parse_lab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.tcp
def test_paper_protocol_over_pyvisa_tcp_matches_in_process(paper_run, tmp_path) -> None:
    from orchestrator.runner import Session
    from protocols.plans import relaxation_protocol

    _, _, _, in_process, _ = paper_run
    port = free_port()
    lab = parse_lab(
        {
            "instruments": {
                "smu1": {
                    "driver": "keithley2450",
                    "resource": f"TCPIP0::127.0.0.1::{port}::SOCKET",
                    "simulated": True,
                }
            },
            "cells": [{"name": "cell-1", "instrument": "smu1", "active_mass": "7 mg", "sample": "s1"}],
        }
    )
    session = Session(lab, data_dir=tmp_path, tiled=False)
    try:
        assert type(session.connected.drivers["smu1"].instrument.transport).__name__ == "VisaTransport"
        (uid,) = session.run(relaxation_protocol(session.channel(), md={"sample": "s1", "cell": "cell-1"}))
        _, over_tcp = session.read(uid)
    finally:
        session.close()
    # Same bytes, same physics, same clock: the data are the same as in-process.
    assert len(over_tcp) == len(in_process)
    np.testing.assert_allclose(over_tcp["voltage_V"], in_process["voltage_V"], atol=1e-6)
    np.testing.assert_allclose(over_tcp["capacity_mAh_g"], in_process["capacity_mAh_g"], atol=1e-6)


@pytest.mark.tcp
def test_sim_serve_command_answers_scpi_over_tcp(tmp_path) -> None:
    """`relaxlab sim serve` in its own process, free-running clock, queried with pyvisa-py."""
    import pyvisa

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "sim",
            "serve",
            "simulated",
            "--base-port",
            str(port),
            "--speed",
            "1000",
            "--duration-s",
            "900",  # a guard (the test ends it): a loaded machine may take a minute to get here
            "--clock-file",
            str(tmp_path / "clock.json"),
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        for _ in range(40):
            if f"::{port}::SOCKET" in banner:
                break
            banner += proc.stdout.readline()
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(f"TCPIP0::127.0.0.1::{port}::SOCKET")
        inst.read_termination = inst.write_termination = "\n"
        inst.timeout = 60000  # a guard against a hang, not a measurement (a loaded machine is slow)
        assert "MODEL 2450" in inst.query("*IDN?")
        inst.write(":SOUR:FUNC CURR")
        inst.write(":SOUR:CURR 1.4e-4")
        inst.write(":SOUR:CURR:VLIM 4.8")
        inst.write(":OUTP ON")
        v0 = float(inst.query(":MEAS:VOLT?"))
        # another process can run on the server's simulated time line from its clock file: wait
        # (on it, not for a wall time) for 1000 simulated seconds of charge at 20 mA/g
        from orchestrator.simtime import read_clock_file

        shared = read_clock_file(tmp_path / "clock.json")
        assert shared.speed == 1000.0
        after_s = shared.now() + 1000.0
        while shared.now() < after_s:
            time.sleep(0.05)
        v1 = float(inst.query(":MEAS:VOLT?"))
        assert v1 > v0 + 0.01
        assert inst.query(":SYST:ERR?") == '0,"No error"'
        inst.close()
        rm.close()
    finally:
        proc.terminate()
        proc.wait(10)
