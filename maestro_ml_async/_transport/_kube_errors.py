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
    "object_from_body",
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


def object_from_body(
    body: bytes, *, status: int, method: str, path: str, content_type: str
) -> dict[str, Any]:
    """Parse a 2xx body and check that it is a Kubernetes object.

    The API server returns resources, lists and Status objects as JSON
    objects with ``kind``. Anything else comes from something in front of it
    (an auth proxy's login page, an empty 200 from a load balancer). Paths
    outside the resource API, such as ``/version``, do not pass this check.

    Raises:
        KubernetesException: The body is not a JSON object with ``kind``; it
            carries the HTTP status, and the message names the request.
    """
    parsed: Any = None
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("kind"), str):
        return parsed
    shown = content_type or "no content type"
    what = f"{len(body)} bytes of {shown}" if body else "an empty body"
    raise KubernetesException(
        f"the server's response to {method} {path} is not a Kubernetes object "
        f"({what}); check that the kubeconfig's server URL points at the "
        "API server and not at a proxy's login page",
        status_code=status,
    )


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
