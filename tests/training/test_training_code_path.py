"""Local code shipped with `code_path`: links that leave the folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _training_helpers import NAMESPACE

from maestro_ml_async import AsyncMaestroClient, ValidationException
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster

CONFIGMAPS = RESOURCE_TYPES["configmaps"]


def _code_folder(base: Path) -> Path:
    code = base / "code"
    code.mkdir()
    (code / "train.py").write_text("print(1)\n")
    return code


@pytest.mark.parametrize("target_is_dir", [False, True])
async def test_link_out_of_code_folder_is_rejected(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    tmp_path: Path,
    target_is_dir: bool,
) -> None:
    code = _code_folder(tmp_path)
    outside = tmp_path / "secrets"
    if target_is_dir:
        outside.mkdir()
        (outside / "credentials").write_text("token\n")
    else:
        outside.write_text("token\n")
    os.symlink(outside, code / "link_out")
    creates = cluster.stats.requests_by_verb["create"]
    with pytest.raises(ValidationException, match="outside") as caught:
        await client.training.submit_job("lnk", "sklearn", "img", code_path=code)
    assert "link_out" in str(caught.value)
    assert cluster.stats.requests_by_verb["create"] == creates
    assert cluster.store.get(CONFIGMAPS, NAMESPACE, "lnk-code") is None


async def test_link_inside_code_folder_is_shipped(
    cluster: FakeCluster, client: AsyncMaestroClient, tmp_path: Path
) -> None:
    code = _code_folder(tmp_path)
    (code / "config.yaml").write_text("lr: 0.1\n")
    os.symlink(code / "config.yaml", code / "alias.yaml")
    await client.training.submit_job("lnk-in", "sklearn", "img", code_path=code)
    configmap = cluster.store.get(CONFIGMAPS, NAMESPACE, "lnk-in-code")
    assert configmap is not None
    assert configmap["data"]["alias.yaml"] == "lr: 0.1\n"
    assert configmap["data"]["config.yaml"] == "lr: 0.1\n"
