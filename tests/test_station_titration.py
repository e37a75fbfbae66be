"""A titration across two stations: powder portions heated in the oven of one station (its
operator steps done there), cells built from them on the channels of both (operator steps
between), dispatched by ``relaxlab campaign run --stations`` on the schedule of ``campaign
plan``, the state in one file. Every instrument is simulated and reached over TCP on 127.0.0.1
(the station serves it in its process, as ``relaxlab sim serve`` would); one Redis and one
Tiled/PostgreSQL. The results equal the one-process run of the same campaign on the same
instruments within the replicate scatter.

Kept small (two conditions, two replicates, short steps). Needs bluesky-queueserver(-api),
Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432; skipped otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("bluesky_queueserver")
pytest.importorskip("bluesky_queueserver_api")
redis = pytest.importorskip("redis")

from tests.station_helpers import (  # noqa: E402
    configure_stations,
    portion_campaign,
    portion_protocol,
    running_stations,
    station_lab,
)

CAMPAIGN = portion_campaign("titration-stations", "TT", 2, ["0 s", "10 min"])


def test_a_titration_across_two_stations_heats_on_one_and_builds_cells_on_both(
    stations_tiled: object, tmp_path: Path
) -> None:
    from orchestrator.campaign_file import load_campaign
    from orchestrator.campaign_run import run_campaign
    from orchestrator.lab import load_lab
    from orchestrator.operator_console import ConsoleOperator
    from orchestrator.station_dispatch import dispatch_campaign
    from orchestrator.storage import TiledStore

    (tmp_path / "portion.yaml").write_text(portion_protocol())
    (tmp_path / "c.yaml").write_text(CAMPAIGN)
    campaign = load_campaign(tmp_path / "c.yaml")
    holds = {"bench-a": (["pos0", "pos1"], False), "oven-b": (["pos2"], True)}
    configs, stations = configure_stations(tmp_path, holds, stations_tiled, tcp=True)
    said: list[str] = []
    weighed: list[tuple[str, str, str]] = []

    def weigh(portion: str, station: str, oven: str) -> float:
        weighed.append((portion, station, oven))
        return 10.0

    with running_stations(list(configs.values())):
        result = dispatch_campaign(campaign, stations, tmp_path / "dispatcher", stations_tiled.uri,  # type: ignore[attr-defined]
                                   say=said.append, poll_s=0.5, weigh=weigh)  # fmt: skip
    assert not result.failed, result.failed
    table = result.table()
    assert len(table) == 4 and set(table["status"]) == {"done"}
    # both portions were weighed for and heated in station oven-b's oven, each its own finished run
    assert sorted(p for p, _, _ in weighed) == sorted(p.id for p in campaign.portions)
    assert {(s, o) for _, s, o in weighed} == {("oven-b", "oven1")}
    assert {(p["station"], p["oven"], p["status"]) for p in result.portions.values()} == {("oven-b", "oven1", "done")}
    # the cells ran on the stations holding the channels the schedule gave them, on both stations
    assert all(ch in holds[st][0] for st, ch in zip(table["station"], table["channel"], strict=True))
    assert set(table["station"]) == {"bench-a", "oven-b"}
    # the operator carried each portion to its cells' station and built every cell there
    assert sum(line.startswith("carry portion") for line in said) == 4
    store = TiledStore(tmp_path / "dispatcher", stations_tiled.uri)  # type: ignore[attr-defined]
    try:
        portion_runs = {name: store.client[p["run"]].metadata for name, p in result.portions.items()}
        for row in table.itertuples(index=False):
            md = store.client[row.run].metadata
            start, stop = md["start"], portion_runs[row.portion]["stop"]
            assert start["portion_run"] == result.portions[row.portion]["run"]
            assert start["station"].startswith(f"{row.station}-")  # the manager of that station
            # the cell was built once its portion's run had finished (heated in oven1 unless 0 s)
            assert stop["exit_status"] == "success"
            assert portion_runs[row.portion]["start"]["oven"] == (None if row.time == "0 s" else "oven1")
            _, frame = store.read_run(row.run)
            assert list(frame.groupby("step")["step_type"].first()) == ["rest", "cc"]
    finally:
        store.close()
    # station oven-b's journal holds each portion's oven log: held at 140 C for the 10 min portion
    from orchestrator.storage import journal_documents

    for name, portion in result.portions.items():
        docs = list(journal_documents(configs["oven-b"].data_dir / "journal" / f"{portion['run']}.jsonl"))
        oven = [d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "oven"]
        log = [t for n, d in docs if n == "event_page" and d["descriptor"] in oven
               for t in d["data"]["oven1_temperature"]]  # fmt: skip
        if name.endswith("10min"):
            assert max(log) == pytest.approx(140.0, abs=2.0)
        else:  # the unheated reference never went into the oven
            assert not log or max(log) < 40.0

    # the report reads the campaign's finished cells from the shared server
    import json

    from typer.testing import CliRunner

    from orchestrator.cli import app

    out = CliRunner().invoke(app, ["report", campaign.name, "--tiled", stations_tiled.uri,  # type: ignore[attr-defined]
                                   "--data-dir", str(tmp_path / "reader"), "--out", str(tmp_path / "report"), "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    reported = json.loads(out.output)
    assert sorted(r["run"] for r in reported["runs"]) == sorted(table["run"])
    assert (tmp_path / "report" / "index.html").exists()

    # the same campaign in one process, on the same instruments (three channels, one oven)
    (tmp_path / "one.toml").write_text(station_lab("one", ["pos0", "pos1", "pos2"], oven=True, tcp=True))
    one = run_campaign(campaign, tmp_path / "one", lab=load_lab(tmp_path / "one.toml"),
                       responder=ConsoleOperator(ask=lambda prompt: "5", say=lambda line: None)).table()  # fmt: skip
    shown = ["time", "replicate", "discharge_capacity_mAh_g"]
    print(table[["station", "channel", *shown]].to_string(), one[shown].to_string(), sep="\n")
    column = "discharge_capacity_mAh_g"
    stations_mean = table.groupby("time")[column].mean()
    one_mean = one.groupby("time")[column].mean()
    scatter = one.groupby("time")[column].std().fillna(0.0)
    for time in ("0 s", "10 min"):
        assert abs(stations_mean[time] - one_mean[time]) <= max(2 * scatter[time], 0.005 * one_mean[time]), (
            column, time, stations_mean[time], one_mean[time], scatter[time])  # fmt: skip
    # the cells were built from the charged powder as each portion's run left it: the 10 min at
    # 140 C moved the powder's charge (both runs), far beyond the replicate scatter
    for mean in (stations_mean, one_mean):
        assert mean["0 s"] > 50.0
        assert abs(mean["10 min"] - mean["0 s"]) > max(10 * scatter.max(), 0.02 * mean["0 s"]), mean.to_dict()
