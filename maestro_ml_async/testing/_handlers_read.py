"""GET and LIST handlers of the fake API server."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from . import _status
from ._context import ServerContext
from ._http import Target, flag, int_param, json_response, wants_table
from ._resources import ResourceType
from ._selectors import Selector, combine, parse_field_selector, parse_label_selector
from ._status import StoreError
from ._table import to_table

Obj = dict[str, Any]

_EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list "
    "result. You can start a new list without the continue parameter."
)


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
    return json_response(obj)


def _object_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def encode_continue(resource_version: int, last_key: str) -> str:
    """Return an opaque continue token for the list page after ``last_key``."""
    raw = json.dumps({"rv": resource_version, "start": last_key}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(
    ctx: ServerContext, rtype: ResourceType, token: str
) -> tuple[int, str]:
    """Return the resourceVersion and last key of a continue token.

    Raises:
        StoreError: 400 for a malformed token, 410 Expired for one older than
            the type's watch history or than ``ctx.continue_floor``.
    """
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        resource_version, last_key = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise StoreError(_status.bad_request("continue key is not valid")) from None
    too_old = resource_version < ctx.store.oldest_available(rtype)
    if too_old or resource_version < ctx.continue_floor:
        raise StoreError(_status.expired(_EXPIRED_CONTINUE))
    return resource_version, last_key


def select_page(
    ctx: ServerContext, request: web.Request, target: Target
) -> tuple[list[Obj], Obj]:
    """Return the list items of the request's page and the list metadata."""
    rtype = target.rtype
    selector = request_selector(request, rtype)
    limit = int_param(request, "limit")
    token = request.query.get("continue")
    start = ""
    list_rv = ctx.store.resource_version
    if token:
        list_rv, start = decode_continue(ctx, rtype, token)

    items = [
        obj
        for obj in ctx.store.peek(rtype, target.namespace)
        if _object_key(obj) > start and (selector is None or selector(obj))
    ]
    meta: Obj = {"resourceVersion": str(list_rv)}
    if limit is not None and limit > 0 and len(items) > limit:
        meta["continue"] = encode_continue(list_rv, _object_key(items[limit - 1]))
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    return items, meta


def handle_list(
    ctx: ServerContext, request: web.Request, target: Target
) -> web.Response:
    """Return a list page (``limit``/``continue``), filtered by the selectors.

    NOTE: a continued page shows the objects as they are now, not as they were
    at the token's resourceVersion as etcd would.
    """
    rtype = target.rtype
    items, meta = select_page(ctx, request, target)
    if wants_table(request):
        return json_response(to_table(rtype, items, meta, _include_object(request)))
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
