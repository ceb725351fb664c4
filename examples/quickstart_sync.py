"""Quick start with the sync client, for scripts and notebooks.

The same calls as ``quickstart_async.py`` without ``await``: `MaestroClient` runs
the async client on an event loop of its own. With ``MAESTRO_ML_MLFLOW_URI``
set it uses that server. Otherwise it starts a local MLflow server (data under
``.maestro-local/mlflow``) and stops it at the end.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from maestro_ml_async import MaestroClient
from maestro_ml_async.demo import mlflow_uri_configured


@contextlib.contextmanager
def connect() -> Iterator[MaestroClient]:
    """Yield a client on the configured server, or on a local one."""
    if mlflow_uri_configured():
        with MaestroClient() as client:
            yield client
        return
    from maestro_ml_async.testing.mlflow_server import LocalMlflowServer

    with (
        LocalMlflowServer(".maestro-local/mlflow") as server,
        MaestroClient(mlflow_uri=server.url) as client,
    ):
        yield client


def quickstart(client: MaestroClient) -> dict[str, object]:
    """Log a run, register a version, give it an alias; return a summary."""
    suffix = uuid.uuid4().hex[:6]
    experiment = client.experiments.get_or_create(f"quickstart-sync-{suffix}")
    run = client.runs.create(experiment.experiment_id, run_name="baseline")
    for step, accuracy in enumerate([0.71, 0.84, 0.9]):
        client.runs.log_metric(run.info.run_id, "accuracy", accuracy, step=step)
    client.runs.terminate(run.info.run_id, "FINISHED")

    name = f"quickstart-sync-model-{suffix}"
    client.models.create(name, description="created by quickstart_sync.py")
    version = client.models.create_version(name, source="s3://models/qs/1")
    client.models.set_alias(name, "champion", version.version)
    model = client.models.get(name)
    history = list(client.runs.get_metric_history(run.info.run_id, "accuracy"))
    client.models.delete(name)
    return {
        "run": run.info.run_id,
        "accuracy history": [point.value for point in history],
        "model": model.name,
        "aliases": model.aliases,
    }


def main() -> dict[str, object]:
    """Run the quick start and print its summary."""
    with connect() as client:
        summary = quickstart(client)
    for key, value in summary.items():
        print(f"{key}: {value}")
    return summary


if __name__ == "__main__":
    main()
