"""What an EC-Lab file's header (or its ``.mpl`` log) says: active masses (EC-Lab's placeholders
meaning none), electrode material, start time."""

from __future__ import annotations

import re
from pathlib import Path

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
