"""Campaign plans: each cell and each heated powder portion is a job (see :mod:`protocols.jobs`).

A *portion job* runs the steps that act on a powder portion (operator steps, then heating in an
oven shared by every cell of that condition) as one run with the oven's temperature log. A *cell
job* waits for its portion, takes a potentiostat channel, and runs the cell's steps (building
the fresh cell, its rest and discharge) as its own run, linked to its campaign, sample and
portion by metadata. Channels and ovens are :class:`Pool` s: a job waits for a free one without
holding anything else up. A failing cell is put at open circuit, its run closed as failed, and
the other cells carry on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bluesky import plan_stubs as bps
from bluesky.utils import MsgGenerator, RunEngineControlException
from ophyd import Signal
from ophyd.status import Status

from drivers.base import StepProgress
from drivers.device import PotentiostatChannel
from drivers.operator import Operator, OperatorRequest, Timer
from drivers.techniques import GITT as Gitt
from drivers.techniques import ConstantCurrent, ConstantVoltage, Loop, Rest, Sweep
from protocols.heating import heat, preheat
from protocols.jobs import await_status, finish, start, wait_for
from protocols.schema import Heat, Manual, Step, Xrd
from protocols.stubs import STREAM, declare_points_stream, log_reading, read_clock, stream_step

TECHNIQUES = (ConstantCurrent, ConstantVoltage, Rest, Sweep, Gitt, Loop)


class Pool:
    """Interchangeable resources (channels, ovens) handed out first come, first served."""

    def __init__(self, name: str, items: Sequence[Any]) -> None:
        self.name = name
        self.free = list(items)
        self._waiters: list[Status] = []

    def acquire(self, name: str | None = None) -> MsgGenerator:
        """Wait (this job only) for a free item and take it.

        Parameters
        ----------
        name : str, optional
            Wait for the item of this name (the one a campaign's schedule assigned); without
            it, take the item that has been free longest.

        Yields
        ------
        msg : Msg
            relaxlab_wait_for messages while none (or not the named one) is free.
        """

        def wanted() -> list[Any]:
            if name is None:
                return self.free
            return [item for item in self.free if getattr(item, "name", None) == name]

        while not wanted():
            status = Status()
            self._waiters.append(status)
            yield from wait_for([status])
        item = wanted()[0]  # the longest free: a channel that just failed a cell goes to the back
        self.free.remove(item)
        return item

    def take(self, item: Any) -> Any:
        """Hand out this item now, before any job asks (a job resuming on the item it had)."""
        self.free.remove(item)
        return item

    def release(self, item: Any) -> None:
        self.free.append(item)
        waiters, self._waiters = self._waiters, []
        for status in waiters:
            status.set_finished()


class Gate:
    """Something jobs wait for (a portion ready for its cells)."""

    def __init__(self) -> None:
        self.status = Status()
        self.error: BaseException | None = None

    def open(self, error: BaseException | None = None) -> None:
        self.error = error
        if not self.status.done:
            self.status.set_finished()


def _ended_by(exc: BaseException) -> tuple[str, str]:
    """(exit_status, reason) of a job's run that ended on ``exc``: ``abort`` when the RunEngine was
    aborted (Ctrl-C), ``fail`` with the cause otherwise."""
    if isinstance(exc, RunEngineControlException):
        return "abort", "interrupted by the operator (Ctrl-C)"
    return "fail", str(exc)


def job_page(channel: PotentiostatChannel, done: Status) -> MsgGenerator:
    """Trigger the channel's next page and park only this job until it (or the step) is done.

    Yields
    ------
    msg : Msg
        'trigger', relaxlab_wait_for, 'wait'.

    Returns
    -------
    bool
        True: a page is ready to collect.
    """
    page, page_group = yield from start("trigger", channel)
    yield from wait_for([page, done])
    if not page.done:  # the step ended: its last page finishes at the same instant
        yield from wait_for([page])
    yield from finish(page_group)
    return True


def job_step(
    channel: PotentiostatChannel,
    technique: Any,
    resume: StepProgress | None = None,
    on_started: Callable[[], None] | None = None,
) -> MsgGenerator:
    """One technique on a channel, streaming pages, parking only this job while it runs.

    With ``resume`` the step is re-attached on the instrument rather than started.
    ``on_started()`` is called once it runs (to persist where it started).

    Yields
    ------
    msg : Msg
        The messages of :func:`protocols.stubs.stream_step`, waiting for each page with
        :func:`job_page` (per page 'trigger', relaxlab_wait_for, 'wait' and 'collect').
    """
    return (yield from stream_step(channel, technique, STREAM, job_page, resume, on_started))


def ask_operator(operator: Operator, job: str, step: Manual, **context: Any) -> MsgGenerator:
    """An operator step for one job; returns what the operator recorded.

    Yields
    ------
    msg : Msg
        'set' on the operator, relaxlab_wait_for, 'wait'.
    """
    request = OperatorRequest(job, step.instruction, step.record, step.duration_s, context)
    yield from await_status("set", operator, request)
    return operator.entered.get(job, {})


def portion_job(
    portion: str,
    steps: Sequence[Step],
    ovens: Pool,
    operator: Operator,
    timer: Timer,
    gate: Gate,
    md: dict[str, Any],
    operator_context: dict[str, Any] | None = None,
    done_steps: int = 0,
    hold: tuple[Any, float] | None = None,
    on_progress: Callable[[str, dict[str, Any]], None] | None = None,
) -> MsgGenerator:
    """The powder-portion phase (operator steps, heating) as one run; opens ``gate`` at the end.

    A heated portion goes into a hot oven, as titrations are done: the oven is brought to the
    step's temperature first (ramp and settling logged), then the operator loads the portion
    (the manual step just before the heat step, if any), the hold is timed from the moment it
    is in, the operator takes it out at the end of the hold and the oven cools down (logged).
    The whole oven profile is in the run's "oven" stream (every ``log_interval`` of the step
    during the hold, every :data:`RAMP_LOG_S` while the temperature moves) and each transfer of
    the portion (into the oven, back to the bench) is an event of the "transfers" stream, at the
    clock time it happened: with the bench temperature in the start document this is the
    portion's whole thermal history.

    Resuming: ``done_steps`` steps finished in an earlier run; ``hold = (oven, started_s)``
    says the heating step ``done_steps`` was holding in that oven (taken from the pool already)
    since ``started_s``: the controller kept its set-point meanwhile, so only the rest of the
    hold is run. ``on_progress(portion, info)`` reports ``steps_done``, and ``oven`` and
    ``hold_started_s`` once a hold starts, to be persisted.

    Yields
    ------
    msg : Msg
        The run's messages: open_run, operator and oven steps with the temperature log
        ('create'/'read'/'save' in the "oven" stream) and the transfers, close_run.
    """
    steps = list(steps)
    heats = [s for s in steps[done_steps:] if isinstance(s, Heat) and s.hold_s > 0]
    if hold is not None:
        oven = hold[0]
    else:
        oven = (yield from ovens.acquire()) if heats else None
    recorded: dict[str, Any] = {}
    where = Signal(name="portion_location", value="bench", kind="hinted")

    def report(**info: Any) -> None:
        if on_progress is not None:
            on_progress(portion, info)

    def moved(to: str) -> MsgGenerator:
        where.put(to, timestamp=(yield from read_clock(timer)))  # a plan-local soft signal
        yield from log_reading(where, "transfers")

    def loads_next(i: int) -> bool:  # a manual step that puts the portion into a hot oven
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        return isinstance(nxt, Heat) and nxt.hold_s > 0

    try:
        yield from bps.open_run({**md, "job": "portion", "oven": getattr(oven, "name", None),
                                 "resumed_after_step": done_steps,
                                 "resumed_hold_started_s": hold[1] if hold is not None else None})  # fmt: skip
        loaded = hold is not None
        for index, step in list(enumerate(steps))[done_steps:]:
            if isinstance(step, Manual):
                extra = dict(operator_context or {})
                if oven is not None and loads_next(index) and not loaded:
                    heating = steps[index + 1]
                    assert isinstance(heating, Heat)
                    yield from preheat(oven, timer, heating)
                    extra.update(action="load_portion", oven=oven)
                recorded.update((yield from ask_operator(operator, portion, step, portion=portion, **extra)))
                if extra.get("action") == "load_portion":
                    loaded = True
                    yield from moved(oven.name)
            elif isinstance(step, Heat):
                if step.hold_s > 0:  # "0 s" is the unheated control: nothing to do
                    assert oven is not None
                    resuming = hold is not None and index == done_steps
                    if not loaded:  # no manual step put it in: preheat, load now
                        yield from preheat(oven, timer, step)
                        load = Manual(f"Load portion {portion} into {oven.name}")
                        yield from ask_operator(
                            operator, portion, load, portion=portion, action="load_portion", oven=oven
                        )
                        yield from moved(oven.name)
                    since = hold[1] if resuming and hold is not None else None

                    def holding(t: float, i: int = index, name: str = oven.name) -> None:
                        report(steps_done=i, oven=name, hold_started_s=t)

                    def unload(name: str = oven.name) -> MsgGenerator:
                        out = Manual(f"Take portion {portion} out of {name}")
                        yield from ask_operator(operator, portion, out, portion=portion,
                                                action="unload_portion", oven=oven)  # fmt: skip
                        yield from moved("bench")

                    yield from heat(
                        oven, step, timer, hold_started_s=since, on_hold=holding, preheated=True, unload=unload
                    )
                    loaded = False
            else:
                raise ValueError(f"portion {portion}: a {step.kind} step cannot run on a powder portion")
            report(steps_done=index + 1, oven=None, hold_started_s=None)
        yield from bps.close_run()
    except Exception as exc:
        if oven is not None:
            yield from bps.stop(oven)  # its safe state
        yield from bps.close_run(*_ended_by(exc))
        gate.open(exc)
        raise
    finally:
        if oven is not None:
            ovens.release(oven)
    gate.open()
    return recorded


def cell_job(
    cell: str,
    steps: Sequence[Step],
    channels: Pool,
    operator: Operator,
    gate: Gate | None,
    md: dict[str, Any],
    operator_context: dict[str, Any] | None = None,
    done_steps: int = 0,
    on_step: Callable[[str, int, PotentiostatChannel], None] | None = None,
    reattach: tuple[PotentiostatChannel, StepProgress] | None = None,
    on_step_started: Callable[[str, int, PotentiostatChannel], None] | None = None,
    channel_name: str | None = None,
) -> MsgGenerator:
    """One cell's run: wait for its portion, take a channel, build the cell, run its steps.

    ``channel_name`` is the channel the campaign's schedule gave the cell: the job waits for
    that one (so a run follows ``campaign plan``); without it the job takes the first free one.

    ``done_steps`` steps already finished in an earlier, interrupted run: the operator re-mounts
    the cell and the run goes on with the next step (a new run, linked by its metadata).
    With ``reattach = (channel, progress)`` step ``done_steps`` is still running on that
    channel (taken from the pool already): the run picks it up where the stored points end,
    without the operator. ``on_step_started(cell, index, channel)`` and ``on_step(cell,
    steps_done, channel)`` are called as each step starts and ends, to persist progress.

    Yields
    ------
    msg : Msg
        relaxlab_wait_for while its portion or a channel is not ready, then open_run, the steps
        (operator steps and techniques, streaming pages), close_run.

    Returns
    -------
    dict
        Step end reasons and what the operator recorded.
    """
    if gate is not None:
        yield from wait_for([gate.status])
        if gate.error is not None:
            raise RuntimeError(f"{cell}: its powder portion failed: {gate.error}")
    channel = reattach[0] if reattach is not None else (yield from channels.acquire(channel_name))
    result: dict[str, Any] = {"channel": channel.name, "end_reasons": [], "recorded": {}}
    try:
        steps = list(steps)
        first_technique = next((i for i, st in enumerate(steps) if isinstance(st, TECHNIQUES)), len(steps))
        if not any(isinstance(st, Manual) for st in steps[:first_technique]):
            # Someone has to put the cell on the channel even if the protocol does not say so.
            steps.insert(0, Manual(f"Mount cell {cell} on {channel.name}", (("active_mass", "mg"),)))
        todo = list(enumerate(steps))[done_steps:]
        if done_steps and reattach is None:
            remount = Manual(f"Re-mount cell {cell} on {channel.name} (resuming after step {done_steps})",
                             (("active_mass", "mg"),))  # fmt: skip
            todo.insert(0, (-1, remount))
        step_types = [st.kind for _, st in todo if isinstance(st, TECHNIQUES)]
        yield from bps.open_run({**md, "channel": channel.name, "step_types": step_types, "job": "cell",
                                 "resumed_after_step": done_steps,
                                 "reattached_step": reattach[1].step_index if reattach else None})  # fmt: skip
        declared = False
        for index, step in todo:
            if isinstance(step, Manual):
                action = "restore_cell" if index < 0 else "build_cell"
                entered = yield from ask_operator(
                    operator, cell, step, action=action, channel=channel, **(operator_context or {})
                )
                result["recorded"].update(entered)
                if "active_mass" in entered:  # mg, as weighed by the operator
                    yield from await_status("set", channel.active_mass_g, entered["active_mass"] / 1000.0)
            elif isinstance(step, TECHNIQUES):
                if not declared:  # after the operator steps, so the descriptor has the weighed mass
                    yield from declare_points_stream(channel)
                    declared = True
                resume = reattach[1] if reattach is not None and index == done_steps else None

                def started(i: int = index) -> None:
                    if on_step_started is not None:
                        on_step_started(cell, i, channel)

                result["end_reasons"].append((yield from job_step(channel, step, resume, started)))
                if channel.points_missing:
                    result["points_missing"] = result.get("points_missing", 0) + channel.points_missing
            elif isinstance(step, Xrd):
                raise NotImplementedError(f"{cell}: XRD steps are not run by campaigns yet")
            else:
                raise ValueError(f"{cell}: a {step.kind} step needs a powder portion, not a cell")
            if on_step is not None and index >= 0:
                on_step(cell, index + 1, channel)
        yield from bps.close_run()
    except Exception as exc:
        yield from bps.stop(channel)  # open circuit
        yield from bps.close_run(*_ended_by(exc))
        raise
    finally:
        channels.release(channel)
    return result
