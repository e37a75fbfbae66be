"""The documented Python API: the notebook example in docs/python-api.md runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def _code_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_docs_example_runs_and_says_what_it_ran(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"data_dir": tmp_path}
    for block in _code_blocks():
        exec(compile(block, str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    # the shipped protocol ran all of its steps, and our own steps kept their types
    assert "['cc', 'rest', 'cc']" in out
    assert "['cc', 'rest']" in out
    charged = re.search(r"charged ([\d.]+) mAh/g, ends at ([\d.]+) V", out)
    assert charged is not None
    assert float(charged.group(1)) == pytest.approx(200.0, abs=1.0)
    assert 3.5 < float(charged.group(2)) < 4.8


def test_version_is_the_distribution_version() -> None:
    from importlib.metadata import version

    import relaxlab

    assert relaxlab.__version__ == version("relaxlab")


@pytest.mark.parametrize("shadow", ["analysis.py", "drivers/__init__.py"])
def test_a_users_own_module_that_shadows_ours_is_named(tmp_path: Path, shadow: str) -> None:
    target = tmp_path / shadow
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("x = 1\n")
    root = Path(__file__).resolve().parents[1]
    # the user's folder comes first on sys.path, as when they run python in it
    code = f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {str(root)!r}]; import relaxlab"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "shadows relaxlab's package" in last and str(target.parent if shadow.endswith("__init__.py") else target) in last
