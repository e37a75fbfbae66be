"""Closing interrupted runs: :func:`recover` finishes every run that has a start and no stop and
that no live process holds, with the points its channel's spool holds that its journal lacks."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from orchestrator.journal import (
    JournalDamaged,
    journal_documents,
    lock_path,
    parse_line,
    repair_journal,
    run_is_live,
)
from orchestrator.run_frames import POINT_STREAM


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
                name, first = parse_line(f.readline())
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
