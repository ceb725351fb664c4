"""Code that uses the sync client; ``mypy --strict`` must accept it.

The module is type-checked by tests/test_sync_typing.py and never run.
"""

from __future__ import annotations

from collections.abc import Iterator

from maestro_ml_async import MaestroClient, Page
from maestro_ml_async._sync._adapters import Pager
from maestro_ml_async.types.models import Model, ModelVersion


def newest_production(client: MaestroClient) -> list[str]:
    production = [m.name for m in client.models.list() if m.production_version]
    model: Model = client.models.get("fraud-detector")
    version: ModelVersion = client.models.get_latest_versions("customer-churn")[0]
    return [*production, model.name, version.version]


def paging(client: MaestroClient) -> int:
    pager: Pager[Model] = client.models.search("name LIKE 'fraud%'", max_results=10)
    page: Page[Model] = pager.page()
    first: Model = pager[0]
    listed: list[Model] = pager.to_list()
    return len(pager) + len(page.items) + len(first.name) + len(listed)


def bulk(client: MaestroClient) -> list[str]:
    results = client.bulk_map(client.models.get, ["a", "b"], max_concurrency=2)
    return [model.name for model in results.values]


def streams(client: MaestroClient) -> Iterator[str]:
    job = client.training.get_job("train-1")
    for line in job.logs(follow=False):
        yield line.line
    finished = job.wait(timeout=60)
    yield finished.name


def lifecycle() -> None:
    with MaestroClient(mlflow_uri="http://127.0.0.1:5000") as client:
        client.models.transition_version_stage(
            name="fraud-detector",
            version="5",
            stage="Production",
            archive_existing_versions=True,
        )
    client.close()
