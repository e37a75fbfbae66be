"""Where runs go: an append-only journal on disk and a Tiled catalog.

Every document of every run is written, in order, to ``<data_dir>/journal/<run uid>.jsonl``
and flushed to disk (``fsync``) before the RunEngine moves on, so a crash loses nothing already
read. The same documents go to a Tiled catalog: an embedded one (SQLite) under ``data_dir``
by default, or a Tiled server given by URI. :func:`read_run` returns a run as a DataFrame
with the export columns (``time_s``, ``voltage_V``, ``current_A``, ``specific_current_mA_g``,
``capacity_mAh_g``, ``step``, ``step_type``, ``temperature_C``, ``cycle``, ``direction``, ``substep``).

Nothing is lost and nothing is written twice whatever kills the process:

* a torn last line (a crash mid-write, a full disk) is ignored by readers and cut off by
  :func:`repair_journal` (which :func:`recover` runs first); a damaged line *before* the end is
  never skipped silently: reading the run raises :class:`JournalDamaged` naming the line;
* :func:`recover` closes interrupted runs with the points their spool holds that the journal
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
* exports are written to a temporary file and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from event_model import RunRouter
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
from orchestrator.journal import parse_line as _parse_line
from orchestrator.tiled_pages import page_writer

COLUMNS = [
    "time_s",
    "voltage_V",
    "current_A",
    "specific_current_mA_g",
    "capacity_mAh_g",
    "step",
    "step_type",
    "temperature_C",
    "cycle",
    "direction",
    "substep",
    "timestamp_s",
]
POINT_STREAM = "primary"


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


def frame_from_documents(docs: Iterator[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], pd.DataFrame]:
    """(start document, points DataFrame) from a run's documents."""
    start, frame = raw_frame(docs)
    return start, to_export_frame(start, frame)


def raw_frame(docs: Iterator[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], pd.DataFrame]:
    """(start document, the points stream's columns as recorded, plus ``timestamp``)."""
    start: dict[str, Any] = {}
    streams: dict[str, str] = {}
    chunks: list[pd.DataFrame] = []
    for name, doc in docs:
        if name == "start":
            start = doc
        elif name == "descriptor":
            streams[doc["uid"]] = doc.get("name", "")
        elif name == "event_page" and streams.get(doc["descriptor"]) == POINT_STREAM:
            chunk = pd.DataFrame(doc["data"])
            chunk["timestamp"] = doc["timestamps"][next(iter(doc["data"]))]
            chunks.append(chunk)
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    return start, frame


def to_export_frame(start: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """Normalise raw stream columns to the export columns."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS})
    origin = start.get("clock_start_s", float(frame["timestamp"].iloc[0]))
    out = pd.DataFrame({"time_s": frame["timestamp"].to_numpy(dtype=float) - origin})
    for col in ("voltage_V", "current_A", "specific_current_mA_g", "capacity_mAh_g"):
        out[col] = frame[col].to_numpy(dtype=float)
    # A channel numbers the steps it ran; within a run they are numbered from 0 in order.
    out["step"] = pd.factorize(frame["step"].to_numpy(dtype=int))[0]
    out["temperature_C"] = frame["temperature_C"].to_numpy(dtype=float)
    out["substep"] = frame["substep"].to_numpy(dtype=int) if "substep" in frame else 0
    out["step_type"] = _step_types(start, out["step"].to_numpy(), out["substep"].to_numpy())
    out["timestamp_s"] = frame["timestamp"].to_numpy(dtype=float)  # absolute, to join other data
    return _with_cycles(start, out)[COLUMNS]


def _step_types(start: dict[str, Any], step: np.ndarray, substep: np.ndarray) -> list[str]:
    """Each point's technique; a loop's points get the kind of the loop step they ran (its
    sub-steps run in order, ``count`` times, one sub-step number each)."""
    types = list(start.get("step_types", []))
    steps = start.get("steps") or []
    codes, pairs = pd.factorize(pd.MultiIndex.from_arrays([step, substep]))
    kinds = []
    for s, sub in pairs:
        kind = types[s] if 0 <= s < len(types) else ""
        if kind == "loop" and len(steps) == len(types) and steps[s].get("steps"):
            body = steps[s]["steps"]
            kind = str(body[sub % len(body)].get("kind", kind))
        kinds.append(kind)
    return list(np.asarray(kinds, dtype=object)[codes]) if kinds else []


def _with_cycles(start: dict[str, Any], out: pd.DataFrame) -> pd.DataFrame:
    """``direction`` (charge/discharge/rest) and ``cycle`` from the run's analysis."""
    from analysis.steps import CYCLE, DIRECTION, annotate

    a = annotate(out, start.get("active_mass_g"))
    return out.assign(direction=a[DIRECTION].to_numpy(), cycle=a[CYCLE].to_numpy())


def read_journal(data_dir: Path, uid: str) -> tuple[dict[str, Any], pd.DataFrame]:
    return frame_from_documents(journal_documents(_journal_path(data_dir, uid)))


def read_raw_run(data_dir: Path, uid: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """A run's start document and its points as recorded (the channel's step numbers kept)."""
    return raw_frame(journal_documents(_journal_path(data_dir, uid)))


def stream_frame(
    docs: Iterator[tuple[str, dict[str, Any]]], streams: tuple[str, ...]
) -> tuple[dict[str, Any], pd.DataFrame]:
    """(start document, the events of ``streams`` as one frame sorted by time).

    Columns: ``timestamp_s`` (clock time of the reading), ``stream``, and every data key with
    the device-name prefix dropped (``oven1_temperature`` -> ``temperature``).
    """
    start: dict[str, Any] = {}
    names: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    chunks: list[pd.DataFrame] = []
    for name, doc in docs:
        if name == "start":
            start = doc
        elif name == "descriptor":
            names[doc["uid"]] = doc.get("name", "")
            devices = list(doc.get("object_keys", {}))
            prefixes[doc["uid"]] = f"{devices[0]}_" if len(devices) == 1 else ""
        elif name in ("event", "event_page") and names.get(doc["descriptor"]) in streams:
            page = doc if name == "event_page" else {k: {c: [v] for c, v in doc[k].items()}
                                                     for k in ("data", "timestamps")}  # fmt: skip
            prefix = prefixes[doc["descriptor"]]
            data = {k.removeprefix(prefix) if prefix and k != prefix.rstrip("_") else k: v
                    for k, v in page["data"].items()}  # fmt: skip
            chunk = pd.DataFrame(data)
            chunk.insert(0, "stream", names[doc["descriptor"]])
            chunk.insert(0, "timestamp_s", page["timestamps"][next(iter(page["data"]))])
            chunks.append(chunk)
    if not chunks:
        return start, pd.DataFrame(columns=["timestamp_s", "stream"])
    frame = pd.concat(chunks, ignore_index=True).sort_values("timestamp_s", kind="stable")
    return start, frame.reset_index(drop=True)


#: Streams of a heated powder portion's run (its thermal history).
OVEN_STREAMS = ("oven", "transfers")


def read_oven_record(data_dir: Path, uid: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """A portion run's oven log and transfers: ``timestamp_s``, ``time_s`` (from its first
    reading), ``stream``, ``temperature_C``, ``working_setpoint_C``, ``output_power_pct``,
    ``portion_location`` (where the portion went, on the transfer rows)."""
    start, frame = stream_frame(journal_documents(_journal_path(data_dir, uid)), OVEN_STREAMS)
    frame = frame.rename(columns={"temperature": "temperature_C", "working_setpoint": "working_setpoint_C",
                                  "output_power": "output_power_pct"})  # fmt: skip
    if len(frame):
        frame.insert(1, "time_s", frame["timestamp_s"] - float(frame["timestamp_s"].iloc[0]))
    return start, frame


def read_runs(data_dir: Path, uids: list[str]) -> tuple[dict[str, Any], pd.DataFrame]:
    """One cell's runs in order (a run and the runs that resumed it) as one export frame.

    A step re-attached by a later run (``reattached_step`` in its start document) continues
    the step of the run before it; every other step is a step of its own. Returns the last
    run's start document, with ``step_types`` for the whole frame.
    """
    frames: list[pd.DataFrame] = []
    types: list[str] = []
    start: dict[str, Any] = {}
    last_step: int | None = None  # the channel's number for the last step with points so far
    for uid in uids:
        start, frame = read_raw_run(data_dir, uid)
        if frame.empty:
            continue
        raw = frame["step"].to_numpy(dtype=int)
        codes = pd.factorize(raw)[0]
        reached = list(start.get("step_types", []))[: int(codes.max()) + 1]  # steps the run got to
        joined = last_step is not None and start.get("reattached_step") == last_step == raw[0]
        offset = len(types) - 1 if joined else len(types)
        types += reached[1:] if joined else reached
        frames.append(frame.assign(step=codes + offset))
        last_step = int(raw[-1])
    if not frames:
        return start, to_export_frame(start, pd.DataFrame())
    combined = pd.concat(frames, ignore_index=True)
    origin = frames[0]["timestamp"].iloc[0]
    return start, to_export_frame({**start, "step_types": types, "clock_start_s": origin}, combined)


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
        # Our documents are already in the current event-model schema: skip the normaliser,
        # which re-validates every point of every page one event at a time, and append each
        # event page to the stream's table as one columnar block (_PageWriter).
        self.batch_points = batch_points
        self.writer = self.new_writer()

    def new_writer(self) -> Any:
        """A TiledWriter into this catalog (documents already in the current event-model schema)."""
        from bluesky.callbacks.tiled_writer import TiledWriter

        writer = TiledWriter(self.client, normalizer=None)
        writer._run_router = RunRouter(
            [lambda name, doc: ([page_writer(writer.client, self.batch_points)], [])]
        )
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


@dataclass
class Recovery:
    """What :func:`recover` did: points recovered per closed run, runs left alone because they
    are live, damaged runs (uid: message), torn tails cut off and runs rebuilt in Tiled."""

    recovered: dict[str, int] = field(default_factory=dict)
    live: list[str] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)
    repaired: dict[str, str] = field(default_factory=dict)
    tiled: list[str] = field(default_factory=list)


def _point_key(step: Any, time_s: Any, substep: Any) -> tuple[int, float, int]:
    return int(step), float(time_s), int(substep)


def recover(data_dir: Path, tiled: bool = True) -> Recovery:
    """Close every run that has a start and no stop and that no live process holds.

    A torn last line is cut off first. The points the run's channel spool holds and its
    journal lacks (matched by step, time and substep) are appended as one event page, then a
    stop document with ``exit_status = "abort"``. Idempotent: a second call finds every run
    closed, and one killed half-way is finished by the next. With ``tiled`` (and an embedded
    catalog under ``data_dir``) the recovered runs are rebuilt in Tiled from their journals.
    """
    from event_model import DocumentNames, schema_validators

    data_dir = Path(data_dir)
    report = Recovery()
    for path in sorted((data_dir / "journal").glob("*.jsonl")):
        uid = path.stem
        if run_is_live(data_dir, uid):
            report.live.append(uid)
            continue
        lock = FileLock(lock_path(data_dir, uid), timeout=0)
        lock_path(data_dir, uid).parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire()  # nobody starts writing it while we do
        except Timeout:
            report.live.append(uid)
            continue
        try:
            fixed = repair_journal(path)
            if fixed:
                report.repaired[uid] = fixed
            try:
                docs = list(journal_documents(path))
            except JournalDamaged as exc:
                report.damaged[uid] = str(exc)
                continue
            if not docs or docs[0][0] != "start" or any(name == "stop" for name, _ in docs):
                continue
            report.recovered[docs[0][1]["uid"]] = _close_run(
                data_dir, path, docs, DocumentNames, schema_validators
            )
        finally:
            lock.release()
    if tiled and report.recovered and (data_dir / "tiled").is_dir():
        from orchestrator.tiled_fill import fill

        # a partial copy (the run died while being filled) is deleted and copied again, whole
        copied = set(fill(data_dir, list(report.recovered)))
        report.tiled = [uid for uid in report.recovered if uid in copied]
    return report


def _run_channel(start: dict[str, Any], points_desc: dict[str, Any] | None) -> str | None:
    """The channel a run's points came from: its start document's ``channel``, else the one
    device of its points stream's descriptor."""
    if start.get("channel"):
        return str(start["channel"])
    devices = list((points_desc or {}).get("object_keys", {}))
    return devices[0] if len(devices) == 1 else None


def _steps_of_other_runs(data_dir: Path, path: Path, start: dict[str, Any], channel: str) -> set[int]:
    """The step numbers other runs of the same spool session and channel have journalled.

    A channel numbers its steps in order within a session, so a step belongs to one run: the
    spool's points of these steps are never this run's (e.g. the last point of the run before,
    stamped with the very time this run started)."""
    steps: set[int] = set()
    for other in (Path(data_dir) / "journal").glob("*.jsonl"):
        if other == path:
            continue
        try:
            with open(other, encoding="utf-8", errors="replace") as f:
                name, first = _parse_line(f.readline())
        except (OSError, ValueError):
            continue
        if name != "start" or first.get("spool") != start.get("spool"):
            continue
        descs: dict[str, dict[str, Any]] = {}
        try:
            for name, doc in journal_documents(other):
                if name == "descriptor" and doc.get("name") == POINT_STREAM:
                    descs[doc["uid"]] = doc
                elif (
                    name == "event_page"
                    and doc.get("descriptor") in descs
                    and _run_channel(first, descs[doc["descriptor"]]) == channel
                ):
                    steps.update(int(s) for s in doc["data"].get("step", []))
        except JournalDamaged:
            pass  # what was read before the damage still counts
    return steps


def _rebuilt_descriptor(start: dict[str, Any], channel: str) -> dict[str, Any]:
    """The points stream's descriptor of a run whose journal lacks it (its line torn by the
    crash and cut off, or never on a disk that lost power), rebuilt from the start document as
    the channel describes its points (:data:`drivers.device.POINT_KEYS`); its uid follows from
    the run's, so a recover killed after writing it and run again writes the same one."""
    from drivers.device import POINT_KEYS

    instrument = str(start.get("instrument", ""))
    data_keys: dict[str, dict[str, Any]] = {
        key: {"source": f"{instrument}:{channel}:{key}", "dtype": "integer" if key in ("step", "substep") else "number",
              "shape": [], "units": units, "precision": 6, "object_name": channel}
        for key, (units, _) in POINT_KEYS.items()
    }  # fmt: skip
    config: dict[str, Any] = {}
    if start.get("active_mass_g") is not None:
        config[f"{channel}_active_mass_g"] = float(start["active_mass_g"])
    if instrument:
        config[f"{channel}_instrument"] = instrument
    t = float(start["time"])
    return {
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"relaxlab:{start['uid']}:{POINT_STREAM}")),
        "run_start": start["uid"], "time": t, "name": POINT_STREAM, "data_keys": data_keys,
        "object_keys": {channel: list(data_keys)},
        "configuration": {channel: {
            "data": config, "timestamps": dict.fromkeys(config, t),
            "data_keys": {k: {"source": f"{instrument}:{k}",
                              "dtype": "number" if isinstance(v, float) else "string", "shape": []}
                          for k, v in config.items()},
        }},
    }  # fmt: skip


def _close_run(
    data_dir: Path, path: Path, docs: list[tuple[str, dict[str, Any]]], names: Any, validators: Any
) -> int:
    start = docs[0][1]
    descriptors = {d["uid"]: d for name, d in docs if name == "descriptor"}
    points_desc = next((d for d in descriptors.values() if d.get("name") == POINT_STREAM), None)
    points_uid = points_desc["uid"] if points_desc is not None else None
    pages = [d for name, d in docs if name == "event_page" and d["descriptor"] == points_uid]
    new_points: list[list[Any]] = []
    channel = _run_channel(start, points_desc)
    spool = data_dir / "spool" / str(start.get("spool")) / f"{channel}.jsonl"
    if channel and start.get("spool") and spool.exists():
        others = _steps_of_other_runs(data_dir, path, start, channel)
        stored = {
            _point_key(step, t, sub)
            for page in pages
            for step, t, sub in zip(page["data"]["step"], page["timestamps"]["voltage_V"],
                                    page["data"].get("substep", [0] * len(page["seq_num"])), strict=True)
        }  # fmt: skip
        steps = {key[0] for key in stored}
        first_step = min(steps) if steps else None
        t0 = float(start.get("clock_start_s", -np.inf))
        for line in spool.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
                key = _point_key(row[0], row[1], row[6])
            except (ValueError, TypeError, IndexError):
                continue  # a torn line (the spool's last, after a crash)
            # this run's points: its steps on this channel (or, before its first page, since it began)
            mine = key[0] >= first_step if first_step is not None else key[1] >= t0
            if mine and key not in stored and key[0] not in others:
                stored.add(key)
                new_points.append(row)
    n_before = sum(len(p["seq_num"]) for p in pages)
    rebuilt = ""
    with open(path, "a", encoding="utf-8") as f:
        if new_points and points_desc is None and channel:
            # killed before the stream's first page: its descriptor was never journalled
            points_desc = _rebuilt_descriptor(start, channel)
            validators[names.descriptor].validate(points_desc)
            f.write(json.dumps(["descriptor", points_desc]) + "\n")
            f.flush()
            os.fsync(f.fileno())
            rebuilt = " (their stream's descriptor rebuilt from the start document)"
        if new_points and points_desc is not None:
            mass = float(start.get("active_mass_g") or 1.0)
            times = [r[1] for r in new_points]
            data = {"voltage_V": [r[2] for r in new_points], "current_A": [r[3] for r in new_points],
                    "specific_current_mA_g": [r[3] * 1000.0 / mass for r in new_points],
                    "capacity_mAh_g": [r[4] for r in new_points],
                    "temperature_C": [r[5] if r[5] == r[5] else 25.0 for r in new_points],
                    "step": [r[0] for r in new_points], "substep": [r[6] for r in new_points]}  # fmt: skip
            page = {"descriptor": points_desc["uid"], "uid": [str(uuid.uuid4()) for _ in times],
                    "time": times, "seq_num": list(range(n_before + 1, n_before + len(times) + 1)),
                    "data": data, "timestamps": {k: times for k in data}, "filled": {}}  # fmt: skip
            validators[names.event_page].validate(page)
            f.write(json.dumps(["event_page", page]) + "\n")
            f.flush()
            os.fsync(f.fileno())
        stop = {"run_start": start["uid"], "uid": str(uuid.uuid4()), "time": time.time(),
                "exit_status": "abort",
                "reason": f"the orchestrator stopped; {len(new_points)} points recovered from the spool{rebuilt}",
                "num_events": {POINT_STREAM: n_before + len(new_points)}}  # fmt: skip
        validators[names.stop].validate(stop)
        f.write(json.dumps(["stop", stop]) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return len(new_points)


def recover_interrupted_runs(data_dir: Path, tiled: bool = True) -> dict[str, int]:
    """:func:`recover`, returning ``{run uid: points recovered}`` for the runs it closed."""
    return recover(data_dir, tiled=tiled).recovered


def write_export(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write ``frame`` as csv or parquet atomically: a temporary file beside ``path``, fsynced,
    then renamed over it (a crash leaves the old file or the new one, whole)."""
    import tempfile

    path = Path(path)
    if path.exists() and not path.is_file():
        # a device or a pipe (e.g. /dev/stdout): write into it, never rename over it
        with open(path, "wb") as f:
            if fmt == "csv":
                frame.to_csv(f, index=False)
            else:
                frame.to_parquet(f, index=False)
        return
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else "."
    )
    try:
        with os.fdopen(fd, "wb") as f:
            if fmt == "csv":
                frame.to_csv(f, index=False)
            else:
                frame.to_parquet(f, index=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
