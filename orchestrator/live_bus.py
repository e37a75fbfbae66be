"""Live documents of every station through Redis, for the web monitor of a lab of stations.

The shared Tiled server is the lab's record, but it takes each run's points in batches (one
HTTP request and one PostgreSQL write per append, one table per run: a station of 128 channels
appending every second needs 128 requests a second, more than one server on a small PC
serves). The live page needs the newest points of every channel within a second or two, which
is what Redis (already running for the stations' queues) does cheaply:

* :class:`LivePublisher`, a bluesky callback on each station's RunEngine, sends every document
  (start, descriptors, event pages, stop) to the Redis stream ``relaxlab-live:<station>``, from
  a background thread, all documents queued since the last send in one pipelined request.
  The journal (and the Tiled server) stay the record: a document Redis does not take is
  dropped from the live view only (one warning per outage), never from a run.
* :class:`LiveSource` is a monitor :class:`~orchestrator.monitor.source.Source` reading those
  streams incrementally (``XREAD`` past the last entry it read): ``relaxlab monitor --redis``.

Each stream keeps its newest :data:`MAXLEN` entries (about a day of 128 channels at one page
a second each is 11 M: older points are read from the Tiled server or the journal, not live).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

#: Redis key prefix of the stations' live streams.
PREFIX = "relaxlab-live:"
#: Entries a station's stream keeps (approximately, trimmed by Redis as it goes).
MAXLEN = 1_000_000


def stream_key(station: str) -> str:
    return f"{PREFIX}{station}"


def redis_client(address: str) -> Any:
    """A Redis client for ``HOST:PORT`` (port 6379 by default)."""
    import redis

    host, _, port = str(address).rpartition(":") if ":" in str(address) else (str(address), "", "")
    return redis.Redis(host=host or "127.0.0.1", port=int(port or 6379), socket_timeout=5,
                       socket_connect_timeout=3)  # fmt: skip


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot send {type(obj).__name__}")


class LivePublisher:
    """Send a station's documents to its live stream (see the module text).

    ``linger_s``: after the first document of a batch arrives, how long the sender waits for
    more before sending them together (the pages of every channel of one second go as one
    request).
    """

    def __init__(self, address: str, station: str, linger_s: float = 0.05, maxlen: int = MAXLEN,
                 warn: Callable[[str], None] = print) -> None:  # fmt: skip
        self.key = stream_key(station)
        self.linger_s = linger_s
        self.maxlen = maxlen
        self.warn = warn
        self.sent = 0
        self._client = redis_client(address)
        self._runs: dict[str, str] = {}  # descriptor uid -> run uid
        self._queue: list[tuple[str, str, str]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._down = False
        self._thread = threading.Thread(target=self._loop, name=f"live {station}", daemon=True)
        self._thread.start()

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            run = doc["uid"]
        elif name in ("descriptor", "stop"):
            run = doc["run_start"]
            if name == "descriptor":
                self._runs[doc["uid"]] = run
        elif name in ("event", "event_page"):
            run = self._runs.get(doc["descriptor"], "")
        else:  # resources and datums: nothing the page shows
            return
        text = json.dumps(doc, default=_plain, allow_nan=True)
        with self._cond:
            self._queue.append((run, name, text))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                deadline = time.monotonic() + self.linger_s  # gather what else comes meanwhile
                while not self._closed and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                batch, self._queue = self._queue, []
            self._send(batch)

    def _send(self, batch: list[tuple[str, str, str]]) -> None:
        import redis

        try:
            pipe = self._client.pipeline(transaction=False)
            for run, name, text in batch:
                pipe.xadd(self.key, {"run": run, "name": name, "doc": text}, maxlen=self.maxlen, approximate=True)
            pipe.execute()
            self.sent += len(batch)
            if self._down:
                self._down = False
                self.warn(f"live view: Redis reached again ({self.key})")
        except (redis.RedisError, OSError) as exc:
            if not self._down:
                self._down = True
                self.warn(f"live view: Redis not reached ({type(exc).__name__}: {exc}); runs are stored as "
                          "usual, the live page misses these points")  # fmt: skip

    def close(self) -> None:
        """Send what is queued, then stop the sender."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)
        self._client.close()


class LiveSource:
    """The live streams of stations as a monitor source (``relaxlab monitor --redis``).

    ``stations`` names the stations to follow; by default every ``relaxlab-live:*`` stream on
    the server (looked up again at every poll, so stations that start later are followed).
    """

    #: Most entries read from one stream per poll (a backlog is read over several polls).
    COUNT = 50_000

    def __init__(self, address: str, stations: list[str] | None = None, station: str = "stations") -> None:
        self.station = station
        self.damaged: dict[str, str] = {}
        self._client = redis_client(address)
        self._keys = [stream_key(s) for s in stations] if stations else None
        self._last: dict[str, bytes | str] = {}

    def _streams(self) -> list[str]:
        if self._keys is not None:
            return self._keys
        return sorted(k.decode() if isinstance(k, bytes) else k for k in self._client.scan_iter(f"{PREFIX}*"))

    def new_documents(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        streams = {key: self._last.get(key, "0-0") for key in self._streams()}
        if not streams:
            return
        for key, entries in self._client.xread(streams, count=self.COUNT) or []:
            key = key.decode() if isinstance(key, bytes) else key
            for entry_id, fields in entries:
                self._last[key] = entry_id
                yield fields[b"run"].decode(), fields[b"name"].decode(), json.loads(fields[b"doc"])

    def campaign_states(self) -> dict[str, dict[str, Any]]:
        return {}  # a lab of stations keeps its campaign state on the dispatching PC

    def close(self) -> None:
        self._client.close()
