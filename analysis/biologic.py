"""BioLogic EC-Lab / BT-Lab files: binary .mpr (via galvani) and text .mpt exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.errors import DataFileError

_MASS_RE = re.compile(
    r"^\s*(Mass of active material|Characteristic mass)\s*:\s*([-+0-9.,eE]+)\s*(mg|g|µg|ug|kg)\b",
    re.MULTILINE,
)
_MATERIAL_RE = re.compile(r"^\s*Electrode material\s*:\s*(.*?)\s*$", re.MULTILINE)
_HEADER_RE = re.compile(r"Nb header lines\s*:\s*(\d+)")
_TO_G = {"g": 1.0, "mg": 1e-3, "µg": 1e-6, "ug": 1e-6, "kg": 1e3}
#: EC-Lab's placeholder mass when the user entered none.
_PLACEHOLDER_G = 1.0e-6
_MODE_TYPES = {1: "cc", 2: "cv", 3: "rest"}
_IMPEDANCE_COLUMNS = ("freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm")


def mass_from_log_text(text: str) -> float | None:
    """Active mass (g) stated in EC-Lab log or .mpt header text, or None.

    "Mass of active material" is preferred over "Characteristic mass"; EC-Lab's
    placeholder of 0.001 mg counts as not given.
    """
    found: dict[str, float] = {}
    for label, value, unit in _MASS_RE.findall(text):
        grams = float(value.replace(",", ".")) * _TO_G[unit]
        found.setdefault(label, grams)
    for label in ("Mass of active material", "Characteristic mass"):
        stated = found.get(label)
        if stated is not None and stated > _PLACEHOLDER_G:
            return stated
    return None


def read_mpl_mass(path: str | Path) -> float | None:
    """Active mass (g) from an EC-Lab .mpl log file, or None if it states none."""
    return mass_from_log_text(Path(path).read_text(encoding="latin-1", errors="replace"))


def _material(text: str) -> str:
    m = _MATERIAL_RE.search(text)
    return m.group(1) if m else ""


def _first(raw: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in raw.columns), None)


def frame_from_biologic(raw: pd.DataFrame, path: Path, active_mass_g: float) -> pd.DataFrame:
    """Convert EC-Lab columns to the stored-run schema.

    Parameters
    ----------
    raw : DataFrame
        EC-Lab columns (``time/s``, ``Ewe/V`` or ``Ecell/V``, ``I/mA`` or ``<I>/mA`` or
        ``dq/mA.h``, ``(Q-Qo)/mA.h``, ``Ns``, ``mode``, ...).
    path : Path
        The file, for error messages.
    active_mass_g : float
        Active mass.

    Returns
    -------
    DataFrame
        Stored-run schema. Steps change where ``Ns``, ``mode``, ``cycle number`` or
        ``half cycle`` change; step types from ``mode`` (1 "cc", 2 "cv", 3 "rest").

    Raises
    ------
    DataFileError
        For impedance data or missing time/voltage/current columns.
    """
    if any(c in raw.columns for c in _IMPEDANCE_COLUMNS):
        raise DataFileError(path, "impedance data (freq/Hz, Re(Z) columns), not a cycling file")
    t_col = _first(raw, ("time/s",))
    v_col = _first(raw, ("Ewe/V", "Ecell/V", "<Ewe>/V", "<Ecell>/V"))
    i_col = _first(raw, ("I/mA", "<I>/mA", "control/mA"))
    dq_col = _first(raw, ("dq/mA.h", "dQ/mA.h"))
    q_col = _first(raw, ("(Q-Qo)/mA.h",))
    qc_col = _first(raw, ("(Q-Qo)/C",))
    lacking = []
    if t_col is None:
        lacking.append("time/s")
    if v_col is None:
        lacking.append("Ewe/V or Ecell/V")
    if i_col is None and dq_col is None and q_col is None and qc_col is None:
        lacking.append("a current or charge column (I/mA, <I>/mA, dq/mA.h, (Q-Qo)/mA.h)")
    if lacking:
        raise DataFileError(path, f"not a cycling file: no {', '.join(lacking)} column")
    raw = raw.dropna(subset=[t_col, v_col]).reset_index(drop=True)
    if raw.empty:
        raise DataFileError(path, "no data points")
    t = raw[t_col].to_numpy(float)
    dt = np.diff(t, prepend=t[0])
    if q_col is not None:
        q_mAh = raw[q_col].to_numpy(float)
    elif qc_col is not None:
        q_mAh = raw[qc_col].to_numpy(float) / 3.6
    else:
        q_mAh = None
    if i_col is not None:
        current = raw[i_col].to_numpy(float) / 1000.0
    else:
        dq = raw[dq_col].to_numpy(float) if dq_col else np.diff(q_mAh, prepend=q_mAh[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            current = np.where(dt > 0, dq * 3.6 / dt, 0.0)
    if q_mAh is None:
        dq = raw[dq_col].to_numpy(float) if dq_col else current * dt / 3.6 * 1000.0
        q_mAh = np.cumsum(dq)
    mode = raw["mode"].to_numpy(int) if "mode" in raw.columns else None
    keys = [raw[c].to_numpy() for c in ("Ns", "cycle number", "half cycle") if c in raw.columns]
    if mode is not None:
        keys.append(mode)
    if keys:
        change = np.zeros(len(raw), dtype=bool)
        for k in keys:
            change[1:] |= k[1:] != k[:-1]
        step = np.cumsum(change)
    else:
        step = S.steps_from_current(current)
    starts = np.concatenate(([True], step[1:] != step[:-1]))
    before = np.concatenate(([q_mAh[0]], q_mAh[:-1]))
    base_idx = np.maximum.accumulate(np.where(starts, np.arange(len(raw)), 0))
    capacity = (q_mAh - before[base_idx]) / active_mass_g
    if mode is not None:
        stype = np.array([_MODE_TYPES.get(int(m), "other") for m in mode], dtype=object)
    else:
        thr = S.current_threshold_A(current)
        stype = np.where(np.abs(current) > thr, "cc", "rest").astype(object)
    # one type per step: that of its first point
    stype = stype[base_idx]
    temp_col = next((c for c in raw.columns if c.lower().startswith("temperature")), None)
    return pd.DataFrame(
        {
            S.TIME: t,
            S.VOLTAGE: raw[v_col].to_numpy(float),
            S.CURRENT: current,
            S.SPECIFIC_CURRENT: current * 1000.0 / active_mass_g,
            S.CAPACITY: capacity,
            S.STEP: step.astype(np.int64),
            S.STEP_TYPE: stype.astype(str),
            S.TEMPERATURE: raw[temp_col].to_numpy(float) if temp_col else np.nan,
        }
    )


def _resolve_mass(path: Path, given_g: float | None, text: str, where: str) -> float:
    if given_g is not None:
        if not given_g > 0:
            raise ValueError(f"active mass must be positive, got {given_g} g")
        return float(given_g)
    mass = mass_from_log_text(text)
    if mass is None:
        raise DataFileError(path, f"active mass unknown: {where} states none; give the mass (mg)")
    return mass


def read_mpr(path: str | Path, active_mass_g: float | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Read a BioLogic .mpr file (through galvani) into the stored-run schema.

    Parameters
    ----------
    path : str or Path
        The .mpr file. The active mass is taken from ``active_mass_g`` or else from the
        .mpl log of the same name beside it ("Mass of active material : 17.233 mg").
    active_mass_g : float, optional
        Active mass in gram; overrides the log.

    Returns
    -------
    (dict, DataFrame)
        Metadata (``active_mass_g``, ``sample``, ``cell``, ``material``, ``source_file``,
        ``start_time``) and the run table.

    Raises
    ------
    DataFileError
        When the file is missing, truncated, not an .mpr, not a cycling file, or no mass
        is known.
    """
    from galvani import BioLogic

    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "file not found")
    try:
        mpr = BioLogic.MPRfile(str(path))
    except OSError as exc:
        raise DataFileError(path, f"truncated or damaged .mpr file ({_one_line(exc)})") from None
    except Exception as exc:  # galvani raises ValueError/AssertionError/KeyError on bad input
        raise DataFileError(path, f"not a readable BioLogic .mpr file ({_one_line(exc)})") from None
    raw = pd.DataFrame(mpr.data)
    if "flags" in raw.columns:
        if "mode" in mpr.flags_dict:
            raw["mode"] = mpr.get_flag("mode")
        raw = raw.drop(columns="flags")
    log = path.with_suffix(".mpl")
    text = log.read_text(encoding="latin-1", errors="replace") if log.is_file() else ""
    if any(c in raw.columns for c in _IMPEDANCE_COLUMNS):  # say so before asking for a mass
        frame_from_biologic(raw, path, 1.0)
    where = f"the log {log.name}" if text else f"no .mpl log beside it ({log.name} missing)"
    mass = _resolve_mass(path, active_mass_g, text, where)
    df = frame_from_biologic(raw, path, mass)
    start = getattr(mpr, "timestamp", None)
    meta = {
        "active_mass_g": mass,
        "sample": path.stem,
        "cell": path.stem,
        "material": _material(text),
        "source_file": str(path),
        "start_time": start.isoformat() if start is not None else "",
    }
    return meta, df


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def read_mpt(path: str | Path, active_mass_g: float | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Read an EC-Lab text export (.mpt) into the stored-run schema.

    The header states its own length ("Nb header lines : N", the column-name line being
    line N); tab-separated columns, decimal point or decimal comma.

    Parameters
    ----------
    path : str or Path
        The .mpt file.
    active_mass_g : float, optional
        Active mass in gram; default from the header ("Mass of active material").

    Returns
    -------
    (dict, DataFrame)
        Metadata and run table, as :func:`read_mpr`.

    Raises
    ------
    DataFileError
        When the header is missing or wrong, the table is empty or unreadable, it is not
        a cycling file, or no mass is known.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "file not found")
    with path.open(encoding="latin-1", errors="replace") as fh:
        first = [fh.readline() for _ in range(5)]
    m = _HEADER_RE.search("".join(first))
    if "ASCII" not in first[0] or m is None:
        raise DataFileError(path, "not an EC-Lab text export (no 'Nb header lines' in the header)")
    n_header = int(m.group(1))
    with path.open(encoding="latin-1", errors="replace") as fh:
        lines = [fh.readline() for _ in range(n_header + 1)]
    if n_header < 1 or not lines[n_header - 1].strip():
        raise DataFileError(path, f"header says {n_header} lines but the column-name line is missing")
    sample = lines[n_header]
    comma = "," in sample and "." not in sample
    try:
        raw = pd.read_csv(
            path,
            sep="\t",
            skiprows=n_header - 1,
            header=0,
            encoding="latin-1",
            decimal="," if comma else ".",
            on_bad_lines="skip",
            engine="c",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataFileError(path, f"unreadable data table ({_one_line(exc)})") from None
    raw = raw.loc[:, [c for c in raw.columns if not str(c).startswith("Unnamed")]]
    raw.columns = [str(c).strip() for c in raw.columns]
    raw = raw.apply(pd.to_numeric, errors="coerce")
    if raw.empty:
        raise DataFileError(path, "no data rows after the header")
    header_text = "".join(lines[: n_header - 1])
    if any(c in raw.columns for c in _IMPEDANCE_COLUMNS):
        frame_from_biologic(raw, path, 1.0)
    mass = _resolve_mass(path, active_mass_g, header_text, "its header")
    df = frame_from_biologic(raw, path, mass)
    meta = {
        "active_mass_g": mass,
        "sample": path.stem,
        "cell": path.stem,
        "material": _material(header_text),
        "source_file": str(path),
    }
    return meta, df
