"""The ``relaxlab`` commands on stored runs: ``report`` and ``data list|recover|export``."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli_common import (
    DataDirOpt,
    JsonOpt,
    _fail,
    _flat_conditions,
    _guarded,
    _print,
    app,
    data_app,
)


@app.command()
@_guarded
def report(
    targets: Annotated[list[str], typer.Argument(help="Run uids (or prefixes) and/or campaign names.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for index.html and the PNGs.")] = Path(
        "relaxlab-report"
    ),
    data_dir: DataDirOpt = None,
    tiled_uri: Annotated[
        str | None, typer.Option("--tiled", help="Read runs and campaigns from this Tiled server ($TILED_API_KEY).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Figures and one HTML page for stored runs or whole campaigns (cycling, plateaus, dQ/dV, OCV...)."""
    import pandas as pd

    from analysis.campaign import campaign_table
    from analysis.campaign_fits import fit_campaign, public
    from analysis.report import build_report
    from orchestrator.run_frames import portion_record
    from orchestrator.storage import default_data_dir, read_journal, read_oven_record
    from orchestrator.summary import OCV_READ_S, format_summary, run_summary

    root = data_dir or default_data_dir()
    runs: list[tuple[dict[str, Any], Any]] = []
    timeline: list[dict[str, Any]] = []  # what actually ran, for the Gantt chart
    campaign = False
    thermal: dict[str, Any] = {}  # cell -> its recorded thermal history (campaign titrations)
    if tiled_uri is not None:  # the shared server of a lab of stations
        runs, timeline, campaign = _from_tiled(root, tiled_uri, targets)
        targets = []
    for target in targets:
        state = root / "campaigns" / target / "state.json"
        if state.exists():
            campaign = True
            jobs = json.loads(state.read_text())["jobs"]
            cells: list[tuple[dict[str, Any], Any]] = []
            ovens: dict[str, Any] = {}
            for info in jobs.values():
                if info.get("status") == "done" and info.get("uid"):
                    start, frame = read_journal(root, info["uid"])
                    if start.get("job") == "cell":
                        runs.append((_flat_conditions(start), frame))
                        timeline += _timeline(start, frame)
                        cells.append((start, frame))
                    elif start.get("job") == "portion":
                        ovens[str(start.get("portion"))] = portion_record(lambda u: read_oven_record(root, u), info["uid"])
            thermal.update(_histories(cells, ovens))
            continue
        try:
            start, frame = read_journal(root, target)
        except KeyError:
            _fail(f"{target!r} is neither a stored run nor a campaign in {root}")
        runs.append((_flat_conditions(start), frame))
    if not runs:
        _fail("nothing to report: no finished runs found")
    described = ("material", "protocol", "uid")  # describe a run; not relaxation conditions
    plain = [({k: v for k, v in m.items() if k not in described}, f) for m, f in runs]
    table = campaign_table(plain, rest_time_s=OCV_READ_S) if campaign else None
    schedule = pd.DataFrame(timeline) if timeline else None
    fits = fit_campaign(table, thermal) if table is not None and "cell" in table else None
    page = build_report(out, runs, campaign_table=table, schedule=schedule, fits=fits)
    pngs = sorted(str(p) for p in Path(out).glob("*.png"))
    summaries = [
        {"run": meta.get("uid"), **run_summary(meta, frame, with_cycles=True)} for meta, frame in runs
    ]
    human = [f"report: {page} ({len(pngs)} figures)"]
    if fits:
        human.append(_fits_text(fits).lstrip("\n"))
    if not campaign:
        human += ["", *(format_summary(s) + "\n" for s in summaries)]
    _print(
        {"report": str(page), "figures": pngs, "runs": summaries, **(public(fits) if fits else {})},
        as_json,
        "\n".join(human).rstrip(),
    )


def _from_tiled(root: Path, uri: str, targets: list[str]) -> tuple[list[Any], list[dict[str, Any]], bool]:
    """Runs (and each campaign's finished cells, with their Gantt bars) from a Tiled server."""
    from orchestrator.storage import TiledStore
    from orchestrator.tiled_campaign import campaign_runs

    store = TiledStore(root, uri)
    runs: list[Any] = []
    timeline: list[dict[str, Any]] = []
    campaign = False
    try:
        for target in targets:
            cells, _ = campaign_runs(store, target)
            if cells:
                campaign = True
                for start, frame in cells:
                    runs.append((_flat_conditions(start), frame))
                    timeline += _timeline(start, frame)
                continue
            try:
                start, frame = store.read_run(target)
            except KeyError:
                _fail(f"{target!r} is neither a run nor a campaign with finished cells on {uri}")
            runs.append((_flat_conditions(start), frame))
    finally:
        store.close()
    return runs, timeline, campaign


def _fits_text(fits: dict[str, Any]) -> str:
    lines = []
    if fits.get("E_eq_V") is not None:
        lo, hi = fits["E_eq_V_95"]
        lines.append(f"E_eq = {fits['E_eq_V']:.3f} ± {fits['E_eq_V_err']:.3f} V (95 %: {lo:.3f}-{hi:.3f} V; "
                     f"powder charged to {fits['E_eq_charge_state']})")  # fmt: skip
    if fits.get("Ea_kJ_mol") is not None:
        k = fits["kinetics"]
        lines.append(f"Ea = {fits['Ea_kJ_mol']:.1f} ± {fits['Ea_kJ_mol_err']:.1f} kJ/mol, beta = {fits['beta']:.2f} ± "
                     f"{fits['beta_err']:.2f}, k(413 K) = {fits['k413_per_s']:.3g} ± {fits['k413_per_s_err']:.2g} 1/s "
                     f"(u = 1 at the {k['u_equals_1_at']}; {k['n_cells']} cells)")  # fmt: skip
    return "".join("\n" + line for line in lines)


def _histories(cells: list[tuple[dict[str, Any], Any]], ovens: dict[str, Any]) -> dict[str, Any]:
    """Each titration cell's temperature history: bench from the end of the powder's charge,
    its portion's oven log while in the oven (transfers recorded), bench until its discharge."""
    from analysis.thermal_history import history_from_record

    out = {}
    for start, frame in cells:
        ready = start.get("powder_ready_s")
        discharging = frame[frame["current_A"] < 0]
        if ready is None or discharging.empty or start.get("portion") is None:
            continue
        record = ovens.get(start["portion"])
        log = moves = None
        if record is not None and len(record):
            log = record[record["stream"] == "oven"]
            moves = record[record["stream"] == "transfers"]
        out[str(start["cell"])] = history_from_record(
            float(ready), float(discharging["timestamp_s"].iloc[0]), float(start.get("bench_temperature_C", 25.0)),
            log["timestamp_s"] if log is not None else (), log["temperature_C"] if log is not None else (),
            list(zip(moves["timestamp_s"], moves["portion_location"], strict=True)) if moves is not None else (),
        )  # fmt: skip
    return out


def _timeline(start: dict[str, Any], frame: Any) -> list[dict[str, Any]]:
    """One Gantt bar per step a cell actually ran (absolute clock times)."""
    bars = []
    for _, step in frame.groupby("step", sort=True):
        bars.append({"cell": start.get("cell"), "start_s": float(step["timestamp_s"].iloc[0]),
                     "end_s": float(step["timestamp_s"].iloc[-1]), "label": str(step["step_type"].iloc[0])})  # fmt: skip
    return bars


@data_app.command("list")
@_guarded
def data_list(as_json: JsonOpt = False, data_dir: DataDirOpt = None) -> None:
    """List stored runs, newest first."""
    from orchestrator.storage import default_data_dir, list_journal_runs

    runs = list_journal_runs(data_dir or default_data_dir())
    lines = [f"{'run':10s} {'when':19s} {'plan':20s} {'cell':10s} {'points':>8s} status"]
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["time"]))
        lines.append(
            f"{r['uid'][:8]:10s} {when:19s} {str(r['plan_name']):20s} {str(r['cell']):10s} "
            f"{r['points']:8d} {r['exit_status']}"
        )
    _print(runs, as_json, "\n".join(lines))


@data_app.command("recover")
@_guarded
def data_recover(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Close runs a crash left open: append the points the spool holds that the journal lacks.

    Runs a live orchestrator is writing are left alone; a torn last line is cut off; a run
    damaged before its end is reported (exit code 1). Safe to run any number of times."""
    from dataclasses import asdict

    from orchestrator.storage import default_data_dir, recover

    report = recover(data_dir or default_data_dir())
    lines = [f"{uid[:8]}: {report.repaired[uid]}" for uid in report.repaired]
    lines += [f"{uid[:8]}: {n} points recovered, run closed" for uid, n in report.recovered.items()]
    lines += [f"{uid[:8]}: rebuilt in the Tiled catalog from the journal" for uid in report.tiled]
    lines += [f"{uid[:8]}: live (an orchestrator is writing it), not touched" for uid in report.live]
    lines += [f"error: {message}" for message in report.damaged.values()]
    _print(
        asdict(report) if as_json else report.recovered, as_json, "\n".join(lines) or "no interrupted runs"
    )
    if report.damaged:
        raise typer.Exit(1)


@data_app.command("export")
@_guarded
def data_export(
    run_id: Annotated[str, typer.Argument(help="Run uid (or a unique prefix).")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default: <uid>.<format>).")] = None,
    source: Annotated[str, typer.Option(help="Read from the 'journal' or the 'tiled' catalog.")] = "journal",
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    tiled_uri: Annotated[
        str | None, typer.Option("--tiled", help="Read from this Tiled server (api key: $TILED_API_KEY).")
    ] = None,
) -> None:
    """Export a run's points: time_s, voltage_V, current_A, specific_current_mA_g, capacity_mAh_g, ..."""
    from orchestrator.storage import JournalDamaged, TiledStore, default_data_dir, read_journal, write_export

    if fmt not in ("csv", "parquet"):
        _fail(f"--format must be csv or parquet, not {fmt!r}")
    root = data_dir or default_data_dir()
    try:
        if source == "tiled" or tiled_uri:
            if tiled_uri is None:  # the embedded catalog: first what the journal has more
                from orchestrator.storage import _journal_path
                from orchestrator.tiled_fill import fill, filler_running, pending

                with contextlib.suppress(KeyError):
                    uid = _journal_path(root, run_id).stem
                    if pending(root, [uid]) or filler_running(root):
                        typer.echo("bringing the Tiled catalog up to date with the journal ...", err=True)
                    fill(root, [uid])
            store = TiledStore(root, tiled_uri)
            try:
                start, frame = store.read_run(run_id)
            finally:
                store.close()
        else:
            start, frame = read_journal(root, run_id)
    except KeyError as exc:
        _fail(str(exc.args[0]) if exc.args else f"no run {run_id!r}")
    except JournalDamaged as exc:
        _fail(str(exc), code=1)
    if frame.empty and start.get("job") == "portion":  # an oven run: its temperature log and transfers
        from orchestrator.storage import read_oven_record

        start, frame = read_oven_record(root, start["uid"])
    path = out or Path(f"{start['uid']}.{fmt}")
    write_export(frame, path, fmt)
    _print(
        {"run": start["uid"], "file": str(path), "points": len(frame)},
        as_json,
        f"wrote {len(frame)} points to {path}",
    )
