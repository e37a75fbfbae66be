"""LMCT conversion kinetics of the Ni intermediate (closed form).

The rate law ``du/dt = -k(T) exp(-beta (1 - u)) u`` separates: with the Arrhenius-weighted time
``tau = int k(T(t)) dt`` one has ``E1(beta u) = E1(beta u0) + exp(-beta) tau`` where ``E1`` is the
exponential integral. Any temperature history therefore reduces to one integral of ``k`` and one
inversion of ``E1``, so a rest of any length costs O(1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.special import exp1

R_J_MOL_K = 8.314462618
T_REF_K = 413.15
_GL_X = (-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526)
_GL_W = (0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538)


def rate_constant(k413_per_s: float, Ea_kJ_mol: float, temperature_C: float) -> float:
    """Arrhenius rate constant k(T) in 1/s."""
    t_k = temperature_C + 273.15
    return k413_per_s * math.exp(-Ea_kJ_mol * 1e3 / R_J_MOL_K * (1.0 / t_k - 1.0 / T_REF_K))


def arrhenius_integral(
    k413_per_s: float,
    Ea_kJ_mol: float,
    times_s: Sequence[float],
    temperatures_C: Sequence[float],
) -> float:
    """Integrate k(T(t)) dt over a piecewise-linear temperature history.

    Parameters
    ----------
    k413_per_s, Ea_kJ_mol : float
        Arrhenius parameters.
    times_s : sequence of float
        Increasing time points (s).
    temperatures_C : sequence of float
        Temperature at each time point; linear in between.

    Returns
    -------
    float
        ``int k dt`` (dimensionless).
    """
    if len(times_s) != len(temperatures_C) or len(times_s) < 2:
        raise ValueError("times_s and temperatures_C need the same length (>= 2)")
    total = 0.0
    for i in range(len(times_s) - 1):
        t0, t1 = float(times_s[i]), float(times_s[i + 1])
        c0, c1 = float(temperatures_C[i]), float(temperatures_C[i + 1])
        if t1 < t0:
            raise ValueError("times_s must be non-decreasing")
        if t1 == t0:
            continue
        if c0 == c1:
            total += rate_constant(k413_per_s, Ea_kJ_mol, c0) * (t1 - t0)
            continue
        n = max(1, math.ceil(abs(c1 - c0) / 2.0))  # sub-intervals of <= 2 K, 4-point Gauss
        h = (t1 - t0) / n
        for j in range(n):
            a = t0 + j * h
            for x, w in zip(_GL_X, _GL_W, strict=True):
                t = a + 0.5 * h * (x + 1.0)
                temp = c0 + (c1 - c0) * (t - t0) / (t1 - t0)
                total += 0.5 * h * w * rate_constant(k413_per_s, Ea_kJ_mol, temp)
    return total


def advance_u(u0: float, ktau: float, beta: float) -> float:
    """Advance the reduced intermediate ``u`` by an Arrhenius-weighted time ``ktau``.

    Parameters
    ----------
    u0 : float
        Starting value (>= 0).
    ktau : float
        ``int k dt`` over the interval.
    beta : float
        Self-slowing exponent.

    Returns
    -------
    float
        ``u`` at the end of the interval (exact solution of the rate law).
    """
    if u0 <= 0.0 or ktau <= 0.0:
        return max(u0, 0.0)
    g = math.exp(-beta * (1.0 - u0))
    eps = ktau * g * (1.0 + beta * u0)
    if eps < 1e-4:  # second-order Taylor, error ~ eps^3
        r = g * u0
        return u0 - r * ktau + 0.5 * r * g * (1.0 + beta * u0) * ktau * ktau
    if beta == 0.0:
        return u0 * math.exp(-ktau)
    target = exp1(beta * u0) + math.exp(-beta) * ktau
    # solve E1(beta e^y) = target for y = ln u; f(y) is convex and decreasing
    y_hi = math.log(u0)
    y_lo = y_hi - 1.0
    while exp1(beta * math.exp(y_lo)) < target:
        y_lo -= 2.0 * (y_hi - y_lo)
        if y_lo < -700.0:
            return 0.0
    y = y_lo
    for _ in range(100):
        z = beta * math.exp(y)
        f = exp1(z) - target
        if f > 0.0:
            y_lo = y
        else:
            y_hi = y
        if abs(f) < 1e-14 * target or y_hi - y_lo < 1e-15:
            break
        y_new = y + f / math.exp(-z)
        if not (y_lo < y_new < y_hi):
            y_new = 0.5 * (y_lo + y_hi)
        y = y_new
    return math.exp(y)
