"""Tests of token pagination."""

from __future__ import annotations

import pytest

from maestro_ml_async import AsyncPager, MLflowException, Page


def pages_from(tokens: dict[str | None, Page[int]]) -> tuple[AsyncPager[int], list]:
    calls: list[str | None] = []

    async def fetch(token: str | None) -> Page[int]:
        calls.append(token)
        return tokens[token]

    return AsyncPager(fetch), calls


async def test_pager_follows_tokens_to_the_end() -> None:
    pager, calls = pages_from(
        {
            None: Page([1, 2], "a"),
            "a": Page([3, 4], "b"),
            "b": Page([5], None),
        }
    )

    items = [item async for item in pager]

    assert items == [1, 2, 3, 4, 5]
    assert calls == [None, "a", "b"]


async def test_pager_empty_token_ends_iteration() -> None:
    pager, calls = pages_from({None: Page([1], "")})

    assert await pager == [1]
    assert calls == [None]


async def test_pager_repeated_token_raises() -> None:
    pager, _ = pages_from({None: Page([1], "a"), "a": Page([2], "a")})

    with pytest.raises(MLflowException, match="same page token"):
        await pager.to_list()


async def test_pager_max_results_stops_early() -> None:
    calls: list[str | None] = []

    async def fetch(token: str | None) -> Page[int]:
        calls.append(token)
        start = int(token or 0)
        return Page(list(range(start, start + 3)), str(start + 3))

    pager = AsyncPager(fetch, max_results=5)

    assert await pager == [0, 1, 2, 3, 4]
    assert calls == [None, "3"]


async def test_pager_single_page_with_token() -> None:
    pager, calls = pages_from({"x": Page([7, 8], "y")})

    page = await pager.page("x")

    assert page.items == [7, 8]
    assert page.next_page_token == "y"
    assert page.has_next
    assert calls == ["x"]


async def test_pager_page_normalises_empty_token() -> None:
    pager, _ = pages_from({None: Page([1], "")})

    page = await pager.page()

    assert page.next_page_token is None
    assert not page.has_next


async def test_pager_empty_first_page() -> None:
    pager, _ = pages_from({None: Page([], None)})

    assert await pager == []


async def test_pager_starts_from_given_token() -> None:
    calls: list[str | None] = []

    async def fetch(token: str | None) -> Page[int]:
        calls.append(token)
        return Page([9], None)

    pager = AsyncPager(fetch, page_token="resume")

    assert await pager == [9]
    assert calls == ["resume"]


async def test_pager_break_stops_fetching() -> None:
    pager, calls = pages_from({None: Page([1, 2], "a"), "a": Page([3], None)})

    async for item in pager:
        if item == 1:
            break

    assert calls == [None]


async def test_pager_endless_empty_pages_raise() -> None:
    from maestro_ml_async._pagination import MAX_EMPTY_PAGES

    calls: list[str | None] = []

    async def fetch(token: str | None) -> Page[int]:
        calls.append(token)
        return Page([], f"t{len(calls)}")

    with pytest.raises(MLflowException, match="empty pages in a row"):
        await AsyncPager(fetch).to_list()
    assert len(calls) == MAX_EMPTY_PAGES


async def test_pager_few_empty_pages_continue() -> None:
    pager, calls = pages_from(
        {None: Page([], "a"), "a": Page([], "b"), "b": Page([7], None)}
    )

    assert await pager == [7]
    assert calls == [None, "a", "b"]


async def test_pager_start_token_echoed_raises() -> None:
    calls: list[str | None] = []

    async def fetch(token: str | None) -> Page[int]:
        calls.append(token)
        return Page([1], "start")

    with pytest.raises(MLflowException, match="same page token"):
        await AsyncPager(fetch, page_token="start").to_list()
    assert calls == ["start"]
