"""The run journal read back: one ``[name, document]`` JSON line per bluesky document in
``<data>/journal/<uid>.jsonl``, the lock a live run holds, and the summary of every journalled run.

Written by :class:`orchestrator.storage.Journal`; read here so that the Tiled modules
(:mod:`orchestrator.tiled_fill`, :mod:`orchestrator.tiled_server`) and :mod:`orchestrator.storage`
share one reader without importing each other. :mod:`orchestrator.storage` re-exports these names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout


class JournalDamaged(ValueError):
    """A journal line before the last one is not a whole document: the run is damaged there."""

    def __init__(self, path: Path, line: int, why: str) -> None:
        self.path, self.line = Path(path), line
        super().__init__(
            f"run {Path(path).stem[:8]} is damaged: line {line} of {path} is not a whole document "
            f"({why}); its points from there on cannot be trusted. The file is kept as it is: "
            "restore it from a backup, or delete that line by hand to read what is left"
        )


class RunIsLive(RuntimeError):
    """Another process is writing this run (or campaign) right now."""


def lock_path(data_dir: Path, uid: str) -> Path:
    """The lock a live run holds: ``<data>/locks/<uid>.lock``."""
    return Path(data_dir) / "locks" / f"{uid}.lock"


def run_is_live(data_dir: Path, uid: str) -> bool:
    """True while some process holds the run's lock (the OS releases it when that process dies)."""
    return lock_is_held(lock_path(data_dir, uid))


def lock_is_held(path: Path) -> bool:
    """True while some process holds the file lock at ``path`` (False when there is none)."""
    if not path.exists():
        return False
    lock = FileLock(path, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def parse_line(line: str) -> tuple[str, dict[str, Any]]:
    item = json.loads(line)
    if not (
        isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict)
    ):
        raise ValueError("not a [name, document] pair")
    return item[0], item[1]


def journal_documents(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Documents of a journal. A torn last line (a crash mid-write) is skipped; any other line
    that is not a whole document raises :class:`JournalDamaged` with its number."""
    with open(path, encoding="utf-8", errors="replace") as f:
        pending: tuple[int, str] | None = None
        for number, line in enumerate(f, start=1):
            if pending is not None:  # a bad line with more after it: damage, not a torn tail
                raise JournalDamaged(path, pending[0], pending[1])
            try:
                yield parse_line(line)
            except ValueError as exc:
                pending = (number, str(exc).split(":")[0])


def repair_journal(path: Path) -> str | None:
    """Cut off a torn last line (or end a whole last line left without its newline).

    Returns what was done, or None when the file was whole. A damaged line before the end is
    left alone (:class:`JournalDamaged` when read).
    """
    with open(path, "rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            if data:
                start = data.rfind(b"\n", 0, len(data) - 1) + 1
                try:
                    parse_line(data[start:].decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    f.truncate(start)  # a whole line of garbage at the end: torn as well
                    f.flush()
                    os.fsync(f.fileno())
                    return f"cut off a damaged last line ({len(data) - start} bytes)"
            return None
        start = data.rfind(b"\n") + 1
        try:
            parse_line(data[start:].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            f.truncate(start)
            what = f"cut off a torn last line ({len(data) - start} bytes)"
        else:
            f.write(b"\n")
            what = "ended the last line"
        f.flush()
        os.fsync(f.fileno())
        return what


def list_journal_runs(data_dir: Path) -> list[dict[str, Any]]:
    """One summary per journalled run, newest first."""
    runs = []
    for path in (Path(data_dir) / "journal").glob("*.jsonl"):
        start: dict[str, Any] | None = None
        stop: dict[str, Any] | None = None
        points = 0
        damage = None
        try:
            for name, doc in journal_documents(path):
                if name == "start":
                    start = doc
                elif name == "stop":
                    stop = doc
                elif name == "event_page":
                    points += len(doc["seq_num"])
                elif name == "event":
                    points += 1
        except JournalDamaged as exc:
            damage = str(exc)
        if start is None:
            if damage:
                start = {"uid": path.stem, "time": path.stat().st_mtime}
            else:
                continue
        status = stop["exit_status"] if stop else "interrupted"
        if damage:
            status = "damaged"
        elif stop is None and run_is_live(data_dir, start["uid"]):
            status = "running"
        runs.append(
            {
                "uid": start["uid"],
                "time": start["time"],
                "plan_name": start.get("plan_name"),
                "sample": start.get("sample"),
                "cell": start.get("cell"),
                "points": points,
                "exit_status": status,
                **({"damage": damage} if damage else {}),
            }
        )
    return sorted(runs, key=lambda r: r["time"], reverse=True)


def journal_path(data_dir: Path, uid: str) -> Path:
    path = Path(data_dir) / "journal" / f"{uid}.jsonl"
    if not path.exists():
        matches = list((Path(data_dir) / "journal").glob(f"{uid}*.jsonl"))
        if len(matches) != 1:
            raise KeyError(f"no run {uid!r} in {data_dir}")
        path = matches[0]
    return path
