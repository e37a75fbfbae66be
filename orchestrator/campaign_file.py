"""Campaign files: samples and their genealogy, a matrix of conditions, replicates, a protocol.

A campaign file (YAML) expands into a list of cells, each with its own id, portion, condition,
replicate number, compiled protocol and active mass::

    name: titration-24h-temperature
    description: 24 h relaxation of the charged powder at 25-140 C, three fresh cells per condition
    protocol: titration-portion          # a built-in example or a path relative to this file
    replicates: 3                        # cells per condition (default 3)
    samples:
      batch: {id: LTNO-B3, material: x04}                       # synthesis batch
      powder: {id: LTNO-B3-c48, charged_to: 4.8 V, mass: 100 mg} # charged, washed, dried powder
      cell_mass: 7 mg                    # active mass of each fresh cell (default)
      cell_masses: {T140C-24h-r2: 6.8 mg}  # measured masses override it, by cell id
    matrix:                              # every combination is one condition
      temperature: [25 degC, 50 degC, 80 degC, 110 degC, 140 degC]
      time: [24 h]

Genealogy: batch -> charged powder -> one portion per condition (equal portions of the powder
unless ``portion_mass`` is given) -> ``replicates`` fresh cells. Without ``powder`` the cells are
built from the batch directly (no portions). Matrix keys are the protocol's parameters
(``$temperature`` ...); ``conditions:`` (a list of mappings) may replace ``matrix``.

A bad file raises :class:`CampaignError` listing every problem with its location.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from drivers.quantities import QuantityError, parse_quantity
from protocols.schema import (
    Protocol,
    ProtocolError,
    ProtocolIssue,
    _loc,
    resolve_protocol_path,
    validate_protocol_file,
)
from protocols.schema import load_protocol as _load_protocol
from protocols.textfiles import InputFileError, load_yaml, read_text_file, yaml_problem

CAMPAIGNS_DIR = Path(__file__).parent / "campaigns"
#: Most cells one campaign may expand to.
MAX_CELLS = 2000


class CampaignIssue(ProtocolIssue):
    """One problem in a campaign file, with its location and a valid example."""


class CampaignError(ProtocolError):
    """A campaign file is invalid; ``issues`` holds every problem found."""


@dataclass(frozen=True)
class Batch:
    """A synthesis batch."""

    id: str
    material: str


@dataclass(frozen=True)
class Powder:
    """Charged, recovered, washed and dried powder from a batch."""

    id: str
    batch: str
    mass_g: float
    charged_to: str


@dataclass(frozen=True)
class Portion:
    """A portion of a powder relaxed at one condition."""

    id: str
    powder: str
    condition: Mapping[str, Any]
    mass_g: float


@dataclass(frozen=True)
class CampaignCell:
    """One cell of a campaign: its genealogy, condition, replicate, protocol and mass."""

    id: str
    batch: str
    powder: str | None
    portion: str | None
    condition: Mapping[str, Any]
    replicate: int
    protocol: Protocol
    protocol_path: Path
    mass_g: float


@dataclass(frozen=True)
class Campaign:
    """An expanded campaign."""

    name: str
    description: str
    batch: Batch
    powder: Powder | None
    portions: tuple[Portion, ...]
    cells: tuple[CampaignCell, ...]
    conditions: tuple[Mapping[str, Any], ...]
    replicates: int
    protocol_path: Path
    source: Path | None = None
    matrix: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def cells_for(self, **condition: Any) -> list[CampaignCell]:
        """The cells whose condition includes every given ``key=value``."""
        return [c for c in self.cells if all(c.condition.get(k) == v for k, v in condition.items())]


# ---------------------------------------------------------------------------------------------
# file model


def _grams(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_quantity(value, "g")
        except QuantityError:
            raise ValueError(f"{value!r} is not a mass") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit; a mass needs one (7 mg)")
    return value


Grams = Annotated[float, BeforeValidator(_grams), Field(ge=1e-6, le=1000)]
#: Ids and names that become file and folder names: no path separators, no leading dot.
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"
ID_RULE = "1-64 letters, digits, '_', '.', '+' or '-', starting with a letter or digit"
_TEXT = r"^[^\x00-\x1f]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class BatchModel(_Strict):
    id: str = Field(pattern=_ID)
    material: str = Field(default="x04", min_length=1, max_length=100, pattern=_TEXT)


class PowderModel(_Strict):
    id: str = Field(pattern=_ID)
    mass: Grams
    charged_to: str = Field(default="", max_length=100, pattern=_TEXT)


class SamplesModel(_Strict):
    batch: BatchModel
    powder: PowderModel | None = None
    portion_mass: Grams | None = None
    cell_mass: Grams = 0.007
    cell_masses: dict[str, Grams] = Field(default_factory=dict)


Scalar = str | int | float


class CampaignModel(_Strict):
    name: str = Field(pattern=_ID)
    description: str = Field(default="", max_length=10_000)
    protocol: str = Field(min_length=1, max_length=4096, pattern=_TEXT)
    replicates: int = Field(default=3, ge=1, le=100)
    cell_prefix: str | None = Field(default=None, pattern=_ID)
    samples: SamplesModel
    matrix: dict[str, Annotated[list[Scalar], Field(max_length=1000)]] | None = None
    conditions: list[dict[str, Scalar]] | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _one_of(self) -> CampaignModel:
        if self.matrix is not None and self.conditions is not None:
            raise ValueError("give either matrix or conditions, not both")
        for key, values in (self.matrix or {}).items():
            if not values:
                raise ValueError(f"matrix.{key}: needs at least one value")
            if len(set(map(str, values))) != len(values):
                raise ValueError(f"matrix.{key}: repeated value")
        cells = self.replicates * math.prod(len(v) for v in (self.matrix or {}).values())
        cells = self.replicates * len(self.conditions) if self.conditions is not None else cells
        if cells > MAX_CELLS:
            raise ValueError(f"{cells} cells (conditions x replicates); a campaign holds at most {MAX_CELLS}")
        return self


EXAMPLES = {
    "name": "name: titration-24h-temperature",
    "protocol": "protocol: titration-portion",
    "replicates": "replicates: 3",
    "samples": "samples: {batch: {id: LTNO-B3, material: x04}, cell_mass: 7 mg}",
    "batch": "batch: {id: LTNO-B3, material: x04}",
    "material": "material: x05  (a shipped material) or material: materials/my-batch.toml (a file)",
    "powder": "powder: {id: LTNO-B3-c48, charged_to: 4.8 V, mass: 100 mg}",
    "mass": "mass: 100 mg",
    "portion_mass": "portion_mass: 20 mg",
    "cell_mass": "cell_mass: 7 mg",
    "cell_masses": "cell_masses: {T140C-24h-r2: 6.8 mg}",
    "id": "id: LTNO-B3",
    "matrix": "matrix: {temperature: [25 degC, 140 degC], time: [24 h]}",
    "conditions": "conditions: [{temperature: 140 degC, time: 1 h}]",
    "cell_prefix": "cell_prefix: T24h",
}


def _model_issues(exc: ValidationError, file: str) -> list[CampaignIssue]:
    issues = []
    for err in exc.errors():
        path = [p for p in err["loc"] if isinstance(p, int) or not ("[" in p or p.startswith("function-"))]
        given = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "missing"
        elif err["type"] == "string_pattern_mismatch" and "[A-Za-z0-9]" in str(
            err.get("ctx", {}).get("pattern")
        ):
            message = f"{given!r} is not a valid name: {ID_RULE}"
        elif err["type"] == "extra_forbidden":
            message = f"{path[-1]!r} is not a field here"
        elif err["type"] != "value_error" and given is not None and not isinstance(given, dict | list):
            message = f"{given!r}: {message}"
        names = [p for p in path if isinstance(p, str)]
        example = EXAMPLES.get(names[-1], "") if names else ""
        if err["type"] == "extra_forbidden" and len(names) >= 2:
            example = EXAMPLES.get(names[-2], "")
        issue = CampaignIssue(file, _loc(path), message, example)
        if issue not in issues:
            issues.append(issue)
    return issues


# ---------------------------------------------------------------------------------------------
# expansion


def condition_slug(condition: Mapping[str, Any]) -> str:
    """A short id fragment for a condition: ``{temperature: 140 degC, time: 24 h}`` -> ``140C-24h``."""
    parts = []
    for value in condition.values():
        text = str(value).replace("degC", "C").replace("°C", "C").replace("/", "per")
        parts.append(re.sub(r"[^A-Za-z0-9.+-]", "", text))
    return "-".join(parts) or "base"


def _conditions(model: CampaignModel) -> list[dict[str, Any]]:
    if model.conditions is not None:
        return [dict(c) for c in model.conditions]
    if not model.matrix:
        return [{}]
    keys = list(model.matrix)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*model.matrix.values())]


def _resolve_campaign_path(path: Path) -> Path:
    if path.exists():
        return path
    for candidate in (CAMPAIGNS_DIR / path.name, CAMPAIGNS_DIR / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    return path


def _material_ref(ref: str, base_dir: Path | None, file: str, issues: list[CampaignIssue]) -> str:
    """A shipped material's name as is; a material file as its absolute path (it was relative
    to the campaign file); an unknown or invalid one is an issue."""
    from orchestrator.simlab import MATERIALS_DIR, material_problem, resolve_material

    problem = material_problem(ref, base_dir)
    if problem is not None:
        issues.append(CampaignIssue(file, "samples.batch.material", problem, EXAMPLES["material"]))
        return ref
    path = resolve_material(ref, base_dir)
    return path.stem if path.parent == MATERIALS_DIR else str(path)


def _no_protocol(file: str, name: str) -> CampaignIssue:
    return CampaignIssue(
        file,
        "protocol",
        f"no protocol file {name!r} (relative to the campaign file) and no built-in example of that name",
        EXAMPLES["protocol"],
    )


def _protocols(
    name: str, conditions: list[dict[str, Any]], listed: bool, file: str, base_dir: Path | None
) -> tuple[Path, list[Protocol | None], list[CampaignIssue]] | None:
    """The protocol compiled under each condition (None where it is invalid) and the issues found;
    None when there is no such protocol file."""
    protocol_path = resolve_protocol_path(name, base_dir)
    if not protocol_path.is_file():
        return None
    issues: list[CampaignIssue] = []
    protocols: list[Protocol | None] = []
    for index, condition in enumerate(conditions):
        where = f"conditions[{index}]" if listed else f"matrix (condition {condition})"
        problems = validate_protocol_file(protocol_path, condition)
        for problem in problems:
            message = f"protocol {name}: {problem.location + ': ' if problem.location else ''}"
            message += problem.message
            if problem.location == "parameters":  # a matrix key the protocol does not declare
                where = "matrix" if not listed else f"conditions[{index}]"
            if all(i.message != message for i in issues):
                issues.append(CampaignIssue(file, where, message, problem.example))
        protocols.append(None if problems else _load_protocol(protocol_path, condition))
    return protocol_path, protocols, issues


class _ProtocolPart(BaseModel):
    """The parts of a campaign file its protocol is checked with, when other parts are invalid."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    protocol: str = Field(min_length=1, max_length=4096)
    matrix: dict[str, Annotated[list[Scalar], Field(min_length=1, max_length=1000)]] | None = None
    conditions: list[dict[str, Scalar]] | None = Field(default=None, min_length=1, max_length=1000)


def _protocol_issues_anyway(data: dict[str, Any], file: str, base_dir: Path | None) -> list[CampaignIssue]:
    """Every problem of the protocol under the campaign's conditions, even when another part of
    the file is invalid (so a file's errors are all reported at once)."""
    try:
        part = _ProtocolPart.model_validate(data)
    except ValidationError:
        return []
    if part.matrix is not None and part.conditions is not None:
        return []
    if part.conditions is not None:
        conditions = [dict(c) for c in part.conditions]
    elif part.matrix:
        keys = list(part.matrix)
        combos = itertools.islice(itertools.product(*part.matrix.values()), MAX_CELLS)
        conditions = [dict(zip(keys, combo, strict=True)) for combo in combos]
    else:
        conditions = [{}]
    found = _protocols(part.protocol, conditions, part.conditions is not None, file, base_dir)
    return [_no_protocol(file, part.protocol)] if found is None else found[2]


def _expand(
    model: CampaignModel, file: str, base_dir: Path | None, source: Path | None
) -> tuple[Campaign | None, list[CampaignIssue]]:
    conditions = _conditions(model)
    found = _protocols(model.protocol, conditions, model.conditions is not None, file, base_dir)
    if found is None:
        return None, [_no_protocol(file, model.protocol)]
    protocol_path, protocols, issues = found
    samples = model.samples

    batch = Batch(samples.batch.id, _material_ref(samples.batch.material, base_dir, file, issues))
    powder = None
    portion_mass = None
    if samples.powder is not None:
        powder = Powder(samples.powder.id, batch.id, samples.powder.mass, samples.powder.charged_to)
        portion_mass = samples.portion_mass or powder.mass_g / len(conditions)
        if portion_mass * len(conditions) > powder.mass_g * (1 + 1e-9):
            issues.append(
                CampaignIssue(
                    file,
                    "samples.portion_mass",
                    f"{len(conditions)} portions of {portion_mass * 1e3:g} mg need more than the "
                    f"{powder.mass_g * 1e3:g} mg of powder",
                    EXAMPLES["portion_mass"],
                )
            )
        if portion_mass < samples.cell_mass * model.replicates:
            issues.append(
                CampaignIssue(
                    file,
                    "samples.cell_mass",
                    f"{model.replicates} cells of {samples.cell_mass * 1e3:g} mg need more than a "
                    f"{portion_mass * 1e3:g} mg portion ({len(conditions)} portions of the powder)",
                    EXAMPLES["cell_mass"],
                )
            )
    elif samples.portion_mass is not None:
        issues.append(
            CampaignIssue(file, "samples.portion_mass", "portions need a powder", EXAMPLES["powder"])
        )

    prefix = model.cell_prefix or ""
    portions: list[Portion] = []
    cells: list[CampaignCell] = []
    for condition, protocol in zip(conditions, protocols, strict=True):
        slug = condition_slug(condition)
        portion = None
        if powder is not None and portion_mass is not None:
            portion = Portion(f"{powder.id}-{slug}", powder.id, condition, portion_mass)
            portions.append(portion)
        for replicate in range(1, model.replicates + 1):
            cell_id = f"{prefix + '-' if prefix else ''}{slug}-r{replicate}"
            if protocol is None:
                continue
            cells.append(
                CampaignCell(
                    cell_id,
                    batch.id,
                    powder.id if powder else None,
                    portion.id if portion else None,
                    condition,
                    replicate,
                    protocol,
                    protocol_path,
                    samples.cell_masses.get(cell_id, samples.cell_mass),
                )
            )
    all_ids = {
        f"{prefix + '-' if prefix else ''}{condition_slug(c)}-r{r}"
        for c in conditions
        for r in range(1, model.replicates + 1)
    }
    for cell_id in samples.cell_masses:
        if cell_id not in all_ids:
            issues.append(
                CampaignIssue(
                    file,
                    f"samples.cell_masses.{cell_id}",
                    f"no cell {cell_id!r} in this campaign (e.g. {sorted(all_ids)[0]})",
                    EXAMPLES["cell_masses"],
                )
            )
    if len(all_ids) != len(conditions) * model.replicates:
        issues.append(
            CampaignIssue(file, "matrix", "two conditions give the same cell id; use distinct values")
        )
    if issues:
        return None, issues
    matrix = {k: tuple(v) for k, v in (model.matrix or {}).items()}
    campaign = Campaign(
        model.name,
        model.description,
        batch,
        powder,
        tuple(portions),
        tuple(cells),
        tuple(conditions),
        model.replicates,
        protocol_path,
        source,
        matrix,
    )
    return campaign, issues


def _check(
    data: Any, file: str, base_dir: Path | None, source: Path | None
) -> tuple[Campaign | None, list[CampaignIssue]]:
    if not isinstance(data, dict):
        return None, [CampaignIssue(file, "", "expected a mapping at the top level", EXAMPLES["name"])]
    try:
        model = CampaignModel.model_validate(data)
    except ValidationError as exc:
        issues = _model_issues(exc, file)
        located = {i.location for i in issues}
        more = (
            []
            if located & {"protocol", "matrix", "conditions"}
            else _protocol_issues_anyway(data, file, base_dir)
        )
        return None, issues + [i for i in more if i not in issues]
    try:
        return _expand(model, file, base_dir, source)
    except ProtocolError as exc:  # pragma: no cover - validate_protocol_file found nothing, load did
        return None, [CampaignIssue(file, "protocol", str(exc))]


def _read(path: Path) -> tuple[Any, list[CampaignIssue]]:
    try:
        text = read_text_file(path, "campaign file")
    except InputFileError as exc:
        return None, [CampaignIssue(str(path), "", exc.reason)]
    try:
        return load_yaml(text), []
    except yaml.YAMLError as exc:
        where, message = yaml_problem(exc)
        return None, [CampaignIssue(str(path), where, message)]


def parse_campaign(data: Any, source: str = "<memory>", base_dir: str | Path | None = None) -> Campaign:
    """Validate and expand campaign data already read from YAML.

    Raises
    ------
    CampaignError
        With every issue found.
    """
    campaign, issues = _check(data, source, Path(base_dir) if base_dir else None, None)
    if campaign is None:
        raise CampaignError(issues)
    return campaign


def validate_campaign_file(path: str | Path) -> list[CampaignIssue]:
    """Every problem in a campaign file (and in its protocol under each condition).

    Parameters
    ----------
    path : str or Path
        The campaign file, or the name of a built-in campaign (``orchestrator/campaigns``).

    Returns
    -------
    list of CampaignIssue
        Empty when the file is valid.
    """
    resolved = _resolve_campaign_path(Path(path))
    data, issues = _read(resolved)
    if issues:
        return issues
    return _check(data, str(path), resolved.parent, resolved)[1]


def load_campaign(path: str | Path) -> Campaign:
    """Read, validate and expand a campaign file into its cells.

    Parameters
    ----------
    path : str or Path
        The campaign file, or the name of a built-in campaign (``temperature-24h``).

    Returns
    -------
    Campaign
        With one :class:`CampaignCell` per condition and replicate, in matrix order.

    Raises
    ------
    CampaignError
        With every issue found (``.issues``).
    """
    resolved = _resolve_campaign_path(Path(path))
    data, issues = _read(resolved)
    if issues:
        raise CampaignError(issues)
    campaign, issues = _check(data, str(path), resolved.parent, resolved)
    if campaign is None:
        raise CampaignError(issues)
    return campaign


def list_campaigns() -> list[str]:
    """Names of the built-in campaigns (``orchestrator/campaigns/*.yaml``)."""
    return sorted(p.stem for p in CAMPAIGNS_DIR.glob("*.yaml"))


__all__ = [
    "Batch",
    "Campaign",
    "CampaignCell",
    "CampaignError",
    "CampaignIssue",
    "Portion",
    "Powder",
    "condition_slug",
    "list_campaigns",
    "load_campaign",
    "parse_campaign",
    "validate_campaign_file",
]
