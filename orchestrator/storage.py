"""Where runs go: an append-only journal on disk and a Tiled catalog.

Every document of every run is written, in order, to ``<data_dir>/journal/<run uid>.jsonl``
and flushed to disk (``fsync``) before the RunEngine moves on, so a crash loses nothing already
read. The same documents go to a Tiled catalog: an embedded one (SQLite) under ``data_dir``
by default, or a Tiled server given by URI. The writers are here; a run is read back as a
DataFrame by :mod:`orchestrator.run_frames` (``read_journal``, ``read_runs``: the export columns)
and interrupted runs are closed by :mod:`orchestrator.recovery` (``recover``); this module
re-exports both, so ``orchestrator.storage`` is the one place to import from.

Nothing is lost and nothing is written twice whatever kills the process:

* a torn last line (a crash mid-write, a full disk) is ignored by readers and cut off by
  :func:`repair_journal` (which ``recover`` runs first); a damaged line *before* the end is
  never skipped silently: reading the run raises :class:`JournalDamaged` naming the line;
* :func:`~orchestrator.recovery.recover` closes interrupted runs with the points their spool holds that the journal
  lacks, matched by (step, time, substep), so a point of a new step stamped with the same time
  as the last point of the previous one is kept, and running it again appends nothing; a run
  killed before its first page gets its points stream's descriptor rebuilt from the start
  document when the journal lacks it, and never takes the points of the steps another run of
  the same spool session and channel journalled;
* one writer: a live run holds a lock (``<data>/locks/<uid>.lock``, :mod:`filelock`); recovery
  leaves live runs alone; a campaign holds ``<data>/campaigns/<name>/lock`` while it runs;
* the embedded Tiled catalog is filled from the journal in the background when a run stops
  (:mod:`orchestrator.tiled_fill`: blocks of 100,000 points, idempotent), and after recovery for
  the recovered runs;
* exports are written to a temporary file and renamed into place
  (:func:`~orchestrator.run_frames.write_export`).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from orchestrator.journal import (  # noqa: F401  (re-exported: the journal's readers live there)
    JournalDamaged,
    RunIsLive,
    journal_documents,
    list_journal_runs,
    lock_path,
    repair_journal,
    run_is_live,
)
from orchestrator.journal import journal_path as _journal_path
from orchestrator.recovery import Recovery, recover, recover_interrupted_runs  # noqa: F401  (re-exported)
from orchestrator.run_frames import (  # noqa: F401  (re-exported: the readers live there)
    COLUMNS,
    OVEN_STREAMS,
    POINT_STREAM,
    frame_from_documents,
    raw_frame,
    read_journal,
    read_oven_record,
    read_raw_run,
    read_runs,
    stream_frame,
    to_export_frame,
    write_export,
)
from orchestrator.run_router import PerRun
from orchestrator.tiled_pages import page_writer


def default_data_dir() -> Path:
    return Path(os.environ.get("RELAXLAB_DATA", Path.home() / ".local" / "share" / "relaxlab"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__}")


@contextlib.contextmanager
def campaign_lock(data_dir: Path, campaign: str) -> Iterator[None]:
    """Hold ``<data>/campaigns/<name>/lock`` while a campaign runs: a second orchestrator on the
    same campaign (run or ``--resume``) is refused at once instead of driving the same cells."""
    folder = Path(data_dir) / "campaigns" / campaign
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / "lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        owner = (folder / "lock.pid").read_text().strip() if (folder / "lock.pid").exists() else "?"
        raise RunIsLive(
            f"campaign {campaign!r} is running in another process (pid {owner}) on data folder "
            f"{data_dir}: two orchestrators must not drive the same cells. Wait for it to end, or "
            "stop it, then use --resume"
        ) from None
    try:
        (folder / "lock.pid").write_text(str(os.getpid()))
        yield
    finally:
        lock.release()


class Journal:
    """Append-only JSON-lines journal, one file per run, fsynced per document.

    While a run is being written its lock (:func:`lock_path`) is held, so that recovery and
    other processes can tell a live run from an interrupted one.
    """

    def __init__(self, data_dir: Path, fsync: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.directory = self.data_dir / "journal"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._file: Any = None
        self._lock: FileLock | None = None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self.close()
            path = lock_path(self.data_dir, doc["uid"])
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(
                path, timeout=0, thread_local=False
            )  # released by whichever thread stops the run
            self._lock.acquire()
            self._file = open(self.directory / f"{doc['uid']}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if self._file is None:
            return
        self._file.write(json.dumps([name, doc], default=_jsonable, allow_nan=True) + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        if name == "stop":
            self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def path(self, uid: str) -> Path:
        return self.directory / f"{uid}.jsonl"


class TiledStore:
    """A Tiled catalog and the bluesky TiledWriter that fills it.

    ``uri=None`` opens (creating it once, see :func:`orchestrator.tiled_fill.open_embedded`) the
    embedded SQLite catalog under ``data_dir``; otherwise ``uri`` is a Tiled server
    (``http://host:port``; api key from ``TILED_API_KEY``). A :class:`~orchestrator.runner.Session`
    writes through this class only to a server; the embedded catalog is filled from the journal
    in the background (:mod:`orchestrator.tiled_fill`).
    """

    def __init__(self, data_dir: Path, uri: str | None = None, batch_points: int = 20_000) -> None:
        self.data_dir = Path(data_dir)
        if uri is None:
            from orchestrator.tiled_fill import open_embedded

            self.context, self.client = open_embedded(self.data_dir)
        else:
            self.context = None
            self.client = _server_client(uri)
        # Our documents are already in the current event-model schema and hold their numbers
        # inline: skip the normaliser (it re-validates every point of every page one event at a
        # time) and RunRouter's Filler (it unpacks and repacks every page), and append each
        # event page to the stream's table as columnar blocks (tiled_pages.page_writer).
        self.batch_points = batch_points
        self.writer = self.new_writer()

    def new_writer(self) -> Any:
        """A TiledWriter into this catalog (documents already in the current event-model schema)."""
        from bluesky.callbacks.tiled_writer import TiledWriter

        writer = TiledWriter(self.client, normalizer=None)
        writer._run_router = PerRun(lambda start: [page_writer(writer.client, self.batch_points)])  # type: ignore[assignment]
        return writer

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if self.context is None:  # a server: a run it does not take carries on (journal first)
            self._remote_hook()(name, doc)
        else:
            self.writer(name, doc)

    def _remote_hook(self) -> Any:
        hook = self.__dict__.get("_remote")
        if hook is None:
            from orchestrator.tiled_server import RemoteTiled

            hook = self._remote = RemoteTiled(lambda: self, self.data_dir)
        return hook

    def read_run(self, uid: str) -> tuple[dict[str, Any], pd.DataFrame]:
        if uid not in self.client:  # a unique prefix, as the journal's file names resolve it
            try:
                uid = _journal_path(self.data_dir, uid).stem
            except KeyError:
                pass
            if uid not in self.client:
                raise KeyError(f"no run {uid!r} in the Tiled catalog of {self.data_dir} (try `data recover`)")
        run = self.client[uid]
        start = dict(run.metadata["start"])
        if POINT_STREAM not in run:
            return start, to_export_frame(start, pd.DataFrame())
        stream = run[POINT_STREAM]
        frame = stream.read().to_dataframe().reset_index()
        # The stream's "time" coordinate is when the page was emitted; each point's own
        # (clock) timestamp is kept beside it as ts_<key>.
        frame["timestamp"] = stream["ts_voltage_V"].read() if "ts_voltage_V" in stream else frame["time"]
        return start, to_export_frame(start, frame)

    def close(self) -> None:
        if self.context is not None:
            self.context.close()


def _server_client(uri: str) -> Any:
    """A client of the Tiled server at ``uri`` (one clear error when it does not answer)."""
    from orchestrator.tiled_server import connect

    return connect(uri)


class Spool:
    """Every point the moment it is read, per channel, before it waits for its page.

    Lines are ``[step, time_s, voltage_V, current_A, capacity_mAh_g, temperature_C, substep]``
    in ``<data_dir>/spool/<session>/<channel>.jsonl``, flushed at once (and fsynced on the wall clock), so
    a crash between reading points and handing them to the run loses none:
    :func:`recover_interrupted_runs` appends them to the interrupted run's journal.
    """

    def __init__(self, data_dir: Path, fsync: bool = True) -> None:
        #: One folder per orchestrator session (channel names repeat across sessions); runs
        #: carry it as ``spool`` in their start document.
        self.session = uuid.uuid4().hex[:12]
        self.directory = Path(data_dir) / "spool" / self.session
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._files: dict[str, Any] = {}

    def __call__(self, channel: Any, step: int, points: list[Any]) -> None:
        f = self._files.get(channel.name)
        if f is None:
            path = self.directory / f"{channel.name}.jsonl"
            f = self._files[channel.name] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        f.write(
            "".join(
                f"[{step},{p.time_s!r},{p.voltage_V!r},{p.current_A!r},{p.capacity_mAh_g!r},"
                f"{_num(p.temperature_C)},{p.substep}]\n"
                for p in points
            )
        )
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def _num(x: float) -> str:
    return repr(x) if x == x else "NaN"  # JSON has no nan; Python's json reads NaN
