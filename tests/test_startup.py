"""Start-up and the Tiled copy (issue 15): a run never opens the Tiled catalog (it is filled
from the journal in the background), the catalog is created once and opened directly afterwards,
a filler killed half-way loses and doubles nothing, and the console shows no third-party
warnings."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from event_model import compose_run

from orchestrator import tiled_fill
from orchestrator.storage import Journal, TiledStore
from orchestrator.tiled_fill import MARKER, fill, open_embedded, pending

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["voltage_V", "current_A", "specific_current_mA_g", "capacity_mAh_g", "temperature_C", "step", "substep"]


def _journal_run(data: Path, points: int, page: int = 1000) -> str:
    """A stopped run of ``points`` points in the journal (pages of ``page``)."""
    journal = Journal(data, fsync=False)
    bundle = compose_run(metadata={"plan_name": "ingest", "clock_start_s": 0.0})
    desc = bundle.compose_descriptor(
        name="primary", data_keys={k: {"source": "test", "dtype": "number", "shape": []} for k in KEYS}
    )
    journal("start", bundle.start_doc)
    journal("descriptor", desc.descriptor_doc)
    for first in range(0, points, page):
        n = min(page, points - first)
        times = [float(first + i) for i in range(n)]
        data = {k: ([0] * n if k in ("step", "substep") else times) for k in KEYS}
        journal("event_page", desc.compose_event_page(data=data, timestamps={k: times for k in KEYS},
                                                      seq_num=list(range(first + 1, first + n + 1)),
                                                      validate=False))  # fmt: skip
    journal("stop", bundle.compose_stop())
    return str(bundle.start_doc["uid"])


def _catalog_rows(data: Path, uid: str) -> pd.DataFrame:
    store = TiledStore(data)
    try:
        return store.client[uid]["primary"].base["internal"].read()
    finally:
        store.close()


def test_the_catalog_is_created_once_then_opened_without_the_init_child(tmp_path, monkeypatch) -> None:
    calls: list[list[str]] = []
    real_run = subprocess.run

    def spy(cmd, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(map(str, cmd)))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    for _ in range(2):
        context, _client = open_embedded(tmp_path)
        context.close()
    inits = [c for c in calls if "catalog" in c and "init" in c]
    assert len(inits) == 1  # the first open creates it; the second opens it directly
    assert (tmp_path / "tiled" / MARKER).exists()


def test_a_run_never_opens_tiled_and_the_catalog_gets_the_run_afterwards(tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from orchestrator.lab import load_lab
        from orchestrator.runner import Session
        from drivers.techniques import Rest
        from protocols.plans import run_protocol
        with Session(load_lab("simulated"), data_dir={str(tmp_path)!r}, tiled=True) as session:
            (uid,) = session.run(run_protocol(session.channel(), [Rest(3600.0, record_interval_s=60.0)]))
        print(uid, any(m.startswith("tiled.server") or m == "tiled.catalog" for m in sys.modules))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    uid, opened = proc.stdout.split()
    assert opened == "False"  # the run's process never imported the Tiled server or catalog
    fill(tmp_path)  # waits for the background filler the run started, copies what is missing
    assert pending(tmp_path) == []
    cli = [sys.executable, "-m", "orchestrator.cli", "data", "export", uid, "--data-dir", str(tmp_path)]
    frames = {}
    for source in ("journal", "tiled"):
        out = tmp_path / f"{source}.csv"
        done = subprocess.run([*cli, "--source", source, "--out", str(out)], capture_output=True, text=True,
                              timeout=600, cwd=ROOT)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # no Starlette deprecation, no "Tiled version" on the console
        frames[source] = pd.read_csv(out)
    assert len(frames["journal"]) == 61
    pd.testing.assert_frame_equal(frames["tiled"], frames["journal"])


def test_a_filler_killed_half_way_loses_and_doubles_nothing(tmp_path, monkeypatch) -> None:
    # blocks of 10,000 points instead of 100,000: the same kill after the first block, a tenth the copying
    block, points = 10_000, 25_000
    monkeypatch.setattr(tiled_fill, "BLOCK_POINTS", block)
    uid = _journal_run(tmp_path, points)
    # a filler that dies after its first block went into the catalog
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from orchestrator import tiled_fill
        tiled_fill.BLOCK_POINTS = {block}
        real = tiled_fill._blocks
        def dying(docs, block):
            for n, (name, doc) in enumerate(real(docs, block)):
                if name == "event_page" and doc["seq_num"][0] > 1:
                    os._exit(9)
                yield name, doc
        tiled_fill._blocks = dying
        tiled_fill.fill(Path({str(tmp_path)!r}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 9, proc.stderr
    assert pending(tmp_path) == [uid]  # not marked done
    partial = _catalog_rows(tmp_path, uid)
    assert 0 < len(partial) < points  # the catalog holds part of it
    assert fill(tmp_path) == [uid]
    rows = _catalog_rows(tmp_path, uid)
    assert len(rows) == points
    np.testing.assert_array_equal(np.sort(rows["seq_num"].to_numpy()), np.arange(1, points + 1))
    assert fill(tmp_path) == []  # and again: nothing to do, nothing doubled
    assert len(_catalog_rows(tmp_path, uid)) == points
