"""Keep third-party chatter off a user's console (called by the command's entry point only, so
tests still see every warning): the Starlette deprecation warning that Tiled's in-process client
triggers, and Tiled's "Tiled version ..." INFO line, which its server module logs to stderr."""

from __future__ import annotations

import logging
import warnings


class _WarningsAndUp(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_console() -> None:
    warnings.filterwarnings("ignore", message=r".*starlette\.testclient.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(starlette|tiled|httpx)(\.|$)")
    # tiled.server.app sets its own level and handler when imported: filter on the logger itself.
    logging.getLogger("tiled.server.app").addFilter(_WarningsAndUp())
