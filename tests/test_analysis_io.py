"""Users' data files: BioLogic .mpr/.mpt, CSV with a column map, and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis import schema as S
from analysis.biologic import mass_from_log_text, read_mpl_mass
from analysis.cli import app
from analysis.csvfile import parse_column_map
from analysis.errors import DataFileError
from analysis.mpr import read_mpr_file
from analysis.plateaus import discharge_plateaus
from analysis.readers import load_run
from analysis.steps import step_table
from analysis.synthetic import standard_cycle, synthetic_run

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "biologic"
GCPL = DATA / "250116_kigr_gen6_01_01_GCPL_CD8.mpr"
PEIS = DATA / "PEIS.mpr"
needs_data = pytest.mark.skipif(not GCPL.is_file(), reason="shared BioLogic files absent")


def raw_mpr(path: Path) -> pd.DataFrame:
    return read_mpr_file(path).table


@needs_data
def test_mpl_log_gives_the_active_mass():
    assert read_mpl_mass(GCPL.with_suffix(".mpl")) == pytest.approx(17.233e-3)


def test_mass_text_variants():
    assert mass_from_log_text("Mass of active material : 9,325 mg\n") == pytest.approx(9.325e-3)
    assert mass_from_log_text("Characteristic mass : 0.012 g\n") == pytest.approx(0.012)
    assert mass_from_log_text("Mass of active material : 0.001 mg\n") is None  # EC-Lab placeholder


@needs_data
def test_real_mpr_matches_its_raw_columns():
    meta, df = load_run(GCPL)
    raw = raw_mpr(GCPL)
    mass = 17.233e-3
    assert meta["active_mass_g"] == pytest.approx(mass)
    assert "LNMO" in meta["material"]
    np.testing.assert_allclose(df[S.TIME], raw["time/s"])
    np.testing.assert_allclose(df[S.VOLTAGE], raw["Ewe/V"])
    table = step_table(df)
    assert list(table["direction"]) == ["rest", "charge", "rest"]
    assert set(table["cycle"]) == {1}
    # the charge passed equals galvani's (Q-Qo) at the end of the current step, per gram
    q_end = raw.loc[raw["Ns"] == 1, "(Q-Qo)/mA.h"].max()
    charge = table.loc[table["direction"] == "charge", "capacity_mAh_g"].iloc[0]
    assert charge == pytest.approx(q_end / mass, rel=1e-9)
    # current from the charge counter agrees with the set-point (control/V/mA, mA)
    cc = (raw["mode"] == 1) & (raw["control/V/mA"] > 0)
    setpoint_A = raw.loc[cc, "control/V/mA"].median() / 1000
    assert df.loc[cc.to_numpy(), S.CURRENT].median() == pytest.approx(setpoint_A, rel=0.01)
    # rest of 12 h after the pulse, voltage decays
    rest = table.iloc[2]
    assert rest["duration_s"] == pytest.approx(12 * 3600, rel=0.01)
    assert rest["voltage_end_V"] < rest["voltage_start_V"]


@needs_data
def test_own_mpr_decoder_agrees_with_galvani_where_galvani_reads_the_file():
    # galvani (GPL-3.0) is not a dependency; where it happens to be installed it is an
    # independent second decoder of the same bytes
    galvani = pytest.importorskip("galvani.BioLogic")
    files = [GCPL, *sorted((DATA / "yadg").glob("*.mpr"))]
    compared = 0
    for path in files:
        try:
            theirs = pd.DataFrame(galvani.MPRfile(str(path)).data)
        except Exception:  # galvani refuses column IDs it does not know
            continue
        ours = read_mpr_file(path).table
        for col in ("time/s", "Ewe/V", "I/mA", "<I>/mA", "dq/mA.h", "(Q-Qo)/mA.h", "control/V/mA"):
            if col in theirs.columns and col in ours.columns:
                np.testing.assert_allclose(ours[col], theirs[col], rtol=1e-12, err_msg=f"{path.name} {col}")
        compared += 1
    assert compared >= 10


@needs_data
def test_mass_given_by_user_overrides_the_log():
    meta, df = load_run(GCPL, mass_mg=10.0)
    _, ref = load_run(GCPL)
    assert meta["active_mass_g"] == pytest.approx(0.010)
    np.testing.assert_allclose(df[S.CAPACITY] * 10.0, ref[S.CAPACITY] * 17.233)


@needs_data
def test_impedance_file_is_not_a_cycling_file():
    with pytest.raises(DataFileError, match="PEIS.mpr: .*not a cycling file"):
        load_run(PEIS)


@needs_data
def test_truncated_and_wrong_type_and_massless_mpr(tmp_path):
    cut = tmp_path / "cut.mpr"
    cut.write_bytes(GCPL.read_bytes()[:20000])
    with pytest.raises(DataFileError, match="cut.mpr: truncated"):
        load_run(cut, mass_mg=17.0)
    text = tmp_path / "notes.mpr"
    text.write_text("just some notes\n" * 20)
    with pytest.raises(DataFileError, match="notes.mpr: not a readable BioLogic .mpr"):
        load_run(text, mass_mg=17.0)
    lonely = tmp_path / "lonely.mpr"
    shutil.copy(GCPL, lonely)
    with pytest.raises(DataFileError, match="lonely.mpr: active mass unknown"):
        load_run(lonely)


def write_mpt(path: Path, columns: dict[str, np.ndarray], comma: bool = False, mass_mg: float = 12.5) -> None:
    header = [
        "EC-Lab ASCII FILE",
        "Nb header lines : 7",
        "",
        "Galvanostatic Cycling with Potential Limitation",
        f"Mass of active material : {mass_mg} mg".replace(".", "," if comma else "."),
        "Electrode material : Li1.17Ti0.58Ni0.25O2",
        "\t".join(columns) + "\t",
    ]
    n = len(next(iter(columns.values())))
    rows = []
    for i in range(n):
        cells = [f"{columns[c][i]:.9g}" for c in columns]
        rows.append("\t".join(x.replace(".", ",") if comma else x for x in cells) + "\t")
    path.write_text("\r\n".join(header + rows) + "\r\n", encoding="latin-1")


def mpt_columns_of(df: pd.DataFrame, mass_g: float) -> dict[str, np.ndarray]:
    cap_mAh = df[S.CAPACITY].to_numpy() * mass_g
    step = df[S.STEP].to_numpy()
    q = np.zeros(len(df))  # cumulative (Q-Qo): add each step's charge to the running total
    offset = 0.0
    for s in np.unique(step):
        sel = step == s
        q[sel] = offset + cap_mAh[sel]
        offset = q[sel][-1]
    mode = np.where(df[S.STEP_TYPE] == "rest", 3, 1)
    return {
        "mode": mode,
        "Ns": step,
        "time/s": df[S.TIME].to_numpy(),
        "Ewe/V": df[S.VOLTAGE].to_numpy(),
        "I/mA": df[S.CURRENT].to_numpy() * 1000,
        "(Q-Qo)/mA.h": q,
    }


@pytest.mark.parametrize("comma", [False, True])
def test_mpt_text_export_round_trip(tmp_path, comma):
    mass_g = 0.0125
    df = synthetic_run(standard_cycle(55.0, 150.0), active_mass_g=mass_g)
    path = tmp_path / "cell.mpt"
    write_mpt(path, mpt_columns_of(df, mass_g), comma=comma)
    meta, got = load_run(path)
    assert meta["active_mass_g"] == pytest.approx(mass_g)
    assert meta["material"] == "Li1.17Ti0.58Ni0.25O2"
    assert list(step_table(got)["direction"]) == ["charge", "rest", "discharge"]
    plateaus = discharge_plateaus(got)
    assert plateaus["ni_plateau_mAh_g"].iloc[0] == pytest.approx(55.0, abs=1e-4)
    assert plateaus["o_plateau_mAh_g"].iloc[0] == pytest.approx(150.0, abs=1e-4)


def test_malformed_mpt_files(tmp_path):
    bad = tmp_path / "plain.mpt"
    bad.write_text("time/s\tEwe/V\n1\t3.0\n")
    with pytest.raises(DataFileError, match="plain.mpt: not an EC-Lab text export"):
        load_run(bad, mass_mg=10)
    eis = tmp_path / "eis.mpt"
    write_mpt(eis, {"freq/Hz": np.array([1e4, 1e3]), "Re(Z)/Ohm": np.array([5.0, 6.0])})
    with pytest.raises(DataFileError, match="eis.mpt: impedance data"):
        load_run(eis)
    novolt = tmp_path / "novolt.mpt"
    write_mpt(novolt, {"time/s": np.array([0.0, 1.0]), "I/mA": np.array([0.1, 0.1])})
    with pytest.raises(DataFileError, match="novolt.mpt: not a cycling file: it has no Ewe/V"):
        load_run(novolt)
    empty = tmp_path / "empty.mpt"
    write_mpt(empty, {"time/s": np.array([]), "Ewe/V": np.array([]), "I/mA": np.array([])})
    with pytest.raises(DataFileError, match="empty.mpt: no data"):
        load_run(empty)


def synthetic_csv(tmp_path: Path, mass_g: float) -> Path:
    df = synthetic_run(standard_cycle(60.0, 140.0), active_mass_g=mass_g)
    theirs = pd.DataFrame(
        {
            "Test Time (h)": df[S.TIME] / 3600,
            "Voltage": df[S.VOLTAGE],
            "Current (mA)": df[S.CURRENT] * 1000,
        }
    )
    path = tmp_path / "cycler.csv"
    theirs.to_csv(path, index=False)
    return path


def test_csv_with_column_map_and_units(tmp_path):
    path = synthetic_csv(tmp_path, 0.004)
    columns = parse_column_map("time_s=Test Time (h)@h, voltage_V=Voltage, current_A=Current (mA)@mA")
    meta, df = load_run(path, mass_mg=4.0, columns=columns)
    assert meta["active_mass_g"] == pytest.approx(0.004)
    table = step_table(df)
    assert list(table["direction"]) == ["charge", "rest", "discharge"]
    np.testing.assert_allclose(table["capacity_mAh_g"], [280, 0, 210], rtol=1e-6)
    plateaus = discharge_plateaus(df)
    assert plateaus["ni_plateau_mAh_g"].iloc[0] == pytest.approx(60.0, abs=0.01)
    np.testing.assert_allclose(df[S.SPECIFIC_CURRENT].max(), 20.0)


def test_csv_errors_name_the_file_and_the_problem(tmp_path):
    path = synthetic_csv(tmp_path, 0.004)
    good = {"time_s": ("Test Time (h)", "h"), "voltage_V": "Voltage", "current_A": ("Current (mA)", "mA")}
    with pytest.raises(DataFileError, match=r"cycler.csv: missing column\(s\) \['Volts'\]"):
        load_run(path, mass_mg=4.0, columns={**good, "voltage_V": "Volts"})
    with pytest.raises(DataFileError, match="cycler.csv: .*no active mass"):
        load_run(path, columns=good)
    with pytest.raises(DataFileError, match="needs a column map"):
        load_run(path, mass_mg=4.0)
    with pytest.raises(ValueError, match="unit 'kA' not supported"):
        load_run(path, mass_mg=4.0, columns={**good, "current_A": ("Current (mA)", "kA")})
    with pytest.raises(DataFileError, match=r"data.h5: unsupported file type \.h5"):
        load_run(tmp_path / "data.h5")
    with pytest.raises(DataFileError, match="missing.mpr: file not found"):
        load_run(tmp_path / "missing.mpr", mass_mg=1.0)


def test_cli_report_from_csv_and_clear_error(tmp_path):
    path = synthetic_csv(tmp_path, 0.004)
    out = tmp_path / "rep"
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["report", str(path), "--out", str(out), "--mass-mg", "4",
         "--columns", "time_s=Test Time (h)@h,voltage_V=Voltage,current_A=Current (mA)@mA"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (out / "index.html").is_file() and (out / "cycling.png").is_file()
    res = runner.invoke(app, ["report", str(path), "--out", str(out)])
    assert res.exit_code == 2
    assert "cycler.csv: a CSV file needs a column map" in res.output
