"""Quantities written as people write them ("7 mg", "20 mA/g", "C/10", "24 h", "140 degC").

The parser lives in :mod:`drivers.quantities` (the lowest layer, so protocols can use it too);
the orchestrator re-exports it.
"""

from drivers.quantities import QuantityError, parse_quantity

__all__ = ["QuantityError", "parse_quantity"]
