"""Ctrl-C while a plan runs: the first stops cleanly, a second one soon after aborts at once.

bluesky's own handler turns Ctrl-C into a *deferred pause* and leaves a paused RunEngine for an
interactive session to ``RE.resume()``; relaxlab runs from a command line, where nobody can
resume, and a pause never comes while every cell waits (e.g. for the operator). So the
RunEngine gets :class:`CtrlC` as its context manager instead:

* the first Ctrl-C aborts the plan: every plan's clean-up runs (each cell to open circuit, each
  oven to its safe state) and every open run is closed with ``exit_status: abort``; the command
  then says how to resume;
* a second Ctrl-C within :data:`GRACE_S` seconds aborts at once (``KeyboardInterrupt``), without
  waiting for the clean-up;
* a later one repeats the first message.

:func:`last_interrupt` tells the command which of these happened.
"""

from __future__ import annotations

import io
import signal
import sys
import threading
import time
from typing import Any

#: Seconds after the first Ctrl-C in which a second one aborts at once.
GRACE_S = 5.0
REASON = "interrupted by the operator (Ctrl-C)"

_state: dict[str, Any] = {"kind": None}


def last_interrupt() -> str | None:
    """``"stop"`` (first Ctrl-C, clean stop), ``"abort"`` (second Ctrl-C) or None."""
    return _state["kind"]


def reset() -> None:
    _state["kind"] = None


class CtrlC:
    """A RunEngine context manager (in place of bluesky's ``SigintHandler``) for Ctrl-C."""

    def __init__(self, RE: Any) -> None:
        self.RE = RE
        self._first: float | None = None
        self._original: Any = None
        self._installed = False

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._original = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._original)
            self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        # A signal handler does no I/O of its own (it may interrupt a write): the thread prints.
        now = time.monotonic()
        if self._first is not None and now - self._first <= GRACE_S:
            _state["kind"] = "abort"
            signal.signal(signal.SIGINT, self._original or signal.default_int_handler)
            self._installed = False
            raise KeyboardInterrupt
        again = self._first is not None  # a later Ctrl-C, after the grace period: still stopping
        self._first = now
        _state["kind"] = "stop"
        threading.Thread(target=self._stop, args=(again,), name="relaxlab-ctrl-c", daemon=True).start()

    def _stop(self, again: bool) -> None:
        if again:
            _say("\nstill stopping: cells go to open circuit (Ctrl-C again now to abort at once)")
            return
        _say(
            f"\nCtrl-C: stopping - cells to open circuit, runs closed (Ctrl-C again within {GRACE_S:g} s "
            "to abort at once)"
        )
        # bluesky prints its own "Aborting: running cleanup ..." on standard output, which may carry
        # --json: hold it back (only while the abort is requested, and only if nobody else swapped
        # standard output meanwhile).
        saved, sink = sys.stdout, io.StringIO()
        sys.stdout = sink
        try:
            self.RE.abort(reason=REASON)
        except Exception:  # already idle, or stopping on its own: nothing left to abort
            pass
        finally:
            if sys.stdout is sink:
                sys.stdout = saved


def _say(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, RuntimeError):
        pass


def install(RE: Any) -> None:
    """Use :class:`CtrlC` for Ctrl-C on ``RE`` (instead of bluesky's deferred pause)."""
    RE.context_managers = [CtrlC]
    reset()


__all__ = ["GRACE_S", "REASON", "CtrlC", "install", "last_interrupt", "reset"]
