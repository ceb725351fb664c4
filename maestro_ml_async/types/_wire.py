"""Conversions between MLflow's REST JSON and the tracking data models."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone

__all__ = [
    "datetime_to_ms",
    "float_from_wire",
    "float_to_wire",
    "key_values_to_dict",
    "ms_to_utc",
]


def ms_to_utc(value: object) -> datetime | None:
    """Convert epoch milliseconds (int, float or digit string) to a UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected epoch milliseconds, got {value!r}")
    return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)


def datetime_to_ms(value: datetime | int) -> int:
    """Convert a datetime (naive means UTC) or integer milliseconds to int ms."""
    if isinstance(value, bool):
        raise ValueError(f"expected a datetime or epoch milliseconds, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"timestamps must not be negative, got {value}")
        return value
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        # Integer arithmetic on the timedelta avoids float rounding of the ms.
        delta = aware - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    raise ValueError(
        f"expected a datetime or epoch milliseconds, got {type(value).__name__}"
    )


def key_values_to_dict(value: object) -> dict[str, str]:
    """Turn MLflow's ``[{key, value}]`` list (or a mapping) into a dict."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if not isinstance(value, list):
        raise ValueError(f"expected a list of {{key, value}} entries, got {value!r}")
    result: dict[str, str] = {}
    for entry in value:
        if not isinstance(entry, Mapping) or "key" not in entry:
            raise ValueError(f"expected a {{key, value}} entry, got {entry!r}")
        item = entry.get("value")
        result[str(entry["key"])] = "" if item is None else str(item)
    return result


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def float_from_wire(value: object) -> float:
    """Parse a proto-JSON double, which writes non-finite values as strings."""
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def float_to_wire(value: float) -> float | str:
    """Encode a double for proto-JSON: NaN and infinities become strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
