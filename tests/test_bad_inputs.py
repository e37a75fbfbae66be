"""A corpus of bad protocol, lab and campaign files and CLI misuses, run through the public CLI.

Each case is generated here from a table (nothing committed as files) and must end in one clear
error naming what is wrong, a non-zero exit, no traceback, and nothing written to the data
folder. ``relaxlab validate`` must reject every file that ``run`` / ``campaign run`` reject (the
same checks), and both must say which field is wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

# ---------------------------------------------------------------------------------------------
# helpers


def invoke(args: list[str], data: Path) -> tuple[int, str]:
    """Run the CLI as a user would (data folder from the environment too); returns (exit, output)."""
    result = CliRunner(env={"RELAXLAB_DATA": str(data)}).invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: raised {result.exception!r}\n{result.output}"
    )
    text = result.output
    assert "Traceback" not in text, f"{args}:\n{text}"
    return result.exit_code, text


def rejected(args: list[str], data: Path, expect: str) -> str:
    code, text = invoke(args, data)
    assert code != 0, f"{args} accepted a bad input:\n{text}"
    assert expect.lower() in text.lower(), f"{args}: the error does not name {expect!r}:\n{text}"
    assert not data.exists(), f"{args} wrote to the data folder: {sorted(data.rglob('*'))}"
    return text


def step_file(step: str, head: str = "name: bad\n") -> str:
    return f"{head}steps:\n  - {step}\n"


# ---------------------------------------------------------------------------------------------
# protocol files: (id, file text or bytes, what the error must name)

P = step_file
PROTOCOLS: list[tuple[str, str | bytes, str]] = [
    ("rest-1e308-s", P("rest: {duration: 1e308 s}"), "duration"),
    ("rest-11-years", P("rest: {duration: 11 years}"), "10 years"),
    ("rest-inf", P("rest: {duration: inf s}"), "duration"),
    ("rest-yaml-inf", P("rest: {duration: .inf}"), "duration"),
    ("rest-nan", P("rest: {duration: nan s}"), "duration"),
    ("rest-yaml-nan", P("rest: {duration: .nan}"), "duration"),
    ("rest-negative", P("rest: {duration: -1 h}"), "duration"),
    ("rest-zero", P("rest: {duration: 0 s}"), "duration"),
    ("rest-no-unit", P("rest: {duration: 24}"), "duration"),
    ("rest-bad-text", P("rest: {duration: 24 hours!}"), "duration"),
    ("rest-volts", P("rest: {duration: 24 V}"), "duration"),
    ("rest-bool", P("rest: {duration: true}"), "duration"),
    ("rest-list", P("rest: {duration: [1 h]}"), "duration"),
    ("rest-mapping", P("rest: {duration: {h: 1}}"), "duration"),
    ("rest-missing", P("rest: {record_interval: 1 s}"), "duration"),
    ("record-1ns", P("rest: {duration: 1 h, record_interval: 1 ns}"), "record_interval"),
    ("record-zero", P("rest: {duration: 1 h, record_interval: 0 s}"), "record_interval"),
    ("record-negative", P("rest: {duration: 1 h, record_interval: -1 s}"), "record_interval"),
    ("record-inf", P("rest: {duration: 1 h, record_interval: inf s}"), "record_interval"),
    ("record-40-days", P("rest: {duration: 1 h, record_interval: 40 day}"), "record_interval"),
    (
        "defaults-record-1us",
        "name: x\ndefaults: {record_interval: 1 us}\nsteps:\n  - rest: {duration: 1 h}\n",
        "record_interval",
    ),
    ("cc-zero-current", P("cc: {current: 0 mA/g, until: 4.8 V}"), "current"),
    ("cc-1e9-current", P("cc: {current: 1e9 mA/g, until: 4.8 V}"), "current"),
    ("cc-inf-current", P("cc: {current: inf mA/g, until: 4.8 V}"), "current"),
    ("cc-c-over-0", P("cc: {current: C/0, until: 4.8 V}"), "current"),
    ("cc-current-volts", P("cc: {current: 20 V, until: 4.8 V}"), "current"),
    ("cc-no-current", P("cc: {until: 4.8 V}"), "current"),
    ("cc-no-until", P("cc: {current: 20 mA/g}"), "until"),
    ("discharge-until-0V", P("discharge: {current: 20 mA/g, until: 0 V}"), "voltage"),
    ("discharge-until-neg", P("discharge: {current: 20 mA/g, until: -1 V}"), "voltage"),
    ("charge-until-7V", P("charge: {current: 20 mA/g, until: 7 V}"), "voltage"),
    ("charge-until-bare", P("charge: {current: 20 mA/g, until: 10}"), "until"),
    ("charge-until-extra", P("charge: {current: 20 mA/g, until: {voltage: 4.8 V, colour: red}}"), "colour"),
    ("charge-until-text", P("charge: {current: 20 mA/g, until: soon}"), "until"),
    ("charge-until-empty", P("charge: {current: 20 mA/g, until: {}}"), "until"),
    ("charge-negative", P("charge: {current: -20 mA/g, until: 4.8 V}"), "current"),
    ("charge-capacity-1e9", P("charge: {current: 20 mA/g, until: {capacity: 1e9 mAh/g}}"), "capacity"),
    ("charge-time-1e308", P("charge: {current: 20 mA/g, until: {time: 1e308 s}}"), "time"),
    (
        "duplicate-current",
        P("cc: {current: 20 mA/g, current: -20 mA/g, until: 4.8 V}"),
        "duplicate key 'current'",
    ),
    (
        "duplicate-current-block",
        "name: x\nsteps:\n  - cc:\n      current: 20 mA/g\n      until: 4.8 V\n      current: -20 mA/g\n",
        "duplicate key 'current'",
    ),
    ("duplicate-top-key", "name: a\nname: b\nsteps:\n  - rest: {duration: 1 h}\n", "duplicate key 'name'"),
    ("loop-1e9-text", P("loop: {count: 1e9, steps: [{rest: {duration: 1 h}}]}"), "count"),
    ("loop-1e9", P("loop: {count: 1000000000, steps: [{rest: {duration: 1 h}}]}"), "count"),
    ("loop-zero", P("loop: {count: 0, steps: [{rest: {duration: 1 h}}]}"), "count"),
    ("loop-fraction", P("loop: {count: 1.5, steps: [{rest: {duration: 1 h}}]}"), "count"),
    (
        "loop-nested",
        P("loop: {count: 2, steps: [{loop: {count: 2, steps: [{rest: {duration: 1 h}}]}}]}"),
        "nested",
    ),
    ("loop-heat", P("loop: {count: 2, steps: [{heat: {temperature: 140 degC, hold: 1 h}}]}"), "heat"),
    ("loop-no-steps", P("loop: {count: 2, steps: []}"), "steps"),
    (
        "loop-over-uneven",
        P("loop: {over: {a: [1 h, 2 h], b: [1 h]}, steps: [{rest: {duration: $a}}]}"),
        "over",
    ),
    (
        "loop-count-and-over",
        P("loop: {count: 2, over: {a: [1 h]}, steps: [{rest: {duration: $a}}]}"),
        "count",
    ),
    (
        "gitt-pulses-1e9",
        P("gitt: {current: C/10, pulse: 30 min, rest: 8 h, until: 4.8 V, max_pulses: 1000000000}"),
        "max_pulses",
    ),
    (
        "gitt-pulses-0",
        P("gitt: {current: C/10, pulse: 30 min, rest: 8 h, until: 4.8 V, max_pulses: 0}"),
        "max_pulses",
    ),
    ("gitt-pulse-0", P("gitt: {current: C/10, pulse: 0 s, rest: 8 h, until: 4.8 V}"), "pulse"),
    ("gitt-no-rest", P("gitt: {current: C/10, pulse: 30 min, until: 4.8 V}"), "rest"),
    ("gitt-until-0V", P("gitt: {current: C/10, pulse: 30 min, rest: 8 h, until: 0 V}"), "voltage"),
    ("sweep-rate-0", P("sweep: {start: 3 V, to: 4.8 V, rate: 0 mV/s}"), "rate"),
    ("sweep-rate-huge", P("sweep: {start: 3 V, to: 4.8 V, rate: 1e9 mV/s}"), "rate"),
    (
        "sweep-cycles-1e9",
        P("sweep: {start: 3 V, vertices: [4.8 V, 1.5 V], rate: 0.05 mV/s, cycles: 1000000000}"),
        "cycles",
    ),
    ("sweep-both", P("sweep: {start: 3 V, vertices: [4.8 V, 1.5 V], to: 4 V, rate: 0.05 mV/s}"), "either"),
    ("sweep-start-0V", P("sweep: {start: 0 V, to: 4.8 V, rate: 0.05 mV/s}"), "start"),
    ("sweep-one-vertex", P("sweep: {start: 3 V, vertices: [4.8 V], rate: 0.05 mV/s}"), "vertices"),
    ("cv-0V", P("cv: {voltage: 0 V, until: {time: 1 h}}"), "voltage"),
    ("cv-current-0", P("cv: {voltage: 4.8 V, until: {current: 0 mA/g}}"), "current"),
    ("rest-dvdt-0", P("rest: {duration: 1 h, until: {dvdt: 0 mV/h}}"), "dvdt"),
    ("rest-dvdt-huge", P("rest: {duration: 1 h, until: {dvdt: 1e9 V/s}}"), "dvdt"),
    ("heat-5000C", P("heat: {temperature: 5000 degC, hold: 1 h}"), "temperature"),
    ("heat-hold-negative", P("heat: {temperature: 140 degC, hold: -1 h}"), "hold"),
    ("heat-ramp-0", P("heat: {temperature: 140 degC, hold: 1 h, ramp: 0 degC/min}"), "ramp"),
    ("heat-plasma", P("heat: {temperature: 140 degC, hold: 1 h, atmosphere: plasma}"), "atmosphere"),
    ("xrd-every-and-scans", P("xrd: {every: 10 min, scans: 2}"), "either"),
    ("xrd-two-theta", P("xrd: {scans: 1, two_theta: [70, 15]}"), "two_theta"),
    ("xrd-last", P("xrd: {every: 10 min}"), "next step"),
    ("manual-empty", P("manual: {instruction: ''}"), "instruction"),
    ("manual-unit", P("manual: {instruction: weigh, record: {mass: bananas}}"), "unit"),
    ("unknown-step", P("dance: {duration: 1 h}"), "unknown step"),
    ("two-keys-step", P("{rest: {duration: 1 h}, cc: {current: 20 mA/g, until: 4.8 V}}"), "steps[0]"),
    ("step-string", P("rest"), "steps[0]"),
    ("step-body-list", P("rest: [1 h]"), "rest"),
    ("unknown-field", P("rest: {duration: 1 h, colour: red}"), "colour"),
    ("steps-empty", "name: x\nsteps: []\n", "steps"),
    ("steps-missing", "name: x\n", "steps"),
    ("steps-mapping", "name: x\nsteps: {rest: 1 h}\n", "steps"),
    ("name-missing", "steps:\n  - rest: {duration: 1 h}\n", "name"),
    ("name-empty", "name: ''\nsteps:\n  - rest: {duration: 1 h}\n", "name"),
    ("name-control", 'name: "a\\x07b"\nsteps:\n  - rest: {duration: 1 h}\n', "name"),
    ("name-too-long", "name: " + "n" * 300 + "\nsteps:\n  - rest: {duration: 1 h}\n", "name"),
    ("top-level-list", "- rest: {duration: 1 h}\n", "top level"),
    ("top-level-scalar", "hello\n", "top level"),
    ("empty-file", "", "top level"),
    ("undefined-parameter", P("rest: {duration: $soak}"), "$soak"),
    ("unknown-top-field", "name: x\ncolour: red\nsteps:\n  - rest: {duration: 1 h}\n", "colour"),
    ("yaml-syntax", "name: x\nsteps:\n  - rest: {duration: 1 h\n", "yaml"),
    ("yaml-tab", "name: x\nsteps:\n\t- rest: {duration: 1 h}\n", "yaml"),
    ("yaml-deep", "name: x\nsteps: " + "[" * 300 + "]" * 300 + "\n", "nested"),
    ("yaml-deep-map", "name: x\nsteps:\n  - rest: " + "{a: " * 200 + "1" + "}" * 200 + "\n", "nested"),
    ("yaml-alias-key", "name: x\n? [a, b]\n: 1\nsteps:\n  - rest: {duration: 1 h}\n", "key"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    ("latin-1", "name: caf\xe9\nsteps:\n  - rest: {duration: 1 h}\n".encode("latin-1"), "utf-8"),
    ("utf-16", "name: x\nsteps:\n  - rest: {duration: 1 h}\n".encode("utf-16"), "binary"),
    ("huge", "name: x\nsteps:\n" + "  - rest: {duration: 1 h}\n" * 120_000, "MB"),
]

# valid protocol files that `relaxlab run` must refuse on the built-in simulated lab (7 mg on a
# Keithley 2450 channel of 100 mA, cell limits 1.0-4.95 V): validate --lab refuses them too
RUN_ONLY: list[tuple[str, str, str]] = [
    ("current-above-channel", P("cc: {current: 20000 mA/g, until: 4.8 V}"), "mA the channel"),
    ("discharge-current-above-channel", P("discharge: {current: 100 C, until: 2 V}"), "mA the channel"),
    (
        "gitt-current-above-channel",
        P("gitt: {current: 50000 mA/g, pulse: 1 min, rest: 1 h, until: 4.8 V}"),
        "mA the channel",
    ),
    ("record-below-instrument", P("rest: {duration: 1 h, record_interval: 10 ms}"), "record_interval"),
    ("discharge-below-cell-limit", P("discharge: {current: 20 mA/g, until: 0.5 V}"), "safety limits"),
    ("charge-above-cell-limit", P("charge: {current: 20 mA/g, until: 5.5 V}"), "safety limits"),
    ("cv-above-cell-limit", P("cv: {voltage: 5.2 V, until: {time: 1 h}}"), "safety limits"),
    (
        "sweep-below-cell-limit",
        P("sweep: {start: 3 V, vertices: [4.8 V, 0.5 V], rate: 0.05 mV/s}"),
        "safety limits",
    ),
]


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("case", "content", "expect"), PROTOCOLS + RUN_ONLY, ids=[c[0] for c in PROTOCOLS + RUN_ONLY]
)
def test_bad_protocol_rejected_by_validate_and_run(tmp_path, case, content, expect) -> None:
    data = tmp_path / "data"
    path = _write(tmp_path / f"{case}.yaml", content)
    rejected(["validate", path, "--lab", "simulated"], data, expect)
    rejected(["run", path, "--lab", "simulated", "--data-dir", data, "--no-tiled"], data, expect)


@pytest.mark.parametrize(("case", "content", "expect"), PROTOCOLS, ids=[c[0] for c in PROTOCOLS])
def test_bad_protocol_rejected_without_a_lab(tmp_path, case, content, expect) -> None:
    rejected(["validate", _write(tmp_path / f"{case}.yaml", content)], tmp_path / "data", expect)


def test_protocol_errors_all_at_once(tmp_path) -> None:
    text = "name: x\nsteps:\n  - rest: {duration: 1e308 s}\n  - cc: {current: 0 mA/g, until: 4.8 V}\n  - rest: {duration: 1 h, record_interval: 1 ns}\n"
    out = rejected(["validate", _write(tmp_path / "p.yaml", text)], tmp_path / "data", "steps[0]")
    assert "steps[1]" in out and "steps[2]" in out


# ---------------------------------------------------------------------------------------------
# lab files

LAB = """[lab]
name = "t"

[instruments.smu1]
driver = "keithley2450"
resource = "sim"
simulated = true

[[cells]]
name = "A1"
instrument = "smu1"
active_mass = "7 mg"
"""


def lab_with(old: str, new: str) -> str:
    assert old in LAB
    return LAB.replace(old, new)


OVEN = '\n[instruments.oven1]\ndriver = "eurotherm"\nresource = "sim"\nsimulated = true\n'
LABS: list[tuple[str, str | bytes, str, str]] = [
    ("cell-name-dotdot", lab_with('name = "A1"', 'name = "../x"'), "cells.0.name", ".toml"),
    ("cell-name-dot", lab_with('name = "A1"', 'name = "."'), "cells.0.name", ".toml"),
    ("cell-name-empty", lab_with('name = "A1"', 'name = ""'), "cells.0.name", ".toml"),
    ("cell-name-slash", lab_with('name = "A1"', 'name = "a/b"'), "cells.0.name", ".toml"),
    ("cell-name-with-dot", lab_with('name = "A1"', 'name = "a.b"'), "cells.0.name", ".toml"),
    ("cell-name-space", lab_with('name = "A1"', 'name = "a b"'), "cells.0.name", ".toml"),
    ("cell-name-long", lab_with('name = "A1"', 'name = "' + "a" * 65 + '"'), "cells.0.name", ".toml"),
    ("cell-name-number", lab_with('name = "A1"', "name = 7"), "cells.0.name", ".toml"),
    ("mass-1e-300", lab_with('active_mass = "7 mg"', 'active_mass = "1e-300 g"'), "active_mass", ".toml"),
    ("mass-zero", lab_with('active_mass = "7 mg"', 'active_mass = "0 mg"'), "active_mass", ".toml"),
    ("mass-negative", lab_with('active_mass = "7 mg"', 'active_mass = "-7 mg"'), "active_mass", ".toml"),
    ("mass-inf", lab_with('active_mass = "7 mg"', 'active_mass = "inf g"'), "active_mass", ".toml"),
    ("mass-toml-inf", lab_with('active_mass = "7 mg"', "active_mass = inf"), "active_mass", ".toml"),
    ("mass-toml-nan", lab_with('active_mass = "7 mg"', "active_mass = nan"), "active_mass", ".toml"),
    ("mass-1e9-g", lab_with('active_mass = "7 mg"', 'active_mass = "1e9 g"'), "active_mass", ".toml"),
    ("mass-volts", lab_with('active_mass = "7 mg"', 'active_mass = "7 V"'), "active_mass", ".toml"),
    ("mass-missing", lab_with('active_mass = "7 mg"\n', ""), "active_mass", ".toml"),
    (
        "poll-inf",
        lab_with("simulated = true", 'simulated = true\npoll_interval = "inf s"'),
        "poll_interval",
        ".toml",
    ),
    (
        "poll-1ns",
        lab_with("simulated = true", 'simulated = true\npoll_interval = "1 ns"'),
        "poll_interval",
        ".toml",
    ),
    (
        "poll-zero",
        lab_with("simulated = true", "simulated = true\npoll_interval = 0"),
        "poll_interval",
        ".toml",
    ),
    (
        "poll-1e9",
        lab_with("simulated = true", 'simulated = true\npoll_interval = "1e9 s"'),
        "poll_interval",
        ".toml",
    ),
    ("timeout-zero", lab_with("simulated = true", 'simulated = true\ntimeout = "0 s"'), "timeout", ".toml"),
    (
        "sample-interval-1ns",
        lab_with("simulated = true", 'simulated = true\nsample_interval = "1 ns"'),
        "sample_interval",
        ".toml",
    ),
    ("baudrate-zero", lab_with("simulated = true", "simulated = true\nbaudrate = 0"), "baudrate", ".toml"),
    (
        "baudrate-huge",
        lab_with("simulated = true", "simulated = true\nbaudrate = 1000000000000"),
        "baudrate",
        ".toml",
    ),
    ("sim-not-simulated", lab_with("simulated = true", "simulated = false"), "simulated = true", ".toml"),
    (
        "simulated-remote",
        lab_with('resource = "sim"', 'resource = "TCPIP0::10.0.0.5::5025::SOCKET"'),
        "127.0.0.1",
        ".toml",
    ),
    ("driver-unknown", lab_with('driver = "keithley2450"', 'driver = "keithley2400"'), "driver", ".toml"),
    ("instrument-unknown", lab_with('instrument = "smu1"', 'instrument = "smu9"'), "smu9", ".toml"),
    ("instrument-missing", lab_with('instrument = "smu1"\n', ""), "instrument", ".toml"),
    (
        "two-cells-same-name",
        LAB + '\n[[cells]]\nname = "A1"\ninstrument = "smu1"\nchannel = 2\nactive_mass = "7 mg"\n',
        "duplicate cell name",
        ".toml",
    ),
    (
        "two-cells-same-channel",
        LAB + '\n[[cells]]\nname = "A2"\ninstrument = "smu1"\nactive_mass = "7 mg"\n',
        "already holds",
        ".toml",
    ),
    ("channel-zero", lab_with('instrument = "smu1"', 'instrument = "smu1"\nchannel = 0'), "channel", ".toml"),
    ("channel-65", lab_with('instrument = "smu1"', 'instrument = "smu1"\nchannel = 65'), "channel", ".toml"),
    (
        "limits-crossed",
        lab_with('active_mass = "7 mg"', 'active_mass = "7 mg"\nvoltage_min = "4 V"\nvoltage_max = "3 V"'),
        "voltage_min",
        ".toml",
    ),
    (
        "voltage-max-100",
        lab_with('active_mass = "7 mg"', 'active_mass = "7 mg"\nvoltage_max = "100 V"'),
        "voltage_max",
        ".toml",
    ),
    (
        "temperature-1000",
        lab_with('active_mass = "7 mg"', 'active_mass = "7 mg"\ntemperature = "1000 degC"'),
        "temperature",
        ".toml",
    ),
    (
        "extra-key",
        lab_with('active_mass = "7 mg"', 'active_mass = "7 mg"\ncolour = "red"'),
        "colour",
        ".toml",
    ),
    (
        "toml-duplicate-key",
        lab_with('active_mass = "7 mg"', 'active_mass = "7 mg"\nactive_mass = "70 mg"'),
        "active_mass",
        ".toml",
    ),
    ("toml-syntax", "[lab\nname =", "toml", ".toml"),
    (
        "cells-empty",
        "[lab]\nname = 't'\ncells = []\n[instruments.smu1]\ndriver = 'keithley2450'\nresource = 'sim'\nsimulated = true\n",
        "cells",
        ".toml",
    ),
    ("cells-missing", LAB.split("[[cells]]")[0], "cells", ".toml"),
    (
        "instruments-missing",
        "[[cells]]\nname = 'A1'\ninstrument = 'smu1'\nactive_mass = '7 mg'\n",
        "instruments",
        ".toml",
    ),
    (
        "instruments-string",
        'instruments = "smu1"\n[[cells]]\nname = "A1"\ninstrument = "smu1"\nactive_mass = "7 mg"\n',
        "instruments",
        ".toml",
    ),
    (
        "instrument-name-dotdot",
        LAB.replace("[instruments.smu1]", '[instruments."../x"]').replace('"smu1"', '"../x"'),
        "instrument name",
        ".toml",
    ),
    (
        "cell-on-oven",
        lab_with('instrument = "smu1"', 'instrument = "oven1"') + OVEN,
        "not a potentiostat",
        ".toml",
    ),
    ("over-temperature-huge", LAB + OVEN + 'over_temperature = "1e6 degC"\n', "over_temperature", ".toml"),
    ("oven-address-zero", LAB + OVEN + "address = 0\n", "address", ".toml"),
    ("seed-negative", lab_with('name = "t"', 'name = "t"\nseed = -1'), "seed", ".toml"),
    ("toml-deep", "a = " + "[" * 300 + "]" * 300 + "\n", "nested", ".toml"),
    (
        "yaml-lab-duplicate",
        "instruments:\n  smu1: {driver: keithley2450, resource: sim, simulated: true}\ncells:\n  - {name: A1, instrument: smu1, active_mass: 7 mg, active_mass: 70 mg}\n",
        "duplicate key",
        ".yaml",
    ),
    ("yaml-lab-list", "- instruments\n- cells\n", "top level", ".yaml"),
    (
        "yaml-lab-bad-mass",
        "instruments:\n  smu1: {driver: keithley2450, resource: sim, simulated: true}\ncells:\n  - {name: A1, instrument: smu1, active_mass: 1e-300 g}\n",
        "active_mass",
        ".yaml",
    ),
    ("lab-binary", b"\x00\x01\x02binary", "binary", ".toml"),
    ("lab-latin-1", LAB.replace('"t"', '"caf\xe9"').encode("latin-1"), "utf-8", ".toml"),
]


@pytest.mark.parametrize(("case", "content", "expect", "suffix"), LABS, ids=[c[0] for c in LABS])
def test_bad_lab_rejected_by_validate_and_run(tmp_path, case, content, expect, suffix) -> None:
    data = tmp_path / "data"
    lab = _write(tmp_path / f"lab{suffix}", content)
    rejected(["validate", lab], data, expect)
    rejected(["run", "relaxation-4.8V-24h", "--lab", lab, "--data-dir", data], data, expect)


def test_lab_errors_all_at_once(tmp_path) -> None:
    text = lab_with('name = "A1"', 'name = "../x"').replace(
        'active_mass = "7 mg"', 'active_mass = "1e-300 g"'
    )
    text = text.replace('instrument = "smu1"', 'instrument = "smu9"').replace(
        "simulated = true", 'simulated = true\npoll_interval = "inf s"'
    )
    out = rejected(["validate", _write(tmp_path / "lab.toml", text)], tmp_path / "data", "cells.0.name")
    for field in ("active_mass", "smu9", "poll_interval"):
        assert field in out
    assert "example" in out


# ---------------------------------------------------------------------------------------------
# campaign files

CAMPAIGN = """name: c
protocol: relaxation-4.8V-24h
replicates: 1
samples:
  batch: {id: B1}
  cell_mass: 7 mg
"""


def campaign_with(old: str, new: str) -> str:
    assert old in CAMPAIGN
    return CAMPAIGN.replace(old, new)


POWDER = "  powder: {id: P1, mass: 100 mg, charged_to: 4.8 V}\n"
HEATED = "protocol: titration-portion"
CAMPAIGNS: list[tuple[str, str | bytes, str]] = [
    ("name-escapes", campaign_with("name: c", "name: ../../x"), "name"),
    ("name-empty", campaign_with("name: c", "name: ''"), "name"),
    ("name-dot", campaign_with("name: c", "name: ."), "name"),
    ("name-hidden", campaign_with("name: c", "name: .hidden"), "name"),
    ("name-slash", campaign_with("name: c", "name: a/b"), "name"),
    ("name-backslash", campaign_with("name: c", "name: 'a\\b'"), "name"),
    ("name-long", campaign_with("name: c", "name: " + "n" * 100), "name"),
    ("name-number", campaign_with("name: c", "name: 7"), "name"),
    ("name-missing", campaign_with("name: c\n", ""), "name"),
    ("replicates-0", campaign_with("replicates: 1", "replicates: 0"), "replicates"),
    ("replicates-1e9", campaign_with("replicates: 1", "replicates: 1000000000"), "replicates"),
    ("replicates-text", campaign_with("replicates: 1", "replicates: three"), "replicates"),
    ("cell-mass-1e-300", campaign_with("cell_mass: 7 mg", "cell_mass: 1e-300 g"), "cell_mass"),
    ("cell-mass-zero", campaign_with("cell_mass: 7 mg", "cell_mass: 0 mg"), "cell_mass"),
    ("cell-mass-no-unit", campaign_with("cell_mass: 7 mg", "cell_mass: 7"), "cell_mass"),
    ("cell-mass-inf", campaign_with("cell_mass: 7 mg", "cell_mass: inf mg"), "cell_mass"),
    ("cell-mass-5kg", campaign_with("cell_mass: 7 mg", "cell_mass: 5 kg"), "cell_mass"),
    ("batch-id-escapes", campaign_with("id: B1", "id: ../x"), "id"),
    ("batch-missing", campaign_with("  batch: {id: B1}\n", ""), "batch"),
    ("samples-missing", "name: c\nprotocol: relaxation-4.8V-24h\n", "samples"),
    ("protocol-missing", campaign_with("protocol: relaxation-4.8V-24h\n", ""), "protocol"),
    (
        "protocol-unknown",
        campaign_with("protocol: relaxation-4.8V-24h", "protocol: no-such-protocol"),
        "protocol",
    ),
    ("protocol-empty", campaign_with("protocol: relaxation-4.8V-24h", "protocol: ''"), "protocol"),
    ("protocol-a-folder", campaign_with("protocol: relaxation-4.8V-24h", "protocol: /tmp"), "protocol"),
    ("matrix-unknown-parameter", CAMPAIGN + "matrix: {colour: [red, blue]}\n", "colour"),
    (
        "matrix-empty-values",
        campaign_with("protocol: relaxation-4.8V-24h", HEATED) + "matrix: {temperature: [], time: [1 h]}\n",
        "matrix",
    ),
    (
        "matrix-repeated",
        campaign_with("protocol: relaxation-4.8V-24h", HEATED).replace(
            "  batch: {id: B1}\n", "  batch: {id: B1}\n" + POWDER
        )
        + "matrix: {temperature: [140 degC, 140 degC], time: [1 h]}\n",
        "repeated",
    ),
    (
        "matrix-bad-temperature",
        campaign_with("protocol: relaxation-4.8V-24h", HEATED).replace(
            "  batch: {id: B1}\n", "  batch: {id: B1}\n" + POWDER
        )
        + "matrix: {temperature: [5000 degC], time: [1 h]}\n",
        "temperature",
    ),
    (
        "matrix-bad-time",
        campaign_with("protocol: relaxation-4.8V-24h", HEATED).replace(
            "  batch: {id: B1}\n", "  batch: {id: B1}\n" + POWDER
        )
        + "matrix: {temperature: [140 degC], time: [1e308 s]}\n",
        "hold",
    ),
    ("matrix-and-conditions", CAMPAIGN + "matrix: {a: [1]}\nconditions: [{a: 1}]\n", "not both"),
    ("conditions-empty", CAMPAIGN + "conditions: []\n", "conditions"),
    (
        "too-many-cells",
        campaign_with("protocol: relaxation-4.8V-24h", HEATED).replace("replicates: 1", "replicates: 100")
        + "matrix: {temperature: ["
        + ", ".join(f"{t} degC" for t in range(30, 60))
        + "], time: [1 h]}\n",
        "at most",
    ),
    (
        "cell-masses-unknown",
        campaign_with("cell_mass: 7 mg", "cell_mass: 7 mg\n  cell_masses: {nobody-r9: 6 mg}"),
        "nobody-r9",
    ),
    (
        "powder-too-small",
        campaign_with("  batch: {id: B1}\n", "  batch: {id: B1}\n  powder: {id: P1, mass: 1 mg}\n"),
        "cell_mass",
    ),
    (
        "portion-without-powder",
        campaign_with("cell_mass: 7 mg", "cell_mass: 7 mg\n  portion_mass: 20 mg"),
        "powder",
    ),
    (
        "cell-prefix-escapes",
        campaign_with("replicates: 1", "replicates: 1\ncell_prefix: ../x"),
        "cell_prefix",
    ),
    ("duplicate-key", campaign_with("replicates: 1", "replicates: 1\nreplicates: 3"), "duplicate key"),
    ("extra-key", campaign_with("replicates: 1", "replicates: 1\ncolour: red"), "colour"),
    ("yaml-syntax", "name: c\nsamples: {batch: {id: B1}\n", "yaml"),
    ("campaign-deep", CAMPAIGN + "matrix: {a: " + "[" * 100 + "]" * 100 + "}\n", "nested"),
    ("campaign-binary", b"name: c\x00\x00samples", "binary"),
]

# valid campaign files whose cells the simulated lab's channels cannot run: `campaign run` and
# `validate` (which checks campaigns for the simulated lab) refuse them
CAMPAIGN_PROTOCOLS: list[tuple[str, str, str]] = [
    ("campaign-current-above-channel", P("charge: {current: 20000 mA/g, until: 4.8 V}"), "mA the channel"),
    (
        "campaign-record-below-instrument",
        P("rest: {duration: 1 h, record_interval: 10 ms}"),
        "record_interval",
    ),
    ("campaign-cut-off-below-limit", P("discharge: {current: 20 mA/g, until: 0.5 V}"), "safety limits"),
]


@pytest.mark.parametrize(("case", "content", "expect"), CAMPAIGNS, ids=[c[0] for c in CAMPAIGNS])
def test_bad_campaign_rejected_by_validate_plan_and_run(tmp_path, case, content, expect) -> None:
    data = tmp_path / "data"
    path = _write(tmp_path / "campaign.yaml", content)
    rejected(["validate", path], data, expect)
    rejected(["campaign", "plan", path, "--out", tmp_path / "out"], data, expect)
    rejected(["campaign", "run", path, "--data-dir", data, "--out", tmp_path / "out"], data, expect)
    assert not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize(
    ("case", "protocol", "expect"), CAMPAIGN_PROTOCOLS, ids=[c[0] for c in CAMPAIGN_PROTOCOLS]
)
def test_campaign_the_channels_cannot_run_is_rejected(tmp_path, case, protocol, expect) -> None:
    data = tmp_path / "data"
    _write(tmp_path / "proto.yaml", protocol)
    path = _write(
        tmp_path / "campaign.yaml", campaign_with("protocol: relaxation-4.8V-24h", "protocol: proto.yaml")
    )
    rejected(["validate", path], data, expect)
    rejected(["campaign", "run", path, "--data-dir", data, "--out", tmp_path / "out"], data, expect)


def test_campaign_errors_all_at_once(tmp_path) -> None:
    text = campaign_with("name: c", "name: ../../x").replace("replicates: 1", "replicates: 0")
    text = text.replace("cell_mass: 7 mg", "cell_mass: 1e-300 g")
    text = text.replace("protocol: relaxation-4.8V-24h", HEATED).replace(
        "  batch: {id: B1}\n", "  batch: {id: B1}\n" + POWDER
    )
    text += "matrix: {temperature: [5000 degC], time: [1 h]}\n"
    out = rejected(["validate", _write(tmp_path / "c.yaml", text)], tmp_path / "data", "name")
    for field in ("replicates", "cell_mass", "5000 degC"):
        assert field in out


# ---------------------------------------------------------------------------------------------
# CLI misuse


MISUSES = 46  # rows of the table below


def _misuses(tmp: Path) -> list[tuple[str, list[str], str]]:
    a_file = _write(tmp / "a-file", "not a folder")
    good = _write(tmp / "good.yaml", CAMPAIGN)
    clock = _write(tmp / "clock.json", "{not json")
    return [
        ("plan-channels-0", ["campaign", "plan", good, "--channels", "0"], "--channels"),
        ("plan-channels-negative", ["campaign", "plan", good, "--channels", "-3"], "--channels"),
        ("plan-channels-float", ["campaign", "plan", good, "--channels", "1e3"], "--channels"),
        ("plan-ovens-0", ["campaign", "plan", good, "--ovens", "0"], "--ovens"),
        ("plan-out-under-file", ["campaign", "plan", good, "--out", a_file / "x"], "--out"),
        ("run-channels-0", ["campaign", "run", good, "--channels", "0"], "--channels"),
        ("run-channels-1e5", ["campaign", "run", good, "--channels", "100000"], "--channels"),
        ("run-ovens-0", ["campaign", "run", good, "--ovens", "0"], "--ovens"),
        ("run-seed-negative", ["campaign", "run", good, "--seed", "-1"], "--seed"),
        ("run-sim-clock-no-lab", ["campaign", "run", good, "--sim-clock", clock], "--sim-clock needs --lab"),
        (
            "run-sim-clock-bad",
            ["campaign", "run", good, "--lab", "simulated", "--sim-clock", clock],
            "clock file",
        ),
        (
            "run-sim-clock-missing",
            ["campaign", "run", good, "--lab", "simulated", "--sim-clock", tmp / "none.json"],
            "sim serve",
        ),
        ("run-out-under-file", ["campaign", "run", good, "--out", a_file / "x"], "--out"),
        ("run-data-under-file", ["campaign", "run", good, "--data-dir", a_file / "x"], "data folder"),
        ("run-campaign-missing", ["campaign", "run", tmp / "none.yaml"], "does not exist"),
        ("run-campaign-folder", ["campaign", "run", tmp], "campaign file"),
        ("run-lab-missing", ["campaign", "run", good, "--lab", tmp / "none.toml"], "does not exist"),
        ("serve-speed-0", ["sim", "serve", "--speed", "0"], "--speed"),
        ("serve-speed-negative", ["sim", "serve", "--speed", "-1"], "--speed"),
        ("serve-speed-nan", ["sim", "serve", "--speed", "nan"], "--speed"),
        ("serve-speed-inf", ["sim", "serve", "--speed", "inf"], "--speed"),
        ("serve-port-70000", ["sim", "serve", "--base-port", "70000"], "--base-port"),
        ("serve-port-0", ["sim", "serve", "--base-port", "0"], "--base-port"),
        ("serve-lab-missing", ["sim", "serve", tmp / "none.toml"], "does not exist"),
        ("serve-duration-negative", ["sim", "serve", "--duration-s", "-1"], "--duration-s"),
        ("demo-rest-negative", ["demo", "--rest-h", "-1"], "--rest-h"),
        ("demo-rest-zero", ["demo", "--rest-h", "0"], "--rest-h"),
        ("demo-rest-nan", ["demo", "--rest-h", "nan"], "--rest-h"),
        ("demo-rest-1e9", ["demo", "--rest-h", "1e9"], "--rest-h"),
        ("demo-out-under-file", ["demo", "--out", a_file / "x"], "--out"),
        ("demo-data-under-file", ["demo", "--data-dir", a_file / "x"], "data folder"),
        (
            "run-cell-unknown",
            ["run", "relaxation-4.8V-24h", "--lab", "simulated", "--cell", "nobody"],
            "nobody",
        ),
        ("run-protocol-missing", ["run", tmp / "none.yaml", "--lab", "simulated"], "does not exist"),
        ("run-protocol-folder", ["run", tmp, "--lab", "simulated"], "directory"),
        ("run-lab-folder", ["run", "relaxation-4.8V-24h", "--lab", tmp], "directory"),
        (
            "run-lab-path-to-builtin-name",
            ["run", "relaxation-4.8V-24h", "--lab", tmp / "simulated"],
            "does not exist",
        ),
        (
            "run-data-under-file",
            ["run", "relaxation-4.8V-24h", "--lab", "simulated", "--data-dir", a_file / "x"],
            "data folder",
        ),
        ("validate-nothing", ["validate"], "missing"),
        ("validate-device", ["validate", "/dev/zero"], "regular file"),
        ("validate-lab-missing", ["validate", good, "--lab", tmp / "none.toml"], "does not exist"),
        ("export-format", ["data", "export", "abc", "--format", "xls"], "--format"),
        ("export-unknown-run", ["data", "export", "abc"], "abc"),
        ("report-unknown", ["report", "nothing-here", "--out", tmp / "r"], "nothing-here"),
        ("calibrate-material-missing", ["sim", "calibrate", "--material", tmp / "none.toml"], "none.toml"),
        ("unknown-command", ["fly"], "fly"),
        ("unknown-option", ["demo", "--colour", "red"], "--colour"),
    ]


@pytest.mark.parametrize("index", range(MISUSES))
def test_cli_misuse_is_one_clear_error(tmp_path, index) -> None:
    cases = _misuses(tmp_path)
    assert len(cases) == MISUSES
    case, args, expect = cases[index]
    data = tmp_path / "data"
    rejected(args, data, expect)


def test_corpus_size() -> None:
    """The acceptance asks for at least 150 bad inputs; each is one parametrised case above."""
    total = len(PROTOCOLS) + len(RUN_ONLY) + len(LABS) + len(CAMPAIGNS) + len(CAMPAIGN_PROTOCOLS) + MISUSES
    total += len(LAB_COMBINATIONS)
    assert total >= 150


def test_the_built_in_files_are_not_rejected(tmp_path) -> None:
    """The other side of 'no wrong acceptance': every shipped protocol, campaign and lab validates."""
    from orchestrator.campaign_file import CAMPAIGNS_DIR
    from protocols.schema import EXAMPLES_DIR

    files = sorted(EXAMPLES_DIR.glob("*.yaml")) + sorted(CAMPAIGNS_DIR.glob("*.yaml"))
    files += sorted((CAMPAIGNS_DIR.parent / "labs").glob("*.toml"))
    code, text = invoke(["validate", *files], tmp_path / "data")
    assert code == 0, text
    assert text.count(": ok") == len(files)


# ---------------------------------------------------------------------------------------------
# a full disk


def test_disk_full_mid_run_is_one_line(tmp_path, monkeypatch) -> None:
    """ENOSPC while the journal is written, half-way through the syncs a whole run makes: one
    line, a non-zero exit, no traceback."""
    import errno
    import os

    import orchestrator.storage as storage

    real, calls = os.fsync, {"n": 0, "fail_at": None}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["fail_at"] is not None and calls["n"] >= calls["fail_at"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(storage.os, "fsync", fsync)
    args = ["demo", "--rest-h", "0.5", "--no-tiled", "--out", tmp_path / "o", "--data-dir"]
    code, text = invoke([*args, tmp_path / "whole"], tmp_path / "env")
    assert code == 0, text
    whole = calls["n"]
    assert whole >= 6, "the journal was hardly synced: this test no longer reaches the disk"
    calls["n"], calls["fail_at"] = 0, whole // 2
    code, text = invoke([*args, tmp_path / "d"], tmp_path / "env")
    assert calls["n"] >= whole // 2, "the run ended before the disk filled"
    assert code != 0 and "disk is full" in text, text
    assert "Traceback" not in text


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_export_to_a_full_disk_is_one_line(tmp_path) -> None:
    from orchestrator.lab import load_lab
    from orchestrator.runner import Session
    from protocols.plans import relaxation_protocol

    session = Session(load_lab("simulated"), data_dir=tmp_path / "d", tiled=False)
    try:
        (uid,) = session.run(relaxation_protocol(session.channel(), rest_s=600.0))
    finally:
        session.close()
    code, text = invoke(
        ["data", "export", uid[:8], "--out", "/dev/full", "--data-dir", tmp_path / "d"], tmp_path / "env"
    )
    assert code != 0 and "disk is full" in text, text


# protocols a given lab's instrument cannot run (what the instrument can do, from the lab file)
EMSTAT_LR = LAB.replace('driver = "keithley2450"', 'driver = "emstat4"\nmodel = "LR"')
LOW_COMPLIANCE = LAB.replace("simulated = true", 'simulated = true\ncompliance = "4 V"')
LAB_COMBINATIONS: list[tuple[str, str, str, str]] = [
    ("emstat-lr-above-3V", EMSTAT_LR, P("charge: {current: 20 mA/g, until: 4.8 V}"), "EmStat4 LR"),
    ("emstat-lr-above-10mA", EMSTAT_LR, P("charge: {current: 2000 mA/g, until: 2.9 V}"), "mA the channel"),
    ("emstat-below-smallest-range", EMSTAT_LR, P("charge: {current: 1e-9 mA/g, until: 2.9 V}"), "can set"),
    (
        "keithley-above-compliance",
        LOW_COMPLIANCE,
        P("charge: {current: 20 mA/g, until: 4.5 V}"),
        "compliance",
    ),
]


@pytest.mark.parametrize(
    ("case", "lab", "protocol", "expect"), LAB_COMBINATIONS, ids=[c[0] for c in LAB_COMBINATIONS]
)
def test_protocol_the_lab_cannot_run_is_rejected(tmp_path, case, lab, protocol, expect) -> None:
    data = tmp_path / "data"
    lab_path = _write(tmp_path / "lab.toml", lab)
    path = _write(tmp_path / "p.yaml", protocol)
    rejected(["validate", path, "--lab", lab_path], data, expect)
    rejected(["run", path, "--lab", lab_path, "--data-dir", data], data, expect)
    campaign = _write(tmp_path / "c.yaml", campaign_with("protocol: relaxation-4.8V-24h", "protocol: p.yaml"))
    rejected(["validate", campaign, "--lab", lab_path], data, expect)
    rejected(
        ["campaign", "run", campaign, "--lab", lab_path, "--data-dir", data, "--out", tmp_path / "o"],
        data,
        expect,
    )
