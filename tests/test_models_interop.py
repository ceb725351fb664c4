"""Interop with MLflow's own client: each side reads back what the other wrote.

`mlflow.MlflowClient` is synchronous, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    ModelNotFoundException,
    ModelVersionNotFoundException,
)

mlflow = pytest.importorskip("mlflow")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def official(mlflow_server_url: str) -> Iterator[Any]:
    """MLflow's client bound to the session's server, for registry and tracking."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield mlflow.MlflowClient(
            tracking_uri=mlflow_server_url, registry_uri=mlflow_server_url
        )


async def test_official_client_reads_sdk_writes(
    client: AsyncMaestroClient, official: Any, unique: str
) -> None:
    name = f"interop sdk ü+#% {unique} "
    await client.models.create(name, description="written by the SDK", tags={"a": "1"})
    await client.models.create_version(name, "s3://bucket/one", tags={"v": "one"})
    await client.models.create_version(name, "s3://bucket/two", description="second")
    await client.models.transition_version_stage(name, 1, "production")
    await client.models.set_alias(name, "champion", 2)
    await client.models.set_version_tag(name, 2, "validated", "yes")

    model = await asyncio.to_thread(official.get_registered_model, name)
    first = await asyncio.to_thread(official.get_model_version, name, "1")
    second = await asyncio.to_thread(
        official.get_model_version_by_alias, name, "champion"
    )
    found = await asyncio.to_thread(official.search_model_versions, f"name = '{name}'")

    assert model.name == name
    assert model.description == "written by the SDK"
    assert model.tags == {"a": "1"}
    assert model.aliases == {"champion": "2"}
    assert first.current_stage == "Production"
    assert first.tags == {"v": "one"}
    assert first.source == "s3://bucket/one"
    assert second.version == "2"
    assert second.description == "second"
    assert second.tags == {"validated": "yes"}
    assert sorted(v.version for v in found) == ["1", "2"]
    await client.models.delete(name)


async def test_sdk_reads_official_writes(
    client: AsyncMaestroClient, official: Any, unique: str
) -> None:
    name = f"interop official ✓ {unique}"

    def write() -> None:
        official.create_registered_model(
            name, tags={"team": "b"}, description="written by MlflowClient"
        )
        official.create_model_version(
            name, "s3://bucket/x", tags={"k": "v"}, description="first version"
        )
        official.create_model_version(name, "s3://bucket/y")
        official.transition_model_version_stage(name, "2", "Staging")
        official.set_registered_model_alias(name, "prod", "1")
        official.set_model_version_tag(name, "2", "checked", "true")

    await asyncio.to_thread(write)

    model = await client.models.get(name)
    first = await client.models.get_version(name, 1)
    by_alias = await client.models.get_version_by_alias(name, "prod")
    versions = await client.models.search_versions(
        f"name = '{name}'", order_by=["version_number ASC"]
    )

    assert model.name == name
    assert model.description == "written by MlflowClient"
    assert model.tags == {"team": "b"}
    assert model.aliases == {"prod": "1"}
    assert model.staging_version is not None
    assert model.staging_version.version == "2"
    assert first.tags == {"k": "v"}
    assert first.description == "first version"
    assert first.current_stage == "None"
    assert by_alias.version == "1"
    assert [v.version for v in versions] == ["1", "2"]
    assert versions[1].tags == {"checked": "true"}
    assert versions[1].current_stage == "Staging"
    await asyncio.to_thread(official.delete_registered_model, name)
    with pytest.raises(ModelNotFoundException):
        await client.models.get(name)


async def test_both_clients_hide_official_prompts(
    client: AsyncMaestroClient, official: Any, unique: str
) -> None:
    prompt = f"interop-prompt-{unique}"
    model = f"interop-model-{unique}"
    await asyncio.to_thread(official.register_prompt, prompt, "Hello {{name}}")
    await client.models.create(model)
    query = f"name LIKE 'interop-%-{unique}'"

    ours = [m.name for m in await client.models.search(query)]
    theirs = await asyncio.to_thread(official.search_registered_models, query)

    assert ours == [model]
    assert [m.name for m in theirs] == [model]
    with pytest.raises(ModelNotFoundException):
        await client.models.get(prompt)
    with pytest.raises(ModelVersionNotFoundException):
        await client.models.get_version(prompt, 1)
    await asyncio.to_thread(official.delete_prompt_version, prompt, "1")
    await asyncio.to_thread(official.delete_prompt, prompt)
    await client.models.delete(model)
