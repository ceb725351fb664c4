"""The fake API server's aiohttp application: auth, faults, routing."""

from __future__ import annotations

import hmac
import logging
from urllib.parse import unquote

from aiohttp import web

from . import _discovery, _faults, _openapi, _status
from ._context import ServerContext
from ._handlers_read import handle_get, handle_list, is_watch
from ._handlers_write import (
    handle_create,
    handle_delete,
    handle_delete_collection,
    handle_patch,
    handle_replace,
)
from ._http import (
    Target,
    compress_large_body,
    json_response,
    parse_target,
    path_not_found,
    request_info,
    status_response,
)
from ._logs import handle_log
from ._status import StoreError
from ._watch import serve_watch

_log = logging.getLogger(__name__)

_HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
_FAULT_MESSAGES = {
    400: ("BadRequest", "the request is invalid: injected by the fake cluster"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: injected by the fake cluster"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "Operation cannot be fulfilled: injected by the fake cluster"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected by the fake cluster"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted"),
}


class ApiServer:
    """Routes Kubernetes REST requests to the handlers.

    Args:
        ctx: State shared by the handlers.
        token: The bearer token that requests must carry.
    """

    def __init__(self, ctx: ServerContext, token: str) -> None:
        self.ctx = ctx
        self.token = token
        self.token_valid = True

    def build_app(self) -> web.Application:
        """Return the aiohttp application that serves every path."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not self.token_valid:
            return False
        return hmac.compare_digest(presented.strip().encode(), self.token.encode())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request, gzipping a large body as the API server does."""
        response = await self._handle(request)
        compress_large_body(request, response)
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request: health, auth, discovery, then resources."""
        path = request.path
        self.ctx.stats.requests_total += 1
        if path in _HEALTH_PATHS:
            return web.Response(text="ok")
        if not self._authorized(request):
            self.ctx.stats.unauthorized_total += 1
            self.ctx.stats.requests_by_verb["unauthorized"] += 1
            return status_response(_status.UNAUTHORIZED)
        try:
            return await self._route(request)
        except StoreError as exc:
            _log.debug(
                "%s %s failed: %s %s",
                request.method,
                path,
                exc.code,
                exc.status.get("reason"),
            )
            return status_response(exc.status)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        segments = [unquote(part) for part in request.path.strip("/").split("/")]
        discovery = self._discovery(request, segments)
        if discovery is not None:
            return discovery
        if segments[0] == "api" and len(segments) >= 2 and segments[1] == "v1":
            group, version, rest = "", "v1", segments[2:]
        elif segments[0] == "apis" and len(segments) >= 3:
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            return self._count_other(request, path_not_found())
        target = parse_target(group, version, rest)
        if target is None:
            return self._count_other(request, path_not_found())
        return await self._serve_resource(request, target)

    def _count_other(
        self, request: web.Request, response: web.StreamResponse
    ) -> web.StreamResponse:
        self.ctx.stats.requests_by_verb[""] += 1
        fault = self.ctx.faults.take(request_info(request, None, False))
        if fault is not None and fault.kind == _faults.STATUS:
            return _fault_response(fault)
        return response

    def _discovery(
        self, request: web.Request, segments: list[str]
    ) -> web.StreamResponse | None:
        if request.method != "GET":
            return None
        document = None
        if segments == ["version"]:
            document = _discovery.version_info()
        elif segments == ["api"]:
            document = _discovery.core_versions(self.ctx.server_address)
        elif segments == ["apis"]:
            document = _discovery.group_list()
        elif segments == ["api", "v1"]:
            document = _discovery.resource_list("v1")
        elif len(segments) == 2 and segments[0] == "apis":
            document = _discovery.api_group(segments[1])
        elif len(segments) == 3 and segments[0] == "apis":
            document = _discovery.resource_list(f"{segments[1]}/{segments[2]}")
        elif segments == ["openapi", "v3"]:
            document = _openapi.root_document()
        elif segments[:2] == ["openapi", "v3"]:
            document = _openapi.group_version_document("/".join(segments[2:]))
        else:
            return None
        if document is None:
            return self._count_other(request, path_not_found())
        return self._count_other(request, json_response(document))

    async def _serve_resource(
        self, request: web.Request, target: Target
    ) -> web.StreamResponse:
        watch = is_watch(request) and target.name is None
        info = request_info(request, target, watch)
        stats = self.ctx.stats
        stats.requests_by_verb[info.verb] += 1
        stats.requests_by_resource[f"{info.verb} {info.plural}"] += 1

        fault = self.ctx.faults.take(info)
        if fault is not None and fault.kind == _faults.STATUS:
            return _fault_response(fault)
        if fault is not None and fault.kind == _faults.CONFLICT:
            conflict = _status.conflict(target.rtype, target.name or "")
            return status_response(conflict)
        if not _subresource_served(target):
            return path_not_found()
        return await self._dispatch(request, target, info.verb, watch, fault)

    async def _dispatch(
        self,
        request: web.Request,
        target: Target,
        verb: str,
        watch: bool,
        fault: _faults.Fault | None,
    ) -> web.StreamResponse:
        ctx = self.ctx
        if target.subresource == "log":
            if verb != "get":
                return _method_not_allowed()
            return await handle_log(ctx, request, target, fault)
        if watch:
            return await serve_watch(ctx, request, target, fault)
        collection = target.name is None
        if verb == "get":
            return handle_get(ctx, request, target)
        if verb == "list":
            return handle_list(ctx, request, target)
        if verb == "create" and collection:
            return await handle_create(ctx, request, target)
        if verb == "update" and not collection:
            return await handle_replace(ctx, request, target)
        if verb == "patch" and not collection:
            return await handle_patch(ctx, request, target)
        if verb == "delete" and target.subresource is None:
            return await handle_delete(ctx, request, target)
        if verb == "deletecollection" and target.subresource is None:
            return await handle_delete_collection(ctx, request, target)
        return _method_not_allowed()


def _subresource_served(target: Target) -> bool:
    if target.subresource is None:
        return True
    if target.subresource == "status":
        return target.rtype.has_status
    return target.subresource == "log" and target.rtype.key == "pods"


def _method_not_allowed() -> web.Response:
    message = "the server does not allow this method on the requested resource"
    return status_response(_status.failure(405, "MethodNotAllowed", message, {}))


def _fault_response(fault: _faults.Fault) -> web.Response:
    reason, default_message = _FAULT_MESSAGES.get(
        fault.code, ("InternalError", f"injected HTTP {fault.code}")
    )
    details: dict[str, object] = {}
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        details["retryAfterSeconds"] = fault.retry_after
        headers["Retry-After"] = str(fault.retry_after)
    body = _status.failure(
        fault.code, reason, fault.message or default_message, details
    )
    return status_response(body, headers=headers)
