"""A lab of stations: which RE Manager holds which channels, ovens and diffractometers.

```toml
# stations.toml
[stations.bench-a]
control = "tcp://10.0.0.11:60615"   # the RE Manager's zmq control address
info = "tcp://10.0.0.11:60625"      # its info (console) address (optional)
channels = ["pos0", "pos1"]         # cells of its lab file (one potentiostat channel each)

[stations.bench-b]
control = "tcp://10.0.0.12:60615"
channels = ["pos2", "pos3"]
ovens = ["oven1"]
diffractometers = []
```

A name (channel, oven, diffractometer) belongs to one station only. Every problem of the file
is reported at once, each with its place and a valid example.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ADDRESS = re.compile(r"^tcp://[A-Za-z0-9.\-\[\]:*]+:\d{1,5}$")


class StationsFileError(ValueError):
    """A stations file that cannot be used (every problem, one line each)."""


class StationEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    control: str = Field(description="zmq control address, e.g. tcp://10.0.0.11:60615")
    info: str | None = Field(default=None, description="zmq info address, e.g. tcp://10.0.0.11:60625")
    channels: list[str] = Field(default_factory=list)
    ovens: list[str] = Field(default_factory=list)
    diffractometers: list[str] = Field(default_factory=list)

    @field_validator("control", "info")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value):
            raise ValueError(f"{value!r} is not a zmq address; e.g. \"tcp://10.0.0.11:60615\"")
        return value

    @field_validator("channels", "ovens", "diffractometers")
    @classmethod
    def _names(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(_NAME, value):
                raise ValueError(f"{value!r}: names start with a letter or digit and hold up to 64 letters, "
                                 'digits, _ and - (e.g. "pos0")')  # fmt: skip
        if len(set(values)) != len(values):
            raise ValueError(f"a name is listed twice: {sorted(v for v in values if values.count(v) > 1)[0]!r}")
        return values


class StationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stations: dict[str, StationEntry]

    @field_validator("stations")
    @classmethod
    def _station_names(cls, stations: dict[str, StationEntry]) -> dict[str, StationEntry]:
        if not stations:
            raise ValueError('no station: add one, e.g. [stations.bench-a] control = "tcp://127.0.0.1:60615"')
        for name in stations:
            if not re.match(_NAME, name):
                raise ValueError(f"station name {name!r}: a letter or digit, then letters, digits, _ and -")
        return stations

    @model_validator(mode="after")
    def _one_owner(self) -> StationsFile:
        owner: dict[tuple[str, str], str] = {}
        for station, entry in self.stations.items():
            for kind in ("channels", "ovens", "diffractometers"):
                for name in getattr(entry, kind):
                    other = owner.setdefault((kind, name), station)
                    if other != station:
                        raise ValueError(f"{kind[:-1]} {name!r} is listed by stations {other!r} and {station!r}: "
                                         "each belongs to one station")  # fmt: skip
        return self

    def station_of(self, kind: str, name: str) -> str:
        """The station holding ``name`` (``kind``: channels, ovens, diffractometers)."""
        for station, entry in self.stations.items():
            if name in getattr(entry, kind):
                return station
        raise KeyError(name)

    def channels(self) -> list[tuple[str, str]]:
        """Every (station, channel), in file order."""
        return [(station, ch) for station, entry in self.stations.items() for ch in entry.channels]

    def ovens(self) -> list[tuple[str, str]]:
        """Every (station, oven), in file order."""
        return [(station, oven) for station, entry in self.stations.items() for oven in entry.ovens]


def load_stations(path: str | Path) -> StationsFile:
    """Read and validate a stations file; :class:`StationsFileError` lists every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StationsFileError(f"{path}: no such stations file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StationsFileError(f"{path}: not a TOML file: {exc}") from None
    try:
        return StationsFile.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(file)"
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (keys: control, info, channels, ovens, diffractometers)"
            elif error["type"] == "missing":
                message = 'missing (e.g. control = "tcp://127.0.0.1:60615")'
            lines.append(f"{path}: {where}: {message}")
        raise StationsFileError("\n".join(lines)) from None
