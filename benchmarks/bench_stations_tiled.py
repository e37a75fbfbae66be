"""Stations into one shared Tiled server (figures printed, not asserted).

    python -m benchmarks.bench_stations_tiled [--stations 3] [--channels 128] [--seconds 60] [--via redis|tiled]

Starts a Tiled server on a fresh PostgreSQL database (127.0.0.1:5432, dropped afterwards), then
N station processes, each writing M channels at one point per second on the wall clock the way
a station stores them: each point fsynced to the station's local journal first, then sent to the
server through relaxlab's writer (:class:`~orchestrator.tiled_server.RemoteTiled` over
:class:`~orchestrator.storage.TiledStore`: one event page per channel per second, appended to
the run's table, every ``--batch-points`` points). A reader process polls the server every ``--poll`` seconds as a page reading
the server would, for one channel of each station (``--watch`` channels each).

With ``--via redis`` (the default) each station also sends every document to its live stream
on Redis (:class:`~orchestrator.live_bus.LivePublisher`, as ``relaxlab station serve`` does) and
appends to the server in batches of 20,000 points; the reader is the monitor of a lab of stations
(``relaxlab monitor --redis``: its model over :class:`~orchestrator.live_bus.LiveSource`, every
channel of every station), polled every ``--poll`` seconds as the page polls it. With ``--via
tiled`` the reader polls the Tiled server instead (one append per point by default).

Printed:
1. CPU per station process (process time / wall time) and the rate it kept (points/s), and the
   reader's CPU with ``--via redis``;
2. end-to-end latency: from a point being read on its channel (stamped) to the reader having it
   (includes the wait for the next poll), median / 95th percentile / max;
3. the machine's load average at start and end (the figures depend on what else runs).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench_monitor import _pct

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("voltage_V", "current_A", "specific_current_mA_g", "capacity_mAh_g", "temperature_C", "step", "substep")


def station(data: str, uri: str, name: str, channels: int, seconds: float, out: str, batch: int = 1,
            live: str | None = None) -> None:
    """One station process: ``channels`` runs, a point per channel per second for ``seconds``;
    with ``live`` (a Redis address) every document also goes to the station's live stream."""
    from event_model import compose_run

    from orchestrator.storage import Journal, TiledStore
    from orchestrator.tiled_server import RemoteTiled

    folder = Path(data)
    tiled = RemoteTiled(lambda: TiledStore(folder, uri, batch_points=batch), folder, warn=lambda m: print(m, file=sys.stderr))
    publisher = None
    if live:
        from orchestrator.live_bus import LivePublisher

        publisher = LivePublisher(live, name, warn=lambda m: print(m, file=sys.stderr))

    def remote(doc_name: str, doc: dict[str, Any]) -> None:
        if publisher is not None:
            publisher(doc_name, doc)
        tiled(doc_name, doc)
    keys = {k: {"source": "bench", "dtype": "number", "shape": []} for k in KEYS}
    runs = []
    for c in range(channels):
        run = compose_run(metadata={"plan_name": "bench_stations_tiled", "station": name, "channel": f"ch{c + 1:03d}",
                                    "cell": f"{name}-C{c + 1:03d}", "campaign": f"bench-{name}"})  # fmt: skip
        desc = run.compose_descriptor(name="primary", data_keys=keys)
        journal = Journal(folder)  # one file per run, fsynced per document
        for doc_name, doc in (("start", run.start_doc), ("descriptor", desc.descriptor_doc)):
            journal(doc_name, dict(doc))
            remote(doc_name, dict(doc))
        runs.append((run, desc, journal))
    setup_s = time.process_time()  # creating the runs (start and descriptor documents)
    t0 = time.monotonic()
    cpu0 = time.process_time()
    written = 0
    tick = 0
    while time.monotonic() - t0 < seconds:
        tick += 1
        for i, (_, desc, journal) in enumerate(runs):
            now = time.time()
            data_ = {"voltage_V": [4.0 - 1e-5 * tick + 1e-6 * i], "current_A": [0.0], "specific_current_mA_g": [0.0],
                     "capacity_mAh_g": [0.0], "temperature_C": [25.0], "step": [0], "substep": [0]}  # fmt: skip
            page = {"descriptor": desc.descriptor_doc["uid"], "uid": [str(uuid.uuid4())], "time": [now],
                    "seq_num": [tick], "data": data_, "timestamps": {k: [now] for k in data_}, "filled": {}}  # fmt: skip
            journal("event_page", page)
            remote("event_page", page)
            written += 1
        wait = t0 + tick - time.monotonic()  # the next second's points
        if wait > 0:
            time.sleep(wait)
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    for run, _, journal in runs:
        stop = run.compose_stop()
        journal("stop", dict(stop))
        remote("stop", dict(stop))
    if publisher is not None:
        publisher.close()
    Path(out).write_text(json.dumps({"station": name, "cpu_s": cpu, "wall_s": wall, "points": written,
                                     "behind_s": max(0.0, wall - seconds), "setup_cpu_s": setup_s}))  # fmt: skip


def reader(uri: str, names: list[str], watch: int, stop_file: str, poll_s: float, out: str) -> None:
    """Poll the server for the newest points of ``watch`` channels of each station, until
    ``stop_file`` exists (the stations have ended)."""
    from tiled.queries import Key

    from orchestrator.storage import POINT_STREAM, _server_client

    client = _server_client(uri)
    watched: dict[str, Any] = {}
    seen: dict[str, int] = {}
    latencies: list[float] = []
    errors: dict[str, str] = {}
    while not Path(stop_file).exists():
        started = time.monotonic()
        for name in names:
            if sum(1 for k in watched if k.startswith(name)) < watch:
                for uid, run in client.search(Key("start.station") == name).items():
                    key = f"{name}/{uid}"
                    if key not in watched and sum(1 for k in watched if k.startswith(name)) < watch:
                        watched[key] = run
        for key in watched:
            try:
                # a fresh node each poll (the table grows); the page's time = its point's read time
                stamps = client[key.split("/", 1)[1]][POINT_STREAM].read()["time"].values
            except Exception as exc:  # no points yet
                errors[type(exc).__name__] = str(exc)[:200]
                continue
            now = time.time()
            n = len(stamps)
            if key not in seen:  # points from before the reader followed this channel: not timed
                seen[key] = n
            elif n > seen[key]:
                latencies += [now - float(t) for t in list(stamps)[seen[key]:n]]
                seen[key] = n
        time.sleep(max(0.0, poll_s - (time.monotonic() - started)))
    Path(out).write_text(json.dumps({"latencies_s": latencies, "watched": len(watched), "errors": errors}))


def live_reader(address: str, names: list[str], stop_file: str, poll_s: float, out: str) -> None:
    """The monitor of a lab of stations (its model over :class:`~orchestrator.live_bus.LiveSource`),
    polled every ``poll_s`` as the page polls it, until ``stop_file`` exists; each point's
    latency is taken as the model receives it."""
    from orchestrator.live_bus import LiveSource
    from orchestrator.monitor.model import Monitor

    latencies: list[float] = []

    class Timed(LiveSource):
        def new_documents(self) -> Any:
            for run, name, doc in super().new_documents():
                if name == "event_page":
                    now = time.time()
                    latencies.extend(now - float(t) for t in doc["timestamps"]["voltage_V"])
                yield run, name, doc

    monitor = Monitor(Timed(address, names))
    cpu0 = time.process_time()
    t0 = time.monotonic()
    cells = 0
    while not Path(stop_file).exists():
        started = time.monotonic()
        cells = len(monitor.status()["cells"])
        time.sleep(max(0.0, poll_s - (time.monotonic() - started)))
    cpu = (time.process_time() - cpu0) / max(time.monotonic() - t0, 1e-9)
    Path(out).write_text(json.dumps({"latencies_s": latencies, "watched": cells, "errors": {}, "cpu": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, default in (("--stations", 3), ("--channels", 128)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--seconds", type=float, default=60.0, help="writing time of each station")
    parser.add_argument("--poll", type=float, default=1.0, help="reader poll interval (s)")
    parser.add_argument("--watch", type=int, default=1, help="channels of each station the reader follows")
    parser.add_argument("--via", choices=("redis", "tiled"), default="redis",
                        help="what the page reads: the stations' live streams on Redis (the monitor's model, "
                             "every channel), or the Tiled server (--watch channels per station)")  # fmt: skip
    parser.add_argument("--redis", default="127.0.0.1:6379", help="Redis address (--via redis)")
    parser.add_argument("--batch-points", type=int, default=None,
                        help="points per append to the Tiled server (default: a station's 20000 with --via redis, "
                             "1 with --via tiled)")  # fmt: skip
    args = parser.parse_args()
    if args.batch_points is None:
        args.batch_points = 20_000 if args.via == "redis" else 1
    from orchestrator.tiled_server import TiledServer, create_database, drop_database

    load0 = os.getloadavg()
    run_id = secrets.token_hex(3)
    names = [f"bench{run_id}-{s + 1}" for s in range(args.stations)]
    db = f"relaxlab_bench_{secrets.token_hex(5)}"
    dsn = create_database(db)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        with tempfile.TemporaryDirectory() as tmp, TiledServer(dsn, Path(tmp) / "tiled") as server:
            env["TILED_API_KEY"] = server.api_key
            live = args.redis if args.via == "redis" else None
            procs = []
            for name in names:
                code = (f"from benchmarks.bench_stations_tiled import station; station({str(Path(tmp) / name)!r}, "
                        f"{server.uri!r}, {name!r}, {args.channels}, {args.seconds}, {str(Path(tmp) / name)!r} + '.json', "
                        f"{args.batch_points}, {live!r})")  # fmt: skip
                procs.append(subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env))
            stop = Path(tmp) / "stations-ended"
            if live:
                code = (f"from benchmarks.bench_stations_tiled import live_reader; live_reader({live!r}, {names!r}, "
                        f"{str(stop)!r}, {args.poll}, {str(Path(tmp) / 'reader.json')!r})")  # fmt: skip
            else:
                code = (f"from benchmarks.bench_stations_tiled import reader; reader({server.uri!r}, {names!r}, "
                        f"{args.watch}, {str(stop)!r}, {args.poll}, {str(Path(tmp) / 'reader.json')!r})")  # fmt: skip
            read_proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
            for p in procs:
                p.wait()
            stop.write_text("")
            read_proc.wait()
            results = [json.loads((Path(tmp) / f"{name}.json").read_text()) for name in names]
            read = json.loads((Path(tmp) / "reader.json").read_text())
    finally:
        drop_database(db)
        if args.via == "redis":
            from orchestrator.live_bus import redis_client, stream_key

            client = redis_client(args.redis)
            client.delete(*[stream_key(n) for n in names])
            client.close()
    load1 = os.getloadavg()
    print(f"{args.stations} stations x {args.channels} channels, 1 point/s each, {args.seconds:g} s, "
          f"shared Tiled server on PostgreSQL, {args.batch_points} point(s) per append; {os.cpu_count()} CPUs")  # fmt: skip
    print(f"load average at start {load0[0]:.1f}, at end {load1[0]:.1f}")
    for r in results:
        print(f"  {r['station']}: CPU {100 * r['cpu_s'] / r['wall_s']:.0f} % of one core, "
              f"{r['points'] / r['wall_s']:.0f} points/s (target {args.channels}), "
              f"{r['behind_s']:.1f} s behind at the end")  # fmt: skip
    lat = read["latencies_s"]
    where = ("the monitor's model has it from the stations' live streams on Redis"
             if args.via == "redis" else "reader has it from the Tiled server")  # fmt: skip
    if "cpu" in read:
        print(f"  monitor (reader): CPU {100 * read['cpu']:.0f} % of one core")
    if lat:
        print(f"end-to-end latency (point read -> {where}, poll {args.poll:g} s, "
              f"{len(lat)} points of {read['watched']} channels): median {statistics.median(lat):.2f} s, "
              f"p95 {_pct(lat, 0.95):.2f} s, max {max(lat):.2f} s (target < 2 s)")  # fmt: skip
    else:
        print(f"end-to-end latency: the reader saw no point ({read['watched']} channels followed; {read['errors']})")


if __name__ == "__main__":
    main()
