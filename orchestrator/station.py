"""A station: one bluesky-queueserver RE Manager running relaxlab's plans on a lab file.

``relaxlab station serve LAB --name NAME`` starts ``start-re-manager`` with

* its own zmq control and info ports (``--control-port``, ``--info-port``),
* its own Redis name prefix (``relaxlab-<NAME>``) on the shared Redis (``--redis``),
* its own files under ``<data>/stations/<NAME>/``: the permissions file (every plan and device
  of the station allowed to the ``primary`` group, names starting with ``_`` forbidden) and the
  existing-plans-and-devices file, which the manager rewrites on every environment open,
* :mod:`orchestrator.station_startup` as its startup script: it opens the lab (devices: one
  potentiostat channel per cell, named by :func:`device_name`) on the station's storage (the
  shared Tiled server given by ``--tiled``, with the local journal written first; or the
  embedded catalog), and exposes the plans ``run_protocol``, ``relaxation_protocol`` and
  ``rest_at_open_circuit``.

The startup script reads its settings from the environment variables in
:meth:`StationConfig.environment` (the manager's worker process inherits them).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

STARTUP_SCRIPT = Path(__file__).with_name("station_startup.py")

#: What the ``primary`` group of a station may run: every plan and device in its namespace
#: except private names (``_...``).
PERMISSIONS_YAML = """\
# relaxlab station permissions (bluesky-queueserver user group permissions)
user_groups:
  root:
    allowed_plans: [null]
    forbidden_plans: [":^_"]
    allowed_devices: [null]
    forbidden_devices: [":^_:?.*"]
    allowed_functions: [null]
    forbidden_functions: [":^_"]
  primary:
    allowed_plans: [":.*"]
    forbidden_plans: [null]
    allowed_devices: [":?.*:depth=3"]
    forbidden_devices: [null]
    allowed_functions: [null]
    forbidden_functions: [null]
"""


def device_name(cell: str) -> str:
    """The queueserver device name of a lab cell's channel: a Python identifier
    (``cell-1`` -> ``cell_1``; a leading digit gets ``ch_``)."""
    name = re.sub(r"\W", "_", cell)
    return name if name[:1].isalpha() else f"ch_{name}"


@dataclass
class StationConfig:
    """Everything one station's RE Manager needs."""

    name: str
    lab: str
    data_dir: Path
    redis: str = "127.0.0.1:6379"
    tiled: str | None = None
    tiled_api_key: str | None = None
    control_port: int = 60615
    info_port: int = 60625
    host: str = "127.0.0.1"
    #: Clock file of a ``relaxlab sim serve`` process serving the lab's simulated instruments:
    #: they then live outside the station (and run on while its manager is down).
    sim_clock: Path | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", self.name):
            raise ValueError(
                f"station name {self.name!r}: a letter or digit, then up to 63 letters, digits, _ and - "
                "(e.g. station-a)"
            )
        self.data_dir = Path(self.data_dir)

    @property
    def directory(self) -> Path:
        return self.data_dir / "stations" / self.name

    @property
    def redis_prefix(self) -> str:
        return f"relaxlab-{self.name}"

    @property
    def control_address(self) -> str:
        return f"tcp://{self.host}:{self.control_port}"

    @property
    def info_address(self) -> str:
        return f"tcp://{self.host}:{self.info_port}"

    def write_files(self) -> tuple[Path, Path]:
        """The permissions file and the (manager-written) existing plans and devices file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        permissions = self.directory / "user_group_permissions.yaml"
        permissions.write_text(PERMISSIONS_YAML)
        return permissions, self.directory / "existing_plans_and_devices.yaml"

    def environment(self) -> dict[str, str]:
        env = {
            "RELAXLAB_STATION_NAME": self.name,
            "RELAXLAB_STATION_LAB": str(self.lab),
            "RELAXLAB_STATION_DATA": str(self.data_dir),
            "RELAXLAB_STATION_REDIS": self.redis,  # the live stream of its documents (orchestrator.live_bus)
        }
        if self.tiled:
            env["RELAXLAB_STATION_TILED"] = self.tiled
        if self.tiled_api_key:
            env["TILED_API_KEY"] = self.tiled_api_key
        if self.sim_clock is not None:
            env["RELAXLAB_STATION_SIM_CLOCK"] = str(self.sim_clock)
        return env

    def command(self) -> list[str]:
        """The ``start-re-manager`` command line of this station."""
        permissions, existing = self.write_files()
        bind = "*" if self.host not in ("127.0.0.1", "localhost") else "127.0.0.1"
        return [
            sys.executable, "-c",
            "from bluesky_queueserver.manager.start_manager import start_manager; start_manager()",
            "--startup-script", str(STARTUP_SCRIPT),
            "--existing-plans-devices", str(existing),
            "--update-existing-plans-devices", "ENVIRONMENT_OPEN",
            "--user-group-permissions", str(permissions),
            "--redis-addr", self.redis,
            "--redis-name-prefix", self.redis_prefix,
            "--zmq-control-addr", f"tcp://{bind}:{self.control_port}",
            "--zmq-info-addr", f"tcp://{bind}:{self.info_port}",
            "--zmq-publish-console", "ON",
            "--use-ipython-kernel", "OFF",
        ]  # fmt: skip


def check_redis(address: str) -> None:
    """One clear error when Redis does not answer at ``address`` (``host:port``)."""
    import redis

    host, _, port = address.rpartition(":")
    try:
        redis.Redis(host=host or "127.0.0.1", port=int(port or 6379), socket_connect_timeout=3).ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ConnectionError(f"Redis does not answer at {address}: {exc}") from exc


class ServerProcess:
    """A server run as a child process in a session of its own (``start_new_session``):
    ``with server:`` starts it and stops it on the way out."""

    process: subprocess.Popen[bytes] | None
    #: Seconds from SIGTERM to the process group until SIGKILL.
    stop_timeout_s = 30.0

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL if it has not ended after ``stop_timeout_s``;
        nothing if it has ended."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the whole process group at once (as a crash would)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Station(ServerProcess):
    """A station's RE Manager as a child process (``with Station(config) as s:``)."""

    def __init__(self, config: StationConfig, log: Path | None = None) -> None:
        self.config = config
        self.log = log or config.directory / "manager.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Station:
        check_redis(self.config.redis)
        command = self.config.command()
        env = {**os.environ, **self.config.environment()}
        root = str(Path(__file__).resolve().parents[1])  # the worker imports relaxlab from here
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return self

    def api(self, timeout_s: float = 60.0) -> Any:
        """A bluesky-queueserver-api client of this station (zmq)."""
        return connect_station(self.config.control_address, self.config.info_address, timeout_s)


def connect_station(control: str, info: str | None = None, timeout_s: float = 60.0) -> Any:
    """A ``REManagerAPI`` (zmq) of the RE Manager at ``control``, once it answers."""
    from bluesky_queueserver_api.zmq import REManagerAPI

    api = REManagerAPI(zmq_control_addr=control, zmq_info_addr=info, timeout_recv=5.0, timeout_send=5.0)
    api.user = "relaxlab"
    api.user_group = "primary"
    deadline = time.monotonic() + timeout_s  # waiting for a process to answer, not for an instrument
    while True:
        try:
            api.status()
            return api
        except Exception as exc:
            if time.monotonic() > deadline:
                api.close()
                raise ConnectionError(f"no RE Manager answers at {control} ({exc})") from exc
            time.sleep(0.3)
