"""Folder-watching driver and ophyd Device for a lab diffractometer running repeated scans.

Lab diffractometers (Bruker D8 with DIFFRAC.SUITE, Panalytical) have no open remote API: an
in-situ job runs in the vendor software and writes every finished scan as a file into an
export folder. :class:`ExportFolderWatcher` polls that folder's listing on the shared clock
(no watchdog thread), reads each new pattern, stamps it with the scan's start and end times and
fits the cubic lattice parameter. Reading and fitting are the analysis layer's, which a driver
does not import: the orchestrator hands the watcher a :class:`ScanAnalysis`
(:data:`orchestrator.xrd_analysis.PATTERN_ANALYSIS`: :mod:`analysis.patterns` and
:mod:`analysis.lattice`; :func:`orchestrator.xrd_analysis.pattern_watcher` builds a watcher with it).

Rules the watcher follows:

* Only suffixes in ``suffixes`` count; hidden files (``.name``), ``~`` files and names ending in
  ``.tmp``/``.part`` are partial files of a writer and are ignored.
* A file is read once its size and mtime were unchanged over ``settle_polls`` polls
  (0: read at first sight - fine for writers that rename finished files into place).
* A file that cannot be parsed is retried for ``retry_polls`` polls (it may still be being
  written); after that it is reported as bad (the reader's error, e.g.
  :class:`analysis.errors.DataFileError`).
* Consumed files are remembered in a JSON state file (default
  ``<export_dir>/.relaxlab_xrd_consumed.json``) once the caller *acknowledges* them, so a
  restarted driver neither loses nor duplicates a scan: unacknowledged files are read again.
* Time stamps come from the file; when it has none, the end is the file's mtime and the start
  is ``end - scan_time_s``.
* A file holding several scans (multi-scan ``.xrdml``, multi-range Bruker ``.raw``) gives one
  :class:`XrdScan` per scan (``scan_index``/``n_scans``); it counts as consumed once its last
  scan has been handed out.
* Every fit passes the lattice fit's quality gate (its ``quality_ok``)
  before it is published or used as the next starting value; a failed fit is reported
  (``XrdScan.fit_error``, a warning in the log, ``lattice_A`` NaN) and the starting value stays
  that of the last good scan.

Unreadable files (decision): by default (``on_bad_file="raise"``) the :class:`Diffractometer`
fails the Status of the trigger that meets the file, with the file named in the message, and
marks it consumed, so the plan stops (or catches, logs and triggers again to continue with the
next scan) - a scientist notices. ``on_bad_file="skip"`` logs a warning, lists the file in
``Diffractometer.bad_files`` and goes on with the next scan.

The watcher and its types are :mod:`drivers.xrd.watcher` (exported by :mod:`drivers.xrd`);
this module is the ophyd device.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal
from ophyd.status import DeviceStatus

from drivers.clock import Clock
from drivers.contracts import DiffractometerDriver
from drivers.xrd.watcher import UnreadableFile, XrdScan


class ArraySignal(Signal):
    """A soft signal holding a 1-D float array, described as ``dtype='array'`` with its shape."""

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        value = np.asarray(self.get())
        desc[self.name].update(dtype="array", shape=list(value.shape), dtype_numpy=value.dtype.str)
        return desc


class Diffractometer(Device):
    """ophyd Device reading the in-situ diffractometer's finished scans.

    ``trigger()`` returns a Status that finishes when the next finished scan has been read
    (queued scans first, oldest first); the readings then hold that scan. The device polls the
    watcher every ``poll_interval_s`` of clock time via ``clock.call_later`` (never sleeps);
    ``before_poll`` (e.g. a simulator's ``catch_up``) runs before every poll. If no scan
    arrives within ``timeout_s`` of the trigger, the Status fails with a TimeoutError.

    Parameters
    ----------
    watcher : DiffractometerDriver
        The scan source (an :class:`ExportFolderWatcher`; any
        :class:`drivers.contracts.DiffractometerDriver`).
    clock : Clock
        Shared clock.
    name : str
        ophyd name.
    poll_interval_s : float
        Clock seconds between folder polls while a trigger waits.
    timeout_s : float, optional
        Over-due limit per trigger (default ``2 * scan_time_s``).
    before_poll : callable, optional
        Called before every poll.
    on_bad_file : {"raise", "skip"}
        What an unreadable file does to the trigger meeting it (see module docstring).
    """

    two_theta = Cpt(ArraySignal, value=np.zeros(0), kind=Kind.normal)
    intensity = Cpt(ArraySignal, value=np.zeros(0), kind=Kind.normal)
    lattice_A = Cpt(Signal, value=math.nan, kind=Kind.hinted)
    lattice_err_A = Cpt(Signal, value=math.nan, kind=Kind.normal)
    scan_start_s = Cpt(Signal, value=math.nan, kind=Kind.normal)
    scan_end_s = Cpt(Signal, value=math.nan, kind=Kind.normal)
    filename = Cpt(Signal, value="", kind=Kind.normal)

    export_dir = Cpt(Signal, value="", kind=Kind.config)
    scan_time_s = Cpt(Signal, value=0.0, kind=Kind.config)

    def __init__(
        self,
        watcher: DiffractometerDriver,
        clock: Clock,
        *,
        name: str,
        poll_interval_s: float = 10.0,
        timeout_s: float | None = None,
        before_poll: Callable[[], Any] | None = None,
        on_bad_file: str = "raise",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if poll_interval_s <= 0:
            raise ValueError(f"{name}: poll_interval_s must be > 0, got {poll_interval_s}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"{name}: timeout_s must be > 0, got {timeout_s}")
        if on_bad_file not in ("raise", "skip"):
            raise ValueError(f"{name}: on_bad_file must be 'raise' or 'skip', got {on_bad_file!r}")
        self.watcher = watcher
        self.clock = clock
        self.poll_interval_s = float(poll_interval_s)
        self.timeout_s = float(timeout_s) if timeout_s else 2.0 * watcher.scan_time_s
        self.before_poll = before_poll
        self.on_bad_file = on_bad_file
        self.export_dir.put(str(watcher.export_dir))
        self.scan_time_s.put(watcher.scan_time_s)
        self.bad_files: list[Exception] = []
        self.last_scan: XrdScan | None = None
        self._queue: deque[XrdScan | Exception] = deque()
        self._lock = threading.RLock()
        self._status: DeviceStatus | None = None
        self._deadline_s = math.inf
        self._timer: Any = None

    @property
    def pending(self) -> int:
        """Scans (or bad files) read but not yet handed out by a trigger."""
        return len(self._queue)

    def trigger(self) -> DeviceStatus:
        with self._lock:
            if self._status is not None and not self._status.done:
                raise RuntimeError(f"{self.name}: trigger while the previous one is running")
            status = DeviceStatus(self)
            self._status = status
            self._deadline_s = self.clock.now() + self.timeout_s
        self._poll()
        return status

    def stop(self, *, success: bool = False) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            status, self._status = self._status, None
        if status is not None and not status.done:
            status.set_exception(RuntimeError(f"{self.name}: stopped while waiting for a scan"))
        super().stop(success=success)

    def _poll(self) -> None:
        with self._lock:
            self._timer = None
            status = self._status
            if status is None or status.done:
                return
            try:
                if self.before_poll is not None:
                    self.before_poll()
                scans, bad = self.watcher.poll()
                self._queue.extend(bad)
                self._queue.extend(scans)
                finished = self._deliver(status)
            except Exception as exc:  # surface, never lose it on a timer thread
                status.set_exception(exc)
                return
            if finished:
                return
            if self.clock.now() >= self._deadline_s:
                status.set_exception(
                    TimeoutError(
                        f"{self.name}: no finished scan appeared in {self.watcher.export_dir} "
                        f"within {self.timeout_s:.0f} s (one expected every "
                        f"{self.watcher.scan_time_s:.0f} s); is the repeated-scan job running "
                        "and exporting to this folder?"
                    )
                )
                return
            self._timer = self.clock.call_later(self.poll_interval_s, self._poll)

    def _deliver(self, status: DeviceStatus) -> bool:
        """Hand the oldest queued item to ``status``; True when the status is done."""
        while self._queue:
            item = self._queue.popleft()
            if not isinstance(item, XrdScan):  # a file the reader could not use
                self.bad_files.append(item)
                self.watcher.acknowledge(cast(UnreadableFile, item).path.name, status="bad")
                if self.on_bad_file == "raise":
                    status.set_exception(item)
                    return True
                continue
            self._publish(item)
            if item.scan_index == item.n_scans - 1:  # a multi-scan file is done with its last scan
                self.watcher.acknowledge(item.filename)
            status.set_finished()
            return True
        return False

    def _publish(self, scan: XrdScan) -> None:
        stamp = scan.end_s
        fit = scan.fit if scan.fit_ok else None
        self.two_theta.put(scan.pattern.two_theta_deg, timestamp=stamp)
        self.intensity.put(scan.pattern.intensity, timestamp=stamp)
        self.lattice_A.put(fit.a_A if fit else math.nan, timestamp=stamp)
        self.lattice_err_A.put(fit.a_err_A if fit else math.nan, timestamp=stamp)
        self.scan_start_s.put(scan.start_s, timestamp=stamp)
        self.scan_end_s.put(scan.end_s, timestamp=stamp)
        self.filename.put(scan.filename, timestamp=stamp)
        self.last_scan = scan
