"""The ``maestro-ml jobs`` and ``deployments`` commands against the fake cluster.

Each command runs its own event loop, so the tests invoke the CLI on a worker
thread while the fake cluster serves from the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from maestro_ml_async.cli._app import app
from maestro_ml_async.testing import FakeCluster

API = "/api/2.0/mlflow"
ESC = "\x1b"


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    async with FakeCluster(tick=0.01, bookmark_interval=0.2) as fake:
        yield fake


def global_options(cluster: FakeCluster, mlflow_url: str) -> list[str]:
    return [
        "--mlflow-uri",
        mlflow_url,
        "--kubeconfig",
        cluster.kubeconfig_path,
        "--context",
        cluster.context,
        "--namespace",
        "ml-platform",
    ]


async def cli(cluster: FakeCluster, mlflow_url: str, *args: str) -> Any:
    """Run one command on a worker thread and return the click result."""
    argv = [*global_options(cluster, mlflow_url), *args]
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


@contextlib.asynccontextmanager
async def cli_process(
    cluster: FakeCluster, mlflow_url: str, *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run one command in a child process with piped output, and kill it at exit.

    A child process, unlike a worker thread, can be stopped when a command
    does not end on its own.
    """
    argv = [*global_options(cluster, mlflow_url), *args]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "maestro_ml_async.cli",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


async def first_line(process: asyncio.subprocess.Process) -> str:
    """Return the first stdout line, which must come while the command runs."""
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert process.returncode is None
    return line.decode()


async def create_model(mlflow_url: str, model: str, versions: int) -> None:
    async with httpx.AsyncClient(base_url=mlflow_url + API) as rest:
        await rest.post("registered-models/create", json={"name": model})
        for number in range(1, versions + 1):
            response = await rest.post(
                "model-versions/create",
                json={"name": model, "source": f"s3://bucket/{model}/{number}"},
            )
            response.raise_for_status()


def parsed(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr or result.stdout
    return json.loads(result.stdout)


async def test_jobs_submit_wait_get_list(
    cluster: FakeCluster, mlflow_server_url: str, unique: str
):
    name = f"cli-job-{unique}"
    submitted = parsed(
        await cli(
            cluster,
            mlflow_server_url,
            "jobs",
            "submit",
            name,
            "--framework",
            "sklearn",
            "--image",
            "python:3.11-slim",
            "--command",
            "python",
            "--param",
            "epochs=3",
            "--label",
            "team=risk",
            "--wait",
            "--timeout",
            "60",
            "-o",
            "json",
        )
    )
    assert submitted["status"] == "succeeded"
    assert submitted["labels"]["team"] == "risk"
    got = parsed(
        await cli(cluster, mlflow_server_url, "jobs", "get", name, "-o", "json")
    )
    assert got["kind"] == "Job"
    listed = parsed(
        await cli(
            cluster, mlflow_server_url, "jobs", "list", "-l", "team=risk", "-o", "json"
        )
    )
    assert [job["name"] for job in listed] == [name]
    table = await cli(cluster, mlflow_server_url, "jobs", "list")
    assert table.exit_code == 0, table.stderr
    assert "training jobs" in table.stdout


async def test_jobs_watch_and_logs(
    cluster: FakeCluster, mlflow_server_url: str, unique: str
):
    name = f"cli-watch-{unique}"
    submitted = await cli(
        cluster,
        mlflow_server_url,
        "jobs",
        "submit",
        name,
        "-f",
        "pytorch",
        "--image",
        "pytorch:2",
        "--command",
        "python",
    )
    assert submitted.exit_code == 0, submitted.stderr
    watched = await cli(cluster, mlflow_server_url, "jobs", "watch", name, "-o", "json")
    assert watched.exit_code == 0, watched.stderr
    states = [json.loads(line)["status"] for line in watched.stdout.splitlines()]
    assert states[-1] == "succeeded"
    logs = await cli(cluster, mlflow_server_url, "jobs", "logs", name, "--no-follow")
    assert logs.exit_code == 0, logs.stderr


async def test_jobs_watch_piped_lines(
    cluster: FakeCluster, mlflow_server_url: str, unique: str
):
    # Rich's live view draws nothing on a pipe until it stops, so a piped
    # watch must print a plain line for each change as it happens.
    from maestro_ml_async.testing import hang

    name = f"cli-piped-{unique}"
    cluster.scripts.set("jobs", name, hang())
    submitted = await cli(
        cluster,
        mlflow_server_url,
        "jobs",
        "submit",
        name,
        "-f",
        "custom",
        "--image",
        "busybox",
        "--command",
        "sleep",
    )
    assert submitted.exit_code == 0, submitted.stderr
    async with cli_process(cluster, mlflow_server_url, "jobs", "watch", name) as child:
        line = await first_line(child)
    assert name in line
    assert line.split()[-1] in ("created", "running")
    assert ESC not in line


@pytest.mark.parametrize("output", ["table", "json"])
async def test_jobs_watch_ctrl_c(
    cluster: FakeCluster, mlflow_server_url: str, unique: str, output: str
):
    from maestro_ml_async.testing import hang

    name = f"cli-sigint-{unique}"
    cluster.scripts.set("jobs", name, hang())
    submitted = await cli(
        cluster,
        mlflow_server_url,
        "jobs",
        "submit",
        name,
        "-f",
        "custom",
        "--image",
        "busybox",
        "--command",
        "sleep",
    )
    assert submitted.exit_code == 0, submitted.stderr
    args = ["jobs", "watch", name, "-o", output]
    async with cli_process(cluster, mlflow_server_url, *args) as child:
        await first_line(child)
        child.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 130
    assert stderr.decode().splitlines() == ["error: interrupted"]
    if output == "json":
        last = json.loads(stdout.decode().splitlines()[-1])
        assert last["error"]["exit_code"] == 130


async def test_jobs_failed_exit_code(
    cluster: FakeCluster, mlflow_server_url: str, unique: str
):
    from maestro_ml_async.testing import fail

    name = f"cli-failed-{unique}"
    cluster.scripts.set("jobs", name, fail(exit_code=4))
    submit = ["jobs", "submit", name, "-f", "custom", "--image", "busybox"]
    submitted = await cli(
        cluster, mlflow_server_url, *submit, "--wait", "--timeout", "60"
    )
    assert submitted.exit_code == 1
    assert len(submitted.stderr.splitlines()) == 1
    assert "failed" in submitted.stderr

    watched = await cli(cluster, mlflow_server_url, "jobs", "watch", name, "-o", "json")
    assert watched.exit_code == 1
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert lines[-2]["status"] == "failed"
    assert f"job {name} failed" in lines[-1]["error"]["message"]


async def test_jobs_logs_escape_controls(
    cluster: FakeCluster, mlflow_server_url: str, unique: str
):
    from maestro_ml_async.testing import succeed

    name = f"cli-ansi-{unique}"
    text = f"loss {ESC}[31m0.5{ESC}[0m {ESC}]0;title\x07"
    cluster.scripts.set("jobs", name, succeed(logs=[text]))
    submitted = await cli(
        cluster,
        mlflow_server_url,
        "jobs",
        "submit",
        name,
        "-f",
        "custom",
        "--image",
        "busybox",
        "--command",
        "true",
        "--wait",
        "--timeout",
        "60",
    )
    assert submitted.exit_code == 0, submitted.stderr

    shown = await cli(cluster, mlflow_server_url, "jobs", "logs", name, "--no-follow")
    assert shown.exit_code == 0, shown.stderr
    assert ESC not in shown.stdout
    assert "\x07" not in shown.stdout
    assert "loss \\x1b[31m0.5\\x1b[0m \\x1b]0;title\\x07" in shown.stdout

    raw = await cli(
        cluster, mlflow_server_url, "jobs", "logs", name, "--no-follow", "-o", "json"
    )
    assert raw.exit_code == 0, raw.stderr
    lines = [json.loads(line)["line"] for line in raw.stdout.splitlines()]
    assert lines == [text]


async def test_jobs_get_missing(cluster: FakeCluster, mlflow_server_url: str):
    result = await cli(cluster, mlflow_server_url, "jobs", "get", "no-such-job")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


async def test_jobs_cancel(cluster: FakeCluster, mlflow_server_url: str, unique: str):
    from maestro_ml_async.testing import hang

    name = f"cli-cancel-{unique}"
    cluster.scripts.set("jobs", name, hang())
    submitted = await cli(
        cluster,
        mlflow_server_url,
        "jobs",
        "submit",
        name,
        "-f",
        "custom",
        "--image",
        "busybox",
        "--command",
        "sleep",
    )
    assert submitted.exit_code == 0, submitted.stderr
    cancelled = await cli(cluster, mlflow_server_url, "jobs", "cancel", name)
    assert cancelled.exit_code == 0, cancelled.stderr
    got = parsed(
        await cli(cluster, mlflow_server_url, "jobs", "get", name, "-o", "json")
    )
    assert got["status"] == "suspended"


async def test_deployments_lifecycle(
    cluster: FakeCluster, mlflow_server_url: str, unique: str
):
    model = f"cli-served-{unique}"
    await create_model(mlflow_server_url, model, 2)
    name = f"served-{unique}"
    created = parsed(
        await cli(
            cluster,
            mlflow_server_url,
            "deployments",
            "create",
            name,
            "-m",
            model,
            "-v",
            "1",
            "--strategy",
            "canary",
            "--canary-percent",
            "25",
            "--timeout",
            "60",
            "-o",
            "json",
        )
    )
    assert created["model_version"] == "1"
    got = parsed(
        await cli(cluster, mlflow_server_url, "deployments", "get", name, "-o", "json")
    )
    assert got["url"]
    listed = parsed(
        await cli(
            cluster, mlflow_server_url, "deployments", "list", "-m", model, "-o", "json"
        )
    )
    assert [item["name"] for item in listed] == [name]
    scaled = parsed(
        await cli(
            cluster,
            mlflow_server_url,
            "deployments",
            "scale",
            name,
            "2",
            "--max-replicas",
            "3",
            "-o",
            "json",
        )
    )
    assert scaled["min_replicas"] == 2
    assert scaled["max_replicas"] == 3
    watched = await cli(
        cluster,
        mlflow_server_url,
        "deployments",
        "watch",
        name,
        "--until-ready",
        "-o",
        "json",
    )
    assert watched.exit_code == 0, watched.stderr
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert events[-1]["deployment"]["name"] == name
    promoted = await cli(cluster, mlflow_server_url, "deployments", "promote", name)
    assert promoted.exit_code == 0, promoted.stderr
    deleted = await cli(cluster, mlflow_server_url, "deployments", "delete", name)
    assert deleted.exit_code == 0, deleted.stderr
    gone = await cli(cluster, mlflow_server_url, "deployments", "get", name)
    assert gone.exit_code == 1
    assert len(gone.stderr.strip().splitlines()) == 1


async def test_deployments_watch_piped_lines(
    cluster: FakeCluster, mlflow_server_url: str, unique: str
):
    model = f"cli-watched-{unique}"
    await create_model(mlflow_server_url, model, 1)
    name = f"watched-{unique}"
    created = await cli(
        cluster,
        mlflow_server_url,
        "deployments",
        "create",
        name,
        "-m",
        model,
        "-v",
        "1",
        "--no-wait",
    )
    assert created.exit_code == 0, created.stderr
    async with cli_process(
        cluster, mlflow_server_url, "deployments", "watch", name
    ) as child:
        line = await first_line(child)
    columns = line.split("  ")
    assert columns[1] == "ADDED"
    assert columns[2] == "v1"
    assert ESC not in line


async def test_deployments_watch_missing(cluster: FakeCluster, mlflow_server_url: str):
    async with cli_process(
        cluster, mlflow_server_url, "deployments", "watch", "no-such-deployment"
    ) as child:
        stdout, stderr = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 1
    assert stdout == b""
    lines = stderr.decode().splitlines()
    assert len(lines) == 1
    assert "no-such-deployment" in lines[0]
    assert "not found" in lines[0]


async def test_deployments_missing_version(
    cluster: FakeCluster, mlflow_server_url: str, unique: str
):
    result = await cli(
        cluster,
        mlflow_server_url,
        "deployments",
        "create",
        f"d-{unique}",
        "-m",
        f"no-model-{unique}",
        "-v",
        "1",
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
