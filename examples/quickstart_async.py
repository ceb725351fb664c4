"""Quick start with the async client: registry and tracking in a few calls.

Run it as ``python examples/quickstart_async.py``. With ``MAESTRO_ML_MLFLOW_URI``
set it uses that server. Otherwise it starts a local MLflow server and the fake
cluster (data under ``.maestro-local/``) and stops them at the end.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.demo import open_platform


async def quickstart(client: AsyncMaestroClient) -> dict[str, object]:
    """Log a run, register two versions, promote one with an alias; return a summary."""
    suffix = uuid.uuid4().hex[:6]
    experiment = await client.experiments.get_or_create(f"quickstart-{suffix}")
    run = await client.runs.create(experiment.experiment_id, run_name="baseline")
    run_id = run.info.run_id
    for step, loss in enumerate([0.9, 0.5, 0.3]):
        await client.runs.log_metric(run_id, "loss", loss, step=step)
    await client.runs.log_param(run_id, "learning_rate", 0.01)
    await client.runs.terminate(run_id, "FINISHED")

    name = f"quickstart-model-{suffix}"
    model = await client.models.create(name, tags={"team": "risk"})
    first = await client.models.create_version(name, source="s3://models/q/1")
    second = await client.models.create_version(name, source="s3://models/q/2")
    await client.models.set_alias(name, "champion", second.version)
    champion = await client.models.get_version_by_alias(name, "champion")

    found = [m.name async for m in client.models.search(f"name LIKE '{name}%'")]
    finished = await client.runs.get(run_id)
    losses = [m.value for m in finished.data.metrics if m.key == "loss"]
    await client.models.delete(model.name)
    return {
        "experiment": experiment.name,
        "run": run_id,
        "final loss": losses[0] if losses else None,
        "versions": [first.version, second.version],
        "champion": champion.version,
        "search": found,
    }


async def main() -> dict[str, object]:
    """Run the quick start on the configured or a local platform."""
    async with (
        open_platform(Path(".maestro-local"), "quickstart", 120) as platform,
        AsyncMaestroClient(config=platform.config) as client,
    ):
        summary = await quickstart(client)
    for key, value in summary.items():
        print(f"{key}: {value}")
    return summary


if __name__ == "__main__":
    asyncio.run(main())
