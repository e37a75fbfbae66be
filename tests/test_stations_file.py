"""The stations file: what each station's RE Manager holds; every problem reported at once,
each with its place and a valid example; refused before anything is queued."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.stations_file import StationsFileError, load_stations

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
[stations.bench-a]
control = "tcp://127.0.0.1:60615"
info = "tcp://127.0.0.1:60625"
channels = ["pos0", "pos1"]

[stations.bench-b]
control = "tcp://10.0.0.12:60615"
channels = ["pos2"]
ovens = ["oven1"]
"""


def test_a_stations_file_names_who_holds_what(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(GOOD)
    stations = load_stations(tmp_path / "s.toml")
    assert stations.channels() == [("bench-a", "pos0"), ("bench-a", "pos1"), ("bench-b", "pos2")]
    assert stations.station_of("ovens", "oven1") == "bench-b"


def test_every_problem_is_reported_with_its_place(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text(
        '[stations.a]\ncontrol = "10.0.0.11:60615"\nchannels = ["pos 0"]\nheaters = []\n'
        '[stations.b]\nchannels = ["p1"]\n'
    )
    with pytest.raises(StationsFileError) as err:
        load_stations(bad)
    lines = str(err.value).splitlines()
    assert len(lines) == 4
    assert any("stations.a.control" in x and "tcp://10.0.0.11:60615" in x for x in lines)
    assert any("stations.a.channels" in x and "'pos 0'" in x for x in lines)
    assert any("stations.a.heaters: unknown key" in x for x in lines)
    assert any("stations.b.control: missing" in x for x in lines)


def test_a_channel_held_by_two_stations_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(GOOD.replace('["pos2"]', '["pos1"]'))
    with pytest.raises(StationsFileError, match="channel 'pos1' is listed by stations 'bench-a' and 'bench-b'"):
        load_stations(tmp_path / "s.toml")


def test_campaign_run_with_a_bad_stations_file_is_one_error_and_queues_nothing(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text("[stations]\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "campaign", "run", "charge-end", "--stations",
         str(tmp_path / "s.toml"), "--tiled", "http://127.0.0.1:9", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "no station" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "campaigns").exists()


def test_a_heating_campaign_needs_an_oven_station_and_xrd_is_refused(tmp_path: Path) -> None:
    from orchestrator.campaign_file import load_campaign
    from orchestrator.station_dispatch import check_dispatchable
    from orchestrator.stations_file import StationsFile

    channels_only = StationsFile.model_validate(
        {"stations": {"a": {"control": "tcp://127.0.0.1:60615", "channels": ["pos0"]}}}
    )
    with pytest.raises(ValueError, match=r"heats powder portions .* no station of the stations file lists an oven"):
        check_dispatchable(load_campaign("temperature-24h"), channels_only)
    with_oven = StationsFile.model_validate(
        {"stations": {"a": {"control": "tcp://127.0.0.1:60615", "channels": ["pos0"], "ovens": ["oven1"]}}}
    )
    check_dispatchable(load_campaign("temperature-24h"), with_oven)  # heating and operator steps are dispatched
    (tmp_path / "p.yaml").write_text("name: p\nparameters: {rest: 1 h}\nsteps:\n"
                                     "  - xrd: {every: 30 min}\n  - rest: {duration: $rest}\n")  # fmt: skip
    (tmp_path / "x.yaml").write_text(
        "name: xrd\nprotocol: p.yaml\nreplicates: 1\nsamples:\n  batch: {id: B1, material: x04}\n"
        "matrix:\n  rest: [1 h]\n"
    )
    with pytest.raises(ValueError, match=r"has a xrd step; campaigns across stations run operator and electrochemical"):
        check_dispatchable(load_campaign(tmp_path / "x.yaml"), with_oven)
