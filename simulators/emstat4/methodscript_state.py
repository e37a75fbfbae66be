"""The MethodSCRIPT interpreter's state: variables, arrays and their types, the script clock, waits
(the base of :class:`simulators.emstat4.methodscript.Interpreter`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from simulators.emstat4.methodscript_spec import (
    _OPS,
    STATUS_OVERLOAD,
    Program,
    ScriptError,
    encode_value,
    parse_literal,
    split_element,
    to_int,
)


class _Break(Exception):
    pass


class _Abort(Exception):
    pass


#: Loop iterations between checkpoints at which a tight loop lets commands (Z) in.
SPIN_CHECKPOINT = 4096
_SAMPLE = object()  # a technique generator's "outputs are set: run the loop body"
_SCAN_START = object()  # ... "a scan of a multi-scan CV starts" (C<scan>)
_SCAN_END = object()  # ... "that scan has ended" (-)


class _State:
    """The interpreter's state and values: variables, arrays, their types, script time, waits."""

    def __init__(self, program: Program, hw: Any, emit: Callable[[str], None], t0: float) -> None:
        self.program = program
        self.hw = hw
        self._emit = emit
        self.t = t0
        self.timer0 = t0
        self.vals: dict[str, float] = {}
        self.types: dict[str, str] = {}
        self.ints: set[str] = set()
        self.meta: dict[str, tuple[int, int]] = {}
        self.arrays: dict[str, list[float]] = {}
        self.array_types: dict[str, str] = {}
        self.array_ints: dict[str, set[int]] = {}
        self.pck: list[str] | None = None
        self.in_meas = False
        self.scopes: list[str] = []  # closers of the open scopes: "+", "*", "-"
        self.spins = 0  # loop iterations (a checkpoint is yielded every SPIN_CHECKPOINT)
        self.output_enabled = True
        self.line = 0  # script line being executed (for runtime errors)
        self.int_period: float | None = None
        self.int_next = 0.0

    def emit(self, line: str) -> None:
        if self.output_enabled or line[:1] not in ("P", "T"):
            self._emit(line)

    # -- values
    def value(self, token: str, line: int) -> float:
        v = self.vals.get(token)
        if v is not None:
            return v
        element = split_element(token)
        if element is not None:
            array, index = self._element(element, line)
            return array[index]
        lit = parse_literal(token)
        if lit is None:  # pragma: no cover - parse() already checked
            raise ScriptError(0x420B, line)
        return lit[0]

    def _element(self, element: tuple[str, str], line: int) -> tuple[list[float], int]:
        array = self.arrays.get(element[0])
        if array is None:
            raise ScriptError(0x420B, line)  # declared later in the script than used
        index = to_int(self.value(element[1], line))
        if not 0 <= index < len(array):
            raise ScriptError(0x4205, line)
        return array, index

    def _is_int(self, token: str) -> bool:
        if token in self.vals:
            return token in self.ints
        element = split_element(token)
        if element is not None:
            ints = self.array_ints.get(element[0])
            return ints is not None and self._element(element, self.line)[1] in ints
        lit = parse_literal(token)
        return bool(lit and lit[1])

    def _type_of(self, token: str) -> str:
        vtype = self.types.get(token)
        if vtype is not None:
            return vtype
        element = split_element(token)
        if element is not None:
            return self.array_types.get(element[0], "aa")
        return self.types.get(token, "aa")

    def _set(self, name: str, value: float, integer: bool | None = None, vtype: str | None = None) -> None:
        if value - value != 0.0:  # nan or inf
            raise ValueError("non-finite")
        if name in self.vals or split_element(name) is None:
            self.vals[name] = value
            if integer is True:
                self.ints.add(name)
            elif integer is False:
                self.ints.discard(name)
            if vtype is not None:
                self.types[name] = vtype
            self.meta.pop(name, None)
            return
        element = split_element(name)
        assert element is not None
        array, index = self._element(element, self.line)
        array[index] = value
        ints = self.array_ints.setdefault(element[0], set())
        if integer is True:
            ints.add(index)
        elif integer is False:
            ints.discard(index)
        if vtype is not None:
            self.array_types[element[0]] = vtype

    def cond(self, c: tuple[str, str, str], line: int) -> bool:
        return _OPS[c[1]](self.value(c[0], line), self.value(c[2], line))

    def _nonneg(self, token: str, line: int) -> float:
        value = self.value(token, line)
        if value < 0:
            raise ScriptError(0x4200, line)
        return value

    def _wait(self, until: float, line: int) -> Iterator[float]:
        if until > self.t:
            yield until
            self.hw.advance(until)
            self.t = until

    def _await_int(self, line: int) -> Iterator[float]:
        if self.int_period is None:
            raise ScriptError(0x400C, line)
        yield from self._wait(self.int_next, line)
        while self.int_next <= self.t + 1e-12:
            self.int_next += self.int_period

    def _encode_var(self, token: str, line: int) -> str:
        value = self.vals.get(token)
        if value is not None:  # a scalar (the common case)
            vtype = self.types.get(token, "aa")
            text = vtype + encode_value(value, token in self.ints)
        else:
            value = self.value(token, line)
            vtype = self._type_of(token)
            text = vtype + encode_value(value, self._is_int(token))
        if vtype == "ba":
            meta = self.meta.get(token)
            if meta is None:
                meta = self.hw.applied_metadata(value)
            text += f",1{meta[0]:X},2{meta[1]:02X}"
        elif vtype == "ab":
            meta = self.meta.get(token)
            text += f",1{meta[0] if meta else 0:X}"
        return text

    def _current(self, current_A: float) -> tuple[float, tuple[int, int]]:
        reported, status, index = self.hw.read_current(current_A)
        return reported, (status, index)

    def _potential_meta(self, voltage: float) -> tuple[int, int]:
        """Status of a measured potential: overload at the instrument's compliance."""
        return (STATUS_OVERLOAD if abs(voltage) >= self.hw.max_potential_V else 0), 0

    def block(self, nodes: list[Any]) -> Iterator[float]:  # pragma: no cover - the Interpreter's
        raise NotImplementedError
