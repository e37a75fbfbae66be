"""The lab diffractometer running repeated scans, read through its export folder.

* :mod:`drivers.xrd.watcher` - the scan source (:class:`ExportFolderWatcher`, the
  :class:`~drivers.contracts.DiffractometerDriver` of this kind) and its types;
* :mod:`drivers.xrd.device` - the ophyd :class:`Diffractometer` on top of it.

It is not a lab-file instrument (no ``MODEL``): the in-situ and example labs build it
(:mod:`orchestrator.insitu_lab`). Its simulator is :mod:`simulators.xrd`.
"""

from __future__ import annotations

from drivers.xrd.device import ArraySignal, Diffractometer
from drivers.xrd.watcher import (
    HKL,
    STATE_FILENAME,
    ExportFolderWatcher,
    ScanAnalysis,
    ScanFit,
    ScanPattern,
    UnreadableFile,
    XrdScan,
)

__all__ = [
    "HKL",
    "STATE_FILENAME",
    "ArraySignal",
    "Diffractometer",
    "ExportFolderWatcher",
    "ScanAnalysis",
    "ScanFit",
    "ScanPattern",
    "UnreadableFile",
    "XrdScan",
]
