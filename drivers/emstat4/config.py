"""The lab-file table of a PalmSens EmStat4 (``driver = "emstat4"``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from drivers.lab_config import InstrumentConfig, Interval


class EmStat4Config(InstrumentConfig):
    """``[instruments.NAME]`` of a PalmSens EmStat4 (a serial port or pyserial URL)."""

    default_baudrate: ClassVar[int] = 921600
    driver: Literal["emstat4"]
    model: Literal["HR", "LR"] = "HR"
    sample_interval: Interval = 1.0
