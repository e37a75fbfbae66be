"""Pattern reading and lattice fitting handed to the diffractometer driver.

Drivers do not import the analysis layer; the orchestrator, which may, gives the export-folder
watcher (:class:`drivers.xrd.ExportFolderWatcher`) the readers of :mod:`analysis.patterns` and
the lattice fit of :mod:`analysis.lattice` as a :class:`drivers.xrd.ScanAnalysis`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.errors import DataFileError
from analysis.lattice import ROCKSALT_HKL, LatticeFitError, fit_pattern_lattice
from analysis.patterns import PATTERN_SUFFIXES, read_patterns
from drivers.clock import Clock
from drivers.xrd import ExportFolderWatcher, ScanAnalysis

#: Every pattern format relaxlab reads, fitted as a cubic (rock-salt by default) lattice.
PATTERN_ANALYSIS = ScanAnalysis(
    read=read_patterns,
    fit=fit_pattern_lattice,
    bad_file=DataFileError,
    fit_error=LatticeFitError,
    suffixes=PATTERN_SUFFIXES,
    hkl=ROCKSALT_HKL,
)


def pattern_watcher(export_dir: str | Path, clock: Clock, **kwargs: Any) -> ExportFolderWatcher:
    """An export-folder watcher reading and fitting with :data:`PATTERN_ANALYSIS` (keyword
    arguments as :class:`~drivers.xrd.ExportFolderWatcher`'s)."""
    return ExportFolderWatcher(export_dir, clock, analysis=kwargs.pop("analysis", PATTERN_ANALYSIS), **kwargs)
