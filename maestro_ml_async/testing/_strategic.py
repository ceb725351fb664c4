"""Strategic merge patch for the built-in types that the fake API server serves.

A strategic merge patch is a JSON merge patch in which some lists merge item by
item instead of being replaced. The merge key of each such list comes from the
``patchMergeKey`` tags of the Go types in ``k8s.io/api``. The fake identifies lists
by field name only, which is unambiguous for the types it serves (pods,
Jobs, namespaces, config maps, secrets, service accounts and events).

The patch directives that kubectl and client-go send are supported:
``$patch`` (``replace``, ``merge``, ``delete``) on maps and list items,
``$setElementOrder/<field>``, ``$deleteFromPrimitiveList/<field>`` and
``$retainKeys``.
"""

from __future__ import annotations

import copy
from typing import Any

from ._patch import PatchError

Obj = dict[str, Any]

# Lists of objects that merge by key (patchStrategy "merge" in k8s.io/api).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "secrets": "name",
}
# Lists of scalars that merge as sets (patchStrategy "merge" on a []string).
MERGE_SCALAR_LISTS = frozenset({"finalizers"})

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"


def strategic_merge_patch(target: Any, patch: Any) -> Obj:
    """Return ``target`` with a strategic merge patch applied.

    The inputs are not modified.

    Raises:
        PatchError: When the patch is not an object, a directive has an
            unknown value, or a keyed list item lacks its merge key.
    """
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    original = target if isinstance(target, dict) else {}
    result = _merge_map(original, patch)
    if result is None:
        raise PatchError("a strategic merge patch cannot delete the whole object")
    return result


def _merge_map(original: Obj, patch: Obj) -> Obj | None:
    """Merge one map, or return ``None`` when the patch deletes the map."""
    directive = patch.get(_PATCH)
    if directive == "delete":
        return None
    if directive == "replace":
        replaced: Obj = _strip_directives(patch)
        return replaced
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type: {directive!r} in map")

    result = copy.deepcopy(original)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in (_PATCH, _RETAIN_KEYS):
            continue
        if key.startswith(_ORDER_PREFIX):
            orders[key[len(_ORDER_PREFIX) :]] = _as_list(key, value)
            continue
        if key.startswith(_DELETE_PREFIX):
            field = key[len(_DELETE_PREFIX) :]
            _delete_from_scalar_list(result, field, _as_list(key, value))
            continue
        if value is None:
            result.pop(key, None)
            continue
        merged = _merge_field(key, result.get(key), value)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged

    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(field, result[field], order)
    retained = patch.get(_RETAIN_KEYS)
    if retained is not None:
        keep = set(_as_list(_RETAIN_KEYS, retained))
        result = {key: value for key, value in result.items() if key in keep}
    return result


def _merge_field(field: str, current: Any, value: Any) -> Any:
    if isinstance(value, dict):
        base = current if isinstance(current, dict) else {}
        return _merge_map(base, value)
    if isinstance(value, list):
        items = current if isinstance(current, list) else []
        if field in MERGE_KEYS:
            return _merge_keyed_list(field, MERGE_KEYS[field], items, value)
        if field in MERGE_SCALAR_LISTS:
            return _merge_scalar_list(items, value)
        return _strip_directives(value)
    return copy.deepcopy(value)


def _merge_keyed_list(
    field: str, key: str, original: list[Any], patch: list[Any]
) -> Any:
    if any(isinstance(item, dict) and item.get(_PATCH) == "replace" for item in patch):
        kept = [item for item in patch if not _is_directive_item(item)]
        return _strip_directives(kept)
    result = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"{field}: a list item must be an object with {key!r}")
        if key not in item:
            message = f"{field}: map: {item} does not contain declared merge key: {key}"
            raise PatchError(message)
        index = _find(result, key, item[key])
        if item.get(_PATCH) == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(_strip_directives(item))
            continue
        merged = _merge_map(result[index], item)
        if merged is None:
            result.pop(index)
        else:
            result[index] = merged
    return result


def _merge_scalar_list(original: list[Any], patch: list[Any]) -> list[Any]:
    result = copy.deepcopy(original)
    for value in patch:
        if value not in result:
            result.append(copy.deepcopy(value))
    return result


def _delete_from_scalar_list(result: Obj, field: str, values: list[Any]) -> None:
    current = result.get(field)
    if isinstance(current, list):
        result[field] = [value for value in current if value not in values]


def _reorder(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    """Sort ``items`` by the order of ``$setElementOrder``, with the rest last."""
    key = MERGE_KEYS.get(field)

    def identity(item: Any) -> Any:
        if key is not None and isinstance(item, dict):
            return item.get(key)
        return item

    wanted = [identity(entry) for entry in order]
    ranked = [item for item in items if identity(item) in wanted]
    ranked.sort(key=lambda item: wanted.index(identity(item)))
    rest = [item for item in items if identity(item) not in wanted]
    return ranked + rest


def _find(items: list[Any], key: str, value: Any) -> int | None:
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get(key) == value:
            return index
    return None


def _is_directive_item(item: Any) -> bool:
    return isinstance(item, dict) and set(item) == {_PATCH}


def _as_list(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise PatchError(f"{name} must be a list")
    return value


def _strip_directives(value: Any) -> Any:
    """Return a copy of ``value`` without ``$`` directive keys at any depth."""
    if isinstance(value, dict):
        return {
            key: _strip_directives(item)
            for key, item in value.items()
            if not key.startswith("$")
        }
    if isinstance(value, list):
        return [_strip_directives(item) for item in value]
    return value
