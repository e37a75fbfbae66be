"""The ``relaxlab`` command. Every command takes ``--json`` for scripts."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="relaxlab: automated relaxation experiments on Li-rich cathodes.", no_args_is_help=True
)
sim_app = typer.Typer(help="The simulated lab.", no_args_is_help=True)
data_app = typer.Typer(help="Stored runs.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(data_app, name="data")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where runs are stored (default $RELAXLAB_DATA or ~/.local/share/relaxlab)."
    ),
]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _print(data: Any, as_json: bool, human: str) -> None:
    typer.echo(json.dumps(data, indent=2, default=str) if as_json else human)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"relaxlab {version('relaxlab')}")
        except PackageNotFoundError:
            typer.echo("relaxlab (not installed: no version)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """relaxlab: automated relaxation experiments on Li-rich cathodes."""


@app.command()
def examples(as_json: JsonOpt = False) -> None:
    """List the shipped example protocols and campaigns with their one-line descriptions."""
    from orchestrator.catalog import shipped

    rows = shipped()
    lines = []
    for kind in ("protocol", "campaign"):
        lines.append("example protocols (relaxlab run NAME --lab simulated):" if kind == "protocol"
                     else "\ncampaigns (relaxlab campaign plan|run NAME):")  # fmt: skip
        width = max(len(r["name"]) for r in rows)
        lines += [f"  {r['name']:{width}s}  {r['description']}" for r in rows if r["kind"] == kind]
    _print(rows, as_json, "\n".join(lines))


def _session(lab: Any, data_dir: Path | None, tiled: bool, progress: bool, **kw: Any) -> Any:
    from orchestrator.runner import Session

    return Session(lab, data_dir=data_dir, tiled=tiled, progress=progress, **kw)


@app.command()
def demo(
    as_json: JsonOpt = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG.")] = Path("relaxlab-out"),
    data_dir: DataDirOpt = None,
    tiled: Annotated[bool, typer.Option(help="Also store the run in the Tiled catalog.")] = True,
    rest_h: Annotated[float, typer.Option("--rest-h", help="Open-circuit rest, hours.")] = 24.0,
) -> None:
    """Run the paper's relaxation protocol on the simulated lab and summarise it.

    7 mg of Li1.17Ti0.58Ni0.25O2: 20 mA/g to 4.8 V, 24 h at open circuit, 20 mA/g to 1.85 V.
    """
    from orchestrator.lab import load_lab
    from orchestrator.summary import relaxation_summary, voltage_capacity_png
    from protocols.plans import relaxation_protocol

    lab = load_lab("simulated")
    wall0 = time.perf_counter()
    session = _session(lab, data_dir, tiled, progress=not as_json and sys.stderr.isatty())
    try:
        cell = lab.cells[0]
        (uid,) = session.run(
            relaxation_protocol(
                session.channel(),
                rest_s=rest_h * 3600.0,
                md={"sample": cell.sample, "cell": cell.name, "material": cell.material},
            )
        )
        start, frame = session.read(uid)
    finally:
        session.close()
    summary = {"run": uid, **relaxation_summary(frame)}
    summary["wall_s"] = round(time.perf_counter() - wall0, 2)
    summary["data_dir"] = str(session.data_dir)
    png = voltage_capacity_png(start, frame, out / f"demo-{uid[:8]}.png")
    summary["plot"] = str(png) if png else None
    human = "\n".join(
        [
            f"run {uid}  ({summary['points']} points, {summary['duration_h']:.1f} h simulated "
            f"in {summary['wall_s']:.1f} s)",
            f"charge capacity     {summary['charge_capacity_mAh_g']:7.1f} mAh/g "
            f"(to {summary['charge_end_voltage_V']:.2f} V)",
            f"rest end voltage    {summary['rest_end_voltage_V']:7.3f} V after {summary['rest_duration_h']:.1f} h",
            f"discharge capacity  {summary['discharge_capacity_mAh_g']:7.1f} mAh/g",
            f"  Ni plateau (4.5-2.5 V)   {summary['ni_plateau_mAh_g']:6.1f} mAh/g",
            f"  O plateau (2.5-1.85 V)   {summary['o_plateau_mAh_g']:6.1f} mAh/g",
            f"plot                {summary['plot']}",
            f"export              relaxlab data export {uid[:8]} --format csv",
        ]
    )
    _print(summary, as_json, human)


@app.command()
def run(
    protocol: Annotated[str, typer.Argument(help="Protocol file (YAML) or a built-in example name.")],
    lab_file: Annotated[str, typer.Option("--lab", help="Lab file, or 'simulated' for the built-in lab.")],
    cell: Annotated[
        str | None, typer.Option("--cell", help="Cell of the lab file (default: the first).")
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
    tiled: Annotated[bool, typer.Option(help="Also store the run in the Tiled catalog.")] = True,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG.")] = Path("relaxlab-out"),
) -> None:
    """Run a protocol on one cell of a lab (real instruments or the simulated lab).

    Ends with the summary that fits the technique (relaxation: charge, rest, OCV, discharge and
    plateaus; cycling, GITT, CV: a per-cycle table) and a PNG. Heat, XRD and manual steps run on
    the simulated lab (simulated oven, diffractometer and operator; `relaxlab examples` lists the
    shipped protocols)."""
    from drivers.transport import InstrumentError
    from orchestrator.lab import LabFileError, load_lab
    from orchestrator.storage import default_data_dir, read_journal
    from protocols.plans import run_protocol
    from protocols.schema import ProtocolError, load_protocol

    try:
        lab = load_lab(lab_file)
        proto = load_protocol(protocol)
        config = lab.cell(cell)
    except (LabFileError, ProtocolError) as exc:
        _fail(str(exc) + _hint(protocol, lab_file, cell))
    from drivers.techniques import GITT, ConstantCurrent, ConstantVoltage, Loop, Rest, Sweep

    techniques = [
        st
        for st in proto.steps
        if isinstance(st, ConstantCurrent | ConstantVoltage | Rest | Sweep | GITT | Loop)
    ]
    if len(techniques) < len(proto.steps):  # heat, xrd or manual steps: orchestrator/example_lab.py
        from orchestrator.example_lab import check_lab, run_on_simulated_lab

        try:
            check_lab(proto, lab)
            done = run_on_simulated_lab(proto, lab, config, data_dir or default_data_dir(), tiled=tiled)
            start, frame = read_journal(data_dir or default_data_dir(), done.uid)
        except (ValueError, RuntimeError) as exc:
            _fail(str(exc))
        _run_summary(proto.name, done.uid, start, frame, out, as_json, {"portion_run": done.portion_uid,
                     "simulated_h": done.simulated_h, "wall_s": done.wall_s, "recorded": done.recorded,
                     "xrd_scans": done.scans if as_json else _scans_text(done.scans)})  # fmt: skip
        return
    try:
        session = _session(
            lab, data_dir, tiled, progress=not as_json and sys.stderr.isatty(), cells=[config.name]
        )
    except InstrumentError as exc:
        _fail(f"cannot reach an instrument: {exc}")
    try:
        md = {
            "sample": config.sample,
            "cell": config.name,
            "material": config.material,
            "protocol": proto.name,
        }
        (uid,) = session.run(run_protocol(session.channel(config.name), techniques, md))
        start, frame = session.read(uid)
    finally:
        session.close()
    _run_summary(proto.name, uid, start, frame, out, as_json)


def _scans_text(scans: list[dict[str, Any]]) -> str:
    fitted = [s["lattice_A"] for s in scans if s["lattice_A"] is not None]
    text = f"{len(scans)} scans"
    if fitted:
        text += f", lattice {fitted[0]:.4f} -> {fitted[-1]:.4f} A ({len(fitted)} fitted)"
    return text


def _run_summary(
    name: str, uid: str, start: Any, frame: Any, out: Path, as_json: bool, extra: dict[str, Any] | None = None
) -> None:
    from orchestrator.summary import format_summary, run_summary, summary_png

    summary = {"run": uid, "protocol": name, **run_summary(_flat_conditions(start), frame)}
    png = summary_png(_flat_conditions(start), frame, out / f"{name}-{uid[:8]}.png")
    summary["plot"] = str(png) if png else None
    summary["export"] = f"relaxlab data export {uid[:8]} --format csv"
    summary.update(extra or {})
    _print(summary, as_json, format_summary(summary))


def _hint(protocol: str, lab_file: str, cell: str | None) -> str:
    """"Did you mean" for a mistyped example, lab or cell name (orchestrator/catalog.py)."""
    from orchestrator.catalog import did_you_mean, example_names, lab_names, missing_name_hint
    from orchestrator.lab import LabFileError, load_lab

    hint = missing_name_hint(protocol, example_names()) or missing_name_hint(lab_file, lab_names())
    if not hint and cell is not None:
        try:
            hint = did_you_mean(cell, [c.name for c in load_lab(lab_file).cells])
        except LabFileError:
            pass
    return hint


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Protocol (YAML), campaign (YAML) or lab (TOML/YAML) files.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Check files before anything touches an instrument; report every error with its location."""
    import yaml

    from orchestrator.campaign_file import validate_campaign_file
    from orchestrator.lab import LabFileError, load_lab
    from protocols.schema import validate_protocol_file

    report: dict[str, list[str]] = {}
    for path in files:
        kind = "lab" if path.suffix == ".toml" else "protocol"
        if kind == "protocol" and path.exists():
            try:
                head = yaml.safe_load(path.read_text())
            except yaml.YAMLError:
                head = None
            if isinstance(head, dict) and ("instruments" in head or "cells" in head):
                kind = "lab"
            elif isinstance(head, dict) and "steps" not in head and ("matrix" in head or "samples" in head):
                kind = "campaign"
        if kind == "lab":
            try:
                load_lab(path)
                issues: list[str] = []
            except LabFileError as exc:
                issues = [str(exc)]
        elif kind == "campaign":
            issues = [str(i) for i in validate_campaign_file(path)]
        else:
            issues = [str(i) for i in validate_protocol_file(path)]
        report[str(path)] = issues
    lines = [f"{f}: ok" if not issues else "\n".join(issues) for f, issues in report.items()]
    _print(report, as_json, "\n".join(lines))
    if any(report.values()):
        raise typer.Exit(1)


campaign_app = typer.Typer(
    help="Relaxation campaigns: many cells, conditions and replicates.", no_args_is_help=True
)
app.add_typer(campaign_app, name="campaign")


def _load_campaign(name_or_path: str) -> Any:
    from orchestrator.campaign_file import CampaignError, load_campaign
    from orchestrator.catalog import campaign_names, missing_name_hint

    try:
        return load_campaign(name_or_path)
    except CampaignError as exc:
        _fail(str(exc) + missing_name_hint(name_or_path, campaign_names()))


@campaign_app.command("plan")
def campaign_plan(
    campaign_file: Annotated[
        str, typer.Argument(help="Campaign file, or a built-in name (e.g. temperature-24h).")
    ],
    channels: Annotated[int, typer.Option(help="Potentiostat channels available.")] = 16,
    ovens: Annotated[int, typer.Option(help="Ovens available.")] = 1,
    out: Annotated[Path, typer.Option("--out", help="Folder for the Gantt chart.")] = Path("relaxlab-out"),
    as_json: JsonOpt = False,
) -> None:
    """Show a campaign's schedule (table and Gantt PNG) and its ETA before anything starts."""
    from orchestrator.schedule import plan_campaign

    campaign = _load_campaign(campaign_file)
    if channels < 1 or ovens < 1:
        _fail("--channels and --ovens must be at least 1")
    schedule = plan_campaign(campaign, channels=channels, ovens=ovens)
    out.mkdir(parents=True, exist_ok=True)
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
def campaign_run(
    campaign_file: Annotated[
        str, typer.Argument(help="Campaign file, or a built-in name (e.g. temperature-24h).")
    ],
    channels: Annotated[int, typer.Option(help="Simulated potentiostat channels.")] = 16,
    ovens: Annotated[int, typer.Option(help="Simulated ovens.")] = 1,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip finished jobs of an interrupted run.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the simulated measurement noise.")] = 1,
    lab_file: Annotated[
        str | None, typer.Option("--lab", help="Run on this lab file's channels (operator prompts here).")
    ] = None,
    sim_clock: Annotated[
        Path | None,
        typer.Option("--sim-clock", help="Clock file of a `relaxlab sim serve` process serving the lab."),
    ] = None,
    data_dir: DataDirOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the summary CSV.")] = Path("relaxlab-out"),
    as_json: JsonOpt = False,
) -> None:
    """Run a campaign: every cell concurrently, ovens shared, progress per cell.

    Without --lab on the simulated lab (simulated operator); with --lab on that lab's channels,
    asking you at this console for each operator step. With --resume after a crash, finished
    steps are skipped and steps still running on the lab's instruments are re-attached."""
    from drivers.transport import InstrumentError
    from orchestrator.campaign_run import run_campaign
    from orchestrator.lab import LabFileError, load_lab
    from orchestrator.simtime import read_clock_file
    from orchestrator.storage import default_data_dir

    campaign = _load_campaign(campaign_file)
    try:
        lab = load_lab(lab_file) if lab_file else None
        if sim_clock is not None and lab is None:
            raise ValueError("--sim-clock needs --lab: the lab file whose instruments `sim serve` serves")
        clock = read_clock_file(sim_clock) if sim_clock is not None else None
        result = run_campaign(
            campaign, data_dir or default_data_dir(), channels=channels, ovens=ovens,
            progress=not as_json and sys.stderr.isatty(), resume=resume, seed=seed, lab=lab, clock=clock,
        )  # fmt: skip
    except (LabFileError, InstrumentError, ValueError) as exc:
        _fail(str(exc))
    table = result.table()
    out.mkdir(parents=True, exist_ok=True)
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


@app.command()
def report(
    targets: Annotated[list[str], typer.Argument(help="Run uids (or prefixes) and/or campaign names.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for index.html and the PNGs.")] = Path(
        "relaxlab-report"
    ),
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Figures and one HTML page for stored runs or whole campaigns (cycling, plateaus, dQ/dV, OCV...)."""
    import pandas as pd

    from analysis.campaign import campaign_table
    from analysis.report import build_report
    from orchestrator.storage import default_data_dir, read_journal
    from orchestrator.summary import OCV_READ_S, format_summary, run_summary

    root = data_dir or default_data_dir()
    runs: list[tuple[dict[str, Any], Any]] = []
    timeline: list[dict[str, Any]] = []  # what actually ran, for the Gantt chart
    campaign = False
    for target in targets:
        state = root / "campaigns" / target / "state.json"
        if state.exists():
            campaign = True
            jobs = json.loads(state.read_text())["jobs"]
            for info in jobs.values():
                if info.get("status") == "done" and info.get("uid"):
                    start, frame = read_journal(root, info["uid"])
                    if start.get("job") == "cell":
                        runs.append((_flat_conditions(start), frame))
                        timeline += _timeline(start, frame)
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
    page = build_report(out, runs, campaign_table=table, schedule=schedule)
    pngs = sorted(str(p) for p in Path(out).glob("*.png"))
    summaries = [{"run": meta.get("uid"), **run_summary(meta, frame, with_cycles=True)} for meta, frame in runs]
    human = [f"report: {page} ({len(pngs)} figures)"]
    if not campaign:
        human += ["", *(format_summary(s) + "\n" for s in summaries)]
    _print(
        {"report": str(page), "figures": pngs, "runs": summaries},
        as_json,
        "\n".join(human).rstrip(),
    )


def _timeline(start: dict[str, Any], frame: Any) -> list[dict[str, Any]]:
    """One Gantt bar per step a cell actually ran (absolute clock times)."""
    bars = []
    for _, step in frame.groupby("step", sort=True):
        bars.append({"cell": start.get("cell"), "start_s": float(step["timestamp_s"].iloc[0]),
                     "end_s": float(step["timestamp_s"].iloc[-1]), "label": str(step["step_type"].iloc[0])})  # fmt: skip
    return bars


def _flat_conditions(start: dict[str, Any]) -> dict[str, Any]:
    """Run metadata with its campaign condition as plain numbers (temperature_C, duration_s)."""
    from drivers.quantities import QuantityError, parse_quantity

    keep = ("uid", "cell", "sample", "replicate", "active_mass_g", "material", "protocol")  # the rest: conditions
    md = {k: start[k] for k in keep if k in start}
    for key, value in (start.get("condition") or {}).items():
        for unit, name in (("degC", "temperature_C"), ("s", "duration_s")):
            try:
                md[name] = parse_quantity(value, unit)
                break
            except QuantityError:
                continue
        else:
            md[key] = value
    return md


@data_app.command("list")
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
def data_recover(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Close runs a crash left open: append the points the spool holds beyond their last page."""
    from orchestrator.storage import default_data_dir, recover_interrupted_runs

    recovered = recover_interrupted_runs(data_dir or default_data_dir())
    lines = [f"{uid[:8]}: {n} points recovered, run closed" for uid, n in recovered.items()]
    _print(recovered, as_json, "\n".join(lines) or "no interrupted runs")


@data_app.command("export")
def data_export(
    run_id: Annotated[str, typer.Argument(help="Run uid (or a unique prefix).")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default: <uid>.<format>).")] = None,
    source: Annotated[str, typer.Option(help="Read from the 'journal' or the 'tiled' catalog.")] = "journal",
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a run's points: time_s, voltage_V, current_A, specific_current_mA_g, capacity_mAh_g, ..."""
    from orchestrator.storage import TiledStore, default_data_dir, read_journal

    if fmt not in ("csv", "parquet"):
        _fail(f"--format must be csv or parquet, not {fmt!r}")
    root = data_dir or default_data_dir()
    try:
        if source == "tiled":
            store = TiledStore(root)
            start, frame = store.read_run(run_id)
            store.close()
        else:
            start, frame = read_journal(root, run_id)
    except KeyError as exc:
        _fail(str(exc.args[0]) if exc.args else f"no run {run_id!r}")
    path = out or Path(f"{start['uid']}.{fmt}")
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    _print(
        {"run": start["uid"], "file": str(path), "points": len(frame)},
        as_json,
        f"wrote {len(frame)} points to {path}",
    )


@sim_app.command("calibrate")
def sim_calibrate(
    material: Annotated[
        Path | None, typer.Option("--material", help="Material TOML (default: x = 0.4).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run calibration targets T1-T9 on the cell model and report each one."""
    from simulators.calibrate import format_table, results_to_json, run_calibration
    from simulators.material import MaterialError

    try:
        results = run_calibration(material)
    except MaterialError as exc:
        _fail(str(exc))
    typer.echo(results_to_json(results) if as_json else format_table(results))
    if not all(r.passed for r in results):
        raise typer.Exit(1)


@sim_app.command("serve")
def sim_serve(
    lab_file: Annotated[
        str, typer.Argument(help="Lab file whose simulated instruments to serve.")
    ] = "simulated",
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 1.0,
    base_port: Annotated[int, typer.Option(help="First port for instruments without a TCP resource.")] = 5025,
    duration_s: Annotated[float | None, typer.Option(help="Stop after this many wall seconds.")] = None,
    clock_file: Annotated[
        Path, typer.Option(help="Where to publish the clock, for `campaign run --sim-clock`.")
    ] = Path("relaxlab-sim-clock.json"),
    as_json: JsonOpt = False,
) -> None:
    """Serve the lab's simulated instruments over TCP on 127.0.0.1 only (free-running clock).

    The instruments go on running whether or not an orchestrator is connected; an orchestrator
    started with ``--sim-clock CLOCK_FILE`` shares this process's simulated time."""
    from drivers.clock import ScaledClock
    from orchestrator.lab import LabFileError, load_lab
    from orchestrator.simlab import SimulatedLab
    from orchestrator.simtime import write_clock_file

    try:
        lab = load_lab(lab_file)
    except LabFileError as exc:
        _fail(str(exc))
    clock = ScaledClock(speed)
    simulation = SimulatedLab(lab, clock)
    try:
        ports = simulation.serve_all(base_port)
    except OSError as exc:
        simulation.close()
        _fail(f"cannot serve the simulated instruments on 127.0.0.1: {exc} (is another `sim serve` running?)")
    write_clock_file(clock, clock_file)

    def resource(name: str, port: int) -> str:
        config = lab.instruments[name]
        if config.resource != "sim":
            return config.resource
        if config.driver == "keithley2450":  # VISA
            return f"TCPIP0::127.0.0.1::{port}::SOCKET"
        return f"socket://127.0.0.1:{port}"  # serial instruments: a pyserial URL

    info = {name: resource(name, port) for name, port in ports.items()}
    _print({"instruments": info, "speed": speed, "clock_file": str(clock_file)}, as_json,
           "\n".join(f"{n}: {r}" for n, r in info.items()) + f"\nclock: {clock_file}")  # fmt: skip
    sys.stdout.flush()
    try:
        wall0 = time.monotonic()
        while duration_s is None or time.monotonic() - wall0 < duration_s:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        simulation.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
