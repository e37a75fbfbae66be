"""The ``relaxlab`` commands that run one protocol or check files: ``examples``, ``demo``, ``run``,
``validate``."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from orchestrator.cli_common import (
    MAX_HOURS,
    OUT_DIR,
    DataDirOpt,
    JsonOpt,
    _command,
    _data_root,
    _fail,
    _flat_conditions,
    _guarded,
    _interrupted,
    _on_served_instruments,
    _print,
    _session,
    _writable_dir,
    app,
    progress_mode,
)

#: The options `demo` and `run` share.
PngOutOpt = Annotated[Path, typer.Option("--out", help="Folder for the PNG.")]
TiledOpt = Annotated[bool, typer.Option(help="Also store the run in the Tiled catalog.")]


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


@app.command()
@_guarded
def demo(
    as_json: JsonOpt = False,
    out: PngOutOpt = OUT_DIR,
    data_dir: DataDirOpt = None,
    tiled: TiledOpt = True,
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
    tiled: TiledOpt = True,
    out: PngOutOpt = OUT_DIR,
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
        if clock is not None and hasattr(clock, "close"):
            clock.close()  # a `sim serve --stepped` lab's lease ends with the run
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


def _after_run(started: list[str], root: Path, data_dir: Path | None) -> list[str]:
    where = ("--data-dir", data_dir) if data_dir else ()
    lines = [f"its points are stored:  {_command('data', 'export', uid[:8], *where)}" for uid in started]
    return lines + [f"if a run is still open (a second Ctrl-C):  {_command('data', 'recover', *where)}"]


def _hint(protocol: str, lab_file: str, cell: str | None) -> str:
    """ "Did you mean" for a mistyped example, lab or cell name (orchestrator/catalog.py)."""
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
    lab = None
    report: dict[str, list[str]] = {}
    if lab_file is not None:
        from orchestrator.lab import LabFileError, load_lab

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
    """Every problem ``run`` / ``campaign run`` would find in one file (with ``lab`` when given).

    Each kind imports only what checking it needs (a protocol alone: its schema)."""
    kind = _file_kind(path)
    if kind == "material":
        from simulators.material import material_problem

        problem = material_problem(str(path.resolve()))
        return [problem] if problem else []
    if kind == "lab":
        from orchestrator.lab import LabFileError, load_lab
        from simulators.material import material_problem

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
        from orchestrator.campaign_file import load_campaign, validate_campaign_file
        from orchestrator.checks import campaign_problems

        issues = [str(i) for i in validate_campaign_file(path)]
        return issues or campaign_problems(load_campaign(path), lab)
    from protocols.schema import load_protocol, validate_protocol_file

    issues = [str(i) for i in validate_protocol_file(path)]
    if issues or lab is None:
        return issues
    from orchestrator.checks import run_problems

    return run_problems(load_protocol(path), lab, cell)
