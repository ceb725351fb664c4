"""Helpers that give async results their sync form."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
