"""A station: a bluesky-queueserver RE Manager (own zmq ports, own Redis prefix) on the simulated
lab, writing to the shared Tiled server on PostgreSQL. A plan queued through
bluesky-queueserver-api runs relaxlab's protocol and its run equals the same protocol run in
one process; a station whose manager is killed mid-run keeps every point it read.

Needs bluesky-queueserver(-api), Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432;
skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("bluesky_queueserver")
pytest.importorskip("bluesky_queueserver_api")
redis = pytest.importorskip("redis")

from tests.test_tiled_server import _same_points, forget_station, read_served_run, serve_tiled, station_name  # noqa: E402

STEPS = [  # a charge to 4.5 V, a 2 h rest, a discharge to 2.5 V (as plain data, as queued)
    {"kind": "cc", "current_mA_g": 20.0, "cutoffs": {"voltage_V": 4.5}, "record_interval_s": 60.0},
    {"kind": "rest", "duration_s": 7200.0, "record_interval_s": 120.0},
    {"kind": "cc", "current_mA_g": -20.0, "cutoffs": {"voltage_V": 2.5}, "record_interval_s": 60.0},
]


@pytest.fixture(scope="module")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    yield from serve_tiled(tmp_path_factory)


@pytest.fixture(scope="module")
def redis_up() -> None:
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3).ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379: {exc}")


@pytest.fixture()
def station(redis_up: None, tiled_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from orchestrator.station import Station, StationConfig
    from orchestrator.tiled_server import free_port

    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)  # type: ignore[attr-defined]
    config = StationConfig(station_name("test"), "simulated", tmp_path / "station",
                           tiled=tiled_server.uri, control_port=free_port(), info_port=free_port())  # type: ignore[attr-defined]  # fmt: skip
    with Station(config) as st:
        api = st.api(timeout_s=120)
        api.environment_open()
        api.wait_for_idle(timeout=600)
        assert api.status()["worker_environment_exists"], config.directory.joinpath("manager.log").read_text()[-3000:]
        yield st, api
        api.queue_clear()
        api.history_clear()
        api.environment_close()
        api.wait_for_idle(timeout=120)
        api.close()
    forget_station(config.name)


def test_a_queued_protocol_runs_on_the_station_and_equals_the_one_process_run(
    station: tuple[object, object], tiled_server: object, tmp_path: Path
) -> None:
    from bluesky_queueserver_api import BPlan

    from drivers.techniques import technique_from_dict
    from orchestrator.lab import load_lab
    from orchestrator.runner import Session
    from orchestrator.storage import read_journal
    from protocols.plans import run_protocol

    st, api = station
    allowed = api.plans_allowed()["plans_allowed"]  # type: ignore[attr-defined]
    assert {"run_protocol", "relaxation_protocol", "rest_at_open_circuit"} <= set(allowed)
    assert api.devices_allowed()["devices_allowed"].keys() >= {"cell_1"}  # type: ignore[attr-defined]

    added = api.item_add(BPlan("run_protocol", "cell_1", STEPS, md={"cell": "cell-1", "sample": "s1"}))  # type: ignore[attr-defined]
    assert added["success"], added
    api.queue_start()  # type: ignore[attr-defined]
    api.wait_for_idle(timeout=600)  # type: ignore[attr-defined]
    (item,) = api.history_get()["items"]  # type: ignore[attr-defined]
    assert item["result"]["exit_status"] == "completed", item["result"]
    (uid,) = item["result"]["run_uids"]

    # the same steps in one process on the same simulated lab
    with Session(load_lab("simulated"), data_dir=tmp_path / "local", tiled=False) as s:
        (local_uid,) = s.run(run_protocol(s.channel(), [technique_from_dict(d) for d in STEPS]))
    _, local = read_journal(tmp_path / "local", local_uid)

    start, served = read_served_run(tmp_path / "reader", tiled_server, uid)
    _, journal = read_journal(st.config.data_dir, uid)  # type: ignore[attr-defined]
    assert start["station"] == st.config.name and start["cell"] == "cell-1"  # type: ignore[attr-defined]
    assert sorted(set(served["step_type"])) == ["cc", "rest"]
    _same_points(served, journal)  # the server holds what the station's journal holds
    _same_points(served, local)  # and it is what one process measures on the same lab


def test_a_plan_naming_a_device_the_station_lacks_is_refused_before_it_runs(station: tuple[object, object]) -> None:
    from bluesky_queueserver_api import BPlan

    _, api = station
    with pytest.raises(Exception, match="cell_9"):
        api.item_add(BPlan("run_protocol", "cell_9", STEPS))  # type: ignore[attr-defined]
    assert api.queue_get()["items"] == []  # type: ignore[attr-defined]
