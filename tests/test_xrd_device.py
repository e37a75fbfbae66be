"""Simulated diffractometer + folder-watching driver + ophyd Diffractometer, in process."""

from __future__ import annotations

import os

import numpy as np
import pytest

from analysis.errors import DataFileError
from analysis.patterns import read_pattern
from drivers.clock import SimClock
from drivers.xrd import Diffractometer
from orchestrator.xrd_analysis import pattern_watcher
from simulators.xrd import SimulatedDiffractometer

SCAN_S = 1200.0
A0 = 4.150
SHRINK_A_PER_S = 0.039 / (12 * 3600)  # the 4.150 -> 4.111 A shrink spread over 12 h


def _rig(tmp_path, clock, *, formats=("xy",), seed=3, **device_kwargs):
    t0 = clock.now()

    def lattice_A() -> float:
        return A0 - SHRINK_A_PER_S * (clock.now() - t0)

    export = tmp_path / "export"
    sim = SimulatedDiffractometer(clock, export, lattice_A, formats=formats, seed=seed)
    watcher = pattern_watcher(export, clock, scan_time_s=SCAN_S, a_guess_A=4.14)
    device = Diffractometer(
        watcher,
        clock,
        name="xrd",
        poll_interval_s=30.0,
        before_poll=sim.catch_up,
        **device_kwargs,
    )
    return sim, watcher, device, lattice_A


def _wait(clock: SimClock, status, limit_s: float = 10 * SCAN_S) -> None:
    end = clock.now() + limit_s
    while not status.done and clock.now() < end:
        assert clock.advance_to_next(), "nothing scheduled while a status is pending"


def _trigger(clock: SimClock, device):
    """Trigger ``device`` and wait (in simulated time) until its status is done; return it."""
    status = device.trigger()
    _wait(clock, status)
    return status


def _value(device, key):
    return device.read()[f"xrd_{key}"]["value"]


def test_device_tracks_a_shrinking_lattice(tmp_path):
    clock = SimClock()
    t0 = clock.now()
    sim, _, device, _ = _rig(tmp_path, clock)
    for n in range(4):
        status = _trigger(clock, device)
        assert status.success
        start, end = t0 + n * SCAN_S, t0 + (n + 1) * SCAN_S
        assert _value(device, "scan_start_s") == pytest.approx(start)
        assert _value(device, "scan_end_s") == pytest.approx(end)
        assert _value(device, "filename") == f"scan_{n + 1:04d}.xy"
        truth = A0 - SHRINK_A_PER_S * (0.5 * (start + end) - t0)  # scan average
        assert _value(device, "lattice_A") == pytest.approx(truth, abs=0.002)
        assert 0 < _value(device, "lattice_err_A") < 0.002
        assert clock.now() - end <= 30.0 + 1e-9  # read within one poll of the scan's end
    assert sim.written[-1].lattice_A == pytest.approx(truth, abs=1e-6)
    # the lattice moved by more than the tolerance over these scans: tracking is real
    assert A0 - truth > 0.003


def test_readings_describe_arrays_and_hint_lattice(tmp_path):
    clock = SimClock()
    _, _, device, _ = _rig(tmp_path, clock)
    _trigger(clock, device)
    desc = device.describe()
    n = len(_value(device, "two_theta"))
    assert n == 2501
    for key in ("xrd_two_theta", "xrd_intensity"):
        assert desc[key]["dtype"] == "array" and desc[key]["shape"] == [n]
    assert desc["xrd_lattice_A"]["dtype"] == "number"
    assert device.hints["fields"] == ["xrd_lattice_A"]
    assert device.read()["xrd_two_theta"]["timestamp"] == _value(device, "scan_end_s")
    assert device.read_configuration()["xrd_scan_time_s"]["value"] == SCAN_S


def test_brml_export_reads_with_file_time_stamps(tmp_path):
    clock = SimClock()
    t0 = clock.now()
    sim, _, device, _ = _rig(tmp_path, clock, formats=("brml",))
    _trigger(clock, device)
    assert _value(device, "filename") == "scan_0001.brml"
    assert device.last_scan.time_source == "file"
    assert _value(device, "scan_end_s") == pytest.approx(t0 + SCAN_S)
    assert _value(device, "lattice_A") == pytest.approx(sim.written[0].lattice_A, abs=0.002)


def test_timeout_fails_status_with_clear_message(tmp_path):
    clock = SimClock()
    export = tmp_path / "empty"
    export.mkdir()
    watcher = pattern_watcher(export, clock, scan_time_s=SCAN_S)
    device = Diffractometer(watcher, clock, name="xrd", poll_interval_s=60.0, timeout_s=600.0)
    status = _trigger(clock, device)
    assert status.done and not status.success
    with pytest.raises(TimeoutError, match="no finished scan appeared in .*empty"):
        status.wait(0)
    assert clock.now() - 1767225600.0 == pytest.approx(600.0)


def test_unreadable_file_fails_trigger_naming_it_then_continues(tmp_path):
    clock = SimClock()
    _, watcher, device, _ = _rig(tmp_path, clock)
    bad = watcher.export_dir / "scan_0000.xy"
    bad.write_text("this is not a pattern\n10 1\n11 oops\n")
    os.utime(bad, (clock.now(), clock.now()))
    outcomes = []
    for _ in range(2):
        status = _trigger(clock, device)
        outcomes.append(status)
    assert not outcomes[0].success
    with pytest.raises(DataFileError, match="scan_0000.xy.*line 3"):
        outcomes[0].wait(0)
    assert outcomes[1].success and _value(device, "filename") == "scan_0001.xy"
    assert [e.path.name for e in device.bad_files] == ["scan_0000.xy"]
    assert watcher.consumed["scan_0000.xy"]["status"] == "bad"


def test_skip_mode_reports_bad_file_and_reads_next_scan(tmp_path):
    clock = SimClock()
    _, watcher, device, _ = _rig(tmp_path, clock, on_bad_file="skip")
    (watcher.export_dir / "broken.brml").write_bytes(b"PK\x03\x04 truncated")
    status = _trigger(clock, device)
    assert status.success and _value(device, "filename") == "scan_0001.xy"
    assert [e.path.name for e in device.bad_files] == ["broken.brml"]


def test_partial_and_temporary_files_are_ignored(tmp_path):
    clock = SimClock()
    export = tmp_path / "export"
    export.mkdir()
    for name in (".scan_0001.xy.part", "scan_0001.xy.tmp", "~scan.xy", "notes.txt"):
        (export / name).write_text("10 1\n")
    watcher = pattern_watcher(export, clock, scan_time_s=SCAN_S)
    assert watcher.poll() == ([], [])


def test_restart_neither_loses_nor_duplicates(tmp_path):
    clock = SimClock()
    sim, watcher, device, lattice_A = _rig(tmp_path, clock)
    for _ in range(2):
        _trigger(clock, device)
    assert _value(device, "filename") == "scan_0002.xy"
    # the host goes down for three scans while the diffractometer keeps exporting
    clock.advance_by(3 * SCAN_S)
    sim.catch_up()
    watcher2 = pattern_watcher(watcher.export_dir, clock, scan_time_s=SCAN_S)
    device2 = Diffractometer(watcher2, clock, name="xrd", poll_interval_s=30.0, before_poll=sim.catch_up)
    names = []
    for _ in range(4):
        status = _trigger(clock, device2)
        assert status.success
        names.append(_value(device2, "filename"))
    assert names == ["scan_0003.xy", "scan_0004.xy", "scan_0005.xy", "scan_0006.xy"]
    assert watcher2.a_guess_A == pytest.approx(_value(device2, "lattice_A"))


def test_unacknowledged_scan_is_read_again_after_restart(tmp_path):
    clock = SimClock()
    sim, watcher, _, _ = _rig(tmp_path, clock)
    clock.advance_by(SCAN_S)
    sim.catch_up()
    scans, _ = watcher.poll()
    assert [s.filename for s in scans] == ["scan_0001.xy"]
    assert watcher.poll() == ([], [])  # handed out once per driver life
    again = pattern_watcher(watcher.export_dir, clock, scan_time_s=SCAN_S)
    assert [s.filename for s in again.poll()[0]] == ["scan_0001.xy"]


def test_ignore_existing_skips_files_from_before(tmp_path):
    clock = SimClock()
    sim, watcher, _, _ = _rig(tmp_path, clock)
    clock.advance_by(2 * SCAN_S)
    sim.catch_up()
    fresh = pattern_watcher(
        watcher.export_dir,
        clock,
        scan_time_s=SCAN_S,
        state_path=tmp_path / "s.json",
        ignore_existing=True,
    )
    assert fresh.poll() == ([], [])
    clock.advance_by(SCAN_S)
    sim.catch_up()
    assert [s.filename for s in fresh.poll()[0]] == ["scan_0003.xy"]


def test_mtime_gives_times_when_file_has_none(tmp_path):
    clock = SimClock()
    export = tmp_path / "export"
    export.mkdir()
    sim = SimulatedDiffractometer(clock, tmp_path / "sim", lambda: 4.13, seed=1)
    x, y = sim.two_theta_deg, sim.pattern(4.13, np.random.default_rng(1))
    path = export / "plain.xy"
    path.write_text("\n".join(f"{a:.4f} {b:.0f}" for a, b in zip(x, y, strict=True)))
    os.utime(path, (1767230000.0, 1767230000.0))
    scans, _ = pattern_watcher(export, clock, scan_time_s=SCAN_S).poll()
    assert scans[0].time_source == "mtime"
    assert scans[0].end_s == pytest.approx(1767230000.0)
    assert scans[0].start_s == pytest.approx(1767230000.0 - SCAN_S)
    assert scans[0].fit.a_A == pytest.approx(4.13, abs=0.002)


def test_settle_polls_waits_for_a_stable_file(tmp_path):
    clock = SimClock()
    sim, _, _, _ = _rig(tmp_path, clock)
    clock.advance_by(SCAN_S)
    sim.catch_up()
    watcher = pattern_watcher(sim.export_dir, clock, scan_time_s=SCAN_S, settle_polls=1)
    assert watcher.poll() == ([], [])
    assert [s.filename for s in watcher.poll()[0]] == ["scan_0001.xy"]


# ---------------------------------------------------------------------------- simulator
def test_simulator_writes_only_finished_scans_atomically(tmp_path):
    clock = SimClock()
    sim = SimulatedDiffractometer(clock, tmp_path, lambda: 4.13, formats=("xy", "brml"))
    clock.advance_by(SCAN_S - 1)
    assert sim.catch_up() == []
    clock.advance_by(1)
    assert [p.name for p in sim.catch_up()] == ["scan_0001.xy", "scan_0001.brml"]
    clock.advance_by(2 * SCAN_S + 5)
    sim.catch_up()
    assert sorted(os.listdir(tmp_path)) == [
        f"scan_{i:04d}.{ext}" for i in (1, 2, 3) for ext in ("brml", "xy")
    ]
    assert os.path.getmtime(tmp_path / "scan_0003.xy") == pytest.approx(clock.now() - 5)
    xy, brml = read_pattern(tmp_path / "scan_0002.xy"), read_pattern(tmp_path / "scan_0002.brml")
    np.testing.assert_array_equal(xy.intensity, brml.intensity)
    assert brml.start_time_s == pytest.approx(clock.now() - 5 - 2 * SCAN_S)


def test_simulator_is_deterministic_for_a_seed(tmp_path):
    def run(folder, seed):
        clock = SimClock()
        sim = SimulatedDiffractometer(clock, tmp_path / folder, lambda: 4.13, seed=seed)
        clock.advance_by(2 * SCAN_S)
        sim.catch_up()
        return (tmp_path / folder / "scan_0002.xy").read_bytes()

    assert run("a", 7) == run("b", 7)
    assert run("c", 7) != run("d", 8)


def test_simulated_pattern_physics(tmp_path):
    sim = SimulatedDiffractometer(_Fixed(), tmp_path, lambda: 4.111)
    x, y = sim.two_theta_deg, sim.pattern(4.111)
    no_be = SimulatedDiffractometer(_Fixed(), tmp_path, lambda: 4.111, be_window=False)
    y_no_be = no_be.pattern(4.111)

    def height(center, ys):  # above the local background
        return ys[np.abs(x - center) < 0.1].max() - ys[np.abs(x - center) < 1.0].min()

    # Be window (hcp): (100) 45.80, (002) 50.91, (101) 52.78 degrees for Cu K-alpha1
    for center in (45.80, 50.91, 52.78):
        assert height(center, y) > 2 * height(center, y_no_be)
    # rock-salt, cation-disordered Li1.17Ti0.58Ni0.25O2: F(odd) = 4(f_cat - f_O) is small
    p111, p200, p220, p311, p222, p400 = (
        height(c, y_no_be) for c in (37.85, 43.98, 63.94, 76.80, 80.88, 96.97)
    )
    assert p200 > max(p111, p220, p311, p222, p400)
    # weak all-odd reflections: (311) below (222) despite 3x the multiplicity
    assert p111 < 0.3 * p200 and p311 < p222
    # longer scans count more
    long = SimulatedDiffractometer(_Fixed(), tmp_path, lambda: 4.111, scan_time_s=2 * SCAN_S)
    assert long.pattern(4.111).max() == pytest.approx(2 * y.max())


class _Fixed:
    def now(self) -> float:
        return 1767225600.0


def test_simulator_averages_lattice_over_the_scan(tmp_path):
    clock = SimClock()
    t0 = clock.now()
    sim = SimulatedDiffractometer(clock, tmp_path, lambda: 4.0 + (clock.now() - t0) / SCAN_S)
    for _ in range(4):
        clock.advance_by(SCAN_S / 4)
        sim.catch_up()
    assert sim.written[0].lattice_A == pytest.approx(4.5)


def test_simulator_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="scan_time_s"):
        SimulatedDiffractometer(_Fixed(), tmp_path, lambda: 4.1, scan_time_s=0)
    with pytest.raises(ValueError, match="formats"):
        SimulatedDiffractometer(_Fixed(), tmp_path, lambda: 4.1, formats=("raw",))


def test_device_follows_the_cell_model_during_a_charge(tmp_path):
    cell_mod = pytest.importorskip("simulators.cell")
    material_mod = pytest.importorskip("simulators.material")
    clock = SimClock()
    sample = cell_mod.Sample(material_mod.load_material(None))
    cell = cell_mod.Cell(sample, active_mass_g=0.007)
    current_A = 20e-3 * 0.007  # 20 mA/g
    last = [clock.now()]
    sim = SimulatedDiffractometer(clock, tmp_path, sample.lattice_A, seed=11)

    def before_poll() -> None:  # the potentiostat side, advanced on the same clock
        if clock.now() > last[0]:
            cell.constant_current(current_A, clock.now() - last[0], v_upper_V=4.8)
            last[0] = clock.now()
        sim.catch_up()

    watcher = pattern_watcher(tmp_path, clock, scan_time_s=SCAN_S, a_guess_A=4.15)
    device = Diffractometer(watcher, clock, name="xrd", poll_interval_s=60.0, before_poll=before_poll)
    fitted = []
    for n in range(6):
        status = _trigger(clock, device)
        assert status.success
        fitted.append(_value(device, "lattice_A"))
        assert fitted[-1] == pytest.approx(sim.written[n].lattice_A, abs=0.002)
    assert all(np.diff(fitted) < 0)  # shrinks while Ni is oxidised
    assert fitted[0] - fitted[-1] > 0.01
