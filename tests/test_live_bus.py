"""Live documents through Redis (orchestrator.live_bus): what a station's RunEngine emits reaches
the monitor of a lab of stations, in order, read incrementally. Needs Redis at 127.0.0.1:6379
(skipped otherwise); each test uses a stream of its own and deletes it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

redis = pytest.importorskip("redis")

ADDRESS = "127.0.0.1:6379"


@pytest.fixture
def station() -> Iterator[str]:
    from orchestrator.live_bus import redis_client, stream_key

    client = redis_client(ADDRESS)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        pytest.skip("no Redis at 127.0.0.1:6379")
    name = f"live-test-{secrets.token_hex(4)}"
    yield name
    client.delete(stream_key(name))
    client.close()


def _run(cell: str, points: int) -> list[tuple[str, dict]]:
    from event_model import compose_run

    run = compose_run(metadata={"cell": cell, "channel": "chA", "step_types": ["rest"], "station": "bench-live"})
    desc = run.compose_descriptor(name="primary", data_keys={k: {"source": "x", "dtype": "number", "shape": []}
                                                             for k in ("voltage_V", "current_A", "step")})  # fmt: skip
    docs = [("start", dict(run.start_doc)), ("descriptor", dict(desc.descriptor_doc))]
    for i in range(points):
        data = {"voltage_V": [3.0 + 0.01 * i], "current_A": [0.0], "step": [0]}
        docs.append(("event_page", {"descriptor": desc.descriptor_doc["uid"], "uid": [f"e{i}"], "seq_num": [i + 1],
                                    "time": [1000.0 + i], "data": data, "filled": {},
                                    "timestamps": {k: [1000.0 + i] for k in data}}))  # fmt: skip
    docs.append(("stop", dict(run.compose_stop())))
    return docs


def test_published_documents_reach_the_source_in_order_once(station: str) -> None:
    from orchestrator.live_bus import LivePublisher, LiveSource

    docs = _run("L1", 5)
    publisher = LivePublisher(ADDRESS, station)
    source = LiveSource(ADDRESS, [station])
    try:
        for name, doc in docs[:4]:
            publisher(name, doc)
        publisher.close()
        got = list(source.new_documents())
        uid = docs[0][1]["uid"]
        assert [(r, n) for r, n, _ in got] == [(uid, n) for n, _ in docs[:4]]
        assert got[3][2]["data"]["voltage_V"] == [3.01]
        assert list(source.new_documents()) == []  # read incrementally: nothing new
        later = LivePublisher(ADDRESS, station)
        later(*docs[1])  # a new publisher learns the run of each descriptor it sees
        for name, doc in docs[4:]:
            later(name, doc)
        later.close()
        assert [(r, n) for r, n, _ in source.new_documents()] == [(uid, n) for n, _ in docs[1:2] + docs[4:]]
    finally:
        source.close()


def test_the_monitor_over_live_streams_shows_every_point_of_a_cell(station: str) -> None:
    from orchestrator.live_bus import LivePublisher, LiveSource
    from orchestrator.monitor.model import Monitor

    docs = _run("L2", 7)
    publisher = LivePublisher(ADDRESS, station)
    for name, doc in docs[:-1]:
        publisher(name, doc)
    publisher.close()
    source = LiveSource(ADDRESS, [station])
    try:
        monitor = Monitor(source)
        (cell,) = [c for c in monitor.status()["cells"] if c["id"].startswith("L2@")]
        assert cell["station"] == "bench-live" and cell["status"] == "running"
        assert cell["points"] == 7 and cell["voltage_V"] == pytest.approx(3.06)
    finally:
        source.close()


def test_redis_down_is_one_warning_and_never_an_error() -> None:
    from orchestrator.live_bus import LivePublisher

    warned: list[str] = []
    publisher = LivePublisher("127.0.0.1:1", "nowhere", warn=warned.append)  # nothing listens on port 1
    for name, doc in _run("L3", 3):
        publisher(name, doc)
    publisher.close()
    assert len(warned) == 1 and "Redis not reached" in warned[0] and publisher.sent == 0


def test_relaxlab_monitor_redis_serves_the_stations_live_streams(station: str, tmp_path) -> None:  # noqa: ANN001
    import json
    import os
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from orchestrator.live_bus import LivePublisher
    from orchestrator.tiled_server import free_port

    cell = f"L4-{station}"  # the monitor serves every station on this Redis: find this test's cell by name
    publisher = LivePublisher(ADDRESS, station)
    for name, doc in _run(cell, 4):
        publisher(name, doc)
    publisher.close()
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "monitor", "--redis", ADDRESS, "--port", str(port),
                             "--data-dir", str(tmp_path), "--json"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)}, cwd=root)  # fmt: skip
    try:
        text = ""
        while not text.endswith("}\n"):  # the --json answer (indented, several lines)
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, "the monitor ended before saying where it serves"
            text += line
        said = json.loads(text)
        assert said["redis"] == ADDRESS
        for _ in range(100):  # the server answers within seconds of printing its address
            try:
                with urllib.request.urlopen(f"{said['url']}api/status", timeout=5) as reply:
                    status = json.loads(reply.read())
                break
            except OSError:
                assert proc.poll() is None, "the monitor ended"
                time.sleep(0.2)
        cells = [c for c in status["cells"] if c["id"].startswith(f"{cell}@")]
        assert len(cells) == 1 and cells[0]["points"] == 4 and cells[0]["status"] == "done"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
