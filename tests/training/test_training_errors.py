"""Error mapping, retries and credential refresh of the cluster transport."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from _training_helpers import eventually, make_client, shrink_watch_timings

from maestro_ml_async import (
    AsyncMaestroClient,
    ConfigurationException,
    KubernetesAuthException,
    KubernetesConflictException,
    KubernetesException,
    KubernetesNotFoundException,
)
from maestro_ml_async._config import build_config
from maestro_ml_async._transport._kube import ClusterTransport
from maestro_ml_async._transport._kube_auth import InClusterPaths
from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing._scripts import succeed


async def test_missing_job_is_not_found(client: AsyncMaestroClient) -> None:
    with pytest.raises(KubernetesNotFoundException) as caught:
        await client.training.get_job("absent")
    assert caught.value.status_code == 404
    assert "absent" in str(caught.value)


async def test_duplicate_submit_is_conflict(client: AsyncMaestroClient) -> None:
    await client.training.submit_job("twice", "pytorch", "img")
    with pytest.raises(KubernetesConflictException) as caught:
        await client.training.submit_job("twice", "pytorch", "img")
    assert caught.value.status_code == 409
    assert caught.value.reason == "AlreadyExists"
    assert "already exists" in caught.value.message


async def test_reads_retry_server_errors(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    await client.training.submit_job("retry-me", "pytorch", "img")
    fault = cluster.faults.fail(503, times=2, verb="get", plural="pytorchjobs")
    job = await client.training.get_job("retry-me")
    assert job.name == "retry-me"
    assert fault.hits == 2


async def test_throttled_create_is_retried(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    fault = cluster.faults.throttle(retry_after=0, verb="create", plural="pytorchjobs")
    job = await client.training.submit_job("throttled", "pytorch", "img")
    assert job.name == "throttled"
    assert fault.hits == 1


async def test_failed_create_is_not_retried(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    fault = cluster.faults.fail(500, times=None, verb="create", plural="pytorchjobs")
    with pytest.raises(KubernetesException) as caught:
        await client.training.submit_job("broken", "pytorch", "img")
    assert caught.value.status_code == 500
    assert fault.hits == 1


async def test_rejected_token_raises_auth_error(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.expire_token()
    with pytest.raises(KubernetesAuthException) as caught:
        await client.training.get_job("anything")
    assert caught.value.status_code == 401
    assert caught.value.reason == "Unauthorized"


async def test_rotated_kubeconfig_token_is_reloaded(cluster: FakeCluster) -> None:
    async with make_client(cluster) as client:
        await client.training.submit_job("rot", "pytorch", "img")
        cluster.rotate_token()
        job = await client.training.get_job("rot")
    assert job.name == "rot"
    assert cluster.stats.unauthorized_total == 0


def write_exec_plugin(folder: Path, token_file: Path, expiry: datetime | None) -> Path:
    """Write an exec credential plugin that prints the token in `token_file`."""
    counter = folder / "runs"
    status: dict[str, Any] = {}
    if expiry is not None:
        status["expirationTimestamp"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    script = folder / "plugin.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import json, pathlib
            counter = pathlib.Path({str(counter)!r})
            counter.write_text(str(int(counter.read_text() or 0) + 1)
                               if counter.exists() else "1")
            status = {status!r}
            status["token"] = pathlib.Path({str(token_file)!r}).read_text().strip()
            print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1",
                              "kind": "ExecCredential", "status": status}}))
            """
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def exec_kubeconfig(cluster: FakeCluster, folder: Path, script: Path) -> Path:
    config = cluster.kubeconfig()
    config["users"] = [
        {
            "name": cluster.context,
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": sys.executable,
                    "args": [str(script)],
                    "interactiveMode": "Never",
                }
            },
        }
    ]
    path = folder / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


def plugin_runs(folder: Path) -> int:
    return int((folder / "runs").read_text())


async def test_exec_plugin_rerun_after_401(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(cluster.token)
    script = write_exec_plugin(tmp_path, token_file, expiry=None)
    kubeconfig = exec_kubeconfig(cluster, tmp_path, script)
    async with make_client(cluster, kube_config_path=str(kubeconfig)) as client:
        await client.training.submit_job("ex", "pytorch", "img")
        assert plugin_runs(tmp_path) == 1
        token_file.write_text(cluster.rotate_token())
        job = await client.training.get_job("ex")
    assert job.name == "ex"
    assert plugin_runs(tmp_path) == 2
    assert cluster.stats.unauthorized_total >= 1


async def test_concurrent_401s_share_one_refresh(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(cluster.token)
    script = write_exec_plugin(tmp_path, token_file, expiry=None)
    kubeconfig = exec_kubeconfig(cluster, tmp_path, script)
    async with make_client(cluster, kube_config_path=str(kubeconfig)) as client:
        await client.training.submit_job("many401", "pytorch", "img")
        token_file.write_text(cluster.rotate_token())
        jobs = await asyncio.gather(
            *(client.training.get_job("many401") for _ in range(20))
        )
    assert {job.name for job in jobs} == {"many401"}
    assert plugin_runs(tmp_path) == 2


async def test_exec_plugin_refreshed_before_expiry(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(cluster.token)
    expiry = datetime.now(timezone.utc) + timedelta(seconds=2)
    script = write_exec_plugin(tmp_path, token_file, expiry=expiry)
    kubeconfig = exec_kubeconfig(cluster, tmp_path, script)
    async with make_client(cluster, kube_config_path=str(kubeconfig)) as client:
        await client.training.submit_job("soon", "pytorch", "img")
        assert plugin_runs(tmp_path) == 1
        transport = await client._cluster.get()
        # Pretend the credential is about to expire: the next request renews it.
        transport.auth._expiry = datetime.now(timezone.utc)
        await client.training.get_job("soon")
    assert plugin_runs(tmp_path) == 2
    assert cluster.stats.unauthorized_total == 0


async def test_token_file_reread_when_rotated(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(cluster.token)
    config = cluster.kubeconfig()
    config["users"] = [
        {"name": cluster.context, "user": {"tokenFile": str(token_file)}}
    ]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    async with make_client(cluster, kube_config_path=str(kubeconfig)) as client:
        await client.training.submit_job("tf", "pytorch", "img")
        token_file.write_text(cluster.rotate_token())
        job = await client.training.get_job("tf")
    assert job.name == "tf"
    assert cluster.stats.unauthorized_total == 0


async def test_in_cluster_config_rereads_rotated_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    async with FakeCluster(tls=True, tick=0.01) as cluster:
        assert cluster.ca_path is not None
        token = tmp_path / "token"
        token.write_text(cluster.token)
        (tmp_path / "namespace").write_text("ml-platform")
        port = cluster.url.rsplit(":", 1)[1]
        paths = InClusterPaths(
            token_path=str(token),
            ca_path=cluster.ca_path,
            namespace_path=str(tmp_path / "namespace"),
            environ={
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": port,
            },
        )
        config = build_config({"namespace": "ml-platform"})
        transport = await ClusterTransport.create(config, in_cluster=paths)
        try:
            assert transport.host == cluster.url
            await transport.list_page(
                "kubeflow.org", "v1", "pytorchjobs", "ml-platform"
            )
            token.write_text(cluster.rotate_token())
            page = await transport.list_page(
                "kubeflow.org", "v1", "pytorchjobs", "ml-platform"
            )
        finally:
            await transport.aclose()
    assert page["items"] == []
    assert cluster.stats.unauthorized_total == 0


async def test_no_cluster_config_is_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    paths = InClusterPaths(token_path=str(tmp_path / "no-token"), environ={})
    with pytest.raises(ConfigurationException, match="no cluster configuration"):
        await ClusterTransport.create(build_config({}), in_cluster=paths)


async def test_missing_kubeconfig_path_is_clear(tmp_path: Path) -> None:
    config = build_config({"kube_config_path": str(tmp_path / "nope")})
    with pytest.raises(ConfigurationException, match="does not exist"):
        await ClusterTransport.create(config)


async def test_unknown_context_is_clear(cluster: FakeCluster) -> None:
    config = build_config(
        {"kube_config_path": cluster.kubeconfig_path, "kube_context": "elsewhere"}
    )
    with pytest.raises(ConfigurationException, match="elsewhere"):
        await ClusterTransport.create(config)


async def test_watch_refreshes_token_on_401(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(cluster.token)
    script = write_exec_plugin(tmp_path, token_file, expiry=None)
    kubeconfig = exec_kubeconfig(cluster, tmp_path, script)
    cluster.scripts.set("pytorchjobs", "w401", succeed(run_time=0.5))
    async with make_client(cluster, kube_config_path=str(kubeconfig)) as client:
        await shrink_watch_timings(client)
        job = await client.training.submit_job("w401", "pytorch", "img", workers=0)
        waiter = asyncio.ensure_future(job.wait(timeout=10))
        await eventually(lambda: cluster.stats.watch_connections_open == 1)
        token_file.write_text(cluster.rotate_token())
        transport = await client._cluster.get()
        hub = transport.hub("kubeflow.org", "v1", "pytorchjobs", "ml-platform")
        assert hub._watch is not None
        hub._watch._drop_response()
        final = await waiter
    assert final.finished
    assert plugin_runs(tmp_path) == 2
    assert cluster.stats.unauthorized_total == 1


def test_import_does_not_load_kubernetes() -> None:
    code = (
        "import sys, maestro_ml_async\n"
        "from maestro_ml_async import AsyncMaestroClient\n"
        "c = AsyncMaestroClient(mlflow_uri='http://127.0.0.1:9')\n"
        "c.training\n"
        "assert 'kubernetes_asyncio' not in sys.modules, 'loaded'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_ML_")}
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


async def test_typed_calls_are_mapped(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    transport = await client._cluster.get()
    core = transport.core
    with pytest.raises(KubernetesNotFoundException) as caught:
        await transport.call(core.read_namespaced_config_map, "nope", "ml-platform")
    assert caught.value.status_code == 404
    body = {"metadata": {"name": "typed"}, "data": {"k": "v"}}
    await transport.call(core.create_namespaced_config_map, "ml-platform", body)
    with pytest.raises(KubernetesConflictException):
        await transport.call(core.create_namespaced_config_map, "ml-platform", body)
    fault = cluster.faults.fail(503, times=1, verb="get", plural="configmaps")
    read = await transport.call(core.read_namespaced_config_map, "typed", "ml-platform")
    assert read.data == {"k": "v"}
    assert fault.hits == 1


def test_error_bodies_that_are_not_status() -> None:
    from maestro_ml_async._transport._kube_errors import error_from_status

    html = error_from_status(502, b"<html>bad gateway</html>", "Bad Gateway")
    assert html.status_code == 502
    assert html.message == "<html>bad gateway</html>"
    empty = error_from_status(503, "", "Service Unavailable")
    assert empty.message == "Service Unavailable"
    assert empty.reason == "Service Unavailable"
    forbidden = error_from_status(
        403, {"reason": "Forbidden", "message": "no", "code": 403}
    )
    assert isinstance(forbidden, KubernetesAuthException)
    assert forbidden.reason == "Forbidden"
