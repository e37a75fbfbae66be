"""Event pages appended to a Tiled catalog column-wise, in batches (used by
:class:`orchestrator.storage.TiledStore` and :mod:`orchestrator.tiled_fill`)."""

from __future__ import annotations

from typing import Any


def page_writer(client: Any, batch_points: int) -> Any:
    """bluesky's per-run Tiled writer, with event pages appended column-wise in batches.

    The stock writer unpacks every page into single events and rebuilds rows, and each append
    is one request to the Tiled server (about 45 ms here, whatever its size). A page already is
    a table, so pages are concatenated and appended once ``batch_points`` points have
    accumulated (and at the end of the run). Nothing is at risk meanwhile: the journal has
    every page on disk before the run moves on. The table layout (``internal`` with seq_num,
    time, data keys and ``ts_<key>``) is the stock one, so bluesky-tiled-plugins clients read
    these runs as any other.
    """
    import pyarrow
    from bluesky.callbacks.tiled_writer import _RunWriter

    class _PageWriter(_RunWriter):  # type: ignore[misc]
        def __init__(self, client: Any) -> None:
            super().__init__(client, batch_size=batch_points)
            self._pages: dict[str, list[Any]] = {}
            self._page_rows: dict[str, int] = {}

        def event_page(self, doc: Any) -> None:  # type: ignore[override]
            desc_node = self._desc_nodes[doc["descriptor"]]
            name = desc_node.item["id"]
            columns = {"seq_num": doc["seq_num"], "time": doc["time"], **doc["data"]}
            columns.update({f"ts_{k}": v for k, v in doc["timestamps"].items()})
            self._pages.setdefault(name, []).append((desc_node, pyarrow.Table.from_pydict(columns)))
            self._page_rows[name] = self._page_rows.get(name, 0) + len(doc["seq_num"])
            if self._page_rows[name] >= batch_points:
                self._flush(name)

        def _flush(self, name: str) -> None:
            pages = self._pages.pop(name, [])
            self._page_rows[name] = 0
            if not pages:
                return
            desc_node = pages[0][0]
            pending = self._internal_data_cache[name]
            if pending:  # single events received earlier go first
                self._write_internal_data(pending, desc_node=desc_node)
                pending.clear()
            table = pyarrow.concat_tables([t for _, t in pages]) if len(pages) > 1 else pages[0][1]
            if name not in self._internal_tables:
                # The stock writer creates the table (schema, metadata) from its first row.
                self._write_internal_data(table.slice(0, 1).to_pylist(), desc_node=desc_node)
                table = table.slice(1)
            if table.num_rows:
                self._internal_tables[name].append_partition(0, table)

        def stop(self, doc: Any) -> None:
            for name in list(self._pages):
                self._flush(name)
            super().stop(doc)

    return _PageWriter(client)
