"""A campaign across two stations on one machine (each its own RE Manager, own Redis prefix and
own simulated instruments; one shared Redis and Tiled/PostgreSQL): every cell runs on the
station holding its channel and the results equal the one-process run of the same campaign on
the same channels within the replicate scatter.

Needs bluesky-queueserver(-api), Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432;
skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("bluesky_queueserver")
pytest.importorskip("bluesky_queueserver_api")
redis = pytest.importorskip("redis")

from tests.test_tiled_server import forget_station, serve_tiled_for_stations, station_name  # noqa: E402

CAMPAIGN = """\
name: two-stations
description: charge to 4.5 V or 4.8 V, 2 h rest, discharge; 2 cells per end point
protocol: charge-rest-discharge
replicates: 2
cell_prefix: TS
samples:
  batch: {id: LTNO-x04-B1, material: x04}
  cell_mass: 7 mg
matrix:
  charge_end: [4.5 V, 4.8 V]
  rest: [2 h]
"""


def _lab(name: str, cells: list[str]) -> str:
    text = f'[lab]\nname = "{name}"\n'
    for cell in cells:
        text += f'\n[instruments.smu-{cell}]\ndriver = "keithley2450"\nresource = "sim"\nsimulated = true\n'
    for cell in cells:
        text += (f'\n[[cells]]\nname = "{cell}"\ninstrument = "smu-{cell}"\nmaterial = "x04"\n'
                 'active_mass = "7 mg"\nvoltage_max = "4.95 V"\nvoltage_min = "1.0 V"\n')  # fmt: skip
    return text


@pytest.fixture(scope="module")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    yield from serve_tiled_for_stations(tmp_path_factory)


def test_a_campaign_across_two_stations_equals_the_one_process_run(
    tiled_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.campaign_file import load_campaign
    from orchestrator.campaign_run import run_campaign
    from orchestrator.lab import load_lab
    from orchestrator.operator_console import ConsoleOperator
    from orchestrator.station import Station, StationConfig
    from orchestrator.station_dispatch import dispatch_campaign
    from orchestrator.stations_file import load_stations
    from orchestrator.tiled_server import free_port

    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)  # type: ignore[attr-defined]
    (tmp_path / "c.yaml").write_text(CAMPAIGN)
    campaign = load_campaign(tmp_path / "c.yaml")
    holds = {"bench-a": ["pos0", "pos1"], "bench-b": ["pos2", "pos3"]}
    configs = []
    for name, cells in holds.items():
        (tmp_path / f"{name}.toml").write_text(_lab(name, cells))
        configs.append(StationConfig(station_name(name), str(tmp_path / f"{name}.toml"),
                                     tmp_path / name, tiled=tiled_server.uri,  # type: ignore[attr-defined]
                                     control_port=free_port(), info_port=free_port()))  # fmt: skip
    (tmp_path / "stations.toml").write_text("".join(
        f'[stations.{name}]\ncontrol = "{c.control_address}"\ninfo = "{c.info_address}"\nchannels = {cells!r}\n\n'
        for (name, cells), c in zip(holds.items(), configs, strict=True)
    ).replace("'", '"'))  # fmt: skip
    stations = load_stations(tmp_path / "stations.toml")
    said: list[str] = []
    try:
        with Station(configs[0]) as a, Station(configs[1]) as b:
            result = dispatch_campaign(campaign, stations, tmp_path / "dispatcher", tiled_server.uri,  # type: ignore[attr-defined]
                                       say=said.append, poll_s=0.5)  # fmt: skip
            for st in (a, b):
                api = st.api()
                api.environment_close()
                api.wait_for_idle(timeout=120)
                api.close()
    finally:
        for config in configs:
            forget_station(config.name)
    assert not result.failed, result.failed
    table = result.table()
    assert len(table) == 4 and set(table["status"]) == {"done"}
    # each cell ran on the station holding the channel the schedule gave it, two cells each
    assert all(ch in holds[st] for st, ch in zip(table["station"], table["channel"], strict=True))
    assert sorted(table["station"].value_counts()) == [2, 2]
    assert sum(line.startswith("mount cell") for line in said) == 4

    # the same campaign in one process, on the same four channels
    (tmp_path / "one.toml").write_text(_lab("one", ["pos0", "pos1", "pos2", "pos3"]))
    one = run_campaign(campaign, tmp_path / "one", lab=load_lab(tmp_path / "one.toml"),
                       responder=ConsoleOperator(ask=lambda prompt: "7", say=lambda line: None)).table()  # fmt: skip
    shown = ["charge_end", "replicate", "charge_capacity_mAh_g", "discharge_capacity_mAh_g"]
    print(table[["station", "channel", *shown]].to_string(), one[shown].to_string(), sep="\n")
    for column in ("charge_capacity_mAh_g", "discharge_capacity_mAh_g"):
        stations_mean = table.groupby("charge_end")[column].mean()
        one_mean = one.groupby("charge_end")[column].mean()
        scatter = one.groupby("charge_end")[column].std().fillna(0.0)
        for end in ("4.5 V", "4.8 V"):
            assert abs(stations_mean[end] - one_mean[end]) <= max(2 * scatter[end], 0.005 * one_mean[end]), (
                column, end, stations_mean[end], one_mean[end], scatter[end])
    # the 4.8 V charge stores more than the 4.5 V one, as in the paper
    assert table.groupby("charge_end")["charge_capacity_mAh_g"].mean().diff().iloc[-1] > 0


def test_a_station_killed_mid_campaign_resumes_its_cells_when_back_and_loses_no_point(
    tiled_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from orchestrator.campaign_file import load_campaign
    from orchestrator.station import Station, StationConfig
    from orchestrator.station_dispatch import dispatch_campaign
    from orchestrator.stations_file import load_stations
    from orchestrator.storage import journal_documents, read_journal
    from orchestrator.tiled_server import free_port

    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)  # type: ignore[attr-defined]
    (tmp_path / "c.yaml").write_text(CAMPAIGN.replace("rest: [2 h]", "rest: [200 h]"))
    campaign = load_campaign(tmp_path / "c.yaml")  # 4 cells, 2 turns on 2 channels
    (tmp_path / "a.toml").write_text(_lab("bench-a", ["pos0", "pos1"]))
    config = StationConfig(station_name("bench-a"), str(tmp_path / "a.toml"), tmp_path / "a",
                           tiled=tiled_server.uri, control_port=free_port(), info_port=free_port())  # type: ignore[attr-defined]  # fmt: skip
    (tmp_path / "stations.toml").write_text(
        f'[stations.bench-a]\ncontrol = "{config.control_address}"\nchannels = ["pos0", "pos1"]\n'
    )
    stations = load_stations(tmp_path / "stations.toml")
    dispatcher = tmp_path / "dispatcher"
    said: list[str] = []
    station = Station(config).start()
    results: list[object] = []
    try:
        # the dispatcher waits for a station that stops answering (large patience): it comes back
        first = threading.Thread(target=lambda: results.append(dispatch_campaign(
            campaign=campaign, stations=stations, data_dir=dispatcher, tiled_uri=tiled_server.uri,  # type: ignore[attr-defined]
            say=said.append, poll_s=0.2, patience=10**9)), daemon=True)  # fmt: skip
        first.start()
        journal = config.data_dir / "journal"
        # kill the station once both cells of its first turn have points read (spooled) and their
        # runs a page in the journal (waiting for that, not for a time)
        def reading() -> int:
            spooled = sum(p.stat().st_size > 0 for p in (config.data_dir / "spool").glob("*/*.jsonl"))
            paged = sum(any(name == "event_page" for name, _ in _documents(p)) for p in journal.glob("*.jsonl"))
            return min(spooled, paged)

        while reading() < 2:
            time.sleep(0.05)
        station.kill()
        killed_runs = sorted(p.stem for p in journal.glob("*.jsonl")
                             if not any(name == "stop" for name, _ in _documents(p)))  # fmt: skip
        station = Station(config).start()  # back: the dispatcher opens it and queues the cells again
        first.join(timeout=900)
        assert not first.is_alive()
        result = results[0]
        assert any("interrupted" in line and "queued again" in line for line in said)
        # --resume afterwards finds every cell done on the server and queues nothing
        again = dispatch_campaign(campaign, stations, dispatcher, tiled_server.uri, resume=True,  # type: ignore[attr-defined]
                                  say=said.append, poll_s=0.2)  # fmt: skip
        assert again.table()["run"].tolist() == result.table()["run"].tolist()  # type: ignore[attr-defined]
        api = station.api()
        api.environment_close()
        api.wait_for_idle(timeout=120)
        api.close()
    finally:
        station.stop()
        forget_station(config.name)
    assert not result.failed, result.failed  # type: ignore[attr-defined]
    table = result.table()  # type: ignore[attr-defined]
    assert set(table["status"]) == {"done"} and len(table) == 4
    # the runs the kill interrupted were closed, and every point the station read (its spool, per
    # channel and session) is in a run
    runs_of: dict[tuple[str, str], list[int]] = {}
    for path in journal.glob("*.jsonl"):
        start, frame = read_journal(config.data_dir, path.stem)
        runs_of.setdefault((start["spool"], start["channel"]), []).append(len(frame))
        assert any(name == "stop" for name, _ in journal_documents(path))
    for (session, channel), lengths in runs_of.items():
        spool = config.data_dir / "spool" / session / f"{channel}.jsonl"
        assert sum(lengths) == sum(1 for line in spool.read_text().splitlines() if line.endswith("]")) > 0
    assert killed_runs
    # the cells that were interrupted ran again, each new run naming the interrupted one
    resumes = {read_journal(config.data_dir, uid)[0].get("resumes") for uid in table["run"]}
    assert set(killed_runs) <= resumes


def _documents(path: Path) -> list[tuple[str, dict]]:
    import json

    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(tuple(json.loads(line)))
        except ValueError:
            pass  # a torn last line
    return out  # type: ignore[return-value]
