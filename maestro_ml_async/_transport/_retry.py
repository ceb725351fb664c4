"""Retry policy for MLflow requests, built on tenacity.

A request is retried on connection errors and on the statuses 408, 429, 500, 502,
503 and 504, with exponential backoff, full jitter and the server's
``Retry-After`` honoured, within a bound on the total time. Whether a request may
be retried at all depends on its `RetryMode`, so a retry never repeats an effect.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import random
import time
from datetime import datetime, timezone

import httpx
from tenacity import RetryCallState
from tenacity.stop import stop_base

__all__ = [
    "RETRY_STATUSES",
    "RetryMode",
    "RetryableStatus",
    "StopOnLongRetryAfter",
    "is_unsent_error",
    "parse_retry_after",
]

logger = logging.getLogger("maestro_ml_async.transport")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RetryMode(enum.Enum):
    """Which failures of one request may be retried."""

    SAFE = "safe"
    """Reads and idempotent writes: every retryable error and status."""

    UNSENT = "unsent"
    """Creates: only failures where the server cannot have acted on the request
    (the connection never opened, or the server returned 429)."""

    NEVER = "never"
    """No retries at all."""


class RetryableStatus(Exception):
    """A response whose status may succeed when the request is sent again."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = parse_retry_after(response.headers.get("retry-after"))


def parse_retry_after(value: str | None) -> float | None:
    """Return a ``Retry-After`` header as seconds from now, or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def is_unsent_error(exc: BaseException) -> bool:
    """Return True for errors raised before the request reached the server."""
    unsent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    return isinstance(exc, unsent)


def should_retry(mode: RetryMode, exc: BaseException) -> bool:
    """Decide whether the failure `exc` of a request in `mode` is retried."""
    if mode is RetryMode.NEVER or isinstance(exc, httpx.LocalProtocolError):
        # A request that this side cannot encode fails the same way every time.
        return False
    if isinstance(exc, RetryableStatus):
        if mode is RetryMode.SAFE:
            return True
        return exc.response.status_code == 429
    if is_unsent_error(exc):
        return True
    if mode is RetryMode.SAFE:
        return isinstance(exc, (httpx.TransportError, httpx.TimeoutException))
    return False


class BackoffWait:
    """Tenacity wait strategy: full-jitter exponential backoff or ``Retry-After``.

    A ``Retry-After`` longer than the time left in the budget is honoured as far
    as the budget allows; the stop condition then ends the retries.
    """

    def __init__(self, base: float, maximum: float, budget: float) -> None:
        self._base = base
        self._maximum = maximum
        self._budget = budget

    def __call__(self, state: RetryCallState) -> float:
        exponential = min(self._maximum, self._base * 2 ** (state.attempt_number - 1))
        delay = random.uniform(0, exponential)
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        elapsed = time.monotonic() - state.start_time
        return max(0.0, min(delay, self._budget - elapsed))


class StopOnLongRetryAfter(stop_base):
    """Tenacity stop condition: the server's ``Retry-After`` exceeds the budget.

    Waiting out the rest of the budget and then sending again, earlier than the
    server asked, would only delay the same failure.
    """

    def __init__(self, budget: float) -> None:
        self._budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if not isinstance(exc, RetryableStatus) or exc.retry_after is None:
            return False
        elapsed = time.monotonic() - retry_state.start_time
        return exc.retry_after > self._budget - elapsed


def log_retry(state: RetryCallState) -> None:
    """Log one retry at INFO, without any header or body."""
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    method, path = state.kwargs.get("method", "?"), state.kwargs.get("path", "?")
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    logger.info(
        "retrying %s %s after %s (attempt %d, waiting %.2f s)",
        method,
        path,
        _describe(exc),
        state.attempt_number,
        wait,
    )


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, RetryableStatus):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__ if exc is not None else "unknown error"
