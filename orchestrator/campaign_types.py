"""A compiled campaign: batches, charged powders, portions per condition, cells, and the
campaign file's errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols.schema import (
    Protocol,
    ProtocolError,
    ProtocolIssue,
)

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
