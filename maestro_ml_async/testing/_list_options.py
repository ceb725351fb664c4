"""Validation of list and watch query options, with the API server's messages.

The rules and their wording follow ``ValidateListOptions`` in
``k8s.io/apiserver`` (``pkg/apis/meta/internalversion/validation``), with the
WatchList feature gate on: ``resourceVersionMatch``
needs a ``resourceVersion`` on lists and ``sendInitialEvents`` on watches, and
``sendInitialEvents`` needs ``resourceVersionMatch=NotOlderThan``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from . import _status
from ._status import StoreError

EXACT = "Exact"
NOT_OLDER_THAN = "NotOlderThan"


@dataclass(frozen=True)
class ListOptions:
    """The resourceVersion options of one list or watch request.

    Attributes:
        resource_version: The ``resourceVersion`` text, ``""`` when absent.
        match: ``resourceVersionMatch``: ``Exact``, ``NotOlderThan`` or ``""``.
        send_initial_events: ``sendInitialEvents``, ``None`` when absent.
        continue_token: The ``continue`` token, ``""`` when absent.
    """

    resource_version: str
    match: str
    send_initial_events: bool | None
    continue_token: str


def _forbidden(field: str, detail: str) -> tuple[str, str, str]:
    return ("FieldValueForbidden", field, f"Forbidden: {detail}")


def _not_supported(
    field: str, value: str, supported: list[str]
) -> tuple[str, str, str]:
    listed = ", ".join(f'"{item}"' for item in supported)
    message = f'Unsupported value: "{value}": supported values: {listed}'
    return ("FieldValueNotSupported", field, message)


def _watch_errors(options: ListOptions) -> list[tuple[str, str, str]]:
    errors = []
    match = options.match
    if options.send_initial_events is not None and match != NOT_OLDER_THAN:
        detail = (
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
        )
        errors.append(_forbidden("resourceVersionMatch", detail))
    if match:
        if options.send_initial_events is None:
            detail = (
                "resourceVersionMatch is forbidden for watch unless "
                "sendInitialEvents is provided"
            )
            errors.append(_forbidden("resourceVersionMatch", detail))
        if match != NOT_OLDER_THAN:
            errors.append(
                _not_supported("resourceVersionMatch", match, [NOT_OLDER_THAN])
            )
        if options.continue_token:
            detail = "resourceVersionMatch is forbidden when continue is provided"
            errors.append(_forbidden("resourceVersionMatch", detail))
    return errors


def _list_errors(options: ListOptions) -> list[tuple[str, str, str]]:
    errors = []
    match = options.match
    if match:
        if not options.resource_version:
            detail = (
                "resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
            errors.append(_forbidden("resourceVersionMatch", detail))
        if options.continue_token:
            detail = "resourceVersionMatch is forbidden when continue is provided"
            errors.append(_forbidden("resourceVersionMatch", detail))
        if match not in (EXACT, NOT_OLDER_THAN):
            supported = [EXACT, NOT_OLDER_THAN, ""]
            errors.append(_not_supported("resourceVersionMatch", match, supported))
        if match == EXACT and options.resource_version == "0":
            detail = 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
            errors.append(_forbidden("resourceVersionMatch", detail))
    if options.send_initial_events is not None:
        detail = "sendInitialEvents is forbidden for list"
        errors.append(_forbidden("sendInitialEvents", detail))
    return errors


def list_options(request: web.Request, *, watch: bool) -> ListOptions:
    """Return the request's resourceVersion options after validating them.

    Raises:
        StoreError: 422 Invalid (kind ``ListOptions``) for a forbidden
            combination or an unsupported ``resourceVersionMatch``.
    """
    query = request.query
    send_initial: bool | None = None
    if "sendInitialEvents" in query:
        send_initial = query["sendInitialEvents"].lower() in ("true", "1")
    options = ListOptions(
        resource_version=query.get("resourceVersion", ""),
        match=query.get("resourceVersionMatch", ""),
        send_initial_events=send_initial,
        continue_token=query.get("continue", ""),
    )
    errors = _watch_errors(options) if watch else _list_errors(options)
    if errors:
        raise StoreError(_invalid_options(errors))
    return options


def _invalid_options(errors: list[tuple[str, str, str]]) -> _status.Status:
    joined = ", ".join(f"{field}: {message}" for _, field, message in errors)
    if len(errors) > 1:
        joined = f"[{joined}]"
    details = {
        "group": "meta.k8s.io",
        "kind": "ListOptions",
        "causes": [
            {"reason": reason, "message": message, "field": field}
            for reason, field, message in errors
        ],
    }
    message = f'ListOptions.meta.k8s.io "" is invalid: {joined}'
    return _status.failure(422, "Invalid", message, details)


def parse_resource_version(text: str) -> int | None:
    """Return a resourceVersion as an integer, ``None`` for ``""`` and ``"0"``.

    Raises:
        StoreError: 400 BadRequest for a value that is not an integer.
    """
    if text in ("", "0"):
        return None
    try:
        return int(text)
    except ValueError:
        message = f"invalid resource version: {text!r}"
        raise StoreError(_status.bad_request(message)) from None
