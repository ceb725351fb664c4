"""HTTP helpers of the fake API server: URL parsing, bodies and responses."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import _status
from ._faults import RequestInfo
from ._resources import ResourceType, lookup
from ._status import StoreError

JSON_TYPE = "application/json"
NOT_FOUND_MESSAGE = "the server could not find the requested resource"


# The API server gzips a response body above 128 KiB when the request accepts
# gzip, at compression level 1 (apiserver responsewriters/writers.go). The fake
# compresses only whole JSON bodies, never watch streams or logs.
GZIP_THRESHOLD_BYTES = 128 * 1024


def accepts_gzip(accept_encoding: str) -> bool:
    """Return whether an ``Accept-Encoding`` header value allows gzip."""
    for coding in accept_encoding.split(","):
        name, _, params = coding.partition(";")
        if name.strip().lower() != "gzip":
            continue
        quality = params.strip().lower().removeprefix("q=").strip()
        return quality not in ("0", "0.0", "0.00", "0.000")
    return False


def compress_large_body(request: web.Request, response: web.StreamResponse) -> None:
    """Gzip a finished response's body as the API server does, if it qualifies."""
    if not isinstance(response, web.Response) or response.prepared:
        return
    body = response.body
    if not isinstance(body, bytes) or len(body) <= GZIP_THRESHOLD_BYTES:
        return
    if not accepts_gzip(request.headers.get("Accept-Encoding", "")):
        return
    response.body = gzip.compress(body, compresslevel=1)
    response.headers["Content-Encoding"] = "gzip"
    response.headers.add("Vary", "Accept-Encoding")


def dumps(value: Any) -> bytes:
    """Serialize to compact JSON, as the API server writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Return a JSON response."""
    return web.Response(
        body=dumps(value), status=status, content_type=JSON_TYPE, headers=headers
    )


def status_response(
    body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    """Return a Status body with its own ``code`` as the HTTP status."""
    return json_response(body, status=int(body["code"]), headers=headers)


def path_not_found() -> web.Response:
    """Return the 404 that the server sends for a URL it does not serve."""
    return status_response(_status.failure(404, "NotFound", NOT_FOUND_MESSAGE, {}))


def flag(request: web.Request, name: str) -> bool:
    """Return whether a boolean query parameter is set (``true`` or ``1``)."""
    return request.query.get(name, "").lower() in ("true", "1")


def int_param(request: web.Request, name: str) -> int | None:
    """Return an integer query parameter, ``None`` when absent.

    Raises:
        StoreError: 400 BadRequest when the value is not an integer.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        message = f"invalid value for {name}: {raw!r} is not an integer"
        raise StoreError(_status.bad_request(message)) from None


def wants_table(request: web.Request) -> bool:
    """Return whether the Accept header requests a ``meta.k8s.io`` Table."""
    accept = request.headers.get("Accept", "")
    first = accept.split(",")[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def wants_metadata(request: web.Request, kind: str) -> bool:
    """Return whether the Accept header requests ``kind`` from ``meta.k8s.io``.

    ``kind`` is ``PartialObjectMetadata`` (an object or watch events) or
    ``PartialObjectMetadataList``. Only the first media range counts, so a
    request for another view falls back to plain JSON, the usual second choice.
    """
    first = request.headers.get("Accept", "").split(",")[0]
    params = {
        part.split("=", 1)[0].strip(): part.split("=", 1)[1].strip()
        for part in first.split(";")[1:]
        if "=" in part
    }
    return params.get("as") == kind and params.get("g") == "meta.k8s.io"


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """Return the PartialObjectMetadata view of an object."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


PROTOBUF_TYPE = "application/vnd.kubernetes.protobuf"


async def read_body(request: web.Request, *, yaml_allowed: bool = False) -> Any:
    """Parse the request body as JSON (or YAML for server-side apply).

    Raises:
        StoreError: 400 BadRequest for a missing or malformed body, and 415
            UnsupportedMediaType for a protobuf body.
    """
    if request.content_type == PROTOBUF_TYPE:
        message = (
            "the fake API server does not decode protobuf request bodies, which "
            "kubectl's typed generators such as 'kubectl create configmap' send; "
            "send JSON instead, for example with 'kubectl create -f' or "
            "'kubectl apply -f'"
        )
        raise StoreError(_status.failure(415, "UnsupportedMediaType", message, {}))
    raw = await request.read()
    if not raw.strip():
        raise StoreError(_status.bad_request("the request body is empty"))
    try:
        return json.loads(raw)
    except ValueError as exc:
        if yaml_allowed:
            return _load_yaml(raw)
        message = f"the request body is not valid JSON: {exc}"
        raise StoreError(_status.bad_request(message)) from None


def _load_yaml(raw: bytes) -> Any:
    try:
        import yaml  # PyYAML is optional; JSON bodies need no parser beyond stdlib.
    except ImportError:
        message = "YAML apply bodies need PyYAML on the server; send JSON instead"
        raise StoreError(_status.bad_request(message)) from None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise StoreError(_status.bad_request(f"invalid YAML body: {exc}")) from None


@dataclass(frozen=True)
class Target:
    """The resource a request addresses.

    Attributes:
        rtype: Resource type.
        namespace: Namespace from the URL, ``None`` for cluster-scoped types and
            for lists across all namespaces.
        name: Object name, ``None`` for collections.
        subresource: ``status``, ``log`` or ``None``.
    """

    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_target(group: str, version: str, segments: list[str]) -> Target | None:
    """Resolve the URL segments after ``/api/v1`` or ``/apis/<g>/<v>``.

    Returns ``None`` when the URL does not name a served resource.
    """
    if (
        len(segments) >= 3
        and segments[0] == "namespaces"
        and lookup(group, version, segments[2]) is not None
    ):
        rtype = lookup(group, version, segments[2])
        rest = segments[3:]
        if rtype is None or not rtype.namespaced or len(rest) > 2:
            return None
        name = rest[0] if rest else None
        sub = rest[1] if len(rest) == 2 else None
        return Target(rtype, segments[1], name, sub)
    if not segments or len(segments) > 3:
        return None
    rtype = lookup(group, version, segments[0])
    if rtype is None:
        return None
    name = segments[1] if len(segments) >= 2 else None
    sub = segments[2] if len(segments) == 3 else None
    if name is not None and rtype.namespaced:
        return None
    return Target(rtype, None, name, sub)


def request_verb(method: str, target: Target | None, watch: bool) -> str:
    """Return the Kubernetes verb of a request."""
    if target is None:
        return ""
    if method in ("GET", "HEAD"):
        if target.name is None:
            return "watch" if watch else "list"
        return "get"
    collection = target.name is None
    verbs = {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "deletecollection" if collection else "delete",
    }
    return verbs.get(method, method.lower())


def request_info(
    request: web.Request, target: Target | None, watch: bool
) -> RequestInfo:
    """Describe a request for fault scopes and statistics."""
    return RequestInfo(
        verb=request_verb(request.method, target, watch),
        plural=target.rtype.plural if target else "",
        namespace=target.namespace if target else None,
        name=target.name if target else None,
        subresource=target.subresource if target else None,
        path=request.path,
        container=request.query.get("container"),
        follow=flag(request, "follow"),
    )
