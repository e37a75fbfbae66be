"""Fill the embedded Tiled catalog from the journal, in large blocks, off the run's path.

The journal is the durable record: every document is on disk (fsynced) before the RunEngine moves
on. The embedded Tiled catalog is a copy of it for clients that read Tiled. Writing Tiled while
the run goes costs the run (each append is a request through the Tiled app) and opening the
catalog costs every start (importing the Tiled server, SQLite, the app), so a run never opens it:

* when a run stops, :func:`request` starts ``python -m orchestrator.tiled_fill DATA_DIR`` in the
  background (at nice 10, behind the command that started it) unless a filler is already running
  (it holds ``tiled/fill.lock``);
* the filler copies every stopped run that is not yet in the catalog, appending each stream in
  blocks of up to :data:`BLOCK_POINTS` points, and marks it done (``tiled/filled/<uid>``) once the
  run's stop document is in Tiled;
* readers of Tiled (``data export --source tiled``, :meth:`Session.read` with
  ``source="tiled"``, ``data recover``) call :func:`fill` first: it waits for a running filler and
  copies what is still missing, in the calling process.

Nothing is lost or doubled whatever kills a filler: a run is marked done only after its stop
document is in the catalog; a run found in the catalog without its stop (a filler died half-way) is
deleted from the catalog and copied again from the journal, whole; a run found with its stop but
without the mark is only marked. Live runs (no stop yet) and interrupted runs wait: ``data recover``
closes interrupted runs in the journal, then they are filled like any other.

The catalog itself is created once (``tiled/catalog.initialized`` marks it, created under
``tiled/init.lock`` so that two first runs never both create it) and opened directly afterwards,
without the schema check of ``init_if_not_exists`` (a ``python -m tiled catalog init`` child
process each time).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from orchestrator.journal import journal_documents, journal_path, lock_is_held
from orchestrator.tiled_pages import page_writer

#: Points per append to a stream's table.
BLOCK_POINTS = 100_000
MARKER = "catalog.initialized"


def catalog_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "tiled"


def open_embedded(data_dir: Path, writer: bool = False) -> tuple[Any, Any]:
    """(context, client) of the embedded catalog under ``data_dir``, created on first use.

    ``writer``: a client for writing runs only (the filler's): its nodes are the generic
    containers and tables, not the clients other packages register for specs (bluesky's
    ``BlueskyRun``, whose import - xarray, dask - cost the filler about a second of CPU and
    which writing does not use); the catalog it writes is the same."""
    from tiled.catalog import from_uri as catalog_from_uri
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    root = catalog_dir(data_dir)
    (root / "data").mkdir(parents=True, exist_ok=True)
    marker = root / MARKER

    def adapter(create: bool) -> Any:
        return catalog_from_uri(
            f"sqlite:///{root / 'catalog.db'}",
            writable_storage=[f"file://{(root / 'data').resolve()}",
                              f"sqlite:///{(root / 'tables.sqlite').resolve()}"],  # fmt: skip
            init_if_not_exists=create,
        )

    if marker.exists():
        catalog = adapter(create=False)
    else:
        # Two first runs at once would both create the catalog's tables: one at a time.
        with FileLock(root / "init.lock", timeout=300):
            created = marker.exists()
            catalog = adapter(create=not created)
            if not created:
                marker.write_text(f"created {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    context = Context.from_app(build_app(catalog))
    return context, from_context(context, structure_clients=_FamilyClients() if writer else "numpy")


class _FamilyClients(Mapping[str, Any]):
    """Tiled's stock client of each structure family (and of the ``composite`` spec), without
    the spec clients that installed packages register through entry points."""

    def __init__(self) -> None:
        from tiled.client.container import DEFAULT_STRUCTURE_CLIENT_DISPATCH, Container

        Container.discover_clients_from_entrypoints()
        self._stock = DEFAULT_STRUCTURE_CLIENT_DISPATCH["numpy"]
        self._skip = set(Container.STRUCTURE_CLIENTS_FROM_ENTRYPOINTS or ())

    def __getitem__(self, key: str) -> Any:
        if key in self._skip:
            raise KeyError(key)
        return self._stock[key]

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._stock if key not in self._skip)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _stopped(path: Path) -> bool:
    """True when the journal's last line is a stop document (read from the end of the file)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            tail = f.read()
    except OSError:
        return False
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    return bool(lines) and lines[-1].startswith(b'["stop"') and tail.endswith(b"\n")


def pending(data_dir: Path, uids: Iterable[str] | None = None) -> list[str]:
    """Stopped runs of the journal that the catalog does not hold yet (oldest first)."""
    journal = Path(data_dir) / "journal"
    done = catalog_dir(data_dir) / "filled"
    wanted = set(uids) if uids is not None else None
    paths = sorted(journal.glob("*.jsonl"), key=lambda p: p.stat().st_mtime) if journal.is_dir() else []
    return [p.stem for p in paths
            if (wanted is None or p.stem in wanted) and not (done / p.stem).exists() and _stopped(p)]  # fmt: skip


def _scalar_stream(descriptor: dict[str, Any]) -> bool:
    """Tiled tables take scalars; a stream of arrays (XRD patterns) stays in the journal only."""
    return all(not key.get("shape") for key in descriptor.get("data_keys", {}).values())


def _blocks(docs: Iterator[tuple[str, dict[str, Any]]], block: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The documents with consecutive event pages of one stream joined into pages of up to
    ``block`` points, and streams of arrays left out."""
    dropped: set[str] = set()
    page: dict[str, Any] | None = None
    for name, doc in docs:
        if name == "descriptor" and not _scalar_stream(doc):
            dropped.add(doc["uid"])
            continue
        if name in ("event", "event_page") and doc.get("descriptor") in dropped:
            continue
        if name == "event_page" and page is not None and doc["descriptor"] == page["descriptor"] \
                and len(page["seq_num"]) < block and doc["data"].keys() == page["data"].keys():  # fmt: skip
            for key in ("seq_num", "time", "uid"):
                page[key] += doc[key]
            for key in ("data", "timestamps"):
                for column, values in doc[key].items():
                    page[key][column] += values
            continue
        if page is not None:
            yield "event_page", page
            page = None
        if name == "event_page":
            page = {"descriptor": doc["descriptor"], "seq_num": list(doc["seq_num"]), "time": list(doc["time"]),
                    "uid": list(doc["uid"]), "data": {k: list(v) for k, v in doc["data"].items()},
                    "timestamps": {k: list(v) for k, v in doc["timestamps"].items()},
                    "filled": doc.get("filled", {})}  # fmt: skip
            continue
        yield name, doc
    if page is not None:
        yield "event_page", page


def fill_run(client: Any, data_dir: Path, uid: str) -> int:
    """Copy one stopped run from its journal into the catalog; returns the points written (0 when
    the catalog already held the whole run). Marks it done."""
    done = catalog_dir(data_dir) / "filled"
    done.mkdir(parents=True, exist_ok=True)
    points = 0
    if uid in client:
        if "stop" in client[uid].metadata:
            (done / uid).touch()
            return 0
        client[uid].delete(recursive=True, external_only=False)  # a filler died half-way: again, whole
    writer = page_writer(client, BLOCK_POINTS)
    for name, doc in _blocks(journal_documents(journal_path(data_dir, uid)), BLOCK_POINTS):
        if name == "event_page":
            points += len(doc["seq_num"])
        writer(name, doc)
    (done / uid).touch()
    return points


def fill(data_dir: Path, uids: Iterable[str] | None = None, wait: bool = True) -> list[str]:
    """Copy the stopped runs the catalog lacks (all, or those of ``uids``) into it, in this
    process. With ``wait`` a running filler is waited for first; without, returns at once if one
    runs. Returns the runs copied (or found whole and marked)."""
    data_dir = Path(data_dir)
    wanted = list(uids) if uids is not None else None
    if not pending(data_dir, wanted) and catalog_dir(data_dir).joinpath(MARKER).exists():
        return []
    root = catalog_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / "fill.lock", timeout=-1 if wait else 0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return []
    filled: list[str] = []
    try:
        context, client = open_embedded(data_dir, writer=True)
        try:
            while todo := [u for u in pending(data_dir, wanted) if u not in filled]:
                for uid in todo:
                    fill_run(client, data_dir, uid)
                    filled.append(uid)
        finally:
            context.close()
    finally:
        lock.release()
    return filled


def filler_running(data_dir: Path) -> bool:
    """True while some process holds ``tiled/fill.lock``."""
    return lock_is_held(catalog_dir(data_dir) / "fill.lock")


def request(data_dir: Path) -> subprocess.Popen[bytes] | None:
    """Have the stopped runs copied into the catalog in the background: start a filler process
    unless one is running (it looks again for new runs before it exits). Returns the process."""
    root = catalog_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    if filler_running(data_dir):
        return None
    package_parent = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    with open(root / "fill.log", "ab") as log:
        return subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "orchestrator.tiled_fill", str(Path(data_dir).resolve())],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )


class FillOnStop:
    """A RunEngine subscriber: when a run stops (its stop document already in the journal,
    which is subscribed first), start the background filler."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        catalog_dir(self.data_dir).mkdir(parents=True, exist_ok=True)  # this data folder uses Tiled
        self.processes: list[subprocess.Popen[bytes]] = []

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "stop":
            with contextlib.suppress(OSError):
                proc = request(self.data_dir)
                if proc is not None:
                    self.processes.append(proc)


def main(argv: list[str] | None = None) -> int:
    from orchestrator.quiet import quiet_console

    quiet_console()
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # background work: the command that started it (a demo's plot, the next run) goes first
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m orchestrator.tiled_fill DATA_DIR", file=sys.stderr)
        return 2
    data_dir = Path(args[0])
    t0 = time.perf_counter()
    copied = fill(data_dir, wait=True)
    # A run that stopped while this filler held the lock saw it running and started none: look again.
    while more := fill(data_dir, wait=False):
        copied += more
    if copied:
        print(json.dumps({"filled": copied, "wall_s": round(time.perf_counter() - t0, 3),
                          "time": time.strftime("%Y-%m-%dT%H:%M:%S")}), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
