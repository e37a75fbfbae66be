"""One cell's protocol with heat, XRD and operator steps among its electrochemistry: one run.

:func:`cell_protocol_job` is a job (see :mod:`protocols.jobs`) that runs a protocol file's
steps on one cell, reusing the campaign and in-situ pieces rather than a parallel path:

* electrochemical steps stream their pages as in campaigns (:func:`protocols.campaign.job_step`);
  after an ``xrd: {every: ...}`` step the next one races the potentiostat's pages against the
  diffractometer's scans (:func:`protocols.insitu.insitu_step`), so scans land in the ``"xrd"``
  stream while the cell is measured;
* ``xrd: {scans: N}`` reads N finished scans of a scan job started when the step starts;
* ``manual`` steps go to the operator (:func:`protocols.campaign.ask_operator`); a recorded
  ``active_mass`` becomes the channel's active mass;
* ``heat`` with the cell on its channel: the operator puts the cell into the oven, the oven
  ramps, holds with its temperature log (``"oven"`` stream) and cools
  (:func:`protocols.heating.heat`), and the operator takes the cell out.

The cell is at open circuit, the oven off and the diffractometer no longer watched on any exit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator

from drivers.device import PotentiostatChannel
from drivers.operator import Operator, Timer
from protocols.campaign import TECHNIQUES, ask_operator, job_step
from protocols.devices import HeatingStage, ScanSource
from protocols.heating import heat
from protocols.insitu import XRD_STREAM, FirstOf, insitu_step, read_scan, stop_watching
from protocols.jobs import await_status
from protocols.plans import cell_metadata, technique_to_dict
from protocols.schema import Heat, Manual, Step, Xrd
from protocols.stubs import declare_points_stream


def _xrd_scans(diffractometer: ScanSource, n_scans: int) -> MsgGenerator:
    """Read the next ``n_scans`` finished scans into the ``"xrd"`` stream."""
    for _ in range(n_scans):
        yield from await_status("trigger", diffractometer)
        yield from read_scan(diffractometer, XRD_STREAM)
    yield from stop_watching(diffractometer)


def cell_protocol_job(
    cell: str,
    steps: Sequence[Step],
    channel: PotentiostatChannel,
    operator: Operator,
    timer: Timer,
    *,
    oven: HeatingStage | None = None,
    diffractometers: Mapping[int, Any] | None = None,
    md: dict[str, Any] | None = None,
    operator_context: dict[str, Any] | None = None,
) -> MsgGenerator:
    """Run ``steps`` (a protocol's steps, techniques and heat/xrd/manual steps) on one cell.

    Parameters
    ----------
    cell
        The cell's name (the operator's job name).
    steps
        The protocol's steps in order (:data:`protocols.schema.Step`).
    channel
        The potentiostat channel holding the cell.
    operator, timer
        Who carries out the manual steps; waits of clock time.
    oven
        The oven for ``heat`` steps (needed only when there are any).
    diffractometers
        For each ``xrd`` step (by its index in ``steps``) the diffractometer whose scan job
        that step starts (needed only when there are any).
    md
        Start-document metadata.
    operator_context
        Passed to the operator with every manual request (e.g. what a simulated operator needs).

    Yields
    ------
    msg : Msg
        'open_run', the steps' messages, 'close_run'; the open-circuit 'stop' of the channel,
        and the 'stop' of the oven, on any exit.

    Returns
    -------
    dict
        ``end_reasons`` of the electrochemical steps and what the operator ``recorded``.
    """
    steps = list(steps)
    xrds = dict(diffractometers or {})
    missing = [i for i, s in enumerate(steps) if isinstance(s, Xrd) and i not in xrds]
    if missing:
        raise ValueError(f"{cell}: no diffractometer for the xrd step(s) {missing}")
    if oven is None and any(isinstance(s, Heat) for s in steps):
        raise ValueError(f"{cell}: the protocol heats the cell but no oven was given")
    techniques = [s for s in steps if isinstance(s, TECHNIQUES)]
    start_md = {
        "plan_name": "cell_protocol",
        "steps": [technique_to_dict(s) for s in techniques],
        "step_types": [s.kind for s in techniques],
        "all_step_types": [s.kind for s in steps],
        "streams": ["primary", XRD_STREAM] if xrds else ["primary"],
        **cell_metadata(channel, md),
    }
    result: dict[str, Any] = {"end_reasons": [], "recorded": {}}

    def _inner() -> MsgGenerator:
        yield from bps.open_run(md=start_md)
        try:
            yield from _steps()
        except Exception as exc:
            yield from bps.close_run(exit_status="fail", reason=str(exc))
            raise
        yield from bps.close_run()
        return result

    def _steps() -> MsgGenerator:
        yield from declare_points_stream(channel)
        during: tuple[Any, FirstOf] | None = None  # an xrd job running through the next step
        for index, step in enumerate(steps):
            if isinstance(step, Xrd) and step.during_next_step:
                diffractometer = xrds[index]
                during = (diffractometer, FirstOf(channel, diffractometer, name=f"{channel.name}_or_xrd"))
            elif isinstance(step, Xrd):
                yield from _xrd_scans(xrds[index], step.scans)
            elif isinstance(step, TECHNIQUES):
                if during is None:
                    reason = yield from job_step(channel, step)
                else:
                    reason = yield from insitu_step(channel, during[0], during[1], step)
                    yield from stop_watching(during[0])
                    during = None
                result["end_reasons"].append(reason)
            elif isinstance(step, Manual):
                entered = yield from ask_operator(operator, cell, step, **(operator_context or {}))
                result["recorded"].update(entered)
                if "active_mass" in entered:  # mg, as weighed by the operator
                    yield from await_status("set", channel.active_mass_g, entered["active_mass"] / 1000.0)
            elif isinstance(step, Heat):
                assert oven is not None  # checked when the plan was created
                into = Manual(f"Put cell {cell} (on its channel, at open circuit) into {oven.name}")
                yield from ask_operator(operator, cell, into, action="load_cell", oven=oven)
                yield from heat(oven, step, timer)
                out = Manual(f"Take cell {cell} out of {oven.name}")
                yield from ask_operator(operator, cell, out, action="unload_cell", oven=oven)
        if during is not None:
            yield from stop_watching(during[0])

    def _safe() -> MsgGenerator:
        yield Msg("stop", channel)
        if oven is not None:
            yield Msg("stop", oven)
        for diffractometer in xrds.values():
            yield from stop_watching(diffractometer)

    return (yield from bpp.finalize_wrapper(_inner(), _safe()))


__all__ = ["cell_protocol_job"]
