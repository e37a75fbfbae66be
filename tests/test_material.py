"""Material files: shipped sets load; bad files give one clear error naming the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from simulators.material import MATERIALS_DIR, MaterialError, load_material

X04 = MATERIALS_DIR / "x04.toml"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def test_default_is_x04_and_sister_loads() -> None:
    m = load_material(None)
    assert m.meta.x == 0.4 and m.lmct.Ea_kJ_mol == pytest.approx(65.8)
    m5 = load_material(MATERIALS_DIR / "x05.toml")
    assert m5.meta.x == 0.5
    assert m5.branches.charge.o_mAh_g[-1] > m.branches.charge.o_mAh_g[-1]  # more O redox
    assert m5.branches.charge.ni_mAh_g[-1] < m.branches.charge.ni_mAh_g[-1]


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("Ea_kJ_mol = 65.8", "Ea_kJ_mol = -3", "field lmct.Ea_kJ_mol = -3 is out of range (must be 10..200)"),
        ("phi = 0.4 ", "phi = 1.5 ", "field lmct.phi = 1.5 is out of range (must be 0..1)"),
        ("E_eq_V = 3.74", "E_eq_V = 3.74\nE_eqq_V = 1.0", "field ocv.E_eqq_V is not a known parameter"),
        ("beta = 6.34\n", "", "field lmct.beta is missing"),
        ("tau_slow_s = 7200.0", 'tau_slow_s = "long"', "field kinetics.tau_slow_s"),
        (
            "ni_V     = [3.45, 3.55, 3.80",
            "ni_V     = [3.45, 3.55, 3.00",
            "branches.charge.ni_V must be strictly increasing",
        ),
    ],
)
def test_bad_field_one_message(tmp_path: Path, old: str, new: str, needle: str) -> None:
    text = X04.read_text()
    assert old in text
    p = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(MaterialError) as exc:
        load_material(p)
    msg = str(exc.value)
    assert needle in msg
    assert msg.startswith(f"material file {p}")
    assert len(msg.splitlines()) == 1


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(MaterialError, match="cannot be read"):
        load_material(tmp_path / "nope.toml")
    with pytest.raises(MaterialError, match="not valid TOML"):
        load_material(_write(tmp_path, "[lmct\nx=1"))


def test_shipped_files_parse_as_toml() -> None:
    for p in MATERIALS_DIR.glob("*.toml"):
        assert "lmct" in tomllib.loads(p.read_text())
