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
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import schema as S
from analysis.errors import DataFileError
from analysis.mpr import read_mpr_file

_MASS_RE = re.compile(
    r"^[ \t]*(Mass of active material|Characteristic mass)[ \t]*:[ \t]*([-+0-9.,eE]+)[ \t]*(mg|g|µg|ug|kg)\b",
    re.MULTILINE,
)
_MATERIAL_RE = re.compile(r"^[ \t]*Electrode material[ \t]*:[ \t]*([^\r\n]*?)[ \t]*$", re.MULTILINE)
_START_RE = re.compile(
    r"^[ \t]*Acquisition started on[ \t]*:[ \t]*(\d\d)/(\d\d)/(\d{4})[ \t]+(\d\d):(\d\d):(\d\d)(?:[.,](\d+))?",
    re.MULTILINE,
)
_HEADER_RE = re.compile(r"Nb header lines\s*:\s*(\d+)")
_TO_G = {"g": 1.0, "mg": 1e-3, "µg": 1e-6, "ug": 1e-6, "kg": 1e3}
#: EC-Lab's default masses: they mean "no mass was entered".
_PLACEHOLDERS_G = (1.0e-6, 1.0e-3)
_MODE_TYPES = {1: "cc", 2: "cv", 3: "rest"}
_IMPEDANCE_COLUMNS = ("freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm", "|Z|/Ohm")
#: Relative agreement required between our charge and EC-Lab's half-cycle counter.
COUNTER_TOLERANCE = 1e-3


def _is_placeholder(label: str, grams: float) -> bool:
    if grams <= 1.0e-6 * 1.0001:
        return True
    return label == "Characteristic mass" and abs(grams - 1.0e-3) < 1e-9


def stated_masses(text: str) -> list[tuple[str, float, bool]]:
    """Masses stated in EC-Lab header or log text.

    Returns
    -------
    list of (label, grams, is_placeholder)
        In the order found. EC-Lab's defaults (0.001 mg for either label, 0.001 g for the
        characteristic mass) are flagged as placeholders.
    """
    out = []
    for label, value, unit in _MASS_RE.findall(text):
        try:
            grams = float(value.replace(",", ".")) * _TO_G[unit]
        except ValueError:
            continue
        out.append((label, grams, _is_placeholder(label, grams)))
    return out


def mass_from_log_text(text: str) -> float | None:
    """Active mass (g) stated in EC-Lab log or .mpt header text, or None.

    "Mass of active material" is preferred over "Characteristic mass"; EC-Lab's placeholder
    values (0.001 mg; a characteristic mass of 0.001 g) count as no mass.
    """
    found = stated_masses(text)
    for wanted in ("Mass of active material", "Characteristic mass"):
        for label, grams, placeholder in found:
            if label == wanted and not placeholder:
                return grams
    return None


def _no_mass_reason(text: str, where: str) -> str:
    found = stated_masses(text)
    if not text:
        return where
    if not found:
        return f"{where} states no active mass"
    shown = ", ".join(
        f"{label} : {grams * 1000:g} mg" if grams < 1e-3 else f"{label} : {grams:g} g"
        for label, grams, _ in found
    )
    return f"{where} states only EC-Lab's default placeholder mass ({shown}), i.e. no mass"


def read_mpl_mass(path: str | Path) -> float | None:
    """Active mass (g) from an EC-Lab .mpl log file, or None if it states none."""
    return mass_from_log_text(Path(path).read_text(encoding="latin-1", errors="replace"))


def _material(text: str) -> str:
    m = _MATERIAL_RE.search(text)
    return m.group(1) if m else ""


def _start_time(text: str) -> str:
    m = _START_RE.search(text)
    if not m:
        return ""
    month, day, year, hh, mm, ss = m.groups()[:6]
    return f"{year}-{month}-{day}T{hh}:{mm}:{ss}"


def _first(raw: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in raw.columns), None)


def _normalise_names(columns: list[str]) -> list[str]:
    """EC-Lab spells averages both ``<Ewe>/V`` and ``<Ewe/V>``; use the first form."""
    out = []
    for c in columns:
        c = str(c).strip()
        m = re.fullmatch(r"<([^<>/]+)/([^<>]+)>", c)
        out.append(f"<{m.group(1)}>/{m.group(2)}" if m else c)
    return out


def _increments(raw: pd.DataFrame, t: np.ndarray, current_mA: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Charge per point (mAh, passed since the previous point) and where it came from."""
    n = len(raw)
    if "dq/mA.h" in raw.columns:
        dq = raw["dq/mA.h"].to_numpy(float)
        if np.isfinite(dq).all():
            return dq, "EC-Lab's dq/mA.h counter"
    q_col = _first(raw, ("(Q-Qo)/mA.h",))
    if q_col is not None:
        q = raw[q_col].to_numpy(float)
        inc = np.diff(q, prepend=0.0)  # (Q-Qo) at the first point: charge since the start
        dt = np.diff(t, prepend=t[0])
        scale = max(float(np.nanmax(np.abs(q))) if n else 0.0, 1e-12)
        prev = np.concatenate(([0.0], q[:-1]))
        # a restart: the counter falls back to (near) zero from a real value in one point
        dropped = (np.abs(prev) > 1e-3 * scale) & (np.abs(q) < 0.1 * np.abs(prev))
        if current_mA is not None:  # and the current confirms it: q is this point's charge
            expect = current_mA * dt / 3600.0
            resets = dropped & (np.abs(q - expect) < np.abs(inc - expect))
        else:
            resets = dropped & (np.abs(q) < 1e-2 * np.abs(prev))
        resets[0] = False
        # after a reset (Q-Qo) counts from zero: the point's own value is its charge
        inc[resets] = q[resets]
        return inc, "EC-Lab's (Q-Qo) counter" + (f" ({int(resets.sum())} restarts)" if resets.any() else "")
    if current_mA is None:
        return np.zeros(n), "no current (open circuit)"
    dt = np.diff(t, prepend=t[0])
    return current_mA * dt / 3600.0, "the current integrated over each recording interval"


def counter_segments(raw: pd.DataFrame, inc: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges over which EC-Lab's ``Q charge/discharge/mA.h`` counts without restarting.

    EC-Lab restarts that counter at each half cycle and also where the current changes sign
    inside one (an impedance step discharging before a charge). A restart at point k is
    recognised when the counter's value is the point's own charge rather than the previous
    value plus it. Returns (first, last) row pairs, inclusive.
    """
    hc = raw["half cycle"].to_numpy()
    q = raw["Q charge/discharge/mA.h"].to_numpy(float)
    scale = max(float(np.nanmax(np.abs(q))) if q.size else 0.0, 1e-12)
    prev = np.concatenate(([0.0], q[:-1]))
    go_on = np.abs(q - prev - inc)
    restart = np.abs(q - inc)
    new = (go_on > 1e-6 * scale) & (restart < go_on)
    new[1:] |= hc[1:] != hc[:-1]
    new[0] = True
    starts = np.flatnonzero(new)
    ends = np.concatenate((starts[1:] - 1, [len(q) - 1]))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _check_counter(raw: pd.DataFrame, inc: np.ndarray, path: Path) -> str:
    """Compare our charge with EC-Lab's ``Q charge/discharge`` counter over each of its runs."""
    if "Q charge/discharge/mA.h" not in raw.columns or "half cycle" not in raw.columns:
        return "no EC-Lab half-cycle counter to check against"
    q_ec = raw["Q charge/discharge/mA.h"].to_numpy(float)
    scale = max(float(np.nanmax(np.abs(q_ec))), 1e-12)
    worst = 0.0
    segments = counter_segments(raw, inc)
    for a, b in segments:
        ours = float(inc[a : b + 1].sum())
        theirs = float(q_ec[b])
        ref = max(abs(theirs), 1e-3 * scale)
        if abs(ours - theirs) > COUNTER_TOLERANCE * ref:
            raise DataFileError(
                path,
                f"charge cannot be trusted: EC-Lab's counters disagree in half cycle "
                f"{raw['half cycle'].iloc[a]} (rows {a}-{b}): {ours:.6g} mAh by point increments, "
                f"{theirs:.6g} mAh by 'Q charge/discharge'",
            )
        worst = max(worst, abs(ours - theirs) / ref)
    return f"matches EC-Lab's charge counter over {len(segments)} half cycles/runs (worst {worst:.1e})"


def frame_from_biologic(
    raw: pd.DataFrame, path: Path, active_mass_g: float | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Convert EC-Lab columns to the stored-run schema.

    Parameters
    ----------
    raw : DataFrame
        EC-Lab columns (``time/s``, ``Ewe/V``, ``Ecell/V`` or ``<Ewe>/V``, ``I/mA`` or
        ``<I>/mA``, ``dq/mA.h``, ``(Q-Qo)/mA.h`` or ``(Q-Qo)/C``, ``Ns``, ``mode``, ...).
    path : Path
        The file, for messages.
    active_mass_g : float or None
        Active mass; may be None only for open-circuit (rest-only) data.

    Returns
    -------
    (DataFrame, dict)
        The run table and notes: ``charge_source``, ``charge_check``, ``rest_only``,
        ``dropped_impedance_rows``, ``source_rows`` (raw row of each output row) and, where
        the file has them, EC-Lab's ``half cycle`` and ``cycle number`` per output row
        (``ec_lab_half_cycle``, ``ec_lab_cycle_number``).
        Capacity within a step includes the charge recorded at the step's first point
        (EC-Lab records the charge passed since the previous point).

    Raises
    ------
    DataFileError
        For impedance-only data, missing columns, no points, a cycling file without a mass
        or a charge that disagrees with EC-Lab's own counter.
    """
    raw = raw.copy()
    raw.columns = _normalise_names(list(raw.columns))
    for coulomb, mah in (("(Q-Qo)/C", "(Q-Qo)/mA.h"), ("dQ/C", "dQ/mA.h")):
        if coulomb in raw.columns and mah not in raw.columns:
            raw[mah] = raw[coulomb].to_numpy(float) / 3.6
    notes: dict[str, Any] = {"dropped_impedance_rows": 0}
    if any(c in raw.columns for c in _IMPEDANCE_COLUMNS):
        freq = raw["freq/Hz"].to_numpy(float) if "freq/Hz" in raw.columns else np.ones(len(raw))
        eis = np.isfinite(freq) & (freq > 0)
        if eis.all() or "time/s" not in raw.columns:
            raise DataFileError(path, "impedance data only (freq/Hz, Re(Z) columns), not a cycling file")
        notes["dropped_impedance_rows"] = int(eis.sum())
    else:
        eis = np.zeros(len(raw), dtype=bool)
    t_col = _first(raw, ("time/s",))
    v_col = _first(raw, ("Ewe/V", "Ecell/V", "<Ewe>/V", "<Ecell>/V"))
    i_col = _first(raw, ("I/mA", "<I>/mA"))
    lacking = [name for name, col in (("time/s", t_col), ("Ewe/V, Ecell/V or <Ewe>/V", v_col)) if col is None]
    if lacking:
        raise DataFileError(path, f"not a cycling file: it has no {' and no '.join(lacking)} column")
    assert t_col is not None and v_col is not None
    timed = np.flatnonzero(np.isfinite(raw[t_col].to_numpy(float)))
    raw = raw.iloc[timed].reset_index(drop=True)
    eis = eis[timed]
    if raw.empty:
        raise DataFileError(path, "no data points")
    # charge per point on every row, impedance rows included (a potentiostatic EIS away
    # from open circuit passes charge); the charge of dropped rows goes to the next kept row
    t_all = raw[t_col].to_numpy(float)
    i_all = raw[i_col].to_numpy(float) if i_col is not None else None
    inc_all, source = _increments(raw, t_all, i_all)
    check = _check_counter(raw, inc_all, path)
    keep = ~eis & np.isfinite(raw[v_col].to_numpy(float))
    kept = np.flatnonzero(keep)
    if kept.size == 0:
        raise DataFileError(path, "no data points with a voltage")
    total_all = np.cumsum(inc_all)
    total_kept = total_all[kept]
    inc = np.diff(
        total_kept, prepend=total_kept[0] - inc_all[kept[0]] if kept[0] == 0 else total_all[kept[0] - 1]
    )
    rows = timed[kept]
    raw = raw.iloc[kept].reset_index(drop=True)
    t = raw[t_col].to_numpy(float)
    current_mA = raw[i_col].to_numpy(float) if i_col is not None else None
    if current_mA is None:
        dq = raw["dq/mA.h"].to_numpy(float) if "dq/mA.h" in raw.columns else inc
        dt = np.diff(t, prepend=t[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            current_mA = np.where(dt > 0, dq * 3600.0 / dt, 0.0)
    rest_only = bool(np.all(np.abs(current_mA) == 0) and np.all(inc == 0))
    notes["rest_only"] = rest_only
    notes["charge_source"] = source
    notes["charge_check"] = check
    if active_mass_g is None and not rest_only:
        raise DataFileError(path, "active mass unknown")  # replaced by the caller's message
    mass = active_mass_g
    current = current_mA / 1000.0
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
    total = np.cumsum(inc)
    before = total - inc
    base_idx = np.maximum.accumulate(np.where(starts, np.arange(len(raw)), 0))
    charge_mAh = total - before[base_idx]
    if mode is not None:
        stype = np.array([_MODE_TYPES.get(int(m), "other") for m in mode], dtype=object)
    else:
        thr = S.current_threshold_A(current)
        stype = np.where(np.abs(current) > thr, "cc", "rest").astype(object)
    stype = stype[base_idx]
    temp_col = next((c for c in raw.columns if c.lower().startswith("temperature")), None)
    per_g = (1.0 / mass) if mass else 0.0
    df = pd.DataFrame(
        {
            S.TIME: t,
            S.VOLTAGE: raw[v_col].to_numpy(float),
            S.CURRENT: current,
            S.SPECIFIC_CURRENT: current * 1000.0 * per_g if mass else np.zeros(len(raw)),
            S.CAPACITY: charge_mAh * per_g if mass else np.zeros(len(raw)),
            S.STEP: step.astype(np.int64),
            S.STEP_TYPE: stype.astype(str),
            S.TEMPERATURE: raw[temp_col].to_numpy(float) if temp_col else np.nan,
        }
    )
    notes["source_rows"] = rows
    # EC-Lab's own cycle bookkeeping, for segmentations that want it (not schema columns)
    for col, key in (("half cycle", "ec_lab_half_cycle"), ("cycle number", "ec_lab_cycle_number")):
        if col in raw.columns:
            notes[key] = raw[col].to_numpy()
    return df, notes


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
