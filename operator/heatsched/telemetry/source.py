"""The `TemperatureSource` protocol and the validation of a PromQL instant-vector answer.

Why: the operator must never read a broken answer as 0 °C. Every way an answer can be wrong (no series,
several series, NaN, ±Inf, non-numeric, malformed) becomes a `TelemetryError` with a CamelCase reason and a
readable message, and the site goes Unknown. The parsing is pure so it is unit-tested on recorded answers;
the Prometheus client lives in heatsched.telemetry.prometheus only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Sample:
    """One numeric value and the time it was measured (UTC)."""

    value: float
    at: datetime


class TelemetryError(Exception):
    """A reading that cannot be used. `reason` is CamelCase (for conditions), the message is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TemperatureSource(Protocol):
    """Answers a PromQL instant query with exactly one sample, or raises TelemetryError."""

    def sample(self, query: str) -> Sample: ...


def parse_instant_vector(result: Any, query: str) -> tuple[float, float]:
    """`data.result` of an instant query -> (value, unix time). Exactly one series with a finite number."""
    if not isinstance(result, list):
        raise TelemetryError("MalformedAnswer", f"{query!r}: expected a list of series, got {type(result).__name__}")
    if not result:
        raise TelemetryError("NoData", f"{query!r} returned no series (target down or metric absent)")
    if len(result) > 1:
        labels = ", ".join(str(s.get("metric", {})) for s in result[:3] if isinstance(s, dict))
        raise TelemetryError(
            "AmbiguousSeries", f"{query!r} returned {len(result)} series ({labels}...): make it select exactly one"
        )
    series = result[0]
    pair = series.get("value") if isinstance(series, dict) else None
    if not (isinstance(pair, list | tuple) and len(pair) == 2):
        raise TelemetryError("MalformedAnswer", f"{query!r}: series has no [time, value] pair: {series!r:.200}")
    stamp, raw = pair
    try:
        value = float(raw)
        stamp = float(stamp)
    except (TypeError, ValueError):
        raise TelemetryError("NonNumeric", f"{query!r} returned a non-numeric value {raw!r:.50}") from None
    if not math.isfinite(value):
        raise TelemetryError("NotANumber", f"{query!r} returned {raw} (not a finite number)")
    if not math.isfinite(stamp):
        raise TelemetryError("MalformedAnswer", f"{query!r}: bad timestamp {pair[0]!r}")
    return value, stamp


def utc(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)
