"""Validation of a container's ``resources`` against the Kubernetes quantity grammar.

The API server rejects a pod template whose quantities do not parse with 422,
and the fake cluster does not check them, so the SDK checks them before
sending anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .._exceptions import ValidationException

__all__ = ["check_quantity", "check_resources"]

# The serialization format of resource.Quantity in k8s.io/apimachinery: a
# signed decimal number, then a binary suffix (Ki ... Ei), a decimal suffix
# (m, k, M, G, T, P, E, and n and u, which its parser accepts too), a decimal
# exponent (e3, E-2) or nothing. Negative values are rejected separately,
# because container requests and limits must not be negative.
_QUANTITY = re.compile(
    r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_SECTIONS = frozenset({"requests", "limits"})


def check_quantity(value: object, what: str) -> str:
    """Return a resource quantity as a string (``2`` -> ``"2"``).

    Raises:
        ValidationException: `value` is not a number or a quantity string
            such as ``500m`` or ``1.5Gi``, or it is negative.
    """
    text: str | None = None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float) and math.isfinite(value):
        text = repr(value)
    if text is None or not _QUANTITY.fullmatch(text):
        raise ValidationException(
            f"{what} {value!r} is not a valid quantity; use a number or a "
            "Kubernetes quantity such as '500m', '2', '1.5Gi' or '1e9'"
        )
    if text.startswith("-"):
        raise ValidationException(f"{what} {value!r} must not be negative")
    return text


def _check_section(section: object, what: str) -> dict[str, str]:
    if not isinstance(section, Mapping):
        raise ValidationException(
            f"{what} must be a mapping of resource names to quantities, "
            f"got {type(section).__name__}"
        )
    result: dict[str, str] = {}
    for name, quantity in section.items():
        if not isinstance(name, str) or not name:
            raise ValidationException(
                f"resource names in {what} must be non-empty strings, got {name!r}"
            )
        result[name] = check_quantity(quantity, f"{what}[{name!r}]")
    return result


def check_resources(resources: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Validate `submit_job`'s ``resources`` and return it with string quantities.

    Two shapes are accepted: a container ``resources`` mapping with
    ``requests`` and/or ``limits`` (a None section is left out), or a flat
    mapping of resource names to quantities, used for both requests and limits.

    Raises:
        ValidationException: The shape or a quantity is invalid.
    """
    if resources is None:
        return None
    if not isinstance(resources, Mapping):
        raise ValidationException(
            "resources must be a mapping of requests/limits or of resource names "
            f"to quantities, got {type(resources).__name__}"
        )
    keys = set(resources)
    if not keys & _SECTIONS:
        return _check_section(resources, "resources")
    others = keys - _SECTIONS
    if others:
        raise ValidationException(
            f"resources mixes requests and limits with {sorted(map(str, others))}; "
            "put every resource name under requests or limits"
        )
    return {
        section: _check_section(value, f"resources.{section}")
        for section, value in resources.items()
        if value is not None
    }
