"""Mapping of Kubernetes API failures onto the SDK's exceptions.

The API server answers errors with a ``Status`` object whose ``reason`` and
``message`` say what went wrong; the mapped exception carries both and the HTTP
status. Responses that are not a Status (a proxy's HTML page, an empty body)
keep the HTTP reason phrase as the message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._exceptions import (
    KubernetesAuthException,
    KubernetesConflictException,
    KubernetesException,
    KubernetesNotFoundException,
)

__all__ = [
    "RETRY_STATUSES",
    "error_from_api_exception",
    "error_from_status",
    "parse_status_body",
]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_MESSAGE = 500


def parse_status_body(body: Any) -> dict[str, Any]:
    """Return the Status object in `body`, or an empty dict."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, Mapping):
        return dict(body)
    if not isinstance(body, str) or not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"message": body.strip()[:_MAX_MESSAGE]}
    return parsed if isinstance(parsed, dict) else {}


def error_from_status(
    status_code: int | None, body: Any, http_reason: str | None = None
) -> KubernetesException:
    """Build the exception for an HTTP status and its (Status) body."""
    status = parse_status_body(body)
    reason = status.get("reason") or http_reason or None
    message = status.get("message") or http_reason or "request failed"
    code = status.get("code") if isinstance(status.get("code"), int) else status_code
    if code == 404:
        return KubernetesNotFoundException(
            message, status_code=code, reason=reason or "NotFound"
        )
    if code == 409:
        return KubernetesConflictException(message, status_code=code, reason=reason)
    if code in (401, 403):
        return KubernetesAuthException(message, status_code=code, reason=reason)
    return KubernetesException(message, status_code=code, reason=reason)


def error_from_api_exception(exc: Any) -> KubernetesException:
    """Map a kubernetes-asyncio ``ApiException``."""
    return error_from_status(exc.status, exc.body, exc.reason)


def retry_after(headers: Any) -> float | None:
    """Return the ``Retry-After`` delay in seconds from response headers."""
    if not headers:
        return None
    value = None
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None
