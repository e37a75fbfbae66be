"""relaxlab: automated relaxation campaigns on Li-rich cathodes.

The distribution ``relaxlab`` installs six import names: this package (the public Python API
and the version) and the five layers it is built from, ``orchestrator``, ``protocols``,
``drivers``, ``simulators`` and ``analysis``.

A notebook session on the simulated lab::

    import relaxlab

    with relaxlab.open_lab("simulated", data_dir="runs") as session:
        protocol = relaxlab.load_protocol("charge-rest-discharge")
        (uid,) = session.run(relaxlab.run_protocol(session.channel(), protocol.steps))
        start, frame = session.read(uid)      # a DataFrame with the export columns

See ``docs/python-api.md`` for the whole API.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orchestrator  # noqa: F401  (first: it checks that none of our packages is shadowed)
from orchestrator.lab import Lab, LabFileError, load_lab
from orchestrator.runner import Session
from orchestrator.storage import read_journal, read_runs
from protocols.plans import relaxation_protocol, run_protocol
from protocols.schema import Protocol, ProtocolError, list_examples, load_protocol

if TYPE_CHECKING:
    import pandas as pd

try:
    __version__ = version("relaxlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Lab",
    "LabFileError",
    "Protocol",
    "ProtocolError",
    "Session",
    "__version__",
    "list_examples",
    "load_lab",
    "load_protocol",
    "open_lab",
    "read_journal",
    "read_runs",
    "relaxation_protocol",
    "report",
    "run_protocol",
]


def open_lab(lab: str | Lab = "simulated", **options: object) -> Session:
    """Open a lab (a lab file, ``"simulated"`` or a :class:`Lab`) as a :class:`Session`.

    Parameters
    ----------
    lab
        Path of a lab file, the name of a built-in lab (``"simulated"``), or a parsed ``Lab``.
    **options
        Passed to :class:`Session`: ``data_dir``, ``tiled`` (default ``False`` here: the
        journal alone is the durable copy), ``tiled_uri``, ``progress``, ``noise``, ``cells``.

    Returns
    -------
    Session
        Use ``session.run(plan)`` to run a plan (in simulated time on a simulated lab),
        ``session.read(uid)`` for a run as a DataFrame; close it (or use ``with``) when done.
    """
    options.setdefault("tiled", False)
    return Session(lab if isinstance(lab, Lab) else load_lab(lab), **options)  # type: ignore[arg-type]


def report(runs: Iterable[tuple[dict[str, Any], pd.DataFrame]], out_dir: str | Path) -> Path:
    """Figures and one self-contained HTML page for runs read with ``session.read`` or
    :func:`read_journal` (as ``relaxlab report`` makes them for stored runs).

    Parameters
    ----------
    runs
        ``(start document, DataFrame)`` pairs.
    out_dir
        Folder for ``index.html`` and the PNG figures (created).

    Returns
    -------
    Path
        The page, ``out_dir/index.html``.
    """
    from analysis.report import build_report  # matplotlib is imported only when a report is made

    return build_report(out_dir, list(runs))
