"""BioLogic EC-Lab / BT-Lab files: binary .mpr (our own decoder, :mod:`analysis.mpr`) and
text .mpt exports, converted to the stored-run schema.

What is trusted and what is not:

- **Charge** comes from EC-Lab's own per-point counter (``dq/mA.h``) where the file has it,
  else from ``(Q-Qo)`` differences with its resets (EC-Lab restarts ``(Q-Qo)`` at loops and
  some step changes) taken out, else from integrating the current. The result is checked
  against EC-Lab's ``Q charge/discharge/mA.h`` counter per half cycle; a disagreement beyond
  0.1 % is refused, never passed on.
- **Mass**: EC-Lab's defaults (``Mass of active material : 0.001 mg``, ``Characteristic mass :
  0.001 g``) are placeholders and mean *no mass*; a cycling file without a real mass is refused
  with a request for ``--mass-mg``. Rest/OCV-only files need no mass.
- **Impedance rows** (``freq/Hz`` > 0) inside Modulo Bat files are dropped and counted; a file
  of impedance rows only is refused.

This module reads the files; :mod:`analysis.biologic_header` reads what their headers say (mass,
material, start) and :mod:`analysis.biologic_frame` turns their columns into a run frame (both
re-exported here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.biologic_frame import (
    _normalise_names,
)
from analysis.biologic_frame import (
    counter_segments as counter_segments,
)
from analysis.biologic_frame import (
    frame_from_biologic as frame_from_biologic,
)
from analysis.biologic_header import (
    _HEADER_RE,
    _IMPEDANCE_COLUMNS,
    _is_placeholder,
    _material,
    _no_mass_reason,
    _start_time,
)
from analysis.biologic_header import (
    COUNTER_TOLERANCE as COUNTER_TOLERANCE,
)
from analysis.biologic_header import (
    mass_from_log_text as mass_from_log_text,
)
from analysis.biologic_header import (
    read_mpl_mass as read_mpl_mass,
)
from analysis.biologic_header import (
    stated_masses as stated_masses,
)
from analysis.errors import DataFileError
from analysis.mpr import read_mpr_file as read_mpr_file


def _resolve_mass(given_g: float | None, text: str) -> float | None:
    if given_g is not None:
        if not given_g > 0:
            raise ValueError(f"active mass must be positive, got {given_g} g (e.g. --mass-mg 7.0)")
        return float(given_g)
    return mass_from_log_text(text)


def _load(
    raw: pd.DataFrame, path: Path, mass_g: float | None, text: str, where: str, meta: dict[str, Any]
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    if any(c in raw.columns for c in _IMPEDANCE_COLUMNS) and "time/s" not in raw.columns:
        raise DataFileError(path, "impedance data only, not a cycling file")
    mass = _resolve_mass(mass_g, text)
    try:
        df, notes = frame_from_biologic(raw, path, mass)
    except DataFileError as exc:
        if exc.problem != "active mass unknown":
            raise
        raise DataFileError(
            path,
            f"active mass unknown: {_no_mass_reason(text, where)}; give it with --mass-mg (e.g. --mass-mg 7.0)",
        ) from None
    warnings = []
    if notes["dropped_impedance_rows"]:
        warnings.append(f"{notes['dropped_impedance_rows']} impedance (EIS) rows left out")
    if mass is None:
        warnings.append("open-circuit data without a mass: specific current and capacity are zero")
    meta.update(
        {
            "active_mass_g": mass,
            "sample": path.stem,
            "cell": path.stem,
            "source_file": str(path),
            "charge_source": notes["charge_source"],
            "charge_check": notes["charge_check"],
            "rest_only": notes["rest_only"],
            "warnings": warnings,
        }
    )
    return meta, df, notes


def read_mpr(path: str | Path, active_mass_g: float | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Read a BioLogic .mpr file into the stored-run schema.

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
        Metadata (``active_mass_g`` (None for open-circuit files without one), ``sample``,
        ``cell``, ``material``, ``source_file``, ``start_time``, ``charge_source``,
        ``charge_check``, ``warnings``) and the run table.

    Raises
    ------
    DataFileError
        When the file is missing, truncated, not an .mpr, not a cycling file, its charge
        disagrees with EC-Lab's counter, or a cycling file has no mass.
    """
    return _read_mpr_full(Path(path), active_mass_g)[:2]


def _read_mpr_full(
    path: Path, active_mass_g: float | None
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    path = Path(path)
    mpr = read_mpr_file(path)
    log = path.with_suffix(".mpl")
    text = log.read_text(encoding="latin-1", errors="replace") if log.is_file() else ""
    if text:
        where = f"the log {log.name}"
    else:
        stated = mpr.info.get("active_mass_g")
        where = f"there is no .mpl log ({log.name}) beside it to state the active mass"
        if stated and not _is_placeholder("Mass of active material", stated):
            where += f" (the binary settings hold {stated * 1000:g} mg; pass it if that is right)"
    meta = {"material": _material(text) or mpr.info.get("material", ""), "start_time": mpr.info["start_time"]}
    return _load(mpr.table, path, active_mass_g, text, where, meta)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def read_mpt_table(path: str | Path) -> tuple[pd.DataFrame, str]:
    """EC-Lab text export: its data table (EC-Lab's column names) and header text.

    The header states its own length ("Nb header lines : N", the column-name line being
    line N); tab-separated columns, decimal point or decimal comma. Old exports without a
    header are accepted when their first line holds the column names.
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
    comma = bool(re.search(r"\d,\d", sample)) and not re.search(r"\d\.\d", sample)
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
    raw.columns = _normalise_names([str(c) for c in raw.columns])
    raw = raw.apply(pd.to_numeric, errors="coerce")
    return raw, "".join(lines[: n_header - 1])


def read_mpt(path: str | Path, active_mass_g: float | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Read an EC-Lab text export (.mpt) into the stored-run schema.

    Parameters
    ----------
    path : str or Path
        The .mpt file.
    active_mass_g : float, optional
        Active mass in gram; default from the header ("Mass of active material", else a
        real "Characteristic mass"; EC-Lab's placeholders count as none).

    Returns
    -------
    (dict, DataFrame)
        Metadata and run table, as :func:`read_mpr`.

    Raises
    ------
    DataFileError
        As :func:`read_mpr`.
    """
    return _read_mpt_full(Path(path), active_mass_g)[:2]


def _read_mpt_full(
    path: Path, active_mass_g: float | None
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    path = Path(path)
    raw, header_text = read_mpt_table(path)
    if raw.empty:
        raise DataFileError(path, "no data points (no rows after the header)")
    meta = {"material": _material(header_text), "start_time": _start_time(header_text)}
    return _load(raw, path, active_mass_g, header_text, "its header", meta)


def read_biologic(
    path: str | Path, active_mass_g: float | None = None
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """:func:`read_mpr` or :func:`read_mpt` by suffix, also returning the reader's notes.

    The notes hold per-row arrays that are not schema columns: ``source_rows`` (the file row
    of each output row), ``ec_lab_half_cycle`` and ``ec_lab_cycle_number`` where the file has
    them, and how the charge was obtained and checked.
    """
    path = Path(path)
    if path.suffix.lower() == ".mpr":
        return _read_mpr_full(path, active_mass_g)
    return _read_mpt_full(path, active_mass_g)
