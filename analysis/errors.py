"""Errors raised by the analysis layer."""

from __future__ import annotations

from pathlib import Path


class DataFileError(ValueError):
    """A data file cannot be used: it is malformed, truncated or not a cycling file.

    Parameters
    ----------
    path : str or Path
        The offending file.
    problem : str
        What is wrong with it, in words a user understands.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
