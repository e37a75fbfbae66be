"""Bruker ``.brml`` and Panalytical ``.xrdml`` patterns (XML): scans, optics and time stamps."""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np

from analysis.errors import DataFileError
from analysis.pattern_types import (
    CU_KA1_A,
    CU_KA2_A,
    CU_KA2_RATIO,
    Pattern,
    Wavelength,
    _finish,
    parse_timestamp_s,
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
