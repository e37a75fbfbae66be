"""The lab-file table of an oven under a Eurotherm 2400/3200 (``driver = "eurotherm"``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from drivers.lab_config import OvenConfig


class EurothermConfig(OvenConfig):
    """``[instruments.NAME]`` of an oven under a Eurotherm 2400/3200 (Modbus RTU on a serial
    port or pyserial URL)."""

    default_baudrate: ClassVar[int] = 19200
    driver: Literal["eurotherm"]
    address: int = Field(default=1, ge=1, le=247, description="Modbus slave address")
    series: Literal["2400", "3200"] = "2400"
