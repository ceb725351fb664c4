"""Conversion of MLflow response fields into the data models.

A 200 whose field has the wrong type (``{"registered_model": []}`` from a proxy
or an incompatible server) would otherwise raise pydantic's `ValidationError`,
which is no `MaestroMLException`. These helpers raise `MLflowException` with
error_code INVALID_RESPONSE instead. The message names each invalid field and
leaves out pydantic's copy of the input, though a validator's own message may
quote the value it rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from .._exceptions import MLflowException
from .._transport._http import ResponseBody

__all__ = ["invalid_response", "parse_field", "parse_items", "parse_object"]

M = TypeVar("M")

# At most this many pydantic errors are named in a message.
_MAX_LISTED_ERRORS = 3


def parse_field(
    body: Mapping[str, Any], key: str, parse: Callable[[dict[str, Any]], M]
) -> M:
    """Convert the object ``body[key]`` with `parse`, such as ``Run.model_validate``.

    Raises:
        MLflowException: INVALID_RESPONSE when the field is missing, is not a
            JSON object, or does not validate.
    """
    return parse_object(body, key, body[key], parse)


def parse_items(
    body: Mapping[str, Any], key: str, parse: Callable[[dict[str, Any]], M]
) -> list[M]:
    """Convert each object of the list ``body[key]``.

    MLflow leaves empty lists out of its JSON, so a missing or null field
    yields ``[]``.

    Raises:
        MLflowException: INVALID_RESPONSE when the field is not a list or an
            element does not validate.
    """
    items = body.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise invalid_response(
            body, f"the server's {key!r} field is a {_json_type(items)}, not a list"
        )
    return [parse_object(body, key, item, parse) for item in items]


def parse_object(
    body: Mapping[str, Any],
    key: str,
    value: object,
    parse: Callable[[dict[str, Any]], M],
) -> M:
    """Convert `value`, read from ``body[key]``, with `parse`.

    Raises:
        MLflowException: INVALID_RESPONSE when `value` is not a JSON object or
            does not validate.
    """
    if not isinstance(value, dict):
        raise invalid_response(
            body,
            f"the server's {key!r} field contains a {_json_type(value)} "
            "where an object is expected",
        )
    try:
        return parse(value)
    except ValidationError as exc:
        raise invalid_response(
            body, f"the server's {key!r} field is invalid: {_describe(exc)}"
        ) from None


def invalid_response(body: Mapping[str, Any], problem: str) -> MLflowException:
    """Build the INVALID_RESPONSE error, with the request's method and path if known."""
    if isinstance(body, ResponseBody):
        return body.invalid(problem)
    return MLflowException(problem, error_code="INVALID_RESPONSE")


def _describe(exc: ValidationError) -> str:
    # include_input=False keeps the server's values, which may be large or
    # sensitive, out of the message.
    errors = exc.errors(include_url=False, include_input=False)
    listed = [
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in errors[:_MAX_LISTED_ERRORS]
    ]
    more = len(errors) - len(listed)
    if more > 0:
        listed.append(f"{more} more")
    return "; ".join(listed)


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__
