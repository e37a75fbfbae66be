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


def tiled_oven_record(client: Any, uid: str) -> Any:
    """A portion run's oven log and transfers as the Tiled server holds them, framed as
    :func:`orchestrator.run_frames.read_oven_record` frames the journal's: ``timestamp_s`` (the
    clock time of each reading, the stream's ``ts_<key>``), ``stream``, ``temperature_C`` (the
    oven's) and ``portion_location`` (on the transfer rows)."""
    import numpy as np
    import pandas as pd

    from orchestrator.run_frames import OVEN_STREAMS

    run = client[uid]
    chunks = []
    for name in OVEN_STREAMS:
        if name not in run:
            continue
        stream = run[name]
        table = stream.read().to_dataframe().reset_index()
        keys = [c for c in table.columns if c not in ("time", "seq_num", "index") and not str(c).startswith("ts_")]
        if table.empty or not keys:
            continue
        stamp = next((f"ts_{k}" for k in keys if f"ts_{k}" in table.columns or f"ts_{k}" in stream), None)
        if stamp is None:
            stamps = table["time"]
        else:
            stamps = table[stamp] if stamp in table.columns else stream[stamp].read()
        chunk = pd.DataFrame({"timestamp_s": np.asarray(stamps, dtype=float), "stream": name})
        for key in keys:
            if str(key).endswith("temperature"):
                chunk["temperature_C"] = table[key].to_numpy(dtype=float)
            elif key == "portion_location":
                chunk["portion_location"] = table[key].astype(str).to_numpy()
        chunks.append(chunk)
    if not chunks:
        return pd.DataFrame(columns=["timestamp_s", "stream", "temperature_C", "portion_location"])
    return pd.concat(chunks, ignore_index=True).sort_values("timestamp_s", kind="stable").reset_index(drop=True)
