"""Connection recycling: ``Connection: close`` on one request in N.

The respx tests check which requests carry the header. The server tests run a
small HTTP/1.1 keep-alive server on 127.0.0.1 that counts the connections it
accepts, which shows that the client really opens new connections.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from maestro_ml_async import AsyncMaestroClient, Config
from maestro_ml_async._config import DEFAULT_REQUESTS_PER_CONNECTION

BASE = "http://127.0.0.1:9"
API = BASE + "/api/2.0/mlflow"
MODEL = {"registered_model": {"name": "m", "creation_timestamp": 1}}


def make_client(**settings: Any) -> AsyncMaestroClient:
    values: dict[str, Any] = {
        "mlflow_uri": BASE,
        "max_retries": 3,
        "retry_backoff_base": 0.001,
        "retry_backoff_max": 0.002,
    }
    values.update(settings)
    return AsyncMaestroClient(config=Config(**values))


def closing_requests(router: respx.MockRouter) -> list[int]:
    """Return the 1-based positions of the requests sent with Connection: close."""
    return [
        position
        for position, call in enumerate(router.calls, start=1)
        if call.request.headers.get("connection") == "close"
    ]


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as mock:
        mock.get("/registered-models/get").respond(200, json=MODEL)
        yield mock


async def test_every_nth_request_closes(router: respx.MockRouter) -> None:
    async with make_client(requests_per_connection=3) as client:
        for _ in range(10):
            await client.models.get("m")

    assert len(router.calls) == 10
    assert closing_requests(router) == [3, 6, 9]


async def test_one_closes_every_request(router: respx.MockRouter) -> None:
    async with make_client(requests_per_connection=1) as client:
        for _ in range(4):
            await client.models.get("m")

    assert closing_requests(router) == [1, 2, 3, 4]


@pytest.mark.parametrize("disabled", [0, None])
async def test_disabled_never_closes(
    router: respx.MockRouter, disabled: int | None
) -> None:
    async with make_client(requests_per_connection=disabled) as client:
        for _ in range(50):
            await client.models.get("m")

    assert len(router.calls) == 50
    assert closing_requests(router) == []


async def test_default_closes_at_default(router: respx.MockRouter) -> None:
    calls = 2 * DEFAULT_REQUESTS_PER_CONNECTION + 1
    async with AsyncMaestroClient(mlflow_uri=BASE) as client:
        for _ in range(calls):
            await client.models.get("m")

    expected = [DEFAULT_REQUESTS_PER_CONNECTION, 2 * DEFAULT_REQUESTS_PER_CONNECTION]
    assert closing_requests(router) == expected


async def test_count_spans_concurrent_requests(router: respx.MockRouter) -> None:
    async with make_client(requests_per_connection=10, max_concurrency=16) as client:
        results = await client.bulk_map(client.models.get, ["m"] * 100)

    assert results.errors == []
    assert len(router.calls) == 100
    assert len(closing_requests(router)) == 10


async def test_retried_attempts_are_counted(router: respx.MockRouter) -> None:
    router.get("/registered-models/get").mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(200, json=MODEL),
            httpx.Response(200, json=MODEL),
        ]
    )
    async with make_client(requests_per_connection=2) as client:
        await client.models.get("m")
        await client.models.get("m")

    assert len(router.calls) == 3
    assert closing_requests(router) == [2]


async def test_caller_headers_are_kept(router: respx.MockRouter) -> None:
    route = router.post("/upload").respond(200, json={})
    async with make_client(requests_per_connection=1) as client:
        await client._mlflow.request(
            "POST",
            "/api/2.0/mlflow/upload",
            content=b"data",
            headers={"Content-Type": "application/octet-stream"},
        )

    sent = route.calls.last.request
    assert sent.headers["content-type"] == "application/octet-stream"
    assert sent.headers["connection"] == "close"


async def test_streamed_requests_are_counted(router: respx.MockRouter) -> None:
    router.get("/download").respond(200, content=b"chunk")
    async with make_client(requests_per_connection=2) as client:
        await client.models.get("m")
        async with client._mlflow.stream("GET", "/api/2.0/mlflow/download") as reply:
            body = await reply.aread()

    assert body == b"chunk"
    assert closing_requests(router) == [2]


class CountingServer:
    """HTTP/1.1 keep-alive server that counts the connections it accepts.

    Args:
        honor_close: Close the connection after responding to a request that
            carries ``Connection: close``, as real servers do. When False the
            server keeps every connection open, so a new connection proves that
            the client closed its side.
    """

    def __init__(self, *, honor_close: bool) -> None:
        self.honor_close = honor_close
        self.connections = 0
        self.requests = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._body = json.dumps(MODEL).encode()

    async def __aenter__(self) -> CountingServer:
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
        self.connections += 1
        try:
            while await reader.readline():
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    key, _, value = line.decode().partition(":")
                    headers[key.strip().lower()] = value.strip().lower()
                self.requests += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(self._body), self._body)
                )
                await writer.drain()
                if self.honor_close and headers.get("connection") == "close":
                    return
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("honor_close", [True, False], ids=["server-closes", "keeps"])
@pytest.mark.parametrize(
    ("setting", "expected_connections"), [(10, 4), (7, 6), (0, 1), (None, 1)]
)
async def test_server_sees_new_connections(
    honor_close: bool, setting: int | None, expected_connections: int
) -> None:
    async with CountingServer(honor_close=honor_close) as server:
        config = Config(mlflow_uri=server.url, requests_per_connection=setting)
        async with AsyncMaestroClient(config=config) as client:
            for _ in range(40):
                await client.models.get("m")

    assert server.requests == 40
    assert server.connections == expected_connections


class ImportRecorder(importlib.abc.MetaPathFinder):
    """Records every module lookup that misses `sys.modules`."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        self.names.append(fullname)
        return None


async def test_pooled_requests_look_up_no_module() -> None:
    # httpcore imports sniffio on every pooled request. When that package is
    # missing, each import fails and scans every sys.path entry again, which
    # is why the SDK depends on it.
    async with CountingServer(honor_close=True) as server:
        async with AsyncMaestroClient(mlflow_uri=server.url) as client:
            await client.models.get("m")
            recorder = ImportRecorder()
            sys.meta_path.insert(0, recorder)
            try:
                for _ in range(5):
                    await client.models.get("m")
            finally:
                sys.meta_path.remove(recorder)
    assert server.requests == 6
    assert recorder.names == []
