"""Shared fixtures: one paper-protocol run on the simulated lab, reused by several tests; the
station tests' shared Tiled server."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def paper_run(tmp_path_factory: pytest.TempPathFactory):
    """The paper's protocol (7 mg, 20 mA/g to 4.8 V, 24 h rest, 20 mA/g to 1.85 V), stored in
    the journal and an embedded Tiled catalog. Returns (session, uid, start document, frame, docs)."""
    from orchestrator.lab import load_lab
    from orchestrator.runner import Session
    from protocols.plans import relaxation_protocol

    data_dir = tmp_path_factory.mktemp("paper")
    session = Session(load_lab("simulated"), data_dir=data_dir, tiled=True)
    docs: list[tuple[str, dict]] = []
    session.subscribe(lambda name, doc: docs.append((name, doc)))
    (uid,) = session.run(relaxation_protocol(session.channel(), md={"sample": "s1", "cell": "cell-1"}))
    start, frame = session.read(uid)
    yield session, uid, start, frame, docs
    session.close()


@pytest.fixture(scope="module")
def _stations_tiled_server(tmp_path_factory: pytest.TempPathFactory):
    """One shared Tiled server (fresh PostgreSQL database) per module of station tests; skips
    without PostgreSQL or Redis."""
    from tests.test_tiled_server import serve_tiled_for_stations

    yield from serve_tiled_for_stations(tmp_path_factory)


@pytest.fixture()
def stations_tiled(_stations_tiled_server, monkeypatch: pytest.MonkeyPatch):
    """The station tests' shared Tiled server (``.uri``, ``.api_key``), its API key in
    ``TILED_API_KEY`` for the test (helpers in ``tests/station_helpers.py``)."""
    monkeypatch.setenv("TILED_API_KEY", _stations_tiled_server.api_key)
    return _stations_tiled_server
