"""The monitor's JSON API (Starlette TestClient) on the data folder of a real simulated campaign.

The data comes from a three-cell campaign on the simulated lab (``tests/test_monitor_writer.py``,
the public :func:`run_campaign`) in which one cell's channel gets a safety limit below the cell's
voltage after its charge: the orchestrator faults that cell and the others finish. What the API
serves is checked against the journals as relaxlab's storage reads them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # starlette asks for httpx2 one day; httpx is what it uses today
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from orchestrator.monitor import create_app  # noqa: E402
from orchestrator.monitor.app import MonitorConfigError, check_binding  # noqa: E402
from orchestrator.storage import list_journal_runs, read_raw_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAULTED = "MON-4.8V-1h-100mAperg-r2"


@pytest.fixture(scope="module")
def campaign_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("monitor")
    out = subprocess.run(
        [sys.executable, "-m", "tests.test_monitor_writer", str(folder / "data"), "--fault", FAULTED],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["failed"].keys() == {FAULTED}
    return folder / "data"


def _client(data: Path, **kw) -> TestClient:
    """The monitor of ``data``, given the campaign file the writer ran (as ``--campaign FILE``),
    once it has planned the campaigns it found (planning runs beside the requests)."""
    kw.setdefault("campaign_files", {"monitor-demo": data.parent / "monitor-demo.yaml"})
    app = create_app(data, **kw)
    deadline = time.monotonic() + 300
    while not _monitor(app).plans_ready():
        assert time.monotonic() < deadline, "the campaign plan never came"
        time.sleep(0.05)
    return TestClient(app)


def _monitor(app):
    while not hasattr(app, "state"):
        app = app.app  # inside the API-key guard
    return app.state.monitor


def _runs_by_cell(data: Path) -> dict[str, dict]:
    return {r["cell"]: r for r in list_journal_runs(data)}


def test_status_shows_every_cell_with_its_channel_state_and_points(campaign_data: Path) -> None:
    status = _client(campaign_data).get("/api/status").json()
    runs = _runs_by_cell(campaign_data)
    cells = {c["cell"]: c for c in status["cells"]}
    assert set(cells) == set(runs)
    for name, run in runs.items():
        start, _ = read_raw_run(campaign_data, run["uid"])
        cell = cells[name]
        assert cell["campaign"] == "monitor-demo"
        assert cell["channel"] == start["channel"]
        assert cell["points"] == run["points"]
        assert cell["status"] == ("failed" if name == FAULTED else "done")
    channels = {r["name"]: r for s in status["stations"] for r in s["resources"]}
    assert set(channels) == {"ch01", "ch02", "ch03"}
    assert not any(r["busy"] for r in channels.values())  # the campaign ended


def test_points_are_the_journal_voltages_and_since_returns_only_newer_points(campaign_data: Path) -> None:
    client = _client(campaign_data)
    status = client.get("/api/status").json()
    for cell in status["cells"]:
        _, frame = read_raw_run(campaign_data, cell["run"])
        whole = client.get(f"/api/cells/{cell['id']}/points", params={"since": 0}).json()
        assert whole["voltage_V"] == pytest.approx(frame["voltage_V"].tolist())
        times = (frame["timestamp"] - frame["timestamp"].iloc[0]).tolist()
        assert whole["time_s"] == pytest.approx(times)
        half = len(frame) // 2
        rest = client.get(f"/api/cells/{cell['id']}/points", params={"since": half}).json()
        assert rest["seq"][0] == half + 1 and rest["voltage_V"] == whole["voltage_V"][half:]
        assert client.get(f"/api/cells/{cell['id']}/points", params={"since": len(frame)}).json()["seq"] == []
    ids = {c["id"]: 10 for c in status["cells"]}
    many = client.post("/api/points", json={"since": {**ids, "nobody": 0}}).json()
    assert set(many) == set(ids)  # unknown cells left out
    for cell_id, got in many.items():
        one = client.get(f"/api/cells/{cell_id}/points", params={"since": 10}).json()
        assert got == one and got["seq"][0] == 11
    assert client.post("/api/points", json={"since": {"x": "y"}}).status_code == 400
    assert client.get("/api/cells/nobody/points").status_code == 404
    assert client.get(f"/api/cells/{status['cells'][0]['id']}/points", params={"since": "x"}).status_code == 400


def test_a_safety_fault_is_an_alarm_naming_the_cell_channel_and_cause(campaign_data: Path) -> None:
    alarms = _client(campaign_data).get("/api/status").json()["alarms"]
    run = _runs_by_cell(campaign_data)[FAULTED]
    state = json.loads((campaign_data / "campaigns" / "monitor-demo" / "state.json").read_text())
    reason = state["jobs"][FAULTED]["reason"]
    assert [a["cell"] for a in alarms] == [f"monitor-demo:{FAULTED}"]  # one alarm, not one per source
    (alarm,) = alarms
    assert alarm["level"] == "safety" and alarm["message"] == reason
    assert alarm["run"] == run["uid"] and alarm["channel"] == read_raw_run(campaign_data, run["uid"])[0]["channel"]


def test_campaign_gantt_has_the_plan_and_what_ran(campaign_data: Path) -> None:
    (camp,) = _client(campaign_data).get("/api/status").json()["campaigns"]
    assert camp["name"] == "monitor-demo" and camp["cells_done"] == 2 and camp["cells_failed"] == 1
    planned = camp["gantt"]["planned"]
    assert {b["cell"] for b in planned} == set(_runs_by_cell(campaign_data))
    assert [b["task"] for b in planned if b["cell"] == FAULTED] == ["cc", "rest", "cc"]
    ran = [b for b in camp["gantt"]["done"] if b["cell"] == FAULTED]
    assert [b["task"] for b in ran] == ["cc", "rest"] and ran[-1]["state"] == "failed"
    assert camp["eta_s"] == 0  # nothing left to run
    (bare,) = _client(campaign_data, campaign_files={}).get("/api/status").json()["campaigns"]
    assert bare["gantt"]["planned"] == [] and "--campaign" in bare["plan_note"]
    assert [b["task"] for b in bare["gantt"]["done"] if b["cell"] == FAULTED] == ["cc", "rest"]


def test_journal_read_incrementally_as_it_is_written(campaign_data: Path, tmp_path: Path) -> None:
    """A journal appended in pieces (a line cut in the middle too): every poll serves the whole
    lines written so far, never a half line, and nothing twice."""
    run = _runs_by_cell(campaign_data)["MON-4.8V-1h-100mAperg-r1"]
    lines = (campaign_data / "journal" / f"{run['uid']}.jsonl").read_bytes().splitlines(keepends=True)
    live = tmp_path / "data" / "journal"
    live.mkdir(parents=True)
    client = _client(tmp_path / "data")
    expected, written, seen = [], 0, []
    with open(live / f"{run['uid']}.jsonl", "ab") as f:
        for line in lines:
            name, doc = json.loads(line)
            f.write(line[: len(line) // 2])
            f.flush()
            middle = client.get("/api/status").json()["cells"]
            f.write(line[len(line) // 2 :])
            f.flush()
            whole = client.get("/api/status").json()["cells"]
            seen.append((middle[0]["points"] if middle else 0, whole[0]["points"] if whole else 0))
            expected.append((written, written + (len(doc["seq_num"]) if name == "event_page" else 0)))
            written = expected[-1][1]
    _, frame = read_raw_run(campaign_data, run["uid"])
    assert written == len(frame) and len({b for _, b in seen}) > 3
    assert seen == expected  # a half-written line is not read; a whole one is read once
    monitor_points = client.get(f"/api/cells/{client.get('/api/status').json()['cells'][0]['id']}/points").json()
    assert monitor_points["voltage_V"] == pytest.approx(frame["voltage_V"].tolist())


def test_damaged_journal_line_is_an_alarm_not_skipped(campaign_data: Path, tmp_path: Path) -> None:
    run = _runs_by_cell(campaign_data)["MON-4.8V-1h-100mAperg-r3"]
    lines = (campaign_data / "journal" / f"{run['uid']}.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal" / f"{run['uid']}.jsonl").write_bytes(b"".join(lines[:4]) + b"{garbage\n" + b"".join(lines[4:]))
    alarms = _client(tmp_path).get("/api/status").json()["alarms"]
    assert [a["level"] for a in alarms] == ["damaged"] and run["uid"] in alarms[0]["run"]


def test_api_key_guards_every_route(campaign_data: Path) -> None:
    client = _client(campaign_data, api_key="s3cret")
    for path in ("/", "/api/status", "/healthz"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get(path, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/api/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/?key=s3cret").status_code == 200


def test_non_loopback_address_needs_a_key() -> None:
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    check_binding("localhost", None)
    for host in ("0.0.0.0", "192.168.1.20", "lab-pc.example.org"):
        with pytest.raises(MonitorConfigError, match="API key"):
            check_binding(host, None)
        check_binding(host, "k")


def test_cli_refuses_a_public_address_without_a_key(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "monitor", "--data-dir", str(tmp_path), "--host", "0.0.0.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**_env(), "RELAXLAB_MONITOR_KEY": ""},
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "API key" in out.stderr and "Traceback" not in out.stderr


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_page_is_served_without_outside_resources(campaign_data: Path) -> None:
    page = _client(campaign_data).get("/").text
    assert "api/status" in page and "getContext" in page  # polls the API, draws on a canvas itself
    for outside in ("http://", "https://", "//cdn", "<script src", "<link"):
        assert outside not in page


class _ListSource:
    """A source of documents held in memory: what another source (a Tiled server) provides."""

    station = "bench-9"

    def __init__(self) -> None:
        self.damaged: dict[str, str] = {}
        self.pending: list[tuple[str, str, dict]] = []

    def new_documents(self):
        docs, self.pending = self.pending, []
        yield from docs

    def campaign_states(self) -> dict:
        return {}


def test_any_source_feeds_the_monitor_and_long_curves_are_thinned_keeping_the_newest_point() -> None:
    from event_model import compose_run

    from orchestrator.monitor.model import MAX_POINTS, Monitor

    source = _ListSource()
    monitor = Monitor(source)
    run = compose_run(metadata={"cell": "Z9", "channel": "chA", "step_types": ["rest"]})
    desc = run.compose_descriptor(name="primary", data_keys={k: {"source": "x", "dtype": "number", "shape": []}
                                                             for k in ("voltage_V", "current_A", "step")})  # fmt: skip
    uid = run.start_doc["uid"]
    source.pending += [(uid, "start", dict(run.start_doc)), (uid, "descriptor", dict(desc.descriptor_doc))]
    n = 2 * MAX_POINTS + 123
    for lo in range(0, n, 1000):
        k = list(range(lo, min(lo + 1000, n)))
        data = {"voltage_V": [3.0 + i * 1e-6 for i in k], "current_A": [0.0] * len(k), "step": [0] * len(k)}
        source.pending.append((uid, "event_page", {"descriptor": desc.descriptor_doc["uid"], "data": data,
                                                   "timestamps": {key: [1000.0 + i for i in k] for key in data}}))  # fmt: skip
    (cell,) = monitor.status()["cells"]
    assert cell["id"] == f"Z9@{uid[:8]}" and cell["station"] == "bench-9" and cell["status"] == "running"
    assert cell["points"] == n and cell["voltage_V"] == pytest.approx(3.0 + (n - 1) * 1e-6)
    curve = monitor.points(cell["id"], 0)
    assert curve is not None and curve["total"] == n
    assert MAX_POINTS // 2 <= len(curve["seq"]) <= MAX_POINTS and curve["stride"] > 1
    assert curve["seq"] == sorted(curve["seq"]) and curve["seq"][0] == 1
    assert curve["time_s"][0] == 0 and curve["time_s"][-1] == pytest.approx(curve["seq"][-1] - 1)
    newer = monitor.points(cell["id"], curve["seq"][-2])
    assert newer is not None and newer["seq"] == curve["seq"][-1:]
