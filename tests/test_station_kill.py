"""A station's RE Manager killed mid-run loses no point: when it comes back, its startup closes
the interrupted run with every point the spool holds and gives the shared Tiled server the
whole run, as the station's journal has it.

Needs bluesky-queueserver(-api), Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432;
skipped otherwise.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bluesky_queueserver")
pytest.importorskip("bluesky_queueserver_api")
redis = pytest.importorskip("redis")

from tests.station_helpers import (  # noqa: E402
    Dispatch,
    dispatch_through_a_kill,
    portion_campaign,
    portion_protocol,
    station_config,
    write_stations,
)
from tests.test_tiled_server import _same_points, forget_station  # noqa: E402


def _journal_points(path: Path) -> int:
    points = 0
    for line in path.read_text().splitlines():
        try:
            name, doc = json.loads(line)
        except ValueError:
            continue  # a torn last line
        if name == "event_page":
            points += len(doc["seq_num"])
    return points


def test_a_station_killed_mid_run_loses_no_point(
    stations_tiled: object, tmp_path: Path
) -> None:
    from bluesky_queueserver_api import BPlan

    from orchestrator.station import Station
    from orchestrator.storage import TiledStore, journal_documents, read_journal

    config = station_config("kill", "simulated", tmp_path / "station", stations_tiled)
    station = Station(config).start()
    try:
        api = station.api(timeout_s=120)
        api.environment_open()
        api.wait_for_idle(timeout=600)
        # a 200 h rest recorded every 10 s: long enough to be caught running
        plan = BPlan("relaxation_protocol", "cell_1", rest_s=200 * 3600.0, rest_record_interval_s=10.0,
                     md={"cell": "cell-1"})  # fmt: skip
        api.item_add(plan)
        api.queue_start()
        journal = config.data_dir / "journal"
        # kill once the run has pages in the journal (waiting for that, not for a time)
        while not any(_journal_points(p) > 0 for p in journal.glob("*.jsonl")):
            time.sleep(0.1)
        api.close()
        station.kill()
        (path,) = journal.glob("*.jsonl")
        uid = path.stem
        assert not any(name == "stop" for name, _ in journal_documents(path))  # killed mid-run

        station = Station(config).start()  # back: its startup recovers the run
        api = station.api(timeout_s=120)
        api.environment_open()
        api.wait_for_idle(timeout=600)
        assert api.status()["worker_environment_exists"]
        api.environment_close()
        api.wait_for_idle(timeout=120)
        api.close()
    finally:
        station.stop()
        forget_station(config.name)

    start, frame = read_journal(config.data_dir, uid)
    # every point the station read (its spool) is in the run
    (spool,) = (config.data_dir / "spool" / start["spool"]).glob("*.jsonl")
    spooled = [json.loads(line) for line in spool.read_text().splitlines() if line.endswith("]")]
    assert len(frame) == len(spooled) > 0
    assert frame["voltage_V"].to_numpy() == pytest.approx([p[2] for p in spooled], rel=1e-12)
    # the run is closed, and the Tiled server holds all of it
    assert any(name == "stop" for name, _ in journal_documents(path))
    store = TiledStore(tmp_path / "reader", stations_tiled.uri)  # type: ignore[attr-defined]
    try:
        assert store.client[uid].metadata["stop"] is not None
        _, served = store.read_run(uid)
    finally:
        store.close()
    _same_points(served, frame)
    assert not list((config.data_dir / "unsynced").glob("*"))


# A rest long enough to be caught running, then a discharge; two cells on two EmStat4s.
REST_PROTOCOL = """\
name: rest-discharge
parameters: {rest: 2 h}
steps:
  - rest: {duration: $rest, record_interval: 60 s}
  - discharge: {current: 100 mA/g, until: {voltage: 1.85 V, time: 4 h}, record_interval: 60 s}
"""
REST_CAMPAIGN = """\
name: kill-reattach
protocol: rest-discharge.yaml
replicates: 2
cell_prefix: KR
samples:
  batch: {id: B1, material: x04}
  cell_mass: 5 mg
matrix:
  rest: [2 h]
"""
INTO_REST_S = 3600.0  # the station is killed this far into the rest (simulated time)
DEAD_S = 600.0  # the instruments run on alone this long (simulated time)


def test_a_station_killed_mid_campaign_re_attaches_its_running_steps(
    stations_tiled: object, tmp_path: Path
) -> None:
    """The station's instruments are served outside it (``relaxlab sim serve --stepped``, here
    in the test), its manager is killed an hour into the cells' rest, the EmStat4s run the rest
    on alone, the manager comes back: the dispatcher queues the cells again and the station
    re-attaches the rests where their stored points end (no new rest, no operator), so each
    cell's rest is one continuous record, nothing lost or doubled."""
    from benchmarks.drill_random_kills import ServedLab, lab_data
    from orchestrator.campaign_file import load_campaign
    from orchestrator.storage import read_journal, read_runs

    lab = lab_data()
    lab["instruments"] = {k: v for k, v in lab["instruments"].items() if k.startswith("es")}
    lab["cells"] = [c for c in lab["cells"] if c["instrument"].startswith("es")]
    served = ServedLab(tmp_path / "lab", lab)
    (tmp_path / "rest-discharge.yaml").write_text(REST_PROTOCOL)
    (tmp_path / "c.yaml").write_text(REST_CAMPAIGN)
    config = station_config("reattach", served.folder / "lab.toml", tmp_path / "station", stations_tiled,
                            sim_clock=served.folder / "clock.json")  # fmt: skip
    stations = write_stations(tmp_path / "stations.toml", {"bench": (config, ["ch-es1", "ch-es2"], [])})
    dispatch = Dispatch(load_campaign(tmp_path / "c.yaml"), stations, tmp_path / "dispatcher", stations_tiled,
                        poll_s=0.5, patience=600)  # fmt: skip
    kill_at_s = served.now() + INTO_REST_S
    # the EmStat4s go on with the rest while the station is dead, buffering what they measure
    result = dispatch_through_a_kill(served, config, dispatch, kill_at_s, DEAD_S)
    assert not result.failed, result.failed
    assert any("interrupted" in line for line in dispatch.said)
    for row in result.table().itertuples(index=False):  # type: ignore[attr-defined]
        assert row.status == "done"
        start, _ = read_journal(config.data_dir, row.run)
        killed, _ = read_journal(config.data_dir, start["resumes"])
        # the run re-attached the rest the killed one had running, on the same channel
        assert start["reattached_step"] is not None and start["channel"] == killed["channel"]
        _, frame = read_runs(config.data_dir, [killed["uid"], row.run])
        assert list(frame.groupby("step")["step_type"].first()) == ["rest", "cc"]
        rest = frame[frame["step_type"] == "rest"]["timestamp_s"].to_numpy()
        # points from both sides of the kill and from while the station was dead (the EmStat4's buffer)
        assert rest[0] < kill_at_s < kill_at_s + DEAD_S < rest[-1]
        assert ((rest > kill_at_s) & (rest < kill_at_s + DEAD_S)).any()
        # one rest, every 60 s from its start to its end: nothing lost, nothing doubled, not restarted
        assert list(np.diff(rest)) == pytest.approx([60.0] * (len(rest) - 1), abs=1e-6)
        assert 7200.0 - 60.0 - 1e-6 <= rest[-1] - rest[0] <= 7200.0


# A portion held 2 h at 140 C in the station's oven (logged every minute), then its cell rested
# and discharged.
HEAT_CAMPAIGN = portion_campaign("kill-mid-hold", "KH", 1, ["2 h"])
HOLD_S = 7200.0
OVEN_LOG_S = 60.0


def test_a_portion_interrupted_mid_hold_is_held_only_for_the_time_left(
    stations_tiled: object, tmp_path: Path
) -> None:
    """The oven and the EmStat4 are served outside the station; its manager is killed while
    the portion is in the hot oven, the oven holds its set-point while the station is dead, the
    manager comes back: the portion is queued again (``resumes``) and the station holds it only
    for the rest of its hold. The portion's record (both runs) is its true history: in the oven
    for the planned hold (within one log interval), and the cell is built from that record."""
    from benchmarks.drill_random_kills import ServedLab
    from orchestrator.campaign_file import load_campaign
    from orchestrator.run_frames import portion_record, read_oven_record
    from orchestrator.storage import read_journal
    from orchestrator.tiled_server import free_port

    lab = {"lab": {"name": "hold"},
           "instruments": {"es1": {"driver": "emstat4", "resource": f"socket://127.0.0.1:{free_port()}",
                                   "simulated": True, "poll_interval": "30 s"},
                           "oven1": {"driver": "eurotherm", "resource": f"socket://127.0.0.1:{free_port()}",
                                     "simulated": True, "address": 3}},
           "cells": [{"name": "ch-es1", "instrument": "es1", "active_mass": "5 mg"}]}  # fmt: skip
    served = ServedLab(tmp_path / "lab", lab)
    (tmp_path / "portion.yaml").write_text(portion_protocol(log_interval=f"{OVEN_LOG_S:g} s"))
    (tmp_path / "c.yaml").write_text(HEAT_CAMPAIGN)
    config = station_config("hold", served.folder / "lab.toml", tmp_path / "station", stations_tiled,
                            sim_clock=served.folder / "clock.json")  # fmt: skip
    stations = write_stations(tmp_path / "stations.toml", {"ovenside": (config, ["ch-es1"], ["oven1"])})
    dispatch = Dispatch(load_campaign(tmp_path / "c.yaml"), stations, tmp_path / "dispatcher", stations_tiled,
                        poll_s=0.5, patience=600)  # fmt: skip
    kill_at_s = served.now() + 3600.0  # after the oven's ramp, within the hold (checked below)
    # the oven holds its set-point while the station is dead, with nobody there
    result = dispatch_through_a_kill(served, config, dispatch, kill_at_s, DEAD_S)
    assert not result.failed, result.failed
    assert [p["status"] for p in result.portions.values()] == ["done"]  # type: ignore[attr-defined]
    portion_run = next(iter(result.portions.values()))["run"]  # type: ignore[attr-defined]
    start, _ = read_journal(config.data_dir, portion_run)
    killed, _ = read_journal(config.data_dir, start["resumes"])
    assert start["resumed_hold_started_s"] is not None  # the hold went on, not started again
    _, first = read_oven_record(config.data_dir, killed["uid"])
    moves = first[first["stream"] == "transfers"]
    assert list(moves["portion_location"]) == ["oven1"]  # killed with the portion in the oven
    record = portion_record(lambda u: read_oven_record(config.data_dir, u), portion_run)
    moves = record[record["stream"] == "transfers"]
    assert list(moves["portion_location"]) == ["oven1", "bench"]  # one load, one unload
    t_in, t_out = (float(t) for t in moves["timestamp_s"])
    assert t_in < kill_at_s < kill_at_s + DEAD_S < t_out
    assert abs((t_out - t_in) - HOLD_S) <= OVEN_LOG_S  # the planned hold, not more
    log = record[(record["stream"] == "oven") & (record["timestamp_s"] > t_in) & (record["timestamp_s"] < t_out)]
    assert (log["temperature_C"] - 140.0).abs().max() < 2.0  # at temperature all along, both runs
    for row in result.table().itertuples(index=False):  # type: ignore[attr-defined]
        assert row.status == "done"
        cell, frame = read_journal(config.data_dir, row.run)
        assert cell["portion_run"] == portion_run and len(frame) > 0
