"""Benchmarks of the foundation (issue 3): figures printed, not asserted.

    python -m benchmarks.bench_relaxation            # all but the 720,000-point memory run
    python -m benchmarks.bench_relaxation --long     # also the 200 h, 1 point/s rest

Targets on the 2-core reference machine: the paper's protocol in <= 2 s in-process
(>= 100,000x real time) and <= 5 s over TCP; per-point overhead <= 1.2x a bare bluesky
``count`` event of an ``ophyd.sim`` detector measured in the same process; storage ingest
>= 100,000 points/s; resident memory growth <= 50 MB over a 720,000-point rest.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path


def _rss_MB() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def paper_protocol(tcp: bool) -> tuple[float, int, float]:
    from orchestrator.lab import load_lab, parse_lab
    from orchestrator.runner import Session
    from protocols.plans import relaxation_protocol

    if tcp:
        lab = parse_lab(
            {
                "instruments": {
                    "smu1": {
                        "driver": "keithley2450",
                        "resource": f"TCPIP0::127.0.0.1::{_free_port()}::SOCKET",
                        "simulated": True,
                    }
                },
                "cells": [{"name": "cell-1", "instrument": "smu1", "active_mass": "7 mg"}],
            }
        )
    else:
        lab = load_lab("simulated")
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(lab, data_dir=Path(tmp), tiled=False)
        t0 = time.perf_counter()
        (uid,) = session.run(relaxation_protocol(session.channel()))
        wall = time.perf_counter() - t0
        _, frame = session.read(uid)
        session.close()
    return wall, len(frame), float(frame["time_s"].iloc[-1])


def bare_count_per_event(n: int = 2000) -> float:
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd.sim import det

    RE = RunEngine({})
    RE.subscribe(lambda name, doc: None)
    t0 = time.perf_counter()
    RE(count([det], n))
    return (time.perf_counter() - t0) / n


def storage_ingest(points: int = 200_000, page: int = 1000) -> tuple[float, float]:
    """Points/s through the journal alone, and through journal + embedded Tiled."""
    from event_model import compose_run

    from orchestrator.storage import Journal, TiledStore

    keys = [
        "voltage_V",
        "current_A",
        "specific_current_mA_g",
        "capacity_mAh_g",
        "temperature_C",
        "step",
        "substep",
    ]
    results = []
    for with_tiled in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            sinks = [Journal(Path(tmp))]
            if with_tiled:
                sinks.append(TiledStore(Path(tmp)))
            bundle = compose_run(metadata={"plan_name": "ingest"})
            desc = bundle.compose_descriptor(
                name="primary",
                data_keys={k: {"source": "bench", "dtype": "number", "shape": []} for k in keys},
            )
            docs = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
            for name, doc in docs:
                for sink in sinks:
                    sink(name, doc)
            pages = []
            for i in range(points // page):
                values = [float(j) for j in range(i * page, (i + 1) * page)]
                pages.append(
                    desc.compose_event_page(
                        data={k: values for k in keys},
                        timestamps={k: values for k in keys},
                        seq_num=list(range(i * page + 1, (i + 1) * page + 1)),
                        validate=False,
                    )
                )
            t0 = time.perf_counter()
            for doc in pages:
                for sink in sinks:
                    sink("event_page", doc)
            stop = bundle.compose_stop()
            for sink in sinks:
                sink("stop", stop)
            results.append(points / (time.perf_counter() - t0))
            if with_tiled:
                sinks[1].close()
    return results[0], results[1]


def long_rest_memory(points: int) -> tuple[float, float]:
    from drivers.techniques import Rest
    from orchestrator.lab import load_lab
    from orchestrator.runner import Session
    from protocols.plans import run_protocol

    with tempfile.TemporaryDirectory() as tmp:
        session = Session(load_lab("simulated"), data_dir=Path(tmp), tiled=False)
        before = _rss_MB()
        t0 = time.perf_counter()
        session.run(run_protocol(session.channel(), [Rest(float(points), record_interval_s=1.0)]))
        wall = time.perf_counter() - t0
        growth = _rss_MB() - before
        session.close()
    return growth, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="also the 720,000-point rest")
    args = parser.parse_args()

    wall, points, sim_s = paper_protocol(tcp=False)
    per_point = wall / points
    print(
        f"paper protocol, in-process : {wall:6.2f} s wall for {sim_s / 3600:.1f} h simulated "
        f"({sim_s / wall:,.0f}x real time; target <= 2 s, ratio to target {wall / 2:.2f})"
    )
    wall_tcp, _, _ = paper_protocol(tcp=True)
    print(f"paper protocol, pyvisa TCP : {wall_tcp:6.2f} s wall (target <= 5 s, ratio {wall_tcp / 5:.2f})")
    bare = bare_count_per_event()
    print(
        f"per point (whole protocol) : {per_point * 1e6:6.0f} us; bare bluesky count per event "
        f"{bare * 1e6:.0f} us; ratio {per_point / bare:.2f} (target <= 1.2)"
    )
    journal, tiled = storage_ingest()
    print(
        f"storage ingest             : journal {journal:,.0f} points/s; journal + Tiled "
        f"{tiled:,.0f} points/s (target >= 100,000)"
    )
    n = 720_000 if args.long else 72_000
    growth, wall_rest = long_rest_memory(n)
    print(
        f"rest of {n:,} points       : RSS growth {growth:.1f} MB in {wall_rest:.1f} s wall "
        f"(target <= 50 MB over 720,000{'' if args.long else '; run with --long for the full size'})"
    )


if __name__ == "__main__":
    main()
