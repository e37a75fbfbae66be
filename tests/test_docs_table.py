"""docs/simulators.md is generated from the simulators and kept up to date."""

from __future__ import annotations

import re

from simulators import doctable
from simulators.keithley2450 import SimulatedKeithley2450


def test_simulator_command_table_is_up_to_date() -> None:
    assert doctable.DOC_PATH.read_text(encoding="utf-8") == doctable.render(), (
        "docs/simulators.md is out of date: run python -m simulators.doctable --write"
    )


def _short_form(pattern: str, functions: tuple[str, ...]) -> str:
    """The shortest header a pattern accepts, e.g. SOURce[1]:CURRent:VLIMit[:LEVel]? -> SOUR:CURR:VLIM?
    (digits inside a mnemonic belong to it: PK2Pk -> PK2P)"""
    body = re.sub(r"\[[^\]]*\]", "", pattern)
    if functions:
        body = body.replace("<function>", functions[0])
    return ":".join("".join(c for c in node if c.isupper() or c.isdigit() or c in "*?") for node in body.split(":"))


def test_every_documented_keithley_query_is_answered() -> None:
    from drivers.clock import SimClock
    from simulators.cell import Cell, Sample
    from simulators.material import load_material

    instrument = SimulatedKeithley2450(Cell(Sample(load_material(None))), SimClock())
    host = instrument.connect()
    host.receive(b":TRAC:TRIG\n")  # one reading, for FETCh? and TRACe:DATA?
    host.receive(b":SOUR:SWE:VOLT:LIN 0, 1, 2\n")  # a configuration list, for its size
    for row in SimulatedKeithley2450.command_table():
        if not row.pattern.endswith("?"):
            continue
        query = _short_form(row.pattern, row.functions)
        query += " 1, 1" if query.startswith("TRAC:DATA") else ""
        query += ' "VoltLinearSweepList"' if query.startswith("SOUR:CONF:LIST") else ""
        host.receive(query.encode() + b"\n")
        assert host.take_output().endswith(b"\n"), f"{row.pattern} ({query}) gave no reply"
        assert instrument.errors == [], f"{row.pattern} ({query}): {instrument.errors}"
