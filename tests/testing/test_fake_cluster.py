"""FakeCluster start-up, kubeconfig, TLS and the standalone process."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import ssl
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing._patch import PatchError, json_patch, merge_patch
from maestro_ml_async.testing._resources import RESOURCE_TYPES
from maestro_ml_async.testing._selectors import parse_label_selector
from maestro_ml_async.testing._status import StoreError


async def test_starts_fast_and_writes_kubeconfig() -> None:
    started = time.perf_counter()
    async with FakeCluster(controllers=False) as cluster:
        elapsed = time.perf_counter() - started
        config = json.loads(Path(cluster.kubeconfig_path).read_text())  # noqa: ASYNC240
        mode = Path(cluster.kubeconfig_path).stat().st_mode & 0o777  # noqa: ASYNC240
    assert elapsed < 0.5
    assert config["current-context"] == cluster.context
    assert config["clusters"][0]["cluster"]["server"] == cluster.url
    assert config["users"][0]["user"]["token"] == cluster.token
    assert cluster.url.startswith("http://127.0.0.1:")
    assert mode == 0o600
    assert not Path(cluster.kubeconfig_path).exists(), "the temporary folder is removed"  # noqa: ASYNC240


async def test_tls_serves_with_its_ca() -> None:
    async with FakeCluster(tls=True, controllers=False) as cluster:
        config = cluster.kubeconfig()
        ca_pem = base64.b64decode(
            config["clusters"][0]["cluster"]["certificate-authority-data"]
        )
        context = ssl.create_default_context(cadata=ca_pem.decode())
        headers = {"Authorization": f"Bearer {cluster.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.get(f"{cluster.url}/version", ssl=context) as response:
                assert response.status == 200
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"{cluster.url}/version")
    assert cluster.url.startswith("https://127.0.0.1:")
    assert cluster.ca_path is not None


async def test_fixture_cluster_runs_controllers(fake_cluster: FakeCluster) -> None:
    assert fake_cluster.controller_tasks
    assert all(not task.done() for task in fake_cluster.controller_tasks)


async def test_module_runs_until_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "maestro_ml_async.testing",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 20)
        second = await asyncio.wait_for(process.stdout.readline(), 5)
        third = await asyncio.wait_for(process.stdout.readline(), 5)
        assert first.decode().strip() == f"kubeconfig={kubeconfig}"
        assert second.decode().strip() == "context=maestro-fake"
        server = third.decode().strip().removeprefix("server=")
        config = json.loads(kubeconfig.read_text())
        token = config["users"][0]["user"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.get(
                f"{server}/api/v1/namespaces/ml-platform"
            ) as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    assert code == 0


def test_label_selector_grammar() -> None:
    labels = {"metadata": {"labels": {"a": "1", "n": "5"}}}
    matching = [
        "a",
        "a=1",
        "a==1",
        "a!=2",
        "b!=2",
        "a in (1,2)",
        "b notin (1)",
        "n>4",
        "n<6",
        "!b",
    ]
    for text in matching:
        selector = parse_label_selector(text)
        assert selector is not None and selector(labels), text
    for text in ("a=2", "b", "a notin (1)", "n>5", "!a"):
        selector = parse_label_selector(text)
        assert selector is not None and not selector(labels), text
    for bad in ("a in 1", "a=(", "=1", "n>x"):
        with pytest.raises(StoreError):
            parse_label_selector(bad)
    assert parse_label_selector("") is None


def test_merge_and_json_patch() -> None:
    document = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert merge_patch(document, {"a": {"b": None, "c": [3]}}) == {
        "a": {"c": [3]},
        "d": "x",
    }
    assert document["a"] == {"b": 1, "c": [1, 2]}, "the input is not changed"
    ops = [
        {"op": "add", "path": "/a/c/-", "value": 3},
        {"op": "move", "from": "/d", "path": "/e"},
        {"op": "copy", "from": "/e", "path": "/f~1g"},
        {"op": "test", "path": "/a/c", "value": [1, 2, 3]},
    ]
    assert json_patch(document, ops) == {
        "a": {"b": 1, "c": [1, 2, 3]},
        "e": "x",
        "f/g": "x",
    }
    with pytest.raises(PatchError):
        json_patch(document, [{"op": "test", "path": "/d", "value": "y"}])
    with pytest.raises(PatchError):
        json_patch(document, [{"op": "replace", "path": "/missing", "value": 1}])
    with pytest.raises(PatchError):
        json_patch(document, {"op": "add"})


async def test_store_no_op_write_keeps_version() -> None:
    async with FakeCluster(controllers=False) as cluster:
        pods = RESOURCE_TYPES["pods"]
        cluster.store.create(pods, {"metadata": {"name": "p"}, "spec": {}})
        before = cluster.store.resource_version
        cluster.store.mutate(pods, "default", "p", lambda obj: None)
        assert cluster.store.resource_version == before


def test_module_parses_pvc_roots() -> None:
    from maestro_ml_async.testing.__main__ import _parse_args

    args = _parse_args(
        ["--pvc-root", "models=/data/models", "--pvc-root", "cache=/tmp/a=b"]
    )
    # Only the first "=" splits, so a path may itself contain one.
    assert args.pvc_roots == {"models": "/data/models", "cache": "/tmp/a=b"}
    assert _parse_args([]).pvc_roots == {}


@pytest.mark.parametrize("value", ["models", "=/data", "models="])
def test_module_rejects_bad_pvc_root(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from maestro_ml_async.testing.__main__ import _parse_args

    with pytest.raises(SystemExit) as caught:
        _parse_args(["--pvc-root", value])
    assert caught.value.code == 2
    assert "expected CLAIM=PATH" in capsys.readouterr().err
