"""Recovery of a run killed before its first page reached the journal (issue 14, nothing lost).

The run is killed for real (SIGKILL in a child process on the simulated lab) the moment its
spool holds ``KILL_AFTER`` points, which in simulated time is always before its first page (a
page is handed over after 1 h of clock time or at the end of a step): the journal holds the
start document and the points stream's descriptor, the spool every point read. The descriptor
line can also be missing (torn by the crash and cut off, or never synced to a disk that lost
power): the journal then holds the start document only, written here as the disk would hold it.
Either way every spooled point is recovered, once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.storage import list_journal_runs, read_journal, recover

KILL_AFTER = 20  # points: 200 s of a 1,800 s charge recorded every 10 s

_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from drivers.techniques import ConstantCurrent, Cutoffs, Rest
    from orchestrator.lab import load_lab
    from orchestrator.runner import Session
    from protocols.plans import run_protocol

    data, mode, kill_after, tiled = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    session = Session(load_lab("simulated"), data_dir=data, tiled=tiled)
    channel = session.channel()
    spool, spooled = channel.spool, [0]

    def spool_then_maybe_die(ch, step, points):
        spool(ch, step, points)
        spooled[0] += len(points)
        if kill_after and spooled[0] >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    channel.spool = spool_then_maybe_die
    if mode == "two":  # a whole run, then one killed before its first page, same channel
        kill = kill_after
        kill_after = 0
        session.run(run_protocol(channel, [ConstantCurrent(20.0, Cutoffs(duration_s=1800.0), 10.0)]))
        kill_after, spooled[0] = kill, 0
        session.run(run_protocol(channel, [Rest(1800.0, 10.0)]))
    else:
        session.run(run_protocol(channel, [ConstantCurrent(20.0, Cutoffs(duration_s=1800.0), 10.0),
                                           Rest(1800.0, 60.0)], {"cell": "one"}))
    session.close()
    """
)
CLI = [sys.executable, "-m", "orchestrator.cli"]


def _run_child(data: Path, mode: str, kill_after: int, tiled: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _SCRIPT, str(data), mode, str(kill_after), "1" if tiled else "0"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def _spool_lines(data: Path) -> list[list]:
    (path,) = (data / "spool").rglob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _journal(data: Path, uid: str) -> list[tuple[str, dict]]:
    return [tuple(json.loads(line)) for line in (data / "journal" / f"{uid}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """The same protocol, not interrupted."""
    data = tmp_path_factory.mktemp("whole")
    proc = _run_child(data, "one", 0)
    assert proc.returncode == 0, proc.stderr
    (run,) = list_journal_runs(data)
    assert run["exit_status"] == "success"
    return read_journal(data, run["uid"])[1]


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> tuple[Path, str, bytes]:
    """A run killed before its first page: (data folder, run uid, its journal as the kill left it)."""
    data = tmp_path_factory.mktemp("killed")
    proc = _run_child(data, "one", KILL_AFTER, tiled=True)
    assert proc.returncode == -9, proc.stderr
    (run,) = list_journal_runs(data)
    return data, run["uid"], (data / "journal" / f"{run['uid']}.jsonl").read_bytes()


#: What the journal holds after the kill: as the kill left it (start, descriptor), its
#: descriptor line torn half-way (cut off by recovery), or the descriptor never on disk.
STATES = ("as-killed", "descriptor-torn", "descriptor-lost")


def _copy_in_state(killed, tmp_path: Path, state: str) -> Path:
    src, uid, journal = killed
    data = tmp_path / "data"
    for f in [*(src / "spool").rglob("*"), *(src / "tiled").rglob("*")]:
        if f.is_file():
            (data / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (data / f.relative_to(src)).write_bytes(f.read_bytes())
    lines = journal.splitlines(keepends=True)
    assert [json.loads(line)[0] for line in lines] == ["start", "descriptor"]  # no page before the kill
    if state == "descriptor-torn":
        journal = lines[0] + lines[1][: len(lines[1]) // 2]
    elif state == "descriptor-lost":
        journal = lines[0]
    (data / "journal").mkdir(parents=True)
    (data / "journal" / f"{uid}.jsonl").write_bytes(journal)
    return data


def _assert_equals_the_uninterrupted_run(data: Path, uid: str, reference: pd.DataFrame, n: int) -> None:
    _, frame = read_journal(data, uid)
    assert len(frame) == n  # nothing lost, nothing doubled
    head = reference.head(n).reset_index(drop=True)
    for column in ("timestamp_s", "voltage_V", "current_A", "capacity_mAh_g", "step", "substep", "step_type"):
        assert frame[column].tolist() == head[column].tolist(), column


@pytest.mark.parametrize("state", STATES)
def test_a_run_killed_before_its_first_page_keeps_every_spooled_point(
    killed, reference, tmp_path, state
) -> None:
    _, uid, _ = killed
    data = _copy_in_state(killed, tmp_path, state)
    n = len(_spool_lines(data))
    assert n >= KILL_AFTER
    proc = subprocess.run([*CLI, "data", "recover", "--data-dir", str(data)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{uid[:8]}: {n} points recovered" in proc.stdout
    _assert_equals_the_uninterrupted_run(data, uid, reference, n)
    assert [name for name, _ in _journal(data, uid)] == ["start", "descriptor", "event_page", "stop"]
    (run,) = list_journal_runs(data)
    assert run["exit_status"] == "abort" and run["points"] == n
    size = (data / "journal" / f"{uid}.jsonl").stat().st_size
    again = subprocess.run([*CLI, "data", "recover", "--data-dir", str(data)], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert again.returncode == 0 and "no interrupted runs" in again.stdout
    assert (data / "journal" / f"{uid}.jsonl").stat().st_size == size
    if state == "as-killed":
        return
    # the Tiled copy is rebuilt with the same points, exported through the CLI
    exports = {}
    for source in ("journal", "tiled"):
        out = tmp_path / f"{source}.csv"
        proc = subprocess.run([*CLI, "data", "export", uid, "--source", source, "--out", str(out),
                               "--data-dir", str(data)], capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        exports[source] = pd.read_csv(out)
    assert len(exports["tiled"]) == n
    pd.testing.assert_frame_equal(exports["journal"], exports["tiled"])


def test_a_recover_killed_half_way_is_finished_by_the_next_one(killed, reference, tmp_path) -> None:
    _, uid, _ = killed
    data = _copy_in_state(killed, tmp_path, "descriptor-lost")
    n = len(_spool_lines(data))
    path = data / "journal" / f"{uid}.jsonl"
    before = path.stat().st_size
    recover(data, tiled=False)
    text = path.read_bytes()
    after_descriptor, stop = text.index(b'["event_page"'), text.index(b'["stop"')
    # killed mid-descriptor, after it, mid-page, after the page, mid-stop
    for cut in (before + 30, after_descriptor, after_descriptor + 200, stop, len(text) - 40):
        path.write_bytes(text[:cut])
        report = recover(data, tiled=False)
        assert report.recovered == {uid: n if cut < stop else 0}, cut
        _assert_equals_the_uninterrupted_run(data, uid, reference, n)
        assert sum(name == "descriptor" for name, _ in _journal(data, uid)) == 1
        assert recover(data, tiled=False).recovered == {}


def test_a_run_killed_before_its_first_page_takes_no_point_of_the_run_before_it(tmp_path) -> None:
    data = tmp_path / "data"
    proc = _run_child(data, "two", KILL_AFTER)
    assert proc.returncode == -9, proc.stderr
    first, second = sorted(list_journal_runs(data), key=lambda r: r["time"])
    assert first["exit_status"] == "success" and second["exit_status"] == "interrupted"
    assert not any(name == "event_page" for name, _ in _journal(data, second["uid"]))
    spooled = _spool_lines(data)
    report = recover(data, tiled=False)
    assert report.recovered == {second["uid"]: len(spooled) - first["points"]}
    _, before = read_journal(data, first["uid"])
    _, after = read_journal(data, second["uid"])
    assert len(before) + len(after) == len(spooled)  # every point once, in one of the two runs
    assert after["timestamp_s"].tolist() == [row[1] for row in spooled[first["points"] :]]
    assert after["voltage_V"].tolist() == [row[2] for row in spooled[first["points"] :]]
