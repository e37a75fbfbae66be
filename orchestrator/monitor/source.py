"""Where the monitor reads from: a small reader interface and its local implementation.

A :class:`Source` hands the monitor what changed since its last poll: the documents that
were appended to each run (``(run uid, name, document)``, in the order they were written)
and each campaign's state. :class:`LocalSource` reads a data folder as relaxlab writes it
(``journal/<run>.jsonl``, ``campaigns/<name>/state.json``), read-only and incrementally:
per journal it keeps the byte offset it has read up to and reads only what was appended
since, whole lines only (a line still being written is read at the next poll). A Tiled
server source implements the same two methods (run metadata and the rows of each stream
past the last one read).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

Document = tuple[str, str, dict[str, Any]]  # (run uid, document name, document)


class Source(Protocol):
    """What a monitor data source provides."""

    #: Station this source reads (shown on the page; runs may name their own ``station``).
    station: str
    #: Runs whose stored documents cannot be read past some point ({run uid: why}).
    damaged: dict[str, str]

    def new_documents(self) -> Iterator[Document]:
        """The documents appended to any run since the last call, per run in written order."""
        ...

    def campaign_states(self) -> dict[str, dict[str, Any]]:
        """Each campaign's current state (``campaigns/<name>/state.json``), by campaign name."""
        ...


@dataclass
class _Tail:
    offset: int = 0
    size: int = -1
    mtime_ns: int = -1
    damaged: bool = False


class LocalSource:
    """The journals and campaign states of one data folder, read incrementally by offset."""

    #: Most bytes read from one journal per poll (a large backlog is read over several polls).
    CHUNK_BYTES = 8 << 20

    def __init__(self, data_dir: Path, station: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.station = station or "local"
        self._tails: dict[Path, _Tail] = {}
        self._states: dict[str, tuple[int, int, dict[str, Any]]] = {}
        self.damaged: dict[str, str] = {}

    def new_documents(self) -> Iterator[Document]:
        try:
            entries = [e for e in os.scandir(self.data_dir / "journal") if e.name.endswith(".jsonl")]
        except FileNotFoundError:
            return
        for entry in sorted(entries, key=lambda e: e.name):
            tail = self._tails.setdefault(Path(entry.path), _Tail())
            if tail.damaged:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if (st.st_size, st.st_mtime_ns) == (tail.size, tail.mtime_ns):
                continue  # unchanged since the last poll: not even opened
            tail.size, tail.mtime_ns = st.st_size, st.st_mtime_ns
            if st.st_size < tail.offset:  # shortened (a torn tail cut off): read again from the start
                tail.offset = 0
            yield from self._read(Path(entry.path), tail)

    def _read(self, path: Path, tail: _Tail) -> Iterator[Document]:
        uid = path.stem
        with open(path, "rb") as f:
            f.seek(tail.offset)
            data = f.read(self.CHUNK_BYTES)
        if len(data) == self.CHUNK_BYTES:
            tail.size = -1  # more to read: come back next poll even if the file does not change
        lines = data.split(b"\n")[:-1]  # whole lines only; a line being written waits
        for line in lines:
            if line.strip():
                try:
                    name, doc = json.loads(line)
                    if not isinstance(name, str) or not isinstance(doc, dict):
                        raise ValueError("not a [name, document] pair")
                except ValueError as exc:
                    # never skipped: reading the run stops at the damage, as `data export` does
                    tail.damaged = True
                    self.damaged[uid] = f"{path.name}: a line is not a whole document ({exc})"
                    return
                tail.offset += len(line) + 1
                yield uid, name, doc
            else:
                tail.offset += len(line) + 1

    def campaign_states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for path in sorted((self.data_dir / "campaigns").glob("*/state.json")):
            name = path.parent.name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            cached = self._states.get(name)
            if cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns):
                out[name] = cached[2]
                continue
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # replaced atomically, but be safe: keep the last one read
                if cached is not None:
                    out[name] = cached[2]
                continue
            self._states[name] = (st.st_size, st.st_mtime_ns, state)
            out[name] = state
        return out
