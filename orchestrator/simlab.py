"""The simulated lab: every simulated instrument of a lab file, on the cell physics.

Only the orchestrator reaches this module (in simulated mode, and for ``relaxlab sim
serve``): drivers and plans never see a simulator, only the bytes it speaks. Instruments with
``resource = "sim"`` are reached in-process; instruments with a TCP resource on 127.0.0.1 are
served on that port by :class:`simulators.server.InstrumentServer`, and the driver connects
to them through pyvisa-py or pyserial exactly as to hardware.
"""

from __future__ import annotations

import os
import re
import threading
import zlib
from pathlib import Path
from typing import Any

import orchestrator.sim_instruments  # noqa: F401  (registers the built-in models' simulators)
from drivers import registry
from drivers.device import PotentiostatChannel
from drivers.eurotherm import EurothermDriver
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.oven import Oven
from drivers.transport import InProcessTransport
from orchestrator.lab import Lab
from orchestrator.sim_operator import charge_powder
from simulators.cell import Cell, CellVariation, Sample
from simulators.eurotherm import SimulatedEurotherm
from simulators.faults import FaultyEndpoint, parse_fault_spec
from simulators.keithley2450 import SimulatedKeithley2450
from simulators.material import load_material, resolve_material
from simulators.oven import OvenModel
from simulators.server import InstrumentServer

_PORT = re.compile(
    r"(?:TCPIP\d*::127\.0\.0\.1::(\d+)::SOCKET)|(?:(?:socket|ASRLsocket)://127\.0\.0\.1:(\d+))", re.I
)


def tcp_port(resource: str) -> int | None:
    """The loopback port of a TCP resource string, or None for other resources."""
    match = _PORT.search(resource)
    if not match:
        return None
    return int(match.group(1) or match.group(2))


def _material(name: str) -> Any:
    return load_material(resolve_material(name))


class SimulatedLab:
    """Simulated instruments, one cell each, keyed by instrument name.

    ``faults`` (default: the environment variable ``RELAXLAB_SIM_FAULTS``, e.g.
    ``"rate=0.05,seed=3"``) makes every instrument's link faulty: replies dropped, garbled,
    late, the link down for a few exchanges (:mod:`simulators.faults`).
    """

    def __init__(self, lab: Lab, clock: Any, noise: bool = False, faults: str | None = None) -> None:
        self.clock = clock
        self.lab = lab
        self.noise = noise
        self.lock = threading.RLock()
        self.instruments: dict[str, Any] = {}
        self.cells: dict[str, Cell] = {}
        self.servers: dict[str, InstrumentServer] = {}
        for index, (name, config) in enumerate(sorted(lab.instruments.items())):
            if config.simulated:
                self.instruments[name] = registry.simulator(config.driver)(self, name, config, index)

        spec = faults if faults is not None else os.environ.get("RELAXLAB_SIM_FAULTS", "")
        if spec:
            options = parse_fault_spec(spec)
            seed = int(options.pop("seed", 0))
            for index, name in enumerate(sorted(self.instruments)):
                self.instruments[name] = FaultyEndpoint(
                    self.instruments[name], seed=seed * 1000 + index, **options
                )

    def cell_for(self, name: str, index: int) -> Cell:
        """The simulated cell on instrument ``name`` (its lab-file cell's material, mass and
        temperature; a 7 mg cell of x04 when no cell sits on it). One cell per instrument."""
        lab = self.lab
        cells = [c for c in lab.cells if c.instrument == name]
        if len(cells) > 1:
            driver = lab.instruments[name].driver
            raise ValueError(f"instrument {name!r}: a simulated {driver} has one channel")
        cfg = cells[0] if cells else None
        source = getattr(lab, "source", None)
        base = Path(source).parent if source and Path(source).is_file() else None
        material = load_material(resolve_material(cfg.material if cfg else "x04", base))
        cell = Cell(
            Sample(material),
            active_mass_g=cfg.active_mass if cfg else 0.007,
            temperature_C=cfg.temperature if cfg else 25.0,
            noise_seed=(lab.lab.seed * 1000 + index) if self.noise else None,
        )
        self.cells[name] = cell
        return cell

    def _simulator(self, name: str) -> Any:
        instrument = self.instruments[name]
        instrument = getattr(instrument, "endpoint", instrument)  # behind a FaultyEndpoint
        if not hasattr(instrument, "cell"):
            raise ValueError(f"instrument {name!r} holds no simulated cell")
        return instrument

    def cell_on(self, name: str) -> Cell:
        """The simulated cell instrument ``name`` holds now."""
        return self._simulator(name).cell  # type: ignore[no-any-return]

    def mount_cell(self, name: str, cell: Cell) -> None:
        """Put ``cell`` on instrument ``name`` (the simulated operator built it): the instrument
        is brought up to now first, so the new cell is not advanced over time before it existed."""
        with self.lock:
            instrument = self._simulator(name)
            instrument.receive(b"*OPC?\n")  # any command brings the simulation up to now
            instrument.take_output()
            instrument.cell = cell
            self.cells[name] = cell

    def transport(self, name: str) -> InProcessTransport:
        return InProcessTransport(self.instruments[name], name=f"{name} (simulated)")

    def serve(self, name: str, port: int | None = None) -> InstrumentServer:
        """Serve one instrument on 127.0.0.1 (its resource's port, else ``port``, else free)."""
        if name in self.servers:
            return self.servers[name]
        config = self.lab.instruments[name]
        chosen = tcp_port(config.resource) or port or 0
        server = InstrumentServer(self.instruments[name], chosen, self.lock, name=name).start()
        self.servers[name] = server
        if hasattr(self.clock, "add_listener"):  # simulated time shared with the host
            self.clock.add_listener(server.push_now)
        return server

    def serve_all(self, base_port: int = 0) -> dict[str, int]:
        ports = {}
        for offset, name in enumerate(sorted(self.instruments)):
            port = base_port + offset if base_port else None
            ports[name] = self.serve(name, port).port
        return ports

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


class SimulatedCampaignLab:
    """A simulated lab for campaigns: potentiostat channels, ovens, and an operator.

    The operator is simulated too: it answers every request after the step's duration and
    carries out the physical action the request names, through the physics model - a powder
    portion goes into an oven (and relaxes with the temperature it sees there), comes out, and
    is built into a fresh cell on a channel. Between actions a portion sits on the bench and
    relaxes at room temperature.
    """

    def __init__(
        self,
        clock: Any,
        channels: int,
        ovens: int,
        material: str = "x04",
        room_temperature_C: float = 25.0,
        noise_seed: int | None = None,
    ) -> None:
        self.clock = clock
        self.material = _material(material)
        self.room_C = room_temperature_C
        self.noise_seed = noise_seed
        self._cells_built = 0
        self.instruments: list[SimulatedKeithley2450] = []
        self.channels: list[Any] = []
        for i in range(channels):
            sim = SimulatedKeithley2450(Cell(Sample(self.material), 0.005), clock, serial=f"SIM{i:05d}")
            driver = Keithley2450Potentiostat(
                Keithley2450(InProcessTransport(sim, name=f"ch{i + 1:02d} (simulated)"), f"ch{i + 1:02d}"),
                clock,
            )
            driver.initialise()
            self.instruments.append(sim)
            self.channels.append(
                PotentiostatChannel(
                    name=f"ch{i + 1:02d}",
                    driver=driver,
                    clock=clock,
                    active_mass_g=0.005,
                    voltage_max_V=4.95,
                    voltage_min_V=1.0,
                )  # fmt: skip
            )
        self.oven_models: dict[str, Any] = {}
        self.ovens: list[Any] = []
        for i in range(ovens):
            model = OvenModel(clock)
            name = f"oven{i + 1}"
            controller = SimulatedEurotherm(clock, model)
            self.oven_models[name] = model
            self.ovens.append(
                Oven(
                    EurothermDriver.in_process(controller, name=name), clock, name=name, poll_interval_s=10.0
                )
            )
        self.portions: dict[str, Sample] = {}
        self._bench_since: dict[str, float] = {}
        self._in_oven: dict[str, str] = {}

    # --- physics of the powders ---------------------------------------------------------
    def charge_powder(self, portions: list[str], charged_to: str, current_mA_g: float = 20.0) -> None:
        """Charge the powder (as a large cell at 20 mA/g), then split it into portions."""
        powder = Sample(self.material)
        charge_powder(powder, charged_to, current_mA_g)
        for name in portions:
            self.portions[name] = powder.copy()
            self._bench_since[name] = self.clock.now()

    def pristine_powder(self, portions: list[str]) -> None:
        """As-synthesised powder: nothing charged, nothing to relax."""
        for name in portions:
            self.portions[name] = Sample(self.material)
            self._bench_since[name] = self.clock.now()

    def _variation(self, cell_id: str) -> CellVariation | None:
        """The cell's own departure from nominal: seeded by the campaign seed and the cell's id."""
        if self.noise_seed is None:
            return None
        return CellVariation.draw(self.material, zlib.crc32(f"{self.noise_seed}:{cell_id}".encode()))

    def cell_variation(self, cell_id: str, mass_g: float) -> dict[str, float] | None:
        """What the cell ``cell_id`` will be like (for its run metadata), or None without a seed."""
        variation = self._variation(cell_id)
        return None if variation is None else variation.metadata(self.material, mass_g)

    def restore_portion(self, name: str, state: dict[str, Any], since_s: float) -> None:
        self.portions[name] = Sample.from_dict(self.material, state)
        self._bench_since[name] = since_s

    def cell_state(self, channel: Any) -> dict[str, Any]:
        """The physics state of the cell on ``channel`` now (caught up to the clock)."""
        instrument = self.instruments[self.channels.index(channel)]
        instrument.receive(b"*OPC?\n")  # any command brings the simulation up to now
        instrument.take_output()
        return instrument.cell.to_dict()

    def portion_state(self, name: str) -> dict[str, Any]:
        """A portion's state now (bench relaxation included), as plain data."""
        if name in self._in_oven:
            self.oven_models[self._in_oven[name]].flush()
            return self.portions[name].to_dict()
        return self._off_bench(name).to_dict()

    def _off_bench(self, name: str) -> Sample:
        sample = self.portions[name]
        if name not in self._in_oven:
            elapsed = self.clock.now() - self._bench_since[name]
            if elapsed > 0:
                sample.relax(elapsed, self.room_C)
            self._bench_since[name] = self.clock.now()
        return sample

    # --- the simulated operator -------------------------------------------------------------
    def respond(self, request: Any, done: Any, failed: Any) -> None:
        def act() -> None:
            ctx = request.context
            try:
                action = ctx.get("action")
                values: dict[str, float] = {}
                portion = ctx.get("portion")
                if action == "load_portion":
                    sample = self._off_bench(portion)
                    self.oven_models[ctx["oven"].name].add_sample(sample)
                    self._in_oven[portion] = ctx["oven"].name
                elif action == "unload_portion":
                    model = self.oven_models[self._in_oven.pop(portion)]
                    model.remove_sample(self.portions[portion])
                    self._bench_since[portion] = self.clock.now()
                elif action == "restore_cell":
                    # the cell an interrupted run left on the bench, exactly as it was
                    cell = Cell.from_dict(self.material, ctx["cell_state"])
                    self.instruments[self.channels.index(ctx["channel"])].cell = cell
                    values["active_mass"] = float(ctx["active_mass"])
                elif action == "build_cell":
                    channel = ctx["channel"]
                    mass_g = float(ctx["mass_g"])
                    seed = None if self.noise_seed is None else self.noise_seed * 100_003 + self._cells_built
                    self._cells_built += 1
                    # Each real cell differs: active share, resistances, and the weighing error of
                    # its electrode (7:2 with carbon) that sets its current and its mAh/g.
                    variation = self._variation(request.job)
                    fresh = Cell(
                        self._off_bench(ctx["portion"]).copy(),
                        active_mass_g=mass_g,
                        noise_seed=seed,
                        variation=variation,
                    )
                    index = self.channels.index(channel)
                    # bring the channel up to now first: otherwise the fresh cell would be advanced
                    # over the channel's idle time before it was built (hidden bench time at 25 C)
                    self.instruments[index].receive(b"*OPC?\n")
                    self.instruments[index].take_output()
                    self.instruments[index].cell = fresh
                    recorded = mass_g
                    if variation is not None:
                        recorded *= 1.0 + variation.mass_error
                    values["active_mass"] = round(recorded * 1000.0, 3)
                for name, _unit in request.record:
                    if name not in values:
                        values[name] = float(ctx.get(name, 0.0))
                done(values)
            except Exception as exc:  # an operator who cannot do it says so
                failed(str(exc))

        self.clock.call_later(request.duration_s, act)
