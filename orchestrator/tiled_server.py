"""A shared Tiled server on PostgreSQL: the catalog every station writes its runs to.

:func:`tiled_serve_command` is the command a lab runs once (docs/multi-station.md)::

    tiled serve catalog postgresql+asyncpg://HOST:5432/DB --init \\
        --write DIR --write postgresql://HOST:5432/DB --api-key KEY --host 127.0.0.1 --port 8000

The catalog (nodes, metadata) and the tables of the runs' points both live in PostgreSQL
(``bluesky``'s TiledWriter *appends* tables, which Tiled only does in a SQL data store: with a
file directory alone every append is an HTTP 500); ``DIR`` holds array data. :class:`TiledServer`
starts and stops such a server as a child process (tests, ``relaxlab station serve`` on a
single machine). :func:`create_database` / :func:`drop_database` make and remove a database
for it (a fresh one per test).

:class:`RemoteTiled` is the writer a session uses for a server: every document goes to the
journal first (durable, on this PC); the server gets its copy after. When the server cannot be
reached (or refuses a document) the run carries on: the failure is reported once, the run is
listed as *not synced* (``<data>/unsynced/<uid>``) and ``relaxlab data sync --tiled URI``
copies it from the journal when the server is back.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from orchestrator.journal import journal_documents, journal_path, list_journal_runs, run_is_live
from orchestrator.station import ServerProcess

DEFAULT_ADMIN_DSN = "postgresql://127.0.0.1:5432/test"


class TiledUnavailable(ConnectionError):
    """The Tiled server could not be reached or refused a request."""


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1, outside the usual ephemeral range (20000-32767): a port
    written into a lab or stations file for a server that starts later must not be taken
    meanwhile by an outgoing connection (which the kernel gives ephemeral ports)."""
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(20000, 32767)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dsn_with_database(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0]
    return f"{base}/{database}"


def create_database(name: str, admin_dsn: str = DEFAULT_ADMIN_DSN) -> str:
    """Create PostgreSQL database ``name`` (through ``admin_dsn``'s server); its DSN."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name {name!r}: letters, digits and _ only")

    async def _create() -> None:
        import asyncpg

        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(_create())
    return _dsn_with_database(admin_dsn, name)


def drop_database(name: str, admin_dsn: str = DEFAULT_ADMIN_DSN) -> None:
    """Drop database ``name`` (closing the sessions still connected to it)."""

    async def _drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await conn.close()

    asyncio.run(_drop())


def tiled_serve_command(
    dsn: str, data_dir: Path, api_key: str, host: str = "127.0.0.1", port: int = 8000, init: bool = True
) -> list[str]:
    """The ``tiled serve catalog`` command line for a PostgreSQL catalog at ``dsn``
    (``postgresql://host:port/db``) with array files under ``data_dir``."""
    if not dsn.startswith("postgresql://"):
        raise ValueError(f"{dsn!r}: give the database as postgresql://HOST:PORT/DATABASE")
    catalog = "postgresql+asyncpg://" + dsn.removeprefix("postgresql://")
    command = [sys.executable, "-m", "tiled", "serve", "catalog", catalog]
    if init:
        command.append("--init")
    command += ["--write", str(Path(data_dir).resolve()), "--write", dsn]
    command += ["--api-key", api_key, "--host", host, "--port", str(port)]
    return command


def wait_healthy(uri: str, timeout_s: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once ``uri``/healthz answers 200; :class:`TiledUnavailable` after ``timeout_s``
    (wall clock: this waits for a server process, not for an instrument)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TiledUnavailable(f"the Tiled server exited with code {process.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise TiledUnavailable(f"no Tiled server answered at {uri} within {timeout_s:.0f} s ({last})")


class TiledServer(ServerProcess):
    """A ``tiled serve catalog`` child process on a PostgreSQL database.

    ``with TiledServer(dsn, directory) as server:`` starts it (``--init`` creates the catalog's
    tables the first time), waits for ``/healthz`` and stops it on exit. ``server.uri`` and
    ``server.api_key`` are what stations and clients need.
    """

    stop_timeout_s = 20.0

    def __init__(
        self, dsn: str, data_dir: Path, api_key: str | None = None, port: int | None = None,
        log: Path | None = None,
    ) -> None:  # fmt: skip
        self.dsn = dsn
        self.data_dir = Path(data_dir)
        self.api_key = api_key or secrets.token_hex(16)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = log or self.data_dir / "tiled-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90.0) -> TiledServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = tiled_serve_command(self.dsn, self.data_dir, self.api_key, port=self.port)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_healthy(self.uri, timeout_s, self.process)
        except TiledUnavailable:
            self.stop()
            raise
        return self


def _check_listening(uri: str, timeout_s: float = 5.0) -> None:
    """:class:`TiledUnavailable` at once when nothing accepts a connection at ``uri``'s host and
    port (refused, no such host, no answer within ``timeout_s``): the Tiled client would retry
    such a server for about half a minute before saying so."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise TiledUnavailable(f"{uri!r}: give the Tiled server as http://HOST:PORT")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise TiledUnavailable(f"cannot reach the Tiled server at {uri}: {exc}") from exc


def connect(uri: str, api_key: str | None = None) -> Any:
    """A Tiled client of the server at ``uri`` (api key: ``api_key`` or ``TILED_API_KEY``);
    :class:`TiledUnavailable` naming the URI when it does not answer."""
    from tiled.client import from_uri

    key = api_key or os.environ.get("TILED_API_KEY")
    _check_listening(uri)
    try:
        return from_uri(uri, api_key=key)
    except Exception as exc:  # httpx errors, 401, ...: one clear line
        raise TiledUnavailable(f"cannot reach the Tiled server at {uri}: {exc}") from exc


def unsynced_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "unsynced"


def unsynced_runs(data_dir: Path) -> list[str]:
    """Runs whose copy on a Tiled server is missing or incomplete (the journal has them)."""
    directory = unsynced_dir(data_dir)
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


class RemoteTiled:
    """The server's copy of each run, after the journal's: a document the server does not take
    (down, refusing) marks the run unsynced and the run carries on; later documents of that run
    are not sent (``relaxlab data sync`` rewrites it whole from the journal).

    ``open_store()`` returns the :class:`~orchestrator.storage.TiledStore` of the server; it is
    called at the first run and again at the next run after a failure, so runs started once the
    server is back go there directly.
    """

    def __init__(self, open_store: Any, data_dir: Path, warn: Any = None) -> None:
        self.open_store = open_store
        self.data_dir = Path(data_dir)
        self.warn = warn or (lambda message: print(message, file=sys.stderr))
        self.store: Any = None
        self._fresh_writer = False
        self._broken: set[str] = set()
        self._run_of: dict[str, str] = {}  # descriptor uid -> run uid

    def _run_uid(self, name: str, doc: dict[str, Any]) -> str | None:
        if name == "start":
            return str(doc["uid"])
        if name == "descriptor":
            self._run_of[doc["uid"]] = doc["run_start"]
            return str(doc["run_start"])
        if name == "stop":
            return str(doc["run_start"])
        if name in ("event", "event_page"):
            return self._run_of.get(doc["descriptor"])
        return None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        uid = self._run_uid(name, doc)
        if uid is None or uid in self._broken:
            return
        marker = unsynced_dir(self.data_dir) / uid
        try:
            if name == "start":
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text("")  # until its stop reaches the server
                if self.store is None:
                    self.store = self.open_store()
                elif self._fresh_writer:  # the writer of a failed run may hold its half-state
                    self.store.writer = self.store.new_writer()
                self._fresh_writer = False
            if self.store is None:
                raise TiledUnavailable("no Tiled server connection")
            self.store.writer(name, doc)
        except Exception as exc:  # the server is down or refused: the journal has it
            self._broken.add(uid)
            self._fresh_writer = True
            self.warn(
                f"Tiled server: run {uid[:8]} not stored there ({type(exc).__name__}: {exc}); "
                "its points are kept in the local journal - `relaxlab data sync` copies it when the "
                "server is back"
            )
            return
        if name == "stop":
            marker.unlink(missing_ok=True)


def sync_runs(store: Any, data_dir: Path, uids: list[str] | None = None) -> dict[str, str]:
    """Copy runs from the journal of ``data_dir`` into ``store`` (a TiledStore on a server).

    ``uids=None``: the unsynced runs and every journal run the server lacks. A run the server
    holds whole (with its stop document) is left alone; one it holds in part is rewritten from
    the journal. Returns ``{uid: "copied" | "rewritten" | "present" | "failed: <why>"}`` (a run
    that fails stays listed as unsynced; the others are still copied).
    """
    runs = [r["uid"] for r in list_journal_runs(data_dir)] if uids is None else uids
    pending = set(unsynced_runs(data_dir))
    out: dict[str, str] = {}
    for uid in runs:
        if run_is_live(data_dir, uid):
            continue  # its session still writes it
        present = uid in store.client
        whole = present and uid not in pending and store.client[uid].metadata.get("stop") is not None
        if whole:
            out[uid] = "present"
            continue
        try:
            rebuild_in_tiled(store, data_dir, uid)
        except Exception as exc:  # this run stays unsynced; the others are copied
            out[uid] = f"failed: {type(exc).__name__}: {exc}"
            continue
        (unsynced_dir(data_dir) / uid).unlink(missing_ok=True)
        out[uid] = "rewritten" if present else "copied"
    return out


def rebuild_in_tiled(store: Any, data_dir: Path, uid: str) -> None:
    """Make the Tiled copy of run ``uid`` match its journal: drop what Tiled holds of it (a
    crash leaves it without its last pages and its stop) and write the journal's documents
    (``store`` is a :class:`~orchestrator.storage.TiledStore`)."""
    if uid in store.client:
        store.client[uid].delete(recursive=True, external_only=False)
    writer = store.new_writer()
    for name, doc in journal_documents(journal_path(data_dir, uid)):
        writer(name, doc)
