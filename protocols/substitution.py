"""Parameter substitution: ``$name`` / ``${name}`` in a protocol file replaced by its value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# ---------------------------------------------------------------------------------------------
# parameters ($name substitution)

_WHOLE_VAR = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
_INNER_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _substitute(value: Any, env: Mapping[str, Any], missing: list[str]) -> Any:
    """``value`` with every ``$name`` replaced from ``env``; unknown names go to ``missing``."""
    if isinstance(value, str):
        whole = _WHOLE_VAR.match(value.strip())
        if whole:
            name = whole.group(1)
            if name in env:
                return env[name]
            missing.append(name)
            return value

        def inner(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            if name in env:
                return str(env[name])
            missing.append(name)
            return m.group(0)

        return _INNER_VAR.sub(inner, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, missing) for v in value]
    return value
