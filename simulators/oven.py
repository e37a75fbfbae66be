"""Thermal model of a small laboratory oven under a PID temperature controller.

Three temperatures are tracked:

* ``heater_C`` - the heating element and the glass wall it warms (small heat capacity),
* ``air_C`` - the chamber air, where the controller's thermocouple sits (the process value),
* ``sample_C`` - the powder in its crucible, lagging the air with a first-order time constant.

Heat flows heater -> air -> ambient::

    C_h dT_h/dt = P - G_ha (T_h - T_a)
    C_a dT_a/dt = G_ha (T_h - T_a) - G_loss (T_a - T_amb)
    dT_s/dt     = (T_a - T_s) / tau_s

``P = output_pct / 100 * heater_power_W``. The controller works like a Eurotherm loop: the
working set point ramps towards the target at the set-point rate limit (``0`` = off; a new
target restarts the ramp from the present process value), the output is
``100 / XP * (e + integral / Ti - Td * dPV/dt)`` clamped to the output limits, with the
integral frozen while the output is saturated in the direction of the error (anti-windup),
derivative on the process value, bumpless transfer from manual to auto. The heater's own lag
makes the loop overshoot a little after a step.

The controller's absolute high alarm is modelled with the relay wiring that makes it an
instrument-side over-temperature limit: with ``alarm_high_C`` set, the alarm trips the moment
the process value (the air) exceeds it, within the substep, and latches; while latched the alarm
relay holds the heater's contactor open, so the heater gets no power and the working output
reads 0 % (a real controller may go on showing its demand while the contactor is open; the loop's
integral is frozen meanwhile). It resets on :meth:`OvenModel.acknowledge_alarm` once the air is
back at or below the threshold (a latching alarm cannot be acknowledged while its condition
lasts).

Integration uses fixed substeps (``OvenParams.step_s``, 1 s by default). When the loop has
settled (every temperature within ``1e-4`` C of the fixed point of the present inputs, which
is also the fixed point of the discrete scheme) the state is snapped onto that fixed point and
time jumps straight to the target, so a 24 h hold costs a handful of operations.

Samples placed in the oven relax with the temperature they actually saw: the model keeps a
buffer of ``(time_s, sample_C)`` points and hands it to every sample's
``relax_history(times_s, temperatures_C)`` (linear interpolation between points). Points are
batched: a buffer that varies is flushed at the end of each catch-up; a constant stretch
(a settled hold) is merged into two points and flushed when the temperature next changes, when
a sample is added or removed, or on :meth:`OvenModel.flush` / :attr:`OvenModel.samples`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: Temperatures closer than this to the fixed point count as settled (C).
SETTLED_TOL_C = 1e-4
#: Output closer than this to the fixed-point output counts as settled (%).
SETTLED_TOL_PCT = 1e-4


class ClockLike(Protocol):
    def now(self) -> float: ...


class SampleLike(Protocol):
    def relax_history(self, times_s: Any, temperatures_C: Any) -> Any: ...


@dataclass(frozen=True)
class OvenParams:
    """Physical constants of the oven (values chosen for a small glass oven).

    With the defaults the chamber's cooling time constant is 10 min, full power lifts the
    chamber about 240 C above ambient, and a heating step to 140 C settles within ~40 min.
    """

    ambient_C: float = 25.0
    heater_power_W: float = 600.0
    heater_capacity_J_K: float = 300.0
    chamber_capacity_J_K: float = 1500.0
    heater_to_chamber_W_K: float = 15.0
    loss_W_K: float = 2.5
    sample_lag_s: float = 120.0
    step_s: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "heater_power_W",
            "heater_capacity_J_K",
            "chamber_capacity_J_K",
            "heater_to_chamber_W_K",
            "loss_W_K",
            "sample_lag_s",
            "step_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"OvenParams.{name} must be > 0, got {getattr(self, name)}")


@dataclass
class ControllerSettings:
    """The controller's parameters (what the instrument's registers hold)."""

    target_setpoint_C: float = 25.0
    rate_limit_C_min: float = 0.0
    proportional_band_C: float = 10.0
    integral_time_s: float = 300.0
    derivative_time_s: float = 50.0
    output_high_pct: float = 100.0
    output_low_pct: float = 0.0
    manual: bool = False
    manual_output_pct: float = 0.0


class OvenModel:
    """A small oven with its PID loop, integrated lazily up to ``clock.now()``.

    Parameters
    ----------
    clock : object with ``now() -> float``
        Source of time (seconds). The model never moves by itself; every public accessor
        catches up to ``clock.now()`` first.
    params : OvenParams, optional
        Physical constants.
    settings : ControllerSettings, optional
        Initial controller settings (target set point defaults to ambient).
    start_C : float, optional
        Initial temperature of heater, air and sample (default ambient).
    """

    def __init__(
        self,
        clock: ClockLike,
        params: OvenParams | None = None,
        settings: ControllerSettings | None = None,
        start_C: float | None = None,
    ) -> None:
        self.clock = clock
        self.params = params or OvenParams()
        self.settings = settings or ControllerSettings(target_setpoint_C=self.params.ambient_C)
        t0 = self.params.ambient_C if start_C is None else float(start_C)
        self.heater_C = t0
        self.air_C = t0
        self.sample_C = t0
        self.working_setpoint_C = self.settings.target_setpoint_C
        self.output_pct = 0.0
        self._integral_C_s = 0.0
        #: Absolute high alarm threshold (C), None = no alarm.
        self.alarm_high_C: float | None = None
        #: The alarm tripped and latched: the heater is cut until acknowledged.
        self.alarm_latched = False
        self._t = clock.now()
        self._samples: list[SampleLike] = []
        self._hist_t: list[float] = [self._t]
        self._hist_T: list[float] = [t0]
        self._hist_varies = False
        #: Number of integration substeps taken (for benchmarks).
        self.substeps = 0

    # ------------------------------------------------------------------ time
    @property
    def time_s(self) -> float:
        """Time up to which the model has been integrated."""
        return self._t

    def advance(self, until_s: float | None = None) -> None:
        """Integrate up to ``until_s`` (default ``clock.now()``); never backwards."""
        target = self.clock.now() if until_s is None else float(until_s)
        if target <= self._t:
            return
        step = self.params.step_s
        while self._t < target:
            self._check_alarm()
            if self._settled():
                self._snap()
                self._t = target
                self._record(target)
                break
            dt = min(step, target - self._t)
            self._substep(dt)
            self._t = target if target - self._t <= dt else self._t + dt
            self._record(self._t)
        if self._hist_varies:
            self.flush()

    # ------------------------------------------------------------ controller
    def set_target(self, setpoint_C: float) -> None:
        """New target set point; with a rate limit the ramp restarts from the process value."""
        self.advance()
        self.settings.target_setpoint_C = float(setpoint_C)
        if self.settings.rate_limit_C_min > 0:
            self.working_setpoint_C = self.air_C
        else:
            self.working_setpoint_C = float(setpoint_C)

    def set_rate_limit(self, rate_C_min: float) -> None:
        """Set-point rate limit in C/min (0 = off: the working set point jumps)."""
        self.advance()
        if rate_C_min < 0:
            raise ValueError(f"rate limit must be >= 0 C/min, got {rate_C_min}")
        self.settings.rate_limit_C_min = float(rate_C_min)
        if rate_C_min == 0:
            self.working_setpoint_C = self.settings.target_setpoint_C

    def set_manual(self, manual: bool) -> None:
        """Switch between manual (fixed output) and automatic (PID) control, bumplessly."""
        self.advance()
        s = self.settings
        if manual and not s.manual:
            s.manual_output_pct = self.output_pct
        elif not manual and s.manual and s.integral_time_s > 0:
            e = self.working_setpoint_C - self.air_C
            self._integral_C_s = s.integral_time_s * (self.output_pct * s.proportional_band_C / 100.0 - e)
        s.manual = bool(manual)
        self._apply_manual_output()

    def set_manual_output(self, output_pct: float) -> None:
        """Output used in manual mode (%), clamped to the output limits when applied."""
        self.advance()
        self.settings.manual_output_pct = float(output_pct)
        self._apply_manual_output()

    def _apply_manual_output(self) -> None:
        s = self.settings
        if s.manual and not self.alarm_latched:
            self.output_pct = min(max(s.manual_output_pct, s.output_low_pct), s.output_high_pct)

    def update_settings(self, **changes: float) -> None:
        """Change PID terms or output limits (fields of :class:`ControllerSettings`)."""
        self.advance()
        for key, value in changes.items():
            if not hasattr(self.settings, key):
                raise AttributeError(f"unknown controller setting {key!r}")
            setattr(self.settings, key, value)

    def set_alarm_high(self, threshold_C: float | None) -> None:
        """The absolute high alarm's threshold (None: no alarm); checked from now on."""
        self.advance()
        self.alarm_high_C = None if threshold_C is None else float(threshold_C)
        self._check_alarm()

    def acknowledge_alarm(self) -> bool:
        """Reset a latched alarm if the air is back at or below the threshold; True if it did."""
        self.advance()
        if self.alarm_latched and (self.alarm_high_C is None or self.air_C <= self.alarm_high_C):
            self.alarm_latched = False
            s = self.settings
            if not s.manual and s.integral_time_s > 0:  # bumpless: the loop resumes from 0 %
                self._integral_C_s = -s.integral_time_s * (self.working_setpoint_C - self.air_C)
        return not self.alarm_latched

    def _check_alarm(self) -> None:
        if self.alarm_high_C is not None and self.air_C > self.alarm_high_C and not self.alarm_latched:
            self.alarm_latched = True
            self.output_pct = 0.0

    def ramping(self) -> bool:
        """True while the working set point is still moving towards the target."""
        self.advance()
        return self.working_setpoint_C != self.settings.target_setpoint_C

    # --------------------------------------------------------------- samples
    @property
    def samples(self) -> list[SampleLike]:
        """Samples in the oven, their histories brought up to date."""
        self.advance()
        self.flush()
        return list(self._samples)

    def add_sample(self, sample: SampleLike) -> None:
        """Put a sample in; it relaxes with the sample temperature from now on."""
        self.advance()
        self.flush()
        self._samples.append(sample)

    def remove_sample(self, sample: SampleLike) -> SampleLike:
        """Take a sample out (its history is brought up to date first)."""
        self.advance()
        self.flush()
        self._samples.remove(sample)
        return sample

    def flush(self) -> None:
        """Hand the buffered temperature history to every sample."""
        if len(self._hist_t) >= 2:
            if self._samples:
                times = np.asarray(self._hist_t, dtype=float)
                temps = np.asarray(self._hist_T, dtype=float)
                for sample in self._samples:
                    sample.relax_history(times, temps)
            self._hist_t = [self._hist_t[-1]]
            self._hist_T = [self._hist_T[-1]]
        self._hist_varies = False

    # -------------------------------------------------------------- internals
    def _record(self, t: float) -> None:
        T = self.sample_C
        ht, hT = self._hist_t, self._hist_T
        if len(ht) >= 2 and hT[-1] == T and hT[-2] == T:
            ht[-1] = t
            return
        if hT[-1] != T:
            self._hist_varies = True
        ht.append(t)
        hT.append(T)

    def _power_W(self, output_pct: float) -> float:
        return output_pct / 100.0 * self.params.heater_power_W

    def _substep(self, dt: float) -> None:
        p = self.params
        s = self.settings
        # Set-point ramp.
        target = s.target_setpoint_C
        wsp = self.working_setpoint_C
        if wsp != target:
            if s.rate_limit_C_min > 0:
                move = s.rate_limit_C_min / 60.0 * dt
                wsp = target if abs(target - wsp) <= move else wsp + math.copysign(move, target - wsp)
            else:
                wsp = target
            self.working_setpoint_C = wsp
        heater, air = self.heater_C, self.air_C
        flow_W = p.heater_to_chamber_W_K * (heater - air)
        dair = (flow_W - p.loss_W_K * (air - p.ambient_C)) / p.chamber_capacity_J_K
        lo, hi = s.output_low_pct, s.output_high_pct
        if self.alarm_latched:
            out = 0.0  # the alarm relay holds the heater's contactor open
        elif s.manual:
            out = min(max(s.manual_output_pct, lo), hi)
        else:
            e = wsp - air
            xp = s.proportional_band_C
            integ = self._integral_C_s / s.integral_time_s if s.integral_time_s > 0 else 0.0
            u = 100.0 / xp * (e + integ - s.derivative_time_s * dair)
            out = min(max(u, lo), hi)
            if s.integral_time_s > 0 and not ((u > hi and e > 0) or (u < lo and e < 0)):
                self._integral_C_s += e * dt
        self.output_pct = out
        dheater = (self._power_W(out) - flow_W) / p.heater_capacity_J_K
        self.heater_C = heater + dt * dheater
        self.air_C = air + dt * dair
        self._check_alarm()
        # Sample: exact first-order lag towards the mean air temperature of the substep.
        mean_air = air + 0.5 * dt * dair
        self.sample_C = mean_air + (self.sample_C - mean_air) * math.exp(-dt / p.sample_lag_s)
        self.substeps += 1

    def _fixed_point(self) -> tuple[float, float, float] | None:
        """(air_C, heater_C, output_pct) the loop settles at under present inputs, if any."""
        p = self.params
        s = self.settings
        if self.alarm_latched:
            return p.ambient_C, p.ambient_C, 0.0
        if s.manual:
            out = min(max(s.manual_output_pct, s.output_low_pct), s.output_high_pct)
            power = self._power_W(out)
            air = p.ambient_C + power / p.loss_W_K
        else:
            if self.working_setpoint_C != s.target_setpoint_C or s.integral_time_s <= 0:
                return None
            air = s.target_setpoint_C
            power = p.loss_W_K * (air - p.ambient_C)
            out = 100.0 * power / p.heater_power_W
            if not s.output_low_pct <= out <= s.output_high_pct:
                return None
        return air, air + power / p.heater_to_chamber_W_K, out

    def _settled(self) -> bool:
        fp = self._fixed_point()
        if fp is None:
            return False
        air, heater, out = fp
        return (
            abs(self.air_C - air) < SETTLED_TOL_C
            and abs(self.heater_C - heater) < SETTLED_TOL_C
            and abs(self.sample_C - air) < SETTLED_TOL_C
            and abs(self.output_pct - out) < SETTLED_TOL_PCT
        )

    def _snap(self) -> None:
        fp = self._fixed_point()
        assert fp is not None
        air, heater, out = fp
        s = self.settings
        self.air_C = air
        self.heater_C = heater
        self.sample_C = air
        if not s.manual and not self.alarm_latched and s.output_low_pct < out < s.output_high_pct:
            self._integral_C_s = s.integral_time_s * out * s.proportional_band_C / 100.0
        self.output_pct = out
