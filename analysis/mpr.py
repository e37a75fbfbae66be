"""BioLogic EC-Lab / BT-Lab binary ``.mpr`` files, read without any GPL code.

An ``.mpr`` file is the magic ``BIO-LOGIC MODULAR FILE`` followed by modules, each
``MODULE`` + short name (10 bytes) + long name (25 bytes) + a small header + its bytes.
Two header layouts exist: older files have ``length, version`` (two uint32) and an ASCII
date ``MM/DD/YY``; newer ones ``max length, length, old version, new version`` (four uint32)
then the date. The data module ("VMP data") holds the number of points (uint32), the
number of column IDs (uint8), the column IDs (uint16; big-endian in the newer layout) and,
from a version-dependent offset, one packed record per point. The record layout follows
from the column IDs: flag IDs share one byte, every other ID has a fixed type.

The ID table below is our own, compiled from the public descriptions of the format
(yadg's documentation of EC-Lab column IDs, EC-Lab's .mpt column names) and checked on the
public EC-Lab test files against each file's .mpt export. Every file is checked for
consistency: the records must fill the data module exactly. A column ID we do not know is
tolerated only when its size follows unambiguously from that check and it is not a
column we need; otherwise the file is refused naming the ID.
"""

from __future__ import annotations

import datetime as _dt
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.errors import DataFileError

MAGIC = b"BIO-LOGIC MODULAR FILE\x1a"
_FIRST_MODULE = 0x34
_DATE_RE = re.compile(rb"^\d\d[/.-]\d\d[/.-]\d\d$")

#: Flag column IDs -> (bit mask in the shared flag byte, .mpt column name).
FLAG_COLUMNS: dict[int, tuple[int, str]] = {
    1: (0x03, "mode"),
    2: (0x04, "ox/red"),
    3: (0x08, "error"),
    21: (0x10, "control changes"),
    31: (0x20, "Ns changes"),
    65: (0x80, "counter inc."),
}

_F4, _F8, _U1, _U2, _U4 = "<f4", "<f8", "u1", "<u2", "<u4"

#: Data column IDs -> (numpy type, column name as EC-Lab writes it in .mpt exports).
DATA_COLUMNS: dict[int, tuple[str, str]] = {
    4: (_F8, "time/s"),
    5: (_F4, "control/V/mA"),
    6: (_F4, "Ewe/V"),
    7: (_F8, "dq/mA.h"),
    8: (_F4, "I/mA"),
    9: (_F4, "Ece/V"),
    11: (_F8, "<I>/mA"),
    13: (_F8, "(Q-Qo)/mA.h"),
    15: (_F4, "Phase(Z1)/deg"),
    16: (_F4, "Analog IN 1/V"),
    17: (_F4, "Analog IN 2/V"),
    19: (_F4, "control/V"),
    20: (_F4, "control/mA"),
    23: (_F8, "dQ/mA.h"),
    24: (_F8, "cycle number"),
    32: (_F4, "freq/Hz"),
    33: (_F4, "|Ewe|/V"),
    34: (_F4, "|I|/A"),
    35: (_F4, "Phase(Z)/deg"),
    36: (_F4, "|Z|/Ohm"),
    37: (_F4, "Re(Z)/Ohm"),
    38: (_F4, "-Im(Z)/Ohm"),
    39: (_U2, "I Range"),
    45: (_F4, "|Z1|/Ohm"),
    46: (_F4, "|Z2|/Ohm"),
    69: (_F4, "R/Ohm"),
    70: (_F4, "P/W"),
    74: (_F8, "|Energy|/W.h"),
    75: (_F4, "Analog OUT/V"),
    76: (_F4, "<I>/mA"),
    77: (_F4, "<Ewe>/V"),
    78: (_F4, "Cs-2/µF-2"),
    96: (_F4, "|Ece|/V"),
    98: (_F4, "Phase(Zce)/deg"),
    99: (_F4, "|Zce|/Ohm"),
    100: (_F4, "Re(Zce)/Ohm"),
    101: (_F4, "-Im(Zce)/Ohm"),
    105: (_F4, "-Im(Z1)/Ohm"),
    106: (_F4, "-Im(Z2)/Ohm"),
    110: (_F8, "Energy ce/W.h"),
    112: (_F8, "Energy we/W.h"),
    115: (_F8, "Energy ce charge/W.h"),
    116: (_F8, "Energy ce discharge/W.h"),
    123: (_F8, "Energy charge/W.h"),
    124: (_F8, "Energy discharge/W.h"),
    125: (_F8, "Capacitance charge/µF"),
    126: (_F8, "Capacitance discharge/µF"),
    131: (_U2, "Ns"),
    135: (_F4, "<E1>/V"),
    136: (_F4, "<E2>/V"),
    163: (_F4, "|Estack|/V"),
    166: (_F4, "Phase(Zstack)/deg"),
    167: (_F4, "|Zstack|/Ohm"),
    168: (_F4, "Rcmp/Ohm"),
    169: (_F4, "Cs/µF"),
    172: (_F4, "Cp/µF"),
    173: (_F4, "Cp-2/µF-2"),
    174: (_F4, "<Ewe>/V"),
    175: (_F4, "|Zwe-ce|/Ohm"),
    176: (_F4, "Re(Zwe-ce)/Ohm"),
    177: (_F4, "-Im(Zwe-ce)/Ohm"),
    178: (_F4, "(Q-Qo)/C"),
    179: (_F4, "dQ/C"),
    182: (_F8, "step time/s"),
    185: (_F4, "<Ece>/V"),
    206: (_F4, "Temperature/°C"),
    211: (_F8, "Q charge/discharge/mA.h"),
    212: (_U4, "half cycle"),
    213: (_U4, "z cycle"),
    215: (_F4, "<Ece>/V"),
    217: (_F4, "THD Ewe/%"),
    218: (_F4, "THD I/%"),
    219: (_F4, "THD Ece/%"),
    220: (_F4, "NSD Ewe/%"),
    221: (_F4, "NSD I/%"),
    222: (_F4, "NSD Ece/%"),
    223: (_F4, "NSR Ewe/%"),
    224: (_F4, "NSR I/%"),
    225: (_F4, "NSR Ece/%"),
    248: (_F4, "Rac/Ohm"),
    249: (_F4, "Rdc/Ohm"),
    253: (_U1, "Acir/Dcir Control"),
    271: (_F4, "Phase(Z1)/deg"),
    272: (_F4, "Phase(Z2)/deg"),
    295: (_U2, "I Range"),
    301: (_F4, "|Z1|/Ohm"),
    302: (_F4, "|Z2|/Ohm"),
    326: (_F4, "P/W"),
    331: (_F4, "Re(Z1)/Ohm"),
    332: (_F4, "Re(Z2)/Ohm"),
    361: (_F4, "-Im(Z1)/Ohm"),
    362: (_F4, "-Im(Z2)/Ohm"),
    379: (_F8, "Energy charge/W.h"),
    391: (_F4, "<E1>/V"),
    392: (_F4, "<E2>/V"),
    422: (_F4, "Phase(Zstack)/deg"),
    423: (_F4, "|Zstack|/Ohm"),
    424: (_F4, "Re(Zstack)/Ohm"),
    425: (_F4, "-Im(Zstack)/Ohm"),
    426: (_F4, "<Estack>/V"),
    430: (_F4, "Phase(Zwe-ce)/deg"),
    431: (_F4, "|Zwe-ce|/Ohm"),
    432: (_F4, "Re(Zwe-ce)/Ohm"),
    433: (_F4, "-Im(Zwe-ce)/Ohm"),
    434: (_F4, "(Q-Qo)/C"),
    435: (_F4, "dQ/C"),
    441: (_F4, "<Ece>/V"),
    462: (_F4, "Temperature/°C"),
    467: (_F8, "Q charge/discharge/mA.h"),
    468: (_U4, "half cycle"),
    469: (_U4, "z cycle"),
    471: (_F4, "<Ece>/V"),
    473: (_F4, "THD Ewe/%"),
    474: (_F4, "THD I/%"),
    475: (_F4, "THD Ece/%"),
    476: (_F4, "NSD Ewe/%"),
    477: (_F4, "NSD I/%"),
    478: (_F4, "NSD Ece/%"),
    479: (_F4, "NSR Ewe/%"),
    480: (_F4, "NSR I/%"),
    481: (_F4, "NSR Ece/%"),
    **{486 + k: (_F4, f"|Ewe h{k + 2}|/V") for k in range(6)},
    **{492 + k: (_F4, f"|I h{k + 2}|/A") for k in range(6)},
    **{498 + k: (_F4, f"|Ece h{k + 2}|/V") for k in range(6)},
}

#: With Ewe (6) or <Ewe> (77) present, ID 174 is a phase, not a potential.
_CONFLICTS = {174: ((6, 77), (_F4, "Phase(Zwe-ce)/deg"))}

#: Columns the analysis needs: an unknown column may not hide where these are.
NEEDED = ("time/s", "Ewe/V", "<Ewe>/V", "I/mA", "<I>/mA", "dq/mA.h", "(Q-Qo)/mA.h", "(Q-Qo)/C", "dQ/C")


@dataclass(frozen=True)
class Module:
    """One module of an .mpr file."""

    name: str
    version: int
    new_layout: bool
    date: str
    data: bytes


@dataclass
class MprFile:
    """The parts of an .mpr file the readers use.

    Attributes
    ----------
    table : DataFrame
        One row per point, columns named as in EC-Lab's .mpt exports (``time/s``, ``Ewe/V``,
        ``I/mA``, ``(Q-Qo)/mA.h``, ``mode``...).
    info : dict
        ``start_time`` (ISO string or ""), ``material``, ``active_mass_g`` and
        ``characteristic_mass_g`` as stated in the settings (None when absent),
        ``column_ids``, ``skipped_ids`` (unknown IDs whose bytes were skipped).
    """

    table: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def _modules(blob: bytes, path: Path) -> list[Module]:
    if not blob.startswith(MAGIC):
        raise DataFileError(
            path, "not a readable BioLogic .mpr file (it does not start with 'BIO-LOGIC MODULAR FILE')"
        )
    out: list[Module] = []
    pos = _FIRST_MODULE
    while pos < len(blob):
        if blob[pos : pos + 6] != b"MODULE":
            raise DataFileError(path, f"damaged .mpr file: no module starts at byte {pos}")
        h = pos + 6
        if h + 59 > len(blob):
            raise DataFileError(path, f"truncated .mpr file: module header at byte {pos} is cut off")
        name = blob[h : h + 10].rstrip(b" \x00").decode("latin-1")
        if _DATE_RE.match(blob[h + 51 : h + 59]):
            _max_len, length, _old, version = struct.unpack("<4I", blob[h + 35 : h + 51])
            date, body, new = blob[h + 51 : h + 59], h + 59, True
        elif _DATE_RE.match(blob[h + 43 : h + 51]):
            length, version = struct.unpack("<2I", blob[h + 35 : h + 43])
            date, body, new = blob[h + 43 : h + 51], h + 51, False
        else:
            raise DataFileError(path, f"damaged .mpr file: module {name!r} has no date in its header")
        if body + length > len(blob):
            raise DataFileError(
                path, f"truncated .mpr file: module {name!r} needs {length} bytes, {len(blob) - body} left"
            )
        out.append(Module(name, int(version), new, date.decode("ascii"), blob[body : body + length]))
        pos = body + length
    return out


def _data_offset(mod: Module) -> int:
    if mod.new_layout:
        return 0x3EF
    return {2: 0x195, 3: 0x196}.get(mod.version, -1)


def _record_dtype(ids: list[int], n_points: int, n_bytes: int, path: Path) -> tuple[np.dtype, list[int]]:
    """Record layout for the column IDs; unknown IDs only where their size is determined."""
    fields: list[tuple[str, str]] = []
    unknown: list[int] = []
    flags_at = None
    present = set(ids)
    for cid in ids:
        if cid in FLAG_COLUMNS:
            if flags_at is None:
                flags_at = len(fields)
                fields.append(("flags", "u1"))
            continue
        spec = DATA_COLUMNS.get(cid)
        if cid in _CONFLICTS and present & set(_CONFLICTS[cid][0]):
            spec = _CONFLICTS[cid][1]
        if spec is None:
            unknown.append(cid)
            fields.append((f"?{cid}", ""))
            continue
        name = spec[1]
        taken = {f[0] for f in fields}
        while name in taken:
            name = "duplicate " + name
        fields.append((name, spec[0]))
    known_size = sum(np.dtype(t).itemsize for n, t in fields if t)
    if n_points == 0:
        if unknown:
            raise DataFileError(path, f"column ID(s) {unknown} unknown to this reader (and no points)")
        return np.dtype([(n, t) for n, t in fields]), []
    if n_bytes < n_points * known_size:
        raise DataFileError(
            path,
            f"truncated .mpr file: {n_points} points need {n_points * known_size} bytes, {n_bytes} present",
        )
    if not unknown:
        # bytes beyond the records are tolerated only as trailing padding shorter than a record
        if n_bytes - n_points * known_size >= known_size:
            raise DataFileError(
                path,
                f"the column IDs {ids} describe {known_size}-byte records but the data module holds "
                f"{n_bytes} bytes for {n_points} points; this .mpr layout is not understood",
            )
        return np.dtype([(n, t) for n, t in fields]), []
    # the unknown bytes per record, if they are one contiguous block
    spare, rest = divmod(n_bytes, n_points)
    extra = spare - known_size
    idx = [i for i, (_n, t) in enumerate(fields) if not t]
    contiguous = idx == list(range(idx[0], idx[0] + len(idx)))
    needed_after = any(n in NEEDED for n, t in fields[idx[-1] + 1 :])
    if extra <= 0 or rest >= spare or (not contiguous and needed_after):
        raise DataFileError(
            path,
            f"column ID(s) {unknown} unknown to this reader; their size cannot be inferred, so the "
            "file cannot be decoded safely",
        )
    merged: list[tuple[str, str]] = []
    for i, (n, t) in enumerate(fields):
        if not t:
            if i == idx[0]:
                merged.append(("_unknown", f"V{extra}"))
            continue
        merged.append((n, t))
    return np.dtype(merged), unknown


def _pascal(data: bytes, offset: int) -> str:
    if offset >= len(data):
        return ""
    n = data[offset]
    return data[offset + 1 : offset + 1 + n].decode("latin-1", errors="replace").strip()


def _f4(data: bytes, offset: int) -> float | None:
    if offset + 4 > len(data):
        return None
    value = struct.unpack_from("<f", data, offset)[0]
    return float(value) if np.isfinite(value) else None


def read_mpr_file(path: str | Path) -> MprFile:
    """Decode an .mpr file into EC-Lab's columns and its settings.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    MprFile
        The table (columns named as in .mpt exports; flags split into ``mode``, ``ox/red``,
        ...; charges in coulomb converted to ``(Q-Qo)/mA.h``) and the settings.

    Raises
    ------
    DataFileError
        When the file is not an .mpr, truncated, damaged, or uses column IDs whose layout
        cannot be decoded safely.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "file not found")
    blob = path.read_bytes()
    mods = _modules(blob, path)
    data_mods = [m for m in mods if m.name == "VMP data"]
    if not data_mods:
        raise DataFileError(path, "no data module ('VMP data') in this .mpr file")
    if len(data_mods) > 1:
        raise DataFileError(
            path, f"{len(data_mods)} data modules (a merged file); export each part separately"
        )
    dm = data_mods[0]
    d = dm.data
    if len(d) < 5:
        raise DataFileError(path, "truncated .mpr file: data module too short")
    n_points = struct.unpack_from("<I", d, 0)[0]
    n_cols = d[4]
    order = ">" if dm.new_layout else "<"
    ids = list(struct.unpack_from(f"{order}{n_cols}H", d, 5))
    offset = _data_offset(dm)
    if offset < 0:
        raise DataFileError(path, f"data module version {dm.version} is not known to this reader")
    dtype, skipped = _record_dtype(ids, n_points, len(d) - offset, path)
    rec = np.frombuffer(d, dtype=dtype, count=n_points, offset=offset)
    table: dict[str, np.ndarray] = {}
    for name in dtype.names or ():
        if name == "_unknown":
            continue
        if name == "flags":
            flags = rec["flags"]
            for cid in ids:
                if cid in FLAG_COLUMNS:
                    mask, fname = FLAG_COLUMNS[cid]
                    shift = (mask & -mask).bit_length() - 1
                    table[fname] = ((flags & mask) >> shift).astype(np.int64)
            continue
        table[name] = rec[name].astype(float if rec.dtype[name].kind == "f" else np.int64)
    for coulomb, mah in (("(Q-Qo)/C", "(Q-Qo)/mA.h"), ("dQ/C", "dQ/mA.h")):
        if coulomb in table and mah not in table:
            table[mah] = table.pop(coulomb) / 3.6
    info: dict[str, Any] = {"column_ids": ids, "skipped_ids": skipped, "start_time": "", "material": ""}
    settings = next((m for m in mods if m.name == "VMP Set"), None)
    if settings is not None:
        s = settings.data
        info["material"] = _pascal(s, 0x11E)
        mass_mg = _f4(s, 0x107)
        char_mg = _f4(s, 0x24C)
        info["active_mass_g"] = mass_mg / 1000.0 if mass_mg else None
        info["characteristic_mass_g"] = char_mg / 1000.0 if char_mg else None
    log = next((m for m in mods if m.name == "VMP LOG"), None)
    stamp = None
    if log is not None and len(log.data) >= 0x249 + 8:
        days = struct.unpack_from("<d", log.data, 0x249)[0]
        if 30000 < days < 80000:  # 1982..2119: a plausible OLE date
            stamp = _dt.datetime(1899, 12, 30) + _dt.timedelta(days=days)
    if stamp is None:
        try:
            stamp = _dt.datetime.strptime(re.sub(r"[.-]", "/", dm.date), "%m/%d/%y")
        except ValueError:
            stamp = None
    info["start_time"] = stamp.isoformat(timespec="seconds") if stamp else ""
    return MprFile(pd.DataFrame(table), info)
