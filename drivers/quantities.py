"""Quantities written as people write them, parsed with pint into relaxlab's plain floats.

This is the single implementation of quantity parsing in relaxlab (protocol files, campaign
files and lab files all go through :func:`parse_quantity`). It lives in the lowest layer so
that every layer may use it.

Accepted forms, besides anything pint reads as ``<number> <unit>``:

* C-rates relative to 200 mA/g (the paper's convention): ``C/10``, ``-C/10``, ``2C``, ``0.5 C``
  when the target unit is a specific current (``mA/g``);
* temperatures as ``140 degC``, ``140 °C`` or ``140 C`` when the target unit is ``degC``;
* temperature rates as ``5 degC/min`` (read as a temperature *difference* per minute);
* a bare number (or a string holding only a number), taken as already in the target unit.

The text must be one number followed by a unit expression: ``"4,8 V"`` or ``"24 hours!"``
are rejected rather than guessed.

pint (and its unit registry, :func:`ureg`) is loaded on the first quantity that needs it: a number
already in the target unit (``"4.2 V"`` as V) or in one of :data:`_SCALED` (``"7 mg"`` as g,
``"24 h"`` as s) is read without it, to the same float pint gives (multiplied by the same factor;
``tests/test_units.py`` checks them against pint). Start-up of a command that reads a lab and a
protocol then skips pint's import and registry (a few tenths of a second).
"""

from __future__ import annotations

import math
import re
from functools import cache, lru_cache
from typing import Any

#: 1C in mA per g of active material (the paper's convention).
C_RATE_MA_G = 200.0


@cache
def ureg() -> Any:
    """relaxlab's pint unit registry (with ``C_rate``), built on first use."""
    import pint

    registry: Any = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    registry.define(f"C_rate = {C_RATE_MA_G} * milliampere / gram")
    return registry


def __getattr__(name: str) -> Any:
    if name == "UREG":  # the registry under its old name, built when first asked for
        return ureg()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: (unit as written, target unit): the factor pint multiplies by (checked against pint in the tests).
_SCALED: dict[tuple[str, str], float] = {
    ("ms", "s"): 1e-3, ("min", "s"): 60.0, ("h", "s"): 3600.0, ("d", "s"): 86400.0,
    ("mg", "g"): 1e-3, ("ug", "g"): 1e-6, ("µg", "g"): 1e-6,
    ("mV", "V"): 1e-3, ("mA", "A"): 1e-3, ("uA", "A"): 1e-6, ("µA", "A"): 1e-6,
    ("delta_degC/min", "degC/min"): 1.0,  # a heating rate as _rewrite writes it
}  # fmt: skip
#: What each unit measures, for the units the fast path knows: a quantity in one of them asked
#: for in a unit of another kind is refused without pint (as pint refuses it).
_KIND = {
    **dict.fromkeys(("s", "ms", "min", "h", "d"), "time"), **dict.fromkeys(("g", "mg", "ug", "µg"), "mass"),
    **dict.fromkeys(("V", "mV"), "voltage"), **dict.fromkeys(("A", "mA", "uA", "µA"), "current"),
    "mA/g": "specific current", "mAh/g": "specific charge", "degC": "temperature",
}  # fmt: skip

_UNSIGNED = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER = rf"[+-]?{_UNSIGNED}"
_SYNTAX = re.compile(rf"^\s*{_NUMBER}\s*(?:[A-Za-zµμ°Ω][A-Za-z0-9µμ°Ω_/*^ .()·-]*)?\s*$")
_C_RATE = re.compile(rf"^\s*(?P<sign>[+-]?)\s*(?P<mult>{_UNSIGNED})?\s*C\s*(?:/\s*(?P<div>{_NUMBER}))?\s*$")
_SIMPLE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[^\s\d+-][^\s]*)?\s*$")
_BARE_CELSIUS = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?:C|°\s*C|deg\s*C|celsius)\s*$", re.IGNORECASE)


class QuantityError(ValueError):
    """A quantity could not be parsed or has the wrong dimension."""


def check_unit(text: str) -> None:
    """Raise (pint's error) unless ``text`` is a unit pint reads; the units of :data:`_KIND` pass
    without loading pint."""
    if text not in _KIND:
        ureg().parse_units(text)


def _is_specific_current(unit: str) -> bool:
    if unit in ("mA/g", "A/g", "A/kg", "mA/mg"):
        return True
    if unit in _KIND or unit in ("mV/s", "V/s", "degC/min", "degC/s", "K"):
        return False
    import pint

    registry = ureg()
    try:
        return bool(registry.parse_units(unit).dimensionality == registry.parse_units("mA/g").dimensionality)
    except (pint.errors.PintError, ValueError, TypeError, AttributeError):
        return False


def _rewrite(raw: str, unit: str) -> str:
    """Turn the relaxlab conveniences (C-rates, bare C temperatures, degC rates) into pint text."""
    if _is_specific_current(unit):
        match = _C_RATE.match(raw)
        if match:
            mult = float(match["mult"]) if match["mult"] else 1.0
            div = float(match["div"]) if match["div"] else 1.0
            if div == 0:
                raise QuantityError(f"cannot read {raw!r}: division by zero")
            sign = -1.0 if match["sign"] == "-" else 1.0
            return f"{sign * mult / div!r} C_rate"  # pint gives this times C_RATE_MA_G in mA/g
    if unit.replace(" ", "") in ("degC", "°C", "degree_Celsius"):
        match = _BARE_CELSIUS.match(raw)
        if match:
            return f"{match['num']} degC"
    if "/" in raw:
        # a temperature rate is a difference per time, never an absolute temperature
        raw = re.sub(r"(?:°\s*C|degC|deg_C|celsius)(?=\s*/)", "delta_degC", raw)
    return raw


@lru_cache(maxsize=4096)
def parse_quantity(text: str | float | int, unit: str) -> float:
    """``text`` expressed in ``unit``, as a float.

    Parameters
    ----------
    text : str or float or int
        A quantity as written (``"20 mA/g"``, ``"C/10"``, ``"24 h"``, ``"140 degC"``) or a
        bare number, taken as already in ``unit``.
    unit : str
        The pint unit to express it in (``"mA/g"``, ``"s"``, ``"V"``, ``"degC"`` ...).

    Returns
    -------
    float
        The magnitude in ``unit``.

    Raises
    ------
    QuantityError
        When ``text`` is not one number followed by a unit, or the unit has the wrong
        dimension (the message says which).

    Examples
    --------
    >>> parse_quantity("7 mg", "g")
    0.007
    >>> parse_quantity("C/10", "mA/g")
    20.0
    """
    value = _parse(text, unit)
    if not math.isfinite(value):
        raise QuantityError(f"{text!r} is not a finite quantity in {unit}")
    return value


def _parse(text: str | float | int, unit: str) -> float:
    if isinstance(text, bool):
        raise QuantityError(f"{text!r} is not a quantity in {unit}")
    if isinstance(text, int | float):
        try:
            return float(text)
        except OverflowError:  # an int beyond a float
            raise QuantityError(f"{text!r} is too large for a quantity in {unit}") from None
    raw = str(text).strip()
    raw = _rewrite(raw, unit)
    if not _SYNTAX.match(raw):
        raise QuantityError(f"cannot read {text!r} as a quantity in {unit} (expected '<number> <unit>')")
    simple = _SIMPLE.match(raw)
    if simple is not None:
        written = simple["unit"]
        if written is None or written == unit:
            return float(simple["num"])
        factor = _SCALED.get((written, unit))
        if factor is None and written == "C_rate" and unit == "mA/g":
            factor = C_RATE_MA_G
        if factor is not None:
            return float(simple["num"]) * factor
        if written in _KIND and unit in _KIND and _KIND[written] != _KIND[unit]:
            raise QuantityError(f"{text!r} is not a quantity in {unit}")
    import pint

    try:
        quantity: Any = ureg().Quantity(raw)
    except (pint.errors.PintError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise QuantityError(f"cannot read {text!r} as a quantity in {unit} ({exc})") from exc
    if isinstance(quantity, int | float):
        return float(quantity)
    if quantity.unitless:
        return float(quantity.magnitude)
    try:
        return float(quantity.to(unit).magnitude)
    except pint.errors.DimensionalityError as exc:
        raise QuantityError(f"{text!r} is not a quantity in {unit}") from exc


__all__ = ["C_RATE_MA_G", "QuantityError", "check_unit", "parse_quantity", "ureg"]
