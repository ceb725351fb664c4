"""Transport faults from a scripted HTTP server on 127.0.0.1.

A real MLflow server cannot lose a response half-way, redirect to a login page or
return 200 with an empty body, so a small asyncio server plays those parts over
real sockets. Each script step handles one request, and the last step repeats.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    ClientClosedError,
    MLflowException,
    RateLimitedException,
    RequestTimeoutException,
    TransportException,
    ValidationException,
)

Step = Callable[[asyncio.StreamWriter], Awaitable[bool]]
MODEL = {"registered_model": {"name": "m", "creation_timestamp": 1}}


def answer(
    status: int,
    body: bytes | dict[str, Any] = b"",
    headers: dict[str, str] | None = None,
) -> Step:
    """A step that sends a complete response and keeps the connection."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    extra = "".join(f"{key}: {value}\r\n" for key, value in (headers or {}).items())

    async def step(writer: asyncio.StreamWriter) -> bool:
        head = (
            f"HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n{extra}\r\n"
        )
        writer.write(head.encode() + payload)
        return True

    return step


async def reset_mid_body(writer: asyncio.StreamWriter) -> bool:
    """A step that sends the headers and part of the body, then resets."""
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b'Content-Length: 500\r\n\r\n{"experiment_id": "1'
    )
    await writer.drain()
    writer.transport.abort()
    return False


class ScriptedServer:
    """HTTP server that replies to each request with the next script step."""

    def __init__(self, script: list[Step]) -> None:
        self.script = script
        self.requests: list[str] = []
        self.authorization: list[str | None] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while line := await reader.readline():
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    key, _, value = header.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                self.requests.append(line.decode().split(" ")[1])
                self.authorization.append(headers.get("authorization"))
                step = self.script[min(len(self.requests), len(self.script)) - 1]
                keep_open = await step(writer)
                await writer.drain()
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
def client_for() -> Callable[..., AsyncIterator[AsyncMaestroClient]]:
    def build(server: ScriptedServer, **settings: Any) -> AsyncMaestroClient:
        settings.setdefault("max_retries", 3)
        return AsyncMaestroClient(mlflow_uri=server.url, **settings)

    return build  # type: ignore[return-value]


async def test_long_retry_after_fails_at_once(client_for: Any) -> None:
    limited = answer(429, b"", {"Retry-After": "3600"})
    async with ScriptedServer([limited]) as server:
        async with client_for(server) as client:
            started = time.monotonic()
            with pytest.raises(RateLimitedException) as caught:
                await client.models.get("m")
            elapsed = time.monotonic() - started

    assert elapsed < 5
    assert len(server.requests) == 1
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 3500


async def test_short_retry_after_still_retried(client_for: Any) -> None:
    script = [answer(503, b"", {"Retry-After": "0"}), answer(200, MODEL)]
    async with ScriptedServer(script) as server:
        async with client_for(server) as client:
            model = await client.models.get("m")

    assert model.name == "m"
    assert len(server.requests) == 2


async def test_lost_create_response_not_retried(client_for: Any) -> None:
    async with ScriptedServer([reset_mid_body]) as server:
        async with client_for(server) as client:
            with pytest.raises(TransportException) as caught:
                await client.experiments.create("e")

    assert len(server.requests) == 1
    assert "may have been applied" in str(caught.value)
    assert "could not reach" not in str(caught.value)


async def test_unreachable_server_says_so(client_for: Any) -> None:
    async with ScriptedServer([answer(200)]) as server:
        url = server.url
    async with AsyncMaestroClient(mlflow_uri=url, max_retries=0) as client:
        with pytest.raises(TransportException, match="could not reach"):
            await client.models.get("m")


async def test_unreachable_server_named_without_password() -> None:
    async with ScriptedServer([answer(200)]) as server:
        address = server.url.removeprefix("http://").rstrip("/")
    url = f"http://alice:pw-hidden-42@{address}"
    async with AsyncMaestroClient(mlflow_uri=url, max_retries=0) as client:
        with pytest.raises(TransportException) as caught:
            await client.models.get("m")

    message = str(caught.value)
    assert f"could not reach the MLflow server at http://{address}:" in message
    assert "pw-hidden-42" not in message
    assert "alice" not in message


async def test_redirect_names_target_without_secrets(client_for: Any) -> None:
    location = "https://user:pw-hidden@login.example/auth?state=tok-hidden#frag"
    async with ScriptedServer([answer(302, b"", {"Location": location})]) as server:
        async with client_for(server) as client:
            with pytest.raises(MLflowException) as caught:
                await client.models.get("m")

    message = str(caught.value)
    assert caught.value.status_code == 302
    assert "https://login.example/auth" in message
    assert "mlflow_uri" in message
    assert "hidden" not in message
    assert len(server.requests) == 1


@pytest.mark.parametrize("body", [b"", b"{}", b'{"other": 1}'])
async def test_success_without_field_is_invalid_response(
    client_for: Any, body: bytes
) -> None:
    async with ScriptedServer([answer(200, body)]) as server:
        async with client_for(server) as client:
            with pytest.raises(MLflowException) as model_error:
                await client.models.get("m")
            with pytest.raises(MLflowException) as run_error:
                await client.runs.get("r")

    for error in (model_error.value, run_error.value):
        assert error.error_code == "INVALID_RESPONSE"
        assert error.status_code == 200
    assert "'registered_model'" in str(model_error.value)
    assert "'run'" in str(run_error.value)


async def test_empty_token_sends_no_header(client_for: Any) -> None:
    async with ScriptedServer([answer(200, MODEL)]) as server:
        async with client_for(server, api_key="") as client:
            await client.models.get("m")

    assert server.authorization == [None]


async def test_url_credentials_used_but_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with ScriptedServer([answer(200, MODEL)]) as server:
        url = server.url.replace("http://", "http://alice:pw-hidden-42@")
        with caplog.at_level(logging.DEBUG):
            async with AsyncMaestroClient(mlflow_uri=url) as client:
                await client.models.get("m")
                rendered = repr(client) + repr(client.config) + str(client.config)

    assert server.authorization[0] is not None
    assert server.authorization[0].startswith("Basic ")
    assert "pw-hidden-42" not in rendered
    assert "pw-hidden-42" not in caplog.text
    assert "alice" in rendered


@pytest.mark.parametrize(
    ("setting", "variable"),
    [
        ("ca_cert_path", "MLFLOW_TRACKING_SERVER_CERT_PATH"),
        ("client_cert_path", "MLFLOW_TRACKING_CLIENT_CERT_PATH"),
    ],
)
@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_bad_certificate_is_configuration_error(
    tmp_path: Any, setting: str, variable: str, content: str | None
) -> None:
    from maestro_ml_async import Config, ConfigurationException
    from maestro_ml_async._transport._security import build_ssl_context

    path = tmp_path / "cert.pem"
    if content is not None:
        path.write_text(content)
    config = Config(mlflow_uri="https://127.0.0.1:1", **{setting: str(path)})

    with pytest.raises(ConfigurationException) as caught:
        build_ssl_context(config)

    assert str(path) in str(caught.value)
    assert variable in str(caught.value)


def test_client_survives_second_asyncio_run(mlflow_server_url: str) -> None:
    client = AsyncMaestroClient(mlflow_uri=mlflow_server_url, max_retries=0)

    async def list_models() -> int:
        return len(await client.models.list(max_results=1))

    # The first run leaves a kept-alive connection that belongs to its loop;
    # reusing it from the next loop used to fail with "Event loop is closed".
    for _ in range(3):
        assert asyncio.run(list_models()) <= 1
    asyncio.run(client.aclose())
    assert client.closed


async def test_open_stream_holds_its_slot(client_for: Any) -> None:
    body = answer(200, b"chunk")
    async with ScriptedServer([body, answer(200, MODEL)]) as server:
        # One connection and a pool timeout far shorter than the stream stays
        # open: a request that waited in the pool instead of on the limiter
        # would fail with PoolTimeout, and max_retries=0 would not hide it.
        async with client_for(
            server, max_concurrency=1, request_timeout=0.2, max_retries=0
        ) as client:
            transport = client._mlflow
            async with transport.stream("GET", "/download") as reply:
                assert transport.limiter.locked()
                waiting = asyncio.create_task(client.models.get("m"))
                await asyncio.sleep(0.5)
                assert not waiting.done()
                chunk = await reply.aread()
            model = await waiting

    assert chunk == b"chunk"
    assert model.name == "m"
    assert server.requests == [
        "/download",
        "/api/2.0/mlflow/registered-models/get?name=m",
    ]


async def broken_gzip(writer: asyncio.StreamWriter) -> bool:
    """A step that claims a gzip body but sends plain bytes."""
    body = b'{"registered_model": {"name": "m"}}'
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return True


async def test_undecodable_body_is_invalid_response(client_for: Any) -> None:
    async with ScriptedServer([broken_gzip]) as server:
        async with client_for(server) as client:
            with pytest.raises(MLflowException) as caught:
                await client.models.get("m")

    assert caught.value.error_code == "INVALID_RESPONSE"
    assert "Content-Encoding" in str(caught.value)
    assert caught.value.path == "/api/2.0/mlflow/registered-models/get"
    assert len(server.requests) == 1


async def test_close_during_requests_raises_closed(client_for: Any) -> None:
    received = asyncio.Event()
    release = asyncio.Event()

    async def held(writer: asyncio.StreamWriter) -> bool:
        received.set()
        await release.wait()
        return await answer(200, MODEL)(writer)

    async with ScriptedServer([held]) as server:
        client = client_for(server, max_concurrency=1, max_retries=0)
        in_flight = asyncio.create_task(client.models.get("sent"))
        queued = asyncio.create_task(client.models.get("queued"))
        await received.wait()
        await client.aclose()
        release.set()
        outcomes = await asyncio.gather(in_flight, queued, return_exceptions=True)

    assert [type(outcome) for outcome in outcomes] == [ClientClosedError] * 2
    assert len(server.requests) == 1


async def drip_body(writer: asyncio.StreamWriter) -> bool:
    """A step that sends a 40-byte body one byte every 0.25 s."""
    body = b'{"registered_model": {"name": "m"}}'.ljust(40)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    for byte in body:
        if writer.transport.is_closing():
            return False
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.25)
    return True


async def test_request_timeout_caps_slow_body(client_for: Any) -> None:
    # Each byte arrives well within the 1 s timeout, and the whole body would
    # take 10 s, so only a deadline on the whole request stops it in time.
    async with ScriptedServer([drip_body]) as server:
        async with client_for(server, request_timeout=1, max_retries=1) as client:
            started = time.monotonic()
            with pytest.raises(RequestTimeoutException) as caught:
                await client.models.get("m")
            elapsed = time.monotonic() - started

    assert elapsed < 8
    assert len(server.requests) == 2
    assert "1.0 s" in str(caught.value)


@pytest.mark.parametrize(
    ("resource", "method"),
    [
        ("models", "get"),
        ("runs", "get"),
        ("experiments", "get"),
        ("webhooks", "get"),
        ("logged_models", "get"),
    ],
)
async def test_too_long_query_not_sent(
    client_for: Any, resource: str, method: str
) -> None:
    async with ScriptedServer([answer(200, MODEL)]) as server:
        async with client_for(server) as client:
            call = getattr(getattr(client, resource), method)
            with pytest.raises(ValidationException) as caught:
                await call("a" * 66_000)

    assert "too long" in str(caught.value)
    assert server.requests == []
