"""In-situ and ex-situ XRD plans: diffraction scans alongside the potentiostat, one run each.

:func:`insitu_xrd_protocol` runs electrochemical steps while a lab diffractometer repeats
scans: the potentiostat's points stream into the ``"primary"`` stream page by page (as
:func:`protocols.stubs.run_step` does) and every finished scan is read into the ``"xrd"``
stream as it appears, rests included, on one clock time axis.

How two devices are waited on at once: :class:`FirstOf` is a small triggerable that keeps one
outstanding trigger per device (a page of points, the next scan) and returns a Status that
finishes as soon as the first of them does (:func:`any_of`). The plan waits on that Status,
then collects the page or reads the scan, whichever finished, and waits again. The device
triggers themselves are not RunEngine groups, so the scan still in progress when the run
ends is simply dropped when the plan stops watching the export folder.

:func:`out_of_electrolyte_relaxation` is the paper's ex-situ route: the charged electrode is
recovered, washed and dried (operator steps), relaxed for a time at a temperature, then
measured by XRD. Waiting is ``bps.sleep`` or an operator's / a stage's Status, never the
wall clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import FailedStatus, Msg, MsgGenerator, short_uid
from ophyd.status import Status

from drivers.device import PotentiostatChannel
from drivers.techniques import Loop, Technique
from protocols.devices import HeatingStage, OperatorDevice, ScanSource
from protocols.heating import check_heating, heat
from protocols.jobs import any_of
from protocols.plans import run_protocol
from protocols.steps import Heat
from protocols.stubs import STREAM, stream_step

#: Name of the event stream that carries one event per diffraction scan.
XRD_STREAM = "xrd"

#: Operator steps between the end of a charge and the relaxation of a recovered electrode.
DEFAULT_HANDLING: tuple[str, ...] = ("recover", "wash", "dry")


class FirstOf:
    """Triggerable racing the triggers of several devices.

    ``trigger()`` triggers each device that has no outstanding trigger, keeps the Status, and
    returns :func:`any_of` of the outstanding statuses. After waiting on it, the plan calls
    :meth:`take` for each device: a device whose trigger finished hands its Status over (and
    is triggered anew on the next ``trigger()``); the others keep theirs.

    Parameters
    ----------
    devices
        ophyd triggerables (here a :class:`~drivers.device.PotentiostatChannel` and a
        :class:`~drivers.xrd.Diffractometer`).
    name
        Name reported to the RunEngine.
    """

    parent = None

    def __init__(self, *devices: Any, name: str = "first_of") -> None:
        if not devices:
            raise ValueError("FirstOf needs at least one device")
        self.name = name
        self.devices = devices
        self._outstanding: list[Any] = [None] * len(devices)

    def trigger(self) -> Status:
        for index, device in enumerate(self.devices):
            if self._outstanding[index] is None:
                self._outstanding[index] = device.trigger()
        return any_of(self._outstanding, obj=self)

    def take(self, device: Any) -> Any:
        """The finished trigger Status of ``device``, or None while it is still running."""
        index = self.devices.index(device)
        status = self._outstanding[index]
        if status is None or not status.done:
            return None
        self._outstanding[index] = None
        return status

    def outstanding(self, device: Any) -> bool:
        """True while ``device`` has a trigger that has not been taken."""
        return self._outstanding[self.devices.index(device)] is not None


def wait_first(race: FirstOf) -> MsgGenerator:
    """Trigger ``race`` and wait until the first of its devices' triggers is done.

    Yields
    ------
    msg : Msg
        'trigger' of the race, then 'wait' on its group.

    Raises
    ------
    Exception
        The device's own error when the first trigger to finish failed (e.g. the
        diffractometer's ``TimeoutError`` naming the export folder), so the run's stop
        document says what went wrong.
    """
    group = short_uid("first")
    yield Msg("trigger", race, group=group)
    try:
        yield from bps.wait(group=group)
    except FailedStatus as failed:
        raise (failed.__cause__ or failed) from None


def read_scan(diffractometer: ScanSource, stream: str = XRD_STREAM) -> MsgGenerator:
    """Save the diffractometer's present readings (the last finished scan) as one event.

    Yields
    ------
    msg : Msg
        'create', 'read', 'save'.
    """
    yield from bps.create(name=stream)
    yield from bps.read(diffractometer)
    yield from bps.save()


def insitu_step(
    channel: PotentiostatChannel,
    diffractometer: ScanSource,
    race: FirstOf,
    technique: Technique | Loop,
    stream: str = STREAM,
    xrd_stream: str = XRD_STREAM,
) -> MsgGenerator:
    """Run one technique; collect its pages and every scan that finishes meanwhile.

    Parameters
    ----------
    channel, diffractometer
        The potentiostat channel and the diffractometer, both devices of ``race``.
    race
        The :class:`FirstOf` shared by every step of the run, so a scan in progress at a
        step hand-over stays armed.
    technique
        Any :mod:`drivers.techniques` value object.
    stream, xrd_stream
        Streams for the points (declared) and the scans.

    Yields
    ------
    msg : Msg
        The messages of :func:`protocols.stubs.stream_step`, waking up per page or scan:
        a race 'trigger'/'wait' followed by 'create'/'read'/'save' (a scan) and/or
        'collect' (a page); a final 'wait'.

    Raises
    ------
    Exception
        The channel's ``fault`` once its points are collected; the diffractometer's error
        (no scan within its timeout, unreadable file) once the points measured so far are
        collected.

    Returns
    -------
    str
        Why the step ended.
    """

    def page_or_scan(channel: PotentiostatChannel, done: Status) -> MsgGenerator:
        try:
            yield from wait_first(race)
        except Exception:
            yield from bps.collect(channel, name=stream)  # keep the points measured so far
            raise
        if race.take(diffractometer) is not None:
            yield from read_scan(diffractometer, xrd_stream)
        return race.take(channel) is not None

    return (yield from stream_step(channel, technique, stream, page_or_scan))


def stop_watching(diffractometer: ScanSource) -> MsgGenerator:
    """Stop waiting for scans (the diffractometer's own job is not touched).

    Yields
    ------
    msg : Msg
        A 'stop' of the diffractometer device.
    """
    yield Msg("stop", diffractometer)


def _xrd_metadata(diffractometer: ScanSource) -> dict[str, Any]:
    return {
        "diffractometer": getattr(diffractometer, "name", str(diffractometer)),
        "scan_time_s": float(diffractometer.scan_time_s.get()),
        "export_dir": str(diffractometer.export_dir.get()),
    }


def insitu_xrd_protocol(
    channel: PotentiostatChannel,
    diffractometer: ScanSource,
    steps: Sequence[Technique | Loop],
    md: dict[str, Any] | None = None,
) -> MsgGenerator:
    """Electrochemical steps with in-situ XRD running throughout: one run, two streams.

    The points go to ``"primary"`` page by page; each scan that finishes while the steps run
    (rests included) goes to ``"xrd"`` as one event (``two_theta``, ``intensity``,
    ``lattice_A``, ``lattice_err_A``, ``scan_start_s``, ``scan_end_s``, ``filename``), with
    the reading timestamps of the scan's end. Both streams are stamped on the shared clock.
    The scan in progress when the last step ends is not read (end with a rest to keep
    measuring). The cell is at open circuit on any exit, and the folder is no longer watched.

    Parameters
    ----------
    channel
        The potentiostat channel with the in-situ cell.
    diffractometer
        A :class:`drivers.xrd.Diffractometer` watching the repeated-scan job's export folder.
    steps
        Technique value objects, run in order.
    md
        Extra start-document metadata.

    Yields
    ------
    msg : Msg
        'open_run', 'declare_stream', the messages of :func:`insitu_step` per step,
        'close_run', the open-circuit 'stop' of the channel and the 'stop' of the
        diffractometer.
    """
    race = FirstOf(channel, diffractometer, name=f"{channel.name}_or_{diffractometer.name}")

    def step_plan(channel: PotentiostatChannel, step: Technique | Loop) -> MsgGenerator:
        return insitu_step(channel, diffractometer, race, step)

    start_md = {
        "plan_name": "insitu_xrd_protocol",
        "streams": [STREAM, XRD_STREAM],
        **_xrd_metadata(diffractometer),
        **(md or {}),
    }
    plan = run_protocol(channel, steps, start_md, step_plan)
    return (yield from bpp.finalize_wrapper(plan, stop_watching(diffractometer)))


def operator_step(operator: OperatorDevice, instruction: str) -> MsgGenerator:
    """Ask the operator to do ``instruction`` and wait until they report it done.

    Yields
    ------
    msg : Msg
        'set' of the operator and 'wait'.
    """
    yield from bps.mv(operator, instruction)


def relax_out_of_electrolyte(
    relax_s: float,
    temperature_C: float,
    stage: HeatingStage | None = None,
    cool_to_C: float = 25.0,
    log_interval_s: float = 600.0,
) -> MsgGenerator:
    """Wait ``relax_s`` while the recovered electrode relaxes.

    With a ``stage`` (an oven or a hot plate: movable, readable, settling ``set``), it is set
    to ``temperature_C``, read every ``log_interval_s`` during the hold, then set to
    ``cool_to_C``; without one the electrode relaxes wherever it lies (the glove box).

    Yields
    ------
    msg : Msg
        'sleep', or the messages of :func:`protocols.heating.heat` (readings in the primary stream).
    """
    if stage is None:
        yield from bps.sleep(relax_s)
    else:
        step = Heat(temperature_C, relax_s, cool_to_C=cool_to_C, log_interval_s=log_interval_s)
        yield from heat(stage, step, stream="primary")


def out_of_electrolyte_relaxation(
    diffractometer: ScanSource,
    operator: OperatorDevice,
    relax_s: float,
    temperature_C: float = 25.0,
    *,
    stage: HeatingStage | None = None,
    cool_to_C: float = 25.0,
    handling: Sequence[str] = DEFAULT_HANDLING,
    n_scans: int = 1,
    log_interval_s: float = 600.0,
    md: dict[str, Any] | None = None,
) -> MsgGenerator:
    """Relaxation of a recovered (charged) electrode, then XRD: one run.

    After a charge (a previous run), the operator recovers the electrode from the cell,
    washes it (DMC) and dries it (``handling``, in order); the electrode relaxes for
    ``relax_s`` at ``temperature_C`` (in ``stage`` when given), then the operator mounts it
    on the diffractometer and starts the scan job (``"mount"``), and ``n_scans`` finished
    scans are read into the ``"xrd"`` stream. The operator is any movable whose
    ``set(instruction)`` returns a Status that finishes when the step is done (a person at a
    prompt, or the simulated operator of :mod:`orchestrator.insitu_lab`).

    Parameters
    ----------
    diffractometer
        :class:`drivers.xrd.Diffractometer` watching the export folder of the ex-situ job.
    operator
        Carries out the manual steps.
    relax_s
        Relaxation time, seconds (>= 0), from the end of handling to mounting.
    temperature_C
        Relaxation temperature (recorded; applied when ``stage`` is given).
    stage
        Optional oven or hot plate holding the electrode during the relaxation.
    cool_to_C
        Temperature the stage is set to after the hold.
    handling
        Operator instructions before the relaxation.
    n_scans
        Scans to read after mounting (>= 1).
    log_interval_s
        Stage readings during the hold, seconds.
    md
        Extra start-document metadata.

    Yields
    ------
    msg : Msg
        'open_run', 'set'/'wait' per operator step, the messages of
        :func:`relax_out_of_electrolyte`, 'set'/'wait' for mounting, 'trigger'/'wait'/
        'create'/'read'/'save' per scan, 'close_run', and the 'stop' of the diffractometer
        (and of the stage, its safe state).

    Raises
    ------
    ValueError
        On a negative or non-finite ``relax_s``, a non-finite temperature, a non-positive
        ``log_interval_s`` or ``n_scans < 1`` (when the plan is created).
    """
    check_heating("relax_s", relax_s, log_interval_s, temperature_C=temperature_C, cool_to_C=cool_to_C)
    if n_scans < 1:
        raise ValueError(f"n_scans must be >= 1, got {n_scans}")
    start_md: dict[str, Any] = {
        "plan_name": "out_of_electrolyte_relaxation",
        "relax_s": float(relax_s),
        "temperature_C": float(temperature_C),
        "stage": getattr(stage, "name", None) if stage is not None else None,
        "cool_to_C": float(cool_to_C),
        "handling": list(handling),
        "n_scans": int(n_scans),
        "operator": getattr(operator, "name", str(operator)),
        **_xrd_metadata(diffractometer),
    }
    start_md.update(md or {})

    def _inner() -> MsgGenerator:
        yield from bps.open_run(md=start_md)
        for instruction in handling:
            yield from operator_step(operator, instruction)
        yield from relax_out_of_electrolyte(relax_s, temperature_C, stage, cool_to_C, log_interval_s)
        yield from operator_step(operator, "mount")
        for _ in range(n_scans):
            yield from bps.trigger_and_read([diffractometer], name=XRD_STREAM)
        return (yield from bps.close_run())

    def _cleanup() -> MsgGenerator:
        yield from stop_watching(diffractometer)
        if stage is not None:
            yield from bps.stop(stage)

    return (yield from bpp.finalize_wrapper(_inner(), _cleanup()))


__all__ = [
    "DEFAULT_HANDLING",
    "XRD_STREAM",
    "FirstOf",
    "any_of",
    "insitu_step",
    "insitu_xrd_protocol",
    "out_of_electrolyte_relaxation",
    "read_scan",
    "relax_out_of_electrolyte",
    "wait_first",
]
