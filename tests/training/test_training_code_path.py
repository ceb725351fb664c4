"""Local code shipped with `code_path`: links, hidden entries and typos."""

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


async def test_hidden_entries_are_not_shipped(
    cluster: FakeCluster, client: AsyncMaestroClient, tmp_path: Path
) -> None:
    code = _code_folder(tmp_path)
    (code / ".env").write_text("AWS_SECRET_ACCESS_KEY=x\n")
    (code / ".git").mkdir()
    (code / ".git" / "config").write_text("[core]\n")
    (code / "pkg" / ".cache").mkdir(parents=True)
    (code / "pkg" / ".cache" / "blob").write_text("cached\n")
    (code / "pkg" / "model.py").write_text("X = 1\n")
    # A hidden link that leaves the folder is skipped, not rejected.
    os.symlink(tmp_path, code / ".venv")
    await client.training.submit_job("hidden", "sklearn", "img", code_path=code)
    configmap = cluster.store.get(CONFIGMAPS, NAMESPACE, "hidden-code")
    assert configmap is not None
    assert sorted(configmap["data"]) == ["pkg__model.py", "train.py"]


async def test_named_hidden_file_is_shipped(
    cluster: FakeCluster, client: AsyncMaestroClient, tmp_path: Path
) -> None:
    script = tmp_path / ".train.py"
    script.write_text("print(1)\n")
    await client.training.submit_job("dotfile", "sklearn", "img", code_path=script)
    configmap = cluster.store.get(CONFIGMAPS, NAMESPACE, "dotfile-code")
    assert configmap is not None
    assert list(configmap["data"]) == [".train.py"]


@pytest.mark.parametrize(
    "code_path", ["./missing/train.py", "../missing/train.py", "~/missing-x/train.py"]
)
async def test_missing_local_code_path_is_rejected(
    cluster: FakeCluster, client: AsyncMaestroClient, code_path: str
) -> None:
    creates = cluster.stats.requests_by_verb["create"]
    with pytest.raises(ValidationException, match="does not exist") as caught:
        await client.training.submit_job("typo", "sklearn", "img", code_path=code_path)
    assert code_path in str(caught.value)
    assert cluster.stats.requests_by_verb["create"] == creates


async def test_relative_code_path_is_shipped(
    cluster: FakeCluster,
    client: AsyncMaestroClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = _code_folder(tmp_path)
    monkeypatch.chdir(code)
    await client.training.submit_job("rel", "sklearn", "img", code_path="./train.py")
    configmap = cluster.store.get(CONFIGMAPS, NAMESPACE, "rel-code")
    assert configmap is not None
    assert configmap["data"]["train.py"] == "print(1)\n"


async def test_image_path_is_not_checked(client: AsyncMaestroClient) -> None:
    job = await client.training.submit_job(
        "inimage", "sklearn", "img", code_path="/app/missing/train.py"
    )
    container = job.raw["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "/app/missing/train.py"]
