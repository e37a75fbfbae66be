"""Material parameter files for the cell model.

Every number of the physics lives in a TOML file in ``simulators/materials/``; users may point at
their own file. :func:`load_material` validates it and raises a single :class:`MaterialError` whose
message names each offending field and its allowed range.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MATERIALS_DIR = Path(__file__).parent / "materials"
DEFAULT_MATERIAL = MATERIALS_DIR / "x04.toml"


class MaterialError(ValueError):
    """A material file could not be read or holds an invalid value."""


def _rng(lo: float, hi: float, description: str = "") -> Any:
    return Field(ge=lo, le=hi, description=description)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Meta(_Strict):
    """Identity of the material."""

    name: str
    x: Annotated[float, _rng(0.0, 1.0, "Li2TiO3 fraction")]
    formula: str
    molar_mass_g_mol: Annotated[float, _rng(10.0, 500.0)]


class Lmct(_Strict):
    """LMCT conversion of the Ni intermediate (docs/model.md)."""

    k413_per_s: Annotated[float, _rng(1e-9, 10.0, "rate constant at 413.15 K")]
    Ea_kJ_mol: Annotated[float, _rng(10.0, 200.0, "activation energy")]
    beta: Annotated[float, _rng(0.0, 30.0, "self-slowing exponent")]
    phi: Annotated[float, _rng(0.0, 1.0, "irreversible fraction of converted charge")]
    H_ref_mAh_g: Annotated[float, _rng(1.0, 400.0, "Ni intermediate after a 4.8 V charge")]
    o_max_mAh_g: Annotated[float, _rng(1.0, 2000.0, "oxygen reservoir: h_O + q_irr + q_act")]


class Ocv(_Strict):
    """Rest (open-circuit) potential and the O-couple hysteresis state.

    ``E_rest = E_eq + (s + M psi+) f_Ni - psi- (M - s_o x_O)`` with ``f_Ni = h_Ni / h_ni_norm``,
    ``x_O = h_O / h_o_norm``, ``psi+ = max(psi, 0)``, ``psi- = max(-psi, 0)``: on the charge side
    the hysteresis is carried by the Ni intermediate (relaxed samples extrapolate to ``E_eq``), on
    the discharge side the O couple sits ``M`` below ``E_eq`` and follows its state of charge.
    """

    E_eq_V: Annotated[float, _rng(2.0, 5.0)]
    s_V: Annotated[float, _rng(0.0, 2.0)]
    M_V: Annotated[float, _rng(0.0, 2.0)]
    s_o_V: Annotated[float, _rng(0.0, 2.0, "rest potential slope with oxidised O (discharge side)")]
    h_ni_norm_mAh_g: Annotated[float, _rng(1.0, 400.0, "in-cycling Ni after a 4.5 V charge")]
    h_o_norm_mAh_g: Annotated[float, _rng(1.0, 1000.0, "in-cycling oxidised O after a 4.8 V charge")]
    psi_charge_mAh_g: Annotated[float, _rng(0.1, 500.0, "O charge per e-fold of psi")]
    psi_pristine: Annotated[float, _rng(-1.0, 1.0)]


class Kinetics(_Strict):
    """Ohmic and RC overpotentials; specific resistances are per mA/g of current."""

    r_ohm_V_per_mA_g: Annotated[float, _rng(0.0, 0.1)]
    r_rc_V_per_mA_g: Annotated[float, _rng(0.0, 0.1)]
    a_fast: Annotated[float, _rng(0.0, 1.0, "share of the branch gap relaxing with tau_fast")]
    tau_fast_s: Annotated[float, _rng(0.1, 1e5)]
    tau_slow_s: Annotated[float, _rng(1.0, 1e7)]
    tau_on_s: Annotated[float, _rng(0.1, 1e4, "lag of the overpotential under current")]
    tau_soc_per_mAh_g: Annotated[
        float, _rng(0.0, 1.0, "relative lengthening of tau_fast/tau_slow per mAh/g of Li removed")
    ]
    Ea_polarisation_kJ_mol: Annotated[float, _rng(0.0, 200.0)]


def _check_table(name: str, v: list[float], q: list[float], unit: str = "mAh_g") -> None:
    if len(v) != len(q):
        raise ValueError(f"{name}: V and mAh_g lists differ in length ({len(v)} vs {len(q)})")
    if len(v) < 2:
        raise ValueError(f"{name}: needs at least two points")
    for a, b in zip(v, v[1:], strict=False):
        if not b > a:
            raise ValueError(f"{name}_V must be strictly increasing")
    for a, b in zip(q, q[1:], strict=False):
        if not b > a:
            raise ValueError(f"{name}_{unit} must be strictly increasing")
    if q[0] != 0.0:
        raise ValueError(f"{name}_{unit} must start at 0")
    if unit == "fraction" and q[-1] != 1.0:
        raise ValueError(f"{name}_{unit} must end at 1")


_V = Annotated[float, _rng(0.0, 10.0)]
_Q = Annotated[float, _rng(0.0, 2000.0)]


class _BranchTables(_Strict):
    """Per-process ``(E_V, amount)`` tables of one direction, checked alike."""

    _direction: ClassVar[str]
    _processes: ClassVar[tuple[str, ...]]
    _unit: ClassVar[str]

    @model_validator(mode="after")
    def _tables(self) -> Self:
        for n in self._processes:
            _check_table(
                f"branches.{self._direction}.{n}",
                getattr(self, n + "_V"),
                getattr(self, f"{n}_{self._unit}"),
                self._unit,
            )
        return self


class ChargeBranches(_BranchTables):
    """Capacity filled vs electrode potential while charging (each process)."""

    _direction: ClassVar[str] = "charge"
    _processes: ClassVar[tuple[str, ...]] = ("ni", "o", "act")
    _unit: ClassVar[str] = "mAh_g"

    ni_V: list[_V]
    ni_mAh_g: list[_Q]
    o_V: list[_V]
    o_mAh_g: list[_Q]
    act_V: list[_V]
    act_mAh_g: list[_Q]


_F = Annotated[float, _rng(0.0, 1.0)]


class DischargeBranches(_BranchTables):
    """Share still oxidised vs electrode potential while discharging (each process).

    Fractions of what the process held when the discharge began: a process releases its charge
    along the same potential profile (a dQ/dV peak at a fixed position) whatever its amount.
    """

    _direction: ClassVar[str] = "discharge"
    _processes: ClassVar[tuple[str, ...]] = ("ni", "o")
    _unit: ClassVar[str] = "fraction"

    ni_V: list[_V]
    ni_fraction: list[_F]
    o_V: list[_V]
    o_fraction: list[_F]


class Branches(_Strict):
    """Charge and discharge branches."""

    charge: ChargeBranches
    discharge: DischargeBranches


class Lattice(_Strict):
    """Cubic lattice parameter model."""

    a0_A: Annotated[float, _rng(3.0, 6.0)]
    dA_per_ni_mAh_g: Annotated[float, _rng(-0.01, 0.01)]
    dA_per_converted_mAh_g: Annotated[float, _rng(-0.01, 0.01)]


class Noise(_Strict):
    """Measurement noise used when a noise seed is given."""

    voltage_rms_V: Annotated[float, _rng(0.0, 0.1)]
    current_rel_of_range: Annotated[float, _rng(0.0, 0.1)]


class Variation(_Strict):
    """Cell-to-cell variation of a real lab (relative standard deviations, seeded per cell)."""

    capacity_rel_sd: Annotated[float, _rng(0.0, 0.5, "share of the powder that is active")]
    mass_rel_sd: Annotated[float, _rng(0.0, 0.5, "weighing error of the active mass")]
    impedance_rel_sd: Annotated[float, _rng(0.0, 2.0, "ohmic and RC resistances (log-normal)")]


class Material(_Strict):
    """A validated material parameter set (see ``simulators/materials/x04.toml``)."""

    meta: Meta
    lmct: Lmct
    ocv: Ocv
    kinetics: Kinetics
    branches: Branches
    lattice: Lattice
    noise: Noise
    variation: Variation
    source: str = ""


def _bounds(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[float | None, float | None]:
    """Return (ge, le) of the field at ``loc`` (list indices skipped)."""
    cls: Any = model
    info = None
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        fields = getattr(cls, "model_fields", None)
        if not fields or part not in fields:
            return None, None
        info = fields[part]
        ann = info.annotation
        cls = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    if info is None:
        return None, None
    meta = list(info.metadata)
    args = getattr(info.annotation, "__args__", ())
    for a in args:  # list[Annotated[float, Field]] element constraints
        meta += list(getattr(a, "__metadata__", ()))
        for m in getattr(a, "__metadata__", ()):
            meta += list(getattr(m, "metadata", []))
    lo: Any = None
    hi: Any = None
    for m in meta:
        if isinstance(m, annotated_types.Ge):
            lo = m.ge
        if isinstance(m, annotated_types.Le):
            hi = m.le
    return lo, hi


def _describe(err: Any, where: str) -> str:
    loc = tuple(err["loc"])
    field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
    etype = err["type"]
    if etype == "missing":
        return f"material file {where}: field {field} is missing"
    if etype == "extra_forbidden":
        return f"material file {where}: field {field} is not a known parameter"
    if etype in ("greater_than_equal", "less_than_equal"):
        lo, hi = _bounds(Material, loc)
        return (
            f"material file {where}: field {field} = {err['input']!r} is out of range "
            f"(must be {lo:g}..{hi:g})"
        )
    if etype == "value_error":
        msg = str(err.get("ctx", {}).get("error", err["msg"]))
        return f"material file {where}: field {msg}"
    return f"material file {where}: field {field} = {err.get('input')!r}: {err['msg']}"


def material_from_dict(data: dict[str, Any], where: str = "<dict>") -> Material:
    """Validate a parsed material mapping.

    Parameters
    ----------
    data : dict
        Parsed TOML content.
    where : str
        Name used in error messages.

    Returns
    -------
    Material

    Raises
    ------
    MaterialError
        One error; its message has one line per offending field.
    """
    try:
        return Material.model_validate({**data, "source": where})
    except ValidationError as exc:
        lines = [_describe(e, where) for e in exc.errors()]
        raise MaterialError("\n".join(lines)) from None


def load_material(path: str | Path | None = None) -> Material:
    """Load and validate a material TOML file.

    Parameters
    ----------
    path : str or Path or None
        File to read; ``None`` loads the shipped x = 0.4 set (``materials/x04.toml``).

    Returns
    -------
    Material
        The validated parameter set; its ``source`` is the file read.

    Raises
    ------
    MaterialError
        If the file is missing, is not valid TOML, or a field is missing/unknown/out of range.
    """
    p = DEFAULT_MATERIAL if path is None else Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise MaterialError(f"material file {p}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MaterialError(f"material file {p}: is not valid TOML ({exc})") from None
    return material_from_dict(data, str(p))


def shipped_materials() -> list[str]:
    """Names of the material files that come with relaxlab (``x04``, ``x05``, ...)."""
    return sorted(p.stem for p in MATERIALS_DIR.glob("*.toml"))


def resolve_material(ref: str, base_dir: str | Path | None = None) -> Path:
    """The material file a name or path stands for.

    A shipped material by name (``x04``, ``x05``; ``default`` is ``x04``), or a TOML file by
    path, relative to ``base_dir`` (the campaign or lab file's folder) when not absolute.

    Raises
    ------
    MaterialError
        When it is neither, naming the shipped materials.
    """
    text = str(ref).strip()
    name = "x04" if text in ("", "default") else text
    if (MATERIALS_DIR / f"{name}.toml").is_file() and "/" not in name and "\\" not in name:
        return MATERIALS_DIR / f"{name}.toml"
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.is_file():
        return path.resolve()
    raise MaterialError(
        f"unknown material {ref!r}: not a shipped material ({', '.join(shipped_materials())}) and no file "
        f"{path}" + (" (paths are relative to the campaign or lab file)" if base_dir is not None else "")
    )


def material_problem(ref: str, base_dir: str | Path | None = None) -> str | None:
    """Why ``ref`` is not a usable material (unknown, unreadable or invalid file), or None."""
    try:
        load_material(resolve_material(ref, base_dir))
    except MaterialError as exc:
        return str(exc)
    return None
