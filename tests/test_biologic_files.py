"""The BioLogic reader on 81 public EC-Lab files (yadg's test corpus, ../shared/data/biologic/yadg).

Every file either loads with a charge that matches EC-Lab's own counter per half cycle to 0.1 %
and its .mpr/.mpt twin, or is refused with a one-line reason; none gives a silently wrong capacity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import schema as S
from analysis.biologic import counter_segments, frame_from_biologic, read_biologic, read_mpt_table
from analysis.errors import DataFileError
from analysis.mpr import read_mpr_file
from analysis.readers import load_run
from tests.conftest import SHARED_DATA

YADG = SHARED_DATA / "biologic" / "yadg"
FILES = sorted(YADG.glob("*.mp[rt]")) if YADG.is_dir() else []
needs_corpus = pytest.mark.skipif(len(FILES) < 81, reason="../shared/data/biologic/yadg absent")
MASS_MG = 1.0


def raw_table(path: Path):
    return read_mpr_file(path).table if path.suffix == ".mpr" else read_mpt_table(path)[0]


def charge_per_point_mAh(df, mass_mg: float) -> np.ndarray:
    """Charge of each row from the capacity column (capacity restarts at each step)."""
    cap = df[S.CAPACITY].to_numpy(float) * mass_mg / 1000.0
    step = df[S.STEP].to_numpy()
    inc = np.diff(cap, prepend=0.0)
    starts = np.concatenate(([True], step[1:] != step[:-1]))
    inc[starts] = cap[starts]
    return inc


def test_corpus_is_complete():
    if not YADG.is_dir():
        pytest.skip("../shared/data/biologic/yadg absent")
    assert len(FILES) == 81


@needs_corpus
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_matches_ec_labs_counter_or_is_refused_in_one_line(path):
    try:
        meta, df = load_run(path, mass_mg=MASS_MG)
    except DataFileError as exc:
        assert "\n" not in str(exc) and exc.problem, exc
        return
    assert len(df) > 0 and np.isfinite(df[S.CAPACITY]).all()
    raw = raw_table(path)
    rows = read_biologic(path, MASS_MG / 1000.0)[2]["source_rows"]
    if "Q charge/discharge/mA.h" not in raw.columns or "half cycle" not in raw.columns:
        return
    # EC-Lab's counter over each of its runs (half cycles, restarting where the current turns)
    ours = np.zeros(len(raw))
    ours[rows] = charge_per_point_mAh(df, MASS_MG)
    cum = np.cumsum(ours)
    dq = raw["dq/mA.h"].to_numpy(float) if "dq/mA.h" in raw.columns else np.diff(cum, prepend=0.0)
    q_ec = raw["Q charge/discharge/mA.h"].to_numpy(float)
    scale = np.abs(q_ec).max()
    kept = np.zeros(len(raw), dtype=bool)
    kept[rows] = True
    checked = 0
    for a, b in counter_segments(raw, dq):
        if not kept[b] or (a > 0 and not kept[a - 1]):
            continue  # an impedance row's charge moved to the next kept row
        got = cum[b] - (cum[a - 1] if a else 0.0)
        assert got == pytest.approx(q_ec[b], rel=1e-3, abs=1e-3 * max(abs(q_ec[b]), 1e-3 * scale)), (a, b)
        checked += 1
    assert checked > 0


TWINS = [p for p in FILES if p.suffix == ".mpr" and p.with_suffix(".mpt").is_file()]


@needs_corpus
@pytest.mark.parametrize("mpr", TWINS, ids=lambda p: p.stem)
def test_mpr_and_its_mpt_export_agree(mpr):
    outcomes = []
    for path in (mpr, mpr.with_suffix(".mpt")):
        try:
            outcomes.append(load_run(path, mass_mg=MASS_MG))
        except DataFileError as exc:
            outcomes.append(exc.problem.split(":")[0].split(" (")[0])
    a, b = outcomes
    assert type(a) is type(b), outcomes
    if isinstance(a, str):
        assert a == b
        return
    (_, da), (_, db) = a, b
    assert len(da) == len(db)
    np.testing.assert_allclose(da[S.TIME], db[S.TIME], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(da[S.VOLTAGE], db[S.VOLTAGE], rtol=1e-6, atol=1e-6)
    cap_scale = max(float(np.abs(da[S.CAPACITY]).max()), 1e-12)
    np.testing.assert_allclose(da[S.CAPACITY], db[S.CAPACITY], atol=1e-5 * cap_scale)
    assert (da[S.STEP].to_numpy() == db[S.STEP].to_numpy()).all()


@needs_corpus
def test_placeholder_mass_is_no_mass_and_asks_for_mass_mg():
    # cp.issue_61.mpt states EC-Lab's default "Characteristic mass : 0.001 g"
    with pytest.raises(DataFileError, match=r"placeholder.*--mass-mg"):
        load_run(YADG / "cp.issue_61.mpt")
    meta, df = load_run(YADG / "cp.issue_61.mpt", mass_mg=2.0)
    assert meta["active_mass_g"] == pytest.approx(2.0e-3)
    _, df1 = load_run(YADG / "cp.issue_61.mpt", mass_mg=1.0)
    np.testing.assert_allclose(df[S.CAPACITY] * 2.0, df1[S.CAPACITY])  # the user's mass, nothing else


@needs_corpus
def test_real_mass_in_the_header_is_used():
    meta, _ = load_run(YADG / "gcpl.issue_226.CxN.mpt")
    assert meta["active_mass_g"] == pytest.approx(1.39e-3)
    assert meta["material"] == "Test material"


def test_q_minus_qo_restarts_are_not_counted_as_charge():
    # GITT-like loops (charge 1 mA for 30 min, rest 30 min) whose (Q-Qo) restarts from 0 at each
    # loop, as EC-Lab does in some techniques, with no dq column: each pulse passes 0.5 mAh and
    # the restarts are not counted as charge
    t = np.arange(0.0, 3 * 3600.0, 60.0)
    loop = (t // 3600).astype(int)
    pulse = (t % 3600) < 1800
    i_mA = np.where(pulse, 1.0, 0.0)
    i_mA[0] = 1.0
    q = np.zeros_like(t)
    q[0] = i_mA[0] * 60.0 / 3600.0  # EC-Lab records the charge passed up to each point
    for k in range(1, len(t)):
        q[k] = (0.0 if loop[k] != loop[k - 1] else q[k - 1]) + i_mA[k] * 60.0 / 3600.0
    raw = pd.DataFrame(
        {
            "time/s": t,
            "Ewe/V": 3.5 + 0.1 * pulse,
            "I/mA": i_mA,
            "(Q-Qo)/mA.h": q,
            "Ns": np.where(pulse, 0, 1),
            "mode": np.where(pulse, 1, 3),
        }
    )
    df, notes = frame_from_biologic(raw, Path("gitt.mpt"), 1e-3)
    assert "3 restarts" in notes["charge_source"] or "2 restarts" in notes["charge_source"]
    ends = df.groupby(S.STEP)[S.CAPACITY].agg(lambda c: c.iloc[-1]).to_numpy()
    np.testing.assert_allclose(ends[0::2], 500.0, rtol=1e-9)  # 0.5 mAh per 1 mg, each pulse
    np.testing.assert_allclose(ends[1::2], 0.0, atol=1e-9)  # the rests pass nothing


@needs_corpus
def test_average_columns_spelt_with_brackets_around_the_unit():
    meta, df = load_run(YADG / "coc.issue_185.mpt", mass_mg=1.0)  # "<Ewe/V>"
    assert df[S.VOLTAGE].between(-5, 6).all() and len(df) == 24
    meta, df = load_run(YADG / "ocv.issue_149.mpt")  # "<Ewe/V>", open circuit, no mass
    assert meta["rest_only"] and meta["active_mass_g"] is None
    assert (df[S.CURRENT] == 0).all() and (df[S.CAPACITY] == 0).all()


@needs_corpus
def test_modulo_bat_with_impedance_steps_uses_its_cycling_rows():
    meta, df = load_run(YADG / "mb.mpt", mass_mg=1.0)
    assert any("impedance" in w for w in meta["warnings"])
    assert len(df) == 1028 and df[S.STEP_TYPE].isin(["cc", "cv", "rest"]).all()


@needs_corpus
def test_rest_only_files_load_without_a_mass():
    for name in ("ocv.mpt", "ocv.mpr", "vsp_ocv_wo.mpr", "ocv.old.mpt"):
        meta, df = load_run(YADG / name)
        assert meta["rest_only"], name
        assert (df[S.CURRENT] == 0).all() and (df[S.STEP_TYPE] == "rest").all()


@needs_corpus
def test_unknown_column_ids_of_known_size_are_skipped_not_refused():
    # mb.issue_223.mpr carries IDs 368 and 981 (not in our table) next to each other at the end
    mpr = read_mpr_file(YADG / "mb.issue_223.mpr")
    assert mpr.info["skipped_ids"] == [368, 981]
    mpt, _ = read_mpt_table(YADG / "mb.issue_223.mpt")
    np.testing.assert_allclose(mpr.table["Ewe/V"], mpt["Ewe/V"], rtol=1e-6)
    # IDs 182 (step time), 185/215 (<Ece>) are in our table
    cv = read_mpr_file(YADG / "cv.issue_217.mpr")
    assert {"step time/s", "<Ece>/V"} & set(cv.table.columns)


@needs_corpus
def test_empty_electrode_material_and_start_time():
    meta, _ = load_run(YADG / "cp.issue_61.mpt", mass_mg=1.0)
    assert meta["material"] == ""
    assert meta["start_time"] == "2023-11-08T16:06:15"  # "Acquisition started on : 11/08/2023 16:06:15.633"
    meta_b, _ = load_run(YADG / "cp.issue_61.mpr", mass_mg=1.0)
    assert meta_b["start_time"] == "2023-11-08T16:06:15"


@needs_corpus
def test_decimal_comma_export_equals_the_decimal_point_one():
    _, a = load_run(YADG / "mb.issue_95.mpt", mass_mg=1.0)
    _, b = load_run(YADG / "mb.issue_95.de.mpt", mass_mg=1.0)
    np.testing.assert_allclose(a[S.CAPACITY], b[S.CAPACITY], rtol=1e-6)
    assert len(pd.concat([a, b])) == len(a) + len(b)  # two runs of equal length join


@needs_corpus
@pytest.mark.parametrize("path", [p for p in FILES if p.suffix == ".mpr"], ids=lambda p: p.name)
def test_without_restarts_the_total_charge_is_ec_labs_final_q_minus_qo(path):
    try:
        meta, df, notes = read_biologic(path, MASS_MG / 1000.0)
    except DataFileError:
        return
    raw = raw_table(path)
    if meta["charge_source"] != "EC-Lab's (Q-Qo) counter":  # dq-based files: see above
        return
    q = raw["(Q-Qo)/mA.h"].to_numpy(float)
    total = charge_per_point_mAh(df, MASS_MG).sum()
    # the charge of rows left out (impedance) lands on the next kept row; after the last kept
    # row nothing is counted
    last = notes["source_rows"][-1]
    assert total == pytest.approx(q[last], rel=1e-5, abs=1e-7 * max(np.abs(q).max(), 1e-12))
