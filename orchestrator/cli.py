"""The ``relaxlab`` command. Every command takes ``--json`` for scripts."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml

# bluesky logs an aborted plan's traceback (e.g. after Ctrl-C) at ERROR; with no handler Python would
# print it on stderr. The command says what happened in one line instead.
logging.getLogger("bluesky").addHandler(logging.NullHandler())
logging.getLogger("bluesky").propagate = False

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


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# --- one clear line for every bad input, never a traceback ----------------------------------

#: Longest rest the demo takes: 10 years, like any duration in a protocol file.
MAX_HOURS = 10 * 365.25 * 24
#: Most simulated channels and ovens a campaign may ask for.
MAX_CHANNELS = 256
MAX_OVENS = 64


def _os_error(exc: OSError) -> str:
    """One sentence for a failed file operation: which file and why (disk full, permission ...)."""
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"cannot write{where}: the disk is full (No space left on device); free some space and retry"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where}: {exc.strerror} (choose a folder you can write to)"
    return f"{exc.strerror or exc}{':' + where if where else ''}"


def _guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can cause into one ``error:`` line and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from orchestrator.campaign_file import CampaignError
        from orchestrator.lab import LabFileError
        from protocols.schema import ProtocolError
        from protocols.textfiles import InputFileError

        try:
            return command(*args, **kwargs)
        except (LabFileError, ProtocolError, CampaignError, InputFileError) as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(_os_error(exc))
        except KeyboardInterrupt:
            _fail(
                "interrupted (Ctrl-C); stored runs a crash left open are closed by `relaxlab data recover`",
                130,
            )

    return wrapper


def _writable_dir(path: Path, what: str, create: bool = True) -> Path:
    """``path`` as a folder that can be written (created when ``create``), or one clear error.

    Without ``create`` nothing is written: the nearest existing folder must be writable."""
    path = Path(path).expanduser()
    try:
        if not create:
            existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
            if not existing.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(existing))
            if not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "Permission denied", str(existing))
            return path
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".relaxlab-write-test-"):
            pass
    except OSError as exc:
        reason = _os_error(exc) if exc.errno in (errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS) else (
            f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""))  # fmt: skip
        _fail(f"{what} {path} cannot be used: {reason}")
    return path


def _data_root(data_dir: Path | None) -> Path:
    """The data folder (``--data-dir``, ``$RELAXLAB_DATA`` or the default), created and writable."""
    from orchestrator.storage import default_data_dir

    return _writable_dir(data_dir or default_data_dir(), "data folder")


def _command(*parts: Any) -> str:
    """A command line to show the user, each argument quoted for the shell."""
    return " ".join(shlex.quote(str(p)) for p in ("relaxlab", *parts) if p is not None)


def _interrupted(what: str, next_steps: list[str]) -> NoReturn:
    """After Ctrl-C: what state things are in and what to type next; exit 130 (the shell's Ctrl-C code)."""
    from orchestrator.interrupt import last_interrupt

    if last_interrupt() == "abort":
        head = (f"{what} aborted at once (second Ctrl-C): the clean-up did not run, so a cell may still be "
                "sourcing; check the instruments")  # fmt: skip
    else:
        head = f"{what} stopped (Ctrl-C): cells at open circuit, runs closed with exit_status abort"
    typer.echo("\n".join([head, *next_steps]), err=True)
    raise typer.Exit(130)


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


def progress_mode(as_json: bool) -> str:
    """Progress display: live on a terminal, one line per event when stdout is piped, none with --json."""
    from orchestrator.progress import progress_mode as mode

    return mode(as_json)


def _session(lab: Any, data_dir: Path | None, tiled: bool, progress: bool | str, **kw: Any) -> Any:
    status = progress == "live" and sys.stderr.isatty()
    if status:  # a status line while storage and the instruments open (erased once they are)
        sys.stderr.write("opening storage and instruments ...")
        sys.stderr.flush()
    try:
        from orchestrator.runner import Session

        return Session(lab, data_dir=data_dir, tiled=tiled, progress=progress, **kw)
    finally:
        if status:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


@app.command()
@_guarded
def demo(
    as_json: JsonOpt = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG.")] = Path("relaxlab-out"),
    data_dir: DataDirOpt = None,
    tiled: Annotated[bool, typer.Option(help="Also store the run in the Tiled catalog.")] = True,
    rest_h: Annotated[float, typer.Option("--rest-h", help="Open-circuit rest, hours (> 0).")] = 24.0,
) -> None:
    """Run the paper's relaxation protocol on the simulated lab and summarise it.

    7 mg of Li1.17Ti0.58Ni0.25O2: 20 mA/g to 4.8 V, 24 h at open circuit, 20 mA/g to 1.85 V.
    """
    from bluesky.utils import RunEngineInterrupted

    from orchestrator.lab import load_lab
    from orchestrator.summary import relaxation_summary, voltage_capacity_png
    from protocols.plans import relaxation_protocol

    if not (math.isfinite(rest_h) and 0 < rest_h <= MAX_HOURS):
        _fail(f"--rest-h must be a number of hours above 0 and at most {MAX_HOURS:g} (10 years), got {rest_h:g} "
              "(example: --rest-h 24)")  # fmt: skip
    lab = load_lab("simulated")
    _writable_dir(out, "--out folder", create=False)
    root = _data_root(data_dir)
    out = _writable_dir(out, "--out folder")
    wall0 = time.perf_counter()
    session = _session(lab, root, tiled, progress=progress_mode(as_json))
    started: list[str] = []
    session.subscribe(lambda name, doc: started.append(doc["uid"]) if name == "start" else None)
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
    except (RunEngineInterrupted, KeyboardInterrupt):  # the session is closed on the way out
        _interrupted("demo", _after_run(started, root, data_dir))
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
@_guarded
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
    sim_clock: Annotated[
        Path | None,
        typer.Option(
            "--sim-clock",
            help="Clock file of a `relaxlab sim serve` process serving the lab: run on its instruments.",
        ),
    ] = None,
) -> None:
    """Run a protocol on one cell of a lab (real instruments or the simulated lab).

    Ends with the summary that fits the technique (relaxation: charge, rest, OCV, discharge and
    plateaus; cycling, GITT, CV: a per-cycle table) and a PNG. With --sim-clock, the lab's
    simulated instruments are the ones a running `relaxlab sim serve` serves (reached over TCP,
    in that process's free-running simulated time). Heat, XRD and manual steps run on the
    simulated lab (simulated oven, diffractometer and operator; `relaxlab examples` lists the
    shipped protocols)."""
    from bluesky.utils import RunEngineInterrupted

    from drivers.base import SafetyLimitError
    from drivers.transport import InstrumentError
    from orchestrator.checks import run_problems
    from orchestrator.lab import LabFileError, load_lab
    from orchestrator.simtime import read_clock_file
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

    kinds = (ConstantCurrent, ConstantVoltage, Rest, Sweep, GITT, Loop)
    problems = run_problems(proto, lab, config.name)  # the same checks as `relaxlab validate --lab`
    if problems:
        _fail("\n".join(problems))
    if sim_clock is None and not all(isinstance(st, kinds) for st in proto.steps):
        # heat, xrd or manual steps: on the simulated lab (orchestrator/example_lab.py)
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
    clock = None
    if sim_clock is not None:
        try:
            clock = read_clock_file(sim_clock)
            lab = _on_served_instruments(lab, [config.instrument], sim_clock)
        except ValueError as exc:
            _fail(str(exc))
    problems = run_problems(proto, lab, config.name)  # the same checks as `relaxlab validate --lab`
    if problems:
        _fail("\n".join(problems))
    techniques = list(proto.steps)
    root = _data_root(data_dir or (Path(lab.lab.data_dir) if lab.lab.data_dir else None))
    try:
        session = _session(
            lab, root, tiled, progress=progress_mode(as_json), cells=[config.name], clock=clock
        )
    except InstrumentError as exc:
        _fail(f"cannot reach an instrument: {exc}")
    except OSError as exc:  # serving the lab's simulated instruments here
        _fail(
            f"cannot serve the simulated instruments on 127.0.0.1: {exc}; if `relaxlab sim serve` "
            "serves this lab, run on it with --sim-clock CLOCK_FILE"
        )
    started: list[str] = []
    session.subscribe(lambda name, doc: started.append(doc["uid"]) if name == "start" else None)
    try:
        md = {
            "sample": config.sample,
            "cell": config.name,
            "material": config.material,
            "protocol": proto.name,
        }
        (uid,) = session.run(run_protocol(session.channel(config.name), techniques, md))  # type: ignore[arg-type]
        start, frame = session.read(uid)
    except (RunEngineInterrupted, KeyboardInterrupt):  # the session is closed on the way out
        again = _command("run", protocol, "--lab", lab_file, *(("--cell", cell) if cell else ()),
                         *(("--data-dir", data_dir) if data_dir else ()))  # fmt: skip
        _interrupted(
            f"run of {proto.name}", [*_after_run(started, root, data_dir), f"run it again:  {again}"]
        )
    except (InstrumentError, SafetyLimitError, ConnectionError) as exc:  # a fault, a limit, a lab gone
        where = ("--data-dir", data_dir) if data_dir else ()
        _fail("\n".join([f"the run stopped: {exc}",
                         *(f"its points are stored:  {_command('data', 'export', u[:8], *where)}" for u in started)]))  # fmt: skip
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


def _on_served_instruments(lab: Any, required: list[str], clock_file: Path) -> Any:
    """``lab`` with its in-process simulated instruments reached where the ``sim serve`` behind
    ``clock_file`` serves them; every instrument in ``required`` must be a served one."""
    from orchestrator.simtime import read_served_instruments

    served = read_served_instruments(clock_file)
    instruments = dict(lab.instruments)
    for name, config in lab.instruments.items():
        if config.simulated and config.resource == "sim" and name in served:
            instruments[name] = config.model_copy(update={"resource": served[name]})
    for name in required:
        config = instruments[name]
        if not config.simulated:
            raise ValueError(
                f"--sim-clock runs on instruments served by `relaxlab sim serve`; {name!r} in "
                f"{lab.source} is a real instrument ({config.resource}). Drop --sim-clock to run on it."
            )
        if config.resource == "sim":
            raise ValueError(
                f"instrument {name!r} of {lab.source} is in-process (resource = 'sim') and the "
                f"`sim serve` behind {clock_file} does not serve it (it serves: "
                f"{', '.join(served) or 'nothing'}); give it the resource that `sim serve` printed"
            )
    return lab.model_copy(update={"instruments": instruments})


def _after_run(started: list[str], root: Path, data_dir: Path | None) -> list[str]:
    where = ("--data-dir", data_dir) if data_dir else ()
    lines = [f"its points are stored:  {_command('data', 'export', uid[:8], *where)}" for uid in started]
    return lines + [f"if a run is still open (a second Ctrl-C):  {_command('data', 'recover', *where)}"]


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
@_guarded
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Protocol (YAML), campaign (YAML) or lab (TOML/YAML) files.")
    ],
    lab_file: Annotated[
        str | None,
        typer.Option(
            "--lab", help="Also check protocols and campaigns against this lab, as run / campaign run do."
        ),
    ] = None,
    cell: Annotated[str | None, typer.Option("--cell", help="Cell of --lab a protocol runs on.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check files before anything touches an instrument; report every error with its location.

    The checks are those of `relaxlab run` and `relaxlab campaign run`: a campaign is checked for
    the simulated lab (or --lab's channels), a protocol on its own (or on --lab's cell)."""
    from orchestrator.lab import LabFileError, load_lab

    lab = None
    report: dict[str, list[str]] = {}
    if lab_file is not None:
        try:
            lab = load_lab(lab_file)
            lab.cell(cell)
        except LabFileError as exc:
            report[str(lab_file)] = [str(exc)]
    for path in files:
        report[str(path)] = _file_problems(path, lab, cell)
    lines = [f"{f}: ok" if not issues else "\n".join(issues) for f, issues in report.items()]
    _print(report, as_json, "\n".join(lines))
    if any(report.values()):
        raise typer.Exit(1)


def _file_kind(path: Path) -> str:
    """``lab``, ``campaign`` or ``protocol``, from the suffix and the top-level keys."""
    from orchestrator.campaign_file import list_campaigns
    from protocols.textfiles import InputFileError, load_yaml, read_text_file

    if path.suffix == ".toml":
        import tomllib

        try:
            head = tomllib.loads(read_text_file(path)) if path.is_file() else None
        except (InputFileError, tomllib.TOMLDecodeError):
            return "lab"  # its reader says what is wrong with the file
        if isinstance(head, dict) and ("lmct" in head or "branches" in head) and "cells" not in head:
            return "material"
        return "lab"
    if not path.exists() and path.name in list_campaigns() and path.name == str(path):
        return "campaign"  # a built-in campaign, by name
    try:
        head = load_yaml(read_text_file(path)) if path.is_file() else None
    except (InputFileError, yaml.YAMLError):
        return "protocol"  # its validator says what is wrong with the file
    if isinstance(head, dict) and ("instruments" in head or "cells" in head):
        return "lab"
    campaign_keys = {"matrix", "samples", "conditions", "protocol", "replicates", "cell_prefix"}
    if isinstance(head, dict) and "steps" not in head and (campaign_keys & set(head)):
        return "campaign"
    return "protocol"


def _file_problems(path: Path, lab: Any, cell: str | None) -> list[str]:
    """Every problem ``run`` / ``campaign run`` would find in one file (with ``lab`` when given)."""
    from orchestrator.campaign_file import load_campaign, validate_campaign_file
    from orchestrator.checks import campaign_problems, run_problems
    from orchestrator.lab import LabFileError, load_lab
    from orchestrator.simlab import material_problem
    from protocols.schema import load_protocol, validate_protocol_file

    kind = _file_kind(path)
    if kind == "material":
        problem = material_problem(str(path.resolve()))
        return [problem] if problem else []
    if kind == "lab":
        try:
            parsed = load_lab(path)
        except LabFileError as exc:
            return [str(exc)]
        return [
            f"{path}: cells.{c.name}.material: {problem}"
            for c in parsed.cells
            if (problem := material_problem(c.material, path.parent))
        ]
    if kind == "campaign":
        issues = [str(i) for i in validate_campaign_file(path)]
        return issues or campaign_problems(load_campaign(path), lab)
    issues = [str(i) for i in validate_protocol_file(path)]
    if issues or lab is None:
        return issues
    return run_problems(load_protocol(path), lab, cell)


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
@_guarded
def campaign_plan(
    campaign_file: Annotated[
        str, typer.Argument(help="Campaign file, or a built-in name (e.g. temperature-24h).")
    ],
    channels: Annotated[
        int, typer.Option(help="Potentiostat channels available.", min=1, max=MAX_CHANNELS)
    ] = 16,
    ovens: Annotated[int, typer.Option(help="Ovens available.", min=1, max=MAX_OVENS)] = 1,
    out: Annotated[Path, typer.Option("--out", help="Folder for the Gantt chart.")] = Path("relaxlab-out"),
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
    campaign_file: Annotated[
        str, typer.Argument(help="Campaign file, or a built-in name (e.g. temperature-24h).")
    ],
    channels: Annotated[
        int, typer.Option(help="Simulated potentiostat channels.", min=1, max=MAX_CHANNELS)
    ] = 16,
    ovens: Annotated[int, typer.Option(help="Simulated ovens.", min=1, max=MAX_OVENS)] = 1,
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
    out: Annotated[Path, typer.Option("--out", help="Folder for the summary CSV.")] = Path("relaxlab-out"),
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

            result = dispatch(campaign, stations_file, root, tiled_uri, resume, rerun, interactive=not as_json)
        else:
            result = run_campaign(
                campaign, root, channels=channels, ovens=ovens,
                progress=progress_mode(as_json), resume=resume, seed=seed, lab=lab, clock=clock,
                rerun=rerun,
            )  # fmt: skip
    except (RunEngineInterrupted, KeyboardInterrupt):
        sizes = () if lab else (*(("--channels", channels) if channels != 16 else ()),
                                *(("--ovens", ovens) if ovens != 1 else ()))  # fmt: skip
        again = _command("campaign", "run", campaign_file, *sizes, *(("--lab", lab_file) if lab_file else ()),
                         *(("--sim-clock", sim_clock) if sim_clock else ()),
                         *(("--data-dir", data_dir) if data_dir else ()), "--resume")  # fmt: skip
        recover = _command("data", "recover", *(("--data-dir", data_dir) if data_dir else ()))
        _interrupted(f"campaign {campaign.name}", [f"resume it:  {again}",
                                                   f"(runs left open by a second Ctrl-C are closed by the resume, or by:  {recover})"])  # fmt: skip
    except (InstrumentError, ValueError, RunIsLive) as exc:
        _fail(str(exc))
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


@app.command()
@_guarded
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
    from analysis.campaign_fits import fit_campaign, public
    from analysis.report import build_report
    from orchestrator.storage import default_data_dir, read_journal, read_oven_record
    from orchestrator.summary import OCV_READ_S, format_summary, run_summary

    root = data_dir or default_data_dir()
    runs: list[tuple[dict[str, Any], Any]] = []
    timeline: list[dict[str, Any]] = []  # what actually ran, for the Gantt chart
    campaign = False
    thermal: dict[str, Any] = {}  # cell -> its recorded thermal history (campaign titrations)
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
                        ovens[str(start.get("portion"))] = read_oven_record(root, info["uid"])[1]
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
    summaries = [{"run": meta.get("uid"), **run_summary(meta, frame, with_cycles=True)} for meta, frame in runs]
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
    from analysis.kinetics import history_from_record

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


def _flat_conditions(start: dict[str, Any]) -> dict[str, Any]:
    """Run metadata with its campaign condition as plain numbers (temperature_C, duration_s)."""
    from drivers.quantities import QuantityError, parse_quantity

    keep = ("uid", "cell", "sample", "replicate", "active_mass_g", "material", "protocol")  # the rest: conditions
    md = {k: start[k] for k in keep if k in start}
    md["run"] = start.get("uid")
    if start.get("campaign"):  # a titration series: which one, and the charge state of its powder
        md.update(campaign=start["campaign"], charged_to=start.get("charged_to") or "")
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
    _print(asdict(report) if as_json else report.recovered, as_json, "\n".join(lines) or "no interrupted runs")
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


@sim_app.command("calibrate")
@_guarded
def sim_calibrate(
    material: Annotated[
        str | None, typer.Option("--material", help="Shipped material (x04, x05) or a material TOML file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run calibration targets T1-T15 on the cell model and report each one."""
    from simulators.calibrate import format_table, results_to_json, run_calibration
    from simulators.material import MaterialError

    try:
        from orchestrator.simlab import resolve_material

        results = run_calibration(resolve_material(material) if material else None)
    except MaterialError as exc:
        _fail(str(exc))
    typer.echo(results_to_json(results) if as_json else format_table(results))
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def _lab_lines(lab: Any, resources: dict[str, str]) -> str:
    """TOML lab-file blocks that reach each served instrument at ``resources``."""
    blocks = []
    for name, resource in resources.items():
        config = lab.instruments[name]
        lines = [f"[instruments.{name}]", f'driver = "{config.driver}"', f'resource = "{resource}"']
        lines.append("simulated = true")
        if config.driver == "emstat4":
            lines.append(f'model = "{config.model}"')
        if config.driver == "eurotherm":
            lines += [f"address = {config.address}", f'series = "{config.series}"']
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


@sim_app.command("serve")
@_guarded
def sim_serve(
    lab_file: Annotated[
        str, typer.Argument(help="Lab file whose simulated instruments to serve.")
    ] = "simulated",
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second (> 0).")] = 1.0,
    base_port: Annotated[
        int, typer.Option(help="First port for instruments without a TCP resource.", min=1, max=65535)
    ] = 5025,
    duration_s: Annotated[
        float | None, typer.Option(help="Stop after this many wall seconds.", min=0)
    ] = None,
    clock_file: Annotated[
        Path, typer.Option(help="Where to publish the clock, for `campaign run --sim-clock`.")
    ] = Path("relaxlab-sim-clock.json"),
    stepped: Annotated[
        bool,
        typer.Option(
            "--stepped",
            help="Simulated time moves only when the orchestrator (--sim-clock) waits for its next "
            "poll, so runs are deterministic; between orchestrators the lab stands still.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Serve the lab's simulated instruments over TCP on 127.0.0.1 only.

    On a free-running clock (--speed) the instruments go on running whether or not an
    orchestrator is connected; with --stepped the orchestrator started with ``--sim-clock
    CLOCK_FILE`` moves this lab's simulated time as it waits, exactly as in-process."""
    from drivers.clock import ScaledClock
    from orchestrator.lab import load_lab
    from orchestrator.simlab import SimulatedLab
    from orchestrator.simtime import write_clock_file
    from simulators.clockserver import ClockControl, SteppedClock

    if not (math.isfinite(speed) and 0 < speed <= 1e7):
        _fail(
            f"--speed must be above 0 and at most 1e7 simulated seconds per second, got {speed:g} (example: --speed 2000)"
        )
    if stepped and speed != 1.0:
        _fail("--speed sets a free-running clock; --stepped moves with the orchestrator: give one of them "
              "(example: --stepped)")  # fmt: skip
    lab = load_lab(lab_file)
    if base_port + len(lab.instruments) - 1 > 65535:
        _fail(f"--base-port {base_port} leaves no room for {len(lab.instruments)} instrument port(s) below 65536 "
              "(example: --base-port 5025)")  # fmt: skip
    clock: Any = SteppedClock() if stepped else ScaledClock(speed)
    simulation = SimulatedLab(lab, clock)
    control: Any = None
    try:
        ports = simulation.serve_all(base_port)
        if stepped:
            control = ClockControl(clock, simulation.lock).start()
        write_clock_file(clock, clock_file, control=control.address if control else None)
    except OSError as exc:
        if control is not None:
            control.stop()
        simulation.close()
        if exc.filename:
            _fail(f"cannot write the clock file: {_os_error(exc)}")
        _fail(f"cannot serve the simulated instruments on 127.0.0.1: {exc} (is another `sim serve` running?)")
    except OverflowError as exc:
        simulation.close()
        _fail(f"cannot serve the simulated instruments: {exc}")

    def resource(name: str, port: int) -> str:
        config = lab.instruments[name]
        if config.resource != "sim":
            return config.resource
        if config.driver == "keithley2450":  # VISA
            return f"TCPIP0::127.0.0.1::{port}::SOCKET"
        return f"socket://127.0.0.1:{port}"  # serial instruments: a pyserial URL

    info = {name: resource(name, port) for name, port in ports.items()}
    write_clock_file(clock, clock_file, info, control.address if control else None)  # and where they are
    lab_lines = _lab_lines(lab, info)
    pace = "on a stepped clock (it moves as the orchestrator waits)" if stepped else f"at {speed:g} simulated s per s"
    human = (
        f"# serving {lab.source} on 127.0.0.1 {pace}; clock: {clock_file}\n"
        "# lab-file lines that reach each served instrument:\n"
        f"{lab_lines}\n"
        f"# run a protocol on it: relaxlab run PROTOCOL --lab {lab_file} --sim-clock {clock_file}\n"
        f"# or a campaign: relaxlab campaign run CAMPAIGN --lab {lab_file} --sim-clock {clock_file}"
    )
    _print({"instruments": info, "speed": None if stepped else speed, "stepped": stepped,
            "clock_file": str(clock_file), "lab_lines": lab_lines}, as_json, human)  # fmt: skip
    sys.stdout.flush()
    try:
        wall0 = time.monotonic()
        while duration_s is None or time.monotonic() - wall0 < duration_s:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if control is not None:
            control.stop()
        simulation.close()


@app.command()
@_guarded
def monitor(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", "--data", help="Data folder to watch (default $RELAXLAB_DATA or ~/.local/share/relaxlab)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to serve on; other than loopback needs --api-key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8765,
    api_key: Annotated[
        str | None,
        typer.Option(help="Key every request must carry (X-API-Key header or ?key=); default $RELAXLAB_MONITOR_KEY."),
    ] = None,
    campaign: Annotated[
        list[Path] | None,
        typer.Option("--campaign", help="Campaign file for the Gantt and ETA (shipped campaigns are found by name)."),
    ] = None,
    station: Annotated[str | None, typer.Option(help="Name of this station on the page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve a live web page of the lab: every station, channel and cell with its step, live
    voltage-time curves, ETA, the campaign Gantt (planned vs ran) and alarms (safety faults,
    failed cells). Read-only; loopback only unless an API key is given."""
    import socket

    from orchestrator.campaign_file import load_campaign
    from orchestrator.monitor import MonitorConfigError, check_binding, serve
    from orchestrator.storage import default_data_dir

    key = api_key or os.environ.get("RELAXLAB_MONITOR_KEY") or None
    try:
        check_binding(host, key)
    except MonitorConfigError as exc:
        _fail(str(exc))
    files = {load_campaign(path).name: path for path in campaign or []}
    folder = data_dir or default_data_dir()
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            _fail(f"cannot serve on {host}:{port}: {exc.strerror or exc} (another monitor? try --port {port + 1})")
    if not (folder / "journal").is_dir():
        typer.echo(f"note: {folder} holds no runs yet; the page fills in as relaxlab writes there", err=True)
    url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
    _print({"url": url, "data_dir": str(folder), "api_key": bool(key)}, as_json,
           f"relaxlab monitor of {folder} on {url}" + ("?key=..." if key else "") + " (Ctrl-C stops it)")  # fmt: skip
    sys.stdout.flush()
    serve(folder, host=host, port=port, api_key=key, campaign_files=files, station=station)


# Multi-station commands (station serve, data sync): orchestrator/station_cli.py
from orchestrator.station_cli import register as _register_stations  # noqa: E402

_register_stations(app, data_app)


def main() -> None:
    """The ``relaxlab`` command: errors a user can cause are one ``error:`` line (see ``_guarded``);
    anything else is reported in one line too, with the way to see the traceback."""
    from orchestrator.quiet import quiet_console

    quiet_console()  # third-party warnings off the console (not for tests, which call `app`)
    if os.environ.get("RELAXLAB_DEBUG"):
        app()
        return
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        typer.echo("error: interrupted (Ctrl-C)", err=True)
        sys.exit(130)
    except Exception as exc:
        typer.echo(f"error: internal error: {type(exc).__name__}: {exc} (RELAXLAB_DEBUG=1 shows where; "
                   "please report it)", err=True)  # fmt: skip
        sys.exit(3)


if __name__ == "__main__":
    main()
