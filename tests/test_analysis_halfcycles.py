"""Half-cycles and cycles with known answers: counters that restart, CC+CV, noisy CV sweeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import schema as S
from analysis.cycles import cycle_table
from analysis.figures import condition_label, cycling_figure, run_name
from analysis.plateaus import material_windows
from analysis.steps import half_cycle_table
from analysis.synthetic import standard_cycle, synthetic_run


def _cc_run(currents_mA_g: list[float], duration_s: float = 3600.0, dt: float = 10.0) -> pd.DataFrame:
    """Back-to-back constant-current steps, capacity counted from each step's start."""
    parts = []
    t0 = 0.0
    for k, j in enumerate(currents_mA_g):
        t = t0 + np.arange(0.0, duration_s + dt / 2, dt)
        parts.append(pd.DataFrame({
            S.TIME: t, S.VOLTAGE: 3.5 + 0.1 * np.sign(j) * (t - t0) / duration_s,
            S.CURRENT: j * 0.007 / 1000.0, S.SPECIFIC_CURRENT: j,
            S.CAPACITY: j * (t - t0) / 3600.0, S.STEP: k, S.STEP_TYPE: "cc" if j else "rest",
            S.TEMPERATURE: 25.0,
        }))  # fmt: skip
        t0 = float(t[-1])
    return pd.concat(parts, ignore_index=True)


def test_a_counter_restarting_inside_a_step_is_not_counted_as_charge():
    # EC-Lab style: one step number for a whole loop, the counter restarts at every hour
    df = _cc_run([20.0] * 4 + [-20.0] * 3)
    df[S.STEP] = np.where(df[S.SPECIFIC_CURRENT] > 0, 0, 1)
    cyc = cycle_table(df)
    assert cyc["charge_mAh_g"].iloc[0] == pytest.approx(80.0, rel=1e-9)
    assert cyc["discharge_mAh_g"].iloc[0] == pytest.approx(60.0, rel=1e-9)


def test_substeps_mark_restarts_and_gitt_rests_stay_inside_the_half_cycle():
    df = _cc_run([20.0, 0.0, 20.0, 0.0, -20.0, 0.0, -20.0])
    df["substep"] = df[S.STEP]
    df[S.STEP] = np.where(df["substep"] < 4, 1, 2)
    df[S.STEP_TYPE] = "gitt"
    halves = half_cycle_table(df)
    assert list(halves["direction"]) == ["charge", "discharge"]
    np.testing.assert_allclose(halves["capacity_mAh_g"], [40.0, 40.0], rtol=1e-9)
    assert list(cycle_table(df)["cycle"]) == [1]


def test_cc_then_cv_hold_is_one_charge_half_cycle():
    cc = _cc_run([20.0, -20.0])
    hold = cc[cc[S.STEP] == 0].copy()
    t = hold[S.TIME].to_numpy() - hold[S.TIME].iloc[0]
    j = 20.0 * np.exp(-t / 600.0)
    hold = hold.assign(**{S.TIME: t + 3600.0, S.SPECIFIC_CURRENT: j, S.CURRENT: j * 0.007e-3, S.VOLTAGE: 3.6,
                          S.CAPACITY: 20.0 * 600.0 * (1 - np.exp(-t / 600.0)) / 3600.0, S.STEP_TYPE: "cv", S.STEP: 1})  # fmt: skip
    dis = cc[cc[S.STEP] == 1].assign(**{S.TIME: lambda d: d[S.TIME] + 3600.0, S.STEP: 2})
    df = pd.concat([cc[cc[S.STEP] == 0], hold, dis], ignore_index=True)
    halves = half_cycle_table(df)
    assert list(halves["direction"]) == ["charge", "discharge"]
    assert halves["step_types"].iloc[0] == "cc+cv"
    expected = 20.0 + 20.0 * 600.0 * (1 - np.exp(-6.0)) / 3600.0
    assert halves["capacity_mAh_g"].iloc[0] == pytest.approx(expected, rel=1e-9)


def test_noise_around_zero_current_in_a_sweep_makes_no_extra_cycles():
    rng = np.random.default_rng(1)
    t = np.arange(0.0, 4 * 7200.0, 5.0)
    j = 30.0 * np.sin(2 * np.pi * t / 14400.0) + rng.normal(0.0, 0.5, t.size)  # two full cycles
    df = pd.DataFrame({S.TIME: t, S.VOLTAGE: 3.5 + 0.5 * np.sin(2 * np.pi * t / 14400.0 - np.pi / 2),
                       S.SPECIFIC_CURRENT: j, S.CURRENT: j * 0.007e-3, S.STEP: 0, S.STEP_TYPE: "sweep",
                       S.TEMPERATURE: 25.0})  # fmt: skip
    cyc = cycle_table(df.assign(**{S.CAPACITY: np.nan}), None, None)
    assert len(cyc) == 2
    half = 30.0 * 14400.0 / np.pi / 3600.0  # integral of one sine lobe
    np.testing.assert_allclose(cyc["charge_mAh_g"], half, rtol=0.01)
    np.testing.assert_allclose(cyc["discharge_mAh_g"], half, rtol=0.01)


def test_plateau_windows_only_for_materials_that_define_them():
    assert material_windows("x04") is not None and material_windows("Li1.17Ti0.58Ni0.25O2") is not None
    assert material_windows("NMC811") is None and material_windows(None) is None
    df = synthetic_run(standard_cycle())
    assert "ni_plateau_mAh_g" not in cycle_table(df, None, None).columns
    # other chemistries: nothing shaded, and the y-range is the data's
    fig = cycling_figure([({"material": "LFP", "cell": "A"}, df)])
    ax = fig.axes[0]
    assert not ax.patches
    low, _ = ax.get_ylim()
    assert low > df[S.VOLTAGE].min() - 0.2


def test_readable_condition_labels_and_run_names():
    assert condition_label({"temperature_C": 140, "duration_s": 86400}) == "24 h at 140 °C"
    assert condition_label({"temperature_C": 25.0, "duration_s": 600}) == "10 min at 25 °C"
    assert condition_label({"temperature_C": 140, "duration_s": 0}) == "0 s at 140 °C"
    name = run_name({"cell": "cell-1", "sample": "LTNO-7", "protocol": "gitt-8h", "uid": "19d4b197-aaaa"})
    assert name == "gitt-8h · LTNO-7 · 19d4b197"
    assert run_name({"cell": "T140-24h-r2", "replicate": 2}) == "T140-24h-r2"


def test_report_says_what_it_left_out_and_why(tmp_path):
    from analysis.report import build_report
    from analysis.synthetic import rest

    cycling = synthetic_run(standard_cycle())
    resting = synthetic_run([rest(3600.0, 3.9, 3.8, 50)])
    index = build_report(tmp_path, [({"cell": "A", "material": "LFP"}, cycling), ({"cell": "B"}, resting)])
    page = index.read_text()
    left = page[page.index("Left out") :]
    assert "LFP" in left and "material defines no such windows" in left
    assert "Cycling curves of B: no charge or discharge" in left
    assert (tmp_path / "cycling.png").is_file()


@pytest.mark.parametrize(
    "name", ["gcpl.pr_182.1.mpt", "gcpl.pr_182.2.mpt", "gcpl.issue_149.mpt", "bcd.issue_241.mpt"]
)
def test_half_cycles_of_real_ec_lab_files_match_ec_labs_own_counter(tmp_path, name):
    """EC-Lab's "Q charge/discharge" restarts at every half cycle; its last value per half cycle
    is what EC-Lab reports. ``analysis.cli report --json`` must give the same (0.1 %)."""
    import io
    import json

    from typer.testing import CliRunner

    from analysis.cli import app
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "biologic" / "yadg" / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    lines = path.read_bytes().decode("latin-1").splitlines()
    n_header = int(next(line for line in lines[:5] if "Nb header" in line).split(":")[1])
    body = "\n".join(lines[n_header - 1 :])
    decimal = "," if lines[n_header].count(",") > lines[n_header].count(".") else "."
    table = pd.read_csv(io.StringIO(body), sep="\t", decimal=decimal)
    ec_lab = table.groupby("half cycle")["Q charge/discharge/mA.h"].agg(lambda q: q.abs().max())
    ec_lab = ec_lab[ec_lab > 0].to_numpy()  # mA.h; with a 1 g mass, mAh/g

    result = CliRunner().invoke(
        app, ["report", str(path), "--mass-mg", "1000", "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)["runs"]
    ours = np.array([h["capacity_mAh_g"] for h in run["half_cycles"]])
    assert ours.size == ec_lab.size
    np.testing.assert_allclose(ours, ec_lab, rtol=1e-3)
