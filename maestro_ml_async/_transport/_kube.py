"""The cluster transport: one kubernetes-asyncio ``ApiClient`` per SDK client.

This module imports kubernetes-asyncio at import time, so it is itself imported
lazily (by `ClusterHandle.get`). It offers the typed APIs of kubernetes-asyncio
with error mapping and retries (`ClusterTransport.call`), raw JSON requests for
any resource (`ClusterTransport.request`), resumable watches and shared watch
hubs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client as kube_client
from kubernetes_asyncio.client.exceptions import ApiException

from .._config import Config
from .._exceptions import KubernetesException
from ._kube_auth import ClusterAuth, InClusterPaths, load_configuration
from ._kube_errors import (
    RETRY_STATUSES,
    error_from_api_exception,
    object_from_body,
    retry_after,
)
from ._kube_watch import ResumableWatch, WatchEvent, WatchHub, WatchSettings

__all__ = [
    "MERGE_PATCH",
    "ClusterTransport",
    "ResumableWatch",
    "WatchEvent",
    "WatchHub",
    "WatchSettings",
    "resource_path",
]

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
_LIST_PAGE_SIZE = 500
# Times that `ClusterTransport.iter_list` starts a list again after its continue
# token expired, without a new object in between, before it raises the 410.
_LIST_RESTARTS = 3


def resource_path(
    group: str,
    version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """Return the API path of a resource collection or object.

    The core group is ``""`` (``/api/v1/...``); every other group lives under
    ``/apis/<group>/<version>``.
    """
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace is not None:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name is not None:
        base += f"/{quote(name, safe='')}"
    if subresource is not None:
        base += f"/{subresource}"
    return base


class ClusterTransport:
    """Access to one Kubernetes cluster, shared by the training and deployment APIs.

    Build it with `create`. Attributes `core`, `batch` and `custom` are the typed
    kubernetes-asyncio APIs on the shared `api_client`; run their methods through
    `call` to get SDK exceptions, credential refresh and retries.
    """

    def __init__(self, config: Config, api_client: Any, auth: ClusterAuth) -> None:
        self.config = config
        self.namespace = config.namespace
        self.api_client = api_client
        self.auth = auth
        self.core = kube_client.CoreV1Api(api_client)
        self.batch = kube_client.BatchV1Api(api_client)
        self.custom = kube_client.CustomObjectsApi(api_client)
        self.watch_settings = WatchSettings()
        self._hubs: dict[tuple[str, ...], WatchHub] = {}
        self._closed = False

    @classmethod
    async def create(
        cls, config: Config, *, in_cluster: InClusterPaths | None = None
    ) -> ClusterTransport:
        """Load the cluster configuration and build the transport.

        Args:
            config: The SDK configuration (kube_config_path, kube_context,
                namespace, request_timeout, retries).
            in_cluster: Where to find the service-account files when no
                kubeconfig exists; the standard paths by default.

        Raises:
            ConfigurationException: Neither a kubeconfig nor an in-cluster
                service account is available, or the kubeconfig is invalid.
        """
        configuration, auth, _ = await load_configuration(config, in_cluster)
        # Each open watch and each followed log uses a connection of the pool.
        configuration.connection_pool_maxsize = max(
            configuration.connection_pool_maxsize or 0, 4 * config.max_concurrency
        )
        api_client = kube_client.ApiClient(configuration=configuration)
        logger.debug("cluster transport ready for %s", configuration.host)
        return cls(config, api_client, auth)

    @property
    def host(self) -> str:
        """The API server's base URL."""
        return str(self.api_client.configuration.host)

    # Typed API calls --------------------------------------------------------

    async def call(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        """Await ``fn(*args, **kwargs)`` with error mapping, refresh and retries.

        Methods whose name starts with ``create`` are retried only when the
        request cannot have reached the server (connection refused) or the
        server returned 429; every other method is retried on 429, 5xx and
        connection failures. A 401 triggers one credential refresh and one
        more attempt.

        Raises:
            KubernetesException: The mapped API error (or a subclass).
        """
        idempotent = not getattr(fn, "__name__", "").startswith("create")
        kwargs.setdefault("_request_timeout", self.config.request_timeout)

        async def attempt() -> Any:
            return await fn(*args, **kwargs)

        return await self._with_retries(attempt, idempotent=idempotent)

    async def _with_retries(
        self, attempt: Callable[[], Awaitable[Any]], *, idempotent: bool
    ) -> Any:
        """Run `attempt` until it succeeds or the retries or their budget end.

        ``retry_max_elapsed`` bounds the time from the first attempt to the
        last retry. A ``Retry-After`` longer than what is left of it ends the
        retries at once, because sending earlier than the server asked would
        only fail again.
        """
        refreshed = False
        tries = 0
        started = time.monotonic()
        while True:
            tries += 1
            try:
                return await attempt()
            except ApiException as exc:
                if exc.status == 401 and not refreshed:
                    refreshed = True
                    if await self.refresh_credentials():
                        continue
                retryable = exc.status in RETRY_STATUSES and (
                    idempotent or exc.status == 429
                )
                left = self._budget_left(started)
                if not retryable or tries > self.config.max_retries or left <= 0:
                    raise error_from_api_exception(exc) from None
                server_delay = retry_after(exc.headers)
                if server_delay is not None and server_delay > left:
                    raise self._long_retry_after(exc, server_delay, left) from None
                await self._backoff(tries, server_delay, left)
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                unsent = isinstance(exc, aiohttp.ClientConnectorError)
                left = self._budget_left(started)
                retryable = idempotent or unsent
                if not retryable or tries > self.config.max_retries or left <= 0:
                    raise KubernetesException(
                        f"cannot reach the Kubernetes API at {self.host}: "
                        f"{type(exc).__name__} {exc}".strip()
                    ) from exc
                await self._backoff(tries, None, left)

    def _budget_left(self, started: float) -> float:
        return self.config.retry_max_elapsed - (time.monotonic() - started)

    def _long_retry_after(
        self, exc: ApiException, server_delay: float, left: float
    ) -> KubernetesException:
        mapped = error_from_api_exception(exc)
        message = (
            f"{mapped.message}; the server's Retry-After of {server_delay:g} s "
            f"exceeds the {max(left, 0.0):.1f} s left of retry_max_elapsed "
            f"({self.config.retry_max_elapsed:g} s), so the request was not retried"
        )
        # Only 429 and 5xx are retried, and they map onto KubernetesException.
        return KubernetesException(
            message, status_code=mapped.status_code, reason=mapped.reason
        )

    async def _backoff(
        self, tries: int, server_delay: float | None, left: float
    ) -> None:
        cap = self.config.retry_backoff_max
        delay = random.uniform(
            0, min(cap, self.config.retry_backoff_base * 2 ** (tries - 1))
        )
        if server_delay is not None:
            delay = max(delay, server_delay)
        delay = min(delay, left)
        logger.info(
            "retrying a Kubernetes API call in %.2f s (attempt %d)", delay, tries + 1
        )
        await asyncio.sleep(delay)

    async def refresh_credentials(self) -> bool:
        """Fetch a new credential; return True when it changed."""
        return await self.auth.refresh(self.api_client.configuration, force=True)

    # Raw JSON requests ------------------------------------------------------

    async def open(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: aiohttp.ClientTimeout | float | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request and return the open response, whatever its status.

        The caller must read or close the response. Credentials come from the
        refresh hook like every other request; nothing is retried here.
        """
        headers = {"Accept": accept, "Content-Type": content_type}
        response: aiohttp.ClientResponse = await self.api_client.call_api(
            path,
            method,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout
            if timeout is not None
            else self.config.request_timeout,
        )
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        idempotent: bool | None = None,
    ) -> Any:
        """Send a request and return its JSON body, with mapping and retries.

        Args:
            method: The HTTP method.
            path: The API path, for example from `resource_path`.
            query: Query parameters.
            body: A JSON-serialisable body.
            content_type: The body's content type, for example `MERGE_PATCH`.
            idempotent: Whether the request may be retried after it was sent;
                by default every method but POST.

        Raises:
            KubernetesException: The mapped API error.
        """
        if idempotent is None:
            idempotent = method.upper() != "POST"

        async def attempt() -> Any:
            response = await self.open(
                method, path, query=query, body=body, content_type=content_type
            )
            try:
                data = await response.read()
            finally:
                response.release()
            if not 200 <= response.status <= 299:
                raise _ResponseError(
                    response.status, response.reason, data, response.headers
                )
            return object_from_body(
                data,
                status=response.status,
                method=method.upper(),
                path=path,
                content_type=response.content_type,
            )

        return await self._with_retries(attempt, idempotent=idempotent)

    async def get_object(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any]:
        """Read one object as a dict."""
        path = resource_path(group, version, plural, namespace, name)
        result: dict[str, Any] = await self.request("GET", path)
        return result

    async def list_page(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        """Read one page of a list (``items`` and ``metadata.continue``)."""
        query: list[tuple[str, Any]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if limit:
            query.append(("limit", limit))
        if continue_token:
            query.append(("continue", continue_token))
        path = resource_path(group, version, plural, namespace)
        result: dict[str, Any] = await self.request("GET", path, query=query)
        return result

    async def list_all(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Read every page of a list; return the items and the list's RV.

        The resourceVersion is the one of the first page, which is the snapshot
        that every later page continues. When a continue token expires (410
        Expired, generally after five to fifteen minutes), the list is read
        again in one request without a limit, as client-go's pager does, so
        the result is still one consistent snapshot.
        """
        items: list[dict[str, Any]] = []
        token: str | None = None
        list_rv = ""
        limit: int | None = page_size or _LIST_PAGE_SIZE
        while True:
            try:
                page = await self.list_page(
                    group,
                    version,
                    plural,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    limit=limit,
                    continue_token=token,
                )
            except KubernetesException as exc:
                if exc.status_code != 410 or token is None:
                    raise
                logger.info(
                    "continue token of the %s list expired; listing in one request",
                    plural,
                )
                items, token, list_rv, limit = [], None, "", None
                continue
            meta = page.get("metadata") or {}
            if not list_rv:
                list_rv = str(meta.get("resourceVersion") or "")
            items.extend(page.get("items") or [])
            token = meta.get("continue") or None
            if not token:
                return items, list_rv

    async def iter_list(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the objects of a list page by page (limit/continue).

        A caller that takes longer than the continue token lives (generally
        five to fifteen minutes) gets 410 Expired for the next page. The list then
        starts again from the first page and skips the objects already yielded
        (by namespace, name and uid), so none is yielded twice. Objects created
        meanwhile appear, and changes to yielded ones do not.

        Raises:
            KubernetesException: A request failed, or the list expired more
                than `_LIST_RESTARTS` times without yielding a new object.
        """
        token: str | None = None
        yielded: set[tuple[str, str, str]] = set()
        restarts = 0
        while True:
            try:
                page = await self.list_page(
                    group,
                    version,
                    plural,
                    namespace,
                    label_selector=label_selector,
                    limit=page_size or _LIST_PAGE_SIZE,
                    continue_token=token,
                )
            except KubernetesException as exc:
                if exc.status_code != 410 or token is None:
                    raise
                restarts += 1
                if restarts > _LIST_RESTARTS:
                    raise
                logger.info(
                    "continue token of the %s list expired; listing again and "
                    "skipping the %d objects already returned",
                    plural,
                    len(yielded),
                )
                token = None
                continue
            for item in page.get("items") or []:
                meta = item.get("metadata") or {}
                key = (
                    str(meta.get("namespace") or ""),
                    str(meta.get("name") or ""),
                    str(meta.get("uid") or ""),
                )
                if key in yielded:
                    continue
                yielded.add(key)
                # Only expiries without progress in between count.
                restarts = 0
                yield item
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return

    # Watches -----------------------------------------------------------------

    def watch(
        self,
        group: str,
        version: str,
        plural: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        settings: WatchSettings | None = None,
    ) -> ResumableWatch:
        """Return a watch that lists first and then follows every change.

        See `ResumableWatch` for the rules it follows on server closes, drops,
        410 Expired and silent sockets.
        """
        return ResumableWatch(
            self,
            group,
            version,
            plural,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            settings=settings or self.watch_settings,
        )

    def hub(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
    ) -> WatchHub:
        """Return the shared watch for a resource in a namespace.

        All subscribers of one hub share one watch connection.
        """
        key = (group, version, plural, namespace or "", label_selector or "")
        hub = self._hubs.get(key)
        if hub is None:
            hub = WatchHub(
                lambda: self.watch(
                    group,
                    version,
                    plural,
                    namespace=namespace,
                    label_selector=label_selector,
                )
            )
            self._hubs[key] = hub
        return hub

    async def aclose(self) -> None:
        """Stop every hub and close the HTTP session; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        hubs, self._hubs = list(self._hubs.values()), {}
        for hub in hubs:
            await hub.aclose()
        await self.api_client.close()


class _ResponseError(ApiException):
    """A non-2xx raw response, shaped like ``ApiException`` for the retry loop."""

    def __init__(
        self, status: int, reason: str | None, body: bytes, headers: Any
    ) -> None:
        super().__init__(status=status, reason=reason)
        self.body = body
        self.headers = headers
