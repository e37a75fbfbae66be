"""A campaign writing into a data folder for the monitor's tests (run as a child process).

``python -m tests.test_monitor_writer DATA [--gate] [--fault CELL]`` runs a three-cell campaign
(charge to 4.8 V, 1 h rest, discharge) on the simulated lab through the public Python API
(:func:`orchestrator.campaign_run.run_campaign`), writing its journals and state into DATA as
``relaxlab campaign run`` does. After every step of every cell it prints one JSON line
(``{"cell": ..., "steps_done": ...}``); with ``--gate`` it then waits for a line on stdin
before going on, so a test can look at the monitor while the campaign is paused mid-way
(simulated time stands still meanwhile). Answering ``fault`` (or ``--fault CELL`` without
``--gate``, after that cell's charge) lowers that cell's channel's safety limit below the
cell's voltage: its next point is a safety fault, the orchestrator puts the cell at open
circuit and records it failed, and the other cells carry on. Prints ``{"done": true}`` at
the end. No test in this file: pytest collects nothing here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CAMPAIGN = """\
name: monitor-demo
protocol: charge-rest-discharge
replicates: 3
cell_prefix: MON
samples:
  batch: {id: LTNO-x04-B1, material: x04}
  cell_mass: 5 mg
matrix:
  charge_end: [4.8 V]
  rest: [1 h]
  current: [100 mA/g]
"""
#: The limit a fault sets: below the voltage of a cell charged to 4.8 V all through its 1 h rest.
FAULT_LIMIT_V = 4.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--gate", action="store_true")
    parser.add_argument("--fault", default=None, help="cell to fault after its charge (without --gate)")
    args = parser.parse_args(argv)

    import orchestrator.simlab as simlab
    from orchestrator.campaign_file import load_campaign
    from orchestrator.campaign_run import run_campaign

    labs: list[Any] = []
    original = simlab.SimulatedCampaignLab.__init__

    def capture(self: Any, *a: Any, **k: Any) -> None:  # keep the lab's channels to inject a fault
        original(self, *a, **k)
        labs.append(self)

    simlab.SimulatedCampaignLab.__init__ = capture  # type: ignore[method-assign]

    def channel_of(cell: str) -> Any:
        for path in sorted((args.data / "journal").glob("*.jsonl")):
            with open(path, encoding="utf-8") as f:
                name, start = json.loads(f.readline())
            if name == "start" and start.get("cell") == cell:
                return next(ch for ch in labs[0].channels if ch.name == start["channel"])
        raise KeyError(cell)

    def fault(cell: str) -> None:
        channel_of(cell).voltage_max_V.put(FAULT_LIMIT_V)

    def step_done(cell: str, steps_done: int) -> None:
        print(json.dumps({"cell": cell, "steps_done": steps_done}), flush=True)
        if args.gate:
            answer = sys.stdin.readline().strip()
            if answer == "fault":
                fault(cell)
        elif args.fault == cell and steps_done == 2:  # mounted and charged: fault in the rest
            fault(cell)

    path = args.data.parent / "monitor-demo.yaml"
    path.write_text(CAMPAIGN)
    result = run_campaign(load_campaign(path), args.data, channels=3, on_step_done=step_done)
    print(json.dumps({"done": True, "failed": result.failed}), flush=True)


if __name__ == "__main__":
    main()
