"""A run's documents as DataFrames: the export columns, other streams, a cell's runs joined,
and exports written atomically.

:func:`read_journal` returns a run as a DataFrame with the export columns (:data:`COLUMNS`:
``time_s``, ``voltage_V``, ``current_A``, ``specific_current_mA_g``, ``capacity_mAh_g``,
``step``, ``step_type``, ``temperature_C``, ``cycle``, ``direction``, ``substep``,
``timestamp_s``); :func:`read_runs` joins a cell's runs (a run and the runs that resumed it);
:func:`read_oven_record` reads a heated portion's thermal history.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.journal import journal_documents
from orchestrator.journal import journal_path as _journal_path

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


def frame_from_documents(docs: Iterator[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], pd.DataFrame]:
    """(start document, points DataFrame) from a run's documents."""
    start, frame = raw_frame(docs)
    return start, to_export_frame(start, frame)


class _RunDocuments:
    """Walks a run's documents once: the start document, and the pages of chosen streams."""

    def __init__(self, docs: Iterator[tuple[str, dict[str, Any]]]) -> None:
        self._docs = docs
        self.start: dict[str, Any] = {}
        self.descriptors: dict[str, dict[str, Any]] = {}

    def pages(
        self, streams: tuple[str, ...], events: bool = True
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(descriptor, event page) of each event page of ``streams`` (and each event, as a
        one-row page, with ``events``)."""
        for name, doc in self._docs:
            if name == "start":
                self.start = doc
            elif name == "descriptor":
                self.descriptors[doc["uid"]] = doc
            elif name == "event_page" or (events and name == "event"):
                descriptor = self.descriptors.get(doc["descriptor"], {})
                if descriptor.get("name", "") in streams:
                    yield (
                        descriptor,
                        doc
                        if name == "event_page"
                        else {k: {c: [v] for c, v in doc[k].items()} for k in ("data", "timestamps")},
                    )


def _first_timestamps(page: dict[str, Any]) -> list[float]:
    """The page's reading times (those of its first data key)."""
    return list(page["timestamps"][next(iter(page["data"]))])


def raw_frame(docs: Iterator[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], pd.DataFrame]:
    """(start document, the points stream's columns as recorded, plus ``timestamp``)."""
    run = _RunDocuments(docs)
    # Pages with the same columns are joined as lists and made one DataFrame (a DataFrame per
    # page costs more than its few points); a change of columns starts a new chunk.
    chunks: list[pd.DataFrame] = []
    columns: dict[str, list[Any]] = {}
    for _, page in run.pages((POINT_STREAM,), events=False):
        data = page["data"]
        if list(columns) != [*data, "timestamp"]:
            if columns:
                chunks.append(pd.DataFrame(columns))
            columns = {key: [] for key in [*data, "timestamp"]}
        for key, values in data.items():
            columns[key].extend(values)
        columns["timestamp"].extend(_first_timestamps(page))
    if columns:
        chunks.append(pd.DataFrame(columns))
    if len(chunks) > 1:
        return run.start, pd.concat(chunks, ignore_index=True)
    return run.start, chunks[0] if chunks else pd.DataFrame()


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
    """``(start document, DataFrame)`` of run ``uid`` stored in ``data_dir``, with the export
    columns (:data:`COLUMNS`)."""
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
    run = _RunDocuments(docs)
    chunks: list[pd.DataFrame] = []
    for descriptor, page in run.pages(streams):
        devices = list(descriptor.get("object_keys", {}))
        prefix = f"{devices[0]}_" if len(devices) == 1 else ""
        data = {k.removeprefix(prefix) if prefix and k != prefix.rstrip("_") else k: v
                for k, v in page["data"].items()}  # fmt: skip
        chunk = pd.DataFrame(data)
        chunk.insert(0, "stream", descriptor.get("name", ""))
        chunk.insert(0, "timestamp_s", _first_timestamps(page))
        chunks.append(chunk)
    start = run.start
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


def portion_record(read: Any, uid: str | None) -> pd.DataFrame:
    """A portion's whole oven log and transfers: run ``uid`` and, when it went on with a hold
    an interrupted run had started (``resumed_hold_started_s``), that run's (``resumes``) before
    it, and so on. ``read(uid) -> (start, frame)`` reads one run (a journal or a Tiled server)."""
    frames: list[pd.DataFrame] = []
    seen: set[str] = set()
    while uid and uid not in seen:
        seen.add(uid)
        start, frame = read(uid)
        frames.insert(0, frame)
        uid = start.get("resumes") if start.get("resumed_hold_started_s") is not None else None
    frames = [f for f in frames if len(f)]
    if len(frames) <= 1:
        return frames[0] if frames else pd.DataFrame(columns=["timestamp_s", "stream"])
    combined = pd.concat(frames, ignore_index=True).sort_values("timestamp_s", kind="stable").reset_index(drop=True)
    if "time_s" in combined:
        combined["time_s"] = combined["timestamp_s"] - float(combined["timestamp_s"].iloc[0])
    return combined


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
