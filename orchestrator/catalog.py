"""What ships with relaxlab (example protocols, campaigns, labs) and "did you mean" hints.

``relaxlab examples`` lists :func:`shipped`; the CLI adds :func:`did_you_mean` to the message
of a name it cannot find (an example, a campaign, a lab, a cell), using :mod:`difflib`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from protocols.schema import EXAMPLES_DIR

CAMPAIGNS_DIR = Path(__file__).parent / "campaigns"
LABS_DIR = Path(__file__).parent / "labs"


def example_names() -> list[str]:
    """Names of the shipped example protocols (``protocols/examples/*.yaml``)."""
    return sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml"))


def campaign_names() -> list[str]:
    """Names of the shipped campaigns (``orchestrator/campaigns/*.yaml``)."""
    return sorted(p.stem for p in CAMPAIGNS_DIR.glob("*.yaml"))


def lab_names() -> list[str]:
    """Names of the built-in labs (``orchestrator/labs/*.toml``), usable as ``--lab NAME``."""
    return sorted(p.stem for p in LABS_DIR.glob("*.toml"))


def shipped() -> list[dict[str, Any]]:
    """Every shipped example protocol and campaign: kind, name, one-line description, file.

    For protocols also the step kinds (``xrd``, ``heat``, ``manual`` need the simulated lab or an
    oven); for campaigns the protocol they run.
    """
    rows: list[dict[str, Any]] = []
    for kind, folder in (("protocol", EXAMPLES_DIR), ("campaign", CAMPAIGNS_DIR)):
        for path in sorted(folder.glob("*.yaml")):
            data = yaml.safe_load(path.read_text()) or {}
            row: dict[str, Any] = {"kind": kind, "name": path.stem,
                                   "description": str(data.get("description", "")).strip(), "file": str(path)}  # fmt: skip
            if kind == "protocol":
                row["steps"] = sorted(
                    {next(iter(s)) for s in data.get("steps", []) if isinstance(s, dict) and s}
                )
            else:
                row["protocol"] = data.get("protocol")
            rows.append(row)
    return rows


def _bare(name: str) -> str:
    """``name`` without a ``.yaml``/``.yml``/``.toml`` suffix (``4.8V`` is not a suffix)."""
    text = Path(str(name)).name
    for suffix in (".yaml", ".yml", ".toml"):
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``name``, else ``""``."""
    close = difflib.get_close_matches(_bare(name), list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def missing_name_hint(name: str, choices: Iterable[str]) -> str:
    """A hint for ``name`` when it is not an existing file: close names, else the list."""
    options = list(choices)
    if Path(str(name)).exists() or _bare(name) in options:
        return ""
    return did_you_mean(name, options) or (f" (built-in: {', '.join(options)})" if options else "")


__all__ = ["campaign_names", "did_you_mean", "example_names", "lab_names", "missing_name_hint", "shipped"]
