"""Integration tests of ``client.models`` against the session's real MLflow server.

Every name carries the `unique` suffix because the server is shared by tests.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from maestro_ml_async import (
    AlreadyExistsException,
    AsyncMaestroClient,
    InvalidParameterException,
    ModelNotFoundException,
    ModelVersionNotFoundException,
    RunNotFoundException,
    ValidationException,
)
from maestro_ml_async.testing.mlflow_server import LocalMlflowServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

API = "/api/2.0/mlflow"
PROMPT_TAG = {"key": "mlflow.prompt.is_prompt", "value": "true"}


@pytest.fixture
async def raw(mlflow_server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for setting up what the SDK does not write."""
    async with httpx.AsyncClient(base_url=mlflow_server_url + API) as http:
        yield http


async def post(raw: httpx.AsyncClient, endpoint: str, body: dict[str, Any]) -> Any:
    response = await raw.post(endpoint, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def make_run(raw: httpx.AsyncClient, unique: str) -> dict[str, Any]:
    experiment = await post(raw, "experiments/create", {"name": f"registry-{unique}"})
    created = await post(
        raw, "runs/create", {"experiment_id": experiment["experiment_id"]}
    )
    info: dict[str, Any] = created["run"]["info"]
    return info


async def test_model_lifecycle(client: AsyncMaestroClient, unique: str) -> None:
    models = client.models
    name = f"lifecycle-{unique}"

    created = await models.create(name, description="first", tags={"team": "a"})
    assert created.name == name
    assert created.tags == {"team": "a"}
    assert created.creation_timestamp is not None
    assert created.creation_timestamp.tzinfo is not None
    with pytest.raises(AlreadyExistsException):
        await models.create(name)

    updated = await models.update(name, description="second")
    assert updated.description == "second"
    await models.set_tag(name, "stage-owner", "ml ops")
    await models.delete_tag(name, "team")
    await models.delete_tag(name, "never-set")
    assert (await models.get(name)).tags == {"stage-owner": "ml ops"}

    v1 = await models.create_version(name, "s3://bucket/model/1", tags={"k": "1"})
    v2 = await models.create_version(name, f"models:/{name}/1", description="copy")
    v3 = await models.create_version(name, "s3://bucket/model/3")
    assert [v1.version, v2.version, v3.version] == ["1", "2", "3"]
    assert v1.status == "READY"
    assert v1.tags == {"k": "1"}
    assert v2.description == "copy"
    assert v1.run_id is None

    await models.set_version_tag(name, 1, "validated", "true")
    await models.delete_version_tag(name, "1", "k")
    assert (await models.get_version(name, "1")).tags == {"validated": "true"}
    changed = await models.update_version(name, 3, "third")
    assert changed.description == "third"
    assert await models.get_version_download_uri(name, 1) == "s3://bucket/model/1"

    # Stages: archive_existing_versions moves the old Production version away.
    staged = await models.transition_version_stage(name, 1, "staging")
    assert staged.current_stage == "Staging"
    await models.transition_version_stage(name, 2, "PRODUCTION")
    await models.transition_version_stage(
        name, 3, "Production", archive_existing_versions=True
    )
    assert (await models.get_version(name, 2)).current_stage == "Archived"
    model = await models.get(name)
    assert model.production_version is not None
    assert model.production_version.version == "3"
    assert model.staging_version is not None
    assert model.staging_version.version == "1"
    assert model.latest_version is not None
    assert model.latest_version.version == "3"
    latest = await models.get_latest_versions(name, ["production"])
    assert [v.version for v in latest] == ["3"]

    # Aliases: set, move, delete.
    await models.set_alias(name, "champion", 1)
    await models.set_alias(name, "champion", 2)
    await models.set_alias(name, "challenger", "3")
    assert (await models.get(name)).aliases == {"champion": "2", "challenger": "3"}
    by_alias = await models.get_version_by_alias(name, "champion")
    assert by_alias.version == "2"
    assert "champion" in by_alias.aliases
    await models.delete_alias(name, "champion")
    with pytest.raises(ModelVersionNotFoundException):
        await models.get_version_by_alias(name, "champion")

    ordered = await models.search_versions(
        f"name = '{name}'", order_by=["version_number DESC"]
    )
    assert [v.version for v in ordered] == ["3", "2", "1"]
    tagged = await models.search_versions(
        f"name = '{name}' AND tags.validated = 'true'"
    )
    assert [v.version for v in tagged] == ["1"]

    await models.delete_version(name, 3)
    with pytest.raises(ModelVersionNotFoundException):
        await models.get_version(name, 3)

    renamed = await models.rename(name, name + "-renamed")
    assert renamed.name == name + "-renamed"
    with pytest.raises(ModelNotFoundException):
        await models.get(name)
    await models.delete(name + "-renamed")
    with pytest.raises(ModelNotFoundException):
        await models.get(name + "-renamed")


async def test_version_and_alias_errors(
    client: AsyncMaestroClient, unique: str
) -> None:
    name = f"errors-{unique}"
    await client.models.create(name)
    await client.models.create_version(name, "s3://bucket/e")

    with pytest.raises(ModelVersionNotFoundException):
        await client.models.get_version(name, 99)
    with pytest.raises(ModelVersionNotFoundException):
        await client.models.set_alias(name, "prod", 99)
    with pytest.raises(ModelVersionNotFoundException):
        await client.models.get_version_by_alias(name, "nope")
    with pytest.raises(ModelNotFoundException):
        await client.models.create_version(f"missing-{unique}", "s3://bucket/e")

    await client.models.delete(name)


async def test_concurrent_set_alias_new(caplog: pytest.LogCaptureFixture) -> None:
    """Twenty set_alias calls that add one alias at once all succeed.

    The test holds a write lock on the server's SQLite file while the calls
    arrive. Each call then reads that the alias is missing and waits at its
    insert, so after the lock is released every call but the first fails on
    the alias table's primary key unless the client retries. The server is
    the test's own, because the lock stops every write to it.
    """
    caplog.set_level(logging.INFO, logger="maestro_ml_async.resources.models")
    with LocalMlflowServer() as server:
        async with AsyncMaestroClient(mlflow_uri=server.url, max_retries=2) as client:
            name = "alias-race"
            await client.models.create(name)
            versions = []
            for index in range(1, 21):
                created = await client.models.create_version(
                    name, f"s3://bucket/race/{index}"
                )
                versions.append(created.version)

            database = sqlite3.connect(server.root / "mlflow.db", isolation_level=None)
            try:
                database.execute("BEGIN IMMEDIATE")
                calls = [
                    asyncio.create_task(client.models.set_alias(name, "champ", v))
                    for v in versions
                ]
                # MLflow's SQLite busy timeout is 20 s (MLflow 3.17), so the
                # waiting inserts outlast this hold.
                await asyncio.sleep(3)
                database.execute("COMMIT")
            finally:
                database.close()
            results = await asyncio.gather(*calls, return_exceptions=True)

            errors = [r for r in results if isinstance(r, BaseException)]
            assert errors == []
            current = await client.models.get_version_by_alias(name, "champ")
            assert current.version in versions
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert retries, "no set_alias call met the concurrent insert"


async def test_search_filters_and_order(
    client: AsyncMaestroClient, unique: str
) -> None:
    prefix = f"search-{unique}-"
    for suffix, color in (("a", "red"), ("b", "blue"), ("c", "red")):
        await client.models.create(prefix + suffix, tags={"color": color})
    await client.models.set_tag(prefix + "a", "extra key", "x")

    descending = await client.models.search(
        f"name LIKE '{prefix}%'", order_by="name DESC"
    )
    assert [m.name for m in descending] == [prefix + "c", prefix + "b", prefix + "a"]
    red = await client.models.search(
        f"name LIKE '{prefix}%' AND tags.color = 'red'", order_by=["name ASC"]
    )
    assert [m.name for m in red] == [prefix + "a", prefix + "c"]
    spaced = await client.models.search(
        f"tags.`extra key` = 'x' AND name LIKE '{prefix}%'"
    )
    assert [m.name for m in spaced] == [prefix + "a"]
    await client.models.update(prefix + "b", description="touched last")
    recent = await client.models.search(
        f"name ILIKE '{prefix.upper()}%'", order_by=["last_updated_timestamp DESC"]
    )
    assert recent[0].name == prefix + "b"

    await client.bulk_map(client.models.delete, [prefix + s for s in "abc"])


async def test_pagination_over_many_models(
    client: AsyncMaestroClient, unique: str
) -> None:
    prefix = f"page-{unique}-"
    names = [f"{prefix}{index:03d}" for index in range(120)]
    created = await client.bulk_map(client.models.create, names, raise_on_error=True)
    assert len(created) == 120

    pager = client.models.search(f"name LIKE '{prefix}%'", page_size=50)
    first = await pager.page()
    second = await pager.page(first.next_page_token)
    third = await pager.page(second.next_page_token)
    assert [len(first.items), len(second.items), len(third.items)] == [50, 50, 20]
    assert third.next_page_token is None

    streamed = [model.name async for model in pager]
    assert streamed == names
    capped = await client.models.search(
        f"name LIKE '{prefix}%'", max_results=70, page_size=50
    )
    assert [m.name for m in capped] == names[:70]
    listed = {m.name for m in await client.models.list(page_size=1000)}
    assert set(names) <= listed

    deleted = await client.bulk_map(client.models.delete, names)
    assert deleted.ok
    assert await client.models.search(f"name LIKE '{prefix}%'") == []


@pytest.mark.parametrize(
    "label",
    [
        "with space",
        "trailing ",
        " leading",
        "a+b",
        "a#b",
        "100%",
        "näme ✓ 模型",
        "q&x=y?",
    ],
)
async def test_special_names_round_trip(
    client: AsyncMaestroClient, unique: str, label: str
) -> None:
    name = f"{unique} {label}"

    created = await client.models.create(name, description=label)
    fetched = await client.models.get(name)
    version = await client.models.create_version(name, "s3://bucket/special")
    await client.models.set_alias(name, "current", version.version)
    aliased = await client.models.get_version_by_alias(name, "current")
    found = await client.models.search_versions(f"name = '{name}'")

    assert created.name == name
    assert fetched.name == name
    assert fetched.description == label
    assert aliased.name == name
    assert [v.name for v in found] == [name]
    await client.models.delete(name)
    with pytest.raises(ModelNotFoundException):
        await client.models.get(name)


async def test_slash_names_rejected(client: AsyncMaestroClient, unique: str) -> None:
    with pytest.raises(ValidationException):
        await client.models.create(f"a/{unique}")

    # The name goes in the query string, so it reaches the server's name check
    # whole instead of the router returning 404 for an unknown path.
    with pytest.raises(ValidationException) as caught:
        await client.models.get(f"team/{unique}")
    assert isinstance(caught.value, InvalidParameterException)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert f"team/{unique}" in caught.value.message


async def test_concurrent_create_version(
    client: AsyncMaestroClient, unique: str
) -> None:
    name = f"concurrent-{unique}"
    await client.models.create(name)

    created = await asyncio.gather(
        *(client.models.create_version(name, f"s3://bucket/c/{i}") for i in range(10))
    )

    assert sorted(int(v.version) for v in created) == list(range(1, 11))
    assert len({v.source for v in created}) == 10
    listed = await client.models.search_versions(f"name = '{name}'")
    assert len(listed) == 10
    await client.models.delete(name)


async def test_prompts_hidden(
    client: AsyncMaestroClient, raw: httpx.AsyncClient, unique: str
) -> None:
    prompt = f"prompt-{unique}"
    model = f"prompt-neighbour-{unique}"
    await post(raw, "registered-models/create", {"name": prompt, "tags": [PROMPT_TAG]})
    await post(
        raw,
        "model-versions/create",
        {
            "name": prompt,
            "source": "dummy-source",
            "tags": [PROMPT_TAG, {"key": "mlflow.prompt.text", "value": "Hi {{x}}"}],
        },
    )
    await client.models.create(model)
    run = await make_run(raw, unique)

    names = [
        m.name for m in await client.models.search(f"name LIKE 'prompt-%{unique}'")
    ]
    assert names == [model]
    assert prompt not in {m.name async for m in client.models.list()}
    assert await client.models.search_versions(f"name = '{prompt}'") == []
    prompt_filter = f"name = '{prompt}' AND tags.`{PROMPT_TAG['key']}` = 'true'"
    searched = await client.models.search(prompt_filter)
    assert [m.name for m in searched] == [prompt]
    searched_versions = await client.models.search_versions(prompt_filter)
    assert [v.name for v in searched_versions] == [prompt]
    with pytest.raises(ModelNotFoundException):
        await client.models.get(prompt)
    with pytest.raises(ModelVersionNotFoundException):
        await client.models.get_version(prompt, 1)
    with pytest.raises(ModelNotFoundException):
        await client.models.delete(prompt)
    with pytest.raises(ModelNotFoundException):
        await client.models.register(run["run_id"], "model", prompt)

    still_there = await raw.get("registered-models/get", params={"name": prompt})
    assert still_there.status_code == 200
    await raw.request("DELETE", "registered-models/delete", json={"name": prompt})
    await client.models.delete(model)


async def test_register_from_run(
    client: AsyncMaestroClient,
    raw: httpx.AsyncClient,
    mlflow_server_url: str,
    unique: str,
) -> None:
    run = await make_run(raw, unique)
    run_id = run["run_id"]
    now = int(time.time() * 1000)
    for step, value in ((0, 0.5), (1, 0.75)):
        metric = {"run_id": run_id, "key": "auc", "value": value, "timestamp": now}
        await post(raw, "runs/log-metric", {**metric, "step": step})
    await post(
        raw, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"}
    )
    relative = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
    upload = await raw.put(
        f"{mlflow_server_url}/api/2.0/mlflow-artifacts/artifacts/{relative}/model/MLmodel",
        content=b"flavors: {}\n",
    )
    assert upload.status_code == 200, upload.text

    name = f"registered-{unique}"
    versions = await asyncio.gather(
        *(
            client.models.register(run_id, "model", name, tags={"n": i})
            for i in range(3)
        )
    )

    assert sorted(v.version for v in versions) == ["1", "2", "3"]
    assert all(v.source == run["artifact_uri"] + "/model" for v in versions)
    assert all(v.run_id == run_id for v in versions)
    metrics = await client.models.get_model_metrics(name, 1)
    assert metrics.metrics == {"auc": 0.75}
    assert metrics.steps == {"auc": 1}
    assert metrics.params == {"lr": "0.1"}
    assert metrics.run_id == run_id
    files = await client.models.list_model_artifacts(name, 1)
    assert [(f.path, f.is_dir, f.file_size) for f in files] == [
        ("model/MLmodel", False, 12)
    ]
    root = await client.models.list_model_artifacts(name, 1, path="")
    assert [(f.path, f.is_dir) for f in root] == [("model", True)]

    with pytest.raises(RunNotFoundException):
        await client.models.register("0" * 32, "model", name)
    no_run = await client.models.create_version(name, "s3://bucket/no-run")
    with pytest.raises(RunNotFoundException):
        await client.models.get_model_metrics(name, no_run.version)
    await client.models.delete(name)


async def test_bulk_registry_helpers(client: AsyncMaestroClient, unique: str) -> None:
    names = [f"bulk-{unique}-{i}" for i in range(3)]
    await client.bulk_map(client.models.create, names, raise_on_error=True)
    pairs = [(name, 1) for name in names]
    await client.bulk_map(
        lambda name: client.models.create_version(name, "s3://bucket/bulk"), names
    )

    fetched = await client.models.get_many([*names, f"absent-{unique}"])
    tagged = await client.models.set_version_tags(pairs, "checked", "yes")
    moved = await client.models.transition_versions(pairs, "staging")
    versions = await client.models.get_versions([*pairs, (names[0], 5)])

    assert [getattr(m, "name", None) for m in fetched] == [*names, None]
    assert isinstance(fetched[3], ModelNotFoundException)
    assert tagged.ok
    assert [getattr(v, "current_stage", None) for v in moved] == ["Staging"] * 3
    assert [v.tags.get("checked") for v in versions.values] == ["yes"] * 3
    assert isinstance(versions[3], ModelVersionNotFoundException)
    await client.bulk_map(client.models.delete, names)


async def test_watch_reports_new_version(
    client: AsyncMaestroClient, unique: str
) -> None:
    name = f"watched-{unique}"
    await client.models.create(name)
    events = client.models.watch(name, poll_interval=0.05)

    async def first_event() -> Any:
        async for event in events:
            return event
        return None

    waiter = asyncio.create_task(first_event())
    await asyncio.sleep(0.2)
    await client.models.create_version(name, "s3://bucket/watched")
    event = await asyncio.wait_for(waiter, timeout=10)
    await events.aclose()  # type: ignore[attr-defined]

    assert event.model_name == name
    assert event.version == "1"
    assert event.type.value in ("VERSION_CREATED", "VERSION_READY")
    await client.models.delete(name)


async def test_tag_key_rules_checked_before_sending(
    client: AsyncMaestroClient, unique: str
) -> None:
    name = f"keys-{unique}"
    with pytest.raises(ValidationException, match="invalid"):
        await client.models.create(name, tags={"k?": "v"})
    with pytest.raises(ModelNotFoundException):
        await client.models.get(name)

    await client.models.create(name)
    version = await client.models.create_version(name, "s3://bucket/model")
    for bad_key in ("k?", "a//b", "x/"):
        calls = [
            client.models.set_tag(name, bad_key, "v"),
            client.models.set_version_tag(name, version.version, bad_key, "v"),
            client.models.create_version(name, "s3://b/m", tags={bad_key: "v"}),
        ]
        for call in calls:
            with pytest.raises(ValidationException, match="invalid") as caught:
                await call
            # The server's own rejection would be an InvalidParameterException.
            assert type(caught.value) is ValidationException
    versions = await client.models.search_versions(f"name = '{name}'")
    assert [item.version for item in versions] == [version.version]


async def test_long_tag_values_round_trip(
    client: AsyncMaestroClient, unique: str
) -> None:
    # MLflow 3.17 accepts registry tag values of up to 100,000 characters.
    name = f"long-tags-{unique}"
    longest = "x" * 100_000
    await client.models.create(name, tags={"created": longest})
    await client.models.set_tag(name, "set", longest)
    version = await client.models.create_version(
        name, "s3://bucket/model", tags={"created": longest}
    )
    await client.models.set_version_tag(name, version.version, "set", longest)

    model = await client.models.get(name)
    assert model.tags == {"created": longest, "set": longest}
    read = await client.models.get_version(name, version.version)
    assert read.tags == {"created": longest, "set": longest}

    too_long = longest + "x"
    calls = [
        client.models.set_tag(name, "over", too_long),
        client.models.set_version_tag(name, version.version, "over", too_long),
        client.models.create_version(name, "s3://b/m", tags={"over": too_long}),
    ]
    for call in calls:
        with pytest.raises(ValidationException, match="100000") as caught:
            await call
        # The server's own rejection would be an InvalidParameterException.
        assert type(caught.value) is ValidationException
    versions = await client.models.search_versions(f"name = '{name}'")
    assert [item.version for item in versions] == [version.version]


@pytest.mark.parametrize(
    ("resource", "error"),
    [("models", ModelNotFoundException), ("runs", RunNotFoundException)],
)
async def test_not_found_message_cuts_long_name(
    client: AsyncMaestroClient, resource: str, error: type[Exception]
) -> None:
    name = "n" * 10_000

    with pytest.raises(error) as caught:
        await getattr(client, resource).get(name)

    shown = str(caught.value)
    assert len(shown) < 500
    assert "n" * 70 + "..." in shown
    assert "characters)" in shown
    assert name in caught.value.message  # type: ignore[attr-defined]
