"""One writer (issue 14, deliverable 3): a live run holds its lock, recovery leaves it alone; two
orchestrators of one campaign cannot both drive cells; a campaign that already ran is run again
only with an explicit --rerun; the Tiled catalog is created once however many first runs race."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.campaign_file import parse_campaign
from orchestrator.campaign_run import run_campaign
from orchestrator.storage import Journal, RunIsLive, campaign_lock, list_journal_runs, recover, run_is_live

CAMPAIGN = {
    "name": "one-writer",
    "protocol": "charge-rest-discharge",
    "replicates": 1,
    "samples": {"batch": {"id": "LTNO-x04-B1", "material": "x04"}, "cell_mass": "5 mg"},
    "matrix": {"charge_end": ["4.5 V"], "rest": ["1 h"], "current": ["100 mA/g"]},
}


def _start_doc(uid: str) -> dict:
    return {"uid": uid, "time": 1.0}


def test_recover_leaves_a_live_run_alone_and_closes_it_once_its_writer_is_gone(tmp_path) -> None:
    journal = Journal(tmp_path)
    journal("start", _start_doc("live-run"))
    assert run_is_live(tmp_path, "live-run")
    report = recover(tmp_path)
    assert report.live == ["live-run"] and report.recovered == {}
    assert list_journal_runs(tmp_path)[0]["exit_status"] == "running"
    journal._file.close()  # the writer dies: its file and its lock go with it
    journal._file = None
    journal._lock.release()
    assert not run_is_live(tmp_path, "live-run")
    assert recover(tmp_path).recovered == {"live-run": 0}
    assert list_journal_runs(tmp_path)[0]["exit_status"] == "abort"


def test_a_run_held_by_another_process_is_live(tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from orchestrator.storage import Journal
        j = Journal({str(tmp_path)!r})
        j("start", {{"uid": "other", "time": 1.0}})
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert recover(tmp_path).live == ["other"]
        proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "data", "recover", "--data-dir",
                               str(tmp_path)], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert "live (an orchestrator is writing it), not touched" in proc.stdout
    finally:
        child.kill()
        child.wait()
    assert recover(tmp_path).recovered == {"other": 0}  # killed: now it is an interrupted run


def test_a_second_orchestrator_of_a_campaign_is_refused(tmp_path) -> None:
    campaign = parse_campaign(CAMPAIGN)
    with campaign_lock(tmp_path, campaign.name):  # another orchestrator runs it
        for resume in (False, True):
            with pytest.raises(RunIsLive, match="running in another process"):
                run_campaign(campaign, tmp_path, channels=1, resume=resume)
    assert not (tmp_path / "journal").exists() or not list((tmp_path / "journal").iterdir())


def test_a_campaign_that_ran_runs_again_only_with_rerun(tmp_path) -> None:
    campaign = parse_campaign(CAMPAIGN)
    first = run_campaign(campaign, tmp_path, channels=1)
    assert not first.failed
    state = tmp_path / "campaigns" / campaign.name / "state.json"
    before = state.read_text()
    with pytest.raises(ValueError, match="already ran .* --resume .* --rerun"):
        run_campaign(campaign, tmp_path, channels=1)
    assert state.read_text() == before
    again = run_campaign(campaign, tmp_path, channels=1, rerun=True)
    assert not again.failed
    kept = list(state.parent.glob("state-*.json"))
    assert len(kept) == 1 and kept[0].read_text() == before  # the first run's state is kept
    assert len(list_journal_runs(tmp_path)) == 2


def test_two_first_runs_create_the_tiled_catalog_once(tmp_path) -> None:
    script = f"from orchestrator.storage import TiledStore; TiledStore(__import__('pathlib').Path({str(tmp_path)!r})).close()"
    children = [
        subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
    assert (Path(tmp_path) / "tiled" / "catalog.db").exists()
