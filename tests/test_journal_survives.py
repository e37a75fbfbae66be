"""A journal that survives anything (issue 14, deliverable 2): torn and damaged lines, recovery
that is idempotent and exact at step hand-overs, Tiled rebuilt from the journal, atomic exports.

A crash is reproduced the way it leaves the disk: a journal cut after some of its pages (the
points read since are in the spool), half a line at its end (SIGKILL mid-write), a damaged
line in its middle.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.storage import (
    JournalDamaged,
    list_journal_runs,
    read_journal,
    recover,
    write_export,
)


def crashing_paper_run(data: Path, tiled: bool, then: str, **protocol: float) -> subprocess.CompletedProcess[str]:
    """Run the paper protocol on the simulated lab in a child process writing into ``data``.
    ``then`` is code run in the child before the protocol starts, which may replace
    ``after_page()`` (called after each event page is written; ``pages`` holds their sizes) and
    end the process with ``os._exit(9)`` like a crash. Returns the finished child."""
    script = textwrap.dedent(
        f"""
        import os
        from orchestrator.lab import load_lab
        from orchestrator.runner import Session
        from protocols.plans import relaxation_protocol
        session = Session(load_lab("simulated"), data_dir={str(data)!r}, tiled={tiled!r})
        pages = []
        def after_page():
            pass
        def count(name, doc):
            if name == "event_page":
                pages.append(len(doc["seq_num"]))
                after_page()
        session.subscribe(count)
        """
    ) + textwrap.dedent(then) + f"\nsession.run(relaxation_protocol(session.channel(), **{protocol!r}))\n"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def _relax_run(data: Path, tiled: bool = False) -> str:
    from orchestrator.lab import load_lab
    from orchestrator.runner import Session
    from protocols.plans import relaxation_protocol

    session = Session(load_lab("simulated"), data_dir=data, tiled=tiled)
    try:
        (uid,) = session.run(relaxation_protocol(session.channel(), rest_s=7200.0))
    finally:
        session.close()
    return uid


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory) -> tuple[Path, str, pd.DataFrame]:
    data = tmp_path_factory.mktemp("complete")
    uid = _relax_run(data)
    _, frame = read_journal(data, uid)
    return data, uid, frame


def _crashed_copy(complete_run, tmp_path: Path, keep_steps: int) -> tuple[Path, str]:
    """The complete run as a crash after the pages of its first ``keep_steps`` steps would leave
    it: the journal stops there, the spool holds every point read."""
    src, uid, _ = complete_run
    data = tmp_path / "data"
    for sub in ("journal", "spool"):
        for f in (src / sub).rglob("*"):
            if f.is_file():
                target = data / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(f.read_bytes())
    path = data / "journal" / f"{uid}.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for line in lines:
        name, doc = json.loads(line)
        if name == "stop" or (name == "event_page" and max(doc["data"].get("step", [0])) >= keep_steps):
            break
        kept.append(line)
    path.write_text("".join(kept))
    return data, uid


def _assert_whole(data: Path, uid: str, reference: pd.DataFrame) -> None:
    _, frame = read_journal(data, uid)
    assert len(frame) == len(reference)  # nothing lost, nothing doubled
    assert frame["timestamp_s"].tolist() == reference["timestamp_s"].tolist()
    assert frame["step"].tolist() == reference["step"].tolist()


def test_recovery_keeps_the_first_point_of_a_step_stamped_like_the_last_of_the_previous_one(
    complete_run, tmp_path
) -> None:
    _, _, reference = complete_run
    stamps = reference["timestamp_s"]
    assert stamps.duplicated().sum() >= 2  # hand-overs: a new step starts at the same instant
    data, uid = _crashed_copy(complete_run, tmp_path, keep_steps=1)  # only step 0's pages
    report = recover(data)
    assert report.recovered == {uid: len(reference) - int((reference["step"] == 0).sum())}
    _assert_whole(data, uid, reference)
    assert list_journal_runs(data)[0]["exit_status"] == "abort"


def test_recover_after_a_torn_last_line_is_exact_and_idempotent(complete_run, tmp_path) -> None:
    _, _, reference = complete_run
    data, uid = _crashed_copy(complete_run, tmp_path, keep_steps=2)
    path = data / "journal" / f"{uid}.jsonl"
    with open(path, "a") as f:
        f.write('["event_page", {"descriptor": "x", "data": {"volt')  # SIGKILL mid-write
    first = recover(data)
    assert uid in first.repaired and uid in first.recovered
    _assert_whole(data, uid, reference)
    size = path.stat().st_size
    again = recover(data)  # a second recover finds the run closed and appends nothing
    assert again.recovered == {} and again.repaired == {}
    assert path.stat().st_size == size


def test_a_recover_killed_half_way_is_finished_by_the_next_one(complete_run, tmp_path) -> None:
    _, _, reference = complete_run
    data, uid = _crashed_copy(complete_run, tmp_path, keep_steps=1)
    path = data / "journal" / f"{uid}.jsonl"
    before = path.stat().st_size
    recover(data)
    text = path.read_bytes()
    for cut in (before + (len(text) - before) // 2, len(text) - 40):  # mid-page, mid-stop
        path.write_bytes(text[:cut])
        report = recover(data)
        assert uid in report.repaired and uid in report.recovered
        _assert_whole(data, uid, reference)
    path.write_bytes(text[: text.rindex(b'["stop"')])  # the page is whole, the stop never written
    assert recover(data).recovered == {uid: 0}
    _assert_whole(data, uid, reference)


def test_a_damaged_middle_line_fails_reading_and_export_with_its_number(complete_run, tmp_path) -> None:
    data, uid = _crashed_copy(complete_run, tmp_path, keep_steps=3)
    path = data / "journal" / f"{uid}.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    page_line = next(i for i, line in enumerate(lines) if line.startswith('["event_page"') and i > 3)
    lines[page_line] = lines[page_line][:100] + "\x00\x00garbage\n"
    path.write_text("".join(lines))
    with pytest.raises(JournalDamaged, match=f"line {page_line + 1} of"):
        read_journal(data, uid)
    (summary,) = list_journal_runs(data)
    assert summary["exit_status"] == "damaged" and f"line {page_line + 1}" in summary["damage"]
    report = recover(data)
    assert uid in report.damaged and report.recovered == {}
    out = tmp_path / "x.csv"
    cli = [sys.executable, "-m", "orchestrator.cli"]
    proc = subprocess.run([*cli, "data", "export", uid, "--out", str(out), "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1 and f"line {page_line + 1}" in proc.stderr
    assert not out.exists()
    proc = subprocess.run([*cli, "data", "recover", "--data-dir", str(data)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 1 and "damaged" in proc.stdout


def test_exports_are_atomic(tmp_path, monkeypatch) -> None:
    out = tmp_path / "run.csv"
    write_export(pd.DataFrame({"a": [1, 2]}), out, "csv")
    old = out.read_text()

    def half_then_fail(self, f, **kw):
        f.write(b"a\n1\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        write_export(pd.DataFrame({"a": [3, 4, 5]}), out, "csv")
    assert out.read_text() == old  # the old export, whole
    assert [p.name for p in tmp_path.iterdir()] == ["run.csv"]  # no temporary file left


def test_tiled_copy_of_a_crashed_run_is_rebuilt_by_recover(tmp_path) -> None:
    then = """
        def after_page():
            if len(pages) == 5:
                os._exit(9)
        """
    proc = crashing_paper_run(tmp_path, True, then, rest_s=7200.0)
    assert proc.returncode == 9, proc.stderr
    (run,) = list_journal_runs(tmp_path)
    report = recover(tmp_path)
    assert report.tiled == [run["uid"]]
    cli = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "data",
        "export",
        run["uid"],
        "--data-dir",
        str(tmp_path),
    ]
    for source in ("journal", "tiled"):
        out = tmp_path / f"{source}.csv"
        proc = subprocess.run([*cli, "--source", source, "--out", str(out)], capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    journal, tiled = pd.read_csv(tmp_path / "journal.csv"), pd.read_csv(tmp_path / "tiled.csv")
    assert len(tiled) == len(journal) > 0
    pd.testing.assert_frame_equal(tiled, journal)


def test_crash_matrix_a_kill_at_any_byte_of_the_journal_loses_and_doubles_nothing(
    complete_run, tmp_path
) -> None:
    """Kill the writer at every kind of moment: between documents, mid-page, mid-hand-over (the
    pages of one step written, the next step's not), mid-stop; then kill the recovery itself
    mid-way. Every time, recovery gives back exactly the uninterrupted run."""
    _, _, reference = complete_run
    data, uid = _crashed_copy(complete_run, tmp_path, keep_steps=99)  # the whole run, stop removed
    path = data / "journal" / f"{uid}.jsonl"
    whole = path.read_bytes()
    starts = [0] + [i + 1 for i, b in enumerate(whole) if b == ord("\n")][:-1]
    ends = [*starts[1:], len(whole)]
    steps = [_page_steps(whole[s:e]) for s, e in zip(starts, ends, strict=True)]
    # the line where the pages of the second step begin: a hand-over
    handover = next(i for i, st in enumerate(steps) if st and min(st) >= 1)
    cuts = set()
    for i in (handover, handover + 1, len(starts) - 1):
        s, e = starts[i], ends[i]
        cuts |= {s, (s + e) // 2, e - 1}  # before a line, half-way through it, all but its newline
    cuts.add(len(whole))
    for cut in sorted(cuts):
        path.write_bytes(whole[:cut])
        recover(data, tiled=False)
        _assert_whole(data, uid, reference)
        recovered = path.read_bytes()
        path.write_bytes(recovered[: cut + (len(recovered) - cut) // 2])  # the recovery killed mid-way
        recover(data, tiled=False)
        _assert_whole(data, uid, reference)
        assert recover(data, tiled=False).recovered == {}  # and a further one has nothing to do


def _page_steps(line: bytes) -> list[int]:
    name, doc = json.loads(line)
    return list(doc["data"]["step"]) if name == "event_page" else []


KILL_EXPORT = """
import os, signal, sys
import pandas as pd
from orchestrator.cli import main
moment = sys.argv.pop(1)
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
to_csv, replace = pd.DataFrame.to_csv, os.replace
def half_then_die(self, f, **kw):
    f.write(to_csv(self.head(len(self) // 2), **kw).encode()); f.flush(); os.fsync(f.fileno())
    die()
def die_before_rename(*a):
    die()
def die_after_rename(*a):
    replace(*a); die()
if moment == "mid-write":
    pd.DataFrame.to_csv = half_then_die
elif moment == "before-rename":
    os.replace = die_before_rename
else:
    os.replace = die_after_rename
sys.argv[0] = "relaxlab"
main()
"""


@pytest.mark.parametrize("moment", ["mid-write", "before-rename", "after-rename"])
def test_an_export_killed_mid_write_leaves_the_previous_file_or_the_new_one_whole(
    complete_run, tmp_path, moment
) -> None:
    """SIGKILL of `data export` half-way through writing its file, just before its rename and just
    after: the export file is the previous export or the new one, whole, never a part of one."""
    data, uid, frame = complete_run
    out = tmp_path / "run.csv"
    args = ["data", "export", uid, "--data-dir", str(data), "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    whole = out.read_text()
    assert len(pd.read_csv(out)) == len(frame)
    out.write_text("previous export\n")
    killed = subprocess.run([sys.executable, "-c", KILL_EXPORT, moment, *args], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert killed.returncode == -9, killed.stderr  # it died where this test made it die
    expected = whole if moment == "after-rename" else "previous export\n"
    assert out.read_text() == expected


def test_a_slow_disk_changes_no_recorded_point(tmp_path, monkeypatch) -> None:
    """Every fsync of the journal and spool 5 ms slower (a slow or busy disk): the simulated run
    records exactly the points it records on a fast disk (simulated time does not run on while
    the disk is slow)."""
    import time

    import orchestrator.storage as storage

    fast_uid = _relax_run(tmp_path / "fast")
    _, fast = read_journal(tmp_path / "fast", fast_uid)
    real, calls = storage.os.fsync, {"n": 0}

    def slow_fsync(fd: int) -> None:
        calls["n"] += 1
        time.sleep(0.005)
        real(fd)

    monkeypatch.setattr(storage.os, "fsync", slow_fsync)
    slow_uid = _relax_run(tmp_path / "slow")
    assert calls["n"] > 10, "the run never synced the disk: this test no longer reaches it"
    _, slow = read_journal(tmp_path / "slow", slow_uid)
    columns = ["timestamp_s", "step", "voltage_V", "current_A"]
    pd.testing.assert_frame_equal(fast[columns], slow[columns])
