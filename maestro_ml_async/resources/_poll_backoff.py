"""Backoff and log throttling for watchers whose polls keep failing."""

from __future__ import annotations

import logging
import random

__all__ = ["PollBackoff"]

# Upper bound, in seconds, of the wait between failing polls, unless the
# caller's own poll interval is longer.
MAX_FAILURE_DELAY = 30.0
# After the first failure of a streak, one WARNING per this many failures.
LOG_EVERY = 20


class PollBackoff:
    """Delays and logs the retries of a poll loop that hits repeated failures.

    The delay after the n-th failure in a row is the poll interval times
    2**(n-1), with jitter, at most `MAX_FAILURE_DELAY` (or the poll interval if
    that is longer). The first failure of a streak, every `LOG_EVERY`-th after
    it, and the recovery are logged, so a long outage does not flood the log.

    Args:
        poll_interval: The watcher's normal seconds between polls.
        description: What is polled, for the log lines (for example "registry poll").
        logger: The watcher module's logger.
    """

    def __init__(
        self, poll_interval: float, description: str, logger: logging.Logger
    ) -> None:
        self._interval = poll_interval
        self._description = description
        self._logger = logger
        self.failures = 0

    def failed(self, exc: Exception) -> float:
        """Count a failed poll and return the seconds to wait before the next."""
        self.failures += 1
        ceiling = max(self._interval, MAX_FAILURE_DELAY)
        delay = min(ceiling, self._interval * 2 ** min(self.failures - 1, 30))
        delay = max(self._interval, random.uniform(delay / 2, delay))
        if self.failures == 1 or self.failures % LOG_EVERY == 0:
            self._logger.warning(
                "%s failed (%d in a row), retrying in %.1f s: %s",
                self._description,
                self.failures,
                delay,
                exc,
            )
        return delay

    def succeeded(self) -> None:
        """Reset the streak after a good poll, logging the recovery."""
        if self.failures:
            self._logger.info(
                "%s recovered after %d failed polls", self._description, self.failures
            )
            self.failures = 0
