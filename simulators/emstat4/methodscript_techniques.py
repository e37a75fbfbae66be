"""The measurement loops of the MethodSCRIPT interpreter: one generator per technique
(``meas_loop_ca``, ``_cv``, ``_eis`` ...) yielding each sample's script time."""

from __future__ import annotations

import cmath
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

from simulators.emstat4.methodscript_spec import (
    GALVANOSTAT_MODE,
    MEAS_LOOPS,
    POTENTIOSTAT_MODES,
    MeasLoop,
    ScriptError,
)
from simulators.emstat4.methodscript_state import _SAMPLE, _SCAN_END, _SCAN_START, _Break, _State


class _Techniques(_State):
    """Measurement loops (``meas_loop_*``) of :class:`simulators.emstat4.methodscript.Interpreter`."""

    def meas_loop(self, node: MeasLoop) -> Iterator[float]:
        hw, line, kind = self.hw, node.line, node.kind
        self.line = line
        spec = MEAS_LOOPS[kind]
        n_out = len(spec.outputs)
        params = [self.value(a, line) for a in node.args[n_out:]]
        if spec.mode == "ocp":
            if hw.cell_is_on:
                raise ScriptError(0x0014, line)
        else:
            allowed = POTENTIOSTAT_MODES if spec.mode == "potentiostat" else (GALVANOSTAT_MODE,)
            if hw.mode not in allowed:
                raise ScriptError(0x0023, line)
            if not hw.cell_is_on:
                raise ScriptError(0x4027, line)
        technique = getattr(self, "_t_" + kind)(node, params, line)
        first = next(technique, None)  # argument errors are raised before M is sent
        self.emit("M" + spec.technique_id)
        self.scopes.append("*")
        self.in_meas = True
        scan = 0
        try:
            for item in itertools.chain(() if first is None else (first,), technique):
                if item is _SAMPLE:
                    yield from self.block(node.body)
                    self.line = line
                elif item is _SCAN_START:
                    self.emit(f"C{scan:04X}")
                    self.scopes.append("-")
                    scan += 1
                elif item is _SCAN_END:
                    self.emit(self.scopes.pop())
                else:
                    item = max(item, self.t)  # a wait in the body delays the next sample
                    yield item
                    hw.advance(item)
                    self.t = item
        except _Break:
            pass
        finally:
            hw.end_loop()
        if self.scopes[-1] == "-":  # a breakloop inside a scan
            self.emit(self.scopes.pop())
        self.in_meas = False
        self.emit(self.scopes.pop())

    def _out(self, node: MeasLoop, values: list[float], metas: list[tuple[int, int] | None]) -> None:
        spec = MEAS_LOOPS[node.kind]
        for token, vtype, value, meta in zip(node.args, spec.outputs, values, metas, strict=False):
            self._set(token, value, False, vtype)
            if meta is not None and token in self.vals:
                self.meta[token] = meta

    def _at_current(self, node: MeasLoop, when: float, current: float) -> Iterator[Any]:
        """One galvanostatic point: apply ``current`` until ``when``, measure, output."""
        self.hw.apply_current(current)
        yield when
        voltage, measured = self.hw.measure()
        self._out(
            node, [voltage, measured], [self._potential_meta(voltage), self.hw.applied_metadata(measured)]
        )
        yield _SAMPLE

    def _at_potential(self, node: MeasLoop, when: float, e: float) -> Iterator[Any]:
        """One potentiostatic point: apply ``e`` until ``when``, measure, output."""
        self.hw.apply_voltage(e)
        yield when
        current, meta = self._current(self.hw.measure()[1])
        self._out(node, [e, current], [None, meta])
        yield _SAMPLE

    def _timed(self, dt: float, run: float, line: int) -> Iterator[float]:
        if dt <= 0 or run <= 0:
            raise ScriptError(0x4204, line)
        start = self.t
        n = int(math.floor(run / dt + 1e-9))
        for k in range(1, n + 1):
            yield start + k * dt

    def _t_cp(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        current, dt, run = p
        if abs(current) > self.hw.max_current_A:
            raise ScriptError(0x4205, line)
        for when in self._timed(dt, run, line):
            yield from self._at_current(node, when, current)

    def _t_ocp(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        dt, run = p
        for when in self._timed(dt, run, line):
            self.hw.rest()
            yield when
            voltage = self.hw.measure()[0]
            self._out(node, [voltage], [self._potential_meta(voltage)])
            yield _SAMPLE

    def _t_ca(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        e, dt, run = p
        self.hw.check_potential(e, line)
        for when in self._timed(dt, run, line):
            yield from self._at_potential(node, when, e)

    def _sweep_points(self, vertices: list[float], step: float) -> list[float]:
        points: list[float] = []
        for i, (a, b) in enumerate(zip(vertices[:-1], vertices[1:], strict=True)):
            n = max(1, int(round(abs(b - a) / step)))
            points += [a + (b - a) * k / n for k in range(0 if i == 0 else 1, n + 1)]
        return points

    def _check_sweep(self, vertices: list[float], step: float, rate: float, line: int) -> None:
        if step <= 0 or rate <= 0:
            raise ScriptError(0x4204, line)
        for v in vertices:
            self.hw.check_potential(v, line)

    def _t_lsv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, rate = p
        yield from self._t_scans(node, [begin, end], step, rate, 1, False, line)

    def _t_cv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, v1, v2, step, rate = p
        nscans_token = node.nscans
        nscans = 1 if nscans_token is None else int(self.value(nscans_token, line))
        if nscans < 1:
            raise ScriptError(0x4204, line)
        yield from self._t_scans(node, [begin, v1, v2, begin], step, rate, nscans,
                                 nscans_token is not None, line)  # fmt: skip

    def _t_scans(
        self, node: MeasLoop, vertices: list[float], step: float, rate: float, nscans: int,
        framed: bool, line: int,
    ) -> Iterator[Any]:  # fmt: skip
        self._check_sweep(vertices, step, rate, line)
        dt = step / rate
        points = self._sweep_points(vertices, step)
        t = self.t
        for _ in range(nscans):
            if framed:
                yield _SCAN_START
            for e in points:
                t += dt
                yield from self._at_potential(node, t, e)
            if framed:
                yield _SCAN_END

    def _t_lsp(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, rate = p
        if step <= 0 or rate <= 0:
            raise ScriptError(0x4204, line)
        if max(abs(begin), abs(end)) > self.hw.max_current_A:
            raise ScriptError(0x4205, line)
        t = self.t
        for current in self._sweep_points([begin, end], step):
            t += step / rate
            yield from self._at_current(node, t, current)

    def _staircase(self, begin: float, end: float, step: float, line: int) -> list[float]:
        if step <= 0:
            raise ScriptError(0x4204, line)
        self.hw.check_potential(begin, line)
        self.hw.check_potential(end, line)
        return self._sweep_points([begin, end], step)

    def _hold(self, e: float, until: float) -> Iterator[float]:
        """Apply ``e`` until script time ``until`` (then the caller measures)."""
        self.hw.apply_voltage(e)
        yield until

    def _pulse_period(self, step: float, t_pulse: float, rate: float, line: int) -> float:
        """The period (s) of a pulse technique's staircase; its pulse must fit in it."""
        if rate <= 0 or t_pulse <= 0:
            raise ScriptError(0x4204, line)
        period = step / rate
        if t_pulse >= period:
            raise ScriptError(0x4205, line)
        return period

    def _pulses(
        self, node: MeasLoop, levels: list[float], period: float, t_pulse: float,
        base: Callable[[float], float], pulse: Callable[[float], float], differential: bool,
    ) -> Iterator[Any]:  # fmt: skip
        """Each level: ``base(e)`` until the pulse, then ``pulse(e)`` for ``t_pulse``; the current
        at the end of the pulse (less the one before it, if ``differential``)."""
        t = self.t
        for e in levels:
            yield from self._hold(base(e), t + period - t_pulse)
            before = self.hw.measure()[1] if differential else 0.0
            t += period
            yield from self._hold(pulse(e), t)
            current, meta = self._current(self.hw.measure()[1] - before)
            self._out(node, [e, current], [None, meta])
            yield _SAMPLE

    def _t_dpv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, e_pulse, t_pulse, rate = p
        levels = self._staircase(begin, end, step, line)
        period = self._pulse_period(step, t_pulse, rate, line)
        yield from self._pulses(node, levels, period, t_pulse, lambda e: e, lambda e: e + e_pulse, True)

    def _t_npv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, t_pulse, rate = p
        levels = self._staircase(begin, end, step, line)
        period = self._pulse_period(step, t_pulse, rate, line)
        yield from self._pulses(node, levels, period, t_pulse, lambda e: begin, lambda e: e, False)

    def _t_swv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, amplitude, freq = p
        levels = self._staircase(begin, end, step, line)
        if freq <= 0:
            raise ScriptError(0x4204, line)
        half = 0.5 / freq
        t = self.t
        for e in levels:
            t += half
            yield from self._hold(e + amplitude, t)
            forward = self.hw.measure()[1]
            t += half
            yield from self._hold(e - amplitude, t)
            reverse = self.hw.measure()[1]
            diff, meta = self._current(forward - reverse)
            fwd, meta_f = self._current(forward)
            rev, meta_r = self._current(reverse)
            self._out(node, [e, diff, fwd, rev], [None, meta, meta_f, meta_r])
            yield _SAMPLE

    def _t_pad(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        e_dc, e_pulse, t_pulse, dt, run, mode = p
        if int(mode) not in (1, 2, 3):
            raise ScriptError(0x0007, line)
        if t_pulse <= 0 or t_pulse >= dt:
            raise ScriptError(0x4205, line)
        self.hw.check_potential(e_dc, line)
        self.hw.check_potential(e_pulse, line)
        for when in self._timed(dt, run, line):
            yield from self._hold(e_dc, when - t_pulse)
            i_dc = self.hw.measure()[1]
            yield from self._hold(e_pulse, when)
            i_pulse = self.hw.measure()[1]
            raw = {1: i_dc, 2: i_pulse, 3: i_pulse - i_dc}[int(mode)]
            current, meta = self._current(raw)
            self._out(node, [e_pulse if int(mode) == 2 else e_dc, current], [None, meta])
            yield _SAMPLE
        self.hw.apply_voltage(e_dc)

    def _frequencies(self, f_start: float, f_end: float, n: float, line: int) -> list[float]:
        count = int(n)
        if f_start <= 0 or f_end <= 0 or count < 1:
            raise ScriptError(0x4204, line)
        if count == 1:
            return [f_start]
        ratio = math.log(f_end / f_start) / (count - 1)
        return [f_start * math.exp(ratio * k) for k in range(count)]

    @staticmethod
    def _eis_time(f: float) -> float:
        """Seconds one frequency takes: three periods, at least 0.1 s (simulator's choice)."""
        return max(3.0 / f, 0.1)

    def _t_eis(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        amplitude, f_start, f_end, n, e_dc = p
        self.hw.check_potential(e_dc, line)
        yield from self._impedance_scan(node, amplitude, f_start, f_end, n, line,
                                        lambda: self.hw.apply_voltage(e_dc))  # fmt: skip

    def _t_geis(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        amplitude, f_start, f_end, n, i_dc = p
        if abs(i_dc) + abs(amplitude) > self.hw.max_current_A:
            raise ScriptError(0x4205, line)
        yield from self._impedance_scan(node, amplitude, f_start, f_end, n, line,
                                        lambda: self.hw.apply_current(i_dc))  # fmt: skip

    def _impedance_scan(
        self, node: MeasLoop, amplitude: float, f_start: float, f_end: float, n: float, line: int,
        dc: Callable[[], None],
    ) -> Iterator[Any]:  # fmt: skip
        tdd = node.options.get("eis_tdd")
        t = self.t
        for f in self._frequencies(f_start, f_end, n, line):
            dc()
            t += self._eis_time(f)
            yield t
            z = self.hw.impedance(f)
            self._out(node, [f, z.real, z.imag], [None, None, None])
            if tdd is not None:
                self._fill_tdd(tdd, f, amplitude, z, node.kind == "geis", line)
            yield _SAMPLE

    def _fill_tdd(self, tdd: list[str], f: float, amplitude: float, z: complex, galvanostatic: bool,
                  line: int) -> None:  # fmt: skip
        e_name, i_name, n_out, fs_out, _ = tdd
        e_arr, i_arr = self.arrays[e_name], self.arrays[i_name]
        n = min(len(e_arr), len(i_arr), 64)
        fs = n * f  # one period in n samples (simulator's choice)
        peak = amplitude * math.sqrt(2.0)
        for k in range(n):
            phase = 2 * math.pi * k / n
            if galvanostatic:
                i_t = peak * math.sin(phase)
                e_t = abs(z) * peak * math.sin(phase + cmath.phase(z))
            else:
                e_t = peak * math.sin(phase)
                i_t = peak / abs(z) * math.sin(phase - cmath.phase(z))
            e_arr[k], i_arr[k] = e_t, i_t
        self.array_types[e_name], self.array_types[i_name] = "ce", "cf"
        self._set(n_out, float(n), True)
        self._set(fs_out, fs, False, "cg")

    def _t_acv(self, node: MeasLoop, p: list[float], line: int) -> Iterator[Any]:
        begin, end, step, rate, amplitude, freq = p
        levels = self._staircase(begin, end, step, line)
        if rate <= 0 or freq <= 0:
            raise ScriptError(0x4204, line)
        t = self.t
        for e in levels:
            t += step / rate
            yield from self._hold(e, t)
            dc_current, meta = self._current(self.hw.measure()[1])
            z = self.hw.impedance(freq)
            self._out(node, [e, dc_current, amplitude, amplitude / abs(z), z.real, z.imag],
                      [None, meta, None, None, None, None])  # fmt: skip
            yield _SAMPLE
