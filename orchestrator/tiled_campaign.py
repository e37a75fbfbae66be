"""A campaign's runs as the shared Tiled server holds them (``relaxlab report CAMPAIGN --tiled URI``).

Every station writes its runs to the server with the campaign, cell or portion (``job_key``)
and job kind in their start documents; a cell run again after an interruption has several
runs. The report takes, per cell, its latest run that finished (stop document, ``success``).
"""

from __future__ import annotations

from typing import Any


def campaign_runs(store: Any, campaign: str) -> tuple[list[tuple[dict[str, Any], Any]], dict[str, str]]:
    """``([(start, frame) per finished cell], {job: uid of every finished portion})`` of
    ``campaign`` on the server of ``store`` (a :class:`~orchestrator.storage.TiledStore`)."""
    from tiled.queries import Key

    latest: dict[str, tuple[float, str, str]] = {}
    for uid, run in store.client.search(Key("start.campaign") == campaign).items():
        md = run.metadata
        start, stop = md.get("start") or {}, md.get("stop") or {}
        job = start.get("job_key")
        if job is None or stop.get("exit_status") != "success":
            continue
        when = float(start.get("time", 0.0))
        if job not in latest or when > latest[job][0]:
            latest[job] = (when, uid, str(start.get("job")))
    cells = [store.read_run(uid) for _, uid, kind in sorted(latest.values()) if kind == "cell"]
    portions = {job: uid for job, (_, uid, kind) in latest.items() if kind == "portion"}
    return cells, portions
