"""Fault injection for simulated instruments: what a real link and a real instrument do wrong.

:class:`FaultyEndpoint` wraps any simulator's byte endpoint (``receive``/``take_output``: the
SCPI, MethodSCRIPT and Modbus simulators alike) and spoils its replies on a seeded schedule:

``drop``
    a reply is lost on the way (the host times out);
``garble``
    a reply arrives with a corrupted byte and without its terminator's integrity;
``delay``
    a reply arrives late, after the host gave up on it, just before the next one;
``disconnect``
    the link is down for a few exchanges (a cable pulled and put back): nothing goes through
    either way;
``firmware``
    the instrument reports an error in its error queue (instruments that have one).

The same seed gives the same faults at the same exchanges, so a soak test is reproducible.
``counts`` says how many of each were injected.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

KINDS = ("drop", "garble", "delay", "disconnect", "firmware")
#: How often each kind comes relative to the others (a link that goes down is rarer than a lost reply).
WEIGHTS = {"drop": 1.0, "garble": 1.0, "delay": 1.0, "disconnect": 0.5, "firmware": 1.0}
#: Every fault injected in this process, by kind (all endpoints together).
INJECTED: Counter[str] = Counter()


def parse_fault_spec(text: str) -> dict[str, Any]:
    """``"rate=0.05,seed=3,kinds=drop+delay"`` -> FaultyEndpoint keyword arguments.

    The form of ``RELAXLAB_SIM_FAULTS``, which makes every simulated instrument of a simulated
    lab faulty (for soak tests and drills)."""
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if key == "rate":
            options["rate"] = float(value)
        elif key == "seed":
            options["seed"] = int(value)
        elif key == "kinds":
            options["kinds"] = tuple(value.split("+"))
        else:
            raise ValueError(
                f"RELAXLAB_SIM_FAULTS: unknown {key!r}; e.g. 'rate=0.05,seed=3,kinds=drop+delay'"
            )
    return options


class FaultyEndpoint:
    """A byte endpoint whose replies are spoiled at ``rate`` (per reply), seeded."""

    def __init__(
        self,
        endpoint: Any,
        rate: float = 0.01,
        seed: int = 0,
        kinds: tuple[str, ...] = ("drop", "garble", "delay", "disconnect"),
        disconnect_exchanges: int = 3,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown or not 0.0 <= rate <= 1.0:
            raise ValueError(f"kinds must be among {KINDS} and 0 <= rate <= 1, got {kinds}, {rate}")
        self.endpoint = endpoint
        self.rate = rate
        self.kinds = kinds
        self.disconnect_exchanges = disconnect_exchanges
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._late = b""
        self._down = 0

    def __getattr__(self, name: str) -> Any:  # the wrapped simulator's state, for tests
        return getattr(self.endpoint, name)

    @property
    def injected(self) -> int:
        return sum(self.counts.values())

    def receive(self, data: bytes) -> None:
        if self._down > 0:
            self._down -= 1
            return  # the link is down: the instrument never hears it
        self.endpoint.receive(data)

    def take_output(self) -> bytes:
        out = self.endpoint.take_output()
        late, self._late = self._late, b""
        if not out:
            return late
        if self._rng.random() >= self.rate:
            return late + out
        kind = self._rng.choices(self.kinds, weights=[WEIGHTS[k] for k in self.kinds])[0]
        self.counts[kind] += 1
        INJECTED[kind] += 1
        if kind == "drop":
            return late
        if kind == "garble":
            i = self._rng.randrange(len(out))
            return late + out[:i] + b"\xff" + out[i + 1 :]
        if kind == "delay":
            self._late = out
            return late
        if kind == "disconnect":
            self._down = self.disconnect_exchanges
            return late
        errors = getattr(self.endpoint, "errors", None)  # firmware: an error in the queue
        if isinstance(errors, list):
            errors.append((-363, "Input buffer overrun"))
        return late + out
