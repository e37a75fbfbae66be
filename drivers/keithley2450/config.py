"""The lab-file table of a Keithley 2450 (``driver = "keithley2450"``)."""

from __future__ import annotations

from typing import Literal

from drivers.lab_config import InstrumentConfig, Volts


class Keithley2450Config(InstrumentConfig):
    """``[instruments.NAME]`` of a Keithley 2450 (a VISA resource: USB, GPIB, TCPIP)."""

    driver: Literal["keithley2450"]
    compliance: Volts = 5.0
