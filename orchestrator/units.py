"""Quantities written as people write them ("7 mg", "20 mA/g", "24 h", "140 degC"), parsed
with pint into the plain SI-ish floats relaxlab uses internally."""

from __future__ import annotations

from functools import lru_cache

import pint

_UREG = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
_UREG.define("C_rate = 200 * milliampere / gram")  # the paper's convention: 1C = 200 mA/g


class QuantityError(ValueError):
    """A quantity could not be parsed or has the wrong dimension."""


@lru_cache(maxsize=1024)
def parse_quantity(text: str | float | int, unit: str) -> float:
    """``text`` in ``unit`` as a float; plain numbers are taken as already in ``unit``.

    >>> parse_quantity("7 mg", "g")
    0.007
    """
    if isinstance(text, int | float):
        return float(text)
    raw = str(text).strip()
    if raw.upper().startswith("C/"):
        raw = f"1/{raw[2:]} C_rate"
    try:
        quantity = _UREG.Quantity(raw)
    except (pint.errors.PintError, ValueError, TypeError, AttributeError) as exc:
        raise QuantityError(f"cannot read {text!r} as a quantity in {unit} ({exc})") from exc
    if isinstance(quantity, int | float):
        return float(quantity)
    try:
        return float(quantity.to(unit).magnitude)
    except pint.errors.DimensionalityError as exc:
        raise QuantityError(f"{text!r} is not a quantity in {unit}") from exc
