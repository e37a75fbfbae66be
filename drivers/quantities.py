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
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import pint

#: 1C in mA per g of active material (the paper's convention).
C_RATE_MA_G = 200.0

UREG: pint.UnitRegistry = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
UREG.define(f"C_rate = {C_RATE_MA_G} * milliampere / gram")

_UNSIGNED = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER = rf"[+-]?{_UNSIGNED}"
_SYNTAX = re.compile(rf"^\s*{_NUMBER}\s*(?:[A-Za-zµμ°Ω][A-Za-z0-9µμ°Ω_/*^ .()·-]*)?\s*$")
_C_RATE = re.compile(rf"^\s*(?P<sign>[+-]?)\s*(?P<mult>{_UNSIGNED})?\s*C\s*(?:/\s*(?P<div>{_NUMBER}))?\s*$")
_BARE_CELSIUS = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?:C|°\s*C|deg\s*C|celsius)\s*$", re.IGNORECASE)


class QuantityError(ValueError):
    """A quantity could not be parsed or has the wrong dimension."""


def _is_specific_current(unit: str) -> bool:
    try:
        return bool(UREG.parse_units(unit).dimensionality == UREG.parse_units("mA/g").dimensionality)
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
            return f"{sign * mult / div!r} C_rate"
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
    try:
        quantity: Any = UREG.Quantity(raw)
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


__all__ = ["C_RATE_MA_G", "UREG", "QuantityError", "parse_quantity"]
