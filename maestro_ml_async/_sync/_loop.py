"""The sync client's event loop, the helper thread that runs it, and its shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["LoopState", "fork_generation", "serve", "stop_loop"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long `close` waits for the helper thread to finish the shutdown.
_JOIN_TIMEOUT = 10.0

# Incremented in a forked child, so runners created before the fork see that
# their loop and helper thread belong to the parent.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_generation() -> int:
    """Return the number of forks between this process and the one that imported it."""
    return _fork_generation


class LoopState:
    """The loop, the lock of the thread that runs it, and the helper thread.

    The helper thread and the finalizer refer to this object and not to the
    runner, so that an unused runner can be garbage-collected.
    """

    def __init__(self, generation: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.generation = generation
        # Held by the thread that runs the loop, and `owner` is its ident.
        self.drive = threading.Lock()
        self.owner: int | None = None
        # Calls handed to the helper thread and not finished yet.
        self.handed_off = 0
        self.count_lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.closing = False
        self.thread: threading.Thread | None = None

    def hand_off_done(self) -> None:
        # Runs on the loop when a handed-off call finishes. The helper thread
        # runs the loop until no such call remains.
        with self.count_lock:
            self.handed_off -= 1
            idle = self.handed_off == 0
        if idle:
            self.loop.stop()


def serve(state: LoopState, ready: threading.Event) -> None:
    """Run the loop for handed-off calls; shut it down once `stopping` is set."""
    ident = threading.get_ident()
    ready.set()
    while True:
        state.wake.wait()
        state.wake.clear()
        with state.drive:
            state.owner = ident
            try:
                while state.handed_off > 0 and not state.stopping:
                    _run_until_stopped(state.loop)
                if state.stopping:
                    state.closing = True
                    _close_loop(state.loop)
                    return
            finally:
                state.owner = None


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    """Run the loop for handed-off calls until something stops it.

    `KeyboardInterrupt` and `SystemExit` raised by a task (one that a call
    started in the background, say) propagate out of ``run_forever``. Ending
    the helper thread there would strand every handed-off caller with a
    false "closed" error, so they are logged and the loop keeps running.
    """
    try:
        loop.run_forever()
    except (KeyboardInterrupt, SystemExit) as exc:
        logger.exception(
            "a task on the sync client's event loop raised %s, and the helper "
            "thread keeps running the loop for the calls handed to it",
            type(exc).__name__,
        )


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        _cancel_remaining(loop)
        _run_until_done(loop, loop.shutdown_asyncgens())
        _run_until_done(loop, loop.shutdown_default_executor())
    finally:
        loop.close()


def _run_until_done(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[T]) -> T:
    """Run the loop until `awaitable` is done, like ``run_until_complete``.

    A call that finishes during the shutdown stops the loop to wake its
    caller, which makes ``run_until_complete`` raise. This runs the loop
    again after each such stop.
    """
    future = asyncio.ensure_future(awaitable, loop=loop)
    future.add_done_callback(lambda _: loop.stop())
    while not future.done():
        loop.run_forever()
    return future.result()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    # Repeated because a call that a caller scheduled just before `close`, or
    # the cleanup of a cancelled task, may start new tasks.
    while True:
        tasks = asyncio.all_tasks(loop)
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        _run_until_done(loop, asyncio.gather(*tasks, return_exceptions=True))
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                logger.warning(
                    "a task failed while the sync client shut down: %r",
                    task.exception(),
                )


def _cancel_all(state: LoopState) -> None:
    # Stopping the loop makes the helper thread close it even when a
    # handed-off call never finishes. Once the loop is closing, its own
    # shutdown tasks must run undisturbed.
    if state.closing:
        return
    for task in asyncio.all_tasks(state.loop):
        task.cancel()
    state.loop.stop()


def stop_loop(state: LoopState) -> None:
    """Cancel every task, let the helper thread close the loop, and join it.

    Runs for `close` and as the finalizer. Calls in flight end with
    `ClientClosedError`.
    """
    if state.generation != _fork_generation or state.loop.is_closed():
        return
    state.stopping = True
    try:
        state.loop.call_soon_threadsafe(_cancel_all, state)
    except RuntimeError:
        return
    state.wake.set()
    thread = state.thread
    ident = threading.get_ident()
    if thread is None or thread.ident == ident or state.owner == ident:
        # This thread runs the loop, so the helper closes it once this
        # thread lets go.
        return
    thread.join(_JOIN_TIMEOUT)
    if thread.is_alive():
        logger.warning(
            "the sync client's loop thread did not stop within %.0f s", _JOIN_TIMEOUT
        )
