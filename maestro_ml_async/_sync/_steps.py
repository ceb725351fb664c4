"""Steps of one async context manager or generator, run in a single task."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._exceptions import ClientClosedError
from ._calls import Outcome, cancelled_error

if TYPE_CHECKING:
    from ._runtime import SyncRunner

__all__ = ["TaskDriver"]

T = TypeVar("T")


class TaskDriver:
    """Runs successive steps of one async object inside a single task.

    Async context managers and async generators may hold task-bound state,
    such as anyio cancel scopes and task groups, across their suspension
    points. So every step of one such object runs in the same task on the
    loop, inside the context copied when the driver was made.
    """

    def __init__(self, runner: SyncRunner, context: contextvars.Context) -> None:
        self._runner = runner
        self._steps = StepTask(context)
        self._loop: asyncio.AbstractEventLoop | None = None

    def step(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``await fn()`` in the driver's task and return its result."""
        self._loop = self._runner.loop()
        request = Step(fn)
        submit = functools.partial(self._steps.submit, request)
        result: T = self._runner.run(submit, request.outcome, self._steps.cancel)
        return result

    def finish(self, fn: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Run the final step `fn` (if any), then end the driver's task.

        Blocks for the final step when the caller can wait for it. From code
        on the loop or after `close` it only schedules the step, and in a
        forked child it does nothing.
        """
        runner = self._runner
        if runner.forked or self._loop is None:
            return
        if fn is not None and not runner.closed and not runner.on_loop_thread():
            try:
                self.step(fn)
            except ClientClosedError:
                pass
            fn = None
        try:
            self._loop.call_soon_threadsafe(self._steps.submit_final, fn)
        except RuntimeError:
            pass


class StepTask:
    """The task behind a `TaskDriver`, and the queue of steps it runs.

    Its callbacks may wait on the loop until the next call, because no thread
    runs the loop between calls. So it keeps no reference to the runner,
    which a waiting callback would keep from being garbage-collected.
    """

    def __init__(self, context: contextvars.Context) -> None:
        self._context = context
        self._queue: asyncio.Queue[Step | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancelled = False

    def submit(self, request: Step) -> None:
        if self._cancelled or (self._task is not None and self._task.done()):
            request.outcome.set_error(
                ClientClosedError("the stream was interrupted and cannot continue")
            )
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = self._context.run(asyncio.ensure_future, self._drive())
            self._task.add_done_callback(self._fail_waiting)
        self._queue.put_nowait(request)

    def _fail_waiting(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before it took a step from the queue, or before
        # its first step at all, leaves that step's caller waiting.
        assert self._queue is not None
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if request is not None and not request.outcome.finished:
                request.outcome.set_error(cancelled_error())

    def submit_final(self, fn: Callable[[], Awaitable[Any]] | None) -> None:
        if self._queue is None or self._task is None or self._task.done():
            return
        if fn is not None:
            self._queue.put_nowait(Step(fn))
        self._queue.put_nowait(None)

    def cancel(self) -> None:
        self._cancelled = True
        if self._task is not None:
            self._task.cancel()

    async def _drive(self) -> None:
        assert self._queue is not None
        while True:
            request = await self._queue.get()
            if request is None:
                return
            try:
                result = await request.fn()
            except asyncio.CancelledError:
                request.outcome.set_error(cancelled_error())
                raise
            except BaseException as exc:
                # KeyboardInterrupt and SystemExit go to the caller too. Raised
                # out of the task, they would reach whichever thread runs the
                # loop, and the caller would wait for this outcome forever.
                request.outcome.set_error(exc)
            else:
                request.outcome.set_result(result)


class Step:
    __slots__ = ("fn", "outcome")

    def __init__(self, fn: Callable[[], Awaitable[Any]]) -> None:
        self.fn = fn
        self.outcome = Outcome()
