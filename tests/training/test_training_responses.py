"""Responses that are not Kubernetes objects, from a scripted local server.

A proxy in front of the API server (an auth gateway, a load balancer) may
respond with 200 and a login page or an empty body. The fake cluster always
responds like an API server, so these tests use a small aiohttp server on
127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from maestro_ml_async import AsyncMaestroClient, KubernetesException
from maestro_ml_async._config import build_config
from maestro_ml_async.testing._kubeconfig import build_kubeconfig

NOT_OBJECTS = [
    pytest.param(b"<html>Sign in</html>", "text/html", id="html-page"),
    pytest.param(b"", "application/json", id="empty-body"),
    pytest.param(b"[]", "application/json", id="json-list"),
    pytest.param(b'"ok"', "application/json", id="json-string"),
    pytest.param(b'{"items": 3}', "application/json", id="object-without-kind"),
]


class ScriptedServer:
    """Returns one configured status and body for every request."""

    def __init__(self) -> None:
        self.body = b""
        self.content_type = "application/json"
        self.status = 200
        self.paths: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        return web.Response(
            body=self.body,
            status=self.status,
            headers={"Content-Type": self.content_type},
        )


@pytest_asyncio.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[ScriptedServer, Path]]:
    server = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = build_kubeconfig(
        server=f"http://127.0.0.1:{port}", token="t0ken", context="scripted"
    )
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    try:
        yield server, path
    finally:
        await runner.cleanup()


def _client(kubeconfig: Path) -> AsyncMaestroClient:
    settings = {
        "mlflow_uri": "http://127.0.0.1:9",
        "kube_config_path": str(kubeconfig),
        "namespace": "ml-platform",
        "max_retries": 2,
        "retry_backoff_base": 0.01,
        "retry_backoff_max": 0.05,
    }
    return AsyncMaestroClient(config=build_config(settings))


@pytest.mark.parametrize(("body", "content_type"), NOT_OBJECTS)
async def test_get_job_rejects_non_object(
    scripted: tuple[ScriptedServer, Path], body: bytes, content_type: str
) -> None:
    server, kubeconfig = scripted
    server.body, server.content_type = body, content_type
    async with _client(kubeconfig) as client:
        with pytest.raises(KubernetesException) as caught:
            await client.training.get_job("x")
    error = caught.value
    assert error.status_code == 200
    assert "not a Kubernetes object" in error.message
    assert "/namespaces/ml-platform/" in error.message
    assert "t0ken" not in str(error)


@pytest.mark.parametrize(("body", "content_type"), NOT_OBJECTS)
async def test_get_deployment_rejects_non_object(
    scripted: tuple[ScriptedServer, Path], body: bytes, content_type: str
) -> None:
    server, kubeconfig = scripted
    server.body, server.content_type = body, content_type
    async with _client(kubeconfig) as client:
        with pytest.raises(KubernetesException) as caught:
            await client.deployment.get_deployment("x")
    assert caught.value.status_code == 200
    assert "not a Kubernetes object" in caught.value.message
    assert "inferenceservices/x" in caught.value.message


async def test_non_object_is_not_retried(
    scripted: tuple[ScriptedServer, Path],
) -> None:
    server, kubeconfig = scripted
    server.body, server.content_type = b"<html>Sign in</html>", "text/html"
    async with _client(kubeconfig) as client:
        with pytest.raises(KubernetesException):
            await client.deployment.get_deployment("x")
    assert len(server.paths) == 1


async def test_html_error_page_keeps_status(
    scripted: tuple[ScriptedServer, Path],
) -> None:
    server, kubeconfig = scripted
    server.status = 403
    server.body, server.content_type = b"<html>Forbidden</html>", "text/html"
    async with _client(kubeconfig) as client:
        with pytest.raises(KubernetesException) as caught:
            await client.deployment.get_deployment("x")
    assert caught.value.status_code == 403
