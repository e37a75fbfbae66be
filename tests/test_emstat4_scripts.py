"""The simulated EmStat4 runs MethodSCRIPT as users write it (not only relaxlab's scripts).

The scripts below are our own, written from the MethodSCRIPT manual's syntax; each covers the
commands of one of PalmSens' public example scripts that is not device-specific (their
licence keeps the originals off this repository). Every reply is checked line by line by an
independent grammar checker (tests/methodscript_grammar.py), and the numbers are checked
against what the script asks for or against the cell's material file.
"""

from __future__ import annotations

import math
import socket

import pytest

from drivers.clock import SimClock
from drivers.emstat4.methodscript import compile_step, parse_package
from drivers.techniques import GITT, ConstantCurrent, ConstantVoltage, Cutoffs, Loop, Rest, Sweep
from simulators.cell import Cell, Sample
from simulators.emstat4.docs import docs_markdown
from simulators.emstat4.methodscript import DEVICE_SPECIFIC, MEAS_LOOPS
from simulators.emstat4.simulator import ONLINE_COMMANDS, SimulatedEmStat4
from simulators.material import load_material
from simulators.server import InstrumentServer
from tests.methodscript_grammar import GrammarError, check_script_output

MASS_G = 0.007


def _sim(model: str = "HR") -> tuple[SimulatedEmStat4, SimClock]:
    clock = SimClock()
    cell = Cell(Sample(load_material(None)), active_mass_g=MASS_G)
    return SimulatedEmStat4(cell, clock, model=model), clock


def run(script: str, horizon_s: float = 36000.0, sim: SimulatedEmStat4 | None = None,
        clock: SimClock | None = None) -> list[str]:  # fmt: skip
    """Send ``e`` + the script + an empty line; return every reply line up to its end."""
    if sim is None or clock is None:
        sim, clock = _sim()
    body = [ln for ln in script.split("\n") if ln.strip()]  # an empty line would end it
    sim.receive(("e\n" + "".join(ln + "\n" for ln in body) + "\n").encode())
    out: list[str] = []
    step = horizon_s / 10
    for _ in range(11):
        out += sim.take_output().decode().split("\n")[:-1]
        if "" in out:
            break
        clock.set_time(clock.now() + step)
    assert "" in out, f"script did not finish within {horizon_s} s: {out[-3:]}"
    return out[: out.index("") + 1]


def packages(lines: list[str]) -> list[list[float]]:
    return [[v.value for v in parse_package(ln)] for ln in lines if ln.startswith("P")]


SETUP_POT = """
set_pgstat_chan 0
set_pgstat_mode 3
set_max_bandwidth 200
set_range ba 100u
set_autoranging ba 100n 100m
"""

# name -> (script, expected number of data packages). Potentials are around the cell's
# open-circuit voltage (~3.3 V) so currents stay modest.
SCRIPTS: dict[str, tuple[str, int]] = {
    "lsv": (
        SETUP_POT
        + """
var e
var i
var lo
var hi
store_var lo 3200m ja
store_var hi 3400m ja
set_range_minmax da lo hi
set_e lo   # start potential
cell_on
meas_loop_lsv e i lo hi 10m 50m
  pck_start
    pck_add e
    pck_add i
  pck_end
endloop
on_finished:
  cell_off
""",
        21,
    ),
    "cv with nscans": (
        SETUP_POT
        + """
var e
var i
set_e 3300m
cell_on
meas_loop_ca e i 3300m 100m 1
endloop
meas_loop_cv e i 3300m 3400m 3200m 20m 100m nscans(2)
  pck_start
  pck_add e
  pck_add i
  pck_end
endloop
on_finished:
cell_off
""",
        2 * 21,
    ),
    "dpv": (
        SETUP_POT
        + """
var e
var i
set_e 3200m
cell_on
meas_loop_dpv e i 3200m 3300m 10m 25m 20m 50m
  pck_start
  pck_add e
  pck_add i
  pck_end
endloop
on_finished:
cell_off
""",
        11,
    ),
    "swv with four outputs": (
        SETUP_POT
        + """
var e
var i
var fwd
var rev
set_e 3200m
cell_on
wait 500m
meas_loop_swv e i fwd rev 3200m 3300m 5m 20m 20
  pck_start
  pck_add e
  pck_add i
  pck_add fwd
  pck_add rev
  pck_end
endloop
meas_loop_swv e i fwd rev 3300m 3200m 5m 20m 20
  pck_start
  pck_add e
  pck_add i
  pck_end
endloop
on_finished:
cell_off
""",
        2 * 21,
    ),
    "npv": (
        SETUP_POT
        + """
var e
var i
set_e 3200m
cell_on
meas_loop_npv e i 3200m 3300m 10m 10m 100m
  pck_start
  pck_add e
  pck_add i
  pck_end
endloop
on_finished:
cell_off
""",
        11,
    ),
    "acv": (
        SETUP_POT
        + """
var e
var i
var eac
var iac
var zr
var zi
set_e 3250m
cell_on
meas_loop_acv e i eac iac zr zi 3250m 3350m 10m 20m 10m 25
  pck_start
  pck_add e
  pck_add iac
  pck_add zr
  pck_add zi
  pck_end
endloop
on_finished:
cell_off
""",
        11,
    ),
    "pad": (
        SETUP_POT
        + """
var e
var i
set_e 3300m
cell_on
meas_loop_pad e i 3300m 3400m 20m 100m 2 3
  pck_start
  pck_add e
  pck_add i
  pck_end
endloop
on_finished:
cell_off
""",
        20,
    ),
    "ca with timer": (
        SETUP_POT
        + """
var e
var i
var t
set_e 3300m
cell_on
timer_start
meas_loop_ca e i 3300m 250m 5
  timer_get t
  pck_start
  pck_add t
  pck_add i
  pck_end
endloop
on_finished:
cell_off
""",
        20,
    ),
    "cp and lsp (galvanostat)": (
        """
var e
var i
set_pgstat_chan 0
set_pgstat_mode 6
set_max_bandwidth 40
set_range ab 4
set_autoranging ab 100m 4
set_range db 1m
set_autoranging db 1m 1m
set_i 0
cell_on
timer_start
meas_loop_cp e i 100u 500m 5
  pck_start
  pck_add e
  pck_add i
  pck_end
endloop
meas_loop_lsp e i -100u 100u 10u 100u
  pck_start
  pck_add e
  pck_add i
  pck_end
endloop
on_finished:
cell_off
""",
        10 + 21,
    ),
    "ocp": (
        """
var e
var t
set_pgstat_chan 0
set_pgstat_mode 3
set_range ab 4
set_autoranging ab 4 4
cell_off
timer_start
meas_loop_ocp e 200m 3
  timer_get t
  pck_start
  pck_add t
  pck_add e
  pck_end
endloop
""",
        15,
    ),
    "eis": (
        """
var f
var zr
var zi
var fs
var n
store_var fs 10k ja
store_var n 9i ja
set_pgstat_chan 0
set_pgstat_mode 3
set_max_bandwidth 1M
set_autoranging ba 1p 1
set_autoranging ab 1p 1
set_e 3300m
cell_on
meas_loop_eis f zr zi 10m fs 10 n 3300m
  pck_start
  pck_add f
  pck_add zr
  pck_add zi
  pck_end
endloop
on_finished:
cell_off
""",
        9,
    ),
    "geis": (
        """
var f
var zr
var zi
set_pgstat_chan 0
set_pgstat_mode 6
set_range db 1m
set_autoranging db 1m 1m
set_i 0
cell_on
meas_loop_geis f zr zi 50u 1k 1 4 0
  pck_start
  pck_add f
  pck_add zr
  pck_add zi
  pck_end
endloop
on_finished:
cell_off
""",
        4,
    ),
    "eis with time-domain data in arrays": (
        """
var f
var zr
var zi
var k
var n
var fs
array ue 128
array ui 128
set_pgstat_chan 0
set_pgstat_mode 3
set_autoranging ba 1n 100m
set_e 3300m
cell_on
meas_loop_eis f zr zi 10m 1k 100 2 3300m eis_tdd(ue ui n fs 0)
  pck_start
  pck_add f
  pck_add zr
  pck_add zi
  pck_add fs
  pck_end
  store_var k 0i ja
  loop k < n
    pck_start
    pck_add ue[k]
    pck_add ui[k]
    pck_end
    add_var k 1i
  endloop
endloop
on_finished:
cell_off
""",
        2 * (1 + 64),
    ),
    "arrays, smooth, peak_detect, f-string": (
        SETUP_POT
        + """
var e
var i
var k
var npts
var base
array es 64
array cs 64
store_var k 0i aa
set_e 3200m
cell_on
meas_loop_lsv e i 3200m 3400m 10m 100m
  copy_var e es[k]
  array_set cs k i
  add_var k 1i
endloop
copy_var k npts
smooth cs npts cs 1i
smooth cs cs 0i
store_var k 0i aa
loop k < npts
  pck_start
  pck_add es[k]
  pck_add cs[k]
  pck_end
  add_var k 1i
endloop
array pidx 1
array ph 1
peak_detect cs npts pidx ph 0i 1p
if pidx[0i] < 0
  send_string "no peak"
else
  copy_var pidx[0i] k
  array_get cs k base
  sub_var base ph[0i]
  send_string f"peak {ph[0i]} A at {es[k]} V, point {k} of {npts}"
endif
on_finished:
cell_off
""",
        21,
    ),
    "math: log, pow, mean, alter_vartype, bits, float_to_int": (
        """
array r 4i
var x
var m
var b
store_var r[0i] 10k ja
store_var r[1i] 20k ja
store_var r[2i] 30k ja
store_var r[3i] 40k ja
mean r m
alter_vartype m cb
copy_var m x
div_var x 10k
log_var x
pow_var x 2
float_to_int x
int_to_float x
store_var b 0x0Fi ja
bit_and_var b 0x06i
bit_lsl_var b 2i
bit_or_var b 1i
bit_xor_var b 0x10i
pck_start
pck_add m
pck_add x
pck_add b
pck_end
send_string f"mean {m} ohm"
""",
        1,
    ),
    "interval timer and loop": (
        SETUP_POT
        + """
var t
var f
var zr
var zi
store_var t 0 eb
set_e 3300m
set_int 5
loop t < 20
  cell_on
  meas_loop_eis f zr zi 10m 100 100 1i 3300m
  endloop
  cell_off
  pck_start
  pck_add t
  pck_add zr
  pck_end
  add_var t 5
  await_int
endloop
""",
        4,
    ),
    "cell bias kept while hibernating on the timer, then ocp": (
        SETUP_POT
        + """
var k
var e
var t
store_var k 0i ja
loop k < 3i
  set_e 3300m
  cell_on
  hibernate 0x04i 30   # wake-up source: the timer only
  cell_off
  timer_start
  meas_loop_ocp e 100m 500m
    timer_get t
    pck_start
    pck_add t
    pck_add e
    pck_end
  endloop
  add_var k 1i
endloop
on_finished:
  cell_off
""",
        3 * 5,
    ),
    "status led in a timed loop": (
        """
var k
store_var k 0i ja
loop k < 4i
  notify_led 5
  wait 500m
  notify_led 1
  wait 500m
  add_var k 1i
endloop
""",
        0,
    ),
    "computed array size and breakloop on a mean": (
        SETUP_POT
        + """
var e
var i
var n
var k
var avg
var stopped
store_var n 3000m ja
float_to_int n
array last n
store_var k 0i aa
store_var stopped 0i aa
set_e 3300m
cell_on
timer_start
meas_loop_ca e i 3350m 100m 60
  copy_var i last[k]
  mean last avg
  pck_start
  pck_add e
  pck_add avg
  pck_end
  if k < 2i
    add_var k 1i
  else
    store_var k 0i aa
  endif
  if avg > -1
    store_var stopped 1i aa
    breakloop
  endif
endloop
if stopped == 1i
  send_string "stopped early"
endif
on_finished:
cell_off
""",
        1,
    ),
    "eis at potentials from an array (Mott-Schottky style)": (
        SETUP_POT
        + """
var f
var zr
var zi
var k
var e
array es 3i
store_var k 0i aa
store_var e 3250m ja
loop k < 3i
  copy_var e es[k]
  add_var e 50m
  add_var k 1i
endloop
set_e es[0i]
cell_on
store_var k 0i aa
loop k < 3i
  meas_loop_eis f zr zi 10m 1k 1k 1 es[k]
  endloop
  pck_start
  pck_add es[k]
  pck_add zi
  pck_end
  add_var k 1i
endloop
on_finished:
cell_off
""",
        3,
    ),
    "linear fit of a sweep": (
        SETUP_POT
        + """
var e
var i
var k
var slope
var icpt
array es 11
array is 11
store_var k 0i aa
set_e 3250m
cell_on
meas_loop_lsv e i 3250m 3350m 10m 100m
  copy_var e es[k]
  copy_var i is[k]
  add_var k 1i
endloop
cell_off
linear_fit es is slope icpt
pow_var slope -1
alter_vartype slope cb
pck_start
pck_add slope
pck_end
send_string f"R {slope}"
""",
        1,
    ),
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_user_scripts_run_and_every_line_follows_the_grammar(name: str) -> None:
    script, expected = SCRIPTS[name]
    lines = run(script)
    assert not any("!" in ln for ln in lines if not ln.startswith("T")), lines[-3:]
    assert check_script_output(lines) == expected


def test_the_scripts_cover_every_measurement_loop() -> None:
    used = {kind for kind in MEAS_LOOPS if any(f"meas_loop_{kind} " in s for s, _ in SCRIPTS.values())}
    assert used == set(MEAS_LOOPS)


def test_multi_scan_cv_frames_every_scan_with_C_and_dash() -> None:
    lines = run(SCRIPTS["cv with nscans"][0])
    cv = lines[lines.index("M0005") :]
    assert [ln for ln in cv if ln and ln[0] in "C-*"] == ["C0000", "-", "C0001", "-", "*"]
    scans = "\n".join(cv).split("C0001")
    assert len(packages(scans[0].split("\n"))) == len(packages(scans[1].split("\n"))) == 21


def test_relaxlabs_own_two_cycle_sweep_passes_the_grammar() -> None:
    step = Sweep(3.7, 4.0, 3.5, scan_rate_mV_s=1.0, cycles=2, record_interval_s=10)
    lines = run("\n".join(compile_step(step, MASS_G, 0).lines), horizon_s=4000)
    assert check_script_output(lines) > 0
    assert sum(ln.startswith("C") for ln in lines) == 2


@pytest.mark.parametrize(
    "step",
    [
        ConstantCurrent(200, Cutoffs(voltage_V=4.0, duration_s=3600)),
        ConstantVoltage(3.9, Cutoffs(current_mA_g=50, duration_s=600), record_interval_s=30),
        Rest(1200, record_interval_s=60, dvdt_V_s=1e-5),
        GITT(current_mA_g=100, pulse_s=300, rest_s=600, cutoff_voltage_V=4.5, max_pulses=2),
        Loop(steps=(ConstantCurrent(200, Cutoffs(duration_s=120)), Rest(120, record_interval_s=60)), count=2),
    ],
    ids=["cc", "cv", "rest", "gitt", "loop"],
)
def test_relaxlabs_scripts_pass_the_grammar(step) -> None:
    lines = run("\n".join(compile_step(step, MASS_G, 0).lines), horizon_s=10000)
    assert check_script_output(lines) > 0


def test_grammar_checker_rejects_what_the_manual_does_not_allow() -> None:
    good = ["e", "M0005", "C0000", "Pda8000000 ;ba8000000 ,10,212", "-", "*", ""]
    assert check_script_output(good) == 1
    for bad in (
        ["e", "M0005", "Pda8000000 ", "-", "*", ""],  # '-' without 'C' (the old framing)
        ["e", "M0005", "C0000", "Pda8000000 ", "*", ""],  # scan left open
        ["e", "M0005", "C0000", "-", "Pda8000000 ", "C0001", "-", "*", ""],  # package between scans
        ["e", "Pzz8000000 ", ""],  # unknown variable type
        ["e", "Pda800000 m", ""],  # 6 hex digits
        ["e", "Pda8000000 ,13,14", ""],  # status twice
        ["e", "!4001", ""],  # error without its location
        ["e", "L", ""],
    ):
        with pytest.raises(GrammarError):
            check_script_output(bad)


CYCLING = """
var e
var i
var t
var q
var k
var n
var qc
var qd
array qchg 3i
array qdis 3i
store_var k 0i ja
store_var n 2i ja
set_acquisition_frac_autoadjust 50
set_pgstat_chan 0
set_pgstat_mode 6
set_range ab 6
set_range db 1m
set_autoranging db 1m 1m
meas 100m e ab
cell_on ocp(e)
timer_start
loop k < n
  set_script_output 1
  meas_loop_cp e i 700u 10 36k
    timer_get t
    copy_var i q
    mul_var q 10
    div_var q 3600m
    add_var qchg[k] q
    pck_start
    pck_add t
    pck_add e
    pck_end
    if e >= 4300m
      breakloop
    endif
  endloop
  set_script_output 0
  meas_loop_cp e i -700u 10 36k
    copy_var i q
    mul_var q -10
    div_var q 3600m
    add_var qdis[k] q
    pck_start
    pck_add e
    pck_end
    if e <= 2500m
      breakloop
    endif
  endloop
  set_script_output 1
  copy_var qchg[k] qc
  copy_var qdis[k] qd
  alter_vartype qc ja
  alter_vartype qd jb
  pck_start
  pck_add k
  pck_add qc
  pck_add qd
  pck_end
  send_string f"cycle {k}: {qchg[k]} mAh charged, {qdis[k]} mAh discharged"
  add_var k 1i
endloop
on_finished:
cell_off
"""


def test_battery_cycling_script_with_per_cycle_capacities() -> None:
    lines = run(CYCLING, horizon_s=200000)
    check_script_output(lines)
    rows = packages(lines)
    summaries = [r for r in rows if len(r) == 3]
    assert [r[0] for r in summaries] == [0, 1]
    charge = [r for r in rows if len(r) == 2]
    assert charge and max(r[1] for r in charge) >= 4.3  # the cut-off sample is sent
    # discharge packages were suppressed by set_script_output 0: only charge rows (t, E) and
    # summaries; each cycle's charge is 0.7 mA for 10 s per charge row it sent
    blocks = "|".join("c" if len(r) == 2 else "s" for r in rows).split("s")
    for (_cycle, qc, qd), block in zip(summaries, blocks, strict=False):
        assert qc == pytest.approx(0.7 * 10 / 3600 * block.count("c"), rel=1e-5)  # 7 hex digits
        assert 0 < qd < 2 * qc
    texts = [ln for ln in lines if ln.startswith("Tcycle")]
    assert len(texts) == 2 and " mAh charged" in texts[0]


def test_a_size_computed_in_floating_point_is_the_integer_it_means() -> None:
    # 20m / 100u is 199.99999999999997 in binary floating point: 200 elements are meant
    lines = run("""
var n
var k
store_var n 20m ja
div_var n 100u
array a n
store_var k 0i ja
loop k < 200i
  store_var a[k] 1 ja
  add_var k 1i
endloop
float_to_int n
pck_start
pck_add n
pck_end
""")
    assert check_script_output(lines) == 1
    assert packages(lines) == [[200.0]]


def _lpr(extra_point: str) -> str:
    """Polarisation resistance: OCP into an array, its mean, a +-10 mV sweep stored in arrays,
    linear_fit, R squared and 1/slope (the commands of PalmSens' LPR-versus-time example)."""
    return SETUP_POT + f"""
var ocp
array ocps 10i
var k
store_var k 0i aa
meas_loop_ocp ocp 100m 1
  copy_var ocp ocps[k]
  add_var k 1i
endloop
mean ocps ocp
var lo
var hi
var span
var n
store_var span 10m ja
copy_var ocp lo
sub_var lo span
copy_var ocp hi
add_var hi span
copy_var span n
mul_var n 2
div_var n 1m
{extra_point}
float_to_int n
array es n
array is n
var e
var i
set_range_minmax da lo hi
set_e lo
store_var k 0i aa
cell_on
meas_loop_lsv e i lo hi 1m 10m
  pck_start
    pck_add e
    pck_add i
  pck_end
  copy_var e es[k]
  copy_var i is[k]
  add_var k 1i
endloop
cell_off
var slope
var icpt
linear_fit es is slope icpt
var rpol
copy_var slope rpol
pow_var rpol -1
alter_vartype rpol cb
pck_start
  pck_add slope
  pck_add rpol
pck_end
"""


def test_polarisation_resistance_from_a_stored_sweep_and_linear_fit() -> None:
    # a sweep samples its begin and its end: 2 * 10 mV / 1 mV steps are 21 points
    lines = run(_lpr("add_var n 1100m  # both ends"))
    assert check_script_output(lines) == 22
    rows = packages(lines)
    sweep, ((slope, rpol),) = rows[:-1], rows[-1:]
    assert len(sweep) == 21
    e = [r[0] for r in sweep]
    i = [r[1] for r in sweep]
    assert e[-1] - e[0] == pytest.approx(20e-3, abs=1e-6)
    mean_e, mean_i = sum(e) / len(e), sum(i) / len(i)
    expected = sum((x - mean_e) * (y - mean_i) for x, y in zip(e, i, strict=True)) / sum(
        (x - mean_e) ** 2 for x in e
    )
    assert slope == pytest.approx(expected, rel=1e-4)  # least squares over what was sent
    assert slope > 0 and rpol == pytest.approx(1 / slope, rel=1e-4)


def test_arrays_one_short_of_the_sweeps_points_stop_at_the_first_element_past_the_end() -> None:
    # 20 elements for the 21 points the sweep samples: the 21st copy is refused with its line
    lines = run(_lpr("add_var n 100m  # only the steps"))
    check_script_output(lines)
    assert len(packages(lines)) == 21  # every point up to the refused copy was sent
    script = [ln for ln in _lpr("add_var n 100m").split("\n") if ln.strip()]
    assert lines[-2] == f"!4205: Line {script.index('  copy_var e es[k]') + 1}"


# ----------------------------------------------------------------------------- physics


def test_impedance_is_the_cells_randles_circuit_from_its_material_file() -> None:
    kinetics = load_material(None).kinetics  # x04.toml: resistances per mA/g, tau_fast
    r_s = kinetics.r_ohm_V_per_mA_g / (MASS_G * 1e-3)
    r_ct = kinetics.r_rc_V_per_mA_g / (MASS_G * 1e-3)
    f_peak = 1 / (2 * math.pi * kinetics.tau_fast_s)
    script = (
        SETUP_POT
        + f"""
var f
var zr
var zi
set_e 3300m
cell_on
meas_loop_eis f zr zi 5m 100k {round(f_peak * 1e9)}n 3 3300m
  pck_start
  pck_add f
  pck_add zr
  pck_add zi
  pck_end
endloop
"""
    )
    (high, _, peak) = packages(run(script, horizon_s=4e4))
    assert high[1] == pytest.approx(r_s, rel=1e-3)  # 100 kHz: the series resistance only
    assert peak[0] == pytest.approx(f_peak, rel=1e-6)
    # at f = 1 / (2 pi R C) the RC element gives R/2 - j R/2
    # (data packages carry 7 hex digits: about 1e-6 relative resolution)
    assert peak[1] == pytest.approx(r_s + r_ct / 2, rel=1e-5)
    assert peak[2] == pytest.approx(-r_ct / 2, rel=1e-5)


def test_current_outside_the_autorange_bounds_is_clipped_at_full_scale_with_overload() -> None:
    # 1 V below the cell's ~3.3 V: tens of mA flow, far above a 100 nA-100 uA autorange
    template = """
var e
var i
set_pgstat_mode 3
set_range ba 1u
set_autoranging ba 100n {hi}
set_e 2300m
cell_on
meas_loop_ca e i 2300m 100m 300m
  pck_start
  pck_add i
  pck_end
endloop
"""
    clipped = [ln for ln in run(template.format(hi="100u")) if ln.startswith("P")]
    assert clipped and all(ln.endswith(",12,212") for ln in clipped)  # overload, 100 uA range (18)
    assert all(parse_package(ln)[0].value == pytest.approx(-100e-6) for ln in clipped)
    free = [ln for ln in run(template.format(hi="100m")) if ln.startswith("P")]
    assert all(",10," in ln for ln in free)
    assert all(parse_package(ln)[0].value < -1e-3 for ln in free)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", DEVICE_SPECIFIC)
def test_device_specific_commands_are_refused_before_anything_runs(command: str) -> None:
    sim, clock = _sim()
    lines = run(f"var a\nset_pgstat_mode 3\ncell_on\n  {command} a", sim=sim, clock=clock)
    assert lines == ["e", "!001B: Line 4, Col 3", ""]
    assert sim.cell_is_on is False


@pytest.mark.parametrize(
    ("script", "reply"),
    [
        ("var t\nset_pgstat_mode 2\nmeas 100m t ef", "!001B: Line 3, Col 13"),  # no board thermometer
        ("hibernate 0x02i 60", "!001B: Line 1, Col 11"),  # woken by the WAKE pin: no such pin
        ("hibernate 0x0B 0", "!001B: Line 1, Col 11"),  # communication, pin or tap
    ],
)
def test_what_needs_hardware_the_unit_lacks_is_refused_before_anything_runs(script: str, reply: str) -> None:
    assert run(script) == ["e", reply, ""]


def test_hibernate_sleeps_on_the_timer_with_the_cell_as_set() -> None:
    sim, clock = _sim()
    t0 = clock.now()
    lines = run(SETUP_POT + "var t\nvar i\nset_e 3600m\ncell_on\ntimer_start\nhibernate 4i 30\n"
                "timer_get t\nmeas 100m i ba\ncell_off\npck_start\npck_add t\npck_add i\npck_end",
                sim=sim, clock=clock)  # fmt: skip
    (t, i), = packages(lines)
    assert t == pytest.approx(30.0)  # the script slept the 30 s it asked for
    assert i > 1e-6  # 3.6 V held above the cell's ~3.3 V all along: it charged
    assert run("var m\nstore_var m 2i ja\nhibernate m 5", sim=sim, clock=clock) == ["e", "!001B: Line 3", ""]
    assert clock.now() >= t0


@pytest.mark.parametrize(
    ("script", "reply"),
    [
        ("var a\nfrobnicate a", "!4001: Line 2, Col 1"),
        ("array a 4\nstore_var b[0] 1 ja", "!420B: Line 2, Col 11"),
        ("array a 4\nvar x\ncopy_var a[y] x", "!420B: Line 3, Col 12"),
        ('var a\nsend_string f"{b}"', "!420B: Line 2, Col 15"),
        ("var e\nvar i\nmeas_loop_lsv e i 0 1 10m 1 nscans(2)\nendloop", "!4008: Line 3, Col 29"),
        ("var e\nmeas_loop_foo e 1\nendloop", "!4001: Line 2, Col 1"),
    ],
)
def test_parse_errors_have_code_line_and_column(script: str, reply: str) -> None:
    assert run(script) == ["e", reply, ""]


def test_runtime_errors_have_code_and_line_and_close_open_scopes() -> None:
    lines = run(
        "array a 2\nvar k\nstore_var k 0i ja\nloop k < 3i\n  store_var a[k] 1 ja\n  add_var k 1i\nendloop"
    )
    assert lines == ["e", "L", "+", "!4205: Line 5", ""]  # index 2 of a 2-element array
    check_script_output(lines)


# ----------------------------------------------------------------------------- online commands


def _ask(sim: SimulatedEmStat4, text: str) -> list[str]:
    sim.receive(text.encode())
    return sim.take_output().decode().split("\n")[:-1]


def test_version_load_run_flash_and_registers() -> None:
    sim, clock = _sim()
    assert _ask(sim, "v\n") == ["v1.8"]
    assert _ask(sim, "r\n") == ["r!000C"]  # nothing loaded
    assert _ask(sim, "Lmscr\n") == ["L!000C"]
    assert _ask(sim, "l\nvar a\nbogus\n\n") == ["l", "!4001: Line 2, Col 1", ""]
    assert _ask(sim, 'l\nvar a\nsend_string "hello"\n\n') == ["l", ""]
    assert _ask(sim, "Fmscr\n") == ["F"]
    assert _ask(sim, "r\n") == ["r", "Thello", ""]
    assert _ask(sim, "Lmscr\nr\n") == ["L", "r", "Thello", ""]
    assert _ask(sim, "G1F\n") == ["G!0007"]
    assert _ask(sim, "S1F00ABCDEF\nG1F\n") == ["S", "G00ABCDEF"]
    assert _ask(sim, "h\nH\n") == ["h!0006", "H!0006"]


@pytest.mark.parametrize("name", list(ONLINE_COMMANDS))
def test_every_documented_online_command_is_understood(name: str) -> None:
    sim, _ = _sim()
    text = {"G<hh>": "G01", "S<hh><value>": "S0101"}.get(name, name)
    reply = _ask(sim, text + "\n" + ("\n" if name in ("e", "l") else ""))
    assert reply and not reply[0].endswith("!0003")
    assert _ask(sim, "q\n") == ["q!0003"]  # what an unknown command gets


def test_halt_pauses_the_script_and_resume_continues_it() -> None:
    sim, clock = _sim()
    script = "var e\nvar t\ntimer_start\nmeas_loop_ocp e 1 10\n timer_get t\n pck_start\n pck_add t\n pck_end\nendloop"
    sim.receive(("e\n" + script + "\n\n").encode())
    clock.set_time(clock.now() + 3.5)
    first = _ask(sim, "h\n")
    assert first[-1] == "h" and len(packages(first)) == 3
    clock.set_time(clock.now() + 100)
    assert _ask(sim, "i\n") == ["i!0006"]  # still running, nothing sampled while halted
    assert _ask(sim, "H\n") == ["H"]
    clock.set_time(clock.now() + 100)
    rest = sim.take_output().decode().split("\n")[:-1]
    times = [p[0] for p in packages(first + rest)]
    assert times == pytest.approx([float(k) for k in range(1, 11)])  # the script's own clock
    assert check_script_output(first[:-1] + rest) == 10


def test_abort_in_the_middle_of_a_scan_closes_the_scan_and_the_loop() -> None:
    sim, clock = _sim()
    body = "".join(ln + "\n" for ln in SCRIPTS["cv with nscans"][0].split("\n") if ln.strip())
    sim.receive(("e\n" + body + "\n").encode())
    clock.set_time(clock.now() + 8)
    lines = sim.take_output().decode().split("\n")[:-1]
    lines += _ask(sim, "Z\n")
    assert lines[lines.index("Z") :] == ["Z", "-", "*", ""]
    check_script_output(lines[: lines.index("Z")] + lines[lines.index("Z") + 1 :])
    assert sim.cell_is_on is False  # on_finished: ran


def test_an_overlong_line_is_refused_with_bounded_memory() -> None:
    from simulators.emstat4.simulator import MAX_LINE_BYTES

    sim, _ = _sim()
    chunk = b"x" * (1 << 20)
    for _ in range(50):  # a 50 MB line
        sim.receive(chunk)
        assert len(sim._inbuf) <= MAX_LINE_BYTES + len(chunk)
    assert _ask(sim, "\ni\n") == ["!0008", "iES4HR25SIM001"]
    # inside a script: the script is abandoned, its remaining lines are not run as commands
    assert _ask(sim, "e\nvar a\n" + "y" * 5000 + "\nvar b\n\ni\n") == ["e", "!0008", "", "iES4HR25SIM001"]


def test_a_script_larger_than_the_script_memory_is_refused() -> None:
    sim, _ = _sim()
    script = "".join(f"var v{k}\n" for k in range(40000))  # ~330 kB
    assert _ask(sim, "e\n" + script + "\ni\n") == ["e", "!4005", "", "iES4HR25SIM001"]
    assert not sim.running


def test_an_endless_loop_without_measurements_can_still_be_aborted() -> None:
    sim, _ = _sim()
    first = _ask(
        sim, 'e\nvar a\nloop 1 < 2\n  add_var a 1i\nendloop\non_finished:\n  send_string "stopped"\n\n'
    )
    assert first == ["e", "L"]  # the instrument is busy looping, yet it answers
    assert _ask(sim, "i\n") == ["i!0006"]
    rest = _ask(sim, "Z\n")
    assert rest == ["Z", "+", "Tstopped", ""]
    check_script_output(first + rest[1:])


# ----------------------------------------------------------------------------- one owner


@pytest.mark.tcp
def test_a_second_connection_is_refused_and_cannot_abort_the_first_ones_script() -> None:
    sim, clock = _sim()
    server = InstrumentServer(sim).start()
    try:
        owner = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        owner.sendall(b"e\nvar e\nmeas_loop_ocp e 1 100\npck_start\npck_add e\npck_end\nendloop\n\n")
        reader = owner.makefile("rb")
        assert reader.readline() == b"e\n"
        assert reader.readline() == b"M000B\n"
        intruder = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        intruder.sendall(b"Z\n")
        reply = intruder.makefile("rb").read()  # the refusal, then the server closes it
        assert reply.startswith(b"!0006")
        intruder.close()
        assert sim.running  # the intruder's Z never reached the instrument
        clock.set_time(clock.now() + 3)
        server.push_now()
        assert reader.readline().startswith(b"Pab")
        owner.close()
    finally:
        server.stop()


@pytest.mark.tcp
@pytest.mark.parametrize(
    "unfinished",
    [b"i", b"e\nvar a\n", b'e\nvar a\nsend_string "half', b"e\nvar a\n" + b"x" * 5000],
    ids=["half a command", "a script without its empty line", "half a script line", "an overlong line"],
)
def test_a_host_killed_mid_line_leaves_no_trace_for_the_next(unfinished: bytes) -> None:
    import struct

    sim, _ = _sim()
    server = InstrumentServer(sim).start()
    try:
        for reset in (True, False):  # killed (connection reset) or closed without finishing
            dead = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            dead.sendall(b"v\n")
            with dead.makefile("rb") as reader:
                assert reader.readline() == b"v1.8\n"  # it owned the port
            dead.sendall(unfinished)
            if reset:
                dead.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            dead.close()
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as nxt:
                nxt.sendall(b"t\n")
                with nxt.makefile("rb") as reader:
                    assert reader.readline().startswith(b"tes4_hr")  # not refused, nor "it", nor a script line
                    assert reader.readline() == b"R*\n"
                    nxt.sendall(b"i\n")
                    assert reader.readline() == b"iES4HR25SIM001\n"
        assert sim.scripts_run == 0  # nothing of the dead hosts' scripts ran
    finally:
        server.stop()


def test_port_sessions_one_owner_and_output_kept_for_the_next_owner() -> None:
    # the session interface a server that gives each connection a session uses
    sim, clock = _sim()
    owner = sim.connect()
    with pytest.raises(OSError, match="in use"):
        sim.connect()
    owner.receive(b"e\nvar e\nmeas_loop_ocp e 1 10\npck_start\npck_add e\npck_end\nendloop\n\n")
    clock.set_time(clock.now() + 2)
    assert sim.take_output() == b""  # nobody but the owner reads its data
    assert owner.take_output().decode().split("\n")[:2] == ["e", "M000B"]
    owner.close()  # the host died mid-script
    clock.set_time(clock.now() + 20)
    again = sim.connect()
    lines = again.take_output().decode().split("\n")
    assert len(packages(lines)) == 8 and lines[-3:] == ["*", "", ""]


# ----------------------------------------------------------------------------- docs


def test_docs_table_of_commands_is_generated_from_the_simulator() -> None:
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "docs" / "simulator-emstat4.md"
    assert committed.read_text() == docs_markdown(), (
        "docs/simulator-emstat4.md is stale: python -m simulators.emstat4.docs > docs/simulator-emstat4.md"
    )


@pytest.mark.tcp
def test_served_unit_survives_junk_a_50_MB_line_and_200_connections() -> None:
    import random
    import tracemalloc

    sim, _ = _sim()
    server = InstrumentServer(sim).start()
    rng = random.Random(4)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as owner:
            junk = [b"\x00\xff\xfe\n", b"::::\n", b"G\n", b"Szz\n", b"\r\n\r\n", b"Fmscr extra\n"]
            junk += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) + b"\n" for _ in range(50)]
            for chunk in junk:
                owner.sendall(chunk)
            owner.sendall(b"\nZ\n\ni\n")  # end a script the junk may have begun; abort one it ran
            with owner.makefile("rb") as reader:
                while (line := reader.readline()) != b"iES4HR25SIM001\n":
                    assert line, "the server closed the connection"
                tracemalloc.start()
                try:
                    chunk = b"x" * (1 << 20)
                    for _ in range(50):  # a 50 MB line
                        owner.sendall(chunk)
                    owner.sendall(b"\ni\n")
                    assert reader.readline() == b"!0008\n"
                    assert reader.readline() == b"iES4HR25SIM001\n"
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                assert peak < 8 * (1 << 20)  # the 50 MB never accumulated (the test's chunk is 1 MB)
                others = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(199)]
                for other in others:  # one owner per port: every other host is turned away
                    with other, other.makefile("rb") as refused:
                        assert refused.read().startswith(b"!0006")
                owner.sendall(b"v\n")
                assert reader.readline() == b"v1.8\n"  # the owner was never disturbed
    finally:
        server.stop()
