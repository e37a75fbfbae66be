"""The ``relaxlab campaign`` commands: ``plan`` and ``run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli_common import (
    DEFAULT_CHANNELS,
    DEFAULT_OVENS,
    MAX_CHANNELS,
    MAX_OVENS,
    OUT_DIR,
    DataDirOpt,
    JsonOpt,
    _command,
    _data_root,
    _fail,
    _guarded,
    _interrupted,
    _on_served_instruments,
    _print,
    _writable_dir,
    app,
    progress_mode,
)

campaign_app = typer.Typer(
    help="Relaxation campaigns: many cells, conditions and replicates.", no_args_is_help=True
)
app.add_typer(campaign_app, name="campaign")


CampaignArg = Annotated[str, typer.Argument(help="Campaign file, or a built-in name (e.g. temperature-24h).")]
#: What the campaign runs on: `plan` schedules on these, `run` simulates these.
ChannelsOpt = Annotated[
    int,
    typer.Option(
        help="Potentiostat channels to schedule on (simulated by `campaign run`).", min=1, max=MAX_CHANNELS
    ),
]
OvensOpt = Annotated[
    int, typer.Option(help="Ovens to schedule on (simulated by `campaign run`).", min=1, max=MAX_OVENS)
]


def _load_campaign(name_or_path: str) -> Any:
    from orchestrator.campaign_file import CampaignError, load_campaign
    from orchestrator.catalog import campaign_names, missing_name_hint

    try:
        return load_campaign(name_or_path)
    except CampaignError as exc:
        _fail(str(exc) + missing_name_hint(name_or_path, campaign_names()))


@campaign_app.command("plan")
@_guarded
def campaign_plan(
    campaign_file: CampaignArg,
    channels: ChannelsOpt = DEFAULT_CHANNELS,
    ovens: OvensOpt = DEFAULT_OVENS,
    out: Annotated[Path, typer.Option("--out", help="Folder for the Gantt chart.")] = OUT_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Show a campaign's schedule (table and Gantt PNG) and its ETA before anything starts."""
    from orchestrator.estimate import campaign_estimator
    from orchestrator.schedule import plan_campaign

    campaign = _load_campaign(campaign_file)
    schedule = plan_campaign(campaign, channels=channels, ovens=ovens, durations=campaign_estimator(campaign))
    out = _writable_dir(out, "--out folder")
    png = schedule.gantt_png(out / f"{campaign.name}-gantt.png")
    frame = schedule.frame
    data = {
        "campaign": campaign.name,
        "cells": len(campaign.cells),
        "channels": channels,
        "ovens": ovens,
        "eta_h": schedule.makespan_s / 3600.0,
        "gantt": str(png),
        "tasks": frame.to_dict(orient="records"),
    }
    human = (
        frame.assign(start_h=frame["start_s"] / 3600, end_h=frame["end_s"] / 3600)
        .drop(columns=["start_s", "end_s"])
        .to_string(index=False, float_format=lambda v: f"{v:.1f}")
        + f"\n\n{len(campaign.cells)} cells on {channels} channels and {ovens} oven(s): "
        f"ETA {schedule.makespan_s / 3600:.1f} h\nGantt chart: {png}"
    )
    _print(data, as_json, human)


@campaign_app.command("run")
@_guarded
def campaign_run(
    campaign_file: CampaignArg,
    channels: ChannelsOpt = DEFAULT_CHANNELS,
    ovens: OvensOpt = DEFAULT_OVENS,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip finished jobs of an interrupted run.")
    ] = False,
    seed: Annotated[
        int, typer.Option(help="Seed of the simulated measurement noise.", min=0, max=2**32 - 1)
    ] = 1,
    lab_file: Annotated[
        str | None, typer.Option("--lab", help="Run on this lab file's channels (operator prompts here).")
    ] = None,
    sim_clock: Annotated[
        Path | None,
        typer.Option("--sim-clock", help="Clock file of a `relaxlab sim serve` process serving the lab."),
    ] = None,
    data_dir: DataDirOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the summary CSV.")] = OUT_DIR,
    as_json: JsonOpt = False,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Run a campaign that already ran again from the start.")
    ] = False,
    stations_file: Annotated[
        Path | None, typer.Option("--stations", help="Dispatch to the stations of this file (needs --tiled).")
    ] = None,
    tiled_uri: Annotated[
        str | None, typer.Option("--tiled", help="The stations' Tiled server (api key: $TILED_API_KEY).")
    ] = None,
) -> None:
    """Run a campaign: every cell concurrently, ovens shared, progress per cell.

    Without --lab on the simulated lab (simulated operator); with --lab on that lab's channels,
    asking you at this console for each operator step. With --resume after a crash, finished
    steps are skipped and steps still running on the lab's instruments are re-attached."""
    from bluesky.utils import RunEngineInterrupted

    from drivers.transport import InstrumentError
    from orchestrator.campaign_run import run_campaign
    from orchestrator.checks import campaign_problems
    from orchestrator.lab import load_lab
    from orchestrator.simtime import read_clock_file
    from orchestrator.storage import RunIsLive

    campaign = _load_campaign(campaign_file)
    lab = load_lab(lab_file) if lab_file else None
    if sim_clock is not None and lab is None:
        _fail("--sim-clock needs --lab: the lab file whose instruments `sim serve` serves")
    problems = campaign_problems(campaign, lab, ovens)  # the same checks as `relaxlab validate`
    if problems:
        _fail("\n".join(problems))
    try:
        clock = read_clock_file(sim_clock) if sim_clock is not None else None
        if lab is not None and sim_clock is not None:
            lab = _on_served_instruments(lab, [], sim_clock)
    except ValueError as exc:
        _fail(str(exc))
    _writable_dir(out, "--out folder", create=False)
    root = _data_root(data_dir)
    out = _writable_dir(out, "--out folder")
    try:
        if stations_file is not None:  # across stations: orchestrator/station_dispatch.py
            from orchestrator.station_cli import dispatch

            result = dispatch(
                campaign, stations_file, root, tiled_uri, resume, rerun, interactive=not as_json
            )
        else:
            result = run_campaign(
                campaign, root, channels=channels, ovens=ovens,
                progress=progress_mode(as_json), resume=resume, seed=seed, lab=lab, clock=clock,
                rerun=rerun,
            )  # fmt: skip
    except (RunEngineInterrupted, KeyboardInterrupt):
        sizes = () if lab else (*(("--channels", channels) if channels != DEFAULT_CHANNELS else ()),
                                *(("--ovens", ovens) if ovens != DEFAULT_OVENS else ()))  # fmt: skip
        again = _command("campaign", "run", campaign_file, *sizes, *(("--lab", lab_file) if lab_file else ()),
                         *(("--sim-clock", sim_clock) if sim_clock else ()),
                         *(("--data-dir", data_dir) if data_dir else ()), "--resume")  # fmt: skip
        recover = _command("data", "recover", *(("--data-dir", data_dir) if data_dir else ()))
        _interrupted(f"campaign {campaign.name}", [f"resume it:  {again}",
                                                   f"(runs left open by a second Ctrl-C are closed by the resume, or by:  {recover})"])  # fmt: skip
    except (InstrumentError, ValueError, RunIsLive) as exc:
        _fail(str(exc))
    finally:
        if clock is not None and hasattr(clock, "close"):
            clock.close()  # a `sim serve --stepped` lab's lease ends with the campaign
    table = result.table()
    csv = out / f"{campaign.name}-cells.csv"
    table.to_csv(csv, index=False)
    data = {"campaign": campaign.name, "cells": len(table), "failed": result.failed,
            "simulated_h": result.simulated_h, "wall_s": result.wall_s, "table": str(csv),
            "rows": table.to_dict(orient="records")}  # fmt: skip
    columns = [c for c in table.columns if c not in ("run", "portion")]
    human = table[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}")
    human += (
        f"\n\n{len(table)} cells, {result.simulated_h:.1f} h simulated in {result.wall_s:.1f} s; table: {csv}"
    )
    if result.failed:
        human += "\nFAILED:\n" + "\n".join(f"  {k}: {v}" for k, v in result.failed.items())
    _print(data, as_json, human)
    if result.failed:
        raise typer.Exit(1)
