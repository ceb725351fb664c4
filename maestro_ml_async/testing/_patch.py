"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) on plain JSON values."""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied, such as a failed ``test`` operation."""


class PatchDecodeError(PatchError):
    """A JSON patch body that is not a list of operation objects."""


def _json_type(value: Any) -> str:
    """Return the JSON type name that Go's encoding/json prints for ``value``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with an RFC 7386 merge patch applied.

    An object in the patch merges key by key and ``null`` deletes a key. Any
    other value, arrays included, replaces the target value. The inputs are
    not modified.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {pointer!r}")
    return [_unescape(token) for token in pointer[1:].split("/")]


def _parent(document: Any, pointer: str) -> tuple[Any, str]:
    """Return the container that holds the pointer's last token, and that token."""
    tokens = _split_pointer(pointer)
    if not tokens:
        raise PatchError("the operation cannot address the document root")
    node = document
    for token in tokens[:-1]:
        node = _child(node, token, pointer)
    return node, tokens[-1]


def _index(container: list[Any], token: str, pointer: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in path {pointer!r}")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of range in path {pointer!r}")
    return index


def _child(node: Any, token: str, pointer: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise PatchError(f"path {pointer!r} does not exist")
        return node[token]
    if isinstance(node, list):
        return node[_index(node, token, pointer, allow_end=False)]
    raise PatchError(f"path {pointer!r} does not exist")


def _get(document: Any, pointer: str) -> Any:
    node = document
    for token in _split_pointer(pointer):
        node = _child(node, token, pointer)
    return node


def _add(document: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(document, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, pointer, allow_end=True), value)
    else:
        raise PatchError(f"path {pointer!r} does not exist")
    return document


def _remove(document: Any, pointer: str) -> Any:
    parent, token = _parent(document, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"unable to remove nonexistent key: {token}")
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, pointer, allow_end=False))
    raise PatchError(f"path {pointer!r} does not exist")


def _apply_operation(document: Any, operation: dict[str, Any]) -> Any:
    op = operation.get("op")
    path = operation.get("path")
    if not isinstance(path, str):
        raise PatchError(f"operation {op!r} has no path")
    if op in ("add", "replace", "test") and "value" not in operation:
        raise PatchError(f"operation {op!r} on {path!r} has no value")
    value = copy.deepcopy(operation.get("value"))
    if op == "add":
        return _add(document, path, value)
    if op == "remove":
        _remove(document, path)
        return document
    if op == "replace":
        _get(document, path)
        if path == "":
            return value
        _remove(document, path)
        return _add(document, path, value)
    if op in ("move", "copy"):
        source = operation.get("from")
        if not isinstance(source, str):
            raise PatchError(f"operation {op!r} on {path!r} has no from")
        moved = _remove(document, source) if op == "move" else _get(document, source)
        return _add(document, path, copy.deepcopy(moved))
    if op == "test":
        if _get(document, path) != value:
            raise PatchError(f"testing value {path} failed: test failed")
        return document
    raise PatchError(f"unexpected kind of operation: {op!r}")


def json_patch(target: Any, operations: Any) -> Any:
    """Return ``target`` with an RFC 6902 JSON patch applied.

    Args:
        target: The JSON document; it is not modified.
        operations: The list of operations (``add``, ``remove``, ``replace``,
            ``move``, ``copy``, ``test``).

    Raises:
        PatchDecodeError: When the patch is not a list of objects. The message
            is the API server's decoding error.
        PatchError: When an operation is malformed, a path does not exist or
            a ``test`` fails.
    """
    if operations is None:
        # Go decodes JSON null into an empty list, so the patch changes nothing.
        operations = []
    if not isinstance(operations, list):
        raise PatchDecodeError(
            f"json: cannot unmarshal {_json_type(operations)} into Go value of "
            "type []handlers.jsonPatchOp"
        )
    for operation in operations:
        if operation is not None and not isinstance(operation, dict):
            raise PatchDecodeError(
                f"json: cannot unmarshal {_json_type(operation)} into Go value of "
                "type handlers.jsonPatchOp"
            )
    document = copy.deepcopy(target)
    for operation in operations:
        if operation is None:
            # Go decodes a null operation into one without an op.
            raise PatchError("unexpected kind of operation: ''")
        document = _apply_operation(document, operation)
    return document
