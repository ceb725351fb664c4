"""Kubeconfig lists in $KUBECONFIG, merged as kubectl merges them.

kubectl reads every file that $KUBECONFIG lists, skips missing ones, takes
each named cluster, context and user from the first file that defines it, and
takes current-context from the first file that sets it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from _training_helpers import NAMESPACE

from maestro_ml_async import ConfigurationException
from maestro_ml_async._config import build_config
from maestro_ml_async._transport._kube import ClusterTransport
from maestro_ml_async.testing import FakeCluster


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def split_kubeconfig(cluster: FakeCluster) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the fake's kubeconfig as (clusters and contexts, users)."""
    config = cluster.kubeconfig()
    users = {"apiVersion": "v1", "kind": "Config", "users": config.pop("users")}
    return config, users


def use_kubeconfig_list(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(str(p) for p in paths))


async def list_jobs_page(config: dict[str, Any] | None = None) -> dict[str, Any]:
    transport = await ClusterTransport.create(build_config(config or {}))
    try:
        page: dict[str, Any] = await transport.list_page(
            "kubeflow.org", "v1", "pytorchjobs", NAMESPACE
        )
    finally:
        await transport.aclose()
    return page


async def test_kubeconfig_list_is_merged(
    cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts, users = split_kubeconfig(cluster)
    first = write(tmp_path / "contexts", contexts)
    second = write(tmp_path / "users", users)
    use_kubeconfig_list(monkeypatch, tmp_path / "missing", first, second)
    page = await list_jobs_page()
    assert page["items"] == []
    assert cluster.stats.unauthorized_total == 0


async def test_first_current_context_wins(
    cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = cluster.kubeconfig()
    bad = cluster.kubeconfig()
    bad["current-context"] = "stale"
    bad["contexts"] = [
        {"name": "stale", "context": {"cluster": cluster.context, "user": "stale"}}
    ]
    bad["users"] = [{"name": "stale", "user": {"token": "not-the-token"}}]
    use_kubeconfig_list(
        monkeypatch, write(tmp_path / "good", good), write(tmp_path / "bad", bad)
    )
    page = await list_jobs_page()
    assert page["items"] == []
    assert cluster.stats.unauthorized_total == 0


async def test_token_in_later_file_is_reloaded(
    cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts, users = split_kubeconfig(cluster)
    first = write(tmp_path / "contexts", contexts)
    second = write(tmp_path / "users", users)
    use_kubeconfig_list(monkeypatch, first, second)
    transport = await ClusterTransport.create(build_config({}))
    try:
        await transport.list_page("kubeflow.org", "v1", "pytorchjobs", NAMESPACE)
        token = cluster.rotate_token()
        users["users"][0]["user"]["token"] = token
        write(second, users)
        page = await transport.list_page("kubeflow.org", "v1", "pytorchjobs", NAMESPACE)
    finally:
        await transport.aclose()
    assert page["items"] == []
    assert cluster.stats.unauthorized_total == 0


async def test_token_file_relative_to_its_kubeconfig(
    cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts, users = split_kubeconfig(cluster)
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "token").write_text(cluster.token)
    users["users"][0]["user"] = {"tokenFile": "token"}
    first = write(tmp_path / "contexts" / "config", contexts)
    second = write(tmp_path / "users" / "config", users)
    use_kubeconfig_list(monkeypatch, first, second)
    page = await list_jobs_page()
    assert page["items"] == []
    assert cluster.stats.unauthorized_total == 0


async def test_unparsable_kubeconfig_is_configuration_error(
    cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken"
    broken.write_text("clusters: [unclosed\n")
    use_kubeconfig_list(monkeypatch, broken, Path(cluster.kubeconfig_path))
    with pytest.raises(ConfigurationException, match="cannot load the kubeconfig"):
        await list_jobs_page()
