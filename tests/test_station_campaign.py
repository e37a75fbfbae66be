"""A campaign across two stations on one machine (each its own RE Manager, own Redis prefix and
own simulated instruments; one shared Redis and Tiled/PostgreSQL): every cell runs on the
station holding its channel and the results equal the one-process run of the same campaign on
the same channels within the replicate scatter.

Needs bluesky-queueserver(-api), Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432;
skipped otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("bluesky_queueserver")
pytest.importorskip("bluesky_queueserver_api")
redis = pytest.importorskip("redis")

from tests.station_helpers import Dispatch, close_station, configure_stations, running_stations, station_lab  # noqa: E402
from tests.test_tiled_server import forget_station  # noqa: E402

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


def test_a_campaign_across_two_stations_equals_the_one_process_run(
    stations_tiled: object, tmp_path: Path
) -> None:
    from orchestrator.campaign_file import load_campaign
    from orchestrator.campaign_run import run_campaign
    from orchestrator.lab import load_lab
    from orchestrator.operator_console import ConsoleOperator
    from orchestrator.station_dispatch import dispatch_campaign

    (tmp_path / "c.yaml").write_text(CAMPAIGN)
    campaign = load_campaign(tmp_path / "c.yaml")
    holds = {"bench-a": ["pos0", "pos1"], "bench-b": ["pos2", "pos3"]}
    configs, stations = configure_stations(tmp_path, {name: (cells, False) for name, cells in holds.items()},
                                           stations_tiled, active_mass="7 mg")  # fmt: skip
    said: list[str] = []
    with running_stations(list(configs.values())):
        result = dispatch_campaign(campaign, stations, tmp_path / "dispatcher", stations_tiled.uri,  # type: ignore[attr-defined]
                                   say=said.append, poll_s=0.5)  # fmt: skip
    assert not result.failed, result.failed
    table = result.table()
    assert len(table) == 4 and set(table["status"]) == {"done"}
    # each cell ran on the station holding the channel the schedule gave it, two cells each
    assert all(ch in holds[st] for st, ch in zip(table["station"], table["channel"], strict=True))
    assert sorted(table["station"].value_counts()) == [2, 2]
    assert sum(line.startswith("mount cell") for line in said) == 4

    # the same campaign in one process, on the same four channels
    (tmp_path / "one.toml").write_text(station_lab("one", ["pos0", "pos1", "pos2", "pos3"], active_mass="7 mg"))
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
    stations_tiled: object, tmp_path: Path
) -> None:
    import time

    from orchestrator.campaign_file import load_campaign
    from orchestrator.station import Station
    from orchestrator.station_dispatch import dispatch_campaign
    from orchestrator.storage import journal_documents, read_journal

    (tmp_path / "c.yaml").write_text(CAMPAIGN.replace("rest: [2 h]", "rest: [200 h]"))
    campaign = load_campaign(tmp_path / "c.yaml")  # 4 cells, 2 turns on 2 channels
    configs, stations = configure_stations(tmp_path, {"bench-a": (["pos0", "pos1"], False)}, stations_tiled,
                                           active_mass="7 mg")  # fmt: skip
    config = configs["bench-a"]
    dispatcher = tmp_path / "dispatcher"
    station = Station(config).start()
    try:
        # the dispatcher waits for a station that stops answering (large patience): it comes back
        first = Dispatch(campaign, stations, dispatcher, stations_tiled, poll_s=0.2, patience=10**9).start()
        said = first.said
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
        first.join()
        result = first.result
        assert any("interrupted" in line and "queued again" in line for line in said)
        # --resume afterwards finds every cell done on the server and queues nothing
        again = dispatch_campaign(campaign, stations, dispatcher, stations_tiled.uri, resume=True,  # type: ignore[attr-defined]
                                  say=said.append, poll_s=0.2)  # fmt: skip
        assert again.table()["run"].tolist() == result.table()["run"].tolist()
        close_station(station)
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
