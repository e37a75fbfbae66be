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
  (or listed) positions and ``startTimeStamp``/``endTimeStamp``.

Unreadable files raise :class:`analysis.errors.DataFileError` naming the file and the problem.
No maintained, light PyPI reader covers these three formats, so the standard library
(``zipfile``, ``xml.etree``) does the work.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np

from analysis.errors import DataFileError

#: Cu K-alpha1 and K-alpha2 wavelengths (Angstrom) and the K-alpha2/K-alpha1 intensity ratio.
CU_KA1_A = 1.54056
CU_KA2_A = 1.54439
CU_KA2_RATIO = 0.5

#: File name suffixes (lower case) that :func:`read_pattern` understands.
PATTERN_SUFFIXES = (".xy", ".xye", ".brml", ".xrdml")


@dataclass(frozen=True)
class Wavelength:
    """X-ray wavelengths of a pattern (Angstrom).

    ``ka2_A`` and ``ka2_ratio`` are None for monochromatic (K-alpha1 only) data.
    """

    ka1_A: float = CU_KA1_A
    ka2_A: float | None = CU_KA2_A
    ka2_ratio: float | None = CU_KA2_RATIO
    anode: str | None = "Cu"


@dataclass
class Pattern:
    """One measured powder pattern.

    Attributes
    ----------
    two_theta_deg : numpy.ndarray
        Scattering angles, degrees, ascending.
    intensity : numpy.ndarray
        Counts (or count rates) per point, same length as ``two_theta_deg``.
    start_time_s, end_time_s : float or None
        POSIX seconds of the scan's start and end when the file states them.
    wavelength : Wavelength
        Wavelengths stated by the file (Cu K-alpha by default).
    source_path : Path or None
        The file read.
    metadata : dict
        Format-specific extras (sample name, instrument, counting time, ...).
    """

    two_theta_deg: np.ndarray
    intensity: np.ndarray
    start_time_s: float | None = None
    end_time_s: float | None = None
    wavelength: Wavelength = field(default_factory=Wavelength)
    source_path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.two_theta_deg.size)


def parse_timestamp_s(text: str) -> float:
    """Convert an ISO 8601 time stamp (with offset, up to 7 fraction digits) to POSIX seconds.

    A time stamp without a UTC offset is taken as UTC.
    """
    text = text.strip()
    match = re.match(r"^(.*?\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", text)
    if match:  # Python's parser wants at most 6 fraction digits on older versions
        text = f"{match.group(1)}.{match.group(2)[:6].ljust(6, '0')}{match.group(3)}"
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _finish(path: Path, two_theta: np.ndarray, intensity: np.ndarray, **kwargs: Any) -> Pattern:
    """Validate the arrays and build the Pattern (sorted by angle)."""
    if two_theta.size == 0:
        raise DataFileError(path, "contains no data points")
    if two_theta.size != intensity.size:
        raise DataFileError(path, f"has {two_theta.size} angles but {intensity.size} intensities")
    if not (np.all(np.isfinite(two_theta)) and np.all(np.isfinite(intensity))):
        raise DataFileError(path, "contains non-numeric (NaN/inf) angles or intensities")
    if two_theta.size < 2:
        raise DataFileError(path, "contains a single data point; a scan needs at least two")
    if np.any(np.diff(two_theta) < 0):
        order = np.argsort(two_theta, kind="stable")
        two_theta, intensity = two_theta[order], intensity[order]
    return Pattern(
        two_theta_deg=two_theta.astype(float),
        intensity=intensity.astype(float),
        source_path=path,
        **kwargs,
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
        fields = line.replace(",", " ").split() if "," in line and "\t" not in line else line.split()
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


# ---------------------------------------------------------------------------- XML helpers
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_xml(path: Path, data: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataFileError(path, f"{what} is not well-formed XML ({exc}); truncated?") from None


def _find(elem: ET.Element, name: str) -> ET.Element | None:
    """First descendant (namespace-agnostic) with local tag ``name``."""
    for child in elem.iter():
        if _local(child.tag) == name:
            return child
    return None


def _findall(elem: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in elem.iter() if _local(child.tag) == name]


def _value_attr(elem: ET.Element, name: str) -> float | None:
    found = _find(elem, name)
    if found is None:
        return None
    text = found.get("Value", found.text)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------- .brml
def read_brml(path: str | Path) -> Pattern:
    """Read a Bruker DIFFRAC.SUITE ``.brml`` file (first measured data route).

    Raises
    ------
    DataFileError
        When the file is not a zip, lacks ``Experiment0/DataContainer.xml`` or raw data, or the
        data rows do not match their field definitions.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFileError(path, f"is not a readable Bruker .brml zip archive ({exc})") from None
    with archive:
        names = archive.namelist()
        containers = [n for n in names if n.endswith("Experiment0/DataContainer.xml")]
        if not containers:
            raise DataFileError(path, "has no Experiment0/DataContainer.xml inside the zip")
        container_name = min(containers, key=len)
        root_prefix = container_name[: -len("Experiment0/DataContainer.xml")]
        try:
            container = _parse_xml(path, archive.read(container_name), container_name)
            refs = [(e.text or "").strip() for e in _findall(container, "string")]
            raw_names = [root_prefix + r for r in refs if r and root_prefix + r in names]
            if not raw_names:  # fall back to any RawData*.xml next to the container
                raw_names = sorted(
                    n for n in names if re.search(r"(^|/)RawData\d*\.xml$", n) and n.startswith(root_prefix)
                )
            if not raw_names:
                raise DataFileError(path, "DataContainer.xml lists no RawData*.xml in the zip")
            raw = _parse_xml(path, archive.read(raw_names[0]), raw_names[0])
        except (zipfile.BadZipFile, OSError, KeyError, EOFError, zlib.error) as exc:
            raise DataFileError(path, f"has a damaged zip member ({exc})") from None
    two_theta, counts, route_meta = _brml_route(path, raw)
    metadata: dict[str, Any] = {"format": "brml", "raw_data_files": raw_names, **route_meta}
    info = _find(container, "MeasurementInfo")
    if info is not None and info.get("SampleName"):
        metadata["sample_name"] = info.get("SampleName")
    start_s = end_s = None
    for tag in ("TimeStampStarted", "TimeStampFinished"):
        elem = next((c for c in raw if _local(c.tag) == tag), None)
        if elem is not None and elem.text:
            try:
                stamp = parse_timestamp_s(elem.text)
            except ValueError:
                raise DataFileError(path, f"has an unreadable {tag} {elem.text!r}") from None
            if tag == "TimeStampStarted":
                start_s = stamp
            else:
                end_s = stamp
    ka1 = _value_attr(raw, "WaveLengthAlpha1")
    ka2 = _value_attr(raw, "WaveLengthAlpha2")
    ratio = _value_attr(raw, "WaveLengthRatio")
    anode = _find(raw, "TubeMaterial")
    wl = Wavelength(
        ka1_A=ka1 if ka1 else CU_KA1_A,
        ka2_A=ka2 if ka2 else (None if ka1 else CU_KA2_A),
        ka2_ratio=ratio if ratio is not None else (None if ka1 else CU_KA2_RATIO),
        anode=anode.text if anode is not None and anode.text else ("Cu" if not ka1 else None),
    )
    return _finish(
        path,
        two_theta,
        counts,
        start_time_s=start_s,
        end_time_s=end_s,
        wavelength=wl,
        metadata=metadata,
    )


def _brml_route(path: Path, raw: ET.Element) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Columns of the first measured DataRoute, located through its DataViews."""
    routes = _findall(raw, "DataRoute")
    if not routes:
        raise DataFileError(path, "raw data has no <DataRoute>")
    route = next((r for r in routes if r.get("RouteFlag") == "Measured"), routes[0])
    rows = [d.text or "" for d in route if _local(d.tag) == "Datum"]
    if not rows:
        raise DataFileError(path, "data route has no <Datum> rows")
    two_theta_col: int | None = None
    counts_col: int | None = None
    for view in _findall(route, "RawDataView"):
        start = int(view.get("Start", "-1"))
        fields = [f.get("FieldName") for f in _findall(view, "FieldDefinitions")]
        if "TwoTheta" in fields:
            two_theta_col = start + fields.index("TwoTheta")
        recording = _find(view, "Recording")
        if (
            counts_col is None
            and recording is not None
            and (recording.get("Category") == "Count" or recording.get("LogicName") == "ScanCounter")
        ):
            counts_col = start
    n_fields = len(rows[0].split(","))
    guessed = two_theta_col is None or counts_col is None
    if guessed:  # no field definitions: Bruker's usual layout is time, flag, 2theta, ..., counts
        if n_fields < 4:
            raise DataFileError(path, f"<Datum> rows have {n_fields} fields and no field definitions")
        two_theta_col, counts_col = 2, n_fields - 1
    assert two_theta_col is not None and counts_col is not None
    try:
        table = np.array([r.split(",") for r in rows], dtype=float)
    except ValueError:
        bad = next((i for i, r in enumerate(rows) if len(r.split(",")) != n_fields), None)
        detail = (
            f"row {bad + 1} has a different number of fields"
            if bad is not None
            else ("a row holds a non-numeric value")
        )
        raise DataFileError(path, f"<Datum> rows are malformed: {detail}") from None
    if table.ndim != 2 or max(two_theta_col, counts_col) >= table.shape[1]:
        raise DataFileError(
            path, f"<Datum> rows have {n_fields} fields, fewer than the field definitions need"
        )
    meta: dict[str, Any] = {"columns_guessed": guessed, "n_data_routes": len(routes)}
    planned = _find(route, "MeasurementPoints")
    if planned is not None and planned.text and planned.text.strip().isdigit():
        meta["planned_points"] = int(planned.text)
    scan = _find(route, "ScanInformation")
    if scan is not None:
        meta["scan_name"] = scan.get("ScanName")
    return table[:, two_theta_col], table[:, counts_col], meta


# -------------------------------------------------------------------------------- .xrdml
def read_xrdml(path: str | Path) -> Pattern:
    """Read a Panalytical ``.xrdml`` file (first scan).

    Raises
    ------
    DataFileError
        When the XML is malformed or truncated, or lacks counts or 2theta positions.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFileError(path, f"cannot be read ({exc.strerror})") from None
    root = _parse_xml(path, data, "the file")
    scans = _findall(root, "scan")
    if not scans:
        raise DataFileError(path, "has no <scan> element")
    scan = scans[0]
    points = _find(scan, "dataPoints")
    if points is None:
        raise DataFileError(path, "scan has no <dataPoints>")
    values_elem = _find(points, "counts")
    kind = "counts"
    if values_elem is None:
        values_elem = _find(points, "intensities")
        kind = "intensities"
    if values_elem is None or not (values_elem.text or "").strip():
        raise DataFileError(path, "scan has no <counts> or <intensities>")
    try:
        intensity = np.array(values_elem.text.split(), dtype=float)  # type: ignore[union-attr]
    except ValueError:
        raise DataFileError(path, f"<{kind}> holds non-numeric values") from None
    two_theta = None
    for pos in _findall(points, "positions"):
        if pos.get("axis") != "2Theta":
            continue
        listed = _find(pos, "listPositions")
        start, end = _find(pos, "startPosition"), _find(pos, "endPosition")
        try:
            if listed is not None and listed.text:
                two_theta = np.array(listed.text.split(), dtype=float)
            elif start is not None and end is not None:
                two_theta = np.linspace(float(start.text or ""), float(end.text or ""), intensity.size)
        except ValueError:
            raise DataFileError(path, "has non-numeric 2Theta positions") from None
    if two_theta is None:
        raise DataFileError(path, "scan has no 2Theta positions")
    metadata: dict[str, Any] = {"format": "xrdml", "intensity_kind": kind, "n_scans": len(scans)}
    counting = _find(points, "commonCountingTime")
    if counting is not None and counting.text:
        metadata["counting_time_s"] = float(counting.text)
    sample_id = _find(root, "id")
    if sample_id is not None and sample_id.text:
        metadata["sample_name"] = sample_id.text
    stamps: dict[str, float | None] = {"startTimeStamp": None, "endTimeStamp": None}
    for tag in stamps:
        elem = _find(scan, tag)
        if elem is not None and elem.text:
            try:
                stamps[tag] = parse_timestamp_s(elem.text)
            except ValueError:
                raise DataFileError(path, f"has an unreadable {tag} {elem.text!r}") from None
    used = _find(root, "usedWavelength")
    wl = Wavelength()
    if used is not None:
        ka1 = _find(used, "kAlpha1")
        ka2 = _find(used, "kAlpha2")
        ratio = _find(used, "ratioKAlpha2KAlpha1")
        anode = _find(root, "anodeMaterial")
        wl = Wavelength(
            ka1_A=float(ka1.text) if ka1 is not None and ka1.text else CU_KA1_A,
            ka2_A=float(ka2.text) if ka2 is not None and ka2.text else None,
            ka2_ratio=float(ratio.text) if ratio is not None and ratio.text else None,
            anode=anode.text if anode is not None else None,
        )
    return _finish(
        path,
        two_theta,
        intensity,
        start_time_s=stamps["startTimeStamp"],
        end_time_s=stamps["endTimeStamp"],
        wavelength=wl,
        metadata=metadata,
    )


# ------------------------------------------------------------------------------ dispatcher
def read_pattern(path: str | Path) -> Pattern:
    """Read a pattern file, choosing the reader from the suffix (see :data:`PATTERN_SUFFIXES`).

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
        return read_xy(path)
    if suffix == ".brml":
        return read_brml(path)
    if suffix == ".xrdml":
        return read_xrdml(path)
    raise DataFileError(
        path, f"has an unsupported suffix {suffix!r} (supported: {', '.join(PATTERN_SUFFIXES)})"
    )
