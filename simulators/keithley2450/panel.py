"""Front panel and trigger-model templates of the simulated Keithley 2450 (Model 2450 Reference
Manual, DISPlay and TRIGger subsystems): what a user script sends to show text or dim the
screen is stored and read back; a linear sweep loads a trigger model that ``INITiate`` runs (the
other trigger-model commands are :mod:`simulators.keithley2450.trigger`). Nothing here changes the
physics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulators.keithley2450.model import SENSE_FUNCTIONS, SOURCE_FUNCTIONS, _Template, sweep_list_name
from simulators.keithley2450.settings import _Settings
from simulators.scpi import (
    DATA_TYPE,
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    TOO_MUCH_DATA,
    Call,
    ScpiError,
    is_string,
    no_params,
    parse_bool,
    parse_choice,
    parse_number,
    unquote,
)

LIGHT_STATES = {"ON100": "ON100", "ON75": "ON75", "ON50": "ON50", "ON25": "ON25", "OFF": "OFF",
                "BLAC": "BLAC", "BLACKOUT": "BLAC"}  # fmt: skip
SCREENS = {
    "HOME": "HOME", "HOME_LARG": "HOME_LARG", "HOME_LARGE_READING": "HOME_LARG", "READ": "READ",
    "READING_TABLE": "READ", "GRAP": "GRAP", "GRAPH": "GRAP", "HIST": "HIST", "HISTOGRAM": "HIST",
    "SWIPE_GRAP": "SWIPE_GRAP", "SWIPE_GRAPH": "SWIPE_GRAP", "SWIPE_SETT": "SWIPE_SETT",
    "SWIPE_SETTINGS": "SWIPE_SETT", "SWIPE_SOUR": "SWIPE_SOUR", "SWIPE_SOURCE": "SWIPE_SOUR",
    "SWIPE_STAT": "SWIPE_STAT", "SWIPE_STATISTICS": "SWIPE_STAT", "SWIPE_USER": "SWIPE_USER",
    "PROC": "PROC", "PROCESSING": "PROC",
}  # fmt: skip
USER_TEXT_CHARS = 20  # the User Display's top line (USER1)
MAX_LOOP_COUNT = 268_435_455
RANGE_TYPES = {"AUTO": "AUTO", "BEST": "BEST", "FIX": "FIX", "FIXED": "FIX"}


def _digits(params: list[str]) -> int:
    digits = parse_number(params, 3, 6, 5)
    if digits != int(digits):
        raise ScpiError(*ILLEGAL_PARAMETER)
    return int(digits)


class _Panel(_Settings):
    """Display settings and the trigger-model templates."""

    display_light = "ON75"
    display_screen = "HOME"
    user_text = ""
    reading_format = "PREF"

    def _setting(
        self, header: str, group: str, attr: str, parse: Callable[[list[str]], Any], show: Callable[[Any], str],
        doc: str, functions: dict[str, str],
    ) -> None:  # fmt: skip
        """A per-function setting (``group`` is "source" or "sense"): the command parses and
        stores ``attr`` of that function's settings, the query reads it back."""

        def store(c: Call) -> None:
            setattr(getattr(self, group)[c.function], attr, parse(c.params))

        def read(c: Call) -> str:
            return show(getattr(getattr(self, group)[c.function], attr))

        self._parser.add(header, store, doc, functions)
        self._parser.add(header + "?", read, doc, functions)

    def _declare_panel(self, add: Callable[..., None]) -> None:
        add("DISPlay:LIGHt:STATe", self._cmd_light, "brightness: ON100, ON75, ON50, ON25, OFF, BLACkout")
        add("DISPlay:LIGHt:STATe?", lambda c: self.display_light, "brightness")
        add("DISPlay:SCReen", self._cmd_screen, "front-panel screen: HOME, READing_table, SWIPE_USER...")
        add("DISPlay:USER[1]:TEXT[:DATA]", self._cmd_user_text, "User Display top line, up to 20 characters")
        self._setting("DISPlay:<function>:DIGits", "sense", "digits", _digits, str,
                      "front-panel digits of a measure function: 3, 4, 5 or 6", SENSE_FUNCTIONS)  # fmt: skip
        add(
            "DISPlay:READing:FORMat", self._cmd_reading_format, "front-panel numbers: PREFix (mA) or EXPonent"
        )
        add("DISPlay:READing:FORMat?", lambda c: self.reading_format, "front-panel number format")
        add("DISPlay:CLEar", self._cmd_display_clear, "clear the User Display text")
        for suffix, step, what in (("", False, "points 2-1e6"), (":STEP", True, "step size")):
            add(
                f"SOURce[1]:SWEep:<function>:LINear{suffix}",
                lambda c, step=step: self._cmd_sweep(c, step),
                f"linear sweep: start, stop, {what}[, delay[, count[, AUTO|BEST|FIXed[, failAbort[, dual"
                '[, "buffer"]]]]]]; INITiate turns the output on and takes one reading per level at the '
                "present instant (the delay is not waited), stopping at a limit if failAbort; the levels "
                'are kept as the configuration list "VoltLinearSweepList" (or "CurrLinearSweepList")',
                SOURCE_FUNCTIONS,
            )
        add(
            "SOURce[1]:CONFiguration:LIST:SIZE?",
            self._query_list_size,
            'indexes of a source configuration list: "name" (a sweep makes "VoltLinearSweepList" or '
            '"CurrLinearSweepList" of its levels, start to stop)',
        )
    def _query_list_size(self, c: Call) -> str:
        """SOURce:CONFiguration:LIST:SIZE? "name": how many indexes the list holds."""
        if not c.params:
            raise ScpiError(*MISSING_PARAMETER)
        if not is_string(c.params[0]):
            raise ScpiError(*DATA_TYPE)
        levels = self.config_lists.get(unquote(c.params[0]))
        if levels is None:
            raise ScpiError(*ILLEGAL_PARAMETER)  # no list of that name
        return str(len(levels))

    def _cmd_light(self, c: Call) -> None:
        self.display_light = parse_choice(c.params, LIGHT_STATES)

    def _cmd_reading_format(self, c: Call) -> None:
        self.reading_format = parse_choice(c.params, {"PREF": "PREF", "PREFIX": "PREF", "EXP": "EXP",
                                                      "EXPONENT": "EXP"})  # fmt: skip

    def _cmd_screen(self, c: Call) -> None:
        self.display_screen = parse_choice(c.params, SCREENS)

    def _cmd_user_text(self, c: Call) -> None:
        if not c.params:
            raise ScpiError(*MISSING_PARAMETER)
        if not is_string(c.params[0]):
            raise ScpiError(*DATA_TYPE)
        text = unquote(c.params[0])
        self.user_text = text[:USER_TEXT_CHARS]  # the manual: shortened to fit, with an error
        if len(text) > USER_TEXT_CHARS:
            raise ScpiError(*TOO_MUCH_DATA)

    def _cmd_display_clear(self, c: Call) -> None:
        no_params(c)
        self.user_text = ""

    def _cmd_sweep(self, c: Call, step: bool = False) -> None:
        """SOURce:SWEep:<function>:LINear[:STEP] start, stop, points|step[, delay[, count[,
        rangeType[, failAbort[, dual[, "buffer"]]]]]]."""
        if len(c.params) < 3:
            raise ScpiError(*MISSING_PARAMETER)
        low, high = self._level_bounds(c.function)
        start, stop = parse_number(c.params, low, high), parse_number(c.params, low, high, index=1)
        if step:
            size = parse_number(c.params, 1e-12, 2 * high, index=2)
            points = int(abs(stop - start) / size + 1e-9) + 1
        else:
            points = int(parse_number(c.params, 2, 1e6, index=2))
        levels = [start + (stop - start) * k / max(points - 1, 1) for k in range(points)]
        given = len(c.params)
        delay_s = parse_number(c.params, 0.0, 10_000.0, 0.0, index=3) if given > 3 else 0.0
        count = int(parse_number(c.params, 1, MAX_LOOP_COUNT, 1, index=4)) if given > 4 else 1
        if given > 5:
            parse_choice(c.params, RANGE_TYPES, index=5)  # the source range: kept as it is here
        fail_abort = parse_bool(c.params, 6) if given > 6 else True
        if given > 7 and parse_bool(c.params, 7):
            levels += levels[::-1]  # dual: back from stop to start
        buffer = self._buffer_name(c.params, 8)
        self._buffer(buffer)
        self.trigger_model = _Template(buffer, count, delay_s, c.function, tuple(levels), fail_abort)
        # the source configuration list the sweep is made of (start to stop; a dual sweep's way
        # back is its trigger model's), which a block program can recall and step through too
        self.config_lists[sweep_list_name(c.function)] = [(c.function, level) for level in levels[:points]]
        self.blocks = {}  # a loaded sweep replaces a block program
