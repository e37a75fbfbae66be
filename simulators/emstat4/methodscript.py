"""A MethodSCRIPT interpreter for the simulated EmStat4.

The instrument-side half of MethodSCRIPT, written from the MethodSCRIPT manual: a script is
parsed completely first (syntax, declared variables and arrays, block structure: errors are
reported as ``!XXXX: Line L, Col C``) and then executed. Execution is a generator that yields
the absolute script time it next needs to reach (the next sample of a measurement loop, the end
of a ``wait``), so the endpoint can run a script lazily up to ``clock.now()`` and no further.
Runtime errors are reported as ``!XXXX: Line L`` and, as on the instrument, skip the
``on_finished:`` block.

Output follows the manual: ``M<technique id>`` when a measurement loop starts and ``*`` when
it ends, ``L``/``+`` around ``loop`` blocks, ``C<4 hex digits>`` at the start and ``-`` at the
end of every scan of a multi-scan CV (``nscans(n)``), ``P...`` data packages (2-letter type,
7 hex digits offset by 2**27, SI prefix, optional ``,1x`` status and ``,2xx`` range metadata),
``T...`` for ``send_string``.

Every command the simulator accepts is declared in :data:`COMMANDS` and :data:`MEAS_LOOPS`
(the docs table ``docs/simulator-emstat4.md`` is generated from them); commands of
MethodSCRIPT that need hardware the simulated EmStat4 lacks (GPIO, files, I2C, display,
multiplexer, RTC...) are listed in :data:`DEVICE_SPECIFIC` and refused at parse time with
``!001B`` ("not supported by the current device").

The language is declared in :mod:`simulators.emstat4.methodscript_spec`, parsed by
:mod:`simulators.emstat4.methodscript_parse`; the interpreter's state, measurement loops and simple
commands are :mod:`simulators.emstat4.methodscript_state`, ``_techniques`` and ``_commands``. This
module re-exports their public names. None of them imports from ``drivers``: they parse the
bytes themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any

from simulators.emstat4.methodscript_commands import _Commands
from simulators.emstat4.methodscript_parse import parse  # noqa: F401  (re-exported)
from simulators.emstat4.methodscript_spec import (  # noqa: F401  (re-exported: the language is declared there)
    BLOCK_COMMANDS,
    COMMANDS,
    CURRENT_RANGES,
    DEVICE_SPECIFIC,
    ERROR_CODES,
    GALVANOSTAT_MODE,
    HIBERNATE_TIMER,
    MAX_POTENTIAL_V,
    MEAS_LOOPS,
    POTENTIOSTAT_MODES,
    STATUS_OVERLOAD,
    Cmd,
    CommandSpec,
    If,
    Loop,
    MeasLoop,
    MeasLoopSpec,
    Program,
    ScriptError,
    command_table,
    encode_value,
    format_number,
    parse_literal,
    to_int,
)
from simulators.emstat4.methodscript_state import SPIN_CHECKPOINT, _Abort, _Break
from simulators.emstat4.methodscript_techniques import _Techniques


class Interpreter(_Techniques, _Commands):
    """Runs one parsed :class:`Program` on ``hw`` (the simulated EmStat4 front end).

    ``hw`` offers ``advance(to_s)`` (simulate the cell up to a script time under the present
    setting), ``measure()`` -> (voltage_V, current_A), ``read_current(current_A)`` ->
    (reported, status, range index), ``impedance(f_Hz)`` -> complex ohm, ``mode``,
    ``cell_is_on``, ``apply_current``/``apply_voltage``/``rest`` and ``command``.
    Output lines go to ``emit``.
    """

    def __init__(self, program: Program, hw: Any, emit: Callable[[str], None], t0: float) -> None:
        super().__init__(program, hw, emit, t0)
        self._handler_map = self._handlers

    # -- running
    def run(self) -> Generator[float, None, None]:
        """Yield script times to wait for; returns when the main block is done."""
        try:
            yield from self.block(self.program.main)
        except _Abort:
            self.close_scopes()
        except _Break:  # pragma: no cover - parse() rejects breakloop outside loops
            pass

    def run_on_finished(self) -> None:
        """Run the ``on_finished:`` block now (no waiting inside it)."""
        self.in_meas = False
        gen = self.block(self.program.on_finished)
        try:
            for _ in gen:  # a measurement loop here would need time: skip its samples
                pass
        except (_Break, _Abort):
            pass

    def close_scopes(self) -> None:
        """After an abort or an error: close every open scan, measurement loop and loop."""
        while self.scopes:
            self._emit(self.scopes.pop())
        self.in_meas = False

    def block(self, nodes: list[Any]) -> Iterator[float]:
        for node in nodes:
            if type(node) is Cmd:
                if node.name == "wait":
                    yield from self._wait(self.t + self._nonneg(node.args[0], node.line), node.line)
                elif node.name == "hibernate":
                    if to_int(self.value(node.args[0], node.line)) != HIBERNATE_TIMER:
                        raise ScriptError(0x001B, node.line)
                    yield from self._wait(self.t + self._nonneg(node.args[1], node.line), node.line)
                elif node.name == "await_int":
                    yield from self._await_int(node.line)
                else:
                    self.command(node)
            elif type(node) is If:
                for cond, body in node.branches:
                    if cond is None or self.cond(cond, node.line):
                        yield from self.block(body)
                        break
            elif type(node) is Loop:
                self.emit("L")
                self.scopes.append("+")
                try:
                    while self.cond(node.cond, node.line):
                        yield from self.block(node.body)
                        self.spins += 1
                        if self.spins % SPIN_CHECKPOINT == 0:
                            yield self.t  # lets the instrument read a Z during a tight loop
                except _Break:
                    pass
                self.scopes.pop()
                self.emit("+")
            else:
                yield from self.meas_loop(node)
