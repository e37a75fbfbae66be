"""relaxlab's live web monitor (``relaxlab monitor``): stations, channels and cells with their
step, live voltage-time curves, ETA, the campaign Gantt and alarms, read from a data folder.

See ``docs/monitor.md``. :func:`create_app` builds the Starlette app over a
:class:`~orchestrator.monitor.source.Source` (:class:`LocalSource` reads a data folder);
:func:`serve` runs it with uvicorn.
"""

from orchestrator.monitor.app import MonitorConfigError, check_binding, create_app, is_loopback, serve
from orchestrator.monitor.model import Monitor
from orchestrator.monitor.source import LocalSource, Source

__all__ = [
    "LocalSource",
    "Monitor",
    "MonitorConfigError",
    "Source",
    "check_binding",
    "create_app",
    "is_loopback",
    "serve",
]
