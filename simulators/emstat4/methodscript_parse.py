"""MethodSCRIPT parsed completely before it runs: syntax, declared variables and arrays, block
structure; errors as ``!XXXX: Line L, Col C`` (:class:`~simulators.emstat4.methodscript_spec.ScriptError`)."""

from __future__ import annotations

from typing import Any

from simulators.emstat4.methodscript_spec import (
    _FIELD,
    _NAME,
    _OPS,
    _TOKEN,
    _VARTYPE,
    COMMANDS,
    DEVICE_SPECIFIC,
    GALVANOSTAT_MODE,
    HIBERNATE_TIMER,
    MEAS_LOOPS,
    MEAS_TYPES,
    POTENTIOSTAT_MODES,
    Cmd,
    CommandSpec,
    If,
    Loop,
    MeasLoop,
    Program,
    ScriptError,
    parse_literal,
    split_element,
    to_int,
)


class _Scope:
    """Names declared so far (``var`` and ``array``)."""

    def __init__(self) -> None:
        self.vars: set[str] = set()
        self.arrays: set[str] = set()

    def check_value(self, token: str, number: int, col: int) -> None:
        """An input operand: literal, declared variable or array element."""
        if parse_literal(token) is not None or token in self.vars:
            return
        element = split_element(token)
        if element is not None:
            self.check_element(element, number, col)
            return
        if _NAME.match(token):
            raise ScriptError(0x420B, number, col)
        if token[:1].isdigit() or token[:1] in "+-":
            raise ScriptError(0x4039, number, col)
        raise ScriptError(0x4004, number, col)

    def check_element(self, element: tuple[str, str], number: int, col: int) -> None:
        name, index = element
        if name not in self.arrays:
            raise ScriptError(0x420B, number, col)
        if parse_literal(index) is None and index not in self.vars:
            raise ScriptError(0x420B if _NAME.match(index) else 0x4004, number, col + len(name) + 1)

    def check_output(self, token: str, number: int, col: int) -> None:
        """An operand written to: declared variable or array element."""
        if token in self.vars:
            return
        element = split_element(token)
        if element is not None:
            self.check_element(element, number, col)
            return
        raise ScriptError(0x420B if _NAME.match(token) else 0x4004, number, col)

    def check_array(self, token: str, number: int, col: int) -> None:
        if token not in self.arrays:
            raise ScriptError(0x420B if _NAME.match(token) else 0x4004, number, col)


#: Which arguments are whole arrays (not values), per command.
_ARRAY_ARGS = {"array_set": (0,), "array_get": (0,), "mean": (0,), "linear_fit": (0, 1),
               "peak_detect": (0, 2, 3)}  # fmt: skip


def parse(lines: list[str]) -> Program:
    """Parse script lines (without the leading ``e`` and trailing empty line)."""
    scope = _Scope()
    root: list[Any] = []
    on_finished: list[Any] = []
    # stack of (kind, node, body list)
    stack: list[tuple[str, Any, list[Any]]] = [("root", None, root)]
    in_meas = 0
    finished_seen = False
    for number, raw in enumerate(lines, start=1):
        stripped = raw.lstrip()
        if stripped.startswith("send_string") and stripped[11:12] in (" ", "\t"):
            stack[-1][2].append(_parse_send_string(raw, scope, number))
            continue
        code = raw.split("#", 1)[0]
        matches = list(_TOKEN.finditer(code))
        if not matches:
            continue
        tokens = [m[0] for m in matches]
        cols = [m.start() + 1 for m in matches]
        name, args, col, arg_cols = tokens[0], tokens[1:], cols[0], cols[1:]
        if name == "on_finished:":
            if len(stack) != 1 or finished_seen:
                raise ScriptError(0x400C, number, col)
            finished_seen = True
            stack = [("root", None, on_finished)]
            continue
        if name in DEVICE_SPECIFIC:
            raise ScriptError(0x001B, number, col)
        if name.startswith("meas_loop_"):
            kind = name[len("meas_loop_") :]
            spec = MEAS_LOOPS.get(kind)
            if spec is None:
                raise ScriptError(0x4001, number, col)
            if in_meas:
                raise ScriptError(0x400B, number, col)
            options: dict[str, list[str]] = {}
            while args and args[-1].endswith(")") and "(" in args[-1]:
                opt_col = arg_cols[len(args) - 1]
                opt_name, _, inner = args.pop()[:-1].partition("(")
                if opt_name not in spec.options:
                    raise ScriptError(0x4008, number, opt_col)
                options[opt_name] = inner.split()
                _check_option(opt_name, options[opt_name], scope, number, opt_col)
            n_out, n_in = spec.arity
            if len(args) != n_out + n_in:
                raise ScriptError(0x0007, number, col)
            for a, c in zip(args[:n_out], arg_cols, strict=False):
                scope.check_output(a, number, c)
            for a, c in zip(args[n_out:], arg_cols[n_out:], strict=False):
                scope.check_value(a, number, c)
            meas = MeasLoop(kind, args, [], number, options)
            stack[-1][2].append(meas)
            stack.append(("meas", meas, meas.body))
            in_meas += 1
            continue
        if name == "loop":
            cond = _parse_cond(args, scope, arg_cols, number, col)
            loop = Loop(cond, [], number)
            stack[-1][2].append(loop)
            stack.append(("loop", loop, loop.body))
            continue
        if name == "endloop":
            if stack[-1][0] not in ("loop", "meas"):
                raise ScriptError(0x400C, number, col)
            kind, _, _ = stack.pop()
            if kind == "meas":
                in_meas -= 1
            continue
        if name == "if":
            cond = _parse_cond(args, scope, arg_cols, number, col)
            branch = If([(cond, [])], number)
            stack[-1][2].append(branch)
            stack.append(("if", branch, branch.branches[0][1]))
            continue
        if name in ("elseif", "else"):
            if stack[-1][0] != "if":
                raise ScriptError(0x400C, number, col)
            _, node, _ = stack.pop()
            branch_cond = _parse_cond(args, scope, arg_cols, number, col) if name == "elseif" else None
            if node.branches[-1][0] is None:
                raise ScriptError(0x400C, number, col)
            node.branches.append((branch_cond, []))
            stack.append(("if", node, node.branches[-1][1]))
            continue
        if name == "endif":
            if stack[-1][0] != "if":
                raise ScriptError(0x400C, number, col)
            stack.pop()
            continue
        spec_cmd = COMMANDS.get(name)
        if spec_cmd is None:
            raise ScriptError(0x4001, number, col)
        if not spec_cmd.min_args <= len(args) <= spec_cmd.max_args:
            raise ScriptError(0x0007, number, col)
        if name == "breakloop" and not any(k in ("loop", "meas") for k, _, _ in stack):
            raise ScriptError(0x400C, number, col)
        _check_args(name, spec_cmd, args, scope, arg_cols, number)
        if name == "var":
            scope.vars.add(args[0])
        elif name == "array":
            scope.arrays.add(args[0])
        stack[-1][2].append(Cmd(name, args, number))
    if len(stack) != 1:
        raise ScriptError(0x4018, len(lines) + 1, 1)
    return Program(root, on_finished)


def _parse_send_string(raw: str, scope: _Scope, number: int) -> Cmd:
    start = raw.find("send_string")
    body = raw[start + len("send_string") :].strip()
    col = start + 13
    fmt = body.startswith('f"')
    text = body[1:] if fmt else body
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ScriptError(0x4039, number, col)
    text = text[1:-1]
    if fmt:
        for m in _FIELD.finditer(text):
            scope.check_value(m[1].strip(), number, col + 2 + m.start())
    return Cmd("send_string", [text, "f" if fmt else ""], number)


def _check_option(name: str, values: list[str], scope: _Scope, number: int, col: int) -> None:
    if name == "nscans":
        if len(values) != 1:
            raise ScriptError(0x4008, number, col)
        scope.check_value(values[0], number, col)
    elif name == "eis_tdd":
        if len(values) != 5:
            raise ScriptError(0x4008, number, col)
        scope.check_array(values[0], number, col)
        scope.check_array(values[1], number, col)
        scope.check_output(values[2], number, col)
        scope.check_output(values[3], number, col)
        scope.check_value(values[4], number, col)


def _parse_cond(
    args: list[str], scope: _Scope, cols: list[int], number: int, col: int
) -> tuple[str, str, str]:
    if len(args) != 3 or args[1] not in _OPS:
        raise ScriptError(0x0007, number, cols[0] if cols else col)
    scope.check_value(args[0], number, cols[0])
    scope.check_value(args[2], number, cols[2])
    return args[0], args[1], args[2]


def _check_args(
    name: str, spec: CommandSpec, args: list[str], scope: _Scope, cols: list[int], number: int
) -> None:
    if name in ("var", "array"):
        if not _NAME.match(args[0]):
            raise ScriptError(0x4004, number, cols[0])
        if args[0] in scope.vars or args[0] in scope.arrays:
            raise ScriptError(0x4026, number, cols[0])
        if name == "array":
            scope.check_value(args[1], number, cols[1])
        return
    if name == "cell_on" and args:
        inner = args[0][4:-1].strip() if args[0].startswith("ocp(") and args[0].endswith(")") else ""
        if not inner:
            raise ScriptError(0x4008, number, cols[0])
        scope.check_value(inner, number, cols[0] + 4)
        return
    arrays = _ARRAY_ARGS.get(name, ())
    for pos, a in enumerate(args):
        col = cols[pos]
        if pos in spec.vartype_args:
            if not _VARTYPE.match(a):
                raise ScriptError(0x0007, number, col)
        elif pos in arrays or name == "smooth" and (pos == 0 or pos == len(args) - 2):
            scope.check_array(a, number, col)
        elif pos in spec.outputs:
            scope.check_output(a, number, col)
        else:
            scope.check_value(a, number, col)
    if name == "meas" and args[2] not in MEAS_TYPES:
        raise ScriptError(0x001B, number, cols[2])  # a quantity this unit has no sensor for
    if name == "hibernate":
        lit = parse_literal(args[0])
        if lit is not None and to_int(lit[0]) != HIBERNATE_TIMER:
            raise ScriptError(0x001B, number, cols[0])  # a wake-up source needing hardware
    if name == "set_pgstat_mode":
        lit = parse_literal(args[0])
        if lit is not None and int(lit[0]) not in (0, *POTENTIOSTAT_MODES, GALVANOSTAT_MODE):
            raise ScriptError(0x0021, number, cols[0])
