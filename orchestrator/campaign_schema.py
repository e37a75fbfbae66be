"""The pydantic models of a campaign file, a valid example for each field, and their errors as
:class:`~orchestrator.campaign_types.CampaignIssue` s."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from drivers.quantities import QuantityError, parse_quantity
from orchestrator.campaign_types import MAX_CELLS, CampaignIssue
from protocols.schema import (
    _loc,
)

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
