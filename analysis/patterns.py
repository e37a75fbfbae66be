"""Readers for powder X-ray diffraction patterns written by diffractometer software.

Every reader returns a :class:`Pattern`. Supported formats:

* ``.xy`` / ``.xye`` - two (or three) whitespace- or tab-separated columns, CRLF or LF line
  endings, an optional header of comment lines (``#``, ``!``, ``;``, ``'``) or text lines.
  Comment lines of the form ``# key: value`` become metadata; ``start_time`` and ``end_time``
  (ISO 8601) give the scan time stamps.
* Bruker DIFFRAC.SUITE ``.brml`` - a zip holding ``Experiment0/DataContainer.xml`` (possibly
  under a top-level folder) that lists ``RawData*.xml`` files; the measured ``<DataRoute>`` has
  ``<Datum>`` CSV rows whose column layout is given by its ``<DataViews>`` field definitions.
* Malvern Panalytical ``.xrdml`` - XML with ``<counts>`` or ``<intensities>``, 2theta start/end
  (or listed) positions and ``startTimeStamp``/``endTimeStamp``; every ``<scan>`` of a multi-scan
  file (:func:`read_patterns`; :func:`read_pattern` returns the first and says how many there are).
* Bruker binary ``.raw``: ``RAW1.01`` (DIFFRAC-plus, "v3") and ``RAW4.00`` (DIFFRAC.SUITE, "v4"),
  every range; read from our own description of the layout (see :func:`read_bruker_raw`).

Decimal commas (``10,05<TAB>1234,5``) are accepted in ``.xy`` files. The optics a file states
(a K-alpha1 monochromator, the axial Soller slits, the scan geometry: coupled theta/2theta or a
detector scan at fixed incidence) go into ``Pattern.metadata`` (``monochromator``,
``axial_soller_deg``, ``geometry``, ``omega_deg``) for the lattice fit.

Unreadable files raise :class:`analysis.errors.DataFileError` naming the file and the problem.
No maintained, light PyPI reader covers these three formats, so the standard library
(``zipfile``, ``xml.etree``) does the work.

This module reads ``.xy`` and picks the reader by suffix; :mod:`analysis.pattern_xml` reads
``.brml``/``.xrdml``, :mod:`analysis.pattern_raw` Bruker ``.raw``, and
:mod:`analysis.pattern_types` holds :class:`Pattern` (all re-exported here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import DataFileError
from analysis.pattern_raw import read_bruker_raw as read_bruker_raw
from analysis.pattern_types import (
    CU_KA1_A as CU_KA1_A,
)
from analysis.pattern_types import (
    CU_KA2_A as CU_KA2_A,
)
from analysis.pattern_types import (
    CU_KA2_RATIO as CU_KA2_RATIO,
)
from analysis.pattern_types import (
    PATTERN_SUFFIXES as PATTERN_SUFFIXES,
)
from analysis.pattern_types import (
    Pattern as Pattern,
)
from analysis.pattern_types import (
    Wavelength as Wavelength,
)
from analysis.pattern_types import (
    _finish,
)
from analysis.pattern_types import (
    parse_timestamp_s as parse_timestamp_s,
)
from analysis.pattern_xml import (
    read_brml as read_brml,
)
from analysis.pattern_xml import (
    read_xrdml as read_xrdml,
)
from analysis.pattern_xml import (
    read_xrdml_scans as read_xrdml_scans,
)

# ----------------------------------------------------------------------------------- .xy
_COMMENT_CHARS = ("#", "!", ";", "'", "//")


def _fast_columns(lines: list[str]) -> np.ndarray | None:
    """2theta and intensity of a clean block of numeric lines, or None when it is not clean.

    Clean: every non-blank line holds the same number (>= 2) of whitespace-separated
    numbers, with no commas or comment lines. Anything else returns None, and the caller's
    line-by-line parser handles it (and names the offending line).
    """
    if any("," in line for line in lines):
        return None
    try:
        table = np.loadtxt(lines, comments=None, ndmin=2)
    except ValueError:
        return None
    if table.shape[1] < 2 or table.shape[0] == 0:
        return None
    return table[:, :2]


_DECIMAL_COMMA = re.compile(r"^[-+]?\d+(,\d+)?([eE][-+]?\d+)?$")


def _split_xy_line(line: str) -> list[str]:
    """Fields of a data line: whitespace/semicolon separated, decimal commas allowed.

    ``10,05 1234,5`` (or tab/semicolon separated) has decimal commas; ``10.05,1234.5`` or
    ``10,1234`` (no other separator) is comma separated.
    """
    parts = re.split(r"[\s;]+", line.strip())
    if len(parts) >= 2:
        if any("," in p for p in parts):
            if all(_DECIMAL_COMMA.match(p) for p in parts):
                return [p.replace(",", ".") for p in parts]
            return line.replace(",", " ").replace(";", " ").split()
        return parts
    return line.replace(",", " ").split()


def read_xy(path: str | Path, wavelength: Wavelength | None = None) -> Pattern:
    """Read a two- or three-column text pattern (2theta, intensity[, error]).

    Parameters
    ----------
    path : str or Path
        The file.
    wavelength : Wavelength, optional
        Wavelength to attach when the header does not state one (Cu K-alpha by default).

    Raises
    ------
    DataFileError
        When the file is empty, not text, or has a malformed data line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFileError(path, f"is not a text file ({exc.reason})") from None
    except OSError as exc:
        raise DataFileError(path, f"cannot be read ({exc.strerror})") from None
    metadata: dict[str, Any] = {}
    rows: list[tuple[float, float]] = []
    data_started = False
    lines = text.splitlines()
    data = None
    tried_fast = False
    for number, raw_line in enumerate(lines, start=1):
        if data_started and not tried_fast:
            tried_fast = True
            data = _fast_columns(lines[number - 2 :])  # from the first data line on
            if data is not None:
                break  # the whole data block parsed in one go
        line = raw_line.strip()
        if not line:
            continue
        if line.startswith(_COMMENT_CHARS):
            body = line.lstrip("#!;'/ ").strip()
            key, sep, value = body.partition(":")
            if not sep:
                key, sep, value = body.partition("=")
            if sep and key.strip() and " " not in key.strip():
                metadata[key.strip()] = value.strip()
            continue
        fields = _split_xy_line(line)
        try:
            values = [float(v) for v in fields]
        except ValueError:
            if not data_started:
                metadata.setdefault("header", []).append(line)
                continue
            raise DataFileError(path, f"line {number} is not numeric: {raw_line[:60]!r}") from None
        if len(values) < 2:
            raise DataFileError(
                path, f"line {number} has {len(values)} column(s), expected 2theta and intensity"
            )
        data_started = True
        rows.append((values[0], values[1]))
    if data is None:
        if not rows:
            raise DataFileError(path, "contains no data lines (2theta intensity)")
        data = np.asarray(rows, dtype=float)
    start_s = end_s = None
    try:
        if "start_time" in metadata:
            start_s = parse_timestamp_s(metadata["start_time"])
        if "end_time" in metadata:
            end_s = parse_timestamp_s(metadata["end_time"])
    except ValueError as exc:
        raise DataFileError(path, f"has an unreadable time stamp in its header ({exc})") from None
    wl = wavelength or Wavelength()
    if "wavelength_ka1_A" in metadata:
        try:
            wl = Wavelength(
                ka1_A=float(metadata["wavelength_ka1_A"]),
                ka2_A=float(metadata["wavelength_ka2_A"]) if "wavelength_ka2_A" in metadata else None,
                ka2_ratio=float(metadata["ka2_ratio"]) if "ka2_ratio" in metadata else None,
                anode=metadata.get("anode"),
            )
        except ValueError as exc:
            raise DataFileError(path, f"has an unreadable wavelength in its header ({exc})") from None
    metadata["format"] = "xy"
    return _finish(
        path,
        data[:, 0],
        data[:, 1],
        start_time_s=start_s,
        end_time_s=end_s,
        wavelength=wl,
        metadata=metadata,
    )


# ------------------------------------------------------------------------------ dispatcher
def read_patterns(path: str | Path) -> list[Pattern]:
    """Every pattern in a file: all scans of an .xrdml, all ranges of a Bruker .raw, else one.

    Raises
    ------
    DataFileError
        For an unknown suffix, a missing file, or any unreadable content.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataFileError(path, "does not exist or is not a file")
    if suffix in (".xy", ".xye"):
        return [read_xy(path)]
    if suffix == ".brml":
        return [read_brml(path)]
    if suffix == ".xrdml":
        return read_xrdml_scans(path)
    if suffix == ".raw":
        return read_bruker_raw(path)
    raise DataFileError(
        path, f"has an unsupported suffix {suffix!r} (supported: {', '.join(PATTERN_SUFFIXES)})"
    )


def read_pattern(path: str | Path) -> Pattern:
    """Read a file's (first) pattern, choosing the reader from the suffix.

    A file holding several scans or ranges says so in ``metadata["warnings"]``; use
    :func:`read_patterns` for all of them.

    Raises
    ------
    DataFileError
        For an unknown suffix, a missing file, or any unreadable content.
    """
    patterns = read_patterns(path)
    first = patterns[0]
    if len(patterns) > 1 and not first.metadata.get("warnings"):
        first.metadata.setdefault("warnings", []).append(
            f"the file holds {len(patterns)} scans; read_pattern() gives the first, read_patterns() all"
        )
    return first
