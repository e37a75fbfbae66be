"""A station's RE Manager killed mid-run loses no point: when it comes back, its startup closes
the interrupted run with every point the spool holds and gives the shared Tiled server the
whole run, as the station's journal has it.

Needs bluesky-queueserver(-api), Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432;
skipped otherwise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("bluesky_queueserver")
pytest.importorskip("bluesky_queueserver_api")
redis = pytest.importorskip("redis")

from tests.test_tiled_server import _same_points, forget_station, serve_tiled_for_stations, station_name  # noqa: E402


@pytest.fixture(scope="module")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    yield from serve_tiled_for_stations(tmp_path_factory)


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
    tiled_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bluesky_queueserver_api import BPlan

    from orchestrator.station import Station, StationConfig
    from orchestrator.storage import TiledStore, journal_documents, read_journal
    from orchestrator.tiled_server import free_port

    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)  # type: ignore[attr-defined]
    config = StationConfig(station_name("kill"), "simulated", tmp_path / "station",
                           tiled=tiled_server.uri, control_port=free_port(), info_port=free_port())  # type: ignore[attr-defined]  # fmt: skip
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
    store = TiledStore(tmp_path / "reader", tiled_server.uri)  # type: ignore[attr-defined]
    try:
        assert store.client[uid].metadata["stop"] is not None
        _, served = store.read_run(uid)
    finally:
        store.close()
    _same_points(served, frame)
    assert not list((config.data_dir / "unsynced").glob("*"))
