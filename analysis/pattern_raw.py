"""Bruker binary ``.raw`` patterns, versions 3 (``RAW1.01``) and 4 (``RAW4.00``), every range."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from analysis.errors import DataFileError
from analysis.pattern_types import CU_KA1_A, Pattern, Wavelength, _finish


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
