"""The operator at a console: instructions printed, values typed in.

Each request is answered on its own thread, so a cell waiting for the operator holds up no
other cell; prompts are serialised (one person, one keyboard). ``ask`` reads a line of
standard input; tests and other front ends pass their own. While the operator is asked, the
live progress display is paused (it would redraw over the prompt ten times a second); Ctrl-C
at a prompt stops the campaign like anywhere else (:mod:`orchestrator.interrupt`).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from drivers.operator import OperatorRequest
from drivers.quantities import QuantityError, parse_quantity


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _ask(prompt: str) -> str:
    """``input`` with its prompt on standard error (standard output may carry ``--json``)."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


@contextlib.contextmanager
def live_display_paused() -> Iterator[None]:
    """Take every rich live display (progress bars, the campaign table) off the terminal while
    the operator reads and types, and put them back after."""
    import rich

    console = rich.get_console()
    lives = list(getattr(console, "_live_stack", []))
    for live in reversed(lives):
        transient = live.transient
        live.transient = True  # erase it rather than leave a copy above the prompt
        try:
            live.stop()
        finally:
            live.transient = transient
    try:
        yield
    finally:
        for live in lives:
            with contextlib.suppress(Exception):
                live.start()


class ConsoleOperator:
    """A :data:`drivers.operator.Responder` that asks a person (prompts on standard error)."""

    def __init__(self, ask: Callable[[str], str] = _ask, say: Callable[[str], None] = _say) -> None:
        self.ask = ask
        self.say = say
        self._lock = threading.Lock()

    def __call__(
        self,
        request: OperatorRequest,
        done: Callable[[dict[str, float]], None],
        failed: Callable[[str], None],
    ) -> None:
        threading.Thread(target=self._converse, args=(request, done, failed), daemon=True).start()

    def _converse(self, request: OperatorRequest, done: Any, failed: Any) -> None:
        with self._lock, live_display_paused():
            try:
                self.say(f"\n[{request.job}] {request.instruction}")
                values: dict[str, float] = {}
                for name, unit in request.record:
                    while True:
                        text = self.ask(f"  {name} ({unit}): ").strip()
                        try:
                            values[name] = parse_quantity(
                                text if any(c.isalpha() for c in text) else f"{text} {unit}", unit
                            )
                            break
                        except QuantityError as exc:
                            self.say(f"  {exc}; please enter a number in {unit}")
                if not request.record:
                    self.ask("  press Enter when done ")
            except (EOFError, KeyboardInterrupt):
                failed("the operator did not answer")
                return
        done(values)
