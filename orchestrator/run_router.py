"""Each run's documents to callbacks made for that run: event_model's ``RunRouter`` without its
``Filler``.

``RunRouter`` passes every event page through a ``Filler`` first (to load external data that
resource/datum documents point at), which unpacks the page into single events and packs them
again: about half of the cost of storing a page. relaxlab's pages hold their numbers inline
(``filled`` is empty), so :class:`PerRun` hands the documents on as they are (a single event,
as ``RunRouter`` does, as a page of one: readers of the journal and Tiled see pages only). Used for the journal
of each campaign run (:mod:`orchestrator.campaign_session`) and the Tiled writer
(:class:`orchestrator.storage.TiledStore`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from event_model import pack_event_page

Callback = Callable[[str, dict[str, Any]], Any]

#: Where each document kind names the document it belongs to (the run's start, or a document
#: already routed).
_PARENT = {
    "descriptor": "run_start",
    "stop": "run_start",
    "resource": "run_start",
    "stream_resource": "run_start",
    "event": "descriptor",
    "event_page": "descriptor",
    "datum": "resource",
    "datum_page": "resource",
    "stream_datum": "stream_resource",
}


class PerRun:
    """A RunEngine subscriber: ``factory(start_doc)`` gives the callbacks of each run, which then
    get that run's documents in order; they are dropped when the run's stop has been handed on.
    Documents of a run that started before this router was subscribed are ignored."""

    def __init__(self, factory: Callable[[dict[str, Any]], list[Callback]]) -> None:
        self.factory = factory
        self._callbacks: dict[str, list[Callback]] = {}  # start uid -> its run's callbacks
        self._run_of: dict[str, str] = {}  # descriptor / resource uid -> start uid

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "event":  # as RunRouter does: a single event is handed on as a page of one
            name, doc = "event_page", dict(pack_event_page(doc))  # type: ignore[arg-type]
        if name == "start":
            run = doc["uid"]
            self._callbacks[run] = list(self.factory(doc))
        else:
            parent = str(doc.get(_PARENT.get(name, "run_start"), ""))
            run = parent if parent in self._callbacks else self._run_of.get(parent, "")
        callbacks = self._callbacks.get(run)
        if callbacks is None:
            return
        if name in ("descriptor", "resource", "stream_resource"):
            self._run_of[doc["uid"]] = run
        for callback in callbacks:
            callback(name, doc)
        if name == "stop":
            del self._callbacks[run]
            self._run_of = {key: value for key, value in self._run_of.items() if value != run}


__all__ = ["PerRun"]
