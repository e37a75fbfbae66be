"""Every user command end to end, each as a whole process, as a user runs it (issue 15).

    python -m benchmarks.bench_commands            # demo, run of every shipped example, validate, plan, report
    python -m benchmarks.bench_commands --quick    # demo, one run, validate, plan, report
    python -m benchmarks.bench_commands --only demo --only validate   # rows whose label has one of these

Each command is timed as a child process (``python -m orchestrator.cli ...``: interpreter
start-up, imports, storage and the work itself) and printed beside its target and as a ratio to a
baseline measured in this process: a bare bluesky ``count`` of 1,000 events of an ``ophyd.sim``
detector, the cost of running plain bluesky on this machine. A slower machine moves both, so the
ratio is what to compare across machines; a regression shows as a ratio that grows. Beside the
wall time, the child's CPU time (user + system, from ``getrusage``) is printed: on a machine shared
with other work the wall time moves with the load, the CPU time much less.

Targets (quiet 2-core machine): ``demo`` <= 3 s on an existing data folder and <= 5 s on a fresh
one; every shipped example ``run --lab simulated`` <= 5 s; CV at 0.05 mV/s <= 3 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bluesky_baseline_s(events: int = 1000) -> float:
    """Wall time of a bare bluesky ``count`` (``events`` events, no subscribers)."""
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd.sim import det

    RE = RunEngine({})
    RE(count([det], 5))  # warm-up
    t0 = time.perf_counter()
    RE(count([det], events))
    return time.perf_counter() - t0


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str], timeout_s: float = 300.0) -> tuple[float, float, int, str]:
    """Run ``relaxlab ARGS`` as a child process; wall time, CPU time (user + system), exit code
    and its last stdout line."""
    t0, c0 = time.perf_counter(), _children_cpu_s()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, _children_cpu_s() - c0, -1, f"timed out after {timeout_s:.0f} s"
    out = (proc.stdout.strip().splitlines() or proc.stderr.strip().splitlines() or [""])[-1]
    return time.perf_counter() - t0, _children_cpu_s() - c0, proc.returncode, out[:70]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one example instead of every one")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the commands whose label contains TEXT (repeatable)")  # fmt: skip
    options = parser.parse_args()

    from protocols.schema import EXAMPLES_DIR, list_examples

    baseline = bluesky_baseline_s()
    print(f"baseline: bare bluesky count, 1,000 events: {baseline:.3f} s (in this process)\n")
    print(f"{'command':58s} {'wall s':>7s} {'CPU s':>6s} {'target':>7s} {'ratio':>7s}  result")

    def row(label: str, args: list[str], target_s: float | None) -> tuple[float, int, str]:
        if options.only and not any(text in label for text in options.only):
            return 0.0, -1, "skipped"
        wall, cpu, rc, out = timed(args)
        target = f"{target_s:.1f}" if target_s else "-"
        verdict = "" if target_s is None else ("met" if wall <= target_s else "MISSED")
        status = "ok" if rc == 0 else f"exit {rc}: {out}"
        print(f"{label:58s} {wall:7.2f} {cpu:6.2f} {target:>7s} {wall / baseline:7.1f}  {verdict} {status}")
        return wall, rc, out

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        out_dir = Path(tmp) / "out"
        row("--help", ["--help"], 1.0)
        row("demo (fresh data folder)", ["demo", "--json", "--data-dir", str(data), "--out", str(out_dir)], 5.0)
        row("demo (existing data folder)", ["demo", "--json", "--data-dir", str(data), "--out", str(out_dir)], 3.0)
        row("demo --no-tiled", ["demo", "--json", "--no-tiled", "--data-dir", str(data), "--out", str(out_dir)], 3.0)
        examples = ["charge-rest-discharge"] if options.quick else list_examples()
        last_run = None
        for name in examples:
            target = 3.0 if name.startswith("cv-") else 5.0
            wall, rc, out = row(
                f"run {name}", ["run", name, "--lab", "simulated", "--json", "--data-dir", str(data), "--out", str(out_dir)], target
            )
            if rc == 0:
                last_run = name
        all_examples = [str(p) for p in sorted(EXAMPLES_DIR.glob("*.yaml"))]
        row(f"validate ({len(all_examples)} example files)", ["validate", *all_examples], 2.0)
        for campaign in sorted((ROOT / "orchestrator" / "campaigns").glob("*.yaml")):
            row(f"campaign plan {campaign.stem}", ["campaign", "plan", str(campaign), "--json",
                                                    "--out", str(out_dir / campaign.stem)], 3.0)
        listing = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "data", "list", "--json", "--data-dir", str(data)],
            cwd=ROOT, capture_output=True, text=True,
        )
        runs = json.loads(listing.stdout or "[]") if listing.returncode == 0 else []
        if runs:
            uid = runs[0].get("uid")  # newest first
            if uid:
                row(f"report (last run: {last_run})", ["report", uid, "--data-dir", str(data),
                                                     "--out", str(out_dir / "report")], 5.0)


if __name__ == "__main__":
    main()
