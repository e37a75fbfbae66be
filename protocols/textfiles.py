"""Reading the text files people write (protocol, campaign and lab files) without surprises.

One reader for every input file of relaxlab, so each bad file gets one clear sentence rather
than a traceback: a directory, a missing or unreadable file, a binary or non-UTF-8 file, a
huge file. YAML is read with PyYAML's safe loader extended to refuse what the YAML spec
forbids but PyYAML accepts silently: a **duplicate key** (a doubled ``current:`` must not
silently win) and nesting deep enough to exhaust the stack. TOML (``tomllib``) already
refuses duplicate keys.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

#: Input files are small: anything bigger is certainly not a protocol, campaign or lab file.
MAX_FILE_BYTES = 2_000_000
#: Deepest nesting of mappings and lists accepted in an input file.
MAX_DEPTH = 40


class InputFileError(ValueError):
    """An input file cannot be read as text; the message names the file and says why
    (``reason`` says why without the file name)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def read_text_file(path: str | Path, what: str = "file") -> str:
    """The text of ``path`` (UTF-8), or :class:`InputFileError` with one clear sentence.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file is, for the message (``"protocol file"``, ``"lab file"`` ...).
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise InputFileError(f"{path} is a directory, not a {what}", f"a directory, not a {what}")
        if not path.exists():
            raise InputFileError(f"{what} {path} does not exist", "file does not exist")
        if not path.is_file():  # a device or a pipe: /dev/zero would be read forever
            raise InputFileError(f"{path} is not a regular file, not a {what}", f"not a regular file, not a {what}")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputFileError(
                f"{path} is {size / 1e6:.1f} MB; a {what} is a small text file (at most {MAX_FILE_BYTES // 1_000_000} MB)"
            )
        raw = path.read_bytes()
    except PermissionError:
        raise InputFileError(f"cannot read {what} {path}: permission denied") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if b"\x00" in raw:
        reason = f"a binary file, not a {what} (a {what} is UTF-8 text)"
        raise InputFileError(f"{path} is {reason}", reason)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        reason = f"line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8; save the {what} as UTF-8 text"
        raise InputFileError(f"{path}: {reason}", reason) from None
    return text.removeprefix("\ufeff")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys and very deep nesting."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ConstructorError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            self.flatten_mapping(node)
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise ConstructorError(
                        "while reading a mapping", node.start_mark, "a key must be a plain value",
                        key_node.start_mark,
                    ) from None  # fmt: skip
                if key in seen:
                    raise ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key {key!r} (first on line {seen[key].line + 1}); a key may appear once",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_yaml_map
)


def yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    """(location, message) for a YAML error: ``("line 4", "duplicate key 'current' ...")``."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return where, f"not valid YAML: {problem}"


def load_yaml(text: str) -> Any:
    """Parse YAML text safely; duplicate keys and deep nesting raise :class:`yaml.YAMLError`."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ConstructorError(None, None, f"nested more than {MAX_DEPTH} levels deep") from None


def load_toml(text: str) -> Any:
    """Parse TOML text (``tomllib``: duplicate keys are already an error); deep nesting is one too."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(f"nested more than {MAX_DEPTH} levels deep") from None
    if _depth(data) > MAX_DEPTH:
        raise tomllib.TOMLDecodeError(f"nested more than {MAX_DEPTH} levels deep")
    return data


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


__all__ = ["MAX_DEPTH", "InputFileError", "load_toml", "load_yaml", "read_text_file", "yaml_problem"]
