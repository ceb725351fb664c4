"""GET and LIST handlers of the fake API server."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from . import _status
from ._context import ServerContext
from ._http import (
    Target,
    flag,
    int_param,
    json_response,
    partial_metadata,
    wants_metadata,
    wants_table,
)
from ._list_options import EXACT, list_options, parse_resource_version
from ._resources import ResourceType
from ._selectors import Selector, combine, parse_field_selector, parse_label_selector
from ._status import StoreError
from ._store import storage_order
from ._table import to_table

Obj = dict[str, Any]

# The API server's texts for a continue token whose resourceVersion etcd has
# compacted (k8s.io/apiserver, storage/etcd3/errors.go). The 410 Status also
# carries a new token in ``metadata.continue`` that resumes at the latest
# resourceVersion.
_EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list "
    "result. You can start a new list without the continue parameter, or use "
    "the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent "
    "list - objects that were created, modified, or deleted between the time "
    "the first chunk was returned and now may show up in the list."
)
_EXPIRED_LIST = "The resourceVersion for the provided list is too old."
# The resourceVersion of a continue token that resumes at the latest state.
LATEST = -1


def request_selector(request: web.Request, rtype: ResourceType) -> Selector | None:
    """Return the predicate of the request's label and field selectors."""
    return combine(
        parse_label_selector(request.query.get("labelSelector")),
        parse_field_selector(rtype, request.query.get("fieldSelector")),
    )


def without_type(obj: Obj) -> Obj:
    """Return ``obj`` without apiVersion and kind, as built-in list items are sent."""
    return {
        key: value for key, value in obj.items() if key not in ("apiVersion", "kind")
    }


def _include_object(request: web.Request) -> str:
    value = request.query.get("includeObject", "Metadata")
    if value not in ("Metadata", "Object", "None"):
        raise StoreError(_status.bad_request(f"invalid includeObject: {value!r}"))
    return value


def handle_get(
    ctx: ServerContext, request: web.Request, target: Target
) -> web.Response:
    """Return one object, or a one-row Table when ``kubectl get`` asks for it."""
    assert target.name is not None
    obj = ctx.store.get(target.rtype, target.namespace, target.name)
    if obj is None:
        raise StoreError(_status.not_found(target.rtype, target.name))
    if wants_table(request):
        meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
        return json_response(
            to_table(target.rtype, [obj], meta, _include_object(request))
        )
    if wants_metadata(request, "PartialObjectMetadata"):
        return json_response(partial_metadata(obj))
    return json_response(obj)


def _object_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return storage_order((meta.get("namespace") or "", meta["name"]))


def encode_continue(resource_version: int, last_key: str) -> str:
    """Return an opaque continue token for the list page after ``last_key``."""
    raw = json.dumps({"rv": resource_version, "start": last_key}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _invalid_continue(detail: str) -> StoreError:
    message = f"invalid continue token: continue key is not valid{detail}"
    return StoreError(_status.bad_request(message))


def _expired_continue(last_key: str) -> StoreError:
    status = _status.expired(_EXPIRED_CONTINUE)
    status["metadata"] = {"continue": encode_continue(LATEST, last_key)}
    return StoreError(status)


def decode_continue(
    ctx: ServerContext, rtype: ResourceType, token: str
) -> tuple[int, str]:
    """Return the resourceVersion and last key of a continue token.

    The resourceVersion is ``LATEST`` for the token of an expired-continue
    Status, which resumes at the current state as the API server does.

    Raises:
        StoreError: 400 for a malformed token, 410 Expired for one older than
            the type's watch history or than ``ctx.continue_floor``.
    """
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        resource_version, last_key = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise _invalid_continue(f": {exc}") from None
    if resource_version == 0:
        raise _invalid_continue(": incorrect encoded start resourceVersion")
    if not last_key:
        raise _invalid_continue(": encoded start key empty")
    if resource_version == LATEST:
        return resource_version, last_key
    too_old = resource_version < ctx.store.oldest_available(rtype)
    if too_old or resource_version < ctx.continue_floor:
        raise _expired_continue(last_key)
    return resource_version, last_key


def _listed_objects(
    ctx: ServerContext, request: web.Request, target: Target, limit: int
) -> tuple[list[Obj], int, str]:
    """Return the objects to list, the list's resourceVersion and the start key.

    The rules follow the etcd list of the API server (k8s.io/apiserver,
    storage/etcd3/store.go). A continue token, ``resourceVersionMatch=Exact``,
    or a non-zero ``resourceVersion`` without a match on a list with a
    ``limit`` lists the objects as they were at that resourceVersion. Any
    other list shows the current objects, after checking that a requested
    ``resourceVersion`` is not newer.

    Raises:
        StoreError: 400 for a ``resourceVersion`` other than ``0`` next to a
            continue token, 410 Expired for a version that left the history,
            504 for a version newer than the store's.
    """
    rtype = target.rtype
    options = list_options(request, watch=False)
    current = ctx.store.resource_version
    if options.continue_token:
        list_rv, start = decode_continue(ctx, rtype, options.continue_token)
        if options.resource_version not in ("", "0"):
            message = "specifying resource version is not allowed when using continue"
            raise StoreError(_status.bad_request(message))
        if list_rv == LATEST:
            return ctx.store.peek(rtype, target.namespace), current, start
    else:
        requested = parse_resource_version(options.resource_version)
        legacy_exact = options.match == "" and limit > 0
        if requested is None or not (options.match == EXACT or legacy_exact):
            if requested is not None and requested > current:
                # The API server waits up to 3 s for its cache to reach the
                # version. The fake's store is always current, so it returns
                # the error at once.
                status = _status.resource_version_too_large(requested, current)
                raise StoreError(status)
            return ctx.store.peek(rtype, target.namespace), current, ""
        list_rv, start = requested, ""
    if list_rv > current:
        raise StoreError(_status.resource_version_too_large(list_rv, current))
    objects = ctx.store.snapshot(rtype, target.namespace, list_rv)
    if objects is None:
        if options.continue_token:
            raise _expired_continue(start)
        raise StoreError(_status.expired(_EXPIRED_LIST))
    return objects, list_rv, start


def select_page(
    ctx: ServerContext, request: web.Request, target: Target
) -> tuple[list[Obj], Obj]:
    """Return the list items of the request's page and the list metadata.

    As in etcd, a full page gets a continue token whenever any object follows
    its last item, even when no later object matches the selectors. The next
    page is then empty, and clients must keep paging until the token is gone.
    """
    selector = request_selector(request, target.rtype)
    limit = max(int_param(request, "limit") or 0, 0)
    objects, list_rv, start = _listed_objects(ctx, request, target, limit)
    candidates = [obj for obj in objects if _object_key(obj) > start]
    items: list[Obj] = []
    scanned = 0
    for obj in candidates:
        if limit and len(items) >= limit:
            break
        scanned += 1
        if selector is None or selector(obj):
            items.append(obj)
    meta: Obj = {"resourceVersion": str(list_rv)}
    if scanned < len(candidates):
        meta["continue"] = encode_continue(list_rv, _object_key(items[-1]))
        # etcd counts the remaining items only for a list without selectors.
        if selector is None:
            meta["remainingItemCount"] = len(candidates) - scanned
    return items, meta


def handle_list(
    ctx: ServerContext, request: web.Request, target: Target
) -> web.Response:
    """Return a list page (``limit``/``continue``), filtered by the selectors.

    Continued pages show the objects as they were when the first page was
    listed, as etcd does, until the token's version leaves the watch history.
    """
    rtype = target.rtype
    items, meta = select_page(ctx, request, target)
    if wants_table(request):
        return json_response(to_table(rtype, items, meta, _include_object(request)))
    if wants_metadata(request, "PartialObjectMetadataList"):
        partial_list = {
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "items": [partial_metadata(obj) for obj in items],
        }
        return json_response(partial_list)
    if not rtype.custom:
        items = [without_type(obj) for obj in items]
    body = {
        "apiVersion": rtype.api_version,
        "kind": rtype.list_kind,
        "metadata": meta,
        "items": items,
    }
    return json_response(body)


def is_watch(request: web.Request) -> bool:
    """Return whether a GET on a collection asks for a watch stream."""
    return flag(request, "watch")
