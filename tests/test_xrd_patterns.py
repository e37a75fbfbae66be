"""Pattern readers on real lab files and on damaged files."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import DataFileError
from analysis.patterns import parse_timestamp_s, read_brml, read_pattern, read_patterns, read_xrdml, read_xy

DATA = Path(__file__).parents[2] / "shared" / "data" / "xrd"
SI_BRML = DATA / "Si-Std_SRM640d_D8D_20-97_7_16hm.brml"
CHEMINFO_BRML = DATA / "cheminfo_test.brml"
NIO_XRDML = DATA / "V2O5_0p4005-NiO_0p6016--8min.xrdml"
MNO_XY = DATA / "MnO.xy"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data file {path.name} not available")
    return path


def _strongest_deg(pattern) -> float:
    return float(pattern.two_theta_deg[np.argmax(pattern.intensity)])


def test_si_brml_under_top_level_folder_reads_all_points_and_peaks():
    pattern = read_pattern(_need(SI_BRML))
    assert len(pattern) == 9227
    assert pattern.two_theta_deg[0] == pytest.approx(10.0)
    assert pattern.two_theta_deg[-1] == pytest.approx(97.013, abs=1e-3)
    assert _strongest_deg(pattern) == pytest.approx(28.41, abs=0.05)  # Si (111)
    assert pattern.intensity.max() == pytest.approx(177925)  # the file's own statistics
    assert pattern.wavelength.ka1_A == pytest.approx(1.5406)
    assert pattern.wavelength.ka2_A == pytest.approx(1.54439)
    assert pattern.start_time_s == pytest.approx(
        datetime.fromisoformat("2025-12-01T14:33:19.411344+01:00").timestamp()
    )
    assert pattern.end_time_s > pattern.start_time_s
    assert pattern.metadata["sample_name"] == "Si-Std_SRM640d"


def test_cheminfo_brml_uses_field_definitions_for_five_column_rows():
    pattern = read_brml(_need(CHEMINFO_BRML))
    assert len(pattern) == 2443
    assert pattern.two_theta_deg[0] == pytest.approx(20.0)
    assert pattern.two_theta_deg[-1] == pytest.approx(79.997, abs=1e-3)
    assert not pattern.metadata["columns_guessed"]
    # the theta column (10..40 deg) must not be mistaken for 2theta or counts
    assert pattern.intensity.max() == pytest.approx(6933)
    assert _strongest_deg(pattern) == pytest.approx(35.6, abs=0.2)  # CuO (-111)/(002)


def test_xrdml_counts_positions_and_time_stamps():
    pattern = read_xrdml(_need(NIO_XRDML))
    assert len(pattern) == 8282
    assert pattern.two_theta_deg[0] == pytest.approx(10.009, abs=1e-3)
    assert pattern.two_theta_deg[-1] == pytest.approx(99.994, abs=1e-3)
    assert _strongest_deg(pattern) == pytest.approx(43.39, abs=0.05)  # NiO (200)
    assert pattern.end_time_s - pattern.start_time_s == pytest.approx(487.0)
    assert pattern.start_time_s == pytest.approx(
        datetime.fromisoformat("2024-11-14T15:36:28-08:00").timestamp()
    )
    assert pattern.wavelength.ka1_A == pytest.approx(1.540598)


def test_tab_separated_crlf_xy_without_header():
    pattern = read_xy(_need(MNO_XY))
    assert len(pattern) == 9001
    assert pattern.two_theta_deg[0] == pytest.approx(10.0)
    assert pattern.two_theta_deg[-1] == pytest.approx(100.0)
    assert _strongest_deg(pattern) == pytest.approx(40.59, abs=0.05)  # MnO (200)
    assert pattern.start_time_s is None and pattern.end_time_s is None


def test_xy_comment_header_gives_time_stamps_and_wavelength(tmp_path):
    path = tmp_path / "a.xy"
    path.write_bytes(
        b"# sample: test\r\n# start_time: 2026-01-01T00:00:00+00:00\r\n"
        b"# end_time: 2026-01-01T00:20:00.1234567+00:00\r\n# wavelength_ka1_A: 1.5406\r\n"
        b"20.0 10\r\n20.5\t12\r\n21.0  14\r\n"
    )
    pattern = read_pattern(path)
    assert pattern.intensity.tolist() == [10.0, 12.0, 14.0]
    assert pattern.end_time_s - pattern.start_time_s == pytest.approx(1200.1234567)
    assert pattern.wavelength.ka1_A == 1.5406 and pattern.wavelength.ka2_A is None
    assert pattern.metadata["sample"] == "test"


def test_text_header_before_data_is_kept_as_metadata(tmp_path):
    path = tmp_path / "b.xy"
    path.write_text("2Theta Intensity\n10 1\n11 2\n")
    pattern = read_pattern(path)
    assert len(pattern) == 2 and pattern.metadata["header"] == ["2Theta Intensity"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"10 1\n11 2\n12 garbage\n", "line 3"),
        (b"10 1\n11\n", "line 2 has 1 column"),
        (b"# only a header\n", "no data lines"),
        (b"\x00\xff\xfe\x00binary", "not a text file"),
        (b"", "no data lines"),
    ],
)
def test_malformed_xy_names_file_and_problem(tmp_path, content, words):
    path = tmp_path / "bad.xy"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=words) as info:
        read_pattern(path)
    assert info.value.path == path and "bad.xy" in str(info.value)


def test_truncated_brml_is_a_clear_error(tmp_path):
    data = _need(CHEMINFO_BRML).read_bytes()
    path = tmp_path / "cut.brml"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="cut.brml.*zip"):
        read_pattern(path)


def test_brml_without_data_container_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.brml"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Experiment0/RawData0.xml", "<RawData/>")
    with pytest.raises(DataFileError, match="DataContainer.xml"):
        read_pattern(path)


def test_brml_with_broken_datum_rows_is_a_clear_error(tmp_path):
    path = tmp_path / "rows.brml"
    raw = (
        '<RawData><DataRoutes><DataRoute RouteFlag="Measured">'
        "<Datum>1,1,20,5</Datum><Datum>1,1,x,6</Datum></DataRoute></DataRoutes></RawData>"
    )
    container = (
        "<DataContainer><RawDataReferenceList><string>Experiment0/RawData0.xml</string>"
        "</RawDataReferenceList></DataContainer>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Experiment0/DataContainer.xml", container)
        archive.writestr("Experiment0/RawData0.xml", raw)
    with pytest.raises(DataFileError, match="malformed"):
        read_pattern(path)


def test_truncated_xrdml_is_a_clear_error(tmp_path):
    data = _need(NIO_XRDML).read_bytes()
    path = tmp_path / "cut.xrdml"
    path.write_bytes(data[: len(data) - 500])
    with pytest.raises(DataFileError, match="not well-formed XML"):
        read_pattern(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    other = tmp_path / "scan.cpi"
    other.write_bytes(b"SIETRONICS XRD SCAN")
    with pytest.raises(DataFileError, match="unsupported suffix"):
        read_pattern(other)
    cut = tmp_path / "scan.raw"
    cut.write_bytes(b"RAW1.01")
    with pytest.raises(DataFileError, match="scan.raw: truncated Bruker .raw"):
        read_pattern(cut)
    with pytest.raises(DataFileError, match="does not exist"):
        read_pattern(tmp_path / "missing.xy")


def test_timestamp_parser_handles_bruker_seven_digit_fractions():
    assert parse_timestamp_s("2025-12-01T14:33:19.4113445+01:00") == pytest.approx(
        datetime.fromisoformat("2025-12-01T13:33:19.411344+00:00").timestamp()
    )
    assert parse_timestamp_s("2026-01-01T00:00:00Z") == 1767225600.0


RAW_V3 = DATA / "brukerraw_test.RAW"
RAW_V4 = DATA / "TwoTheta_scan_scrambled.raw"


def test_bruker_raw_v3_range_wavelengths_and_peak():
    pattern = read_pattern(_need(RAW_V3))
    assert len(pattern) == 3501  # the README of the shared data: 3501 points from 5 deg
    assert pattern.two_theta_deg[0] == pytest.approx(5.0)
    assert pattern.two_theta_deg[1] - pattern.two_theta_deg[0] == pytest.approx(0.0157156)
    assert _strongest_deg(pattern) == pytest.approx(30.18, abs=0.02)  # Ba2CaWO6 strongest line
    assert pattern.wavelength.ka1_A == pytest.approx(1.5406)
    assert pattern.wavelength.ka2_A == pytest.approx(1.54439)
    assert pattern.wavelength.anode == "Cu"


def test_bruker_raw_v4_structure_and_header():
    pattern = read_pattern(_need(RAW_V4))
    assert len(pattern) == 7134
    assert pattern.two_theta_deg[0] == pytest.approx(10.0)
    assert pattern.two_theta_deg[-1] == pytest.approx(10.0 + 7133 * 0.0105203, abs=1e-4)  # ~85.04 deg
    assert pattern.metadata["scan_name"] == "Locked Coupled"
    assert pattern.wavelength.ka1_A == pytest.approx(1.5406, abs=1e-6)
    assert (pattern.intensity < 0).any()  # scrambled upstream: noise with negative values, read as is


def test_bruker_raw_v4_truncated_range_is_named(tmp_path):
    cut = tmp_path / "cut.raw"
    cut.write_bytes(_need(RAW_V4).read_bytes()[:-1000])
    with pytest.raises(DataFileError, match="cut.raw: truncated Bruker .raw file: range 1"):
        read_pattern(cut)


def test_every_scan_of_a_multi_scan_xrdml(tmp_path):
    text = _need(NIO_XRDML).read_text(encoding="utf-8")
    start, end = text.index("<scan "), text.index("</scan>") + len("</scan>")
    second = text[start:end].replace('appendNumber="0"', 'appendNumber="1"')
    two = tmp_path / "two.xrdml"
    two.write_text(text[:end] + second + text[end:], encoding="utf-8")
    scans = read_patterns(two)
    assert [s.metadata["scan_index"] for s in scans] == [0, 1]
    np.testing.assert_array_equal(scans[0].intensity, scans[1].intensity)
    first = read_pattern(two)
    assert "2 scans" in first.metadata["warnings"][0]


def test_decimal_comma_xy(tmp_path):
    path = tmp_path / "komma.xy"
    path.write_text("# 2Theta; Intensitaet\n10,00\t100,5\n10,01\t101,5\n10,02\t99,0\n", encoding="utf-8")
    pattern = read_pattern(path)
    np.testing.assert_allclose(pattern.two_theta_deg, [10.0, 10.01, 10.02])
    np.testing.assert_allclose(pattern.intensity, [100.5, 101.5, 99.0])
    csv = tmp_path / "points.xy"
    csv.write_text("10.0,100\n10.5,120\n", encoding="utf-8")
    np.testing.assert_allclose(read_pattern(csv).intensity, [100, 120])


def test_optics_stated_in_the_si_brml():
    pattern = read_pattern(_need(SI_BRML))
    assert pattern.wavelength.monochromator == "Johansson"  # a K-alpha1 monochromator...
    assert pattern.wavelength.ka2_ratio == pytest.approx(0.5)  # ...although the header repeats 0.5
    assert pattern.metadata["geometry"] == "fixed_incidence"  # a detector scan at theta = 17 deg
    assert pattern.metadata["omega_deg"] == pytest.approx(17.0)
    assert pattern.metadata["axial_soller_deg"] == pytest.approx(2.5)
