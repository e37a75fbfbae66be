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
"""

from __future__ import annotations

import re
import struct
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
PATTERN_SUFFIXES = (".xy", ".xye", ".brml", ".xrdml", ".raw")


@dataclass(frozen=True)
class Wavelength:
    """X-ray wavelengths of a pattern (Angstrom).

    ``ka2_A`` and ``ka2_ratio`` are None for monochromatic (K-alpha1 only) data.
    """

    ka1_A: float = CU_KA1_A
    ka2_A: float | None = CU_KA2_A
    ka2_ratio: float | None = CU_KA2_RATIO
    anode: str | None = "Cu"
    #: A K-alpha1 monochromator named by the file's optics (e.g. "Johansson"): the beam then
    #: holds no K-alpha2, whatever K-alpha2 ratio the header repeats.
    monochromator: str | None = None


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
    metadata.update(_brml_optics(raw))
    ka1 = _value_attr(raw, "WaveLengthAlpha1")
    ka2 = _value_attr(raw, "WaveLengthAlpha2")
    ratio = _value_attr(raw, "WaveLengthRatio")
    anode = _find(raw, "TubeMaterial")
    wl = Wavelength(
        ka1_A=ka1 if ka1 else CU_KA1_A,
        ka2_A=ka2 if ka2 else (None if ka1 else CU_KA2_A),
        ka2_ratio=ratio if ratio is not None else (None if ka1 else CU_KA2_RATIO),
        anode=anode.text if anode is not None and anode.text else ("Cu" if not ka1 else None),
        monochromator=metadata.get("monochromator"),
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


def _number(text: str) -> float | None:
    m = re.search(r"[-+]?\d+(?:[.,]\d+)?", text)
    return float(m.group(0).replace(",", ".")) if m else None


def _brml_optics(raw: ET.Element) -> dict[str, Any]:
    """Monochromator, axial Soller and scan geometry stated in a .brml raw-data file."""
    out: dict[str, Any] = {}
    for info in _findall(raw, "BeringInfo"):
        cls = info.get("ClassPath", "")
        if "/Monochromator/" in cls:
            out["monochromator"] = cls.rsplit("/", 1)[-1]
    for elem in raw.iter():
        if _local(elem.tag) == "InfoData" and "Soller" in (
            elem.get("{http://www.w3.org/2001/XMLSchema-instance}type") or ""
        ):
            name = elem.get("VisibleName") or ""
            if "axial" in name.lower():
                value = _number(name.split("[")[0].split("Soller")[-1])
                if value:
                    out["axial_soller_deg"] = value
    scan = _find(raw, "ScanInformation")
    if scan is not None and "detector" in (scan.get("ScanName") or "").lower():
        out["geometry"] = "fixed_incidence"
        for drive in _findall(raw, "InfoData"):
            if drive.get("AxisId") == "Theta":
                pos = _value_attr(drive, "Position")
                if pos:
                    out["omega_deg"] = pos
    elif scan is not None:
        out["geometry"] = "coupled"
    return out


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
    """Read a Panalytical ``.xrdml`` file's first scan.

    A file with several ``<scan>`` elements says so in ``metadata["warnings"]``; use
    :func:`read_xrdml_scans` (or :func:`read_patterns`) for all of them.

    Raises
    ------
    DataFileError
        When the XML is malformed or truncated, or lacks counts or 2theta positions.
    """
    return read_xrdml_scans(path)[0]


def read_xrdml_scans(path: str | Path) -> list[Pattern]:
    """Every scan of a Panalytical ``.xrdml`` file, in file order (see :func:`read_xrdml`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFileError(path, f"cannot be read ({exc.strerror})") from None
    root = _parse_xml(path, data, "the file")
    scans = _findall(root, "scan")
    if not scans:
        raise DataFileError(path, "has no <scan> element")
    common: dict[str, Any] = {"format": "xrdml", "n_scans": len(scans)}
    sample_id = _find(root, "id")
    if sample_id is not None and sample_id.text:
        common["sample_name"] = sample_id.text
    for soller in _findall(root, "sollerSlit"):
        rad = re.search(r"([\d.]+)\s*rad", soller.get("name", ""))
        if rad:
            common["axial_soller_deg"] = float(np.degrees(float(rad.group(1))))
            break
    mono = [m for m in _findall(root, "monochromator")]
    if mono:
        common["monochromator"] = mono[0].get("name") or "monochromator"
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
            monochromator=common.get("monochromator"),
        )
    out = [_xrdml_scan(path, scan, k, wl, common) for k, scan in enumerate(scans)]
    if len(out) > 1:
        out[0].metadata.setdefault("warnings", []).append(
            f"the file holds {len(out)} scans; read_pattern() gives the first, read_patterns() all"
        )
    return out


def _xrdml_scan(path: Path, scan: ET.Element, index: int, wl: Wavelength, common: dict[str, Any]) -> Pattern:
    where = f"scan {index + 1}"
    points = _find(scan, "dataPoints")
    if points is None:
        raise DataFileError(path, f"{where} has no <dataPoints>")
    values_elem = _find(points, "counts")
    kind = "counts"
    if values_elem is None:
        values_elem = _find(points, "intensities")
        kind = "intensities"
    if values_elem is None or not (values_elem.text or "").strip():
        raise DataFileError(path, f"{where} has no <counts> or <intensities>")
    try:
        intensity = np.array(values_elem.text.split(), dtype=float)  # type: ignore[union-attr]
    except ValueError:
        raise DataFileError(path, f"{where}: <{kind}> holds non-numeric values") from None
    two_theta = None
    omega = None
    for pos in _findall(points, "positions"):
        axis = pos.get("axis")
        listed = _find(pos, "listPositions")
        start, end = _find(pos, "startPosition"), _find(pos, "endPosition")
        fixed = _find(pos, "commonPosition")
        try:
            if axis == "2Theta":
                if listed is not None and listed.text:
                    two_theta = np.array(listed.text.split(), dtype=float)
                elif start is not None and end is not None:
                    two_theta = np.linspace(float(start.text or ""), float(end.text or ""), intensity.size)
            elif axis == "Omega" and fixed is not None and fixed.text:
                omega = float(fixed.text)
        except ValueError:
            raise DataFileError(path, f"{where} has non-numeric {axis} positions") from None
    if two_theta is None:
        raise DataFileError(path, f"{where} has no 2Theta positions")
    metadata: dict[str, Any] = {**common, "intensity_kind": kind, "scan_index": index}
    scan_axis = (scan.get("scanAxis") or "").lower()
    metadata["geometry"] = "fixed_incidence" if scan_axis in ("2theta", "2theta-omega fixed") else "coupled"
    if metadata["geometry"] == "fixed_incidence" and omega is not None:
        metadata["omega_deg"] = omega
    counting = _find(points, "commonCountingTime")
    if counting is not None and counting.text:
        metadata["counting_time_s"] = float(counting.text)
    stamps: dict[str, float | None] = {"startTimeStamp": None, "endTimeStamp": None}
    for tag in stamps:
        elem = _find(scan, tag)
        if elem is not None and elem.text:
            try:
                stamps[tag] = parse_timestamp_s(elem.text)
            except ValueError:
                raise DataFileError(path, f"{where} has an unreadable {tag} {elem.text!r}") from None
    return _finish(
        path,
        two_theta,
        intensity,
        start_time_s=stamps["startTimeStamp"],
        end_time_s=stamps["endTimeStamp"],
        wavelength=wl,
        metadata=metadata,
    )


# --------------------------------------------------------------------------------- .raw
def read_bruker_raw(path: str | Path) -> list[Pattern]:
    """Every range of a Bruker binary ``.raw`` file, version 3 (``RAW1.01``) or 4 (``RAW4.00``).

    Layout (little-endian), as we read it from the files themselves:

    ``RAW1.01``: a 712-byte file header (number of ranges at byte 12, anode at 608, K-alpha
    average/1/2/beta at 616/624/632/640 and the K-alpha2/K-alpha1 ratio at 648, float64);
    then per range a header whose length is its first uint32 (304): number of steps at +4,
    start 2theta at +16 and step at +176 (float64), supplementary header length at +256; then
    the counts as float32.

    ``RAW4.00``: a 61-byte file header, then tagged records (uint32 type, uint32 total
    length) until a range starts (type 0): its steps at +4, scan type (text) at +32, start
    2theta and step at +72 and +80 (float64), K-alpha1 at +112, bytes per step at +136,
    length of the range's own records at +140, data after the 160-byte range header and those
    records: per step, the intensity as the first float32.

    The date and time in the header have no time zone (and an ambiguous day/month order), so
    no time stamps are taken from them.

    Raises
    ------
    DataFileError
        When the magic is unknown, a range runs past the end of the file, or the numbers make
        no sense (no steps, non-positive step).
    """
    path = Path(path)
    try:
        b = path.read_bytes()
    except OSError as exc:
        raise DataFileError(path, f"cannot be read ({exc.strerror})") from None
    magic = b[:8]
    try:
        if magic.startswith(b"RAW1.01"):
            return _raw_v3(path, b)
        if magic.startswith(b"RAW4.00"):
            return _raw_v4(path, b)
    except struct.error:
        raise DataFileError(path, "truncated Bruker .raw file (a header runs past the end)") from None
    if magic.startswith((b"RAW ", b"RAW2")):
        raise DataFileError(
            path, f"Bruker .raw version {magic[:4]!r} (DIFFRAC-AT v1/v2) is not supported; export .xy"
        )
    raise DataFileError(path, f"is not a Bruker .raw file (starts with {magic[:8]!r})")


def _check_range(path: Path, k: int, steps: int, start: float, step: float, end_byte: int, size: int) -> None:
    if steps <= 0 or not np.isfinite(start) or not (np.isfinite(step) and step > 0):
        raise DataFileError(path, f"range {k + 1} has {steps} steps from {start} by {step}: not a scan")
    if end_byte > size:
        raise DataFileError(
            path, f"truncated Bruker .raw file: range {k + 1} needs {end_byte} bytes, file has {size}"
        )


def _raw_v3(path: Path, b: bytes) -> list[Pattern]:
    n_ranges = struct.unpack_from("<I", b, 12)[0]
    anode = b[608:610].rstrip(b"\x00 ").decode("latin-1") or None
    _avg, ka1, ka2, _beta, ratio = struct.unpack_from("<5d", b, 616)
    wl = Wavelength(
        ka1_A=ka1 if 0.1 < ka1 < 5 else CU_KA1_A,
        ka2_A=ka2 if 0.1 < ka2 < 5 else None,
        ka2_ratio=ratio if ratio > 0 else None,
        anode=anode,
    )
    pos = 712
    out = []
    for k in range(n_ranges):
        hdr_len, steps = struct.unpack_from("<II", b, pos)
        start = struct.unpack_from("<d", b, pos + 16)[0]
        step = struct.unpack_from("<d", b, pos + 176)[0]
        supp = struct.unpack_from("<I", b, pos + 256)[0]
        data = pos + hdr_len + supp
        _check_range(path, k, steps, start, step, data + 4 * steps, len(b))
        counts = np.frombuffer(b, dtype="<f4", count=steps, offset=data).astype(float)
        meta = {"format": "bruker-raw-v3", "range_index": k, "n_ranges": n_ranges}
        out.append(_finish(path, start + step * np.arange(steps), counts, wavelength=wl, metadata=meta))
        pos = data + 4 * steps
    if not out:
        raise DataFileError(path, "Bruker .raw file with no ranges")
    return out


def _raw_v4(path: Path, b: bytes) -> list[Pattern]:
    pos = 61
    ka1 = CU_KA1_A
    anode = None
    while pos + 8 <= len(b):
        rtype, rlen = struct.unpack_from("<II", b, pos)
        if rtype == 0:
            break
        if rlen < 8:
            raise DataFileError(
                path, f"damaged Bruker .raw v4 header: record at byte {pos} has length {rlen}"
            )
        if rtype == 30 and rlen >= 120:  # tube record: K-alpha1 and anode
            value = struct.unpack_from("<d", b, pos + 80)[0]
            ka1 = value if 0.1 < value < 5 else ka1
            anode = b[pos + 116 : pos + 118].rstrip(b"\x00 ").decode("latin-1") or None
        pos += rlen
    out = []
    k = 0
    while pos + 160 <= len(b):
        steps = struct.unpack_from("<I", b, pos + 4)[0]
        scan_type = b[pos + 32 : pos + 64].split(b"\x00", 1)[0].decode("latin-1")
        start, step = struct.unpack_from("<2d", b, pos + 72)
        range_ka1 = struct.unpack_from("<d", b, pos + 112)[0]
        per_step, extra = struct.unpack_from("<II", b, pos + 136)
        data = pos + 160 + extra
        if per_step < 4 or per_step % 4:
            raise DataFileError(path, f"range {k + 1} stores {per_step} bytes per step; not understood")
        _check_range(path, k, steps, start, step, data + per_step * steps, len(b))
        table = np.frombuffer(b, dtype="<f4", count=steps * (per_step // 4), offset=data)
        counts = table.reshape(steps, per_step // 4)[:, 0].astype(float)
        wl = Wavelength(ka1_A=range_ka1 if 0.1 < range_ka1 < 5 else ka1, anode=anode)
        meta = {
            "format": "bruker-raw-v4",
            "range_index": k,
            "scan_name": scan_type,
            "geometry": "coupled" if "coupled" in scan_type.lower() else "unknown",
        }
        out.append(_finish(path, start + step * np.arange(steps), counts, wavelength=wl, metadata=meta))
        pos = data + per_step * steps
        k += 1
    if not out:
        raise DataFileError(path, "Bruker .raw v4 file with no ranges")
    for p in out:
        p.metadata["n_ranges"] = len(out)
    return out


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
