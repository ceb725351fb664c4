"""Normalising and splitting `runs/log-batch` payloads within the server's limits.

MLflow 3 rejects a log-batch request with more than 1000 metrics, 100 params,
100 tags or 1000 entities in all, or a JSON body over 1,000,000 characters
(``mlflow/utils/validation.py``). `split_batch` packs entities first-fit into
requests that respect every limit, measuring each entity's JSON in UTF-8 bytes,
which is never less than the server's character count.
"""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._exceptions import ValidationException
from .._validation import check_entity_key, check_tag_value
from ..types._wire import datetime_to_ms, float_to_wire
from ..types.tracking import Metric, Param, RunTag

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_ENTITIES_PER_BATCH",
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_PER_BATCH",
    "MAX_TAGS_PER_BATCH",
    "MetricInput",
    "ParamsInput",
    "TagsInput",
    "metric_to_wire",
    "normalize_metrics",
    "normalize_params",
    "normalize_tags",
    "split_batch",
]

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_BYTES = 1_000_000
MAX_PARAM_VALUE_LENGTH = 6000
MAX_RUN_TAG_VALUE_LENGTH = 8000

# MLflow's protobuf and SQL columns hold steps and timestamps as int64; a
# larger value reaches the server as an unparseable request.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# Bytes kept free under MAX_BATCH_BYTES for the run id and the JSON punctuation.
_BODY_OVERHEAD = 200

Timestamp = datetime | int
MetricInput = (
    Metric
    | Mapping[str, Any]
    | tuple[str, float]
    | tuple[str, float, Timestamp]
    | tuple[str, float, Timestamp, int]
)
KeyValueInput = Param | RunTag | Mapping[str, Any] | tuple[str, object]
ParamsInput = Mapping[str, object] | Iterable[KeyValueInput]
TagsInput = ParamsInput


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def metric_to_wire(
    key: str, value: object, timestamp: Timestamp | None, step: object
) -> dict[str, Any]:
    """Check one metric point and return its log-batch JSON form."""
    checked_key = check_entity_key(key, what="metric key")
    # numbers.Real and numbers.Integral also admit NumPy scalars such as
    # float32 and int64, which training code often logs.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationException(
            f"value of metric {checked_key!r} must be a number, got {value!r}"
        )
    try:
        number = float(value)
    except OverflowError:
        raise ValidationException(
            f"value of metric {checked_key!r} is too large for a 64-bit float"
        ) from None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValidationException(
            f"step of metric {checked_key!r} must be an integer, got {step!r}"
        )
    step = int(step)
    if not _INT64_MIN <= step <= _INT64_MAX:
        raise ValidationException(
            f"step of metric {checked_key!r} is {step}, outside the 64-bit "
            "integer range that MLflow stores"
        )
    try:
        timestamp_ms = _now_ms() if timestamp is None else datetime_to_ms(timestamp)
    except ValueError as exc:
        raise ValidationException(
            f"timestamp of metric {checked_key!r} is invalid: {exc}"
        ) from None
    if timestamp_ms > _INT64_MAX:
        raise ValidationException(
            f"timestamp of metric {checked_key!r} is {timestamp_ms} ms, outside "
            "the 64-bit integer range that MLflow stores"
        )
    return {
        "key": checked_key,
        "value": float_to_wire(number),
        "timestamp": timestamp_ms,
        "step": step,
    }


def _metric_entry(item: object) -> dict[str, Any]:
    if isinstance(item, Metric):
        return metric_to_wire(item.key, item.value, item.timestamp_ms, item.step)
    if isinstance(item, Mapping):
        if "key" not in item or "value" not in item:
            raise ValidationException(
                f"a metric mapping needs 'key' and 'value', got {sorted(item)}"
            )
        return metric_to_wire(
            item["key"], item["value"], item.get("timestamp"), item.get("step", 0)
        )
    if isinstance(item, tuple) and 2 <= len(item) <= 4:
        key, value = item[0], item[1]
        timestamp = item[2] if len(item) > 2 else None
        step = item[3] if len(item) > 3 else 0
        return metric_to_wire(key, value, timestamp, step)
    raise ValidationException(
        "a metric must be a Metric, a mapping or a (key, value[, timestamp"
        f"[, step]]) tuple, got {type(item).__name__}"
    )


def normalize_metrics(metrics: Iterable[MetricInput]) -> list[dict[str, Any]]:
    """Check metrics and return them in log-batch JSON form, in input order.

    A metric without a timestamp gets the current time, in integer ms.
    """
    if isinstance(metrics, (str, bytes, Mapping)) or not isinstance(metrics, Iterable):
        raise ValidationException(
            "metrics must be an iterable of metrics, got "
            f"{type(metrics).__name__}; wrap a single metric in a list"
        )
    return [_metric_entry(item) for item in metrics]


def _key_value_pairs(items: ParamsInput, what: str) -> list[tuple[object, object]]:
    if isinstance(items, Mapping):
        return list(items.items())
    if isinstance(items, (str, bytes)):
        raise ValidationException(f"{what} must be a mapping or an iterable of pairs")
    pairs: list[tuple[object, object]] = []
    for item in items:
        if isinstance(item, (Param, RunTag)):
            pairs.append((item.key, item.value))
        elif isinstance(item, Mapping) and "key" in item:
            pairs.append((item["key"], item.get("value")))
        elif isinstance(item, tuple) and len(item) == 2:
            pairs.append((item[0], item[1]))
        else:
            raise ValidationException(
                f"each of {what} must be a {what[:-1].capitalize()}, a "
                f"{{key, value}} mapping or a (key, value) pair, got {item!r}"
            )
    return pairs


def normalize_params(params: ParamsInput) -> list[dict[str, str]]:
    """Check params and return ``[{key, value}]``, dropping exact duplicates.

    Raises:
        ValidationException: A key appears twice with different values, which
            the server rejects because a param cannot change.
    """
    seen: dict[str, str] = {}
    for key, value in _key_value_pairs(params, "params"):
        checked = check_entity_key(key, what="param key")
        text = check_tag_value(
            checked, value, max_length=MAX_PARAM_VALUE_LENGTH, what="param"
        )
        if checked in seen and seen[checked] != text:
            raise ValidationException(
                f"param {checked!r} is given twice with different values"
            )
        seen[checked] = text
    return [{"key": key, "value": value} for key, value in seen.items()]


def normalize_tags(tags: TagsInput) -> list[dict[str, str]]:
    """Check run tags and return ``[{key, value}]``; a repeated key keeps its
    last value, as setting the tags one by one would."""
    seen: dict[str, str] = {}
    for key, value in _key_value_pairs(tags, "tags"):
        checked = check_entity_key(key)
        seen[checked] = check_tag_value(
            checked, value, max_length=MAX_RUN_TAG_VALUE_LENGTH
        )
    return [{"key": key, "value": value} for key, value in seen.items()]


@dataclass
class _Chunk:
    metrics: list[dict[str, Any]] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)
    tags: list[dict[str, str]] = field(default_factory=list)
    size: int = 0

    @property
    def count(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)


def _fits(chunk: _Chunk, kind: str, size: int, limit: int, budget: int) -> bool:
    return (
        len(getattr(chunk, kind)) < limit
        and chunk.count < MAX_ENTITIES_PER_BATCH
        and chunk.size + size <= budget
    )


def _encoded_size(entry: Mapping[str, Any]) -> int:
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
    # One more byte for the comma that separates it from its neighbour.
    return len(text.encode("utf-8")) + 1


def split_batch(
    metrics: list[dict[str, Any]],
    params: list[dict[str, str]],
    tags: list[dict[str, str]],
    *,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[dict[str, list[Any]]]:
    """Pack entities into few requests within every limit, keeping their order.

    Each entity goes into the first request that has room for it, starting
    from the request of the previous entity of its kind, so metrics, params
    and tags each keep their input order across requests. Returns one dict per
    request with ``metrics``, ``params`` and ``tags`` lists.
    """
    budget = max_bytes - _BODY_OVERHEAD
    chunks: list[_Chunk] = []
    limits = {
        "params": MAX_PARAMS_PER_BATCH,
        "tags": MAX_TAGS_PER_BATCH,
        "metrics": MAX_METRICS_PER_BATCH,
    }
    for kind, entries in (("params", params), ("tags", tags), ("metrics", metrics)):
        index = 0
        for entry in entries:
            size = _encoded_size(entry)
            if size > budget:
                raise ValidationException(
                    f"one {kind[:-1]} ({entry.get('key')!r}) is {size} bytes of "
                    f"JSON; a log-batch request may be at most {max_bytes}"
                )
            while index < len(chunks) and not _fits(
                chunks[index], kind, size, limits[kind], budget
            ):
                index += 1
            if index == len(chunks):
                chunks.append(_Chunk())
            chunk = chunks[index]
            getattr(chunk, kind).append(entry)
            chunk.size += size
    return [
        {"metrics": c.metrics, "params": c.params, "tags": c.tags}
        for c in chunks
        if c.count
    ]
