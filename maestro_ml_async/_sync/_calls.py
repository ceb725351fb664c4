"""One sync call on the loop: its outcome, its task and its Ctrl-C handler."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .._exceptions import ClientClosedError

__all__ = [
    "EAGER_TASKS",
    "Call",
    "Interrupt",
    "Outcome",
    "cancelled_error",
    "closed_error",
    "noop",
    "set_sigint",
]

# Python 3.12 added eager task start.
EAGER_TASKS = sys.version_info >= (3, 12)


def noop() -> None:
    pass


# `signal.signal` converts both handlers to enums, which costs about 10 µs
# (timed with timeit on Python 3.11), as much as the rest of a call's overhead.
# The CPython function that it wraps does the same work without that step.
try:
    from _signal import signal as _install_handler  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python builds without the C module
    _install_handler = signal.signal


def set_sigint(handler: Any) -> Any:
    """Install a SIGINT handler and return the previous one."""
    return _install_handler(signal.SIGINT, handler)


class Outcome:
    """The result or error of one call, and who waits for it.

    A caller that handed its call off blocks on `done`, a lock that is
    released once the outcome is set. A plain lock is cheaper than a
    `concurrent.futures.Future`, and its ``acquire(timeout=...)`` returns
    early when a signal arrives. `on_finish` runs on the loop as the outcome
    is set: it stops the loop for a caller that runs the loop itself.
    """

    __slots__ = ("done", "error", "finished", "on_finish", "result")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.on_finish: Callable[[], object] | None = None

    def set_result(self, value: Any) -> None:
        self.result = value
        self._finish()

    def set_error(self, error: BaseException) -> None:
        self.error = error
        self._finish()

    def _finish(self) -> None:
        self.finished = True
        self.done.release()
        if self.on_finish is not None:
            self.on_finish()

    def value(self) -> Any:
        """Return the result, or raise the error."""
        error = self.error
        if error is not None:
            self.error = None
            raise error
        return self.result


class Call:
    """One coroutine call to run on the loop."""

    __slots__ = ("args", "cancelled", "context", "fn", "kwargs", "outcome", "task")

    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.context = contextvars.copy_context()
        self.outcome = Outcome()
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False

    def start(self) -> None:
        """Create the task inside the caller's context (runs on the loop)."""
        self.start_on(asyncio.get_running_loop())

    def start_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the task on `loop`, which need not be running yet.

        A thread that is about to run the loop itself calls this directly, so
        the task's first step runs in the loop's first iteration.
        """
        if self.cancelled:
            self.outcome.set_error(cancelled_error())
            return
        try:
            if EAGER_TASKS and loop.is_running():
                # The first step runs now, inside this callback, so a call that
                # never waits finishes without another loop iteration.
                self.task = asyncio.Task(  # type: ignore[call-arg,unused-ignore]
                    self._run(), loop=loop, context=self.context, eager_start=True
                )
            else:
                # A Task copies the context that is current when it is created,
                # so creating it inside `context.run` hands it the caller's
                # variables (Python 3.10 has no `context` argument).
                self.task = self.context.run(loop.create_task, self._run())
        except BaseException as exc:
            self.outcome.set_error(exc)

    async def _run(self) -> None:
        # Setting the outcome here, not in a done callback, hands the result
        # over in the task's last step instead of one loop iteration later.
        try:
            result = await self.fn(*self.args, **self.kwargs)
        except asyncio.CancelledError:
            self.outcome.set_error(cancelled_error())
            raise
        except BaseException as exc:
            self.outcome.set_error(exc)
        else:
            self.outcome.set_result(result)

    def cancel(self) -> None:
        """Cancel the task, or its start if it has not started (runs on the loop)."""
        self.cancelled = True
        task = self.task
        if task is None:
            return
        if task.done():
            # `close` cancels every task directly, so a task can end cancelled
            # before its first step, without `_run` setting the outcome.
            if not self.outcome.finished:
                self.outcome.set_error(cancelled_error())
            return
        if not task.cancel():
            return
        coro = task.get_coro()
        if inspect.iscoroutine(coro) and (
            inspect.getcoroutinestate(coro) == inspect.CORO_CREATED
        ):
            # A task cancelled before its first step never enters `_run`, so
            # nothing else would set the outcome that the caller waits for.
            self.outcome.set_error(cancelled_error())


def closed_error() -> ClientClosedError:
    return ClientClosedError("the client was closed; create a new MaestroClient")


def cancelled_error() -> ClientClosedError:
    return ClientClosedError(
        "the call was cancelled on the event loop, because the caller was "
        "interrupted or the client was closed while the call was in flight"
    )


class Interrupt:
    """A SIGINT handler for a main thread that runs the loop itself.

    The first Ctrl-C cancels the call, so it unwinds and closes its
    connections, and the caller then raises `KeyboardInterrupt`. A second
    Ctrl-C raises `KeyboardInterrupt` at once, as `asyncio.run` does.
    """

    __slots__ = ("cancel", "count", "loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, cancel: Callable[[], object]
    ) -> None:
        self.loop = loop
        self.cancel = cancel
        self.count = 0

    def handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        self.cancel()
        # Wake the loop in case it waits in select() with a long timeout.
        self.loop.call_soon_threadsafe(noop)
