"""The shared Tiled server on PostgreSQL: runs written to it read back as the journal has them,
a server that is down costs no point (the journal keeps them, `data sync` copies them later).

Needs PostgreSQL at 127.0.0.1:5432 (database `test`, trust) and asyncpg; skipped otherwise. Each
module gets its own fresh database, dropped at the end.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _postgres_or_skip() -> None:
    pytest.importorskip("asyncpg")
    import asyncio

    import asyncpg

    async def ping() -> None:
        conn = await asyncpg.connect("postgresql://127.0.0.1:5432/test", timeout=5)
        await conn.close()

    try:
        asyncio.run(ping())
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")


@pytest.fixture(scope="module")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    yield from serve_tiled(tmp_path_factory)


def serve_tiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A `tiled serve catalog` process on a fresh PostgreSQL database (dropped afterwards)."""
    _postgres_or_skip()
    from orchestrator.tiled_server import TiledServer, create_database, drop_database

    name = f"relaxlab_test_{secrets.token_hex(6)}"
    dsn = create_database(name)
    try:
        with TiledServer(dsn, tmp_path_factory.mktemp("tiled-server")) as server:
            yield server
    finally:
        drop_database(name)


def serve_tiled_for_stations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """:func:`serve_tiled` for tests whose stations also need the shared Redis (skip without it)."""
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3).ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379: {exc}")
    yield from serve_tiled(tmp_path_factory)


def station_name(kind: str) -> str:
    """A station name of its own for each test (its Redis prefix must not meet an earlier one)."""
    return f"{kind}-{secrets.token_hex(4)}"


def forget_station(name: str) -> None:
    """Delete a test station's queue and history from the shared Redis."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"relaxlab-{name}_*")) + [f"relaxlab-live:{name}"]
    if keys:
        client.delete(*keys)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=600)  # fmt: skip


def _short_run(data_dir: Path, **session: object) -> str:
    from drivers.techniques import ConstantCurrent, Cutoffs, Rest
    from orchestrator.lab import load_lab
    from orchestrator.runner import Session
    from protocols.plans import run_protocol

    steps = [
        ConstantCurrent(current_mA_g=20.0, cutoffs=Cutoffs(voltage_V=4.5), record_interval_s=60.0),
        Rest(duration_s=2 * 3600.0, record_interval_s=120.0),
    ]
    with Session(load_lab("simulated"), data_dir=data_dir, **session) as s:  # type: ignore[arg-type]
        (uid,) = s.run(run_protocol(s.channel(), steps, md={"cell": "cell-1", "sample": "s1"}))
    return uid


def read_served_run(folder: Path, tiled_server: object, uid: str) -> tuple[dict, pd.DataFrame]:
    """Run ``uid`` (start document, frame) as another PC reads it from the shared server, with
    ``folder`` as its (empty) data folder."""
    from orchestrator.storage import TiledStore

    store = TiledStore(folder, tiled_server.uri)  # type: ignore[attr-defined]
    try:
        return store.read_run(uid)
    finally:
        store.close()


def _same_points(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b) > 10
    for column in ("time_s", "voltage_V", "current_A", "capacity_mAh_g", "step"):
        assert a[column].to_numpy() == pytest.approx(b[column].to_numpy(), rel=1e-12, abs=1e-12), column


def test_a_run_written_to_the_server_reads_back_as_the_journal_has_it(
    tiled_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.storage import read_journal
    from orchestrator.tiled_server import unsynced_runs

    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)  # type: ignore[attr-defined]
    uid = _short_run(tmp_path, tiled=True, tiled_uri=tiled_server.uri)  # type: ignore[attr-defined]
    assert unsynced_runs(tmp_path) == []
    # another PC (another data folder, nothing local) reads it from the server
    start, served = read_served_run(tmp_path / "elsewhere", tiled_server, uid)
    _, journal = read_journal(tmp_path, uid)
    _same_points(served, journal)
    assert start["cell"] == "cell-1"
    # and `relaxlab data export --tiled` exports it from the server
    out = tmp_path / "x.csv"
    proc = _cli("data", "export", uid, "--tiled", tiled_server.uri, "--out", str(out),  # type: ignore[attr-defined]
                "--data-dir", str(tmp_path / "elsewhere"), env={"TILED_API_KEY": tiled_server.api_key})  # type: ignore[attr-defined]  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _same_points(pd.read_csv(out), journal)


def test_a_server_that_is_down_loses_nothing_and_data_sync_copies_the_run_later(
    tiled_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.storage import TiledStore, read_journal
    from orchestrator.tiled_server import RemoteTiled, free_port, unsynced_runs

    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)  # type: ignore[attr-defined]
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    warnings: list[str] = []
    remote = RemoteTiled(lambda: TiledStore(tmp_path, down), tmp_path, warn=warnings.append)

    from drivers.techniques import ConstantCurrent, Cutoffs
    from orchestrator.lab import load_lab
    from orchestrator.runner import Session
    from protocols.plans import run_protocol

    with Session(load_lab("simulated"), data_dir=tmp_path, tiled=False) as s:
        s.subscribe(remote)
        (uid,) = s.run(run_protocol(s.channel(), [ConstantCurrent(current_mA_g=20.0, cutoffs=Cutoffs(voltage_V=4.5),
                                                                   record_interval_s=60.0)]))  # fmt: skip
    _, journal = read_journal(tmp_path, uid)
    assert len(journal) > 10  # the run went on to its cut-off
    assert unsynced_runs(tmp_path) == [uid]
    assert len(warnings) == 1 and "data sync" in warnings[0]

    proc = _cli("data", "sync", "--tiled", tiled_server.uri, "--data-dir", str(tmp_path), "--json")  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {uid: "copied"}
    assert unsynced_runs(tmp_path) == []
    _, served = read_served_run(tmp_path / "elsewhere", tiled_server, uid)
    _same_points(served, journal)
    # a second sync finds it there and copies nothing
    again = _cli("data", "sync", "--tiled", tiled_server.uri, "--data-dir", str(tmp_path), "--json")  # type: ignore[attr-defined]
    assert json.loads(again.stdout) == {uid: "present"}


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    from orchestrator.tiled_server import free_port

    down = f"http://127.0.0.1:{free_port()}"
    proc = _cli("data", "sync", "--tiled", down, "--data-dir", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: cannot reach the Tiled server at {down}")
