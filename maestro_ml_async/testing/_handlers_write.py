"""Create, replace, patch and delete handlers of the fake API server."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from . import _status
from ._context import ServerContext
from ._handlers_read import request_selector, without_type
from ._http import Target, flag, json_response, read_body, status_response
from ._immutable import check_update
from ._managed import FieldManager, apply, check_manager_name, manager_from_request
from ._patch import PatchDecodeError, PatchError, json_patch, merge_patch
from ._resources import ResourceType
from ._status import StoreError
from ._strategic import strategic_merge_patch

_log = logging.getLogger(__name__)

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def _dry_run(request: web.Request, options: Obj | None = None) -> bool:
    """Return whether the request asks for a dry run.

    kubectl's ``delete --dry-run=server`` sends ``dryRun`` in the DeleteOptions
    body rather than in the query, so both places count.
    """
    values = list(request.query.getall("dryRun", []))
    body_values = (options or {}).get("dryRun") or []
    if not isinstance(body_values, list):
        raise StoreError(_status.bad_request("DeleteOptions.dryRun must be a list"))
    values.extend(str(value) for value in body_values)
    unknown = [value for value in values if value != "All"]
    if unknown:
        message = f"Invalid dry run value: {unknown[0]!r}; the only valid value is All"
        raise StoreError(_status.bad_request(message))
    return bool(values)


def _check_identity(rtype: ResourceType, body: Any, target: Target) -> Obj:
    """Return the body's metadata after checking it against the URL."""
    if not isinstance(body, dict):
        raise StoreError(_status.bad_request("the request body must be a JSON object"))
    api_version = body.get("apiVersion")
    if api_version and api_version != rtype.api_version:
        message = (
            f"the API version in the data ({api_version}) does not match the "
            f"expected API version ({rtype.api_version})"
        )
        raise StoreError(_status.bad_request(message))
    kind = body.get("kind")
    if kind and kind != rtype.kind:
        message = f"the kind in the data ({kind}) does not match the expected kind"
        raise StoreError(_status.bad_request(f"{message} ({rtype.kind})"))
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise StoreError(_status.bad_request("metadata must be an object"))
    if rtype.namespaced:
        namespace = meta.get("namespace")
        if namespace and namespace != target.namespace:
            message = (
                "the namespace of the provided object does not match the namespace "
                "sent on the request"
            )
            raise StoreError(_status.bad_request(message))
        meta["namespace"] = target.namespace
    if target.name is not None:
        name = meta.get("name")
        if name and name != target.name:
            message = (
                f"the name of the object ({name}) does not match the name on the "
                f"URL ({target.name})"
            )
            raise StoreError(_status.bad_request(message))
        meta["name"] = target.name
    return meta


def _field_manager(request: web.Request, target: Target) -> FieldManager:
    """Return the manager of a write: ``fieldManager`` or the User-Agent prefix."""
    name = manager_from_request(
        request.query.get("fieldManager"), request.headers.get("User-Agent", "")
    )
    check_manager_name(name)
    return FieldManager(name, target.subresource or "")


def _method_not_allowed() -> web.Response:
    message = "the server does not allow this method on the requested resource"
    return status_response(_status.failure(405, "MethodNotAllowed", message, {}))


async def handle_create(
    ctx: ServerContext, request: web.Request, target: Target
) -> web.Response:
    """Create an object from the POST body (201)."""
    if target.rtype.namespaced and target.namespace is None:
        return _method_not_allowed()
    body = await read_body(request)
    _check_identity(target.rtype, body, target)
    created = ctx.store.create(
        target.rtype,
        body,
        dry_run=_dry_run(request),
        manager=_field_manager(request, target),
    )
    return json_response(created, 201)


def _missing_version(rtype: ResourceType, name: str) -> StoreError:
    cause = (
        "FieldValueInvalid",
        "metadata.resourceVersion",
        "Invalid value: 0x0: must be specified for an update",
    )
    return StoreError(_status.invalid(rtype, name, [cause]))


async def handle_replace(
    ctx: ServerContext, request: web.Request, target: Target
) -> web.Response:
    """Replace an object, or its status for ``/status`` (PUT).

    Custom resources need ``metadata.resourceVersion`` (422 without it, as
    apiextensions-apiserver requires); built-in types treat a PUT without one
    as unconditional.
    """
    assert target.name is not None
    body = await read_body(request)
    meta = _check_identity(target.rtype, body, target)
    if target.rtype.custom and not meta.get("resourceVersion"):
        raise _missing_version(target.rtype, target.name)
    _check_immutable(ctx, target, body)
    replaced = ctx.store.replace(
        target.rtype,
        body,
        status_only=target.subresource == "status",
        dry_run=_dry_run(request),
        manager=_field_manager(request, target),
    )
    return json_response(replaced)


def _unsupported_patch(rtype: ResourceType) -> StoreError:
    accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
    if not rtype.custom:
        accepted.append(STRATEGIC_PATCH)
    message = (
        "the body of the request was in an unknown format - accepted media types "
        f"include: {', '.join(accepted)}"
    )
    return StoreError(_status.failure(415, "UnsupportedMediaType", message, {}))


# The API server discards the reason a JSON patch failed to apply and sends
# this generic 422 text with empty details (apiserver handlers/patch.go).
_JSON_PATCH_FAILED = "the server rejected our request due to an error in our request"


def _json_patched(stored: Obj, patch: Any) -> Any:
    """Return the stored object with a JSON patch applied.

    Raises:
        StoreError: 400 when the body is not a list of operations, 422 with
            the API server's generic message when an operation fails.
    """
    try:
        return json_patch(stored, patch)
    except PatchDecodeError as exc:
        message = f"error decoding patch: {exc}"
        raise StoreError(_status.bad_request(message)) from None
    except PatchError as exc:
        _log.debug("JSON patch failed: %s", exc)
        status = _status.failure(422, "Invalid", _JSON_PATCH_FAILED, {})
        raise StoreError(status) from None


def _patched(rtype: ResourceType, content_type: str, stored: Obj, patch: Any) -> Obj:
    """Return the stored object with the patch applied."""
    try:
        if content_type == JSON_PATCH:
            result = _json_patched(stored, patch)
        elif content_type == STRATEGIC_PATCH:
            result = strategic_merge_patch(stored, patch)
        elif isinstance(patch, dict):
            result = merge_patch(stored, patch)
        else:
            message = "a merge patch body must be a JSON object"
            raise StoreError(_status.bad_request(message))
    except PatchError as exc:
        raise StoreError(_status.failure(422, "Invalid", str(exc), {})) from None
    if not isinstance(result, dict):
        raise StoreError(_status.bad_request("the patched object is not an object"))
    return result


async def handle_patch(
    ctx: ServerContext, request: web.Request, target: Target
) -> web.Response:
    """Patch an object or its status (merge, JSON, strategic or apply patch).

    A ``metadata.resourceVersion`` in the patch is a precondition, because it
    ends up in the patched object that the store compares.
    """
    assert target.name is not None
    rtype = target.rtype
    content_type = request.content_type
    if content_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH):
        raise _unsupported_patch(rtype)
    if content_type == STRATEGIC_PATCH and rtype.custom:
        raise _unsupported_patch(rtype)
    if content_type == APPLY_PATCH:
        return await _handle_apply(ctx, request, target)

    patch = await read_body(request)
    stored = ctx.store.get(rtype, target.namespace, target.name)
    if stored is None:
        raise StoreError(_status.not_found(rtype, target.name))
    result = _patched(rtype, content_type, stored, patch)
    _pin_identity(result, target)
    _check_immutable(ctx, target, result)
    patched = ctx.store.replace(
        rtype,
        result,
        status_only=target.subresource == "status",
        dry_run=_dry_run(request),
        manager=_field_manager(request, target),
    )
    return json_response(patched)


def _check_immutable(ctx: ServerContext, target: Target, new: Obj) -> None:
    """Reject a main-resource write that changes an immutable field."""
    if target.subresource is not None or target.name is None:
        return
    stored = ctx.store.peek_one(target.rtype, target.namespace, target.name)
    if stored is not None:
        check_update(target.rtype, stored, new)


def _pin_identity(obj: Obj, target: Target) -> None:
    meta = obj.setdefault("metadata", {})
    meta["name"] = target.name
    if target.rtype.namespaced:
        meta["namespace"] = target.namespace


async def _handle_apply(
    ctx: ServerContext, request: web.Request, target: Target
) -> web.Response:
    """Server-side apply: merge the config and track its fields' owner.

    The applied fields belong to the ``fieldManager``. A field that another
    manager owns with a different value is a 409 conflict unless
    ``force=true``, and fields that the manager stopped applying are removed
    when no other manager owns them.
    """
    assert target.name is not None
    if not request.query.get("fieldManager"):
        message = "PATCH requests with apply-patch+yaml must set the fieldManager"
        raise StoreError(_status.bad_request(message))
    manager = _field_manager(request, target)
    body = await read_body(request, yaml_allowed=True)
    _check_identity(target.rtype, body, target)
    if body["metadata"].get("managedFields") is not None:
        message = "metadata.managedFields must be nil"
        raise StoreError(_status.bad_request(message))
    dry_run = _dry_run(request)
    force = flag(request, "force")
    stored = ctx.store.get(target.rtype, target.namespace, target.name)
    if stored is None:
        if target.subresource is not None:
            raise StoreError(_status.not_found(target.rtype, target.name))
        new = apply(target.rtype, None, body, manager, force=force)
        created = ctx.store.create(target.rtype, new, dry_run=dry_run)
        return json_response(created, 201)
    result = apply(target.rtype, stored, body, manager, force=force)
    _pin_identity(result, target)
    _check_immutable(ctx, target, result)
    applied = ctx.store.replace(
        target.rtype,
        result,
        status_only=target.subresource == "status",
        dry_run=dry_run,
    )
    return json_response(applied)


async def _delete_options(request: web.Request) -> Obj:
    raw = await request.read()
    options: Obj = {}
    if raw.strip():
        parsed = await read_body(request)
        if not isinstance(parsed, dict):
            raise StoreError(_status.bad_request("DeleteOptions must be an object"))
        options = parsed
    propagation = options.get("propagationPolicy") or request.query.get(
        "propagationPolicy"
    )
    orphan = options.get("orphanDependents")
    if orphan is None and "orphanDependents" in request.query:
        orphan = flag(request, "orphanDependents")
    if propagation is None and orphan is not None:
        propagation = "Orphan" if orphan else "Background"
    if propagation not in (None, "Orphan", "Background", "Foreground"):
        message = f"propagationPolicy: Unsupported value: {propagation!r}"
        raise StoreError(_status.bad_request(message))
    return {
        "propagation": propagation,
        "preconditions": options.get("preconditions"),
        "dry_run": _dry_run(request, options),
    }


async def handle_delete(
    ctx: ServerContext, request: web.Request, target: Target
) -> web.Response:
    """Delete an object (200 with a Success Status, or the object itself).

    An object with finalizers stays with ``deletionTimestamp`` set and is
    returned, and so is an object deleted with ``Foreground`` propagation.
    Pods and namespaces return the deleted object, and other types the Success
    Status, as a real server does.
    """
    assert target.name is not None
    rtype = target.rtype
    options = await _delete_options(request)
    if options["dry_run"]:
        current = ctx.store.get(rtype, target.namespace, target.name)
        if current is None:
            raise StoreError(_status.not_found(rtype, target.name))
        return json_response(current)
    last = ctx.store.delete(
        rtype,
        target.namespace,
        target.name,
        propagation=options["propagation"],
        preconditions=options["preconditions"],
    )
    if last is None:
        raise StoreError(_status.not_found(rtype, target.name))
    still_there = ctx.store.get(rtype, target.namespace, target.name) is not None
    foreground = options["propagation"] == "Foreground"
    if still_there or foreground or rtype.key in ("pods", "namespaces"):
        return json_response(last)
    uid = last["metadata"]["uid"]
    return json_response(_status.success(rtype, target.name, uid))


async def handle_delete_collection(
    ctx: ServerContext, request: web.Request, target: Target
) -> web.Response:
    """Delete every object of the collection that the selectors match."""
    rtype = target.rtype
    options = await _delete_options(request)
    selector = request_selector(request, rtype)
    deleted = []
    for obj in list(ctx.store.peek(rtype, target.namespace)):
        if selector is not None and not selector(obj):
            continue
        if options["dry_run"]:
            deleted.append(obj if rtype.custom else without_type(obj))
            continue
        meta = obj["metadata"]
        last = ctx.store.delete(
            rtype,
            meta.get("namespace"),
            meta["name"],
            propagation=options["propagation"],
        )
        if last is not None:
            deleted.append(last if rtype.custom else without_type(last))
    body = {
        "apiVersion": rtype.api_version,
        "kind": rtype.list_kind,
        "metadata": {"resourceVersion": str(ctx.store.resource_version)},
        "items": deleted,
    }
    return json_response(body)
