"""Field ownership (``metadata.managedFields``) and server-side apply.

Every write records which field manager set which fields, in the ``FieldsV1``
format of the API server. A path is a tuple of FieldsV1 keys: ``f:<name>`` for
a map field, ``k:<json>`` for an item of a list keyed by a merge key and
``v:<json>`` for a value of a scalar set list. Other lists are atomic: the
whole list is one field.

Update operations (create, replace, merge, JSON and strategic patches) move
the fields they change to their manager. Apply operations merge the applied
configuration into the live object, raise 409 for fields that another manager
owns with a different value (unless forced), and remove fields that the
manager applied before but no longer applies and no other manager owns.

NOTE: the real server takes list types from the schema. The fake has no
schemas, so it treats the lists in ``_strategic.MERGE_KEYS`` and
``MERGE_SCALAR_LISTS`` as keyed or set lists in every type, custom
resources included, and every other list as atomic.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import _status
from ._resources import ResourceType
from ._status import StoreError
from ._strategic import MERGE_KEYS, MERGE_SCALAR_LISTS

Obj = dict[str, Any]
Path = tuple[str, ...]
FieldSet = set[Path]

APPLY = "Apply"
UPDATE = "Update"
_MISSING = object()
# Metadata that the server sets, or that names the object: never owned.
_UNOWNED_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)


@dataclass(frozen=True)
class FieldManager:
    """The manager of one write.

    Attributes:
        name: The ``fieldManager`` query parameter, or the User-Agent prefix.
        subresource: ``status`` for writes to the status subresource, else ``""``.
    """

    name: str
    subresource: str = ""


def manager_from_request(query_value: str | None, user_agent: str) -> str:
    """Return the manager name of a non-apply write.

    Without ``fieldManager`` the API server uses the User-Agent up to its
    first ``/``, such as ``kubectl`` or ``OpenAPI-Generator``.
    """
    if query_value:
        return query_value
    prefix = user_agent.split("/", 1)[0].strip()
    return prefix or "unknown"


def check_manager_name(name: str) -> None:
    """Reject a ``fieldManager`` longer than the API server allows (128).

    Raises:
        StoreError: 400 BadRequest.
    """
    if len(name) > 128:
        message = (
            f"fieldManager: Invalid value: {name[:20]!r}...: must be no more "
            "than 128 characters"
        )
        raise StoreError(_status.bad_request(message))


# Field sets


def owned_part(rtype: ResourceType, obj: Obj, subresource: str) -> Obj:
    """Return the part of ``obj`` that a write to ``subresource`` manages."""
    part: Obj = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if rtype.has_status and (key == "status") != (subresource == "status"):
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _UNOWNED_METADATA}
            if meta:
                part[key] = meta
            continue
        part[key] = value
    return part


def field_set(value: Any, prefix: Path = ()) -> FieldSet:
    """Return the paths of every field set in a map, as ownership counts them."""
    paths: FieldSet = set()
    if not isinstance(value, dict):
        return paths
    for key, child in value.items():
        path = (*prefix, f"f:{key}")
        if child is None:
            continue
        if isinstance(child, dict) and child:
            paths |= field_set(child, path)
        elif isinstance(child, list) and child and _is_keyed(key, child):
            merge_key = MERGE_KEYS[key]
            for item in child:
                item_path = (*path, _item_element(merge_key, item[merge_key]))
                paths.add(item_path)
                paths |= field_set(item, item_path)
        elif isinstance(child, list) and child and key in MERGE_SCALAR_LISTS:
            paths |= {(*path, "v:" + _dumps(item)) for item in child}
        else:
            paths.add(path)
    return paths


def _is_keyed(field: str, items: list[Any]) -> bool:
    key = MERGE_KEYS.get(field)
    return key is not None and all(
        isinstance(item, dict) and key in item for item in items
    )


def _item_element(key: str, value: Any) -> str:
    return "k:" + _dumps({key: value})


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def value_at(obj: Any, path: Path) -> Any:
    """Return the value at ``path``, or ``_MISSING``."""
    node = obj
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f" and isinstance(node, dict) and rest in node:
            node = node[rest]
        elif kind == "k" and isinstance(node, list):
            ((key, wanted),) = json.loads(rest).items()
            found = [i for i in node if isinstance(i, dict) and i.get(key) == wanted]
            if not found:
                return _MISSING
            node = found[0]
        elif kind == "v" and isinstance(node, list):
            wanted = json.loads(rest)
            if wanted not in node:
                return _MISSING
            node = wanted
        else:
            return _MISSING
    return node


def remove_at(obj: Obj, path: Path) -> None:
    """Remove the field, list item or set value at ``path`` if it exists."""
    parent = value_at(obj, path[:-1])
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        ((key, wanted),) = json.loads(rest).items()
        parent[:] = [
            i for i in parent if not (isinstance(i, dict) and i.get(key) == wanted)
        ]
    elif kind == "v" and isinstance(parent, list):
        wanted = json.loads(rest)
        parent[:] = [item for item in parent if item != wanted]


def to_fields_v1(paths: Iterable[Path]) -> Obj:
    """Return the FieldsV1 document of a field set."""
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
        if path and path[-1][0] in "kv":
            node.setdefault(".", {})
    return tree


def from_fields_v1(tree: Any, prefix: Path = ()) -> FieldSet:
    """Return the field set of a FieldsV1 document, skipping malformed parts."""
    paths: FieldSet = set()
    if not isinstance(tree, dict):
        return paths
    for element, child in tree.items():
        if element == ".":
            paths.add(prefix)
            continue
        path = (*prefix, element)
        if isinstance(child, dict) and child:
            paths |= from_fields_v1(child, path)
        else:
            paths.add(path)
    return paths


def describe_path(path: Path) -> str:
    """Return a path as the API server prints it in conflicts: ``.spec.a[name="b"]``."""
    text = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            text += f".{rest}"
        elif kind == "k":
            pairs = json.loads(rest).items()
            text += "[" + ",".join(f"{k}={_dumps(v)}" for k, v in pairs) + "]"
        else:
            text += f"[={rest}]"
    return text


# Managed field entries


@dataclass
class _Entry:
    manager: str
    operation: str
    api_version: str
    time: str
    fields: FieldSet
    subresource: str

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> Obj:
        body: Obj = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(self.fields),
        }
        if self.subresource:
            body["subresource"] = self.subresource
        return body


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entries(obj: Obj | None) -> list[_Entry]:
    raw = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    entries = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not item.get("manager"):
            continue
        entries.append(
            _Entry(
                manager=str(item["manager"]),
                operation=str(item.get("operation") or UPDATE),
                api_version=str(item.get("apiVersion") or ""),
                time=str(item.get("time") or ""),
                fields=from_fields_v1(item.get("fieldsV1")),
                subresource=str(item.get("subresource") or ""),
            )
        )
    return entries


def _store_entries(obj: Obj, entries: list[_Entry]) -> None:
    kept = [entry.to_json() for entry in entries if entry.fields]
    if kept:
        obj["metadata"]["managedFields"] = kept
    else:
        obj["metadata"].pop("managedFields", None)


def _entry_for(
    entries: list[_Entry], rtype: ResourceType, manager: FieldManager, operation: str
) -> _Entry:
    identity = (manager.name, operation, manager.subresource)
    for entry in entries:
        if entry.identity == identity:
            return entry
    entry = _Entry(
        manager.name, operation, rtype.api_version, _now(), set(), manager.subresource
    )
    entries.append(entry)
    return entry


def record_update(
    rtype: ResourceType, old: Obj | None, new: Obj, manager: FieldManager
) -> None:
    """Set ``new``'s managedFields after an Update operation by ``manager``.

    The manager gains the fields that the write added or changed, and other
    managers lose them. Fields that the write removed leave every set.
    """
    sub = manager.subresource
    new_part = owned_part(rtype, new, sub)
    old_part = owned_part(rtype, old, sub) if old is not None else {}
    new_fields = field_set(new_part)
    old_fields = field_set(old_part)
    changed = {
        path
        for path in new_fields
        if value_at(old_part, path) is _MISSING
        or value_at(old_part, path) != value_at(new_part, path)
    }
    removed = old_fields - new_fields
    entries = _entries(new)
    for entry in entries:
        if entry.subresource == sub:
            entry.fields -= changed | removed
    if changed:
        entry = _entry_for(entries, rtype, manager, UPDATE)
        entry.fields |= changed
        entry.time = _now()
    _store_entries(new, entries)


# Server-side apply


def apply(
    rtype: ResourceType,
    live: Obj | None,
    config: Obj,
    manager: FieldManager,
    *,
    force: bool,
) -> Obj:
    """Return the object after ``manager`` applies ``config`` (with managedFields).

    Raises:
        StoreError: 409 Conflict (causes ``FieldManagerConflict``) when another
            manager owns an applied field with a different value and ``force``
            is false.
    """
    sub = manager.subresource
    applied = owned_part(rtype, config, sub)
    applied_fields = field_set(applied)
    base = copy.deepcopy(live) if live is not None else {"metadata": {}}
    entries = _entries(live)
    others = [
        entry
        for entry in entries
        if entry.subresource == sub and entry.identity != (manager.name, APPLY, sub)
    ]
    live_part = owned_part(rtype, base, sub)
    conflicts = _conflicts(rtype, others, applied_fields, live_part, applied)
    if conflicts and not force:
        raise StoreError(_conflict_status(rtype, conflicts))
    if force:
        for entry in others:
            entry.fields -= {path for path, _ in conflicts}

    result: Obj = _merge_applied(base, _identity_part(config))
    result = _merge_applied(result, applied)
    own = _entry_for(entries, rtype, manager, APPLY)
    keepers = [*others, _Entry("", APPLY, "", "", applied_fields, sub)]
    for path in sorted(own.fields - applied_fields, key=len, reverse=True):
        if not _owned_below(path, keepers):
            remove_at(result, path)
            _prune_empty_parents(result, path, keepers)
    # The time changes only with the fields or the object, so that applying
    # the same configuration again is a no-op that keeps the resourceVersion.
    if own.fields != applied_fields or _without_fields(result) != _without_fields(base):
        own.time = _now()
    own.fields = applied_fields
    own.api_version = rtype.api_version
    _store_entries(result, entries)
    return result


def _without_fields(obj: Obj) -> Obj:
    meta = {
        k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"
    }
    return {**obj, "metadata": meta}


def _identity_part(config: Obj) -> Obj:
    """Return the name, namespace and resourceVersion of the applied config."""
    meta = config.get("metadata") or {}
    kept = ("name", "namespace", "resourceVersion")
    return {"metadata": {key: meta[key] for key in kept if key in meta}}


def _conflicts(
    rtype: ResourceType,
    others: list[_Entry],
    applied_fields: FieldSet,
    live: Obj,
    applied: Obj,
) -> list[tuple[Path, _Entry]]:
    found: list[tuple[Path, _Entry]] = []
    for path in sorted(applied_fields):
        if path[-1][0] in "kv":
            continue
        current = value_at(live, path)
        if current is _MISSING or current == value_at(applied, path):
            continue
        for entry in others:
            if path in entry.fields:
                found.append((path, entry))
    return found


def _conflict_status(rtype: ResourceType, conflicts: list[tuple[Path, _Entry]]) -> Obj:
    by_manager: dict[str, list[str]] = {}
    causes = []
    for path, entry in conflicts:
        who = f'"{entry.manager}" using {entry.api_version or rtype.api_version}'
        by_manager.setdefault(who, []).append(describe_path(path))
        causes.append(
            {
                "reason": "FieldManagerConflict",
                "message": f"conflict with {who}",
                "field": describe_path(path),
            }
        )
    parts = []
    for who, fields in by_manager.items():
        if len(fields) == 1:
            parts.append(f"conflict with {who}: {fields[0]}")
        else:
            listed = "\n".join(f"- {field}" for field in fields)
            parts.append(f"conflicts with {who}:\n{listed}")
    count = len(conflicts)
    noun = "conflict" if count == 1 else "conflicts"
    message = f"Apply failed with {count} {noun}: " + "\n".join(parts)
    return _status.failure(409, "Conflict", message, {"causes": causes})


def _owned_below(path: Path, entries: list[_Entry]) -> bool:
    size = len(path)
    return any(owned[:size] == path for entry in entries for owned in entry.fields)


def _prune_empty_parents(obj: Obj, path: Path, keepers: list[_Entry]) -> None:
    """Remove maps that a removal left empty, unless a manager owns a field in them."""
    for size in range(len(path) - 1, 0, -1):
        parent = path[:size]
        value = value_at(obj, parent)
        if value != {} or parent[-1][0] != "f" or _owned_below(parent, keepers):
            return
        remove_at(obj, parent)


def _merge_applied(live: Any, applied: Any, field: str = "") -> Any:
    """Merge an applied configuration: maps by key, keyed lists by merge key."""
    if isinstance(applied, dict):
        result = copy.deepcopy(live) if isinstance(live, dict) else {}
        for key, value in applied.items():
            if value is None:
                continue
            result[key] = _merge_applied(result.get(key), value, key)
        return result
    if isinstance(applied, list) and isinstance(live, list):
        if _is_keyed(field, applied) and _is_keyed(field, live):
            return _merge_keyed(field, live, applied)
        if field in MERGE_SCALAR_LISTS:
            return [*live, *(v for v in applied if v not in live)]
    return copy.deepcopy(applied)


def _merge_keyed(field: str, live: list[Any], applied: list[Any]) -> list[Any]:
    key = MERGE_KEYS[field]
    result = copy.deepcopy(live)
    for item in applied:
        matches = [i for i, old in enumerate(result) if old.get(key) == item[key]]
        if matches:
            result[matches[0]] = _merge_applied(result[matches[0]], item)
        else:
            result.append(copy.deepcopy(item))
    return result
