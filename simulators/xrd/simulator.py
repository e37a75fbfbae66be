"""Simulated in-situ lab diffractometer that exports finished scans like vendor software.

A Bruker D8 running a repeated-scan job writes one file per finished scan into an export
folder; nothing else is exposed. :class:`SimulatedDiffractometer` does the same on an injected
clock: scans follow each other back to back (plus an optional dead time); when
:meth:`SimulatedDiffractometer.catch_up` is called it writes every scan that has finished by
``clock.now()``, atomically (temporary hidden name, then rename, mtime set to the scan end).

The pattern is a Cu K-alpha1/K-alpha2 powder pattern of a cubic rock-salt (Fm-3m) phase with
structure-factor intensities (cation/anion form factors, multiplicity, Lorentz-polarisation,
Debye-Waller), Caglioti peak widths, the hcp beryllium reflections of the cell window, a
sloping background with an amorphous hump, and seeded Poisson counting noise.

The lattice parameter is taken from a callable (e.g. ``cell.sample.lattice_A``) that knows only
the present. Every call of :meth:`~SimulatedDiffractometer.observe` or
:meth:`~SimulatedDiffractometer.catch_up` records ``(now, lattice_A())``; a scan uses the time
average of the piecewise-linear record over the scan window. Call ``catch_up`` a few times per
scan (the XRD driver does so before every poll); with a single record the value is constant.

This module imports nothing from drivers/analysis: it has its own tiny writers.
"""

from __future__ import annotations

import io
import itertools
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from xml.sax.saxutils import quoteattr

import numpy as np

CU_KA1_A = 1.54056
CU_KA2_A = 1.54439
CU_KA2_RATIO = 0.5

#: Beryllium (hcp) cell parameters, Angstrom.
BE_A_A = 2.2858
BE_C_A = 3.5843
#: Be reflections (h, k, l) and relative heights *(chosen, close to a Be powder pattern)*.
BE_REFLECTIONS: tuple[tuple[tuple[int, int, int], float], ...] = (
    ((1, 0, 0), 0.25),
    ((0, 0, 2), 0.25),
    ((1, 0, 1), 1.0),
    ((1, 0, 2), 0.12),
    ((1, 1, 0), 0.12),
    ((1, 0, 3), 0.12),
)

#: Atomic numbers and form-factor fall-off b (f ~ Z exp(-b s^2), s = sin(theta)/lambda).
FORM_FACTORS: dict[str, tuple[float, float]] = {
    "Li": (3.0, 14.0),
    "O": (8.0, 9.0),
    "Mn": (25.0, 6.4),
    "Ti": (22.0, 6.7),
    "Co": (27.0, 6.3),
    "Ni": (28.0, 6.2),
}
#: Cation site occupancy of Li1.17Ti0.58Ni0.25O2 (per cation site).
LTNO_CATIONS: dict[str, float] = {"Li": 0.585, "Ti": 0.29, "Ni": 0.125}


class _Clock(Protocol):
    def now(self) -> float: ...


def bragg_two_theta_deg(d_A: np.ndarray | float, wavelength_A: float) -> np.ndarray:
    """2theta (degrees) for spacing ``d_A``; NaN when out of reach."""
    s = wavelength_A / (2.0 * np.asarray(d_A, dtype=float))
    with np.errstate(invalid="ignore"):
        return np.degrees(2.0 * np.arcsin(np.where(s <= 1.0, s, np.nan)))


def caglioti_fwhm_deg(two_theta_deg: float, u: float, v: float, w: float) -> float:
    """FWHM (degrees) from the Caglioti relation FWHM^2 = U tan^2(theta) + V tan(theta) + W."""
    t = np.tan(np.radians(two_theta_deg / 2.0))
    return float(np.sqrt(max(u * t * t + v * t + w, 1e-6)))


def rocksalt_reflections(max_index: int = 6) -> list[tuple[tuple[int, int, int], int]]:
    """Fm-3m reflections (all even or all odd h, k, l) with their multiplicities, by d."""
    groups: dict[tuple[int, int, int], int] = {}
    rng = range(-max_index, max_index + 1)
    for h, k, l in itertools.product(rng, rng, rng):  # noqa: E741
        if (h, k, l) == (0, 0, 0) or len({h % 2, k % 2, l % 2}) != 1:
            continue
        i, j, m = sorted((abs(h), abs(k), abs(l)), reverse=True)
        groups[(i, j, m)] = groups.get((i, j, m), 0) + 1
    return sorted(groups.items(), key=lambda item: sum(i * i for i in item[0]))


@dataclass(frozen=True)
class ScanRecord:
    """What the simulator wrote for one scan (``lattice_A`` is the true scan average)."""

    index: int
    paths: tuple[Path, ...]
    start_s: float
    end_s: float
    lattice_A: float


class SimulatedDiffractometer:
    """Repeated-scan diffractometer writing one pattern file per finished scan.

    Parameters
    ----------
    clock : object with ``now() -> float``
        Source of (simulated) time, POSIX seconds.
    export_dir : str or Path
        Folder the files appear in (created if missing).
    lattice_A : callable
        Returns the sample's present cubic lattice parameter (Angstrom).
    scan_time_s : float
        Duration of one scan.
    two_theta_start_deg, two_theta_stop_deg, step_deg : float
        Scan range and step (defaults give 2501 points over 20-100 degrees).
    formats : sequence of {"xy", "brml"}
        File formats written per scan (each scan writes one file per format).
    seed : int
        Seed of the counting noise (each scan draws from ``(seed, scan index)``).
    start_s : float, optional
        Start of the first scan (default: ``clock.now()`` at construction).
    dead_time_s : float
        Pause between the end of one scan and the start of the next.
    prefix : str
        File name stem; files are ``{prefix}_{number:04d}.{ext}`` numbered from 1.
    peak_counts : float
        Height of the strongest sample reflection for a 20-minute scan (scales with time).
    background_counts : float
        Flat background level for a 20-minute scan.
    caglioti_uvw : tuple of float
        U, V, W (degrees squared) of the peak width.
    eta : float
        Lorentzian fraction of the pseudo-Voigt profile.
    cation_occupancy : mapping
        Cation-site occupancy by element (default Li1.17Ti0.58Ni0.25O2).
    be_window : bool
        Include the beryllium window reflections.
    be_relative_height : float
        Height of Be (101) relative to the strongest sample reflection.
    sample_name : str
        Written into file headers.
    """

    def __init__(
        self,
        clock: _Clock,
        export_dir: str | Path,
        lattice_A: Callable[[], float],
        *,
        scan_time_s: float = 1200.0,
        two_theta_start_deg: float = 20.0,
        two_theta_stop_deg: float = 100.0,
        step_deg: float = 0.032,
        formats: Sequence[str] = ("xy",),
        seed: int = 0,
        start_s: float | None = None,
        dead_time_s: float = 0.0,
        prefix: str = "scan",
        peak_counts: float = 4000.0,
        background_counts: float = 300.0,
        caglioti_uvw: tuple[float, float, float] = (0.02, -0.01, 0.02),
        eta: float = 0.5,
        cation_occupancy: Mapping[str, float] = LTNO_CATIONS,
        be_window: bool = True,
        be_relative_height: float = 0.4,
        sample_name: str = "in-situ cell",
    ) -> None:
        if scan_time_s <= 0:
            raise ValueError(f"scan_time_s must be > 0, got {scan_time_s}")
        if dead_time_s < 0:
            raise ValueError(f"dead_time_s must be >= 0, got {dead_time_s}")
        if not two_theta_stop_deg > two_theta_start_deg or step_deg <= 0:
            raise ValueError("need two_theta_stop_deg > two_theta_start_deg and step_deg > 0")
        unknown = set(formats) - {"xy", "brml"}
        if unknown or not formats:
            raise ValueError(f"formats must be a non-empty subset of ('xy', 'brml'), got {formats}")
        missing = set(cation_occupancy) - set(FORM_FACTORS)
        if missing:
            raise ValueError(f"no form factor for {sorted(missing)}")
        self.clock = clock
        self.export_dir = Path(export_dir)
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self.lattice_A = lattice_A
        self.scan_time_s = float(scan_time_s)
        self.dead_time_s = float(dead_time_s)
        n = int(round((two_theta_stop_deg - two_theta_start_deg) / step_deg)) + 1
        self.two_theta_deg = two_theta_start_deg + step_deg * np.arange(n)
        self.formats = tuple(formats)
        self.seed = int(seed)
        self.start_s = float(clock.now() if start_s is None else start_s)
        self.prefix = prefix
        self.peak_counts = float(peak_counts)
        self.background_counts = float(background_counts)
        self.caglioti_uvw = caglioti_uvw
        self.eta = float(eta)
        self.cation_occupancy = dict(cation_occupancy)
        self.be_window = be_window
        self.be_relative_height = float(be_relative_height)
        self.sample_name = sample_name
        self.written: list[ScanRecord] = []
        self._next_index = 0
        self._history: list[tuple[float, float]] = []
        self._reflections = rocksalt_reflections()
        self.observe()

    # ------------------------------------------------------------------ timing / lattice
    def scan_window(self, index: int) -> tuple[float, float]:
        """Start and end (POSIX seconds) of scan ``index`` (0-based)."""
        start = self.start_s + index * (self.scan_time_s + self.dead_time_s)
        return start, start + self.scan_time_s

    def observe(self) -> None:
        """Record the lattice parameter now (call often enough to follow its changes)."""
        now = float(self.clock.now())
        value = float(self.lattice_A())
        if self._history and now <= self._history[-1][0]:
            self._history[-1] = (self._history[-1][0], value)
        else:
            self._history.append((now, value))

    def mean_lattice_A(self, start_s: float, end_s: float) -> float:
        """Time average of the recorded lattice parameter over ``[start_s, end_s]``."""
        times = np.array([t for t, _ in self._history])
        values = np.array([v for _, v in self._history])
        inside = times[(times > start_s) & (times < end_s)]
        knots = np.concatenate(([start_s], inside, [end_s]))
        vals = np.interp(knots, times, values)
        return float(np.trapezoid(vals, knots) / (end_s - start_s))

    def catch_up(self) -> list[Path]:
        """Record the lattice now and write every scan finished by ``clock.now()``.

        Returns the paths written (possibly none).
        """
        self.observe()
        now = self.clock.now()
        paths: list[Path] = []
        while True:
            start, end = self.scan_window(self._next_index)
            if end > now:
                break
            paths.extend(self._write_scan(self._next_index, start, end))
            self._next_index += 1
        if self._history:  # forget records older than the next scan's start (keep one)
            start, _ = self.scan_window(self._next_index)
            keep = max(0, int(np.searchsorted([t for t, _ in self._history], start)) - 1)
            del self._history[:keep]
        return paths

    # ----------------------------------------------------------------------------- physics
    def pattern(self, a_A: float, rng: np.random.Generator | None = None) -> np.ndarray:
        """Counts at :attr:`two_theta_deg` for lattice parameter ``a_A`` (noise-free if no rng)."""
        x = self.two_theta_deg
        scale = self.scan_time_s / 1200.0
        u, v, w = self.caglioti_uvw
        peaks: list[tuple[float, float]] = []  # (K-alpha1 position, integrated-ish intensity)
        for hkl, mult in self._reflections:
            q2 = sum(i * i for i in hkl)
            d = a_A / np.sqrt(q2)
            tt = float(bragg_two_theta_deg(d, CU_KA1_A))
            if not np.isfinite(tt) or tt > x[-1] + 2.0:
                continue
            if tt < x[0] - 2.0:
                continue
            s2 = 1.0 / (4.0 * d * d)
            f_cat = sum(
                occ * FORM_FACTORS[el][0] * np.exp(-FORM_FACTORS[el][1] * s2)
                for el, occ in self.cation_occupancy.items()
            )
            f_o = FORM_FACTORS["O"][0] * np.exp(-FORM_FACTORS["O"][1] * s2)
            f = 4.0 * (f_cat + f_o) if hkl[0] % 2 == 0 else 4.0 * (f_cat - f_o)
            theta = np.radians(tt / 2.0)
            lp = (1.0 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
            debye_waller = np.exp(-2.0 * 0.6 * s2)
            peaks.append((tt, f * f * mult * lp * debye_waller))
        fwhms = [caglioti_fwhm_deg(tt, u, v, w) for tt, _ in peaks]
        heights = np.array([i / fw for (_, i), fw in zip(peaks, fwhms, strict=True)])
        heights *= self.peak_counts * scale / heights.max()
        lines = [(tt, fw, h) for (tt, _), fw, h in zip(peaks, fwhms, heights, strict=True)]
        if self.be_window:
            be_height = self.be_relative_height * self.peak_counts * scale
            for (h, k, l), rel in BE_REFLECTIONS:  # noqa: E741
                inv_d2 = 4.0 / 3.0 * (h * h + h * k + k * k) / BE_A_A**2 + l * l / BE_C_A**2
                tt = float(bragg_two_theta_deg(1.0 / np.sqrt(inv_d2), CU_KA1_A))
                if np.isfinite(tt) and x[0] - 2 < tt < x[-1] + 2:
                    lines.append((tt, 0.7 * caglioti_fwhm_deg(tt, u, v, w), be_height * rel))
        y = self._doublets(x, np.array(lines).reshape(-1, 3))
        b = self.background_counts * scale
        y += b * (0.7 + 0.3 * (30.0 / x) ** 1.5) + 0.4 * b * np.exp(-0.5 * ((x - 24.0) / 5.0) ** 2)
        if rng is None:
            return y
        return rng.poisson(y).astype(float)

    def _doublets(self, x: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """Sum of K-alpha doublets; ``lines`` rows are (K-alpha1 2theta, FWHM, height)."""
        tt1, fwhm, height = lines[:, 0], lines[:, 1], lines[:, 2]
        s = np.sin(np.radians(tt1 / 2.0)) * CU_KA2_A / CU_KA1_A
        tt2 = np.degrees(2.0 * np.arcsin(np.minimum(s, 1.0)))
        centres = np.concatenate((tt1, tt2))[:, None]
        u = (x[None, :] - centres) / (0.5 * np.concatenate((fwhm, fwhm))[:, None])
        u2 = u * u
        shape = self.eta / (1.0 + u2) + (1.0 - self.eta) * np.exp(-np.log(2.0) * u2)
        weights = np.concatenate((height, CU_KA2_RATIO * height))
        return weights @ shape

    # ------------------------------------------------------------------------------ files
    def _write_scan(self, index: int, start_s: float, end_s: float) -> list[Path]:
        a_A = self.mean_lattice_A(start_s, end_s)
        counts = self.pattern(a_A, np.random.default_rng([self.seed, index]))
        stem = f"{self.prefix}_{index + 1:04d}"
        paths = []
        for fmt in self.formats:
            if fmt == "xy":
                data = _xy_bytes(self.two_theta_deg, counts, start_s, end_s, self.sample_name)
            else:
                data = _brml_bytes(
                    self.two_theta_deg, counts, start_s, end_s, self.scan_time_s, self.sample_name
                )
            paths.append(_write_atomically(self.export_dir / f"{stem}.{fmt}", data, end_s))
        self.written.append(ScanRecord(index, tuple(paths), start_s, end_s, a_A))
        return paths


def _iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, tz=UTC).isoformat(timespec="microseconds")


def _write_atomically(path: Path, data: bytes, mtime_s: float) -> Path:
    """Write under a hidden temporary name, set mtime, then rename into place.

    The rename makes the finished file appear at once (what a watcher relies on). No fsync:
    surviving a power cut is not part of the simulation, and it cost more than the write.
    """
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.utime(tmp, (mtime_s, mtime_s))
    os.replace(tmp, path)
    return path


def _xy_bytes(x: np.ndarray, y: np.ndarray, start_s: float, end_s: float, sample: str) -> bytes:
    header = [
        "# relaxlab simulated diffractometer",
        f"# sample: {sample}",
        f"# start_time: {_iso(start_s)}",
        f"# end_time: {_iso(end_s)}",
        "# anode: Cu",
        f"# wavelength_ka1_A: {CU_KA1_A}",
        f"# wavelength_ka2_A: {CU_KA2_A}",
        f"# ka2_ratio: {CU_KA2_RATIO}",
    ]
    # one %-format over all rows (counts are whole numbers; %d truncates like int())
    body = "%.4f\t%d\n" * x.size % tuple(np.column_stack((x, y)).ravel().tolist())
    return ("\n".join(header) + "\n" + body).encode()


_XML_HEAD = '<?xml version="1.0"?>\n'
_NS = 'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def _brml_bytes(
    x: np.ndarray, y: np.ndarray, start_s: float, end_s: float, scan_time_s: float, sample: str
) -> bytes:
    """A Bruker-like .brml zip (root layout, like DIFFRAC.SUITE exports)."""
    per_step = scan_time_s / x.size
    container = (
        f'{_XML_HEAD}<DataContainer {_NS} RawDataLength="1">\n'
        "  <CreatingVersion>relaxlab-sim</CreatingVersion>\n"
        "  <RawDataReferenceList>\n    <string>Experiment0/RawData0.xml</string>\n"
        "  </RawDataReferenceList>\n"
        f'  <MeasurementInfo UserName="relaxlab" SampleName={quoteattr(sample)} />\n'
        f'  <TotalMeasurementTime Unit="s" Value="{scan_time_s}" />\n'
        "</DataContainer>\n"
    )
    step = float(x[1] - x[0])
    rows = "\n".join(
        f"      <Datum>{per_step:.4g},1,{a:.4f},{a / 2:.4f},{int(b)}</Datum>"
        for a, b in zip(x, y, strict=True)
    )
    field = (
        '            <FieldDefinitions FieldName="{0}" AxisId="{0}">\n'
        "              <VisibleName>{1}</VisibleName>\n"
        "            </FieldDefinitions>\n"
    )
    raw = (
        f'{_XML_HEAD}<RawData {_NS} PlannedTimePerStep="0">\n'
        "  <MeasurementStatus>Measured</MeasurementStatus>\n"
        f"  <TimeStampStarted>{_iso(start_s)}</TimeStampStarted>\n"
        f"  <TimeStampFinished>{_iso(end_s)}</TimeStampFinished>\n"
        "  <DataRoutes>\n"
        '    <DataRoute RouteFlag="Measured" ProcLevel="0" ProcLevelPre="0">\n'
        '      <ScanInformation ScanName="LockedCoupled" VisibleName="Coupled TwoTheta/Theta">\n'
        f"        <MeasurementPoints>{x.size}</MeasurementPoints>\n"
        f"        <TimePerStep>{per_step:.6g}</TimePerStep>\n"
        "        <ScanAxes>\n"
        '          <ScanAxisInfo AxisId="TwoTheta" AxisName="TwoTheta" Unit="°">\n'
        f"            <Start>{x[0]:.6g}</Start>\n            <Stop>{x[-1]:.6g}</Stop>\n"
        f"            <Increment>{step:.9g}</Increment>\n"
        "          </ScanAxisInfo>\n"
        "        </ScanAxes>\n"
        "      </ScanInformation>\n"
        f"{rows}\n"
        "      <DataViews>\n"
        '        <RawDataView xsi:type="FixedRawDataView" Start="0" Length="1" '
        'LogicName="MeasuredTime" Unit="s" />\n'
        '        <RawDataView xsi:type="FixedRawDataView" Start="1" Length="1" '
        'LogicName="AbsorptionFactor" Unit="" />\n'
        '        <RawDataView xsi:type="VaryingRawDataView" Start="2" Length="2">\n'
        '          <Varying xsi:type="VaryingStepData2D" LogicName="ScanAxes" VectorLength="2">\n'
        + field.format("TwoTheta", "2Theta")
        + field.format("Theta", "Theta")
        + "          </Varying>\n"
        "        </RawDataView>\n"
        '        <RawDataView xsi:type="RecordedRawDataView" Start="4" Length="1" '
        'MeasuredDataIndex="0">\n'
        '          <Recording LogicName="ScanCounter" Category="Count">\n'
        '            <Unit Prefix="None" Base="Counts" />\n'
        "          </Recording>\n"
        "        </RawDataView>\n"
        "      </DataViews>\n"
        "    </DataRoute>\n"
        "  </DataRoutes>\n"
        "  <FixedInformation>\n"
        '    <Instrument xsi:type="GoniometerInfo">\n      <PrimaryTracks>\n'
        '        <TrackInfoData LogicName="PrimaryTrack">\n          <MountedOptics>\n'
        '            <InfoData xsi:type="TubeMountInfoData" LogicName="TubeMount">\n'
        "              <Tube>\n"
        f'                <WaveLengthAlpha1 Unit="Å" Value="{CU_KA1_A}" />\n'
        f'                <WaveLengthAlpha2 Unit="Å" Value="{CU_KA2_A}" />\n'
        f'                <WaveLengthRatio Unit="" Value="{CU_KA2_RATIO}" />\n'
        "                <TubeMaterial>Cu</TubeMaterial>\n"
        "              </Tube>\n            </InfoData>\n"
        "          </MountedOptics>\n        </TrackInfoData>\n"
        "      </PrimaryTracks>\n    </Instrument>\n  </FixedInformation>\n"
        "</RawData>\n"
    )
    collection = (
        f"{_XML_HEAD}<ExperimentCollection {_NS}>\n"
        "  <CreatingVersion>relaxlab-sim</CreatingVersion>\n</ExperimentCollection>\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("experimentCollection.xml", collection.encode("utf-8"))
        archive.writestr("Experiment0/DataContainer.xml", container.encode("utf-8"))
        archive.writestr("Experiment0/RawData0.xml", raw.encode("utf-8"))
    return buffer.getvalue()
