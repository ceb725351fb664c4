"""Token-based pagination as async iterators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._exceptions import MLflowException, ValidationException
from ._validation import check_page_token

__all__ = ["AsyncPager", "Page", "next_page_token"]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results and the token of the next page (None on the last)."""

    items: list[T]
    next_page_token: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def has_next(self) -> bool:
        """Whether the server reported a further page."""
        return self.next_page_token is not None


FetchPage = Callable[[str | None], Awaitable[Page[T]]]


def next_page_token(response: Mapping[str, Any], seen: set[str]) -> str | None:
    """Return the next page token of a response, or None on the last page.

    For loops that page by hand: `seen` collects the tokens so far, and a
    token that the server sends twice raises `MLflowException` instead of
    looping forever.
    """
    token = response.get("next_page_token") or None
    if token is None:
        return None
    token = str(token)
    if token in seen:
        raise _repeated_token_error()
    seen.add(token)
    return token


def _repeated_token_error() -> MLflowException:
    return MLflowException(
        "the server returned the same page token twice; "
        "stopping to avoid an endless loop",
        error_code="REPEATED_PAGE_TOKEN",
    )


MAX_EMPTY_PAGES = 100
"""Consecutive empty pages with a next token after which iteration stops.

A server may return a few empty pages while it scans past filtered rows, but a
long run of them with ever-new tokens would otherwise never end."""


class AsyncPager(Generic[T]):
    """All results of a search or list, fetched page by page on demand.

    Iterate it with ``async for`` to stream items, ``await`` it for a list of all
    items, or call `page` to fetch one page with its token. At most
    `max_results` items are produced in all (None means no limit).

    A missing or empty ``next_page_token`` ends the iteration. A token that the
    server returns twice, or `MAX_EMPTY_PAGES` empty pages in a row that each
    name a next page, raise `MLflowException` instead of looping forever.
    """

    def __init__(
        self,
        fetch_page: FetchPage[T],
        *,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> None:
        if max_results is not None and (
            isinstance(max_results, bool)
            or not isinstance(max_results, int)
            or max_results < 0
        ):
            raise ValidationException(
                f"max_results must be None or an integer of at least 0, got "
                f"{max_results!r:.40}"
            )
        self._fetch_page = fetch_page
        self._max_results = max_results
        self._start_token = check_page_token(page_token)

    async def page(self, page_token: str | None = None) -> Page[T]:
        """Fetch a single page; pass the previous page's token to continue."""
        page = await self._fetch_page(check_page_token(page_token))
        token = page.next_page_token or None
        if token != page.next_page_token:
            page = Page(page.items, token, page.raw)
        return page

    async def _iterate(self) -> AsyncIterator[T]:
        produced = 0
        empty_pages = 0
        token = self._start_token or None
        seen: set[str] = {token} if token is not None else set()
        while True:
            page = await self.page(token)
            empty_pages = 0 if page.items else empty_pages + 1
            for item in page.items:
                if self._max_results is not None and produced >= self._max_results:
                    return
                produced += 1
                yield item
            token = page.next_page_token
            if token is None:
                return
            if self._max_results is not None and produced >= self._max_results:
                return
            if token in seen:
                raise _repeated_token_error()
            if empty_pages >= MAX_EMPTY_PAGES:
                raise MLflowException(
                    f"the server returned {empty_pages} empty pages in a row, each "
                    "with a next page token; stopping to avoid an endless loop",
                    error_code="ENDLESS_PAGINATION",
                )
            seen.add(token)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def to_list(self) -> list[T]:
        """Fetch every page and return all items."""
        return [item async for item in self._iterate()]

    def __await__(self) -> Generator[Any, None, list[T]]:
        return self.to_list().__await__()
