"""Verifying and parsing webhook deliveries from an MLflow server (3.3 and newer).

MLflow signs a delivery with HMAC-SHA256 over ``f"{delivery_id}.{timestamp}.{body}"``
using the webhook's secret and sends ``X-MLflow-Signature: v1,<base64 digest>``,
``X-MLflow-Delivery-Id`` (a UUID) and ``X-MLflow-Timestamp`` (Unix seconds)
(``mlflow/webhooks/delivery.py``, MLflow 3.17). The body is
``{"entity", "action", "timestamp", "data"}`` with lowercase entity and action.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .._exceptions import ValidationException
from .._timestamps import parse_rfc3339
from ..types.events import RegistryEvent, RegistryEventType

__all__ = [
    "DELIVERY_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookVerificationError",
    "parse_webhook_delivery",
    "sign_webhook_payload",
    "verify_webhook_signature",
]

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300.0
_MAX_TIMESTAMP_DIGITS = 20


class WebhookVerificationError(ValidationException):
    """A webhook delivery's signature or timestamp did not verify."""


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def sign_webhook_payload(
    secret: str, delivery_id: str, timestamp: str | int, body: bytes | str
) -> str:
    """Return the ``v1,<base64>`` signature MLflow sends for a delivery."""
    message = f"{delivery_id}.{timestamp}.".encode() + _as_bytes(body)
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify_webhook_signature(
    secret: str,
    delivery_id: str,
    timestamp: str | int,
    body: bytes | str,
    signature: str,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Check a delivery's signature and age; True only when both are valid.

    The comparison takes constant time. The signature header may list several
    space-separated signatures (as during a secret rotation); one match is
    enough. Signatures of other versions than ``v1`` are ignored.

    Args:
        secret: The webhook's secret.
        delivery_id: The ``X-MLflow-Delivery-Id`` header.
        timestamp: The ``X-MLflow-Timestamp`` header, in Unix seconds.
        body: The raw request body, exactly as received.
        signature: The ``X-MLflow-Signature`` header.
        tolerance: The maximum age (and clock skew) in seconds; None skips the
            age check, which lets an old delivery be replayed.
        now: The current Unix time; the system clock when None.
    """
    if not secret or not signature or not delivery_id:
        return False
    text = str(timestamp).strip()
    # isdigit alone accepts "¹" and other Unicode digits that int() rejects,
    # and a huge digit string exceeds int()'s limit, so both would raise here.
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_TIMESTAMP_DIGITS:
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - int(text)) > tolerance:
            return False
    expected = sign_webhook_payload(secret, delivery_id, text, body).encode("ascii")
    matched = False
    for candidate in signature.split():
        version, _, _ = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        # Keep comparing after a match so the time does not depend on position.
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8"))
    return matched


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = {key.lower(): value for key, value in headers.items()}
    return lowered.get(name.lower(), "")


_EVENT_TYPES: dict[tuple[str, str], RegistryEventType] = {
    ("registered_model", "created"): RegistryEventType.MODEL_CREATED,
    ("registered_model", "deleted"): RegistryEventType.MODEL_DELETED,
    ("model_version", "created"): RegistryEventType.VERSION_CREATED,
    ("model_version", "deleted"): RegistryEventType.VERSION_DELETED,
    ("model_version_tag", "set"): RegistryEventType.VERSION_TAGS_CHANGED,
    ("model_version_tag", "deleted"): RegistryEventType.VERSION_TAGS_CHANGED,
    ("model_version_alias", "created"): RegistryEventType.ALIAS_SET,
    ("model_version_alias", "deleted"): RegistryEventType.ALIAS_REMOVED,
}


# Fields each event's ``data`` must contain, after the payload types of
# ``mlflow/webhooks/types.py`` (MLflow 3.17). The two deleted events of
# registered models and versions have no payload type there, so they need only
# the name and version that identify what was deleted.
_REQUIRED_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("registered_model", "created"): ("name",),
    ("registered_model", "deleted"): ("name",),
    ("model_version", "created"): ("name", "version"),
    ("model_version", "deleted"): ("name", "version"),
    ("model_version_tag", "set"): ("name", "version", "key", "value"),
    ("model_version_tag", "deleted"): ("name", "version", "key"),
    ("model_version_alias", "created"): ("name", "alias", "version"),
    ("model_version_alias", "deleted"): ("name", "alias"),
}
# MLflow 3.17 payloads nest at most three levels (body, data, tags).
_MAX_JSON_DEPTH = 16
_MAX_VERSION_DIGITS = 18


def _reject_constant(name: str) -> Any:
    raise ValueError(f"the JSON constant {name} is not allowed")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:40]!r} in a JSON object")
        result[key] = value
    return result


def _json_depth(value: object) -> int:
    """Return the nesting depth of parsed JSON without recursing."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _load_body(body: bytes | str) -> dict[str, Any]:
    """Decode a delivery body as strict JSON: no NaN, Infinity or repeated keys."""
    try:
        payload = json.loads(
            _as_bytes(body),
            parse_constant=_reject_constant,
            object_pairs_hook=_reject_duplicate_keys,
        )
    except RecursionError:
        # The C decoder recurses once per bracket, so thousands of nested
        # brackets end here before any depth check could run.
        raise ValidationException(
            f"the webhook delivery body nests deeper than {_MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as exc:
        raise ValidationException(
            f"the webhook delivery body is not valid JSON: {exc}"
        ) from None
    if not isinstance(payload, dict):
        raise ValidationException("the webhook delivery body is not a JSON object")
    if _json_depth(payload) > _MAX_JSON_DEPTH:
        raise ValidationException(
            f"the webhook delivery body nests deeper than {_MAX_JSON_DEPTH} levels"
        )
    return payload


def _invalid_field(field: str, expected: str, value: object) -> ValidationException:
    preview = repr(value)
    if len(preview) > 80:
        preview = preview[:77] + "..."
    return ValidationException(
        f"the webhook delivery's {field} must be {expected}, got {preview}"
    )


def _text_field(
    data: Mapping[str, Any], field: str, *, allow_empty: bool = False
) -> str:
    value = data.get(field)
    if not isinstance(value, str) or (not allow_empty and not value):
        expected = "a string" if allow_empty else "a non-empty string"
        raise _invalid_field(f"data.{field}", expected, value)
    return value


def _version_field(data: Mapping[str, Any]) -> str:
    """Return a version number, sent as a positive integer or its decimal string."""
    value = data.get("version")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) <= _MAX_VERSION_DIGITS
        and int(value) > 0
    ):
        return str(int(value))
    raise _invalid_field("data.version", "a positive integer", value)


def _check_optional_fields(data: Mapping[str, Any]) -> None:
    """Check the types of the fields that the parser passes on only in `raw`."""
    for field in ("description", "run_id"):
        value = data.get(field)
        if value is not None and not isinstance(value, str):
            raise _invalid_field(f"data.{field}", "a string or null", value)
    source = data.get("source")
    if "source" in data and not isinstance(source, str):
        raise _invalid_field("data.source", "a string", source)
    tags = data.get("tags")
    if "tags" in data and not (
        isinstance(tags, dict)
        and all(isinstance(value, str) for value in tags.values())
    ):
        raise _invalid_field("data.tags", "an object of string values", tags)


def _event_time(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = parse_rfc3339(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise _invalid_field("timestamp", "an ISO 8601 time", value)


def _event_from_payload(payload: Mapping[str, Any]) -> RegistryEvent:
    entity = payload.get("entity")
    action = payload.get("action")
    if not isinstance(entity, str):
        raise _invalid_field("entity", "a string", entity)
    if not isinstance(action, str):
        raise _invalid_field("action", "a string", action)
    entity = entity.lower()
    action = action.lower()
    event_type = _EVENT_TYPES.get((entity, action))
    if event_type is None:
        raise ValidationException(
            f"webhook event {entity}.{action} is not a model registry event "
            "(prompt events are not mapped)"
        )
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ValidationException("the webhook delivery has no 'data' object")
    timestamp = _event_time(payload.get("timestamp"))
    required = _REQUIRED_FIELDS[(entity, action)]
    model_name = _text_field(data, "name")
    version = _version_field(data) if "version" in required else None
    if version is None and "version" in data:
        # An alias deletion may name the version the alias pointed at.
        version = None if data["version"] is None else _version_field(data)
    key: str | None = None
    new_value: str | None = None
    if entity == "model_version_tag":
        key = _text_field(data, "key")
        if action == "set":
            new_value = _text_field(data, "value", allow_empty=True)
    elif entity == "model_version_alias":
        key = _text_field(data, "alias")
        new_value = version if action == "created" else None
    _check_optional_fields(data)
    return RegistryEvent(
        type=event_type,
        model_name=model_name,
        version=version,
        key=key,
        new_value=new_value,
        timestamp=timestamp,
        source="webhook",
        raw=data,
    )


def parse_webhook_delivery(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | None,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE_SECONDS,
) -> RegistryEvent:
    """Verify a webhook delivery and turn it into a `RegistryEvent`.

    The event has the same type that `models.watch` yields, with
    ``source="webhook"`` and no old value. An alias set through a webhook is
    always ALIAS_SET, because the delivery does not say whether it moved.

    Args:
        headers: The request headers (any letter case).
        body: The raw request body.
        secret: The webhook's secret; None only for a webhook created without
            one, and then nothing is verified.
        tolerance: The maximum age of the delivery in seconds (None: any).

    Raises:
        WebhookVerificationError: The signature is missing or wrong, or the
            delivery is older than `tolerance`.
        ValidationException: The body is not strict JSON (NaN, Infinity,
            repeated keys and nesting deeper than 16 levels are rejected), or
            not a model registry event, or a field that the event needs is
            missing or of the wrong type.
    """
    if secret is not None:
        ok = verify_webhook_signature(
            secret,
            _header(headers, DELIVERY_ID_HEADER),
            _header(headers, TIMESTAMP_HEADER),
            body,
            _header(headers, SIGNATURE_HEADER),
            tolerance=tolerance,
        )
        if not ok:
            raise WebhookVerificationError(
                "the webhook delivery's signature or timestamp is invalid; "
                "check the secret and the clocks of both hosts"
            )
    return _event_from_payload(_load_body(body))
