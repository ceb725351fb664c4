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
from collections.abc import Mapping
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


def _event_time(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = parse_rfc3339(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _event_from_payload(payload: Mapping[str, Any]) -> RegistryEvent:
    entity = str(payload.get("entity", "")).lower()
    action = str(payload.get("action", "")).lower()
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ValidationException("the webhook delivery has no 'data' object")
    event_type = _EVENT_TYPES.get((entity, action))
    if event_type is None:
        raise ValidationException(
            f"webhook event {entity}.{action} is not a model registry event "
            "(prompt events are not mapped)"
        )
    key: str | None = None
    new_value: str | None = None
    if entity == "model_version_tag":
        key = _optional_str(data.get("key"))
        new_value = _optional_str(data.get("value")) if action == "set" else None
    elif entity == "model_version_alias":
        key = _optional_str(data.get("alias"))
        new_value = _optional_str(data.get("version")) if action == "created" else None
    return RegistryEvent(
        type=event_type,
        model_name=str(data.get("name", "")),
        version=_optional_str(data.get("version")),
        key=key,
        new_value=new_value,
        timestamp=_event_time(payload.get("timestamp")),
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
        ValidationException: The body is not a model registry event.
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
    try:
        payload = json.loads(_as_bytes(body))
    except ValueError:
        raise ValidationException("the webhook delivery body is not JSON") from None
    if not isinstance(payload, dict):
        raise ValidationException("the webhook delivery body is not a JSON object")
    return _event_from_payload(payload)
