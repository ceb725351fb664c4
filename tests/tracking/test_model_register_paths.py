"""Artifact path checks of `models.register` against a real server's run artifacts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    ModelNotFoundException,
    NotFoundException,
    ValidationException,
)


@pytest.fixture
async def run_with_model(
    client: AsyncMaestroClient, unique: str, tmp_path: Path
) -> tuple[str, str]:
    """Create a run whose artifacts contain ``model/MLmodel``; return its id and URI."""
    experiment = await client.experiments.create(f"register-paths-{unique}")
    run = await client.runs.create(experiment.experiment_id)
    mlmodel = tmp_path / "MLmodel"
    mlmodel.write_text("flavors: {}\n")
    await client.artifacts.upload_file(run.run_id, mlmodel, "model")
    return run.run_id, run.info.artifact_uri


@pytest.mark.parametrize(
    "artifact_path", ["/model", "model/../../other", "../model", "C:/model", ""]
)
async def test_register_rejects_unsafe_path(
    client: AsyncMaestroClient,
    run_with_model: tuple[str, str],
    unique: str,
    artifact_path: str,
) -> None:
    run_id, _ = run_with_model
    name = f"unsafe-{unique}"

    with pytest.raises(ValidationException):
        await client.models.register(run_id, artifact_path, name)

    with pytest.raises(ModelNotFoundException):
        await client.models.get(name)


async def test_register_missing_path_raises(
    client: AsyncMaestroClient, run_with_model: tuple[str, str], unique: str
) -> None:
    run_id, _ = run_with_model
    name = f"missing-{unique}"

    with pytest.raises(NotFoundException) as caught:
        await client.models.register(run_id, "no/such/model", name)

    assert "'no/such/model'" in str(caught.value)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(ModelNotFoundException):
        await client.models.get(name)


@pytest.mark.parametrize(
    ("artifact_path", "suffix"),
    [("model", "/model"), ("model/", "/model"), ("model/MLmodel", "/model/MLmodel")],
)
async def test_register_existing_path(
    client: AsyncMaestroClient,
    run_with_model: tuple[str, str],
    unique: str,
    artifact_path: str,
    suffix: str,
) -> None:
    run_id, artifact_uri = run_with_model
    name = f"existing-{unique}"

    version = await client.models.register(run_id, artifact_path, name)

    assert version.source == artifact_uri + suffix
    assert version.run_id == run_id
    await client.models.delete(name)


async def test_create_version_from_logged_model(
    client: AsyncMaestroClient, unique: str
) -> None:
    experiment = await client.experiments.create(f"logged-source-{unique}")
    run = await client.runs.create(experiment.experiment_id)
    logged = await client.logged_models.create(
        experiment.experiment_id, name="model", source_run_id=run.run_id
    )
    name = f"from-logged-{unique}"
    await client.models.create(name)

    version = await client.models.create_version(name, f"models:/{logged.model_id}")

    assert version.source == f"models:/{logged.model_id}"
    assert version.run_id == run.run_id
    await client.models.delete(name)


async def test_register_falls_back_to_logged_model(
    client: AsyncMaestroClient, unique: str
) -> None:
    # MLflow 3's log_model(name="model") stores the model outside the run's
    # artifacts, as a logged model whose source run is the run.
    experiment = await client.experiments.create(f"register-logged-{unique}")
    run = await client.runs.create(experiment.experiment_id)
    other_run = await client.runs.create(experiment.experiment_id)
    await client.logged_models.create(
        experiment.experiment_id, name="model", source_run_id=other_run.run_id
    )
    await client.logged_models.create(
        experiment.experiment_id, name="other", source_run_id=run.run_id
    )
    logged = await client.logged_models.create(
        experiment.experiment_id, name="model", source_run_id=run.run_id
    )
    name = f"logged-{unique}"

    version = await client.models.register(run.run_id, "model", name)

    assert version.source == f"models:/{logged.model_id}"
    assert version.run_id == run.run_id
    await client.models.delete(name)


async def test_register_picks_latest_logged_model(
    client: AsyncMaestroClient, unique: str
) -> None:
    experiment = await client.experiments.create(f"register-steps-{unique}")
    run = await client.runs.create(experiment.experiment_id)
    early = await client.logged_models.create(
        experiment.experiment_id, name="model", source_run_id=run.run_id
    )
    late = await client.logged_models.create(
        experiment.experiment_id, name="model", source_run_id=run.run_id
    )
    name = f"steps-{unique}"

    with pytest.raises(ValidationException, match="which is the latest"):
        await client.models.register(run.run_id, "model", name)

    # The step decides, not the creation order.
    outputs = [
        {"model_id": late.model_id, "step": 2},
        {"model_id": early.model_id, "step": 7},
    ]
    await client._mlflow.call(
        "POST", "runs/outputs", json={"run_id": run.run_id, "models": outputs}
    )
    version = await client.models.register(run.run_id, "model", name)

    assert version.source == f"models:/{early.model_id}"
    await client.models.delete(name)


async def test_logged_model_version_lists_its_files(
    client: AsyncMaestroClient, mlflow_server_url: str, unique: str
) -> None:
    experiment = await client.experiments.create(f"logged-files-{unique}")
    run = await client.runs.create(experiment.experiment_id)
    await client.runs.log_metric(run.run_id, "accuracy", 0.9)
    logged = await client.logged_models.create(
        experiment.experiment_id, name="model", source_run_id=run.run_id
    )
    # No SDK call writes a logged model's files, so they go through the proxy.
    root = logged.artifact_uri.removeprefix("mlflow-artifacts:").strip("/")
    proxy = f"{mlflow_server_url}/api/2.0/mlflow-artifacts/artifacts/{root}"
    async with httpx.AsyncClient() as http:
        for path, data in [("MLmodel", b"flavors: {}\n"), ("data/w.bin", b"abc")]:
            response = await http.put(f"{proxy}/{path}", content=data)
            assert response.status_code == 200
    name = f"logged-files-{unique}"
    version = await client.models.register(run.run_id, "model", name)

    top = await client.models.list_model_artifacts(name, version.version)
    nested = await client.models.list_model_artifacts(name, version.version, "data")
    metrics = await client.models.get_model_metrics(name, version.version)

    assert [(a.path, a.is_dir) for a in top] == [("MLmodel", False), ("data", True)]
    assert [(a.path, a.file_size) for a in nested] == [("data/w.bin", 3)]
    assert metrics.metrics == {"accuracy": 0.9}
    await client.models.delete(name)
