"""Telemetry: where live numbers (tank temperatures, live demand) come from, behind one small protocol."""

from heatsched.telemetry.source import (
    Sample,
    TelemetryError,
    TemperatureSource,
    parse_instant_vector,
)

__all__ = ["Sample", "TelemetryError", "TemperatureSource", "parse_instant_vector"]
