"""Campaign benchmarks (figures printed, not asserted).

    python -m benchmarks.bench_campaign [--channels-max 512] [--seconds 120]

1. The paper's titration on the simulated lab (4.5 V-charged powder): the 24 h temperature
   series (5 temperatures + the unheated reference) and the 140 C time series (6 conditions),
   3 replicates each, 16 channels, 1 oven per series;
   target <= 30 s wall for the whole titration (issue 15).
2. Real-time mode: N simulated channels each recording one point per second on the wall clock,
   one orchestrator; the CPU it uses (process time / wall time); target >= 512 channels under a
   quarter of one core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def titration() -> None:
    from orchestrator.campaign_file import load_campaign
    from orchestrator.campaign_run import run_campaign

    total_wall, total_cells = 0.0, 0
    for name in ("temperature-24h", "time-140C"):
        campaign = load_campaign(name)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = run_campaign(campaign, Path(tmp), channels=16, ovens=1)
            wall = time.perf_counter() - t0
        total_wall += wall
        total_cells += len(result.cells)
        print(f"  {name:16s} {len(result.cells):3d} cells, {result.simulated_h:6.1f} h simulated, "
              f"{wall:5.1f} s wall, failed: {len(result.failed)}")  # fmt: skip
    print(
        f"titration, both series      : {total_cells} cells in {total_wall:.1f} s wall "
        f"(target <= 30 s, ratio {total_wall / 30:.2f})"
    )


def realtime_channels(n: int, seconds: float) -> float:
    """CPU fraction used by one orchestrator recording n channels at 1 point/s in real time."""
    from bluesky import RunEngine

    from drivers.clock import WallClock
    from drivers.device import PotentiostatChannel
    from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
    from drivers.techniques import Rest
    from drivers.transport import InProcessTransport
    from orchestrator.simlab import Cell, Sample, SimulatedKeithley2450, _material
    from protocols.campaign import Pool, cell_job
    from protocols.jobs import run_jobs

    clock = WallClock()
    material = _material("x04")
    channels = []
    for i in range(n):
        sim = SimulatedKeithley2450(Cell(Sample(material), 0.005), clock)
        driver = Keithley2450Potentiostat(Keithley2450(InProcessTransport(sim), f"ch{i}"), clock)
        driver.initialise()
        channels.append(PotentiostatChannel(name=f"ch{i}", driver=driver, clock=clock, active_mass_g=0.005,
                                            page_age_s=60.0))  # fmt: skip

    class _NoOperator:
        name = "operator"
        parent = None
        entered: dict = {}

        def set(self, request):  # the cells are already mounted
            from ophyd.status import Status

            st = Status()
            st.set_finished()
            return st

        def stop(self, **kw):
            pass

    pool = Pool("channels", channels)
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: None)
    rest = Rest(seconds, record_interval_s=1.0)
    jobs = {
        f"c{i}": cell_job(f"c{i}", [rest], pool, _NoOperator(), None, {"cell": f"c{i}"}) for i in range(n)
    }
    cpu0, wall0 = time.process_time(), time.perf_counter()
    RE(run_jobs(jobs))
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels-max", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    titration()
    n = 64
    while n <= args.channels_max:
        cpu = realtime_channels(n, args.seconds)
        print(
            f"real time, {n:4d} channels at 1 point/s: {cpu * 100:5.1f} % of one core "
            f"(target < 25 % at 512 channels)"
        )
        n *= 2


if __name__ == "__main__":
    main()
