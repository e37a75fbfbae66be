"""Live monitor benchmark (figures printed, not asserted).

    python -m benchmarks.bench_monitor [--stations 3] [--channels 128] [--seconds 30] [--no-fsync]

N stations x M channels each record one point per second on the wall clock into one data
folder, as relaxlab's journal stores them (one ``journal/<run>.jsonl`` per channel, a
``[name, document]`` line per event page, flushed and fsynced), while ``relaxlab monitor``
serves that folder in its own process and a client polls it as the page does (``/api/status``
then ``POST /api/points`` for the cells with new points, every ``--poll`` seconds).

Printed:
1. page latency: from a point being written to the polling client having it (includes the
   wait for the next poll; target under 2 s at a 1 s poll);
2. API latency: from a point being written to ``/api/status`` serving it, polled every 10 ms;
3. CPU of the monitor process (process time / wall time) while serving the page client, and
   the size and serving time of its answers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Lab:
    """stations x channels journals, one point per channel per :meth:`tick`."""

    def __init__(self, data: Path, stations: int, channels: int, fsync: bool) -> None:
        from event_model import compose_run

        self.fsync = fsync
        (data / "journal").mkdir(parents=True)
        self.runs: list[tuple[Any, Any, Any]] = []
        self.seq = 0
        keys = {k: {"source": "bench", "dtype": "number", "shape": []}
                for k in ("voltage_V", "current_A", "specific_current_mA_g", "capacity_mAh_g", "temperature_C", "step", "substep")}  # fmt: skip
        for s in range(stations):
            for c in range(channels):
                run = compose_run(metadata={"plan_name": "bench_monitor", "station": f"station{s + 1}",
                                            "channel": f"ch{c + 1:03d}", "cell": f"S{s + 1}-C{c + 1:03d}",
                                            "step_types": ["rest"], "active_mass_g": 0.005})  # fmt: skip
                desc = run.compose_descriptor(name="primary", data_keys=keys)
                f = open(data / "journal" / f"{run.start_doc['uid']}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
                self._write(f, "start", dict(run.start_doc))
                self._write(f, "descriptor", dict(desc.descriptor_doc))
                self.runs.append((run, desc, f))

    def _write(self, f: Any, name: str, doc: dict[str, Any]) -> None:
        f.write(json.dumps([name, doc]) + "\n")
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())

    def tick(self) -> float:
        """One point on every channel, stamped now; returns when the last one was written."""
        self.seq += 1
        for i, (_, desc, f) in enumerate(self.runs):
            now = time.time()
            data = {"voltage_V": [4.0 - 1e-5 * self.seq + 1e-6 * i], "current_A": [0.0],
                    "specific_current_mA_g": [0.0], "capacity_mAh_g": [0.0], "temperature_C": [25.0],
                    "step": [0], "substep": [0]}  # fmt: skip
            page = {"descriptor": desc.descriptor_doc["uid"], "uid": [str(uuid.uuid4())], "time": [now],
                    "seq_num": [self.seq], "data": data, "timestamps": {k: [now] for k in data}, "filled": {}}  # fmt: skip
            self._write(f, "event_page", page)
        return time.time()

    def close(self) -> None:
        for _, _, f in self.runs:
            f.close()


def _get(url: str) -> tuple[Any, int, float]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return json.loads(body), len(body), time.perf_counter() - t


def _post(url: str, payload: Any) -> tuple[Any, int, float]:
    t = time.perf_counter()
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        body = r.read()
    return json.loads(body), len(body), time.perf_counter() - t


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(q * len(values)), len(values) - 1)] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=3)
    parser.add_argument("--channels", type=int, default=128, help="channels per station")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--poll", type=float, default=1.0, help="page poll interval (s)")
    parser.add_argument("--no-fsync", action="store_true")
    args = parser.parse_args()
    n = args.stations * args.channels

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        lab = Lab(data, args.stations, args.channels, not args.no_fsync)
        port = _port()
        base = f"http://127.0.0.1:{port}"
        monitor = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "monitor", "--data-dir", str(data),
                                    "--port", str(port)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                   stdout=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    _get(base + "/healthz")
                    break
                except OSError:
                    if time.monotonic() > deadline or monitor.poll() is not None:
                        raise SystemExit("the monitor did not start") from None
                    time.sleep(0.2)
            lab.tick()
            _get(base + "/api/status")  # warm up: every journal read once

            # 1. the page client at its poll interval, the lab at 1 point/s per channel
            have: dict[str, int] = {}
            t0s: dict[str, float] = {}
            page_latency: list[float] = []
            sizes: list[int] = []
            serve_s: list[float] = []
            stop = threading.Event()

            def page_client() -> None:
                while not stop.is_set():
                    began = time.monotonic()
                    status, size, took = _get(base + "/api/status")
                    sizes.append(size)
                    serve_s.append(took)
                    since = {c["id"]: have.get(c["id"], 0) for c in status["cells"] if c["points"] > have.get(c["id"], 0)}
                    if since:
                        got, size2, took2 = _post(base + "/api/points", {"since": since})
                        now = time.time()
                        sizes[-1] += size2
                        serve_s[-1] += took2
                        for cell_id, p in got.items():
                            t0s.setdefault(cell_id, p["t0"])
                            if cell_id in have:  # points written while we watch (not the warm-up backlog)
                                page_latency.extend(now - (t0s[cell_id] + t) for t in p["time_s"])
                            have[cell_id] = p["last_seq"]
                    stop.wait(max(args.poll - (time.monotonic() - began), 0.0))

            client = threading.Thread(target=page_client, daemon=True)
            client.start()
            cpu0, wall0 = _cpu_s(monitor.pid), time.monotonic()
            write_s = []
            while time.monotonic() - wall0 < args.seconds:
                t = time.monotonic()
                lab.tick()
                write_s.append(time.monotonic() - t)
                time.sleep(max(1.0 - (time.monotonic() - t), 0.0))
            cpu = (_cpu_s(monitor.pid) - cpu0) / (time.monotonic() - wall0)
            stop.set()
            client.join()

            # 2. API latency: a tick, then /api/status every 10 ms until every cell has it
            api_latency = []
            for _ in range(10):
                written = lab.tick()
                target = lab.seq
                while True:
                    status, _, _ = _get(base + "/api/status")
                    if all(c["points"] >= target for c in status["cells"]):
                        api_latency.append(time.time() - written)
                        break
                    time.sleep(0.01)
                time.sleep(0.5)
        finally:
            monitor.terminate()
            monitor.wait(timeout=30)
            lab.close()

    print(f"monitor: {args.stations} stations x {args.channels} channels = {n} cells at 1 point/s, "
          f"{args.seconds:.0f} s, page polling every {args.poll:g} s, fsync {'off' if args.no_fsync else 'on'}")  # fmt: skip
    print(f"  writing one point on every channel : median {statistics.median(write_s) * 1e3:.0f} ms")
    print(f"  page latency (write -> on the page): median {statistics.median(page_latency):.2f} s, "
          f"p95 {_pct(page_latency, 0.95):.2f} s, max {max(page_latency):.2f} s over {len(page_latency)} points "
          f"(target < 2 s, ratio {_pct(page_latency, 0.95) / 2.0:.2f})")  # fmt: skip
    print(f"  API latency (write -> /api/status) : median {statistics.median(api_latency) * 1e3:.0f} ms, "
          f"max {max(api_latency) * 1e3:.0f} ms")  # fmt: skip
    print(f"  monitor CPU while serving the page : {cpu * 100:.1f} % of one core")
    print(f"  per poll: {statistics.median(sizes) / 1e3:.0f} kB answered in {statistics.median(serve_s) * 1e3:.0f} ms (median)")


if __name__ == "__main__":
    main()
