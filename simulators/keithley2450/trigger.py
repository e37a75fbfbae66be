"""The trigger model of the simulated Keithley 2450 (Model 2450 Reference Manual, TRIGger
subsystem): block programs built with ``TRIGger:BLOCk:*`` or loaded as templates
(``TRIGger:LOAD "Empty"``, ``"SimpleLoop"``, ``"DurationLoop"``), started by ``INITiate``,
stopped by ``ABORt``, watched with ``TRIGger:STATe?``.

A running trigger model runs on the instrument, in the simulated clock's time, whether or not a
host is connected or polling: each time the instrument is addressed, and each time a served
lab's clock moves (:meth:`_Trigger.tick`), it runs the blocks due by then, advancing the cell
to each reading's instant, so a buffer holds the readings a real unit would have taken
meanwhile, each stamped with its own instant. Measurements take no time here; a delay block
waits its time (a loop without one runs at most :data:`MAX_BLOCKS_PER_INSTANT` blocks at one
instant and goes on when the clock next moves). Limit branches (``BRANch:LIMit:CONStant``) and
delta branches (``BRANch:DELTa``) compare the last readings of a measure block, so a model can
end a step on the instrument at a voltage (a block ``SOURce:STATe OFF`` after the branch); a
counter branch counts from 0 again once it has let the model through (nested loops repeat, as
in the manual's example). Configuration-list blocks (``CONFig:RECall``, ``CONFig:NEXT``,
``CONFig:PREVious``) source an index of a source configuration list, such as the one a sweep
command makes of its levels: a staircase paced by delay blocks runs on the instrument. The model
ends (``IDLE``) when execution reaches a block number that holds no block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulators.keithley2450.model import _Template
from simulators.keithley2450.panel import MAX_LOOP_COUNT, _Panel
from simulators.scpi import (
    DATA_TYPE,
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    SETTINGS_CONFLICT,
    Call,
    ScpiError,
    is_string,
    no_params,
    parse_bool,
    parse_choice,
    parse_number,
    unquote,
)

MAX_BLOCKS = 255
MAX_DELAY_S = 10_000.0  # TRIGger:BLOCk:DELay:CONStant: 167 ns to 10,000 s, or 0
MAX_DURATION_S = 100_000.0  # TRIGger:LOAD "DurationLoop"
MAX_BLOCKS_PER_INSTANT = 10_000


@dataclass(frozen=True)
class _Block:
    """One trigger-model block: its kind and its arguments."""

    kind: str  # "measure", "delay", "always", "counter", "clear", "source", "nop", "duration", "limit", "delta",
    # "config_recall", "config_next", "config_prev"
    buffer: str = "defbuffer1"
    count: int = 1  # readings of a measure block (0 = none; -1 = infinite is refused here)
    seconds: float = 0.0  # a delay; a duration loop's length
    target: int = 0  # the block a branch goes to
    on: bool = False  # a source-state block
    limit: str = ""  # a limit branch's type: ABOV, BEL, IN, OUT
    low: float = 0.0  # limit A (a limit branch) or the target difference (a delta branch)
    high: float = 0.0  # limit B
    measure: int = 0  # the measure block whose readings a limit or delta branch compares (0: the previous)
    config: str = ""  # a configuration-list block's list (its recall index in ``count``)


LIMIT_TYPES = {"ABOV": "ABOV", "ABOVE": "ABOV", "BEL": "BEL", "BELOW": "BEL", "IN": "IN", "INSIDE": "IN",
               "OUT": "OUT", "OUTSIDE": "OUT"}  # fmt: skip


def _meets(block: _Block, value: float) -> bool:
    """Whether a reading meets a limit branch's criterion (ABOVe limit B, BELow limit A, ...)."""
    if block.limit == "ABOV":
        return value > block.high
    if block.limit == "BEL":
        return value < block.low
    inside = block.low <= value <= block.high
    return inside if block.limit == "IN" else not inside


class _Trigger(_Panel):
    """Trigger-model blocks, templates and their execution in simulated time."""

    def _declare_trigger(self, add: Callable[..., None]) -> None:
        add(
            "TRIGger:LOAD",
            self._cmd_trigger_load,
            'trigger-model template: "Empty"; "SimpleLoop", count[, delay[, "buffer"]] (delay, reading, '
            'count times); "DurationLoop", duration[, delay[, "buffer"]] (readings for duration s, delay '
            "between them); other templates are not simulated (-224)",
        )
        add("TRIGger:BLOCk:BUFFer:CLEar", self._cmd_block_clear, 'block n: clear a buffer: n[, "buffer"]')
        add(
            "TRIGger:BLOCk:MEASure",
            self._cmd_block_measure,
            'block n: readings into a buffer: n[, "buffer"[, count]] (count 1 by default)',
        )
        add("TRIGger:BLOCk:DELay:CONStant", self._cmd_block_delay, "block n: wait: n, 0 or 167e-9-10000 s")
        add("TRIGger:BLOCk:BRANch:ALWays", self._cmd_block_always, "block n: go to block m: n, m")
        add(
            "TRIGger:BLOCk:BRANch:COUNter",
            self._cmd_block_counter,
            "block n: go to block m until it has done so count times: n, count, m",
        )
        add(
            "TRIGger:BLOCk:BRANch:LIMit:CONStant",
            self._cmd_block_limit,
            "block n: go to block m if the last reading of a measure block meets a limit: n, ABOVe|BELow|"
            "INside|OUTside, limitA, limitB, m[, measureBlock] (0 or none: the measure block before n)",
        )
        add(
            "TRIGger:BLOCk:BRANch:DELTa",
            self._cmd_block_delta,
            "block n: go to block m if the last two readings of a measure block differ by less than the "
            "target (one reading: no difference): n, target, m[, measureBlock]",
        )
        add("TRIGger:BLOCk:SOURce:STATe", self._cmd_block_source, "block n: output ON or OFF: n, state")
        add(
            "TRIGger:BLOCk:CONFig:RECall",
            lambda c: self._cmd_block_config(c, "config_recall"),
            'block n: source the settings of an index of a source configuration list: n, "list"[, index] '
            "(index 1 by default)",
        )
        add(
            "TRIGger:BLOCk:CONFig:NEXT",
            lambda c: self._cmd_block_config(c, "config_next"),
            'block n: source the next index of a list (the first, the first time; after the last, the '
            'first again): n, "list"',
        )
        add(
            "TRIGger:BLOCk:CONFig:PREVious",
            lambda c: self._cmd_block_config(c, "config_prev"),
            'block n: source the index before (the last, the first time; before the first, the last): '
            'n, "list"',
        )
        add("TRIGger:BLOCk:NOP", self._cmd_block_nop, "block n: does nothing")
        add("TRIGger:BLOCk:LIST?", self._query_block_list, "the blocks: number, kind, arguments; one per line")
        add(
            "TRIGger:STATe?",
            self._query_trigger_state,
            "trigger model state, state, block: IDLE, RUNNING, WAITING, ABORTED, EMPTY",
        )
        add(
            "INITiate[:IMMediate]",
            self._cmd_initiate,
            "start the trigger model (with no block: one reading into defbuffer1); a loaded sweep takes "
            "its readings at this instant",
        )
        add("ABORt", self._cmd_abort, "stop the trigger model (the source stays as it is)")

    # --- building blocks ----------------------------------------------------------------
    def _block_number(self, c: Call) -> int:
        if self.trigger_running:
            raise ScpiError(*SETTINGS_CONFLICT)  # blocks are not edited while the model runs
        return int(parse_number(c.params, 1, MAX_BLOCKS))

    def _set_block(self, number: int, block: _Block) -> None:
        self.trigger_model = None  # a block program replaces a loaded sweep
        self.blocks[number] = block

    def _buffer_param(self, c: Call, index: int) -> str:
        name = self._buffer_name(c.params, index)
        self._buffer(name)  # the buffer must exist when the block is defined
        return name

    def _cmd_block_clear(self, c: Call) -> None:
        number = self._block_number(c)
        self._set_block(number, _Block("clear", self._buffer_param(c, 1)))

    def _cmd_block_measure(self, c: Call) -> None:
        number = self._block_number(c)
        buffer = self._buffer_param(c, 1)
        count = int(parse_number(c.params, 0, MAX_LOOP_COUNT, 1, index=2)) if len(c.params) > 2 else 1
        self._set_block(number, _Block("measure", buffer, count=count))

    def _cmd_block_delay(self, c: Call) -> None:
        number = self._block_number(c)
        seconds = parse_number(c.params, 0.0, MAX_DELAY_S, index=1)
        if 0 < seconds < 167e-9:
            raise ScpiError(-222, "Parameter data out of range")
        self._set_block(number, _Block("delay", seconds=seconds))

    def _cmd_block_always(self, c: Call) -> None:
        number = self._block_number(c)
        self._set_block(number, _Block("always", target=int(parse_number(c.params, 1, MAX_BLOCKS, index=1))))

    def _cmd_block_counter(self, c: Call) -> None:
        number = self._block_number(c)
        count = int(parse_number(c.params, 1, MAX_LOOP_COUNT, index=1))
        target = int(parse_number(c.params, 1, MAX_BLOCKS, index=2))
        self._set_block(number, _Block("counter", count=count, target=target))

    def _measure_param(self, c: Call, index: int) -> int:
        return int(parse_number(c.params, 0, MAX_BLOCKS, 0, index=index)) if len(c.params) > index else 0

    def _cmd_block_limit(self, c: Call) -> None:
        number = self._block_number(c)
        kind = parse_choice(c.params, LIMIT_TYPES, index=1)
        a = parse_number(c.params, -1e12, 1e12, index=2)
        b = parse_number(c.params, -1e12, 1e12, index=3)
        target = int(parse_number(c.params, 1, MAX_BLOCKS, index=4))
        low, high = min(a, b), max(a, b)  # the manual: swapped so that A is the lower limit
        if kind in ("ABOV", "BEL"):
            low, high = a, b  # the other limit is ignored
        self._set_block(number, _Block("limit", target=target, limit=kind, low=low, high=high,
                                       measure=self._measure_param(c, 5)))  # fmt: skip

    def _cmd_block_delta(self, c: Call) -> None:
        number = self._block_number(c)
        target_difference = parse_number(c.params, 0.0, 1e12, index=1)
        target = int(parse_number(c.params, 1, MAX_BLOCKS, index=2))
        self._set_block(number, _Block("delta", target=target, low=target_difference,
                                       measure=self._measure_param(c, 3)))  # fmt: skip

    def _cmd_block_source(self, c: Call) -> None:
        number = self._block_number(c)
        self._set_block(number, _Block("source", on=parse_bool(c.params, 1)))

    def _cmd_block_config(self, c: Call, kind: str) -> None:
        number = self._block_number(c)
        if len(c.params) < 2:
            raise ScpiError(*MISSING_PARAMETER)
        if not is_string(c.params[1]):
            raise ScpiError(*DATA_TYPE)
        name = unquote(c.params[1])
        levels = self.config_lists.get(name)
        if levels is None:
            raise ScpiError(*ILLEGAL_PARAMETER)  # the list must exist when the block is defined
        index = 1
        if kind == "config_recall":
            index = int(parse_number(c.params, 1, len(levels), 1, index=2)) if len(c.params) > 2 else 1
        elif len(c.params) > 2:
            raise ScpiError(-108, "Parameter not allowed")
        self._set_block(number, _Block(kind, count=index, config=name))

    def _recall(self, block: _Block, at: float) -> None:
        """A configuration-list block: the source takes the settings of the index it names."""
        levels = self.config_lists.get(block.config)
        if not levels:
            return  # the list was deleted meanwhile: nothing to source
        n = len(levels)
        index = self.trigger_list_index.get(block.config)
        if block.kind == "config_recall":
            index = min(block.count, n)
        elif block.kind == "config_next":
            index = 1 if index is None else index % n + 1
        else:
            index = n if index is None else (index - 2) % n + 1
        self.trigger_list_index[block.config] = index
        function, level = levels[index - 1]
        self._catch_up(at)  # the old level up to this instant; the new one from it
        if function != self.source_function:
            self.source_function, self.output_on = function, False
        self.source[function].level = level

    def _cmd_block_nop(self, c: Call) -> None:
        number = self._block_number(c)
        if len(c.params) > 1:
            raise ScpiError(-108, "Parameter not allowed")
        self._set_block(number, _Block("nop"))

    def _query_block_list(self, c: Call) -> str:
        no_params(c)
        rows = []
        for number, b in sorted(self.blocks.items()):
            args = {
                "measure": f'"{b.buffer}", {b.count}', "clear": f'"{b.buffer}"', "delay": f"{b.seconds:g}",
                "always": str(b.target), "counter": f"{b.count}, {b.target}", "source": "ON" if b.on else "OFF",
                "nop": "", "duration": f'"{b.buffer}", {b.seconds:g}',
                "limit": f"{b.limit}, {b.low:g}, {b.high:g}, {b.target}, {b.measure}",
                "delta": f"{b.low:g}, {b.target}, {b.measure}",
                "config_recall": f'"{b.config}", {b.count}', "config_next": f'"{b.config}"',
                "config_prev": f'"{b.config}"',
            }[b.kind]  # fmt: skip
            rows.append(f"{number}) {b.kind.upper()} {args}".rstrip())
        return ";".join(rows) if rows else "EMPTY"

    # --- templates ----------------------------------------------------------------------
    def _cmd_trigger_load(self, c: Call) -> None:
        if not c.params:
            raise ScpiError(*MISSING_PARAMETER)
        if not is_string(c.params[0]):
            raise ScpiError(*DATA_TYPE)
        if self.trigger_running:
            raise ScpiError(*SETTINGS_CONFLICT)
        name = unquote(c.params[0]).upper()
        if name == "EMPTY":
            no_params(Call(c.params[1:]))
            self.trigger_model, self.blocks = None, {}
            return
        if name not in ("SIMPLELOOP", "DURATIONLOOP"):
            raise ScpiError(*ILLEGAL_PARAMETER)
        if name == "SIMPLELOOP":
            amount = parse_number(c.params, 1, MAX_LOOP_COUNT, index=1)
        else:
            amount = parse_number(c.params, 0.01, MAX_DURATION_S, index=1)
        delay_s = parse_number(c.params, 0.0, MAX_DELAY_S, 0.0, index=2) if len(c.params) > 2 else 0.0
        buffer = self._buffer_param(c, 3)
        self.trigger_model = None
        if name == "SIMPLELOOP":  # delay, reading, count times
            self.blocks = {1: _Block("delay", seconds=delay_s), 2: _Block("measure", buffer),
                           3: _Block("counter", count=int(amount), target=1)}  # fmt: skip
        else:  # readings (a delay before each) until the duration has passed
            self.blocks = {1: _Block("duration", buffer, seconds=amount), 2: _Block("delay", seconds=delay_s),
                           3: _Block("measure", buffer), 4: _Block("duration", target=2)}  # fmt: skip

    # --- running ------------------------------------------------------------------------
    def _query_trigger_state(self, c: Call) -> str:
        no_params(c)
        self._run_trigger()
        state = self.trigger_state
        if state == "IDLE" and not self.blocks:
            state = "EMPTY"
        return f"{state};{state};{self.trigger_pc}"

    def _cmd_initiate(self, c: Call) -> None:
        template: _Template | None = self.trigger_model
        if template is not None and template.levels:
            self._run_sweep(template)
            return
        if not self.blocks:
            self._take_readings("defbuffer1")
            return
        if self.trigger_running:
            raise ScpiError(*SETTINGS_CONFLICT)
        self.trigger_state, self.trigger_pc = "RUNNING", 1
        self.trigger_counts, self.trigger_values, self.trigger_list_index = {}, {}, {}
        self.trigger_cursor_s, self.trigger_wake_s, self.trigger_end_s = self.clock.now(), None, None
        self.trigger_capped_at_s = None
        self._run_trigger()

    def _cmd_abort(self, c: Call) -> None:
        no_params(c)
        self._run_trigger()  # what was due before the abort was done
        if self.trigger_running:
            self.trigger_state = "ABORTED"

    @property
    def trigger_running(self) -> bool:
        return self.trigger_state == "RUNNING"

    def tick(self) -> None:
        """The clock moved: run what the trigger model had due by now (a served lab's clock
        calls this after each move, so a buffer fills while no host is there)."""
        if self.trigger_running:
            self._run_trigger()
            self._catch_up()

    def _run_trigger(self) -> None:
        """Run the blocks due by ``clock.now()``, each at its own instant."""
        now = self.clock.now()
        if self.trigger_capped_at_s is not None:
            if self.trigger_capped_at_s == now:
                return  # a loop without a delay had its share of this instant
            self.trigger_cursor_s, self.trigger_capped_at_s = now, None  # it ran on meanwhile
        steps = 0
        while self.trigger_running:
            if steps >= MAX_BLOCKS_PER_INSTANT:  # no delay in the loop: on at the next instant
                self.trigger_capped_at_s = now
                return
            block = self.blocks.get(self.trigger_pc)
            if block is None:
                self.trigger_state = "IDLE"
                return
            steps += 1
            at, nxt = self.trigger_cursor_s, self.trigger_pc + 1
            if block.kind == "delay":
                if self.trigger_wake_s is None:
                    self.trigger_wake_s = at + block.seconds
                if self.trigger_wake_s > now:
                    return  # waiting: the rest is run when the clock gets there
                if self.trigger_wake_s > at:
                    steps = 0  # time moved
                self.trigger_cursor_s, self.trigger_wake_s = self.trigger_wake_s, None
            elif block.kind == "measure":
                self._catch_up(at)
                reading = self._take_readings(block.buffer, count=block.count, at_s=at)
                if reading is not None:  # the last two, for limit and delta branches
                    self.trigger_values[self.trigger_pc] = (self.trigger_values.get(self.trigger_pc, (None, None))[1], reading.value)
            elif block.kind == "limit":
                value = self._compared(block)[1]
                if value is not None and _meets(block, value):
                    nxt = block.target
            elif block.kind == "delta":
                previous, value = self._compared(block)
                if previous is None or value is None or abs(previous - value) < block.low:
                    nxt = block.target
            elif block.kind == "clear":
                self._buffer(block.buffer).clear()
            elif block.kind == "source":
                self._catch_up(at)
                self.output_on = block.on
            elif block.kind in ("config_recall", "config_next", "config_prev"):
                self._recall(block, at)
            elif block.kind == "always":
                nxt = block.target
            elif block.kind == "counter":
                done = self.trigger_counts.get(self.trigger_pc, 0) + 1
                self.trigger_counts[self.trigger_pc] = done
                if done < block.count:
                    nxt = block.target
                else:  # the loop is over: counted again from 0 next time (nested loops repeat)
                    self.trigger_counts[self.trigger_pc] = 0
            elif block.kind == "duration":
                if block.target == 0:  # the loop starts: its end is fixed now
                    self.trigger_end_s = at + block.seconds
                elif self.trigger_end_s is not None and at < self.trigger_end_s:
                    nxt = block.target
            self.trigger_pc = nxt

    def _compared(self, block: _Block) -> tuple[float | None, float | None]:
        """The last two readings (oldest first) of the measure block a branch compares."""
        number = block.measure
        if number == 0:  # the measure block before the branch
            number = max((n for n, b in self.blocks.items() if b.kind == "measure" and n < self.trigger_pc), default=0)
        return self.trigger_values.get(number, (None, None))

    def _run_sweep(self, template: _Template) -> None:
        """A loaded sweep turns the output on and takes one reading per level, at this instant
        (the delays are kept, the clock is not advanced); it ends at the last level, output on."""
        self.source_function, self.output_on = template.function, True
        capacity = self._buffer(template.buffer).capacity
        for _ in range(min(template.count, max(1, capacity // len(template.levels)))):
            for level in template.levels:
                self.source[template.function].level = level
                self._catch_up()
                self._take_readings(template.buffer, count=1)
                if template.fail_abort and self._in_limit():
                    return  # the limit was reached: the sweep stops
