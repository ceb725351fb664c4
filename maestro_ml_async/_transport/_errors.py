"""Mapping of MLflow HTTP responses to the SDK's exceptions."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from .._exceptions import (
    AlreadyExistsException,
    AuthenticationException,
    AuthorizationException,
    ConflictException,
    InvalidParameterException,
    MLflowException,
    NotFoundException,
    NotSupportedByServerException,
    RateLimitedException,
    ServerUnavailableException,
)
from ._retry import parse_retry_after

__all__ = ["error_from_response", "parse_json_body"]

# The code MLflow's client derives from the status when a body is not MLflow JSON.
_STATUS_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "ENDPOINT_NOT_FOUND",
    405: "ENDPOINT_NOT_FOUND",
    409: "RESOURCE_CONFLICT",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    501: "NOT_IMPLEMENTED",
    502: "TEMPORARILY_UNAVAILABLE",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_MAX_TEXT_IN_MESSAGE = 200


def parse_json_body(response: httpx.Response) -> dict[str, Any] | None:
    """Return the body as a JSON object, or None when it is not one."""
    if not response.content:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _text_message(response: httpx.Response) -> str:
    content_type = response.headers.get("content-type", "")
    if not response.content:
        return response.reason_phrase or "empty response"
    if "html" in content_type:
        return response.reason_phrase or "HTML error page"
    text = response.text.strip().replace("\n", " ")
    if len(text) > _MAX_TEXT_IN_MESSAGE:
        text = text[:_MAX_TEXT_IN_MESSAGE] + "..."
    return text or response.reason_phrase


def _redirect_message(response: httpx.Response) -> str:
    # The query string of a login redirect can carry state tokens, so only the
    # scheme, host and path of the target are shown.
    location = urlsplit(response.headers.get("location", ""))
    host = location.netloc.rpartition("@")[2]
    target = urlunsplit((location.scheme, host, location.path, "", ""))
    shown = f" to {target}" if target else ""
    return (
        f"the server redirected the request{shown}; redirects are not followed, "
        "so set mlflow_uri to the URL that serves the MLflow API (an auth proxy "
        "that redirects to a login page needs a token or credentials instead)"
    )


def error_from_response(
    response: httpx.Response,
    *,
    not_found: type[NotFoundException] = NotFoundException,
    feature: str | None = None,
) -> MLflowException:
    """Build the exception for a failed MLflow response.

    Args:
        response: A response whose status is not 2xx.
        not_found: The class raised for RESOURCE_DOES_NOT_EXIST.
        feature: Set for optional server features (webhooks, logged models); an
            unknown endpoint then raises `NotSupportedByServerException`.
    """
    status = response.status_code
    body = parse_json_body(response)
    is_mlflow_error = body is not None and isinstance(body.get("error_code"), str)
    if body is not None and is_mlflow_error:
        error_code = str(body["error_code"])
        message = str(body.get("message", "")) or error_code
    else:
        error_code = _STATUS_CODES.get(status, f"HTTP_{status}")
        message = _text_message(response)
    fields: dict[str, Any] = {
        "status_code": status,
        "error_code": error_code,
        "method": response.request.method,
        "path": response.request.url.path,
    }

    if 300 <= status < 400:
        return MLflowException(_redirect_message(response), **fields)
    if status == 401 or error_code in ("UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"):
        return AuthenticationException(message, **fields)
    if status == 403 or error_code == "PERMISSION_DENIED":
        return AuthorizationException(message, **fields)
    if (
        feature is not None
        and status in (404, 405, 501)
        and not (is_mlflow_error and error_code == "RESOURCE_DOES_NOT_EXIST")
    ):
        return NotSupportedByServerException(
            f"{feature} is not supported by this server ({message})", **fields
        )
    if error_code == "RESOURCE_DOES_NOT_EXIST":
        return not_found(message, **fields)
    if status == 404:
        # MLflow answers a missing object with JSON; a bare 404 means the route
        # itself is unknown, usually because mlflow_uri has a wrong base path.
        return NotFoundException(
            f"{message}: endpoint not found; check that mlflow_uri points at an "
            "MLflow server",
            **fields,
        )
    if error_code in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
        return AlreadyExistsException(message, **fields)
    if error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST") or status == 400:
        return InvalidParameterException(message, **fields)
    if status == 409 or error_code in ("RESOURCE_CONFLICT", "ABORTED"):
        return ConflictException(message, **fields)
    if status == 429 or error_code in ("REQUEST_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED"):
        limited = RateLimitedException(message, **fields)
        limited.retry_after = parse_retry_after(response.headers.get("retry-after"))
        return limited
    if status in (502, 503, 504):
        return ServerUnavailableException(message, **fields)
    return MLflowException(message, **fields)
