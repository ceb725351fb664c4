"""Label and field selectors, with the grammar of the Kubernetes API server."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _status
from ._resources import ResourceType
from ._status import StoreError

Obj = dict[str, Any]
Selector = Callable[[Obj], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = rf"\(\s*({_VALUE}(\s*,\s*{_VALUE})*)\s*\)"
_REQUIREMENT = re.compile(
    rf"^\s*(?:(?P<not>!)\s*(?P<nkey>{_KEY})"
    rf"|(?P<skey>{_KEY})\s+(?P<setop>in|notin)\s*{_SET}"
    rf"|(?P<key>{_KEY})\s*(?P<op>==|=|!=|>|<)\s*(?P<value>{_VALUE})"
    rf"|(?P<ekey>{_KEY}))\s*$"
)

# Fields that each built-in type supports in field selectors, on top of
# metadata.name and metadata.namespace, which every type supports.
_EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "secrets": ("type",),
    "namespaces": ("status.phase",),
    "jobs.batch": ("status.successful",),
}
# Field selector names whose value sits at another path of the object.
_FIELD_PATHS = {"source": "source.component"}


def _split_requirements(text: str) -> list[str]:
    """Split at commas that are not inside a ``(...)`` value set."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class _LabelRequirement:
    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "==", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if not present or value is None:
            return False
        (bound,) = self.values
        try:
            number, limit = int(value), int(bound)
        except ValueError:
            return False
        return number > limit if self.operator == ">" else number < limit


def _parse_requirement(text: str) -> _LabelRequirement:
    match = _REQUIREMENT.match(text)
    if match is None:
        raise StoreError(
            _status.bad_request(f"unable to parse requirement: {text.strip()!r}")
        )
    if match["nkey"]:
        return _LabelRequirement(match["nkey"], "!exists", frozenset())
    if match["ekey"]:
        return _LabelRequirement(match["ekey"], "exists", frozenset())
    if match["skey"]:
        inner = text[text.index("(") + 1 : text.rindex(")")]
        if not inner.strip():
            # The wording of apimachinery's labels.NewRequirement. An empty
            # value inside a non-empty set, as in "(a,)", is allowed there too.
            raise StoreError(
                _status.bad_request(
                    "unable to parse requirement: values: Invalid value: []string{}: "
                    "for 'in', 'notin' operators, values set can't be empty"
                )
            )
        values = frozenset(value.strip() for value in inner.split(","))
        return _LabelRequirement(match["skey"], match["setop"], values)
    operator, value = match["op"], match["value"]
    if operator in (">", "<") and not re.fullmatch(r"-?\d+", value):
        raise StoreError(
            _status.bad_request(
                f"unable to parse requirement: for '{operator}' operator, the value "
                f"must be an integer: {value!r}"
            )
        )
    return _LabelRequirement(match["key"], operator, frozenset({value}))


def parse_label_selector(text: str | None) -> Selector | None:
    """Parse a ``labelSelector`` query value into a predicate on objects.

    Supports ``=``, ``==``, ``!=``, ``in``, ``notin``, ``>``, ``<``, ``key`` and
    ``!key``. Returns ``None`` for an empty selector, which matches everything.

    Raises:
        StoreError: 400 BadRequest for a selector that does not parse.
    """
    if not text or not text.strip():
        return None
    requirements = [_parse_requirement(part) for part in _split_requirements(text)]

    def matches(obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(requirement.matches(labels) for requirement in requirements)

    return matches


def _field_value(obj: Obj, field: str) -> str:
    node: Any = obj
    for part in _FIELD_PATHS.get(field, field).split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def _unknown_field(rtype: ResourceType, field: str) -> str:
    """Return the API server's error text for an unsupported field selector.

    Types with their own field label conversion (pods, events, secrets,
    namespaces, Jobs) use one wording, and every other type, custom resources
    included, uses apimachinery's DefaultMetaV1FieldSelectorConversion.
    """
    if rtype.key in _EXTRA_FIELDS:
        return f"field label not supported: {field}"
    return (
        f'"{field}" is not a known field selector: only "metadata.name", '
        '"metadata.namespace"'
    )


def parse_field_selector(rtype: ResourceType, text: str | None) -> Selector | None:
    """Parse a ``fieldSelector`` query value into a predicate on objects.

    Supports ``=``, ``==`` and ``!=`` on the fields that the real server
    indexes for the type: ``metadata.name`` and ``metadata.namespace`` for every
    type, plus ``status.phase`` on pods and ``involvedObject.*`` on events.

    Raises:
        StoreError: 400 BadRequest for an unsupported field or bad syntax.
    """
    if not text or not text.strip():
        return None
    allowed = ("metadata.name", "metadata.namespace", *_EXTRA_FIELDS.get(rtype.key, ()))
    terms: list[tuple[str, bool, str]] = []
    for part in text.split(","):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if match is None:
            raise StoreError(_status.bad_request(f"invalid selector: '{text}'"))
        field, operator, value = match.groups()
        if field not in allowed:
            raise StoreError(_status.bad_request(_unknown_field(rtype, field)))
        terms.append((field, operator != "!=", value))

    def matches(obj: Obj) -> bool:
        return all(
            (_field_value(obj, field) == value) == equal
            for field, equal, value in terms
        )

    return matches


def combine(*selectors: Selector | None) -> Selector | None:
    """Return a predicate that requires every given selector, or ``None``."""
    active = [selector for selector in selectors if selector is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def matches(obj: Obj) -> bool:
        return all(selector(obj) for selector in active)

    return matches
