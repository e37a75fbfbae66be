"""The command tables of the simulated instruments, generated from the simulators themselves.

``python -m simulators.doctable`` prints ``docs/simulators.md``; ``--write`` rewrites it and
``--check`` fails when it is out of date (``tests/test_docs_table.py`` runs the check). A
simulator joins the page by offering a ``command_table()`` class method that returns rows
with ``pattern`` and ``doc`` (and optionally ``functions``); see
:meth:`simulators.keithley2450.SimulatedKeithley2450.command_table`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "simulators.md"

# (title, module, class, introduction)
SIMULATORS = [
    (
        "Keithley 2450 SourceMeter (SCPI)",
        "simulators.keithley2450",
        "SimulatedKeithley2450",
        "SCPI as in the Model 2450 Reference Manual: `\\n`-terminated program messages of "
        "`;`-separated units, short or long forms in any case, relative headers after the first "
        "unit, common commands anywhere, strings in `\"` or `'`. The replies of one message come "
        "back as one line joined by `;`. `[...]` is optional; `<function>` is one of the words "
        "listed; numeric settings take `MIN`, `MAX`, `DEF`. A message longer than "
        '{max_bytes} bytes is refused with `-223,"Too much data"`. Each connection has its own '
        "input buffer and output queue; settings, buffers and the error queue are the "
        "instrument's. A running trigger model (`INITiate`) runs in the simulated clock's time "
        "whether or not a host is there: its delays wait, its readings are stamped with their own "
        "instants and fill their buffer as the clock moves (a served lab's clock runs it after each "
        "move); limit and delta branches compare a measure block's last readings, a counter branch "
        "counts from 0 again once it has let the model through, and configuration-list blocks "
        "source the levels of a list such as the one a sweep command makes (a staircase in time).",
    ),
    (
        "EmStat4 (MethodSCRIPT)",
        "simulators.emstat4",
        "SimulatedEmStat4",
        "Online commands are `\\n`-terminated lines; a script is `e` (or `l`), its lines, then an "
        "empty line. Arguments are literals (`500m`, `10i`, `0x1F`), variables or array elements. "
        "Output framing, technique ids, timing and the error codes: `docs/simulator-emstat4.md` "
        "(`python -m simulators.emstat4.docs`).",
    ),
    ("Eurotherm 2400/3200 (Modbus RTU)", "simulators.eurotherm", "SimulatedEurotherm", ""),
]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _section(title: str, intro: str, rows: list[Any]) -> list[str]:
    lines = [f"## {title}", ""]
    if intro:
        lines += [intro, ""]
    lines += ["| command | what it does |", "|---|---|"]
    for row in rows:
        doc = row.doc
        functions = getattr(row, "functions", ())
        if functions:
            doc += f" (`<function>`: {', '.join(functions)})"
        lines.append(f"| `{_cell(row.pattern)}` | {_cell(doc)} |")
    return lines + [""]


def render() -> str:
    """The whole page, from every simulator that offers a ``command_table``."""
    lines = [
        "# Commands the simulated instruments answer",
        "",
        "Generated from the simulators by `python -m simulators.doctable --write`; "
        "`tests/test_docs_table.py` fails when this page is out of date.",
        "",
    ]
    for title, module_name, class_name, intro in SIMULATORS:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name, None)
        table = getattr(cls, "command_table", None)
        if table is None:
            continue
        intro = intro.format(max_bytes=getattr(module, "MAX_MESSAGE_BYTES", ""))
        lines += _section(title, intro, table())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.doctable", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"rewrite {DOC_PATH}")
    group.add_argument("--check", action="store_true", help=f"exit 1 if {DOC_PATH} is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOC_PATH.write_text(text, encoding="utf-8")
        return 0
    if args.check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            print(f"{DOC_PATH} is out of date: run python -m simulators.doctable --write", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
