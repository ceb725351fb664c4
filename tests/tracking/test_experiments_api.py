"""Experiments against the real MLflow server."""

from __future__ import annotations

import asyncio

import pytest

from maestro_ml_async import (
    AlreadyExistsException,
    AsyncMaestroClient,
    ExperimentNotFoundException,
    ValidationException,
)
from maestro_ml_async.types.tracking import ViewType


async def test_create_get_and_get_by_name(
    client: AsyncMaestroClient, unique: str
) -> None:
    name = f"exp {unique} é/ü 'quoted'"
    created = await client.experiments.create(name, tags={"team": "ml", "n": 3})
    assert created.name == name
    assert created.tags == {"team": "ml", "n": "3"}
    assert created.lifecycle_stage == "active"
    assert created.creation_time is not None
    assert created.creation_time.tzinfo is not None
    fetched = await client.experiments.get(created.experiment_id)
    assert fetched.experiment_id == created.experiment_id
    by_name = await client.experiments.get_by_name(name)
    assert by_name is not None
    assert by_name.experiment_id == created.experiment_id


async def test_missing_experiment(client: AsyncMaestroClient, unique: str) -> None:
    assert await client.experiments.get_by_name(f"missing-{unique}") is None
    with pytest.raises(ExperimentNotFoundException):
        await client.experiments.get("987654321")
    with pytest.raises(ExperimentNotFoundException):
        await client.experiments.delete("987654321")


async def test_duplicate_create_raises(client: AsyncMaestroClient, unique: str) -> None:
    await client.experiments.create(f"dup-{unique}")
    with pytest.raises(AlreadyExistsException):
        await client.experiments.create(f"dup-{unique}")


async def test_invalid_names_rejected_locally(client: AsyncMaestroClient) -> None:
    with pytest.raises(ValidationException):
        await client.experiments.create("   ")
    with pytest.raises(ValidationException):
        await client.experiments.create("x" * 501)


async def test_rename_tags_delete_restore(
    client: AsyncMaestroClient, unique: str
) -> None:
    experiment = await client.experiments.create(f"life-{unique}")
    exp_id = experiment.experiment_id
    await client.experiments.rename(exp_id, f"life-renamed-{unique}")
    await client.experiments.set_tag(exp_id, "stage", "dev")
    await client.experiments.set_tag(exp_id, "gone", "soon")
    await client.experiments.delete_tag(exp_id, "gone")
    fetched = await client.experiments.get(exp_id)
    assert fetched.name == f"life-renamed-{unique}"
    assert fetched.tags.get("stage") == "dev"
    assert "gone" not in fetched.tags

    await client.experiments.delete(exp_id)
    deleted = await client.experiments.get(exp_id)
    assert deleted.lifecycle_stage == "deleted"
    active = await client.experiments.search(f"name = 'life-renamed-{unique}'")
    assert active == []
    only_deleted = await client.experiments.search(
        f"name = 'life-renamed-{unique}'", view_type=ViewType.DELETED_ONLY
    )
    assert [e.experiment_id for e in only_deleted] == [exp_id]
    await client.experiments.restore(exp_id)
    assert (await client.experiments.get(exp_id)).lifecycle_stage == "active"


async def test_search_pages_through_all(
    client: AsyncMaestroClient, unique: str
) -> None:
    names = [f"page-{unique}-{i:02d}" for i in range(7)]
    for name in names:
        await client.experiments.create(name, tags={"group": unique})
    pager = client.experiments.search(
        f"name LIKE 'page-{unique}-%'", order_by=["name ASC"], page_size=2
    )
    found = [experiment.name async for experiment in pager]
    assert found == names
    first = await pager.page()
    assert len(first.items) == 2
    assert first.next_page_token is not None
    limited = await client.experiments.search(
        f"tags.group = '{unique}'", max_results=3, page_size=2
    )
    assert len(limited) == 3


async def test_get_or_create_concurrent_returns_one(
    client: AsyncMaestroClient, unique: str
) -> None:
    name = f"race-{unique}"
    results = await asyncio.gather(
        *(client.experiments.get_or_create(name) for _ in range(20))
    )
    ids = {experiment.experiment_id for experiment in results}
    assert len(ids) == 1
    matching = await client.experiments.search(
        f"name = '{name}'", view_type=ViewType.ALL
    )
    assert len(matching) == 1


async def test_get_or_create_deleted_name_explains(
    client: AsyncMaestroClient, unique: str
) -> None:
    from maestro_ml_async import MLflowException

    name = f"deleted-{unique}"
    experiment = await client.experiments.create(name)
    await client.experiments.delete(experiment.experiment_id)

    with pytest.raises(MLflowException) as caught:
        await client.experiments.get_or_create(name)
    assert caught.value.error_code == "INVALID_STATE"
    assert f"experiments.restore({experiment.experiment_id!r})" in str(caught.value)

    await client.experiments.restore(experiment.experiment_id)
    restored = await client.experiments.get_or_create(name)
    assert restored.experiment_id == experiment.experiment_id


async def test_search_order_by_string_and_positional(
    client: AsyncMaestroClient, unique: str
) -> None:
    names = [f"order-{unique}-{i}" for i in range(3)]
    for name in names:
        await client.experiments.create(name)

    pager = client.experiments.search(
        f"name LIKE 'order-{unique}-%'", "name DESC", ViewType.ACTIVE_ONLY
    )
    assert [experiment.name async for experiment in pager] == names[::-1]
    with pytest.raises(ValidationException, match="order_by"):
        client.experiments.search(order_by=[" "])
    with pytest.raises(ValidationException, match="filter_string"):
        client.experiments.search(5)  # type: ignore[arg-type]
    with pytest.raises(ValidationException, match="page_size"):
        client.experiments.search(page_size=True)
    with pytest.raises(ValidationException, match="max_results"):
        client.experiments.search(max_results=-1)


async def test_tag_key_rules_checked_before_sending(
    client: AsyncMaestroClient, unique: str
) -> None:
    with pytest.raises(ValidationException, match="invalid"):
        await client.experiments.create(f"keys-{unique}", tags={"k?": "v"})
    assert await client.experiments.get_by_name(f"keys-{unique}") is None

    experiment = await client.experiments.create(f"keys-{unique}")
    with pytest.raises(ValidationException, match="invalid") as caught:
        await client.experiments.set_tag(experiment.experiment_id, "a//b", "v")
    # The server's own rejection would be an InvalidParameterException.
    assert type(caught.value) is ValidationException


async def test_long_tag_values_round_trip(
    client: AsyncMaestroClient, unique: str
) -> None:
    # MLflow 3.17 accepts experiment tag values of up to 20,000 characters.
    longest = "x" * 20_000
    experiment = await client.experiments.create(
        f"long-tags-{unique}", tags={"created": longest}
    )
    await client.experiments.set_tag(experiment.experiment_id, "set", longest)

    read = await client.experiments.get(experiment.experiment_id)
    assert read.tags["created"] == longest
    assert read.tags["set"] == longest

    with pytest.raises(ValidationException, match="20000") as caught:
        await client.experiments.set_tag(
            experiment.experiment_id, "over", longest + "x"
        )
    # The server's own rejection would be an InvalidParameterException.
    assert type(caught.value) is ValidationException
    with pytest.raises(ValidationException, match="20000"):
        await client.experiments.create(
            f"long-tags-over-{unique}", tags={"created": longest + "x"}
        )
    assert await client.experiments.get_by_name(f"long-tags-over-{unique}") is None
