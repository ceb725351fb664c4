"""Every program in ``examples/``, run on the real MLflow server and the fake cluster.

The examples read their platform from the environment, so each test points
``MAESTRO_ML_*`` at the session's MLflow server and, where a cluster is
needed, at a fake cluster started for the test.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import pytest_asyncio

from maestro_ml_async.testing import FakeCluster

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
API = "/api/2.0/mlflow"


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def mlflow_env(mlflow_server_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MAESTRO_ML_MLFLOW_URI", mlflow_server_url)
    monkeypatch.setenv("MAESTRO_ML_MAX_RETRIES", "2")
    return mlflow_server_url


@pytest_asyncio.fixture
async def platform_env(
    mlflow_env: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeCluster]:
    async with FakeCluster(tick=0.01, bookmark_interval=0.2) as cluster:
        monkeypatch.setenv("MAESTRO_ML_KUBE_CONFIG_PATH", cluster.kubeconfig_path)
        monkeypatch.setenv("MAESTRO_ML_KUBE_CONTEXT", cluster.context)
        monkeypatch.setenv("MAESTRO_ML_NAMESPACE", "ml-platform")
        yield cluster


async def test_quickstart_async(mlflow_env: str):
    summary = await load("quickstart_async").main()
    assert summary["versions"] == ["1", "2"]
    assert summary["champion"] == "2"
    assert summary["final loss"] == pytest.approx(0.3)
    assert len(summary["search"]) == 1


async def test_quickstart_sync(mlflow_env: str):
    # MaestroClient blocks its caller, so it runs on a worker thread here.
    summary = await asyncio.to_thread(load("quickstart_sync").main)
    assert summary["accuracy history"] == [0.71, 0.84, 0.9]
    assert summary["aliases"] == {"champion": "1"}


async def test_bulk_operations(mlflow_env: str, capsys: pytest.CaptureFixture[str]):
    summary = await load("bulk_operations").main()
    assert summary == {
        "created": 40,
        "read": 40,
        "not found": 1,
        "tagged": 40,
        "deleted": 40,
        "errors": 0,
    }
    printed = capsys.readouterr().out
    assert "create: 40/40" in printed
    assert "get: 41/41" in printed


async def test_watch_many_jobs(platform_env: FakeCluster):
    summary = await load("watch_many_jobs").main()
    assert summary["submitted"] == 8
    assert summary["succeeded"] == 8
    assert summary["events"]["succeeded"] >= 8
    # One stream for watch_jobs and one shared watch for all eight waits.
    assert platform_env.stats.requests_by_resource["watch jobs"] <= 2


async def test_canary_rollout(platform_env: FakeCluster):
    states = await load("canary_rollout").main()
    assert len(states) == 4
    assert states[0].startswith("deployed: v1")
    assert "10%" in states[1]
    assert "90%" in states[1]
    assert states[2].startswith("promoted: v2")
    assert "100%" in states[2]
    assert states[3].startswith("rolled back: v1")


async def test_fastapi_app(mlflow_env: str, unique: str):
    module = load("fastapi_app")
    app = module.app
    name = f"fastapi-{unique}"
    async with httpx.AsyncClient(base_url=mlflow_env + API) as rest:
        created = await rest.post("registered-models/create", json={"name": name})
        assert created.status_code == 200
        await rest.post(
            "model-versions/create", json={"name": name, "source": "s3://b/f"}
        )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as http,
    ):
        found = await http.get(f"/models/{name}")
        assert found.status_code == 200
        assert found.json()["latest_version"] == "1"
        missing = await http.get(f"/models/missing-{unique}")
        assert missing.status_code == 404
        tagged = await http.post(
            f"/models/{name}/tags", json={"key": "k", "value": "v"}
        )
        assert tagged.status_code == 200
        # Invalid names are the caller's mistake (422), not a server error.
        empty = await http.post("/models/batch", json={"names": [name, ""]})
        assert empty.status_code == 422, empty.text
        assert "empty" in empty.json()["detail"]
        colon = await http.get("/models/bad:name")
        assert colon.status_code == 422, colon.text

        finished: dict[str, float] = {}

        async def timed(label: str, call) -> httpx.Response:  # type: ignore[no-untyped-def]
            response = await call
            finished[label] = time.monotonic()
            return response

        names = [name] * 150 + [f"gone-{unique}"]
        batch_call = http.post("/models/batch", json={"names": names})

        async def health_later() -> httpx.Response:
            await asyncio.sleep(0.2)
            return await http.get("/health")

        batch, health = await asyncio.gather(
            timed("batch", batch_call), timed("health", health_later())
        )
        assert batch.status_code == 200
        assert batch.json()["missing"] == [f"gone-{unique}"]
        assert health.status_code == 200
        assert finished["health"] < finished["batch"]


def test_train_wine_script(mlflow_server_url: str, tmp_path: Path):
    experiment = f"train-wine-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server_url,
        "MLFLOW_EXPERIMENT_NAME": experiment,
        "MAESTRO_JOB_NAME": "test-job",
    }
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_wine.py"), "--epochs=4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    marked = [
        line for line in completed.stdout.splitlines() if line.startswith("run_id=")
    ]
    assert len(marked) == 1, completed.stdout
    run_id = marked[0].removeprefix("run_id=")
    with httpx.Client(base_url=mlflow_server_url + API) as rest:
        run = rest.get("runs/get", params={"run_id": run_id}).json()["run"]
        history = rest.get(
            "metrics/get-history",
            params={"run_id": run_id, "metric_key": "val_accuracy"},
        ).json()["metrics"]
        artifacts = rest.get(
            "artifacts/list", params={"run_id": run_id, "path": "model"}
        ).json()["files"]
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["epochs"] == "4"
    assert sorted(point["step"] for point in history) == [0, 1, 2, 3]
    assert {"key": "maestro.job_name", "value": "test-job"} in run["data"]["tags"]
    assert "model/MLmodel" in {item["path"] for item in artifacts}
