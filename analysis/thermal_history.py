"""A sample's thermal history (temperature against time, from the end of its charge to its
discharge) and its quadrature for rate laws integrated over it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.kinetics import T_REF_K


@dataclass(frozen=True)
class ThermalHistory:
    """What one sample's temperature was, from the end of its charge to its discharge.

    ``times_s`` (increasing, absolute clock seconds) and ``temperatures_C``, linear in between.
    """

    times_s: np.ndarray
    temperatures_C: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.times_s, float)
        c = np.asarray(self.temperatures_C, float)
        if t.shape != c.shape or t.size < 2 or np.any(np.diff(t) < 0) or not np.all(np.isfinite(c)):
            raise ValueError(
                "a thermal history needs >= 2 increasing times and finite temperatures of the same "
                "length, e.g. ThermalHistory(np.array([0.0, 3600.0]), np.array([25.0, 25.0]))"
            )
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "temperatures_C", c)

    @property
    def is_isothermal(self) -> bool:
        """True when the temperature never changed (a sample that stayed on the bench)."""
        return bool(np.ptp(self.temperatures_C) == 0)

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1] - self.times_s[0])

    def quadrature(self, max_step_K: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Nodes ``1/T - 1/413.15 K`` and weights (s) integrating any ``f(T)`` over the history
        (midpoint rule on sub-intervals of at most ``max_step_K``)."""
        xs: list[np.ndarray] = []
        ws: list[np.ndarray] = []
        t, c = self.times_s, self.temperatures_C
        for i in range(t.size - 1):
            dt = t[i + 1] - t[i]
            if dt <= 0:
                continue
            n = max(1, int(np.ceil(abs(c[i + 1] - c[i]) / max_step_K)))
            mid = c[i] + (c[i + 1] - c[i]) * (np.arange(n) + 0.5) / n
            xs.append(1.0 / (mid + 273.15) - 1.0 / T_REF_K)
            ws.append(np.full(n, dt / n))
        if not xs:
            return np.zeros(1), np.zeros(1)
        x, w = np.concatenate(xs), np.concatenate(ws)
        # merge equal temperatures (long holds and bench waits) to keep fits fast
        key = np.round(x, 12)
        uniq, inv = np.unique(key, return_inverse=True)
        return uniq, np.bincount(inv, weights=w)


def history_from_record(
    start_s: float,
    end_s: float,
    bench_C: float,
    oven_times_s: Sequence[float] | np.ndarray = (),
    oven_C: Sequence[float] | np.ndarray = (),
    transfers: Sequence[tuple[float, str]] = (),
) -> ThermalHistory:
    """A sample's history from what a campaign records.

    Parameters
    ----------
    start_s, end_s : float
        When the powder was ready (end of charge, washed and dried) and when the sample's
        discharge started (clock seconds).
    bench_C : float
        Bench (room) temperature, where the sample is whenever it is not in the oven.
    oven_times_s, oven_C : array_like
        The oven's temperature log.
    transfers : sequence of (time_s, location)
        Each move of the sample; ``"bench"`` takes it out of the oven, any other location
        (an oven's name) puts it in.

    Returns
    -------
    ThermalHistory
    """
    ot = np.asarray(oven_times_s, float)
    oc = np.asarray(oven_C, float)
    order = np.argsort(ot, kind="stable")
    ot, oc = ot[order], oc[order]
    times = [float(start_s)]
    temps = [float(bench_C)]
    inside_since: float | None = None
    for when, where in sorted(transfers, key=lambda m: m[0]):
        when = min(max(float(when), float(start_s)), float(end_s))
        if where != "bench" and inside_since is None:
            inside_since = when
        elif where == "bench" and inside_since is not None:
            if ot.size == 0:
                raise ValueError("the sample went into an oven but there is no oven log")
            inner = (ot > inside_since) & (ot < when)
            seg_t = np.concatenate([[inside_since], ot[inner], [when]])
            seg_c = np.interp(seg_t, ot, oc)
            times += [inside_since, *seg_t, when]
            temps += [float(bench_C), *seg_c, float(bench_C)]
            inside_since = None
    if inside_since is not None:
        raise ValueError("the sample went into an oven and never came out before its discharge")
    times.append(float(end_s))
    temps.append(float(bench_C))
    return ThermalHistory(np.asarray(times), np.asarray(temps))
