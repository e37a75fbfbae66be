"""The simple commands of the MethodSCRIPT interpreter (variables, arrays, arithmetic, packages,
``send_string``, timers ...); the rest go to the simulated front end."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

from simulators.emstat4.methodscript_spec import (
    _FIELD,
    Cmd,
    ScriptError,
    format_number,
    split_element,
    to_int,
)
from simulators.emstat4.methodscript_state import _Abort, _Break, _State


class _Commands(_State):
    """Simple commands of :class:`simulators.emstat4.methodscript.Interpreter`."""

    _handler_map: dict[str, Callable[[list[str], int], None]]

    def command(self, node: Cmd) -> None:
        self.line = node.line
        try:
            handler = self._handler_map.get(node.name)
            if handler is not None:
                handler(node.args, node.line)
            else:
                a, line = node.args, node.line
                if node.name in ("set_range", "set_autoranging", "set_range_minmax"):
                    values: list[Any] = [a[0], *(self.value(x, line) for x in a[1:])]
                elif node.name == "cell_on":
                    values = [self.value(x[4:-1].strip(), line) for x in a]
                else:
                    values = [self.value(x, line) for x in a]
                self.hw.command(node.name, values, line)
        except ValueError as exc:
            raise ScriptError(0x0010 if "non-finite" in str(exc) else 0x0007, node.line) from exc
        except (OverflowError, ZeroDivisionError) as exc:
            raise ScriptError(0x0010, node.line) from exc

    @property
    def _handlers(self) -> dict[str, Callable[[list[str], int], None]]:
        try:
            return self.__handlers
        except AttributeError:
            self.__handlers: dict[str, Callable[[list[str], int], None]] = {
                "var": self._var, "array": self._array, "store_var": self._store_var,
                "copy_var": self._copy_var, "div_var": self._div_var,
                "log_var": self._log_var, "float_to_int": self._float_to_int,
                "int_to_float": self._int_to_float, "bit_inv_var": self._bit_inv,
                "alter_vartype": self._alter_vartype, "array_set": self._array_set,
                "array_get": self._array_get, "mean": self._mean, "linear_fit": self._linear_fit,
                "smooth": self._smooth, "peak_detect": self._peak_detect,
                "pck_start": self._pck_start, "pck_add": self._pck_add, "pck_end": self._pck_end,
                "send_string": self._send_string, "timer_start": self._timer_start,
                "timer_get": self._timer_get, "breakloop": self._breakloop, "abort": self._abort,
                "set_int": self._set_int, "set_script_output": self._set_script_output,
                "meas": self._meas, "notify_led": self._notify_led,
            }  # fmt: skip
            for name in self._ARITH:
                self.__handlers[name] = functools.partial(self._binary, name)
            for name in self._BITS:
                self.__handlers[name] = functools.partial(self._bitop, name)
            return self.__handlers

    def _var(self, a: list[str], line: int) -> None:
        self.vals[a[0]] = 0.0
        self.types[a[0]] = "aa"

    def _array(self, a: list[str], line: int) -> None:
        size = to_int(self.value(a[1], line))
        if size <= 0:
            raise ScriptError(0x4204, line)
        if size > 1 << 16:
            raise ScriptError(0x4205, line)
        self.arrays[a[0]] = [0.0] * size
        self.array_types[a[0]] = "aa"
        self.array_ints[a[0]] = set()

    def _store_var(self, a: list[str], line: int) -> None:
        self._set(a[0], self.value(a[1], line), self._is_int(a[1]), a[2] if len(a) == 3 else None)

    def _copy_var(self, a: list[str], line: int) -> None:
        self._set(a[1], self.value(a[0], line), self._is_int(a[0]), self._type_of(a[0]))

    _ARITH: dict[str, Callable[[float, float], float]] = {
        "add_var": lambda x, y: x + y, "sub_var": lambda x, y: x - y,
        "mul_var": lambda x, y: x * y, "pow_var": lambda x, y: float(x**y),
    }  # fmt: skip

    def _binary(self, name: str, a: list[str], line: int) -> None:
        x, y = self.value(a[0], line), self.value(a[1], line)
        result = self._ARITH[name](x, y)
        if isinstance(result, complex):
            raise ValueError("non-finite")
        integer = self._is_int(a[0]) and self._is_int(a[1]) and name != "pow_var"
        self._set(a[0], float(int(result)) if integer else result, integer)

    def _div_var(self, a: list[str], line: int) -> None:
        divisor = self.value(a[1], line)
        if divisor == 0:
            raise ScriptError(0x0028, line)
        if self._is_int(a[0]) and self._is_int(a[1]):
            self._set(a[0], float(int(self.value(a[0], line) / divisor)), True)
        else:
            self._set(a[0], self.value(a[0], line) / divisor, False)

    def _log_var(self, a: list[str], line: int) -> None:
        x = self.value(a[0], line)
        if x <= 0:
            raise ValueError("non-finite")
        self._set(a[0], math.log(x), False)

    def _float_to_int(self, a: list[str], line: int) -> None:
        self._set(a[0], float(to_int(self.value(a[0], line))), True)

    def _int_to_float(self, a: list[str], line: int) -> None:
        self._set(a[0], self.value(a[0], line), False)

    _BITS: dict[str, Callable[[int, int], int]] = {
        "bit_and_var": lambda x, y: x & y, "bit_or_var": lambda x, y: x | y,
        "bit_xor_var": lambda x, y: x ^ y, "bit_lsl_var": lambda x, y: (x << y) & 0xFFFFFFFF,
        "bit_lsr_var": lambda x, y: x >> y,
    }  # fmt: skip

    def _bitop(self, name: str, a: list[str], line: int) -> None:
        x, y = int(self.value(a[0], line)), int(self.value(a[1], line))
        if y < 0 and name in ("bit_lsl_var", "bit_lsr_var"):
            raise ScriptError(0x4200, line)
        self._set(a[0], float(self._BITS[name](x, y)), True)

    def _bit_inv(self, a: list[str], line: int) -> None:
        self._set(a[0], float(~int(self.value(a[0], line)) & 0xFFFFFFFF), True)

    def _alter_vartype(self, a: list[str], line: int) -> None:
        element = split_element(a[0])
        if element is not None:
            self.array_types[element[0]] = a[1]
        else:
            self.types[a[0]] = a[1]
            self.meta.pop(a[0], None)

    def _array_set(self, a: list[str], line: int) -> None:
        self._set(f"{a[0]}[{a[1]}]", self.value(a[2], line), self._is_int(a[2]), self._type_of(a[2]))

    def _array_get(self, a: list[str], line: int) -> None:
        token = f"{a[0]}[{a[1]}]"
        self._set(a[2], self.value(token, line), self._is_int(token), self._type_of(token))

    def _mean(self, a: list[str], line: int) -> None:
        values = self.arrays[a[0]]
        self._set(a[1], sum(values) / len(values), False, self.array_types.get(a[0]))

    def _linear_fit(self, a: list[str], line: int) -> None:
        xs, ys = self.arrays[a[0]], self.arrays[a[1]]
        n = min(len(xs), len(ys))
        mx, my = sum(xs[:n]) / n, sum(ys[:n]) / n
        sxx = sum((x - mx) ** 2 for x in xs[:n])
        if sxx == 0:
            raise ScriptError(0x0028, line)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs[:n], ys[:n], strict=True)) / sxx
        self._set(a[2], slope, False)
        self._set(a[3], my - slope * mx, False)

    def _smooth(self, a: list[str], line: int) -> None:
        src = self.arrays[a[0]]
        dst_name, level = a[-2], int(self.value(a[-1], line))
        n = len(src) if len(a) == 3 else int(self.value(a[1], line))
        dst = self.arrays[dst_name]
        if level < 0 or not 0 <= n <= min(len(src), len(dst)):
            raise ScriptError(0x4205, line)
        window = src[:n]
        out = [sum(window[max(0, k - level) : k + level + 1]) / len(window[max(0, k - level) : k + level + 1])
               for k in range(n)]  # fmt: skip
        dst[:n] = out
        self.array_types[dst_name] = self.array_types.get(a[0], "aa")

    def _peak_detect(self, a: list[str], line: int) -> None:
        y = self.arrays[a[0]][: int(self.value(a[1], line))]
        idx_arr, h_arr = self.arrays[a[2]], self.arrays[a[3]]
        sign = -1.0 if int(self.value(a[4], line)) else 1.0
        min_height = self.value(a[5], line)
        peaks: list[tuple[float, int]] = []
        for k in range(1, len(y) - 1):
            v = sign * y[k]
            if v > sign * y[k - 1] and v >= sign * y[k + 1]:
                left = min(sign * y[j] for j in range(0, k + 1))
                right = min(sign * y[j] for j in range(k, len(y)))
                prominence = v - max(left, right)
                if prominence >= min_height:
                    peaks.append((prominence, k))
        peaks.sort(reverse=True)
        for j in range(len(idx_arr)):
            if j < len(peaks):
                idx_arr[j], h_arr[j] = float(peaks[j][1]), sign * peaks[j][0]
            else:
                idx_arr[j], h_arr[j] = -1.0, 0.0
        self.array_ints.setdefault(a[2], set()).update(range(len(idx_arr)))
        self.array_types[a[3]] = self.array_types.get(a[0], "aa")

    def _pck_start(self, a: list[str], line: int) -> None:
        if self.pck is not None:
            raise ScriptError(0x401B, line)
        self.pck = []

    def _pck_add(self, a: list[str], line: int) -> None:
        if self.pck is None:
            raise ScriptError(0x401B, line)
        self.pck.append(self._encode_var(a[0], line))

    def _pck_end(self, a: list[str], line: int) -> None:
        if not self.pck:
            raise ScriptError(0x401B, line)
        self.emit("P" + ";".join(self.pck))
        self.pck = None

    def _send_string(self, a: list[str], line: int) -> None:
        text, fmt = a
        if fmt:

            def field_text(m: re.Match[str]) -> str:
                token = m[1].strip()
                return format_number(self.value(token, line), self._is_int(token))

            text = _FIELD.sub(field_text, text)
        self.emit("T" + text)

    def _notify_led(self, a: list[str], line: int) -> None:
        self.value(a[0], line)  # the LED state: nothing to simulate

    def _timer_start(self, a: list[str], line: int) -> None:
        self.timer0 = self.t

    def _timer_get(self, a: list[str], line: int) -> None:
        self._set(a[0], self.t - self.timer0, False, "eb")

    def _breakloop(self, a: list[str], line: int) -> None:
        raise _Break

    def _abort(self, a: list[str], line: int) -> None:
        raise _Abort

    def _set_int(self, a: list[str], line: int) -> None:
        period = self.value(a[0], line)
        if period <= 0:
            raise ScriptError(0x4204, line)
        self.int_period = period
        self.int_next = self.t + period

    def _set_script_output(self, a: list[str], line: int) -> None:
        target = int(self.value(a[0], line))
        if target & 2:
            raise ScriptError(0x001B, line)  # file storage is not simulated
        if target not in (0, 1):
            raise ScriptError(0x0007, line)
        self.output_enabled = bool(target)

    def _meas(self, a: list[str], line: int) -> None:
        duration = self.value(a[0], line)
        if duration <= 0:
            raise ScriptError(0x4204, line)
        voltage, current = self.hw.measure()
        if a[2] == "ab":
            self._set(a[1], voltage, False, "ab")
            self.meta[a[1]] = self._potential_meta(voltage)
        elif a[2] == "ba":
            self._set(a[1], self._current(current)[0], False, "ba")
        else:
            raise ScriptError(0x0007, line)
