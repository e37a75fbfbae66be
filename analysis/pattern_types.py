"""A powder diffraction pattern as read from any file format, its wavelength, and the suffixes
relaxlab reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from analysis.errors import DataFileError

#: Cu K-alpha1 and K-alpha2 wavelengths (Angstrom) and the K-alpha2/K-alpha1 intensity ratio.
CU_KA1_A = 1.54056
CU_KA2_A = 1.54439
CU_KA2_RATIO = 0.5

#: File name suffixes (lower case) that :func:`read_pattern` understands.
PATTERN_SUFFIXES = (".xy", ".xye", ".brml", ".xrdml", ".raw")


@dataclass(frozen=True)
class Wavelength:
    """X-ray wavelengths of a pattern (Angstrom).

    ``ka2_A`` and ``ka2_ratio`` are None for monochromatic (K-alpha1 only) data.
    """

    ka1_A: float = CU_KA1_A
    ka2_A: float | None = CU_KA2_A
    ka2_ratio: float | None = CU_KA2_RATIO
    anode: str | None = "Cu"
    #: A K-alpha1 monochromator named by the file's optics (e.g. "Johansson"): the beam then
    #: holds no K-alpha2, whatever K-alpha2 ratio the header repeats.
    monochromator: str | None = None


@dataclass
class Pattern:
    """One measured powder pattern.

    Attributes
    ----------
    two_theta_deg : numpy.ndarray
        Scattering angles, degrees, ascending.
    intensity : numpy.ndarray
        Counts (or count rates) per point, same length as ``two_theta_deg``.
    start_time_s, end_time_s : float or None
        POSIX seconds of the scan's start and end when the file states them.
    wavelength : Wavelength
        Wavelengths stated by the file (Cu K-alpha by default).
    source_path : Path or None
        The file read.
    metadata : dict
        Format-specific extras (sample name, instrument, counting time, ...).
    """

    two_theta_deg: np.ndarray
    intensity: np.ndarray
    start_time_s: float | None = None
    end_time_s: float | None = None
    wavelength: Wavelength = field(default_factory=Wavelength)
    source_path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.two_theta_deg.size)


def parse_timestamp_s(text: str) -> float:
    """Convert an ISO 8601 time stamp (with offset, up to 7 fraction digits) to POSIX seconds.

    A time stamp without a UTC offset is taken as UTC.
    """
    text = text.strip()
    match = re.match(r"^(.*?\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", text)
    if match:  # Python's parser wants at most 6 fraction digits on older versions
        text = f"{match.group(1)}.{match.group(2)[:6].ljust(6, '0')}{match.group(3)}"
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _finish(path: Path, two_theta: np.ndarray, intensity: np.ndarray, **kwargs: Any) -> Pattern:
    """Validate the arrays and build the Pattern (sorted by angle)."""
    if two_theta.size == 0:
        raise DataFileError(path, "contains no data points")
    if two_theta.size != intensity.size:
        raise DataFileError(path, f"has {two_theta.size} angles but {intensity.size} intensities")
    if not (np.all(np.isfinite(two_theta)) and np.all(np.isfinite(intensity))):
        raise DataFileError(path, "contains non-numeric (NaN/inf) angles or intensities")
    if two_theta.size < 2:
        raise DataFileError(path, "contains a single data point; a scan needs at least two")
    if np.any(np.diff(two_theta) < 0):
        order = np.argsort(two_theta, kind="stable")
        two_theta, intensity = two_theta[order], intensity[order]
    return Pattern(
        two_theta_deg=two_theta.astype(float),
        intensity=intensity.astype(float),
        source_path=path,
        **kwargs,
    )
