"""What every ``relaxlab`` command shares: the app and its groups, the options, and one
clear ``error:`` line for every bad input (:func:`_guarded`). The commands live in the
``orchestrator.cli_*`` modules; :mod:`orchestrator.cli` assembles them."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

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
#: What `campaign plan` schedules on and `campaign run` simulates unless told otherwise.
DEFAULT_CHANNELS = 16
DEFAULT_OVENS = 1
#: Where `demo`, `run` and the campaign commands write their charts and tables unless told (--out).
OUT_DIR = Path("relaxlab-out")


def _os_error(exc: OSError) -> str:
    """One sentence for a failed file operation: which file and why (disk full, permission ...)."""
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"cannot write{where}: the disk is full (No space left on device); free some space and retry"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where}: {exc.strerror} (choose a folder you can write to)"
    return f"{exc.strerror or exc}{':' + where if where else ''}"


#: The errors of bad input files, by the module that defines each.
_INPUT_ERRORS = {
    "orchestrator.lab": "LabFileError",
    "protocols.steps": "ProtocolError",
    "orchestrator.campaign_types": "CampaignError",
    "protocols.textfiles": "InputFileError",
}


def _input_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of :data:`_INPUT_ERRORS`. Only modules already imported are looked
    in: an error class whose module the command never imported cannot have been raised, and a
    command pays for no import it does not need (``validate`` of a protocol never loads the lab
    module, which imports every instrument driver and ophyd)."""
    return any(
        isinstance(exc, getattr(sys.modules[module], name))
        for module, name in _INPUT_ERRORS.items()
        if module in sys.modules
    )


def _guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can cause into one ``error:`` line and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ValueError as exc:
            if not _input_error(exc):
                raise
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


def _flat_conditions(start: dict[str, Any]) -> dict[str, Any]:
    """Run metadata with its campaign condition as plain numbers (temperature_C, duration_s)."""
    from drivers.quantities import QuantityError, parse_quantity

    keep = (
        "uid",
        "cell",
        "sample",
        "replicate",
        "active_mass_g",
        "material",
        "protocol",
    )  # the rest: conditions
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
