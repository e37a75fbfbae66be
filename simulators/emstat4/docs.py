"""The docs page ``docs/simulator-emstat4.md``, generated from the simulated EmStat4's tables:
``python -m simulators.emstat4.docs > docs/simulator-emstat4.md`` (a test checks it is up to date)."""

from __future__ import annotations

from simulators.emstat4.methodscript import DEVICE_SPECIFIC, ERROR_CODES, command_table
from simulators.emstat4.simulator import ONLINE_COMMANDS, SimulatedEmStat4


def docs_markdown() -> str:
    """The docs page ``docs/simulator-emstat4.md``, generated from the simulator's tables."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = [
        "# Simulated EmStat4: supported MethodSCRIPT",
        "",
        "Generated from `simulators/emstat4/simulator.py` and `simulators/emstat4/methodscript.py` by "
        "`python -m simulators.emstat4.docs > docs/simulator-emstat4.md` (a test checks it is up to date).",
        "",
        "## Online commands",
        "",
        "| command | reply |",
        "|---|---|",
        *(f"| `{name}` | {cell(doc)} |" for name, doc in ONLINE_COMMANDS.items()),
        "",
        "Any other command answers `<first character>!0003`; while a script runs, commands other "
        "than `Z`, `h` and `H` answer `<first character>!0006`. A served EmStat4 takes one TCP "
        "connection at a time (a second one gets `" + SimulatedEmStat4.refusal.decode().strip() + "` "
        "and is closed); when it closes, what it had not finished sending (half a line, a script "
        "still loading) is dropped, while a running script goes on and its output waits for the "
        "next connection.",
        "",
        "## Script commands",
        "",
        "| command | arguments | what the simulator does |",
        "|---|---|---|",
        *(f"| `{name}` | {cell(args)} | {cell(doc)} |" for name, args, doc in command_table()),
        "",
        "Technique ids after `M`: LSV, CV, CA, CP, OCP and EIS as in the manual and PalmSens' "
        "output; DPV, SWV, NPV, ACV and PAD follow PalmSens' technique numbering; LSP (`0013`) "
        "and GEIS (`0015`) are the simulator's assumption. An LSV from E_begin to E_end has "
        "round(abs(E_end - E_begin) / E_step) + 1 points, both ends included (-500m to 500m in "
        "10m steps: 101); each further segment of a CV scan adds round(abs(dE) / E_step). "
        "Timing: sweeps take E_step / scan_rate per point, SWV half a period per half-step, "
        "DPV/NPV/PAD sample at the end of each pulse and (DPV, PAD) just before it, EIS/GEIS "
        "three periods (at least 0.1 s) per frequency.",
        "",
        "Operands are literals (`500m`, `10i`, `0x1F`), variables or array elements (`a[i]`). "
        "Data packages carry the variable types above; `ba` currents carry status and range "
        "metadata (`,1x,2xx`), `ab` potentials a status.",
        "",
        "## Device-specific commands (refused with `!001B`)",
        "",
        "These need hardware the simulated EmStat4 does not have; a script using one is refused "
        "at load time with `!001B: Line L, Col C` and nothing runs:",
        "",
        ", ".join(f"`{name}`" for name in DEVICE_SPECIFIC),
        "",
        "## Error codes",
        "",
        "Parse errors: `!XXXX: Line L, Col C` then an empty line; runtime errors: the open "
        "scopes closed (`-`, `*`, `+`), `!XXXX: Line L`, an empty line (on_finished: is not run).",
        "",
        "| code | when the simulator sends it |",
        "|---|---|",
        *(f"| `{code:04X}` | {cell(text)} |" for code, text in ERROR_CODES.items()),
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(docs_markdown(), end="")
