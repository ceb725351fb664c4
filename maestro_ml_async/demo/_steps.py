"""The demo steps, each an async function over one shared `DemoState`."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from maestro_ml_async import (
    AsyncMaestroClient,
    DeploymentException,
    KubernetesNotFoundException,
    TrainingException,
)

from ._view import DemoView

__all__ = ["DemoState", "deploy_and_predict", "register_and_promote", "submit", "watch"]

MODEL_NAME = "wine-classifier"
DEPLOYMENT_NAME = "wine-classifier"
ALIAS = "champion"
CANARY_PERCENT = 20
# NOTE: with the local runner the image is ignored. On a real cluster it needs
# Python with mlflow and scikit-learn installed.
DEFAULT_IMAGE = "python:3.11-slim"
# One wine sample (the first row of scikit-learn's wine data set, class 0).
SAMPLE = [
    14.23,
    1.71,
    2.43,
    15.6,
    127.0,
    2.8,
    3.06,
    0.28,
    2.29,
    5.64,
    1.04,
    3.92,
    1065.0,
]


@dataclass
class DemoState:
    """State shared by the steps: the client, the screen and the results so far."""

    client: AsyncMaestroClient
    view: DemoView
    script: Path
    image: str
    epochs: int
    epoch_delay: float
    timeout: float
    job_name: str = field(default_factory=lambda: f"wine-{uuid.uuid4().hex[:6]}")
    experiment_id: str = ""
    run_id: str = ""
    final_metrics: dict[str, float] = field(default_factory=dict)
    version: str = ""
    baseline_version: str = ""
    versions_tagged: int = 0
    deployment_url: str = ""
    traffic: str = ""
    canary_split: str = ""
    prediction: Any = None


async def submit(state: DemoState) -> str:
    """Step 1: create the experiment and submit the training job."""
    client = state.client
    name = client.config.experiment_name or "maestro-demo"
    experiment = await client.experiments.get_or_create(name)
    state.experiment_id = experiment.experiment_id
    job = await client.training.submit_job(
        state.job_name,
        "sklearn",
        state.image,
        code_path=state.script,
        params={"epochs": state.epochs, "epoch-delay": state.epoch_delay},
        labels={"app": "maestro-demo"},
    )
    state.view.set_job_status(job.status.value)
    return f"experiment {name!r} (id {experiment.experiment_id}), job {job.name}"


async def watch(state: DemoState) -> str:
    """Step 2: follow the job's status, logs and metrics at the same time."""
    logs = asyncio.create_task(_follow_logs(state))
    metrics = asyncio.create_task(_follow_metrics(state))
    try:
        job = None
        async for job in state.client.training.watch(state.job_name):
            state.view.set_job_status(job.status.value)
        if job is None or job.failure is not None or job.status.value != "succeeded":
            reason = job.failure.message if job and job.failure else "did not succeed"
            raise TrainingException(
                f"job {state.job_name} failed: {reason}", job_name=state.job_name
            )
        await asyncio.wait_for(asyncio.shield(logs), timeout=30)
        await asyncio.wait_for(asyncio.shield(metrics), timeout=60)
    finally:
        for task in (logs, metrics):
            task.cancel()
        await asyncio.gather(logs, metrics, return_exceptions=True)
    summary = ", ".join(f"{k}={v:.3f}" for k, v in sorted(state.final_metrics.items()))
    return f"run {state.run_id}: {summary}"


async def _follow_logs(state: DemoState) -> None:
    async for line in state.client.training.logs(state.job_name, follow=True):
        state.view.add_log_line(line.line)


async def _find_run(state: DemoState) -> str:
    """Poll the experiment until the job's run exists; return its id."""
    query = f"tags.`maestro.job_name` = '{state.job_name}'"
    while True:
        runs = await state.client.runs.search(
            [state.experiment_id], query, max_results=1
        )
        if runs:
            return runs[0].info.run_id
        await asyncio.sleep(0.5)


async def _follow_metrics(state: DemoState) -> None:
    state.run_id = await _find_run(state)
    async for metric in state.client.runs.watch_metrics(
        state.run_id, poll_interval=0.5
    ):
        state.view.metrics[metric.key] = (metric.step, metric.value)
        state.final_metrics[metric.key] = metric.value


async def register_and_promote(state: DemoState) -> str:
    """Step 3: register the version, promote it, and tag all versions in bulk.

    The run's majority-class baseline is registered first, so the trained
    version always has an older version to roll out next to.
    """
    models = state.client.models
    baseline = await models.register(
        state.run_id,
        "baseline",
        MODEL_NAME,
        tags={"job": state.job_name, "role": "baseline"},
        wait_timeout=state.timeout,
    )
    state.baseline_version = baseline.version
    version = await models.register(
        state.run_id,
        "model",
        MODEL_NAME,
        tags={"job": state.job_name},
        wait_timeout=state.timeout,
    )
    state.version = version.version
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        await models.transition_version_stage(MODEL_NAME, version.version, "Staging")
        await models.transition_version_stage(
            MODEL_NAME, version.version, "Production", archive_existing_versions=True
        )
    await models.set_alias(MODEL_NAME, ALIAS, version.version)

    everything = await models.search_versions(f"name = '{MODEL_NAME}'")
    pairs = [(MODEL_NAME, item.version) for item in everything]
    view = state.view
    task = view.progress.add_task("tagging all versions", total=len(pairs))
    view.show_progress = True

    def advance(done: int, total: int) -> None:
        view.progress.update(task, completed=done, total=total)

    results = await models.set_version_tags(
        pairs, "demo.validated", "true", on_progress=advance, raise_on_error=True
    )
    state.versions_tagged = len(results)
    return (
        f"baseline v{baseline.version}, trained v{version.version}: Staging -> "
        f"Production, alias {ALIAS!r}; tagged {len(results)} versions"
    )


async def deploy_and_predict(state: DemoState) -> str:
    """Step 4: serve the baseline, add the trained version as a canary, promote.

    Then send one sample to the served model.
    """
    deployments = state.client.deployment
    await _remove_previous_deployment(state)
    stable = await deployments.deploy(
        DEPLOYMENT_NAME,
        MODEL_NAME,
        model_version=state.baseline_version,
        strategy="canary",
        canary_traffic_percent=CANARY_PERCENT,
    )
    await stable.wait_ready(timeout=state.timeout)
    canary = await deployments.update(DEPLOYMENT_NAME, alias=ALIAS)
    canary = await deployments.wait_ready(
        DEPLOYMENT_NAME, timeout=state.timeout, min_generation=canary.generation
    )
    state.canary_split = _traffic(canary)
    promoted = await deployments.promote(DEPLOYMENT_NAME)
    promoted = await deployments.wait_ready(
        DEPLOYMENT_NAME, timeout=state.timeout, min_generation=promoted.generation
    )
    state.traffic = _traffic(promoted)
    state.deployment_url = promoted.url or ""
    state.prediction = await _predict(state.deployment_url, MODEL_NAME)
    return (
        f"canary v{state.version} next to baseline v{state.baseline_version} "
        f"({state.canary_split}); promoted; prediction {state.prediction}"
    )


async def _remove_previous_deployment(state: DemoState) -> None:
    """Delete the deployment that an earlier run left on a configured platform.

    A local platform starts empty, but a configured cluster keeps the earlier
    run's InferenceService, and creating it again would fail. A deployment of
    that name serving another model is not the demo's, so it is left alone.

    Raises:
        DeploymentException: The name serves a model other than the demo's.
    """
    deployments = state.client.deployment
    try:
        existing = await deployments.get_deployment(DEPLOYMENT_NAME)
    except KubernetesNotFoundException:
        return
    if existing.model_name != MODEL_NAME:
        raise DeploymentException(
            f"deployment {DEPLOYMENT_NAME!r} serves model {existing.model_name!r}, "
            f"not the demo's {MODEL_NAME!r}; delete it or run the demo in "
            "another namespace (MAESTRO_ML_NAMESPACE)",
            deployment_name=DEPLOYMENT_NAME,
        )
    await deployments.delete(DEPLOYMENT_NAME, missing_ok=True)
    # Deletion is asynchronous on a real cluster (finalizers, revisions), and
    # a create before it ends fails with a conflict. The step timeout bounds
    # this loop.
    while True:
        try:
            await deployments.get_deployment(DEPLOYMENT_NAME)
        except KubernetesNotFoundException:
            return
        await asyncio.sleep(0.5)


def _traffic(deployment: Any) -> str:
    return ", ".join(
        f"{target.percent}% {target.revision_name}" for target in deployment.traffic
    )


async def _predict(url: str, model_name: str) -> Any:
    """Send one sample to the served model and return its prediction.

    The fake cluster's local model server is MLflow's scoring server, which
    serves ``/invocations``; a real KServe InferenceService serves the Open
    Inference Protocol (v2) at ``/v2/models/<name>/infer``.
    """
    if not url:
        raise RuntimeError("the deployment has no URL")
    async with httpx.AsyncClient(timeout=60) as http:
        if url.startswith(("http://127.0.0.1", "http://localhost")):
            response = await http.post(url + "/invocations", json={"inputs": [SAMPLE]})
            response.raise_for_status()
            return response.json().get("predictions")
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, 13],
                    "datatype": "FP64",
                    "data": SAMPLE,
                }
            ]
        }
        response = await http.post(f"{url}/v2/models/{model_name}/infer", json=body)
        response.raise_for_status()
        outputs = response.json().get("outputs") or [{}]
        return outputs[0].get("data")
