"""Artifact uploads and downloads through the real server's artifact proxy."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    MLflowException,
    NotFoundException,
    ValidationException,
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_under(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
async def run_id(client: AsyncMaestroClient, unique: str) -> AsyncIterator[str]:
    experiment = await client.experiments.create(f"art-{unique}")
    run = await client.runs.create(experiment.experiment_id)
    yield run.run_id


async def test_large_file_round_trip(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as handle:
        for _ in range(20):
            handle.write(os.urandom(1 << 20))
    uploaded = await client.artifacts.upload_file(run_id, source, "weights")
    assert uploaded == "weights/big.bin"
    listing = await client.artifacts.list(run_id, "weights")
    assert [(a.path, a.file_size) for a in listing] == [("weights/big.bin", 20 << 20)]

    target = await client.artifacts.download(
        run_id, "weights/big.bin", tmp_path / "out"
    )
    assert target == (tmp_path / "out" / "weights" / "big.bin").resolve()
    assert sha256(target) == sha256(source)
    leftovers = [p.name for p in target.parent.iterdir() if p.name.endswith(".part")]
    assert leftovers == []


async def test_nested_directory_round_trip(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "model"
    names = [
        "MLmodel",
        "data/model.pkl",
        "data/deep/er/weights 1.bin",
        "data/ünïcode.txt",
        "data/100%.txt",
        "empty.txt",
    ]
    for name in names:
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if name == "empty.txt" else os.urandom(1000 + len(name)))
    uploaded = await client.artifacts.upload_dir(
        run_id, source, "model", max_concurrency=3
    )
    assert sorted(uploaded) == sorted(f"model/{n}" for n in names)

    everything = await client.artifacts.list(run_id, recursive=True)
    file_paths = sorted(a.path for a in everything if not a.is_dir)
    assert file_paths == sorted(f"model/{n}" for n in names)

    out = tmp_path / "out"
    target = await client.artifacts.download(run_id, "model", out)
    assert target == (out / "model").resolve()
    assert files_under(target) == files_under(source)
    whole = await client.artifacts.download(run_id, "", tmp_path / "whole")
    assert files_under(whole / "model") == files_under(source)


async def test_upload_rejects_traversal(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x")
    for bad in ("../escape", "/abs", "a/../../b", "c:/windows", "a\\b"):
        with pytest.raises(ValidationException):
            await client.artifacts.upload_file(run_id, source, bad)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    (folder / "link.txt").symlink_to(outside)
    with pytest.raises(ValidationException, match="symlink"):
        await client.artifacts.upload_dir(run_id, folder)
    assert await client.artifacts.list(run_id) == []


async def test_upload_follows_links_inside(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "real.txt").write_text("real")
    (folder / "alias.txt").symlink_to(folder / "sub" / "real.txt")
    (folder / "subdir-link").symlink_to(folder / "sub")
    uploaded = await client.artifacts.upload_dir(run_id, folder)
    assert sorted(uploaded) == ["alias.txt", "sub/real.txt"]


async def test_download_rejects_traversal(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x")
    await client.artifacts.upload_file(run_id, source, "dir")
    out = tmp_path / "out"
    for bad in ("../f.txt", "/etc/passwd", "dir/../../x"):
        with pytest.raises(ValidationException):
            await client.artifacts.download(run_id, bad, out)
    assert not out.exists()

    # A folder inside the target that links elsewhere must not be written through.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "dir").symlink_to(elsewhere)
    with pytest.raises(ValidationException, match="outside"):
        await client.artifacts.download(run_id, "dir", out)
    assert list(elsewhere.iterdir()) == []


async def test_download_missing_file(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundException):
        await client.artifacts.download(run_id, "nope.txt", tmp_path)
    assert os.listdir(tmp_path) == []


async def test_upload_dir_rejects_hash_before_sending(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a-first.txt").write_text("sent first without the check")
    (folder / "b #1.txt").write_text("the proxy rejects this name")

    with pytest.raises(ValidationException, match="'#'"):
        await client.artifacts.upload_dir(run_id, folder)
    with pytest.raises(ValidationException, match="'#'"):
        await client.artifacts.upload_file(run_id, folder / "b #1.txt")
    (folder / "b #1.txt").rename(folder / "b%201.txt")
    with pytest.raises(ValidationException, match=r"stored as 'b 1\.txt'"):
        await client.artifacts.upload_dir(run_id, folder)

    assert await client.artifacts.list(run_id) == []


async def test_odd_names_round_trip(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    (folder / "sub dir").mkdir(parents=True)
    (folder / "sp ace ?&+=%.txt").write_text("odd")
    (folder / "sub dir" / "ünï ☃.txt").write_text("unicode")
    (folder / "empty.bin").write_bytes(b"")

    await client.artifacts.upload_dir(run_id, folder, "odd")
    target = await client.artifacts.download(run_id, "odd", tmp_path / "out")

    assert files_under(target) == files_under(folder)
    assert (target / "empty.bin").stat().st_size == 0


async def test_cancelled_download_leaves_nothing(
    mlflow_server_url: str, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(8 << 20))
    # One connection, so a request slot that a cancelled download kept would
    # block the list call below.
    async with AsyncMaestroClient(
        mlflow_uri=mlflow_server_url, max_concurrency=1
    ) as client:
        await client.artifacts.upload_file(run_id, source)
        out = tmp_path / "out"

        async def wait_for_part() -> None:
            while not any(out.glob(".big.bin.*.part")):  # noqa: ASYNC110
                await asyncio.sleep(0.001)

        download = asyncio.ensure_future(
            client.artifacts.download(run_id, "big.bin", out)
        )
        watcher = asyncio.ensure_future(wait_for_part())
        await asyncio.wait({download, watcher}, return_when=asyncio.FIRST_COMPLETED)
        assert not download.done()
        download.cancel()
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await download

        leftovers = [p.name for p in out.rglob("*")] if out.exists() else []
        assert leftovers == []
        listing = await asyncio.wait_for(client.artifacts.list(run_id), timeout=10)
        assert [entry.path for entry in listing] == ["big.bin"]


async def test_upload_rejects_backslash_before_sending(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    # A backslash is legal in a POSIX file name and the proxy would store it,
    # but listings reject it, so its whole folder would become unlistable.
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a-first.txt").write_text("sent first without the check")
    (folder / "b\\c.txt").write_text("a backslash in the name")

    with pytest.raises(ValidationException, match="backslash"):
        await client.artifacts.upload_dir(run_id, folder)
    with pytest.raises(ValidationException, match="backslash"):
        await client.artifacts.upload_file(run_id, folder / "b\\c.txt")
    with pytest.raises(ValidationException, match="backslash"):
        await client.artifacts.upload_file(run_id, folder / "a-first.txt", "x\\y")

    assert await client.artifacts.list(run_id) == []
    await client.artifacts.upload_file(run_id, folder / "a-first.txt", "kept")
    listed = await client.artifacts.list(run_id, "kept")
    assert [entry.path for entry in listed] == ["kept/a-first.txt"]


async def test_upload_rejects_space_edged_segments(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    # MLflow's listing strips leading spaces, so such files would not list.
    source = tmp_path / "f.txt"
    source.write_text("x")
    for folder in (" lead", "trail ", "   ", "ok/ inner", "ok/inner /deep", "a\tb"):
        with pytest.raises(ValidationException, match="rename") as caught:
            await client.artifacts.upload_file(run_id, source, folder)
        assert repr(folder)[1:-1] in str(caught.value)

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a-first.txt").write_text("sent first without the check")
    (tree / "b.txt ").write_text("a trailing space")
    with pytest.raises(ValidationException, match="whitespace"):
        await client.artifacts.upload_dir(run_id, tree)
    with pytest.raises(ValidationException, match="whitespace"):
        await client.artifacts.upload_file(run_id, tree / "b.txt ")

    assert await client.artifacts.list(run_id) == []


async def test_space_edged_names_from_mlflow(
    mlflow_server_url: str,
    client: AsyncMaestroClient,
    run_id: str,
    tmp_path: Path,
) -> None:
    # MLflow's own client uploads these names; listing and downloading them
    # must find every file.
    mlflow = pytest.importorskip("mlflow")
    official = mlflow.MlflowClient(tracking_uri=mlflow_server_url)
    source = tmp_path / "src"
    source.mkdir()
    (source / "x.txt").write_text("lead")
    (source / "   ").write_text("spaces only")
    (source / "b.txt ").write_text("trailing")
    uploads = [
        ("x.txt", " lead"),
        ("x.txt", "   "),
        ("b.txt ", "ok"),
        ("   ", "ok"),
        ("x.txt", "ok/ inner"),
    ]
    for name, folder in uploads:
        await asyncio.to_thread(
            official.log_artifact, run_id, str(source / name), folder
        )
    expected = {
        " lead/x.txt": "lead",
        "   /x.txt": "lead",
        "ok/b.txt ": "trailing",
        "ok/   ": "spaces only",
        "ok/ inner/x.txt": "lead",
    }

    listed = await client.artifacts.list(run_id, recursive=True)
    assert sorted(a.path for a in listed if not a.is_dir) == sorted(expected)
    lead = await client.artifacts.list(run_id, " lead")
    assert [a.path for a in lead] == [" lead/x.txt"]
    spaces = await client.artifacts.list(run_id, "   ")
    assert [a.path for a in spaces] == ["   /x.txt"]

    whole = await client.artifacts.download(run_id, "", tmp_path / "whole")
    downloaded = {
        p.relative_to(whole).as_posix(): p.read_text()
        for p in whole.rglob("*")
        if p.is_file()
    }
    assert downloaded == expected
    single = await client.artifacts.download(run_id, " lead", tmp_path / "single")
    assert (single / "x.txt").read_text() == "lead"


async def test_download_rejects_local_obstacles(
    client: AsyncMaestroClient, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    (source / "model").mkdir(parents=True)
    (source / "model" / "weights.bin").write_bytes(b"weights")
    await client.artifacts.upload_dir(run_id, source)

    # An unknown run would raise RunNotFoundException if a request were sent.
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    with pytest.raises(ValidationException, match="is not a directory") as caught:
        await client.artifacts.download("0" * 32, "", a_file)
    assert str(a_file) in str(caught.value)

    blocked_file = tmp_path / "blocked-file"
    (blocked_file / "model" / "weights.bin").mkdir(parents=True)
    with pytest.raises(ValidationException, match="folder is in the way") as caught:
        await client.artifacts.download(run_id, "model", blocked_file)
    assert "weights.bin" in str(caught.value)

    blocked_folder = tmp_path / "blocked-folder"
    blocked_folder.mkdir()
    (blocked_folder / "model").write_text("a file where the folder goes")
    with pytest.raises(ValidationException, match="file is in the way") as caught:
        await client.artifacts.download(run_id, "", blocked_folder)
    assert str(blocked_folder / "model") in str(caught.value)
    assert (blocked_folder / "model").read_text() == "a file where the folder goes"


async def test_artifacts_reject_wrong_types(
    client: AsyncMaestroClient, tmp_path: Path
) -> None:
    # The run and the model do not exist, so a request that was sent would
    # raise an MLflowException.
    missing_run = "0" * 32
    source = tmp_path / "f.txt"
    source.write_text("x")
    artifacts = client.artifacts
    calls = {
        "list path dict": lambda: artifacts.list(missing_run, {"a": 1}),  # type: ignore[arg-type]
        "list recursive str": lambda: artifacts.list(missing_run, recursive="yes"),  # type: ignore[arg-type]
        "list run_id int": lambda: artifacts.list(5),  # type: ignore[arg-type]
        "list run_id empty": lambda: artifacts.list(""),
        "upload_file local None": lambda: artifacts.upload_file(missing_run, None),  # type: ignore[arg-type]
        "upload_file local int": lambda: artifacts.upload_file(missing_run, 5),  # type: ignore[arg-type]
        "upload_file path list": lambda: artifacts.upload_file(
            missing_run,
            source,
            ["a"],  # type: ignore[arg-type]
        ),
        "upload_dir local None": lambda: artifacts.upload_dir(missing_run, None),  # type: ignore[arg-type]
        "upload_dir concurrency str": lambda: artifacts.upload_dir(
            missing_run,
            tmp_path,
            max_concurrency="x",  # type: ignore[arg-type]
        ),
        "upload_dir concurrency nan": lambda: artifacts.upload_dir(
            missing_run,
            tmp_path,
            max_concurrency=float("nan"),  # type: ignore[arg-type]
        ),
        "upload_dir concurrency bool": lambda: artifacts.upload_dir(
            missing_run, tmp_path, max_concurrency=True
        ),
        "upload_dir concurrency 0": lambda: artifacts.upload_dir(
            missing_run, tmp_path, max_concurrency=0
        ),
        "download dst None": lambda: artifacts.download(missing_run, "x", None),  # type: ignore[arg-type]
        "download path int": lambda: artifacts.download(missing_run, 3, tmp_path),  # type: ignore[arg-type]
        "download concurrency str": lambda: artifacts.download(
            missing_run,
            "x",
            tmp_path,
            max_concurrency="x",  # type: ignore[arg-type]
        ),
        "list_model_artifacts path dict": lambda: client.models.list_model_artifacts(
            "no-such-model",
            1,
            path={"a": 1},  # type: ignore[arg-type]
        ),
        "list_model_artifacts path traversal": lambda: (
            client.models.list_model_artifacts("no-such-model", 1, path="../x")
        ),
    }
    for label, call in calls.items():
        try:
            await call()
        except ValidationException as exc:
            # A server's INVALID_PARAMETER_VALUE is a ValidationException too.
            assert not isinstance(exc, MLflowException), f"{label}: {exc!r}"
        except Exception as exc:
            pytest.fail(f"{label}: raised {exc!r}, not ValidationException")
        else:
            pytest.fail(f"{label}: raised nothing")
