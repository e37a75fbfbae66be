"""Many cells at once in one plan: cooperative jobs.

One RunEngine runs one plan at a time, and a plan that ``wait``-s for one cell's step would
stall every other cell. Here each cell (or powder portion) is a *job*: a generator of bluesky
messages that never blocks the RunEngine itself. Where a job needs to wait, it yields
``wait_for(statuses)``; :func:`run_jobs` parks it and lets the others go on, and waits (one
RunEngine 'wait') only when every job is parked, until any parked status finishes. Each job's
messages carry its run key, so each cell is its own bluesky run.

A job that raises does not stop the others: its exception is returned in the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bluesky.utils import Msg, MsgGenerator, RunEngineControlException, short_uid
from ophyd.status import Status

WAIT_FOR = "relaxlab_wait_for"


def wait_for(statuses: Iterable[Any]) -> MsgGenerator:
    """Park this job until any of ``statuses`` is done (a no-op when one already is).

    Yields
    ------
    msg : Msg
        A relaxlab_wait_for message, handled by :func:`run_jobs` (never sent to the RunEngine).
    """
    yield Msg(WAIT_FOR, None, tuple(statuses))


def start(command: str, obj: Any, *args: Any, **kwargs: Any) -> MsgGenerator:
    """Send a status-returning message (set, trigger, kickoff, complete) without waiting.

    Yields
    ------
    msg : Msg
        The message, in a fresh group.

    Returns
    -------
    (status, group)
        Wait on the status with :func:`wait_for`, then :func:`finish` the group.
    """
    group = short_uid(command)
    status = yield Msg(command, obj, *args, group=group, **kwargs)
    return status, group


def finish(group: str) -> MsgGenerator:
    """Wait for a group whose status is done (immediate; raises if it failed).

    Yields
    ------
    msg : Msg
        A 'wait' message.
    """
    yield Msg("wait", None, group=group)


def await_status(command: str, obj: Any, *args: Any, **kwargs: Any) -> MsgGenerator:
    """:func:`start`, park until done, :func:`finish`: a blocking step that blocks only this job.

    Yields
    ------
    msg : Msg
        The message, a relaxlab_wait_for and a 'wait'.
    """
    status, group = yield from start(command, obj, *args, **kwargs)
    yield from wait_for([status])
    yield from finish(group)
    return status


def any_of(statuses: Sequence[Any], obj: Any = None) -> Status:
    """A Status that finishes when the first of ``statuses`` finishes, as that one did.

    Parameters
    ----------
    statuses
        ophyd statuses (anything with ``add_callback``, ``success`` and ``exception()``).
    obj
        The object the new Status reports as its ``obj``.

    Returns
    -------
    Status
        Finished (or failed with the same exception) as soon as one of ``statuses`` is done.
    """
    if not statuses:
        raise ValueError("any_of needs at least one status")
    result = Status(obj=obj)

    def _first(status: Any) -> None:
        if result.done:
            return
        if status.success:
            result.set_finished()
        else:
            result.set_exception(status.exception() or RuntimeError(f"{status!r} failed"))

    for status in statuses:
        status.add_callback(_first)  # runs at once when already done
    return result


class _AnyOf:
    """A 'device' whose trigger finishes when any of some statuses does."""

    parent = None

    def __init__(self, statuses: Iterable[Any]) -> None:
        self.name = "any_of"
        self._statuses = list(statuses)

    def trigger(self) -> Status:
        return any_of(self._statuses, obj=self)


def _unwind(jobs: list[tuple[str, MsgGenerator]], exc: BaseException) -> MsgGenerator:
    """Throw an abort into each job in turn and pass on its clean-up messages (cells to open
    circuit, ovens safe) until it ends; parking is a no-op while unwinding."""
    for key, gen in jobs:
        try:
            msg = gen.throw(exc)
            while True:
                if msg.command == WAIT_FOR:
                    msg = gen.send(None)
                    continue
                try:
                    reply = yield (msg if msg.run is not None else msg._replace(run=key))
                except Exception as inner:
                    msg = gen.throw(inner)
                    continue
                msg = gen.send(reply)
        except (StopIteration, Exception):
            continue


def run_jobs(
    jobs: Mapping[str, MsgGenerator], on_done: Callable[[str, Any], None] | None = None
) -> MsgGenerator:
    """Run jobs concurrently; returns ``{key: return value or the exception it raised}``.

    ``on_done(key, result)`` is called as each job ends (e.g. to persist progress).

    Yields
    ------
    msg : Msg
        The jobs' messages (each tagged with its job key as run key) and, when every job is
        parked, a 'trigger' + 'wait' on an any-of status.
    """
    runnable: dict[str, tuple[MsgGenerator, Any, BaseException | None]] = {
        key: (gen, None, None) for key, gen in jobs.items()
    }
    parked: dict[str, tuple[MsgGenerator, tuple[Any, ...]]] = {}
    results: dict[str, Any] = {}
    while runnable or parked:
        for key in list(runnable):
            gen, reply, error = runnable.pop(key)
            while True:
                try:
                    msg = gen.throw(error) if error is not None else gen.send(reply)
                except StopIteration as stop:
                    results[key] = stop.value
                    if on_done is not None:
                        on_done(key, stop.value)
                    break
                except Exception as exc:  # the job failed; the others go on
                    results[key] = exc
                    if on_done is not None:
                        on_done(key, exc)
                    break
                reply, error = None, None
                if msg.command == WAIT_FOR:
                    statuses = msg.args[0]
                    if not statuses or any(s.done for s in statuses):
                        continue
                    parked[key] = (gen, statuses)
                    break
                if msg.run is None:
                    msg = msg._replace(run=key)
                try:
                    reply = yield msg
                except RunEngineControlException as exc:  # abort/stop (Ctrl-C): every job cleans up
                    others = [(k, g) for k, (g, *_) in runnable.items()]
                    others += [(k, g) for k, (g, _) in parked.items()]
                    yield from _unwind([(key, gen), *others], exc)
                    raise
                except Exception as exc:
                    error = exc
        if not parked:
            continue
        waiting = [s for _, statuses in parked.values() for s in statuses]
        if not any(s.done for s in waiting):
            group = short_uid("any")
            try:
                yield Msg("trigger", _AnyOf(waiting), group=group)
                yield Msg("wait", None, group=group)
            except RunEngineControlException as exc:
                yield from _unwind([(k, g) for k, (g, _) in parked.items()], exc)
                raise
            except Exception as exc:  # a parked job's status failed: that job gets the error
                failed = [k for k, (_, sts) in parked.items() if any(s.done and not s.success for s in sts)]
                if not failed:
                    raise
                cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc  # say why it failed
                for key in failed:
                    runnable[key] = (parked.pop(key)[0], None, cause)
                continue
        for key, (gen, statuses) in list(parked.items()):
            if any(s.done for s in statuses):
                del parked[key]
                runnable[key] = (gen, None, None)
    return results
