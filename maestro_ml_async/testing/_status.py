"""Builders of ``meta/v1`` Status bodies with the wording of a real API server."""

from __future__ import annotations

from typing import Any

from ._resources import ResourceType

Status = dict[str, Any]


class StoreError(Exception):
    """A failed API operation, carrying the Status body that the server returns.

    Attributes:
        status: A complete ``kind: Status`` body.
        code: The HTTP status code, also in ``status["code"]``.
    """

    def __init__(self, status: Status) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.code: int = int(status["code"])


def failure(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> Status:
    """Return a ``status: Failure`` body."""
    body: Status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _details(rtype: ResourceType, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = rtype.plural
    return details


def not_found(rtype: ResourceType, name: str) -> Status:
    """Return the 404 body for a missing object."""
    message = f'{rtype.key} "{name}" not found'
    return failure(404, "NotFound", message, _details(rtype, name))


def already_exists(rtype: ResourceType, name: str) -> Status:
    """Return the 409 body for a create of an existing name."""
    message = f'{rtype.key} "{name}" already exists'
    return failure(409, "AlreadyExists", message, _details(rtype, name))


def conflict(rtype: ResourceType, name: str, reason_text: str | None = None) -> Status:
    """Return the 409 body for a write with a stale resourceVersion."""
    text = reason_text or (
        "the object has been modified; please apply your changes to the latest "
        "version and try again"
    )
    message = f'Operation cannot be fulfilled on {rtype.key} "{name}": {text}'
    return failure(409, "Conflict", message, _details(rtype, name))


def invalid(
    rtype: ResourceType, name: str, causes: list[tuple[str, str, str]]
) -> Status:
    """Return the 422 body for an object that fails validation.

    Args:
        rtype: Type of the object.
        name: Name of the object, ``""`` when it has none.
        causes: ``(reason, field, message)`` triples, such as
            ``("FieldValueRequired", "metadata.name", "Required value: ...")``.
    """
    joined = ", ".join(f"{field}: {message}" for _, field, message in causes)
    details: dict[str, Any] = {"name": name}
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = rtype.kind
    details["causes"] = [
        {"reason": reason, "message": message, "field": field}
        for reason, field, message in causes
    ]
    message = f'{rtype.qualified_kind} "{name}" is invalid: {joined}'
    return failure(422, "Invalid", message, details)


def bad_request(message: str) -> Status:
    """Return a 400 body."""
    return failure(400, "BadRequest", message)


def success(rtype: ResourceType, name: str, uid: str) -> Status:
    """Return the body of a DELETE that removed the object at once."""
    details = _details(rtype, name)
    details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def internal(message: str) -> Status:
    """Return the 500 body that the server sends for an error without a Status.

    Such errors have no reason, so the body has no ``reason`` field.
    """
    body = failure(500, "", message)
    del body["reason"]
    return body


def expired(message: str) -> Status:
    """Return the 410 body for a resourceVersion or continue token that expired."""
    return failure(410, "Expired", message)


def resource_version_too_large(requested: int, current: int) -> Status:
    """Return the 504 Timeout body for a resourceVersion newer than the store's.

    The fields follow the API server's NewTooLargeResourceVersionError, whose
    watch cache sets retryAfterSeconds to 1.
    """
    details = {
        "causes": [
            {
                "reason": "ResourceVersionTooLarge",
                "message": "Too large resource version",
            }
        ],
        "retryAfterSeconds": 1,
    }
    message = f"Timeout: Too large resource version: {requested}, current: {current}"
    return failure(504, "Timeout", message, details)


UNAUTHORIZED: Status = failure(401, "Unauthorized", "Unauthorized")
