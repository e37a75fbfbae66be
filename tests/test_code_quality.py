"""The rules the project holds itself to, checked by their tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_layers_are_enforced_by_import_linter() -> None:
    result = _run("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_finds_nothing() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_type_hints_check_with_mypy() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_wall_clock_in_drivers_protocols_or_simulators() -> None:
    """Time goes through a Clock: the only wall-clock reads live in drivers/clock.py."""
    offenders = []
    for folder in ("drivers", "protocols", "simulators"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "clock.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if any(call in code for call in ("time.sleep(", "time.time(", "time.monotonic(")):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
