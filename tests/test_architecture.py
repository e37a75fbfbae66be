"""The architecture the README describes, checked from the configuration the tools read."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = sorted(CONFIG["tool"]["mypy"]["packages"])
CONTRACTS = CONFIG["tool"]["importlinter"]["contracts"]

#: Modules still over the size limit, each being split in its own change; the list only shrinks.
OVERSIZED: set[str] = set()
MAX_LINES = 500


def _packages_on_disk() -> list[str]:
    return sorted(
        p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests", "benchmarks")
    )


def test_every_package_is_type_checked_and_in_the_one_layers_contract() -> None:
    assert _packages_on_disk() == RUNTIME
    (layers,) = [c for c in CONTRACTS if c["type"] == "layers"]
    named = sorted(name.strip() for layer in layers["layers"] for name in layer.split("|"))
    assert named == RUNTIME


def test_no_package_has_import_cycles_between_its_modules() -> None:
    (acyclic,) = [c for c in CONTRACTS if c["type"] == "acyclic_siblings"]
    assert sorted(acyclic["ancestors"]) == RUNTIME
    # no cycle is excused: each edge between sibling modules points one way
    assert acyclic.get("ignore_imports", []) == []


def test_drivers_analysis_and_simulators_are_independent() -> None:
    (layers,) = [c for c in CONTRACTS if c["type"] == "layers"]
    bottom = layers["layers"][-1]
    assert "|" in bottom and {n.strip() for n in bottom.split("|")} == {"drivers", "analysis", "simulators"}


def test_no_runtime_module_over_the_size_limit_but_the_known_ones() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in RUNTIME
        for path in (ROOT / package).rglob("*.py")
    }
    over = {name for name, lines in sizes.items() if lines > MAX_LINES}
    assert over <= OVERSIZED, f"over {MAX_LINES} lines: {sorted(over - OVERSIZED)}"
    assert over >= OVERSIZED, f"now within {MAX_LINES} lines, take off the list: {sorted(OVERSIZED - over)}"


def test_drivers_never_import_analysis_or_simulators() -> None:
    """Also in the layers contract; here the imports are read from the files themselves."""
    offenders = []
    for path in (ROOT / "drivers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("analysis", "simulators")]
    assert offenders == []
