"""relaxlab orchestrator layer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: The import names the ``relaxlab`` distribution installs side by side.
PACKAGES = ("relaxlab", "orchestrator", "protocols", "drivers", "simulators", "analysis")


def check_layout() -> None:
    """Fail fast when a user's own module shadows one of relaxlab's packages.

    A file such as ``analysis.py`` or a folder ``drivers/`` in the working directory comes
    first on ``sys.path``; without this check the failure surfaces much later as a confusing
    ``No module named 'drivers.quantities'``. Runs when ``orchestrator`` (and so ``relaxlab``
    and the CLI) is imported.

    Raises
    ------
    ImportError
        Naming the shadowing file and what to do about it.
    """
    root = Path(__file__).resolve().parent.parent
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        # a folder without __init__.py is a namespace package: no origin, only its location
        locations = list(spec.submodule_search_locations or [])
        origin = spec.origin if spec.origin not in (None, "namespace") else next(iter(locations), None)
        if origin is None:
            continue
        where = Path(origin).resolve()
        if (where.parent if where.suffix == ".py" else where).parent != root:
            shown = where.parent if where.name == "__init__.py" else where
            raise ImportError(
                f"{shown} shadows relaxlab's package {name!r} (installed in {root}): "
                "rename it or run from another folder"
            )


check_layout()
