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
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal
from ophyd.status import DeviceStatus

from drivers.clock import Clock
from drivers.contracts import DiffractometerDriver

log = logging.getLogger(__name__)

STATE_FILENAME = ".relaxlab_xrd_consumed.json"

HKL = tuple[int, int, int]


class ScanPattern(Protocol):
    """A pattern as the reader returns it."""

    two_theta_deg: np.ndarray
    intensity: np.ndarray
    start_time_s: float | None
    end_time_s: float | None


class ScanFit(Protocol):
    """A lattice fit as the fitter returns it."""

    a_A: float
    a_err_A: float
    quality_problems: tuple[str, ...]

    @property
    def quality_ok(self) -> bool: ...


class UnreadableFile(Protocol):
    """The reader's error for a file it cannot use names the file."""

    path: Path


@dataclass(frozen=True)
class ScanAnalysis:
    """How the watcher reads pattern files and fits them (given by the orchestrator).

    ``read(path)`` returns the file's patterns or raises ``bad_file(path, problem)`` (an
    exception with ``path``); ``fit(pattern, a_guess_A, hkl=, fit_zero_shift=,
    fit_displacement=, search_frac=)`` returns a :class:`ScanFit` or raises ``fit_error``.
    ``suffixes`` are the file suffixes ``read`` understands, ``hkl`` the default reflections.
    """

    read: Callable[[Path], Sequence[ScanPattern]]
    fit: Callable[..., ScanFit]
    bad_file: type[Exception]
    fit_error: type[Exception]
    suffixes: tuple[str, ...]
    hkl: tuple[HKL, ...]


@dataclass(frozen=True)
class XrdScan:
    """One finished scan read from the export folder.

    ``time_source`` says where ``start_s``/``end_s`` come from: ``"file"`` (both stated),
    ``"file+scan_time"`` (one stated, the other from the scan time) or ``"mtime"``.
    ``fit`` is None (and ``fit_error`` says why) when no lattice parameter could be fitted; a
    fit that failed the quality gate is kept in ``fit`` with ``fit_error`` saying why.
    """

    filename: str
    path: Path
    pattern: ScanPattern
    start_s: float
    end_s: float
    time_source: str
    fit: ScanFit | None
    fit_error: str | None = None
    scan_index: int = 0
    n_scans: int = 1

    @property
    def fit_ok(self) -> bool:
        """A fit that passed the quality gate (only such fits are published)."""
        return self.fit is not None and self.fit.quality_ok


@dataclass
class _Seen:
    signature: tuple[int, int]
    stable_polls: int = 0
    failures: int = 0


class ExportFolderWatcher:
    """Reads finished scans from a diffractometer's export folder.

    Parameters
    ----------
    export_dir : str or Path
        Folder the vendor software writes finished scans into.
    clock : Clock
        Shared clock (used for the retry bookkeeping and log messages only).
    analysis : ScanAnalysis
        How files are read and fitted (the orchestrator's
        :data:`~orchestrator.xrd_analysis.PATTERN_ANALYSIS`).
    scan_time_s : float
        Nominal duration of one scan (start time when the file states none).
    suffixes : sequence of str
        File suffixes to read (lower case, with dot; default: all the reader understands).
    state_path : str or Path, optional
        JSON file remembering consumed files (default: hidden file in ``export_dir``).
    ignore_existing : bool
        Treat files present at the first start (no state file yet) as already consumed.
    settle_polls : int
        Polls a file's size and mtime must stay unchanged before it is read.
    retry_polls : int
        Polls an unparsable file is retried before it is reported as bad.
    a_guess_A : float
        Starting lattice parameter for the first fit; later fits start from the last result.
    hkl : sequence of (h, k, l)
        Reflections for the lattice fit (default: the analysis's, rock-salt).
    fit_zero_shift, fit_displacement : bool
        Refine a 2theta zero shift and a sample-displacement term (default on).
    search_frac : float
        Relative range of the coarse lattice search around the starting value.
    """

    def __init__(
        self,
        export_dir: str | Path,
        clock: Clock,
        *,
        scan_time_s: float,
        analysis: ScanAnalysis,
        suffixes: Sequence[str] | None = None,
        state_path: str | Path | None = None,
        ignore_existing: bool = False,
        settle_polls: int = 0,
        retry_polls: int = 2,
        a_guess_A: float = 4.13,
        hkl: Sequence[HKL] | None = None,
        fit_zero_shift: bool = True,
        fit_displacement: bool = True,
        search_frac: float = 0.02,
    ) -> None:
        if scan_time_s <= 0:
            raise ValueError(f"scan_time_s must be > 0, got {scan_time_s}")
        if settle_polls < 0 or retry_polls < 0:
            raise ValueError("settle_polls and retry_polls must be >= 0")
        if not 2.0 < a_guess_A < 20.0:
            raise ValueError(f"a_guess_A must be a cubic lattice parameter in Angstrom, got {a_guess_A}")
        if not 0.0 < search_frac < 0.2:
            raise ValueError(f"search_frac must be in (0, 0.2), got {search_frac}")
        self.export_dir = Path(export_dir)
        if not self.export_dir.is_dir():
            raise FileNotFoundError(f"export folder {self.export_dir} does not exist")
        self.clock = clock
        self.scan_time_s = float(scan_time_s)
        self.analysis = analysis
        self.suffixes = tuple(s.lower() for s in (analysis.suffixes if suffixes is None else suffixes))
        self.state_path = Path(state_path) if state_path else self.export_dir / STATE_FILENAME
        self.settle_polls = int(settle_polls)
        self.retry_polls = int(retry_polls)
        self.hkl = tuple(tuple(h) for h in (analysis.hkl if hkl is None else hkl))
        self.fit_zero_shift = fit_zero_shift
        self.fit_displacement = fit_displacement
        self.search_frac = float(search_frac)
        self.a_guess_A = float(a_guess_A)
        self._seen: dict[str, _Seen] = {}
        self._handed_out: set[str] = set()
        self._not_patterns: set[str] = set()  # names with other suffixes (never read)
        self.consumed: dict[str, dict[str, Any]] = {}
        self._load_state()
        if ignore_existing and not self.state_path.exists():
            for path in self._candidates():
                self.consumed[path.name] = {"status": "ignored"}
            self._save_state()

    # ----------------------------------------------------------------------------- state
    def _load_state(self) -> None:
        if not self.state_path.exists():
            return
        try:
            state = json.loads(self.state_path.read_text())
            self.consumed = dict(state["consumed"])
            if state.get("last_a_A"):
                self.a_guess_A = float(state["last_a_A"])
        except (ValueError, KeyError, TypeError) as exc:
            raise self.analysis.bad_file(self.state_path, f"driver state file is corrupt ({exc})") from None

    def _save_state(self) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps({"consumed": self.consumed, "last_a_A": self.a_guess_A}))
        os.replace(tmp, self.state_path)

    def acknowledge(self, filename: str, status: str = "ok") -> None:
        """Remember ``filename`` as consumed (persisted), so no restart hands it out again."""
        self.consumed[filename] = {"status": status, "at_s": self.clock.now()}
        self._save_state()

    # ----------------------------------------------------------------------------- polling
    def _candidates(self) -> list[Path]:
        """Pattern files in the folder not yet consumed or handed out (oldest listing order).

        The folder is listed once per poll (``os.scandir``); names already consumed, handed
        out or known not to be patterns are skipped by a set lookup, so a poll of a folder
        holding a day of scans costs microseconds per file and builds a ``Path`` only for the
        files still to be read.
        """
        out = []
        done, handed_out, skip = self.consumed, self._handed_out, self._not_patterns
        with os.scandir(self.export_dir) as entries:
            for entry in entries:
                name = entry.name
                if name in done or name in handed_out or name in skip:
                    continue
                if name.startswith((".", "~")) or name.lower().endswith((".tmp", ".part")):
                    continue  # a writer's partial file: look again next poll
                if os.path.splitext(name)[1].lower() not in self.suffixes:
                    skip.add(name)
                    log.info("%s: not a pattern file this watcher reads (suffixes %s)", name, self.suffixes)
                elif entry.is_file():
                    out.append(Path(entry.path))
        return out

    def poll(self) -> tuple[list[XrdScan], list[Exception]]:
        """Read every new finished file; return the scans and the files found unreadable.

        Results are ordered by file mtime then name. Each file is handed out once per driver
        life; call :meth:`acknowledge` after using it so that a restart skips it.
        """
        ready: list[tuple[int, str, Path]] = []
        for path in self._candidates():
            name = path.name
            if name in self.consumed or name in self._handed_out:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:  # renamed or removed between listing and stat
                continue
            signature = (st.st_size, st.st_mtime_ns)
            seen = self._seen.get(name)
            if seen is None or seen.signature != signature:
                seen = self._seen[name] = _Seen(signature)
            else:
                seen.stable_polls += 1
            if seen.stable_polls >= self.settle_polls:
                ready.append((st.st_mtime_ns, name, path))
        scans: list[XrdScan] = []
        bad: list[Exception] = []
        for _, name, path in sorted(ready):
            try:
                patterns = self.analysis.read(path)
            except self.analysis.bad_file as exc:
                seen = self._seen[name]
                seen.failures += 1
                if seen.failures <= self.retry_polls:
                    continue  # perhaps still being written; try again next poll
                log.warning("unreadable diffraction file: %s", exc)
                bad.append(exc)
            else:
                for k, pattern in enumerate(patterns):
                    scans.append(self._stamp_and_fit(path, pattern, k, len(patterns)))
            self._handed_out.add(name)
            self._seen.pop(name, None)
        return scans, bad

    def _stamp_and_fit(self, path: Path, pattern: ScanPattern, index: int = 0, n_scans: int = 1) -> XrdScan:
        start, end = pattern.start_time_s, pattern.end_time_s
        if start is not None and end is not None:
            source = "file"
        elif start is not None:
            end, source = start + self.scan_time_s, "file+scan_time"
        elif end is not None:
            start, source = end - self.scan_time_s, "file+scan_time"
        else:
            end = path.stat().st_mtime
            start, source = end - self.scan_time_s, "mtime"
        fit: ScanFit | None = None
        fit_error = None
        label = path.name if n_scans == 1 else f"{path.name} (scan {index + 1} of {n_scans})"
        try:
            fit = self.analysis.fit(
                pattern,
                self.a_guess_A,
                hkl=self.hkl,
                fit_zero_shift=self.fit_zero_shift,
                fit_displacement=self.fit_displacement,
                search_frac=self.search_frac,
            )
        except self.analysis.fit_error as exc:
            fit_error = str(exc)
            log.warning("%s: no lattice parameter: %s", label, exc)
        else:
            if fit.quality_ok:
                self.a_guess_A = fit.a_A  # only a trusted fit becomes the next starting value
            else:
                fit_error = f"lattice fit failed its quality gate: {'; '.join(fit.quality_problems)}"
                log.warning("%s: a = %.4f A not used: %s", label, fit.a_A, fit_error)
        return XrdScan(
            path.name, path, pattern, float(start), float(end), source, fit, fit_error, index, n_scans
        )


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
