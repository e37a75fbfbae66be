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

This module reads files; the compiled campaign is :mod:`orchestrator.campaign_types`, the file's
models and examples :mod:`orchestrator.campaign_schema`, and the expansion into powders,
portions and cells :mod:`orchestrator.campaign_expand` (the public names are re-exported here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.campaign_expand import _check, _resolve_campaign_path, condition_slug
from orchestrator.campaign_types import (
    CAMPAIGNS_DIR,
    MAX_CELLS,
    Batch,
    Campaign,
    CampaignCell,
    CampaignError,
    CampaignIssue,
    Portion,
    Powder,
)
from protocols.textfiles import InputFileError, load_yaml, read_text_file, yaml_problem


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
    "CAMPAIGNS_DIR",
    "MAX_CELLS",
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
