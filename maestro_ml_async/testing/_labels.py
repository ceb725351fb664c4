"""Validation of metadata labels and annotations, with the API server's wording.

The rules follow ``ValidateLabels`` and ``ValidateAnnotations`` of
``k8s.io/apimachinery``. Keys are qualified names: an optional DNS subdomain
prefix and ``/``, then a name part of at most 63 characters. Label values are
at most 63 characters of ``[-A-Za-z0-9_.]`` that start and end with an
alphanumeric character. All annotations together are at most 256 KiB.
"""

from __future__ import annotations

import re
from typing import Any

from . import _status
from ._resources import ResourceType
from ._status import StoreError

Cause = tuple[str, str, str]

_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ANNOTATIONS_LIMIT = 256 * 1024

_NAME_PART_TEXT = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
    "or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?"
    "[A-Za-z0-9]')"
)
_PREFIX_TEXT = (
    "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
    "alphanumeric characters, '-' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_VALUE_TEXT = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
    "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def _key_problems(key: str) -> list[str]:
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash and not prefix:
        problems.append("prefix part must be non-empty")
    elif prefix:
        if len(prefix) > 253:
            problems.append("prefix part must be no more than 253 characters")
        if not _PREFIX.match(prefix):
            problems.append(_PREFIX_TEXT)
    if not name:
        problems.append("name part must be non-empty")
        return problems
    if len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _NAME_PART.match(name):
        problems.append(_NAME_PART_TEXT)
    return problems


def _map_of_strings(field: str, value: Any) -> dict[str, str]:
    """Return a labels or annotations map, rejecting non-string values (400)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        message = (
            f"metadata.{field}: expected a map of strings, got {type(value).__name__}"
        )
        raise StoreError(_status.bad_request(message))
    for key, item in value.items():
        if not isinstance(item, str):
            message = (
                f"json: cannot unmarshal {type(item).__name__} into Go struct field "
                f"ObjectMeta.metadata.{field} of type string (key {key!r})"
            )
            raise StoreError(_status.bad_request(message))
    return value


def _label_causes(labels: dict[str, str]) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in labels.items():
        for text in _key_problems(key):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{key}": {text}',
                )
            )
        if len(value) > 63:
            text = "must be no more than 63 characters"
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{value}": {text}',
                )
            )
        if not _VALUE.match(value):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f'Invalid value: "{value}": {_VALUE_TEXT}',
                )
            )
    return causes


def _annotation_causes(annotations: dict[str, str]) -> list[Cause]:
    causes: list[Cause] = []
    for key in annotations:
        lowered = key.lower()
        for text in _key_problems(lowered):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.annotations",
                    f'Invalid value: "{key}": {text}',
                )
            )
    size = sum(len(key) + len(value) for key, value in annotations.items())
    if size > _ANNOTATIONS_LIMIT:
        text = f"Too long: may not be more than {_ANNOTATIONS_LIMIT} bytes"
        causes.append(("FieldValueTooLong", "metadata.annotations", text))
    return causes


def check_labels_and_annotations(rtype: ResourceType, meta: dict[str, Any]) -> None:
    """Reject invalid label keys and values and annotation keys (422 Invalid).

    Raises:
        StoreError: 400 for a value that is not a string, 422 Invalid with one
            cause per problem otherwise.
    """
    labels = _map_of_strings("labels", meta.get("labels"))
    annotations = _map_of_strings("annotations", meta.get("annotations"))
    causes = _label_causes(labels) + _annotation_causes(annotations)
    if causes:
        name = str(meta.get("name") or "")
        raise StoreError(_status.invalid(rtype, name, causes))
