"""The diffractometer's scan source: an export-folder watcher reading finished scans on the shared
clock, with the reader and lattice fit the orchestrator hands it (see :mod:`drivers.xrd`)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from drivers.clock import Clock

log = logging.getLogger(__name__)

STATE_FILENAME = ".relaxlab_xrd_consumed.json"

HKL = tuple[int, int, int]


class ScanPattern(Protocol):
    """A pattern as the reader returns it."""

    @property
    def two_theta_deg(self) -> np.ndarray: ...

    @property
    def intensity(self) -> np.ndarray: ...

    @property
    def start_time_s(self) -> float | None: ...

    @property
    def end_time_s(self) -> float | None: ...


class ScanFit(Protocol):
    """A lattice fit as the fitter returns it."""

    @property
    def a_A(self) -> float: ...

    @property
    def a_err_A(self) -> float: ...

    @property
    def quality_problems(self) -> tuple[str, ...]: ...

    @property
    def quality_ok(self) -> bool: ...


class UnreadableFile(Protocol):
    """The reader's error for a file it cannot use names the file."""

    @property
    def path(self) -> Path: ...


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
