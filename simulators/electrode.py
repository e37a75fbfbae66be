"""Parallel redox processes on charge/discharge branches.

Each process ``i`` has a monotone table ``Q_i(E)``: on charge the capacity it holds once the electrode
potential has reached ``E``; on discharge the capacity it still holds at ``E``. Passing a charge ``dq``
moves the electrode potential to the ``E`` where ``sum_i max(0, Q_i(E) - x_i) = dq`` (charge) or
``sum_i max(0, x_i - Q_i(E)) = dq`` (discharge): the process at the lowest (charge) or highest
(discharge) potential is driven first and processes at equal potential share the current.

The tables of a material file are knots; they are interpolated with a monotone cubic (PCHIP) onto a
fine shared grid, so voltage curves are smooth and dQ/dV shows peaks rather than rectangles. The
fine tables are piecewise linear, so the solution is exact and found by walking segments.
Discharge tables may be fractions of a reference amount (:meth:`BranchSet.scaled`): a process then
releases whatever it held at the start of the discharge along the same potential profile.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np
from scipy.interpolate import PchipInterpolator

_EMPTY = 1e-9
_TAIL_V_PER_MAH_G = 0.5  # beyond the table ends the potential moves steeply (cut-offs always reached)
_FINE_V = 0.005  # spacing of the fine grid the knots are interpolated onto


class BranchSet:
    """A set of processes on one direction (charge or discharge) with a shared potential grid.

    Parameters
    ----------
    tables : list of (list of float, list of float)
        ``(E_V, Q_mAh_g)`` knots per process, both strictly increasing.
    """

    def __init__(self, tables: list[tuple[list[float], list[float]]]) -> None:
        lo = min(float(ev[0]) for ev, _ in tables)
        hi = max(float(ev[-1]) for ev, _ in tables)
        n = max(2, int(round((hi - lo) / _FINE_V)) + 1)
        knots = {float(e) for ev, _ in tables for e in ev}
        grid = np.unique(np.concatenate([np.linspace(lo, hi, n), np.asarray(sorted(knots))]))
        self.grid_np = grid
        self.grid: list[float] = [float(v) for v in grid]
        self.q: list[list[float]] = []
        self.q_np: list[np.ndarray] = []
        for ev, qv in tables:
            e_k, q_k = np.asarray(ev, float), np.asarray(qv, float)
            qg = np.empty_like(grid)
            inside = (grid >= e_k[0]) & (grid <= e_k[-1])
            qg[inside] = PchipInterpolator(e_k, q_k)(grid[inside])
            # outside the table range keep a small slope so every Q_i is strictly increasing
            below = grid < e_k[0]
            qg[below] = q_k[0] - 1e-6 * (e_k[0] - grid[below])
            above = grid > e_k[-1]
            slope_hi = (q_k[-1] - q_k[-2]) / (e_k[-1] - e_k[-2])
            qg[above] = q_k[-1] + slope_hi * (grid[above] - e_k[-1])
            qg = np.maximum.accumulate(qg)
            self.q_np.append(qg)
            self.q.append([float(v) for v in qg])
        self.n = len(tables)

    def scaled(self, factors: tuple[float, ...]) -> BranchSet:
        """A copy whose process ``i`` holds ``factors[i]`` times its table."""
        out = object.__new__(BranchSet)
        out.grid_np, out.grid, out.n = self.grid_np, self.grid, self.n
        out.q_np = [q * f for q, f in zip(self.q_np, factors, strict=True)]
        out.q = [[float(v) for v in q] for q in out.q_np]
        return out

    def q_at(self, i: int, e: float) -> float:
        """Capacity of process ``i`` on this branch at potential ``e``."""
        g, q = self.grid, self.q[i]
        if e <= g[0]:
            return q[0] + (e - g[0]) / _TAIL_V_PER_MAH_G
        if e >= g[-1]:
            return q[-1] + (e - g[-1]) / _TAIL_V_PER_MAH_G
        j = bisect_right(g, e) - 1
        q0 = q[j]
        return q0 + (q[j + 1] - q0) * (e - g[j]) / (g[j + 1] - g[j])

    def e_of(self, i: int, x: float) -> float:
        """Potential at which process ``i`` holds capacity ``x`` (inverse of :meth:`q_at`)."""
        g, q = self.grid, self.q[i]
        if x <= q[0]:
            return g[0] + (x - q[0]) * _TAIL_V_PER_MAH_G
        if x >= q[-1]:
            return g[-1] + (x - q[-1]) * _TAIL_V_PER_MAH_G
        j = bisect_right(q, x) - 1
        while q[j + 1] == q[j]:  # flat stretch (table saturated): take its far end
            j += 1
        return g[j] + (g[j + 1] - g[j]) * (x - q[j]) / (q[j + 1] - q[j])


def _sum_active(bs: BranchSet, x: list[float], starts: list[float], e: float, up: bool) -> float:
    s = 0.0
    for i in range(bs.n):
        if up and e > starts[i]:
            s += bs.q_at(i, e) - x[i]
        elif not up and e < starts[i]:
            s += x[i] - bs.q_at(i, e)
    return s


def solve(
    bs: BranchSet, x: list[float], dq: float, up: bool, active: tuple[int, ...] | None = None
) -> tuple[float, list[float]]:
    """Pass a charge ``dq >= 0`` through the processes.

    Parameters
    ----------
    bs : BranchSet
        Branches for the present direction.
    x : list of float
        Capacity held by each process now (mAh/g).
    dq : float
        Charge passed (mAh/g, >= 0).
    up : bool
        True for charge (potential rises), False for discharge.
    active : tuple of int, optional
        Processes that may take current (default all).

    Returns
    -------
    (float, list of float)
        Electrode potential after passing ``dq`` and the new capacities.
    """
    idx = tuple(range(bs.n)) if active is None else active
    inf = float("inf")
    starts = [inf if up else -inf] * bs.n
    for i in idx:
        if up or x[i] > _EMPTY:  # an empty process cannot be reduced
            starts[i] = bs.e_of(i, x[i])
    e0 = min(starts) if up else max(starts)
    over = not up and e0 == -inf
    if over:  # everything empty: follow the steep tail of the first process
        starts[idx[0]] = bs.e_of(idx[0], x[idx[0]])
        e0 = starts[idx[0]]
    if dq <= 0.0:
        return e0, list(x)
    g = bs.grid
    ng = len(g)
    # walk the breakpoints beyond e0: grid points merged with the other processes' starts
    if up:
        others = sorted(s for s in starts if e0 < s < inf)
        k = bisect_right(g, e0)
    else:
        others = sorted((s for s in starts if -inf < s < e0), reverse=True)
        k = bisect_right(g, e0) - 1
        if k >= 0 and g[k] >= e0:
            k -= 1
    e_prev, s_prev = e0, 0.0
    e = None
    o = 0
    while True:
        if up:
            gp = g[k] if k < ng else inf
            op = others[o] if o < len(others) else inf
            if gp == inf and op == inf:
                break
            if op < gp:
                p, o = op, o + 1
            else:
                p, k = gp, k + 1
        else:
            gp = g[k] if k >= 0 else -inf
            op = others[o] if o < len(others) else -inf
            if gp == -inf and op == -inf:
                break
            if op > gp:
                p, o = op, o + 1
            else:
                p, k = gp, k - 1
        s_p = _sum_active(bs, x, starts, p, up)
        if s_p >= dq:
            e = e_prev + (p - e_prev) * (dq - s_prev) / (s_p - s_prev) if s_p > s_prev else p
            break
        e_prev, s_prev = p, s_p
    if e is None:  # beyond the grid: every active process follows its steep tail
        if up:
            n_act = sum(1 for i in idx if starts[i] < inf)
        else:  # only processes still holding something at the bottom of the grid share the tail
            n_act = sum(1 for i in idx if starts[i] > -inf and bs.q[i][0] > _EMPTY)
        step = (dq - s_prev) * _TAIL_V_PER_MAH_G / max(n_act, 1)
        e = e_prev + step if up else e_prev - step
    new = list(x)
    for i in idx:
        qi = bs.q_at(i, e)
        new[i] = max(x[i], qi) if up else max(0.0, min(x[i], qi))
    if over:
        # Discharging an empty electrode: the first process goes below empty along its tail and
        # remembers it, so the potential keeps falling however finely the time is sliced.
        new[idx[0]] = min(x[idx[0]], bs.q_at(idx[0], e))
    return e, new


def solve_many(
    bs: BranchSet, x: list[float], dq: np.ndarray, up: bool, active: tuple[int, ...]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Vectorised :func:`solve` for many charges from the same starting state.

    Valid for charges inside the table grid; entries beyond it fall back to :func:`solve`.
    """
    starts = {i: bs.e_of(i, x[i]) for i in active if up or x[i] > _EMPTY}
    empty = not starts
    if empty:  # everything empty: the first process follows its steep tail (as in solve)
        starts = {active[0]: bs.e_of(active[0], x[active[0]])}
    pts = np.unique(np.concatenate([bs.grid_np, np.asarray(list(starts.values()))]))
    s = np.zeros_like(pts)
    for i in starts:
        qi = np.interp(pts, bs.grid_np, bs.q_np[i])
        if up:
            s += np.where(pts > starts[i], qi - x[i], 0.0)
        else:
            s += np.where(pts < starts[i], x[i] - qi, 0.0)
    e0 = min(starts.values()) if up else max(starts.values())
    if up:
        keep = pts >= e0
        sp, ep = s[keep], pts[keep]
    else:
        keep = pts <= e0
        sp, ep = s[keep][::-1], pts[keep][::-1]
    sp = np.maximum.accumulate(sp)
    e = np.interp(dq, sp, ep)
    over = dq > sp[-1]
    if np.any(over):  # beyond the grid: every active process follows its steep tail (as in solve)
        n_act = len(starts) if up else sum(1 for i in starts if bs.q[i][0] > _EMPTY)
        step = (dq[over] - sp[-1]) * _TAIL_V_PER_MAH_G / max(n_act, 1)
        e[over] = ep[-1] + step if up else ep[-1] - step
    new = []
    for i in range(bs.n):
        if i in starts:
            qi = np.interp(e, bs.grid_np, bs.q_np[i])
            if up:
                new.append(np.maximum(x[i], qi))
            elif empty:  # below empty along the tail, remembered (see solve)
                new.append(np.minimum(x[i], [bs.q_at(i, float(v)) for v in e]))
            else:
                new.append(np.maximum(0.0, np.minimum(x[i], qi)))
        else:
            new.append(np.full_like(e, x[i]))
    return e, new
