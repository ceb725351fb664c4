"""MLflow 3 logged models against the real server."""

from __future__ import annotations

import pytest

from maestro_ml_async import AsyncMaestroClient, NotFoundException, ValidationException
from maestro_ml_async.types.tracking import LoggedModelStatus


async def test_logged_model_lifecycle(client: AsyncMaestroClient, unique: str) -> None:
    experiment = await client.experiments.create(f"lm-{unique}")
    run = await client.runs.create(experiment.experiment_id)
    model = await client.logged_models.create(
        experiment.experiment_id,
        name="clf",
        model_type="sklearn",
        source_run_id=run.run_id,
        params={"depth": 3},
        tags={"stage": "dev"},
    )
    assert model.model_id.startswith("m-")
    assert model.status is LoggedModelStatus.PENDING
    assert model.params == {"depth": "3"}
    assert model.tags["stage"] == "dev"
    assert model.source_run_id == run.run_id
    assert model.creation_time is not None

    ready = await client.logged_models.finalize(model.model_id)
    assert ready.status is LoggedModelStatus.READY
    await client.logged_models.set_tags(model.model_id, {"stage": "prod", "extra": 1})
    await client.logged_models.delete_tag(model.model_id, "extra")
    fetched = await client.logged_models.get(model.model_id)
    assert fetched.tags["stage"] == "prod"
    assert "extra" not in fetched.tags

    for index in range(3):
        await client.logged_models.create(
            experiment.experiment_id, name=f"more-{index}"
        )
    found = await client.logged_models.search([experiment.experiment_id], page_size=2)
    assert len(found) == 4
    named = await client.logged_models.search(
        [experiment.experiment_id], "name = 'clf'"
    )
    assert [m.model_id for m in named] == [model.model_id]

    await client.logged_models.delete(model.model_id)
    with pytest.raises(NotFoundException):
        await client.logged_models.get(model.model_id)


async def test_finalize_needs_final_status(client: AsyncMaestroClient) -> None:
    with pytest.raises(ValidationException):
        await client.logged_models.finalize("m-1", LoggedModelStatus.PENDING)


async def test_finalize_accepts_short_status_names(
    client: AsyncMaestroClient, unique: str
) -> None:
    experiment = await client.experiments.create(f"lm-status-{unique}")
    first = await client.logged_models.create(experiment.experiment_id)
    second = await client.logged_models.create(experiment.experiment_id)

    ready = await client.logged_models.finalize(first.model_id, "ready")
    assert ready.status is LoggedModelStatus.READY
    failed = await client.logged_models.finalize(
        second.model_id, "LOGGED_MODEL_UPLOAD_FAILED"
    )
    assert failed.status is LoggedModelStatus.UPLOAD_FAILED
    with pytest.raises(ValidationException, match="status must be one of"):
        await client.logged_models.finalize(first.model_id, "done")


async def test_arguments_checked_before_sending(client: AsyncMaestroClient) -> None:
    models = client.logged_models
    with pytest.raises(ValidationException, match="experiment_id"):
        await models.create(None)  # type: ignore[arg-type]
    with pytest.raises(ValidationException, match="name"):
        await models.create("1", name="")
    with pytest.raises(ValidationException, match="experiment_ids"):
        models.search([])
    with pytest.raises(ValidationException, match="experiment_id"):
        models.search([None])  # type: ignore[list-item]
    with pytest.raises(ValidationException, match="page_size"):
        models.search(["1"], page_size=101)
    with pytest.raises(ValidationException, match="order_by"):
        models.search(["1"], order_by="creation_time")  # type: ignore[arg-type]
    with pytest.raises(ValidationException, match="field_name"):
        models.search(["1"], order_by=[{"ascending": True}])
    with pytest.raises(ValidationException, match="filter_string"):
        models.search(["1"], 7)  # type: ignore[arg-type]


async def test_search_single_int_id_and_order(
    client: AsyncMaestroClient, unique: str
) -> None:
    experiment = await client.experiments.create(f"lm-order-{unique}")
    for name in ("b", "a", "c"):
        await client.logged_models.create(experiment.experiment_id, name=name)

    found = await client.logged_models.search(
        int(experiment.experiment_id),
        order_by=[{"field_name": "name", "ascending": True}],
        max_results=2,
    )
    assert [model.name for model in found] == ["a", "b"]
