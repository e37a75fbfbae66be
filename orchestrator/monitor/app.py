"""The monitor's web app: one static page and a JSON API it polls.

Routes: ``/`` (the page), ``/api/status`` (stations, cells, campaigns with their Gantt and ETA,
alarms), ``/api/cells/<id>/points?since=N`` (a cell's curve after point ``N``), ``POST
/api/points`` with ``{"since": {"<id>": N, ...}}`` (several cells in one request, as the page
asks), ``/healthz``.
With an API key every route asks for it (``X-API-Key`` header, ``Authorization: Bearer KEY``
or ``?key=KEY`` for the page); a request without it gets 401.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
from importlib.resources import files
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.monitor.model import Monitor
from orchestrator.monitor.source import LocalSource, Source


class MonitorConfigError(ValueError):
    """The monitor cannot start as asked (e.g. a non-loopback address without an API key)."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_binding(host: str, api_key: str | None) -> None:
    """Refuse a non-loopback address without an API key (one clear error)."""
    if not is_loopback(host) and not api_key:
        raise MonitorConfigError(
            f"monitor: --host {host} is reachable from other machines; give an API key "
            "(--api-key KEY or RELAXLAB_MONITOR_KEY) to serve there, or keep the default --host 127.0.0.1"
        )


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN and infinities become null (browsers' JSON.parse rejects them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalars
        return _clean(obj.item())
    return obj


def _json(obj: Any, status_code: int = 200) -> Response:
    body = json.dumps(_clean(obj), separators=(",", ":"), allow_nan=False)
    return Response(body, status_code=status_code, media_type="application/json",
                    headers={"Cache-Control": "no-store"})  # fmt: skip


class _ApiKey:
    """Every request carries the key, or gets 401."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            given = request.headers.get("x-api-key") or request.query_params.get("key") or ""
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = given or auth[7:]
            if not hmac.compare_digest(given.encode(), self.key):
                response = JSONResponse({"error": "an API key is needed (X-API-Key header or ?key=)"}, 401,
                                        headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def page_html() -> str:
    return (files("orchestrator.monitor") / "page.html").read_text(encoding="utf-8")


def create_app(
    source: Source | Path | str,
    api_key: str | None = None,
    campaign_files: dict[str, Path] | None = None,
    poll_ms: int = 1000,
) -> ASGIApp:
    """The monitor app over ``source`` (a :class:`Source`, or a data folder read locally)."""
    if isinstance(source, (str, Path)):
        source = LocalSource(Path(source))
    monitor = Monitor(source, campaign_files)
    page = page_html().replace("__POLL_MS__", str(int(poll_ms)))

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    def status(request: Request) -> Response:
        return _json(monitor.status())

    def points(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return _json({"error": "since must be a whole number (the last point number you have)"}, 400)
        out = monitor.points(request.path_params["cell_id"], since)
        if out is None:
            return _json({"error": f"no cell {request.path_params['cell_id']!r}"}, 404)
        return _json(out)

    async def points_many(request: Request) -> Response:
        try:
            body = await request.json()
            since = {str(k): int(v) for k, v in body["since"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return _json({"error": 'send {"since": {"<cell id>": <last point number you have>, ...}}'}, 400)
        return _json(await run_in_threadpool(monitor.points_of, since))

    async def healthz(request: Request) -> Response:
        return _json({"ok": True})

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/status", status),
            Route("/api/cells/{cell_id:path}/points", points),
            Route("/api/points", points_many, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )
    app.state.monitor = monitor
    return _ApiKey(app, api_key) if api_key else app


def serve(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str | None = None,
    campaign_files: dict[str, Path] | None = None,
    station: str | None = None,
    redis: str | None = None,
) -> None:
    """Serve the monitor of ``data_dir`` (or, with ``redis``, of the stations' live streams on
    that Redis server: :class:`orchestrator.live_bus.LiveSource`) with uvicorn until interrupted."""
    import uvicorn

    check_binding(host, api_key)
    if redis:
        from orchestrator.live_bus import LiveSource

        source: Source = LiveSource(redis, station=station or "stations")
    else:
        source = LocalSource(Path(data_dir), station)
    app = create_app(source, api_key, campaign_files)
    uvicorn.run(app, host=host, port=port, log_level="warning")
