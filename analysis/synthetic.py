"""Synthetic run tables with known answers (for tests, benchmarks and demos)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis import schema as S

#: A Li-rich discharge: Ni pseudo-plateau 4.1 -> 3.6 V, then O plateau 2.4 -> 2.0 V.
#: Inside the windows: Ni (4.5-2.5 V) 75 mAh/g, O (2.5-1.85 V) 150 mAh/g.
DISCHARGE_Q = (0.0, 10.0, 75.0, 85.0, 225.0, 235.0)
DISCHARGE_V = (4.8, 4.5, 3.6, 2.5, 2.0, 1.85)
CHARGE_Q = (0.0, 120.0, 280.0)
CHARGE_V = (3.0, 4.4, 4.6)


def cc(
    q_knots: Sequence[float], v_knots: Sequence[float], i_mA_g: float = 20.0, n: int = 500
) -> dict[str, Any]:
    """A constant-current part following a piecewise-linear V(Q) (Q in mAh/g, magnitudes)."""
    return {"kind": "cc", "q": q_knots, "v": v_knots, "i": i_mA_g, "n": n}


def rest(
    duration_s: float, v_start: float, v_end: float, n: int = 100, tau_s: float | None = None
) -> dict[str, Any]:
    """A rest whose voltage relaxes exponentially from ``v_start`` towards ``v_end``."""
    return {"kind": "rest", "duration": duration_s, "v": (v_start, v_end), "n": n, "tau": tau_s}


def synthetic_run(
    parts: Sequence[dict[str, Any]],
    active_mass_g: float = 0.007,
    temperature_C: float = 25.0,
    noise_V: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Build a stored-run table from parts made by :func:`cc` and :func:`rest`.

    A ``cc`` part with positive ``i_mA_g`` is a charge, negative a discharge; its time
    follows from capacity and current; the knots are among the points, so the sampled curve
    is exactly the piecewise-linear one. Each part is one step.

    Parameters
    ----------
    parts : sequence of dict
        The steps, in order.
    active_mass_g : float
        Active mass (for ``current_A``).
    temperature_C : float
        Constant temperature.
    noise_V : float
        Gaussian voltage noise (standard deviation).
    seed : int
        Noise seed.

    Returns
    -------
    DataFrame
        Stored-run schema.
    """
    rng = np.random.default_rng(seed)
    frames = []
    t0 = 0.0
    for k, part in enumerate(parts):
        n = int(part["n"])
        if part["kind"] == "cc":
            qk = np.asarray(part["q"], float)
            q = np.union1d(np.linspace(qk[0], qk[-1], n), qk)  # knots sampled: exact V(Q)
            n = q.size
            v = np.interp(q, qk, np.asarray(part["v"], float))
            i_mA_g = float(part["i"])
            t = t0 + (q - q[0]) / abs(i_mA_g) * 3600.0
            cap = np.sign(i_mA_g) * (q - q[0])
            stype = "cc"
        else:
            t = t0 + np.linspace(0.0, float(part["duration"]), n)
            v0, v1 = part["v"]
            tau = part["tau"] or max(float(part["duration"]) / 5.0, 1e-9)
            v = v1 + (v0 - v1) * np.exp(-(t - t0) / tau)
            i_mA_g = 0.0
            cap = np.zeros(n)
            stype = "rest"
        frames.append(
            pd.DataFrame(
                {
                    S.TIME: t,
                    S.VOLTAGE: v + (rng.normal(0.0, noise_V, n) if noise_V else 0.0),
                    S.CURRENT: np.full(n, i_mA_g * active_mass_g / 1000.0),
                    S.SPECIFIC_CURRENT: np.full(n, i_mA_g),
                    S.CAPACITY: cap,
                    S.STEP: np.full(n, k, dtype=np.int64),
                    S.STEP_TYPE: stype,
                    S.TEMPERATURE: np.full(n, temperature_C),
                }
            )
        )
        t0 = float(t[-1]) + 1.0
    return pd.concat(frames, ignore_index=True)


def standard_cycle(
    ni_plateau_mAh_g: float = 70.0, o_plateau_mAh_g: float = 150.0, ocv_V: float = 4.0, n: int = 500
) -> list[dict[str, Any]]:
    """Charge, 15 min rest, discharge with chosen plateau capacities (Ni and O windows)."""
    # DISCHARGE_V knots: 4.8 -> 4.5 (10 mAh/g, outside both windows), 4.5 -> 3.6 -> 2.5
    # (Ni window), 2.5 -> 2.0 -> 1.85 (O window)
    end_ni = 10.0 + ni_plateau_mAh_g
    qd = (0.0, 10.0, end_ni - 10.0, end_ni, end_ni + o_plateau_mAh_g - 10.0, end_ni + o_plateau_mAh_g)
    return [
        cc(CHARGE_Q, CHARGE_V, 20.0, n),
        rest(900.0, CHARGE_V[-1], ocv_V, 50),
        cc(qd, DISCHARGE_V, -20.0, n),
    ]
