"""The monitor page in a real headless browser (Debian's Chromium driven by Playwright).

A three-cell campaign on the simulated lab (``tests/test_monitor_writer.py``) writes into a data
folder while ``relaxlab monitor`` serves it. The campaign stops after every step of every cell
until the test lets it go on (simulated time stands still meanwhile), so the test can look at
the page with the campaign half-way, whatever the machine's load: at each stop the page must
show, for every cell, as many points as the cell's journal holds at that moment; over the
campaign every cell's curve grows. At one stop the test lowers one cell's safety limit below
the cell's voltage: the orchestrator faults that cell on its next point, and the page shows
the alarm at its next poll after the fault is on disk. Nothing is timed: the test waits for
conditions with generous timeouts.

Skipped when Chromium (``/usr/bin/chromium``) or the ``playwright`` package is missing; the
browser is never downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from orchestrator.storage import list_journal_runs
from tests.test_monitor_writer import CAMPAIGN

CHROMIUM = os.environ.get("RELAXLAB_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120.0

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"), reason="no Chromium"),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, condition: Any, timeout_s: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _journal_points(data: Path) -> dict[str, int]:
    """Points each cell's journal holds now (as relaxlab's storage counts them)."""
    return {r["cell"]: r["points"] for r in list_journal_runs(data) if r["cell"]}


def _page_points(page: Any) -> dict[str, int]:
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('.cell')]"
        ".map(e => [e.dataset.cellId.split(':').pop(), Number(e.dataset.points)]))"
    )


def _polls(page: Any) -> int:
    return int(page.evaluate("() => Number(document.body.dataset.polls)"))


def test_page_follows_a_running_campaign_and_shows_a_safety_fault(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = _port()
    (tmp_path / "monitor-demo.yaml").write_text(CAMPAIGN)  # the writer runs this file too
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.test_monitor_writer", str(data), "--gate"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    monitor = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "monitor", "--data-dir", str(data), "--port", str(port),
         "--campaign", str(tmp_path / "monitor-demo.yaml")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdin is not None and writer.stdout is not None
    seen: dict[str, list[int]] = defaultdict(list)
    faulted: str | None = None
    alarm_checked = False

    def fault_recorded(cell_id: str) -> bool:
        """The orchestrator has closed the cell's run as failed (the fault is on disk)."""
        return any(r["cell"] == cell_id and r["exit_status"] == "fail" for r in list_journal_runs(data))

    def check_alarm(page: Any, cell_id: str) -> None:
        polls_at_fault = _polls(page)
        alarm = f".alarm[data-level='safety'][data-cell$=':{cell_id}']"
        _wait("the safety alarm on the page", lambda: page.query_selector(alarm) is not None)
        # the page numbers its polls: poll polls_at_fault + 1 may have read the data before the
        # fault was seen on disk; the one after it began later and must show the alarm
        assert int(page.get_attribute(alarm, "data-first-poll")) <= polls_at_fault + 2
        assert "safety limits" in page.inner_text(alarm)
        assert page.get_attribute(f".cell[data-cell-id$=':{cell_id}']", "data-status") == "failed"

    try:

        def up() -> bool:
            assert monitor.poll() is None, monitor.communicate()[1]
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
            except OSError:
                return False

        _wait("the monitor to answer", up)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"))
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            stops = 0
            while True:
                line = writer.stdout.readline()
                assert line, f"the campaign ended early: {writer.communicate()[1][-2000:]}"
                event = json.loads(line)
                if event.get("done"):
                    break
                stops += 1
                # the campaign is paused: the page must catch up with every journal
                journal = _journal_points(data)
                _wait(f"the page to show every cell's points at stop {stops} ({journal})",
                      lambda journal=journal: all(_page_points(page).get(c) == n for c, n in journal.items()))  # fmt: skip
                for cell, n in _page_points(page).items():
                    if not seen[cell] or seen[cell][-1] != n:
                        seen[cell].append(n)
                if faulted is not None and not alarm_checked and fault_recorded(faulted):
                    check_alarm(page, faulted)  # the campaign is paused: the fault is on disk
                    alarm_checked = True
                if faulted is None and event["steps_done"] == 2:  # mounted and charged: fault it in its rest
                    faulted = event["cell"]
                    # the cell's next point (at its next poll) is a safety fault; other cells may finish
                    # a step first, so the alarm is checked at the first stop where the fault is on disk
                    writer.stdin.write("fault\n")
                else:
                    writer.stdin.write("go\n")
                writer.stdin.flush()
            if faulted is not None and not alarm_checked:
                _wait("the orchestrator to record the fault", lambda: fault_recorded(faulted))
                check_alarm(page, faulted)
                alarm_checked = True
            # after the campaign: the Gantt shows every cell, planned and ran
            final = _journal_points(data)
            _wait("the final points", lambda: all(_page_points(page).get(c) == n for c, n in final.items()))
            count = "() => [document.querySelectorAll('svg.gantt rect.planned').length, document.querySelectorAll('svg.gantt rect.done').length]"
            planned, bars = _wait("the Gantt with the plan", lambda: (lambda n: n if n[0] else None)(page.evaluate(count)))
            browser.close()
        assert writer.wait(timeout=TIMEOUT_S) == 0
    finally:
        for proc in (writer, monitor):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    assert faulted is not None and set(seen) == set(final)
    for cell, counts in seen.items():
        # every cell's curve was seen growing while the campaign ran (several sizes, increasing)
        assert len(counts) >= 2 and counts == sorted(counts) and counts[-1] == final[cell], (cell, counts)
    assert planned == 9 and bars >= 8  # 3 cells x 3 planned steps; the faulted cell ran 2


def test_page_with_an_api_key_in_its_address_sends_it_and_without_gets_401(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.run([sys.executable, "-m", "tests.test_monitor_writer", str(data)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert writer.returncode == 0, writer.stderr
    port = _port()
    monitor = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "monitor", "--data-dir", str(data), "--port", str(port),
         "--api-key", "k-42"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def up() -> bool:
            assert monitor.poll() is None, monitor.communicate()[1]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            except urllib.error.HTTPError as exc:
                return exc.code == 401
            except OSError:
                return False
            return False

        _wait("the monitor to answer", up)
        journal = _journal_points(data)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"))
            page = browser.new_page()
            assert page.goto(f"http://127.0.0.1:{port}/").status == 401
            page.goto(f"http://127.0.0.1:{port}/?key=k-42")
            _wait("every cell's curve", lambda: _page_points(page) == journal)
            browser.close()
    finally:
        monitor.terminate()
        monitor.wait(timeout=30)
