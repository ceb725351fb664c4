"""Conversions between MLflow's REST JSON and the tracking data models."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel

__all__ = [
    "datetime_to_ms",
    "drop_null_defaults",
    "float_from_wire",
    "float_to_wire",
    "key_values_to_dict",
    "ms_to_utc",
]


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)


def ms_to_utc(value: object) -> datetime | None:
    """Convert epoch milliseconds (int, float or digit string) to a UTC datetime.

    MLflow stores any int64, so a point logged in microseconds by mistake lies
    past the year 9999. Such a value becomes `datetime.max` (or `datetime.min`)
    instead of failing, so one odd metric does not make a whole run or search
    unreadable.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected epoch milliseconds, got {value!r}")
    milliseconds = int(value)
    try:
        return _EPOCH + timedelta(milliseconds=milliseconds)
    except OverflowError:
        return _LATEST if milliseconds > 0 else _EARLIEST


def datetime_to_ms(value: datetime | int) -> int:
    """Convert a datetime (naive means UTC) or integer milliseconds to int ms."""
    if isinstance(value, bool):
        raise ValueError(f"expected a datetime or epoch milliseconds, got {value!r}")
    # numbers.Integral also admits NumPy integers such as int64.
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise ValueError(f"timestamps must not be negative, got {value}")
        return int(value)
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


def drop_null_defaults(model: type[BaseModel], data: Any) -> Any:
    """Leave out JSON nulls of fields that have a default, so the default applies.

    MLflow omits empty fields, but a proxy, a gateway or another server of
    its REST API may send ``null`` instead. A null then means the same as a
    missing field, and a required field that is null still fails validation.
    """
    if not isinstance(data, Mapping):
        return data
    fields = model.model_fields
    return {
        key: value
        for key, value in data.items()
        if value is not None or key not in fields or fields[key].is_required()
    }
