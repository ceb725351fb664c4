"""The MLflow REST transport: one shared `httpx.AsyncClient` for every sub-client."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from .._config import Config
from .._exceptions import (
    ClientClosedError,
    MLflowException,
    NotFoundException,
    RequestTimeoutException,
    TransportException,
    ValidationException,
)
from .._version import __version__
from ._errors import error_from_response, parse_json_body
from ._retry import (
    RETRY_STATUSES,
    BackoffWait,
    RetryableStatus,
    RetryMode,
    StopOnLongRetryAfter,
    is_unsent_error,
    log_retry,
    should_retry,
)
from ._security import build_auth, build_ssl_context

__all__ = ["API_PREFIX", "MlflowTransport", "RetryMode"]


if sys.version_info >= (3, 11):
    # asyncio's own deadline costs less than half the CPU of anyio's per request
    # (about 7 against 19 us, measured on Python 3.11).
    from asyncio import timeout as request_deadline
else:

    @asynccontextmanager
    async def request_deadline(delay: float) -> AsyncIterator[None]:
        """Raise TimeoutError when the block runs longer than ``delay`` seconds."""
        with anyio.fail_after(delay):
            yield


logger = logging.getLogger("maestro_ml_async.transport")

API_PREFIX = "/api/2.0/mlflow"

# uvicorn, which serves MLflow 3, closes idle connections after 5 s; expiring ours
# sooner avoids reusing a connection just as the server closes it.
_KEEPALIVE_EXPIRY = 4.0

# After a request with this header, httpcore 1.0 (through h11) closes the
# connection once the response is read, and HTTP/1.1 servers close their side.
_CONNECTION_CLOSE = {"Connection": "close"}


class ResponseBody(dict[str, Any]):
    """A JSON response object whose missing top-level keys raise `MLflowException`.

    Resources read fields with ``body["run"]``. A proxy that answers 200 with an
    empty body, or a server that leaves a field out, then fails with a clear
    INVALID_RESPONSE error instead of a bare `KeyError`.
    """

    def __init__(
        self, values: Mapping[str, Any], *, method: str, path: str, status: int
    ) -> None:
        super().__init__(values)
        self._where = (method, path, status)

    def __missing__(self, key: str) -> Any:
        raise self.invalid(f"the server's response has no {key!r} field")

    def invalid(self, problem: str) -> MLflowException:
        """Build the INVALID_RESPONSE error for `problem` with the request's details."""
        method, path, status = self._where
        return MLflowException(
            f"{problem}; check that mlflow_uri points at an MLflow server and not "
            "at a proxy or another service",
            status_code=status,
            error_code="INVALID_RESPONSE",
            method=method,
            path=path,
        )


def success_body(response: httpx.Response, *, method: str, path: str) -> ResponseBody:
    """Return the JSON object of a 2xx response; an empty body counts as ``{}``.

    Raises:
        MLflowException: With error_code INVALID_RESPONSE when the body is not
            a JSON object (an HTML login page from a proxy, for example).
    """
    body = parse_json_body(response)
    if body is None and response.content.strip():
        raise MLflowException(
            "the server sent a response that is not a JSON object",
            status_code=response.status_code,
            error_code="INVALID_RESPONSE",
            method=method,
            path=path,
        )
    return ResponseBody(
        body or {}, method=method, path=path, status=response.status_code
    )


def build_http_client(
    config: Config, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """Create the shared HTTP client, with its pool sized to `max_concurrency`."""
    limits = httpx.Limits(
        max_connections=config.max_concurrency,
        max_keepalive_connections=config.max_concurrency,
        keepalive_expiry=_KEEPALIVE_EXPIRY,
    )
    return httpx.AsyncClient(
        auth=build_auth(config),
        verify=build_ssl_context(config),
        timeout=httpx.Timeout(config.request_timeout),
        limits=limits,
        headers={"User-Agent": f"maestro-ml-async/{__version__}"},
        transport=transport,
        follow_redirects=False,
    )


class MlflowTransport:
    """Sends MLflow REST requests with retries, error mapping and logging.

    Args:
        config: The client configuration.
        http_client: The shared HTTP client; its lifetime belongs to the caller.
        http_factory: Builds a replacement for `http_client` when the client is
            used on a new event loop after the loop of its connections ended
            (a second ``asyncio.run``). Without it, that use raises
            `ClientClosedError`.
    """

    def __init__(
        self,
        config: Config,
        http_client: httpx.AsyncClient,
        *,
        http_factory: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        self.config = config
        self.http = http_client
        self._http_factory = http_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._log_level = logging.INFO if config.verbose else logging.DEBUG
        self._limiter = asyncio.Semaphore(config.max_concurrency)
        # Countdown to the next request that gets "Connection: close". The
        # transport cannot tell which pooled connection a request will use, so
        # it marks one request in `requests_per_connection` across the pool.
        # With C connections busy, each then closes after about that many
        # requests on average. Switched off, the countdown starts at 0 and
        # only goes negative, so it never reaches 0 again.
        self._requests_per_connection = config.requests_per_connection or 0
        self._requests_until_close = self._requests_per_connection

    def close(self) -> None:
        """Mark the transport closed; later requests raise `ClientClosedError`."""
        self._closed = True

    @property
    def closed(self) -> bool:
        """Whether the owning client was closed."""
        return self._closed

    def check_open(self) -> None:
        """Raise `ClientClosedError` when the client was closed.

        It also moves the transport to the running event loop: pooled
        connections belong to the loop that opened them, and reusing one from
        another loop fails with "Event loop is closed".
        """
        if self._closed or self.http.is_closed:
            raise _closed_error()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop is not self._loop:
            self._move_to_loop(loop)

    async def aclose_pool(self) -> None:
        """Close the connection pool, or drop it if its event loop has ended."""
        previous = self._loop
        ended = previous is not None and not previous.is_running()
        if ended and previous is not asyncio.get_running_loop():
            # Closing a connection of an ended loop raises "Event loop is
            # closed", so those connections are only dropped.
            return
        await self.http.aclose()

    def _move_to_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = self._loop
        self._loop = loop
        if previous is None:
            return
        if previous.is_running() or self._http_factory is None:
            self._loop = previous
            raise ClientClosedError(
                "this AsyncMaestroClient is bound to another event loop; create "
                "one client per event loop (or use MaestroClient from threads)"
            )
        # The old loop has ended, so its connections cannot even be closed;
        # they are dropped with the old pool.
        logger.debug("event loop changed; opening a new connection pool")
        self.http = self._http_factory()
        self._limiter = asyncio.Semaphore(self.config.max_concurrency)

    @property
    def limiter(self) -> asyncio.Semaphore:
        """The semaphore that keeps at most `max_concurrency` requests in flight.

        It matches the size of the connection pool. A caller that sends through
        `http` directly acquires it for as long as its response is open, so
        that a request waits here instead of timing out in the pool's queue.
        """
        return self._limiter

    def log_response(
        self, method: str, path: str, status_code: int, elapsed_ms: float
    ) -> None:
        """Log one finished request at DEBUG (INFO when verbose), without headers."""
        logger.log(
            self._log_level,
            "%s %s -> %d (%.1f ms)",
            method,
            path,
            status_code,
            elapsed_ms,
        )

    def url(self, path: str, *, registry: bool = False) -> str:
        """Return the absolute URL of a server path such as ``/get-artifact``."""
        base = self.config.registry_uri if registry else self.config.mlflow_uri
        return base + path

    async def call(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        retry: RetryMode = RetryMode.SAFE,
        registry: bool = False,
        not_found: type[NotFoundException] = NotFoundException,
        feature: str | None = None,
    ) -> dict[str, Any]:
        """Call a REST endpoint under ``/api/2.0/mlflow`` and return its JSON body.

        GET sends `params` in the query string; every other method sends `json`
        as the body, DELETE included, because that is where MLflow reads it.

        Raises:
            MLflowException: Or a subclass chosen by status and ``error_code``.
            ClientClosedError: The client was closed.
        """
        path = API_PREFIX + "/" + endpoint.lstrip("/")
        response = await self.request(
            method,
            path,
            params=params,
            json=json,
            retry=retry,
            registry=registry,
        )
        if response.is_success:
            return success_body(response, method=method, path=path)
        raise error_from_response(response, not_found=not_found, feature=feature)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryMode = RetryMode.SAFE,
        registry: bool = False,
    ) -> httpx.Response:
        """Send one request with retries and return the final response.

        A retryable status that persists after the last retry is returned, not
        raised, so the caller maps it like any other failed response.
        """
        self.check_open()
        send = functools.partial(
            self._send_once,
            method=method,
            path=path,
            url=self.url(path, registry=registry),
            params=params,
            json=json,
            content=content,
            headers=headers,
        )
        attempts = 1
        try:
            # Most requests succeed at once, so the first attempt skips tenacity's
            # per-request set-up, which costs about 15% of a mocked call.
            response = await send()
        except (RetryableStatus, httpx.TransportError) as exc:
            if self.config.max_retries > 0 and should_retry(retry, exc):
                response, attempts = await self._retry(send, exc, retry, method, path)
            else:
                response = self._final_response(exc, method, path)
        # A caller that settles a retried create (RESOURCE_ALREADY_EXISTS after
        # a retry) reads the number of attempts sent from here.
        response.extensions["maestro_attempts"] = attempts
        return response

    async def _retry(
        self,
        send: Callable[[], Awaitable[httpx.Response]],
        first_failure: Exception,
        retry: RetryMode,
        method: str,
        path: str,
    ) -> tuple[httpx.Response, int]:
        """Retry a request whose first attempt failed with `first_failure`."""
        pending = [first_failure]

        async def attempt(*, method: str, path: str) -> httpx.Response:
            # The first "attempt" replays the failure already seen, so the
            # backoff, Retry-After and attempt count all include it.
            if pending:
                raise pending.pop()
            return await send()

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: should_retry(retry, exc)),
            wait=BackoffWait(
                self.config.retry_backoff_base,
                self.config.retry_backoff_max,
                self.config.retry_max_elapsed,
            ),
            stop=(
                stop_after_attempt(self.config.max_retries + 1)
                | stop_after_delay(self.config.retry_max_elapsed)
                | StopOnLongRetryAfter(self.config.retry_max_elapsed)
            ),
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            response: httpx.Response = await retrying(attempt, method=method, path=path)
        except (RetryableStatus, httpx.TransportError) as exc:
            response = self._final_response(exc, method, path)
        return response, int(retrying.statistics.get("attempt_number", 1))

    def _final_response(
        self, exc: RetryableStatus | httpx.TransportError, method: str, path: str
    ) -> httpx.Response:
        """Return the response of a final retryable status, or raise ours."""
        if isinstance(exc, RetryableStatus):
            return exc.response
        if isinstance(exc, httpx.TimeoutException):
            raise RequestTimeoutException(
                f"request timed out after {self.config.request_timeout} s "
                f"({type(exc).__name__})",
                method=method,
                path=path,
            ) from None
        raise TransportException(
            _transport_failure(exc), method=method, path=path
        ) from None

    async def _send_once(
        self,
        *,
        method: str,
        path: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": self._count_request(headers)}
        if method == "GET":
            kwargs["params"] = _query_params(params)
        elif content is not None:
            kwargs["content"] = content
            kwargs["params"] = _query_params(params)
        else:
            kwargs["json"] = dict(json or {})
        started = time.perf_counter()
        async with self._limiter:
            # The client may have been closed while this request waited for
            # a slot, and httpx would then raise a bare RuntimeError.
            self.check_open()
            try:
                # httpx applies request_timeout to each read, so a server that
                # sends a byte now and then would hold the request forever.
                # This deadline caps the whole request, body included.
                async with request_deadline(self.config.request_timeout):
                    response = await self.http.request(method, url, **kwargs)
            except TimeoutError:
                raise httpx.ReadTimeout(
                    f"no complete response within {self.config.request_timeout} s"
                ) from None
            except httpx.InvalidURL as exc:
                raise _invalid_url_error(exc, method, path) from None
            except httpx.TransportError:
                if self._closed:
                    # `aclose` closed the connection under this request.
                    raise _closed_error() from None
                raise
            except httpx.DecodingError as exc:
                # The server sent a response, so the request may have been applied,
                # and a repeat would most likely get the same broken body.
                raise MLflowException(
                    "the server's response body could not be decoded as its "
                    "Content-Encoding header says; check any proxy in front of "
                    f"the MLflow server ({type(exc).__name__}: {exc})",
                    error_code="INVALID_RESPONSE",
                    method=method,
                    path=path,
                ) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.log_response(method, path, response.status_code, elapsed_ms)
        if response.status_code in RETRY_STATUSES:
            raise RetryableStatus(response)
        return response

    def _count_request(
        self, headers: Mapping[str, str] | None
    ) -> Mapping[str, str] | None:
        """Count one request and return the headers to send with it.

        Every `requests_per_connection`-th request gets ``Connection: close``.
        """
        self._requests_until_close -= 1
        if self._requests_until_close != 0:
            return headers
        self._requests_until_close = self._requests_per_connection
        if not headers:
            return _CONNECTION_CLOSE
        return {**headers, **_CONNECTION_CLOSE}

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        registry: bool = False,
    ) -> AsyncIterator[httpx.Response]:
        """Open a streaming response; the caller reads the body in chunks.

        The request is retried until the headers arrive; a failed status is
        raised as the mapped exception before the caller sees the response.
        The response holds one slot of `limiter` until the caller leaves the
        block, because it keeps its pooled connection until then.
        """
        self.check_open()
        url = self.url(path, registry=registry)
        attempt = 0
        while True:
            attempt += 1
            try:
                request = self.http.build_request(
                    method,
                    url,
                    params=_query_params(params),
                    headers=self._count_request(None),
                )
            except httpx.InvalidURL as exc:
                raise _invalid_url_error(exc, method, path) from None
            async with self._limiter:
                try:
                    response = await self.http.send(request, stream=True)
                except httpx.TransportError as exc:
                    if attempt > self.config.max_retries:
                        raise TransportException(
                            f"could not reach the MLflow server"
                            f"{_server_address(exc)}: {type(exc).__name__}",
                            method=method,
                            path=path,
                        ) from None
                else:
                    try:
                        if response.is_success:
                            yield response
                            return
                        await response.aread()
                        retryable = response.status_code in RETRY_STATUSES
                        if not retryable or attempt > self.config.max_retries:
                            raise error_from_response(response)
                    finally:
                        await response.aclose()
            # The slot is free while this attempt waits for the next one.
            await asyncio.sleep(min(2 ** (attempt - 1) * 0.1, 5.0))


def _closed_error() -> ClientClosedError:
    return ClientClosedError(
        "the client is closed; create a new AsyncMaestroClient "
        "(or use it inside 'async with')"
    )


def _invalid_url_error(
    exc: httpx.InvalidURL, method: str, path: str
) -> ValidationException:
    # httpx rejects a URL, or one component of it, longer than 65,536
    # characters while it builds the request, so nothing was sent.
    return ValidationException(
        f"the {method} request to {path} was not sent because httpx rejected "
        f"its URL ({exc}); a name, id or key sent in the URL query is probably "
        "too long: shorten it"
    )


def _transport_failure(exc: httpx.TransportError) -> str:
    """Describe a failed request, saying whether the server may have acted on it."""
    if isinstance(exc, httpx.LocalProtocolError):
        # The message of this error quotes the rejected header value, which may
        # be a credential, so only its type is shown.
        return (
            "the request was not sent because it could not be encoded: a header "
            "or the URL contains characters that HTTP does not allow "
            f"({type(exc).__name__})"
        )
    detail = f"{type(exc).__name__}: {exc}"
    server = f"the MLflow server{_server_address(exc)}"
    if is_unsent_error(exc):
        return f"could not reach {server}: {detail}"
    return (
        f"the connection to {server} failed before a complete response "
        f"arrived, so the request may have been applied: {detail}"
    )


def _server_address(exc: httpx.TransportError) -> str:
    """Return " at <scheme>://<host:port>" for the failed request, or ""."""
    try:
        url = exc.request.url
    except RuntimeError:
        return ""
    # netloc leaves out the userinfo, so a password in the URI is not shown.
    return f" at {url.scheme}://{url.netloc.decode('ascii')}"


def _query_params(
    params: Mapping[str, Any] | None,
) -> list[tuple[str, str | int | float | bool | None]] | None:
    """Encode query parameters, with lists as repeated keys and no None values."""
    if not params:
        return None
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, bool):
                pairs.append((key, "true" if item else "false"))
            else:
                pairs.append((key, str(item)))
    return pairs
