"""From a validated campaign file to its genealogy: conditions crossed, protocols resolved and
checked, powders split into portions, one cell per portion and replicate."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.campaign_schema import EXAMPLES, CampaignModel, Scalar, _model_issues
from orchestrator.campaign_types import (
    CAMPAIGNS_DIR,
    MAX_CELLS,
    Batch,
    Campaign,
    CampaignCell,
    CampaignIssue,
    Portion,
    Powder,
)
from protocols.schema import (
    Protocol,
    ProtocolError,
    resolve_protocol_path,
    validate_protocol_file,
)
from protocols.schema import load_protocol as _load_protocol

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
    # Here, not at import: only a campaign that names a material reads its file (the simulated
    # cell's parameters); nothing else of the simulated lab (ophyd devices, scipy) is imported.
    from simulators.material import MATERIALS_DIR, material_problem, resolve_material

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
