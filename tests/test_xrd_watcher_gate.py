"""The folder watcher with the lattice fit's quality gate, Bruker .raw and multi-scan files."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from analysis.lattice import bragg_two_theta_deg, d_spacing_A, doublet
from drivers.clock import SimClock
from drivers.xrd import Diffractometer
from orchestrator.xrd_analysis import pattern_watcher
from tests.conftest import SHARED_DATA
from tests.test_lattice import tetragonal_peaks

XRD = SHARED_DATA / "xrd"
ROCKSALT = ((1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1), (2, 2, 2), (4, 0, 0))
HEIGHTS = (60, 100, 50, 20, 15, 8)


def _write_xy(path, lines, seed):
    x = np.arange(20.0, 100.0, 0.01)
    y = np.full_like(x, 100.0)
    for two_theta, height in lines:
        y += doublet(x, two_theta, 0.12, 0.5, height * 40)
    y = np.random.default_rng(seed).poisson(y).astype(float)
    path.write_text("\n".join(f"{a:.4f} {b:.1f}" for a, b in zip(x, y, strict=True)) + "\n")


def _rock_salt(path, a_A, seed=1):
    _write_xy(
        path,
        [
            (bragg_two_theta_deg(d_spacing_A(a_A, h), 1.54056), k)
            for h, k in zip(ROCKSALT, HEIGHTS, strict=True)
        ],
        seed,
    )


def _tetragonal(path, a_A, c_A, seed=2):
    _write_xy(path, tetragonal_peaks(a_A, c_A), seed)


def test_a_fit_failing_the_gate_is_reported_and_never_the_next_guess(tmp_path):
    clock = SimClock()
    _rock_salt(tmp_path / "scan_01.xy", 4.140)
    os.utime(tmp_path / "scan_01.xy", (1, 1))
    watcher = pattern_watcher(tmp_path, clock, scan_time_s=600, a_guess_A=4.13, search_frac=0.03)
    scans, bad = watcher.poll()
    assert not bad and scans[0].fit_ok
    assert scans[0].fit.a_A == pytest.approx(4.140, abs=0.001)
    _tetragonal(tmp_path / "scan_02.xy", 4.12, 4.22)  # another phase: not one cubic lattice
    scans, _ = watcher.poll()
    assert not scans[0].fit_ok and "quality gate" in scans[0].fit_error
    assert watcher.a_guess_A == pytest.approx(4.140, abs=0.001)  # the last good value, not 4.12
    _rock_salt(tmp_path / "scan_03.xy", 4.138, seed=5)
    scans, _ = watcher.poll()
    assert scans[0].fit_ok and scans[0].fit.a_A == pytest.approx(4.138, abs=0.001)


def test_device_publishes_nan_for_a_failed_fit(tmp_path):
    clock = SimClock()
    _tetragonal(tmp_path / "odd.xy", 4.12, 4.22)
    watcher = pattern_watcher(tmp_path, clock, scan_time_s=600, a_guess_A=4.13)
    device = Diffractometer(watcher, clock, name="xrd", poll_interval_s=10.0)
    status = device.trigger()
    assert status.done and status.success
    assert np.isnan(device.read()["xrd_lattice_A"]["value"])
    assert "quality gate" in device.last_scan.fit_error


def test_bruker_raw_files_are_read_not_skipped(tmp_path):
    source = XRD / "brukerraw_test.RAW"
    if not source.is_file():
        pytest.skip("../shared/data/xrd absent")
    shutil.copy(source, tmp_path / "scan.RAW")
    watcher = pattern_watcher(tmp_path, SimClock(), scan_time_s=600, a_guess_A=4.13)
    scans, bad = watcher.poll()
    assert not bad and len(scans) == 1
    assert len(scans[0].pattern) == 3501  # the Ba2CaWO6 pattern is read (it is no rock salt)


def test_every_scan_of_a_multi_scan_file_is_handed_out(tmp_path):
    source = XRD / "V2O5_0p4005-NiO_0p6016--8min.xrdml"
    if not source.is_file():
        pytest.skip("../shared/data/xrd absent")
    text = source.read_text(encoding="utf-8")
    start, end = text.index("<scan "), text.index("</scan>") + len("</scan>")
    (tmp_path / "two.xrdml").write_text(text[:end] + text[start:end] + text[end:], encoding="utf-8")
    clock = SimClock()
    watcher = pattern_watcher(tmp_path, clock, scan_time_s=600, a_guess_A=4.17)
    device = Diffractometer(watcher, clock, name="xrd", poll_interval_s=10.0)
    for k in range(2):
        status = device.trigger()
        assert status.done and status.success
        assert device.last_scan.scan_index == k and device.last_scan.n_scans == 2
        assert device.read()["xrd_lattice_A"]["value"] == pytest.approx(4.1771, abs=0.001)
        assert ("two.xrdml" in watcher.consumed) == (k == 1)  # consumed after its last scan
