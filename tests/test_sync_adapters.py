"""Helpers that give async results their sync form."""

from __future__ import annotations

import functools
import gc
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from maestro_ml_async import Config, MaestroClient
from maestro_ml_async._pagination import AsyncPager, Page
from maestro_ml_async._sync._adapters import (
    Pager,
    SyncWrapper,
    convert_nested,
    sync_repr,
    unwrap,
)
from maestro_ml_async._sync._runtime import SyncRunner


class AsyncThing:
    def __repr__(self) -> str:
        return "AsyncThing(id=1)"


class Opaque:
    pass


class Thing(SyncWrapper[AsyncThing]):
    pass


CLASSES = {(AsyncThing.__module__, AsyncThing.__qualname__): Thing}


@pytest.fixture
def runner() -> Iterator[SyncRunner]:
    sync_runner = SyncRunner()
    yield sync_runner
    sync_runner.close()


@pytest.fixture
def sync_client() -> Iterator[MaestroClient]:
    """A sync client whose bulk_map needs no server: nothing here sends a request."""
    with MaestroClient(config=Config(mlflow_uri="http://127.0.0.1:9")) as client:
        yield client


def test_convert_nested_wraps_inside_containers(runner: SyncRunner) -> None:
    inner = AsyncThing()
    converted = convert_nested(runner, {"a": [inner, (inner, 3)], "b": None}, CLASSES)
    assert isinstance(converted["a"][0], Thing)
    assert isinstance(converted["a"][1], tuple)
    assert isinstance(converted["a"][1][0], Thing)
    assert converted["a"][1][1] == 3
    assert converted["b"] is None


def test_unwrap_returns_async_objects(runner: SyncRunner) -> None:
    inner = AsyncThing()
    wrapped = Thing(runner, inner)
    assert unwrap(wrapped) is inner
    assert unwrap([wrapped]) == [inner]
    assert unwrap((wrapped, 1)) == (inner, 1)
    assert unwrap("plain") == "plain"


def test_sync_repr_replaces_class_name(runner: SyncRunner) -> None:
    assert repr(Thing(runner, AsyncThing())) == "Thing(id=1)"
    assert sync_repr(Opaque(), "SyncOpaque").startswith("<SyncOpaque object at")
    assert sync_repr(42, "Number") == "42"


def test_pager_repr_and_truth(runner: SyncRunner) -> None:
    async def fetch(token: str | None) -> Page[int]:
        return Page([], None)

    pager = Pager(runner, AsyncPager(fetch))
    assert repr(pager) == "Pager(<not fetched>)"
    assert not pager
    assert repr(pager) == "Pager([])"
    assert list(pager) == []


def test_pager_converts_items(runner: SyncRunner) -> None:
    async def fetch(token: str | None) -> Page[AsyncThing]:
        return Page([AsyncThing()], None)

    pager: Pager[Thing] = Pager(
        runner, AsyncPager(fetch), lambda item: Thing(runner, item)
    )
    assert all(isinstance(item, Thing) for item in pager)
    assert isinstance(pager.page().items[0], Thing)
    assert isinstance(pager[0], Thing)


async def fetch_twice(item: int) -> int:
    return item * 2


class AsyncCallable:
    async def __call__(self, item: int) -> int:
        return item


@pytest.mark.parametrize(
    ("func", "name"),
    [
        pytest.param(fetch_twice, "'fetch_twice'", id="coroutine-function"),
        pytest.param(
            functools.partial(fetch_twice), "fetch_twice", id="partial-of-coroutine"
        ),
        pytest.param(AsyncCallable(), "AsyncCallable", id="async-call-method"),
    ],
)
def test_bulk_map_rejects_coroutine_function(
    sync_client: MaestroClient, func: Any, name: str
) -> None:
    with pytest.raises(TypeError) as caught:
        sync_client.bulk_map(func, [1, 2])

    assert name in str(caught.value)
    assert "AsyncMaestroClient" in str(caught.value)


def test_bulk_map_rejects_returned_coroutine(sync_client: MaestroClient) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        results = sync_client.bulk_map(lambda item: fetch_twice(item), [1, 2])
        gc.collect()

    assert len(results.errors) == 2
    assert all(isinstance(error, TypeError) for error in results.errors)
    assert "returned a coroutine" in str(results.errors[0])


def test_bulk_map_runs_sync_function(sync_client: MaestroClient) -> None:
    results = sync_client.bulk_map(lambda item: item * 2, [1, 2, 3])

    assert results == [2, 4, 6]
