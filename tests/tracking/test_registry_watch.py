"""The registry watch engine against the real server, with another client writing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import anyio
import pytest

from maestro_ml_async import AsyncMaestroClient, ValidationException
from maestro_ml_async.resources._registry_watch import (
    _Model,
    _Snapshot,
    _Version,
    diff_snapshots,
    watch_registry,
)
from maestro_ml_async.types.events import RegistryEvent, RegistryEventType

POLL = 0.05
T = RegistryEventType


class Writer:
    """Registry changes made over raw REST by a second client."""

    def __init__(self, client: AsyncMaestroClient, run_id: str) -> None:
        self.call = client._mlflow.call
        self.run_id = run_id

    async def create_model(self, name: str, **tags: str) -> None:
        entries = [{"key": k, "value": v} for k, v in tags.items()]
        await self.call(
            "POST", "registered-models/create", json={"name": name, "tags": entries}
        )

    async def create_version(self, name: str) -> str:
        body = {
            "name": name,
            "source": f"runs:/{self.run_id}/model",
            "run_id": self.run_id,
        }
        response = await self.call("POST", "model-versions/create", json=body)
        return str(response["model_version"]["version"])

    async def stage(self, name: str, version: str, stage: str) -> None:
        body = {
            "name": name,
            "version": version,
            "stage": stage,
            "archive_existing_versions": False,
        }
        await self.call("POST", "model-versions/transition-stage", json=body)

    async def alias(self, name: str, alias: str, version: str) -> None:
        body = {"name": name, "alias": alias, "version": version}
        await self.call("POST", "registered-models/alias", json=body)

    async def unalias(self, name: str, alias: str) -> None:
        await self.call(
            "DELETE", "registered-models/alias", json={"name": name, "alias": alias}
        )

    async def version_tag(self, name: str, version: str, key: str, value: str) -> None:
        body = {"name": name, "version": version, "key": key, "value": value}
        await self.call("POST", "model-versions/set-tag", json=body)

    async def model_tag(self, name: str, key: str, value: str) -> None:
        body = {"name": name, "key": key, "value": value}
        await self.call("POST", "registered-models/set-tag", json=body)

    async def delete_version(self, name: str, version: str) -> None:
        await self.call(
            "DELETE", "model-versions/delete", json={"name": name, "version": version}
        )

    async def delete_model(self, name: str) -> None:
        await self.call("DELETE", "registered-models/delete", json={"name": name})


class Collector:
    """Runs a watcher in a task and hands its events to the test."""

    def __init__(self, stream: AsyncIterator[RegistryEvent]) -> None:
        self.queue: asyncio.Queue[RegistryEvent] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump(stream))

    async def _pump(self, stream: AsyncIterator[RegistryEvent]) -> None:
        async for event in stream:
            await self.queue.put(event)

    async def expect(self, count: int, seconds: float = 10.0) -> list[RegistryEvent]:
        events = []
        with anyio.fail_after(seconds):
            for _ in range(count):
                events.append(await self.queue.get())
        return events

    async def quiet(self, polls: int = 6) -> list[RegistryEvent]:
        await asyncio.sleep(POLL * polls)
        extra = []
        while not self.queue.empty():
            extra.append(self.queue.get_nowait())
        return extra

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def brief(event: RegistryEvent) -> tuple[Any, ...]:
    return (event.type, event.version, event.key, event.old_value, event.new_value)


@pytest.fixture
async def writer(
    mlflow_server_url: str, client: AsyncMaestroClient, unique: str
) -> AsyncIterator[Writer]:
    experiment = await client.experiments.create(f"reg-watch-{unique}")
    run = await client.runs.create(experiment.experiment_id)
    async with AsyncMaestroClient(mlflow_uri=mlflow_server_url) as other:
        yield Writer(other, run.run_id)


async def test_watch_sees_each_change_once(
    client: AsyncMaestroClient, writer: Writer, unique: str
) -> None:
    name = f"watched {unique}"
    await writer.create_model(name)
    v1 = await writer.create_version(name)
    collector = Collector(watch_registry(client._mlflow, name=name, poll_interval=POLL))
    try:
        await asyncio.sleep(POLL * 3)  # the first poll is the baseline
        assert await collector.quiet(1) == []

        v2 = await writer.create_version(name)
        created = await collector.expect(2)
        assert [brief(e) for e in created] == [
            (T.VERSION_CREATED, v2, None, None, "READY"),
            (T.VERSION_READY, v2, None, None, "READY"),
        ]
        assert all(e.model_name == name and e.source == "poll" for e in created)

        await writer.stage(name, v1, "Production")
        assert [brief(e) for e in await collector.expect(1)] == [
            (T.VERSION_STAGE_CHANGED, v1, None, "None", "Production")
        ]
        await writer.alias(name, "champion", v1)
        assert [brief(e) for e in await collector.expect(1)] == [
            (T.ALIAS_SET, v1, "champion", None, v1)
        ]
        await writer.alias(name, "champion", v2)
        assert [brief(e) for e in await collector.expect(1)] == [
            (T.ALIAS_MOVED, v2, "champion", v1, v2)
        ]
        await writer.version_tag(name, v2, "validated", "yes")
        await writer.model_tag(name, "team", "search")
        both = await collector.expect(2)
        assert sorted(brief(e) for e in both) == sorted(
            [
                (T.MODEL_TAGS_CHANGED, None, "team", None, "search"),
                (T.VERSION_TAGS_CHANGED, v2, "validated", None, "yes"),
            ]
        )
        await writer.version_tag(name, v2, "validated", "no")
        assert [brief(e) for e in await collector.expect(1)] == [
            (T.VERSION_TAGS_CHANGED, v2, "validated", "yes", "no")
        ]
        await writer.unalias(name, "champion")
        assert [brief(e) for e in await collector.expect(1)] == [
            (T.ALIAS_REMOVED, v2, "champion", v2, None)
        ]
        await writer.delete_version(name, v1)
        assert [brief(e) for e in await collector.expect(1)] == [
            (T.VERSION_DELETED, v1, None, None, None)
        ]
        await writer.delete_model(name)
        assert [brief(e) for e in await collector.expect(1)] == [
            (T.MODEL_DELETED, None, None, None, None)
        ]
        assert await collector.quiet() == []
    finally:
        await collector.stop()


async def test_watch_filter_and_include_existing(
    client: AsyncMaestroClient, writer: Writer, unique: str
) -> None:
    await writer.create_model(f"flt-{unique}-a")
    await writer.create_version(f"flt-{unique}-a")
    await writer.create_model(f"other-{unique}")
    collector = Collector(
        watch_registry(
            client._mlflow,
            filter_string=f"name LIKE 'flt-{unique}-%'",
            poll_interval=POLL,
            include_existing=True,
        )
    )
    try:
        existing = await collector.expect(3)
        assert [(e.type, e.model_name) for e in existing] == [
            (T.MODEL_CREATED, f"flt-{unique}-a"),
            (T.VERSION_CREATED, f"flt-{unique}-a"),
            (T.VERSION_READY, f"flt-{unique}-a"),
        ]
        await writer.create_model(f"flt-{unique}-b")
        await writer.create_version(f"other-{unique}")
        assert [(e.type, e.model_name) for e in await collector.expect(1)] == [
            (T.MODEL_CREATED, f"flt-{unique}-b")
        ]
        assert await collector.quiet() == []
    finally:
        await collector.stop()


@pytest.mark.parametrize(
    ("name", "decoy"),
    [
        ("both'\"quotes {unique}", 'bothX"quotes {unique}'),
        ("back\\slash 'and\" {unique}", 'backXslash Xand" {unique}'),
    ],
)
async def test_watch_name_with_both_quotes(
    client: AsyncMaestroClient, writer: Writer, unique: str, name: str, decoy: str
) -> None:
    # No quoted filter literal can hold such a name, and the LIKE pattern that
    # matches it also matches the decoy, which must not be reported.
    watched = name.format(unique=unique)
    other = decoy.format(unique=unique)
    await writer.create_model(watched)
    await writer.create_model(other)
    collector = Collector(
        watch_registry(
            client._mlflow, name=watched, poll_interval=POLL, include_existing=True
        )
    )
    try:
        existing = await collector.expect(1)
        assert [(e.type, e.model_name) for e in existing] == [
            (T.MODEL_CREATED, watched)
        ]
        await writer.create_version(other)
        await writer.model_tag(other, "k", "v")
        version = await writer.create_version(watched)
        events = await collector.expect(2)
        assert [(e.type, e.model_name, e.version) for e in events] == [
            (T.VERSION_CREATED, watched, version),
            (T.VERSION_READY, watched, version),
        ]
        assert await collector.quiet() == []
    finally:
        await collector.stop()


async def test_watch_by_tag_filter(
    client: AsyncMaestroClient, writer: Writer, unique: str
) -> None:
    await writer.create_model(f"tagged-{unique}", group=unique)
    collector = Collector(
        watch_registry(
            client._mlflow, filter_string=f"tags.group = '{unique}'", poll_interval=POLL
        )
    )
    try:
        await asyncio.sleep(POLL * 3)
        version = await writer.create_version(f"tagged-{unique}")
        events = await collector.expect(2)
        assert [(e.type, e.version) for e in events] == [
            (T.VERSION_CREATED, version),
            (T.VERSION_READY, version),
        ]
    finally:
        await collector.stop()


async def test_watch_hides_prompts(
    client: AsyncMaestroClient, writer: Writer, unique: str
) -> None:
    collector = Collector(
        watch_registry(
            client._mlflow, filter_string=f"name LIKE '%{unique}%'", poll_interval=POLL
        )
    )
    try:
        await asyncio.sleep(POLL * 3)
        await writer.create_model(
            f"prompt-{unique}", **{"mlflow.prompt.is_prompt": "true"}
        )
        await writer.create_model(f"model-{unique}")
        events = await collector.expect(1)
        assert [(e.type, e.model_name) for e in events] == [
            (T.MODEL_CREATED, f"model-{unique}")
        ]
        assert await collector.quiet() == []
    finally:
        await collector.stop()


async def test_models_watch_delegates(
    client: AsyncMaestroClient, writer: Writer, unique: str
) -> None:
    name = f"public-{unique}"
    await writer.create_model(name)
    collector = Collector(client.models.watch(name, poll_interval=POLL))
    try:
        await asyncio.sleep(POLL * 3)
        version = await writer.create_version(name)
        events = await collector.expect(2)
        assert [(e.type, e.version) for e in events] == [
            (T.VERSION_CREATED, version),
            (T.VERSION_READY, version),
        ]
    finally:
        await collector.stop()


async def test_watch_poll_costs_two_searches(
    client: AsyncMaestroClient, writer: Writer, unique: str
) -> None:
    for index in range(3):
        await writer.create_model(f"cost-{unique}-{index}")
        await writer.create_version(f"cost-{unique}-{index}")
    calls: list[str] = []
    original = client._mlflow.call

    async def counting(method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        calls.append(endpoint)
        return await original(method, endpoint, **kwargs)

    client._mlflow.call = counting  # type: ignore[method-assign]
    stream = watch_registry(
        client._mlflow, filter_string=f"name LIKE 'cost-{unique}-%'", poll_interval=POLL
    )
    collector = Collector(stream)
    try:
        await asyncio.sleep(POLL * 8)
    finally:
        await collector.stop()
    polls = calls.count("model-versions/search")
    assert polls >= 3
    assert calls.count("registered-models/search") in (polls, polls - 1)
    assert set(calls) == {"model-versions/search", "registered-models/search"}


def test_diff_status_transitions() -> None:
    now = datetime.now(timezone.utc)
    model = _Model(tags={}, aliases={})
    old = _Snapshot(
        models={"m": model},
        versions={
            ("m", "1"): _Version("PENDING_REGISTRATION", "None", {}),
            ("m", "2"): _Version("PENDING_REGISTRATION", "None", {}),
        },
    )
    new = _Snapshot(
        models={"m": model},
        versions={
            ("m", "1"): _Version("READY", "None", {}),
            ("m", "2"): _Version("FAILED_REGISTRATION", "None", {}),
            ("m", "10"): _Version("PENDING_REGISTRATION", "Staging", {}),
        },
    )
    events = [brief(e) for e in diff_snapshots(old, new, now)]
    assert events == [
        (T.VERSION_READY, "1", None, "PENDING_REGISTRATION", "READY"),
        (T.VERSION_FAILED, "2", None, "PENDING_REGISTRATION", "FAILED_REGISTRATION"),
        (T.VERSION_CREATED, "10", None, None, "PENDING_REGISTRATION"),
        (T.VERSION_STAGE_CHANGED, "10", None, "None", "Staging"),
    ]
    assert diff_snapshots(new, new, now) == []


def test_diff_creation_carries_first_tags() -> None:
    now = datetime.now(timezone.utc)
    new = _Snapshot(
        models={"m": _Model(tags={"team": "a"}, aliases={})},
        versions={("m", "1"): _Version("READY", "None", {"k": "v"})},
    )

    events = diff_snapshots(_Snapshot(), new, now)

    # Tags set between two polls on a new version are not lost: the creation
    # event carries them, shaped like MLflow's webhook payload data.
    created = {event.type: event for event in events}
    assert created[T.MODEL_CREATED].raw == {"name": "m", "tags": {"team": "a"}}
    assert created[T.VERSION_CREATED].raw == {
        "name": "m",
        "version": "1",
        "tags": {"k": "v"},
    }
    assert T.VERSION_TAGS_CHANGED not in created
    assert T.MODEL_TAGS_CHANGED not in created


async def test_watch_rejects_bad_interval(client: AsyncMaestroClient) -> None:
    with pytest.raises(ValidationException):
        await watch_registry(client._mlflow, poll_interval=0).__anext__()
