"""Quantities read without pint give the very float pint gives (drivers.quantities' fast path,
issue 15: start-up without pint's import when a lab and a protocol need none of it)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from drivers import quantities
from drivers.quantities import QuantityError, parse_quantity, ureg

ROOT = Path(__file__).resolve().parents[1]


def _numbers() -> list[str]:
    rng = random.Random(15)
    return (
        [repr(rng.uniform(0.0, 1000.0)) for _ in range(400)]
        + [str(rng.randint(0, 100_000)) for _ in range(100)]
        + [f"{rng.uniform(0.0, 10.0):g}" for _ in range(100)]
        + [f"-{rng.uniform(0.0, 10.0):g}" for _ in range(50)]
        + ["0.1", "0.3", "1e-3", "2.5E2", "+4.2", ".5", "7."]
    )


@pytest.mark.parametrize(("written", "target"), sorted(quantities._SCALED))
def test_each_scaled_unit_gives_pints_float(written: str, target: str) -> None:
    registry = ureg()
    as_typed = {"delta_degC/min": "degC/min"}.get(written, written)  # a rate as people write it
    for number in _numbers():
        expected = float(registry.Quantity(f"{number} {written}").to(target).magnitude)
        assert parse_quantity(f"{number} {as_typed}", target) == expected, (number, written, target)


@pytest.mark.parametrize("unit", ["V", "s", "g", "A", "mA/g", "degC", "mAh/g"])
def test_a_number_in_the_target_unit_gives_pints_float(unit: str) -> None:
    registry = ureg()
    for number in _numbers():
        expected = float(registry.Quantity(f"{number} {unit}").to(unit).magnitude)
        assert parse_quantity(f"{number} {unit}", unit) == expected, (number, unit)
        assert parse_quantity(number, unit) == float(number)


def test_c_rates_give_pints_float() -> None:
    registry = ureg()
    for sign in ("", "-"):
        for mult in ("", "1", "2", "0.5", "3.3", "0.1"):
            for div in ("", "/10", "/3", "/20", "/7", "/2.5"):
                value = (-1.0 if sign else 1.0) * (float(mult) if mult else 1.0) / (float(div[1:]) if div else 1.0)
                expected = float(registry.Quantity(f"{value!r} C_rate").to("mA/g").magnitude)
                assert parse_quantity(f"{sign}{mult}C{div}", "mA/g") == expected


@pytest.mark.parametrize(("text", "unit"), [("200 mAh/g", "V"), ("7 mg", "s"), ("4.2 V", "mA/g"), ("3 h", "degC")])
def test_a_quantity_of_another_kind_is_refused_as_pint_refuses_it(text: str, unit: str) -> None:
    with pytest.raises(QuantityError, match="is not a quantity in"):
        parse_quantity(text, unit)
    with pytest.raises(pint_errors().DimensionalityError):
        ureg().Quantity(text).to(unit)


def pint_errors():
    import pint

    return pint.errors


def test_what_the_fast_path_does_not_know_still_goes_through_pint() -> None:
    assert parse_quantity("C/10", "mA/g") == pytest.approx(20.0)
    assert parse_quantity("2 kg", "g") == pytest.approx(2000.0)
    assert parse_quantity("1 week", "s") == pytest.approx(7 * 86400.0)
    assert parse_quantity("140 C", "degC") == pytest.approx(140.0)
    assert parse_quantity("5 degC/min", "degC/s") == pytest.approx(5 / 60)
    with pytest.raises(QuantityError):
        parse_quantity("7 mg", "V")  # wrong dimension: pint says so
    with pytest.raises(QuantityError):
        parse_quantity("4,8 V", "V")


def test_reading_the_simulated_lab_and_every_example_protocol_does_not_import_pint() -> None:
    code = (
        "import sys\n"
        "from orchestrator.lab import load_lab\n"
        "from protocols.schema import load_protocol\n"
        "load_lab('simulated')\n"
        "from protocols.schema import list_examples\n"
        "for name in list_examples():\n"
        "    load_protocol(name)\n"
        "print('pint' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
