"""The API reference page, generated from the docstrings of ``relaxlab.__all__``.

``python -m relaxlab.apidoc > docs/api.md`` (a test checks the page is up to date).
"""

from __future__ import annotations

import inspect
import re

from pydantic import BaseModel

import relaxlab

#: Methods of a public class that the reference lists (the rest are internal or inherited).
_SKIP = {"__init__", "__enter__", "__exit__"}


def _signature(obj: object) -> str:
    if inspect.isclass(obj) and issubclass(obj, BaseModel):
        return "(**fields)"  # a parsed file: its fields are the file's (see its docstring)
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    return re.sub(r"<function (\w+) at 0x[0-9a-f]+>", r"\1", text)  # no addresses: the page is stable


def _section(title: str, obj: object, level: str) -> list[str]:
    doc = inspect.getdoc(obj)
    return [f"{level} `{title}{_signature(obj)}`", "", *(["```text", doc, "```", ""] if doc else [])]


def api_markdown() -> str:
    """The reference of every public name: signature and docstring, methods of classes too."""
    out = [
        "# relaxlab API reference",
        "",
        "Generated from the docstrings by `python -m relaxlab.apidoc > docs/api.md` (a test checks "
        "it is up to date). How to use it: [python-api.md](python-api.md).",
        "",
    ]
    for name in sorted(n for n in relaxlab.__all__ if not n.startswith("_")):
        obj = getattr(relaxlab, name)
        out += _section(f"relaxlab.{name}", obj, "##")
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if (attr.startswith("_") and attr not in ("__call__",)) or attr in _SKIP:
                    continue
                if inspect.isfunction(member):
                    out += _section(f"{name}.{attr}", member, "###")
    out.append("`relaxlab.__version__`: the version of the installed distribution.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(api_markdown(), end="")
