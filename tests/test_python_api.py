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
    assert "report: index.html" in out and (tmp_path / "report" / "index.html").is_file()


def test_api_reference_is_generated_from_the_current_docstrings() -> None:
    from relaxlab.apidoc import api_markdown

    page = (DOC.parent / "api.md").read_text()
    assert page == api_markdown(), "docs/api.md is stale: python -m relaxlab.apidoc > docs/api.md"
    import relaxlab

    assert all(f"relaxlab.{name}" in page for name in relaxlab.__all__ if not name.startswith("_"))


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


def test_a_plain_run_engine_on_the_simulated_lab_says_what_to_use(tmp_path: Path) -> None:
    """A RunEngine of one's own never moves the simulated clock: it is refused, not left hanging."""
    import threading

    from bluesky import RunEngine

    import relaxlab
    from drivers.clock import SimClockNotDriven

    session = relaxlab.open_lab("simulated", data_dir=tmp_path)
    try:
        plan = relaxlab.run_protocol(session.channel(), relaxlab.load_protocol("charge-rest-discharge").steps)
        raised: list[BaseException] = []

        def run() -> None:
            try:
                RunEngine({}, context_managers=[])(plan)  # no SIGINT handler: not the main thread
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                raised.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(120)  # a guard against the old hang, not a timing check
        assert not worker.is_alive(), "a plain RunEngine on the simulated lab hangs"
        (error,) = raised
        assert isinstance(error, SimClockNotDriven) or isinstance(error.__cause__, SimClockNotDriven), error
        assert "session.run(plan)" in str(error)
        # the session's own RunEngine still runs the same protocol
        (uid,) = session.run(
            relaxlab.run_protocol(session.channel(), relaxlab.load_protocol("charge-rest-discharge").steps)
        )
        assert not session.read(uid)[1].empty
    finally:
        session.close()
