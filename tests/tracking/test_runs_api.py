"""Runs, logging and metric history against the real MLflow server."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    InvalidParameterException,
    RunNotFoundException,
    ValidationException,
)
from maestro_ml_async.types.tracking import Metric, Param, RunStatus, RunTag, ViewType


@pytest.fixture
async def experiment_id(client: AsyncMaestroClient, unique: str) -> AsyncIterator[str]:
    experiment = await client.experiments.create(f"runs-{unique}")
    yield experiment.experiment_id


async def test_run_lifecycle(client: AsyncMaestroClient, experiment_id: str) -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    run = await client.runs.create(
        experiment_id, run_name="first run", tags={"owner": "me"}, start_time=start
    )
    assert run.info.status is RunStatus.RUNNING
    assert run.info.run_name == "first run"
    assert run.info.start_time == start
    assert run.data.tags["owner"] == "me"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")

    info = await client.runs.update(run.run_id, run_name="renamed")
    assert info.run_name == "renamed"
    end = start + timedelta(minutes=5)
    info = await client.runs.terminate(run.run_id, RunStatus.FAILED, end_time=end)
    assert info.status is RunStatus.FAILED
    assert info.end_time == end

    await client.runs.delete(run.run_id)
    assert (await client.runs.get(run.run_id)).info.lifecycle_stage == "deleted"
    active = await client.runs.search([experiment_id])
    assert active == []
    deleted = await client.runs.search([experiment_id], view_type=ViewType.DELETED_ONLY)
    assert [r.run_id for r in deleted] == [run.run_id]
    await client.runs.restore(run.run_id)
    assert (await client.runs.get(run.run_id)).info.lifecycle_stage == "active"


async def test_terminate_rejects_running(client: AsyncMaestroClient) -> None:
    with pytest.raises(ValidationException):
        await client.runs.terminate("abc", RunStatus.RUNNING)


async def test_missing_run(client: AsyncMaestroClient) -> None:
    with pytest.raises(RunNotFoundException):
        await client.runs.get("0" * 32)
    with pytest.raises(RunNotFoundException):
        await client.runs.log_metric("0" * 32, "loss", 1.0)


async def test_log_single_values(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    when = datetime(2026, 5, 1, tzinfo=timezone.utc)
    await client.runs.log_metric(run.run_id, "loss", 0.5, step=3, timestamp=when)
    await client.runs.log_metric(run.run_id, "loss", 0.25, step=4, timestamp=1_700_000)
    await client.runs.log_metric(run.run_id, "odd", math.nan)
    await client.runs.log_param(run.run_id, "lr", 0.01)
    await client.runs.log_param(run.run_id, "lr", "0.01")
    with pytest.raises(InvalidParameterException):
        await client.runs.log_param(run.run_id, "lr", "0.02")
    await client.runs.set_tag(run.run_id, "color", "blue")
    await client.runs.set_tag(run.run_id, "drop", "x")
    await client.runs.delete_tag(run.run_id, "drop")

    fetched = await client.runs.get(run.run_id)
    assert fetched.data.params == {"lr": "0.01"}
    assert fetched.data.tags["color"] == "blue"
    assert "drop" not in fetched.data.tags
    latest = fetched.data.latest_metrics
    assert latest["loss"].value == 0.25
    assert latest["loss"].step == 4
    assert math.isnan(latest["odd"].value)
    history = await client.runs.get_metric_history(run.run_id, "loss")
    assert [(m.step, m.timestamp_ms) for m in history] == [
        (4, 1_700_000),
        (3, int(when.timestamp() * 1000)),
    ]


async def test_log_batch_large_lands_whole(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    base = 1_750_000_000_000
    metrics: list[object] = []
    for step in range(5000):
        key = "loss" if step % 2 == 0 else "acc"
        if step % 3 == 0:
            metrics.append(
                Metric(key=key, value=step / 10, timestamp=base + step, step=step)
            )
        elif step % 3 == 1:
            metrics.append((key, step / 10, base + step, step))
        else:
            metrics.append(
                {"key": key, "value": step / 10, "timestamp": base + step, "step": step}
            )
    params = [Param(key=f"p{i:03d}", value=str(i)) for i in range(250)]
    tags = {f"t{i:03d}": "v" * 50 for i in range(150)}

    requests = await client.runs.log_batch(run.run_id, metrics, params, tags)  # type: ignore[arg-type]

    # 5,400 entities at 1000 per request at best.
    assert requests >= 6
    fetched = await client.runs.get(run.run_id)
    assert len(fetched.data.params) == 250
    assert fetched.data.params["p249"] == "249"
    user_tags = {k: v for k, v in fetched.data.tags.items() if k.startswith("t")}
    assert len(user_tags) == 150
    for key, parity in (("loss", 0), ("acc", 1)):
        history = await client.runs.get_metric_history(run.run_id, key, page_size=700)
        steps = [point.step for point in sorted(history, key=lambda m: m.sort_key)]
        assert steps == [s for s in range(5000) if s % 2 == parity]
        assert [p.step for p in history] == steps
        assert all(p.value == p.step / 10 for p in history)


async def test_log_batch_accepts_tag_objects_and_datetimes(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    when = datetime(2026, 3, 1, 12, 0, 0, 123000)  # naive: taken as UTC
    await client.runs.log_batch(
        run.run_id,
        metrics=[("m", 1.0, when, 7)],
        params={"a": 1},
        tags=[RunTag(key="k", value="v"), ("k2", "v2")],
    )
    history = await client.runs.get_metric_history(run.run_id, "m")
    assert history[0].timestamp == when.replace(tzinfo=timezone.utc)
    assert history[0].step == 7
    fetched = await client.runs.get(run.run_id)
    assert fetched.data.tags["k"] == "v"
    assert fetched.data.tags["k2"] == "v2"


async def test_log_batch_rejects_before_sending(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    with pytest.raises(ValidationException):
        await client.runs.log_batch(
            run.run_id, metrics=[("ok", 1.0)], params=[("p", "1"), ("p", "2")]
        )
    with pytest.raises(ValidationException):
        await client.runs.log_batch(run.run_id, metrics=[("flag", True)])
    with pytest.raises(ValidationException):
        await client.runs.log_batch(run.run_id, metrics=[("m", 1.0, -5)])
    with pytest.raises(ValidationException):
        await client.runs.log_batch(run.run_id, params={"big": "x" * 6001})
    fetched = await client.runs.get(run.run_id)
    assert fetched.data.metrics == []
    assert fetched.data.params == {}


async def test_search_filter_and_order(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    for index in range(5):
        run = await client.runs.create(experiment_id, run_name=f"r{index}")
        await client.runs.log_metric(run.run_id, "score", float(index))
    pager = client.runs.search(
        [experiment_id],
        "metrics.score >= 2",
        order_by=["metrics.score DESC"],
        page_size=2,
    )
    names = [run.info.run_name async for run in pager]
    assert names == ["r4", "r3", "r2"]


async def test_status_any_case_and_clear_errors(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)

    info = await client.runs.terminate(run.run_id, "killed")
    assert info.status is RunStatus.KILLED
    with pytest.raises(ValidationException, match="FINISHED, FAILED, KILLED"):
        await client.runs.terminate(run.run_id, "DONE")
    with pytest.raises(ValidationException, match="must be one of"):
        await client.runs.update(run.run_id, status="stopped")
    with pytest.raises(ValidationException, match="view_type"):
        client.runs.search([experiment_id], view_type="everything")
    with pytest.raises(ValidationException, match="view_type"):
        client.experiments.search(view_type="everything")


async def test_int64_bounds_checked_before_sending(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)

    with pytest.raises(ValidationException, match="64-bit"):
        await client.runs.log_metric(run.run_id, "m", 1.0, step=2**63)
    with pytest.raises(ValidationException, match="64-bit"):
        await client.runs.log_batch(run.run_id, metrics=[("m", 1.0, 2**63, 0)])
    with pytest.raises(ValidationException, match="value of param 'p'"):
        await client.runs.log_param(run.run_id, "p", "x" * 6001)
    await client.runs.log_metric(run.run_id, "m", 1.0, step=2**63 - 1)

    fetched = await client.runs.get(run.run_id)
    assert [metric.step for metric in fetched.data.metrics] == [2**63 - 1]


async def test_search_accepts_single_int_id(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)

    found = await client.runs.search(int(experiment_id)).to_list()
    assert [item.run_id for item in found] == [run.run_id]
    with pytest.raises(ValidationException, match="experiment_ids"):
        client.runs.search(1.5)  # type: ignore[arg-type]


async def test_microsecond_timestamps_stay_readable(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    # Timestamps in microseconds by mistake: MLflow stores them (int64), and
    # they lie past the year 9999, beyond what datetime can hold.
    first, second = 1_700_000_000_000_000, 1_700_000_000_000_001
    await client.runs.log_batch(
        run.run_id, metrics=[("m", 1.0, first, 0), ("m", 2.0, second, 0)]
    )
    await client.runs.terminate(run.run_id)

    fetched = await client.runs.get(run.run_id)
    assert fetched.data.metrics[0].timestamp.year == 9999
    history = await client.runs.get_metric_history(run.run_id, "m").to_list()
    assert sorted(point.timestamp_ms for point in history) == [first, second]
    watched = [point async for point in client.runs.watch_metrics(run.run_id)]
    assert sorted(point.value for point in watched) == [1.0, 2.0]
    found = await client.runs.search([experiment_id]).to_list()
    assert run.run_id in [item.run_id for item in found]


def test_metric_equality_unchanged_in_range() -> None:
    parsed = Metric.model_validate(
        {"key": "m", "value": 1.0, "timestamp": 1_700_000_000_123, "step": 2}
    )
    built = Metric(key="m", value=1.0, timestamp=parsed.timestamp, step=2)

    assert parsed == built
    assert parsed.timestamp_ms == 1_700_000_000_123


async def test_key_rules_checked_before_sending(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    run = await client.runs.create(experiment_id)
    good = [("loss", float(step), 1_000 + step, step) for step in range(1_500)]

    for bad_key in ("bad!key", "a//b", "x/", "./x", "/abs", "..up"):
        calls = [
            client.runs.log_batch(run.run_id, metrics=[*good, (bad_key, 1.0)]),
            client.runs.log_metric(run.run_id, bad_key, 1.0),
            client.runs.log_param(run.run_id, bad_key, "1"),
            client.runs.set_tag(run.run_id, bad_key, "v"),
            client.runs.create(experiment_id, tags={bad_key: "v"}),
        ]
        for call in calls:
            with pytest.raises(ValidationException, match="invalid") as caught:
                await call
            # The server's own rejection would be an InvalidParameterException.
            assert type(caught.value) is ValidationException

    history = await client.runs.get_metric_history(run.run_id, "loss")
    assert history == []
    odd = "ünï/cødé key.v-1:x_y"
    await client.runs.log_batch(run.run_id, metrics=[(odd, 1.0)], params={odd: "p"})
    await client.runs.set_tag(run.run_id, odd, "t")
    fetched = await client.runs.get(run.run_id)
    assert fetched.data.latest_metrics[odd].value == 1.0
    assert fetched.data.params[odd] == "p"
    assert fetched.data.tags[odd] == "t"


async def test_search_arguments_checked_at_call(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    with pytest.raises(ValidationException, match="order_by"):
        client.runs.search([experiment_id], order_by=[""])
    with pytest.raises(ValidationException, match="filter_string"):
        client.runs.search([experiment_id], 5)  # type: ignore[arg-type]
    with pytest.raises(ValidationException, match="page_size"):
        client.runs.search([experiment_id], page_size=True)
    with pytest.raises(ValidationException, match="max_results"):
        client.runs.search([experiment_id], max_results=0)
    with pytest.raises(ValidationException, match="experiment_id"):
        client.runs.search([experiment_id, None])  # type: ignore[list-item]


async def test_search_order_by_string_and_positional(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    for index in range(3):
        await client.runs.create(experiment_id, run_name=f"s{index}")

    by_string = client.runs.search(
        [experiment_id], None, "attributes.run_name DESC", ViewType.ACTIVE_ONLY
    )
    names = [run.info.run_name async for run in by_string]
    assert names == ["s2", "s1", "s0"]
    limited = await client.runs.search(
        experiment_id, order_by="attributes.run_name ASC", max_results=2
    )
    assert [run.info.run_name for run in limited] == ["s0", "s1"]


async def test_create_checks_experiment_and_keeps_zero_start(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    with pytest.raises(ValidationException, match="experiment_id"):
        await client.runs.create(None)  # type: ignore[arg-type]
    with pytest.raises(ValidationException, match="experiment_id"):
        await client.runs.create("  ")
    with pytest.raises(ValidationException, match="run_name"):
        await client.runs.create(experiment_id, run_name=5)  # type: ignore[arg-type]

    run = await client.runs.create(experiment_id, start_time=0)
    assert run.info.start_time == datetime(1970, 1, 1, tzinfo=timezone.utc)


async def test_numpy_scalars_and_bools_logged(
    client: AsyncMaestroClient, experiment_id: str
) -> None:
    numpy = pytest.importorskip("numpy")
    run = await client.runs.create(experiment_id)

    await client.runs.log_metric(
        run.run_id, "f32", numpy.float32(0.5), step=numpy.int64(3)
    )
    await client.runs.log_batch(
        run.run_id,
        metrics=[("i64", numpy.int64(7), numpy.int64(1_000), numpy.int32(2))],
        params={"use_bn": True, "lr": numpy.float64(0.01), "depth": numpy.int64(4)},
        tags={"debug": False},
    )
    await client.runs.set_tag(run.run_id, "seed", numpy.int64(42))

    fetched = await client.runs.get(run.run_id)
    latest = fetched.data.latest_metrics
    assert latest["f32"].value == 0.5
    assert latest["f32"].step == 3
    assert latest["i64"].value == 7.0
    assert latest["i64"].step == 2
    assert latest["i64"].timestamp_ms == 1_000
    assert fetched.data.params == {"use_bn": "True", "lr": "0.01", "depth": "4"}
    assert fetched.data.tags["debug"] == "False"
    assert fetched.data.tags["seed"] == "42"
    with pytest.raises(ValidationException, match="too large"):
        await client.runs.log_metric(run.run_id, "huge", 10**400)
    with pytest.raises(ValidationException, match=r"json\.dumps"):
        await client.runs.log_param(run.run_id, "layers", [64, 32])  # type: ignore[arg-type]


async def test_none_values_logged_as_mlflow_does(
    client: AsyncMaestroClient, experiment_id: str, mlflow_server_url: str
) -> None:
    # MLflow's client stores str(value), so None becomes "None". A param that
    # it logged as None must be loggable again with None, not fail as changed.
    mlflow = pytest.importorskip("mlflow")
    official = mlflow.MlflowClient(tracking_uri=mlflow_server_url)
    run = await client.runs.create(experiment_id)
    await asyncio.to_thread(official.log_param, run.run_id, "optimizer", None)
    await asyncio.to_thread(official.set_tag, run.run_id, "note", None)

    await client.runs.log_param(run.run_id, "optimizer", None)
    await client.runs.log_batch(run.run_id, params={"optimizer": None, "extra": None})
    await client.runs.set_tag(run.run_id, "mine", None)
    await client.experiments.set_tag(experiment_id, "owner", None)

    fetched = await client.runs.get(run.run_id)
    assert fetched.data.params == {"optimizer": "None", "extra": "None"}
    assert fetched.data.tags["note"] == "None"
    assert fetched.data.tags["mine"] == "None"
    experiment = await client.experiments.get(experiment_id)
    assert experiment.tags["owner"] == "None"


@pytest.mark.parametrize("ms", [2**63, 10**30])
async def test_run_times_outside_int64_rejected(
    client: AsyncMaestroClient, experiment_id: str, ms: int
) -> None:
    # MLflow 3.17 accepts such a time but reads it back as 1970 or None.
    with pytest.raises(ValidationException, match="64-bit") as caught:
        await client.runs.create(experiment_id, start_time=ms)
    assert str(ms) in str(caught.value)
    assert await client.runs.search([experiment_id]) == []

    run = await client.runs.create(experiment_id)
    with pytest.raises(ValidationException, match="64-bit"):
        await client.runs.terminate(run.run_id, end_time=ms)
    with pytest.raises(ValidationException, match="64-bit"):
        await client.runs.update(run.run_id, end_time=ms)
    info = (await client.runs.get(run.run_id)).info
    assert info.status is RunStatus.RUNNING
    assert info.end_time is None
