"""Benchmarks of the foundation (issue 3): figures printed, not asserted.

    python -m benchmarks.bench_relaxation            # all but the 720,000-point memory run
    python -m benchmarks.bench_relaxation --long     # also the 200 h, 1 point/s rest
    python -m benchmarks.bench_relaxation --storage  # only the storage ingest figures

Targets on the 2-core reference machine (issue 15): the paper's protocol in <= 1 s in-process
and <= 2 s over pyvisa TCP; per-point overhead <= 1.2x a bare bluesky
``count`` event of an ``ophyd.sim`` detector measured in the same process; storage ingest
>= 100,000 points/s; resident memory growth <= 50 MB over a 720,000-point rest.

The machine may be shared: beside each wall time the CPU time of this process (every thread:
RunEngine, simulated instruments, the TCP server) is printed, which load moves much less.
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


def paper_protocol(tcp: bool) -> tuple[float, float, int, float]:
    """(wall s, CPU s of this process, points, simulated s) of the paper's protocol."""
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
        t0, c0 = time.perf_counter(), time.process_time()
        (uid,) = session.run(relaxation_protocol(session.channel()))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        _, frame = session.read(uid)
        session.close()
    return wall, cpu, len(frame), float(frame["time_s"].iloc[-1])


def bare_count_per_event(n: int = 2000) -> float:
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd.sim import det

    RE = RunEngine({})
    RE.subscribe(lambda name, doc: None)
    t0 = time.perf_counter()
    RE(count([det], n))
    return (time.perf_counter() - t0) / n


def _ingest_docs(points: int, page: int) -> list[tuple[str, dict]]:
    from event_model import compose_run

    keys = ["voltage_V", "current_A", "specific_current_mA_g", "capacity_mAh_g", "temperature_C", "step", "substep"]
    bundle = compose_run(metadata={"plan_name": "ingest"})
    desc = bundle.compose_descriptor(
        name="primary", data_keys={k: {"source": "bench", "dtype": "number", "shape": []} for k in keys}
    )
    docs: list[tuple[str, dict]] = [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc)]
    for i in range(points // page):
        values = [float(j) for j in range(i * page, (i + 1) * page)]
        docs.append(("event_page", desc.compose_event_page(
            data={k: values for k in keys}, timestamps={k: values for k in keys},
            seq_num=list(range(i * page + 1, (i + 1) * page + 1)), validate=False)))  # fmt: skip
    docs.append(("stop", bundle.compose_stop()))
    return docs


class _Timer:
    """Wall and CPU time (every thread of this process: the embedded Tiled app runs in threads)."""

    def __enter__(self) -> _Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def storage_ingest(points: int = 200_000, page: int = 1000) -> dict[str, tuple[float, float]]:
    """(points/s by wall time, points/s by CPU time): the journal alone (fsynced per page, as a
    run writes it); the journal with Tiled written as the run goes (``TiledStore`` subscribed,
    how a run on a Tiled server is stored); and the embedded catalog filled from the journal
    afterwards in 100,000-point blocks (:mod:`orchestrator.tiled_fill`, what a run does now),
    alone and journal + fill; ``open_s`` is (wall, CPU) seconds of opening the catalog."""
    from orchestrator.storage import Journal, TiledStore
    from orchestrator.tiled_fill import fill_run, open_embedded

    docs = _ingest_docs(points, page)
    out: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp))
        with _Timer() as t_journal:
            for name, doc in docs:
                journal(name, doc)
        out["journal"] = (points / t_journal.wall, points / t_journal.cpu)
        context, _ = open_embedded(Path(tmp))  # created once, before (as the first run's filler does)
        context.close()
        with _Timer() as t_open:
            context, client = open_embedded(Path(tmp), writer=True)  # what each filler process does once
        out["open_s"] = (t_open.wall, t_open.cpu)
        with _Timer() as t_fill:
            fill_run(client, Path(tmp), str(docs[0][1]["uid"]))
        context.close()
        out["fill"] = (points / t_fill.wall, points / t_fill.cpu)
        out["journal_then_fill"] = (points / (t_journal.wall + t_open.wall + t_fill.wall),
                                    points / (t_journal.cpu + t_open.cpu + t_fill.cpu))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        sinks = [Journal(Path(tmp)), TiledStore(Path(tmp))]
        with _Timer() as t_live:
            for name, doc in docs:
                for sink in sinks:
                    sink(name, doc)
        out["journal_and_live_tiled"] = (points / t_live.wall, points / t_live.cpu)
        sinks[1].close()
    return out


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


def _print_storage() -> None:
    rates = storage_ingest()

    def both(key: str) -> str:
        wall, cpu = rates[key]
        return f"{wall:,.0f} ({cpu:,.0f} by CPU)"

    print(
        f"storage ingest, points/s  : journal {both('journal')}; Tiled filled from the journal {both('fill')} "
        f"(opening the catalog {rates['open_s'][0]:.2f} s once per filler; journal, open and fill "
        f"{both('journal_then_fill')}); journal + Tiled written as the run goes {both('journal_and_live_tiled')} "
        "(target >= 100,000)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="also the 720,000-point rest")
    parser.add_argument("--storage", action="store_true", help="only the storage ingest figures")
    args = parser.parse_args()
    if args.storage:
        bare = bare_count_per_event()
        print(f"bare bluesky count per event: {bare * 1e6:.0f} us (this machine, now)")
        _print_storage()
        return

    wall, cpu, points, sim_s = paper_protocol(tcp=False)
    per_point = wall / points
    print(
        f"paper protocol, in-process : {wall:6.2f} s wall, {cpu:.2f} s CPU for {sim_s / 3600:.1f} h simulated "
        f"({sim_s / wall:,.0f}x real time; target <= 1 s, ratio to target {wall / 1:.2f})"
    )
    wall_tcp, cpu_tcp, _, _ = paper_protocol(tcp=True)
    print(f"paper protocol, pyvisa TCP : {wall_tcp:6.2f} s wall, {cpu_tcp:.2f} s CPU "
          f"(target <= 2 s, ratio {wall_tcp / 2:.2f})")  # fmt: skip
    bare = bare_count_per_event()
    print(
        f"per point (whole protocol) : {per_point * 1e6:6.0f} us; bare bluesky count per event "
        f"{bare * 1e6:.0f} us; ratio {per_point / bare:.2f} (target <= 1.2)"
    )
    _print_storage()
    n = 720_000 if args.long else 72_000
    growth, wall_rest = long_rest_memory(n)
    print(
        f"rest of {n:,} points       : RSS growth {growth:.1f} MB in {wall_rest:.1f} s wall "
        f"(target <= 50 MB over 720,000{'' if args.long else '; run with --long for the full size'})"
    )


if __name__ == "__main__":
    main()
