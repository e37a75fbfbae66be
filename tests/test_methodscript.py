"""MethodSCRIPT codec, compiler and the simulated interpreter's replies and error codes."""

from __future__ import annotations

import math

import pytest

from drivers.clock import SimClock
from drivers.emstat4.methodscript import (
    compile_step,
    decode_value,
    error_meaning,
    format_literal,
    parse_error,
    parse_package,
)
from drivers.techniques import GITT, ConstantCurrent, Cutoffs, Rest
from simulators.cell import Cell, Sample
from simulators.emstat4 import SimulatedEmStat4
from simulators.emstat4.methodscript import encode_value
from simulators.material import load_material


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("7FFFE0Cm", -0.5),  # the manual's example: da7FFFE0Cm is -0.5 V
        ("8000000 ", 0.0),
        ("80003E8m", 1.0),
        ("8989680u", 10.0),
        ("8000005i", 5.0),
        ("7FFFFFFn", -1e-9),
        ("     nan", math.nan),
    ],
)
def test_decode_value_table(text: str, value: float) -> None:
    got = decode_value(text)
    assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value, abs=1e-15)


def test_package_with_metadata() -> None:
    line = "Pda7FFFE0Cm;ba80222E0n,12,215;eb8989680u"
    da, ba, eb = parse_package(line)
    assert (da.type, da.value) == ("da", pytest.approx(-0.5))
    assert ba.value == pytest.approx(140e-6)
    assert ba.status == 2  # overload bit
    assert ba.range_index == 0x15  # 1 mA range on the EmStat4
    assert eb.value == pytest.approx(10.0)


def test_malformed_package_raises() -> None:
    with pytest.raises(ValueError):
        parse_package("Pda7FFFE0C;ba1")


@pytest.mark.parametrize("value", [-0.5, 4.8, 140e-6, -140e-6, 72000.0, 3.999987, 1e-9, 0.0, 123456.789])
def test_simulator_encoding_round_trips_through_driver_decoding(value: float) -> None:
    assert decode_value(encode_value(value)) == pytest.approx(value, rel=1e-7, abs=1e-15)


@pytest.mark.parametrize(
    ("value", "literal"),
    [(140e-6, "140u"), (4.8, "4800m"), (72000.0, "72k"), (0.5, "500m"), (-2.0, "-2"),
     (1 / (3.6 * 0.007), "39682540u")],
)  # fmt: skip
def test_format_literal(value: float, literal: str) -> None:
    assert format_literal(value) == literal


def test_parse_error_forms() -> None:
    assert parse_error("Z!0006").code == 0x0006
    err = parse_error("!4001: Line 3, Col 1")
    assert (err.code, err.line, err.col) == (0x4001, 3, 1)
    assert "unknown" in err.meaning
    assert parse_error("Peb8989680u") is None
    assert "manual" in error_meaning(0x1234)


def test_cc_script_matches_hand_worked_example() -> None:
    # 20 mA/g on 7 mg = 140 uA (1 mA range); 1 s samples; k = 1 s / (3.6 * 0.007 g).
    step = ConstantCurrent(20, Cutoffs(voltage_V=4.8, capacity_mAh_g=300, duration_s=72000))
    lines = [ln.strip() for ln in compile_step(step, 0.007, 2).lines]
    assert "set_pgstat_mode 6" in lines
    assert "set_range db 1m" in lines
    assert "meas_loop_cp e i 140u 1 72k" in lines
    assert "store_var k 39682540u aa" in lines
    assert "store_var vc 4800m ab" in lines and "if e >= vc" in lines
    assert "store_var qc 300 ja" in lines and "if q >= qc" in lines
    assert "store_var nd 10i ja" in lines  # a package every 10 s record interval
    assert lines[-2:] == ["on_finished:", "cell_off"]
    assert lines.index("breakloop") > lines.index('send_string "cut:voltage"')


def test_discharge_compares_downwards() -> None:
    step = ConstantCurrent(-20, Cutoffs(voltage_V=2.0, capacity_mAh_g=100))
    lines = [ln.strip() for ln in compile_step(step, 0.007, 0).lines]
    assert "meas_loop_cp e i -140u 1 2592k" in lines
    assert "if e <= vc" in lines and "store_var qc -100 ja" in lines


def test_gitt_script_uses_instrument_loops() -> None:
    step = GITT(current_mA_g=20, pulse_s=1800, rest_s=720000, cutoff_voltage_V=4.8, max_pulses=10)
    lines = [ln.strip() for ln in compile_step(step, 0.007, 0).lines]
    assert "loop p < mp" in lines and "store_var mp 10i ja" in lines
    assert "meas_loop_ocp e 60 720k" in lines
    assert "meas_loop_cp e i 140u 1 1800" in lines


def test_out_of_range_current_and_potential_raise() -> None:
    with pytest.raises(ValueError, match="largest current range"):
        compile_step(ConstantCurrent(20000, Cutoffs(duration_s=10)), 0.007, 0)
    with pytest.raises(ValueError, match="3 V"):
        compile_step(ConstantCurrent(20, Cutoffs(voltage_V=4.8)), 0.007, 0, model="LR")
    with pytest.raises(ValueError, match="active_mass_g"):
        compile_step(Rest(10), 0.0, 0)


# ----------------------------------------------------------------------------- simulator


@pytest.fixture
def sim() -> tuple[SimulatedEmStat4, SimClock]:
    clock = SimClock()
    cell = Cell(Sample(load_material(None)), active_mass_g=0.007)
    return SimulatedEmStat4(cell, clock), clock


def _run(sim: SimulatedEmStat4, lines: list[str]) -> list[str]:
    sim.receive(("e\n" + "".join(ln + "\n" for ln in lines) + "\n").encode())
    return sim.take_output().decode().split("\n")


@pytest.mark.parametrize(
    ("script", "reply"),
    [
        (["var a", "frobnicate a"], "!4001: Line 2, Col 1"),
        (["var a", "add_var b 1"], "!420B: Line 2, Col 9"),
        (["var a", "var a"], "!4026: Line 2, Col 5"),
        (["var a", "store_var a 12x aa"], "!4039: Line 2, Col 13"),
        (["var e", "meas_loop_ocp e 1 10", "meas_loop_ocp e 1 10", "endloop", "endloop"],
         "!400B: Line 3, Col 1"),
        (["var e", "meas_loop_ocp e 1 10"], "!4018: Line 3, Col 1"),
        (["endif"], "!400C: Line 1, Col 1"),
        (["set_pgstat_mode 9"], "!0021: Line 1, Col 17"),
    ],
)  # fmt: skip
def test_parse_errors_use_firmware_codes(sim, script: list[str], reply: str) -> None:
    simulator, _ = sim
    out = _run(simulator, script)
    assert out[:3] == ["e", reply, ""]
    assert not simulator.running


def test_runtime_errors_report_line_and_skip_on_finished(sim) -> None:
    simulator, _ = sim
    script = ["var e", "set_pgstat_mode 3", "cell_on", "meas_loop_ocp e 1 10", "endloop",
              "on_finished:", "cell_off"]  # fmt: skip
    out = _run(simulator, script)
    assert out[:3] == ["e", "!0014: Line 4", ""]
    assert simulator.cell_is_on  # on_finished was not run, as on the instrument


def test_out_of_range_current_is_rejected_at_run_time(sim) -> None:
    simulator, _ = sim
    script = ["var e", "var i", "set_pgstat_mode 6", "cell_on", "meas_loop_cp e i 200m 1 10",
              "endloop"]  # fmt: skip
    assert _run(simulator, script)[1] == "!4205: Line 5"


def test_housekeeping_replies(sim) -> None:
    simulator, _ = sim
    simulator.receive(b"t\ni\nZ\nq\n")
    lines = simulator.take_output().decode().splitlines()
    assert lines[0].startswith("tes4_hr") and lines[1].endswith("*")
    assert lines[2] == "iES4HR25SIM001"
    assert lines[3:] == ["Z!0006", "q!0003"]


def test_meas_loop_streams_lazily_and_abort_runs_on_finished(sim) -> None:
    simulator, clock = sim
    script = ["var e", "var t", "cell_off", "timer_start", "meas_loop_ocp e 10 100",
              "timer_get t", "pck_start", "pck_add t", "pck_add e", "pck_end", "endloop",
              "on_finished:", "send_string \"bye\""]  # fmt: skip
    assert _run(simulator, script)[:2] == ["e", "M000B"]
    clock.set_time(clock.now() + 35)
    packages = [ln for ln in simulator.take_output().decode().splitlines() if ln.startswith("P")]
    assert [parse_package(p)[0].value for p in packages] == pytest.approx([10, 20, 30])
    simulator.receive(b"Z\n")
    assert simulator.take_output().decode().split("\n") == ["Z", "*", "Tbye", "", ""]
