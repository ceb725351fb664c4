"""The event-loop thread behind the sync client.

`SyncRunner` owns one asyncio event loop on a daemon thread. A sync method sends
its coroutine to that loop and blocks until the result arrives, so the async
client stays the only implementation.

The runner uses asyncio directly rather than an anyio blocking portal. That way
it copies the caller's context variables into each task, and an interrupted
caller can cancel the task and wait for it to unwind. It also costs less CPU
per call (``benchmarks/sync_overhead.py`` measures both).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from .._exceptions import ClientClosedError

__all__ = ["SyncRunner", "TaskDriver"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

# How long a blocked caller sleeps between checks. A SIGINT may be delivered to
# the loop thread, and Python runs the handler only when the main thread wakes,
# so this slice bounds how late Ctrl-C is noticed.
_WAIT_SLICE = 0.1
# How long an interrupted caller waits for the cancelled task to unwind.
_CANCEL_GRACE = 2.0
# How long `close` waits for the loop thread to finish its shutdown.
_JOIN_TIMEOUT = 10.0
_THREAD_NAME = "maestro-ml-sync-loop"
# Maximum number of sync callbacks (such as the function given to `bulk_map`)
# that run at the same time. Each mostly waits on the loop thread.
_MAX_WORKER_THREADS = 32

# Python 3.12 added eager task start.
_EAGER_TASKS = sys.version_info >= (3, 12)

# Incremented in a forked child, so runners created before the fork see that
# their loop thread does not exist in this process.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Outcome:
    """The result or error of one request to the loop thread.

    The caller blocks on `done`, a lock that the loop thread releases once the
    outcome is set. A plain lock is cheaper than a `concurrent.futures.Future`,
    and its ``acquire(timeout=...)`` returns early when a signal arrives.
    """

    __slots__ = ("done", "error", "finished", "result")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None

    def set_result(self, value: Any) -> None:
        self.result = value
        self.finished = True
        self.done.release()

    def set_error(self, error: BaseException) -> None:
        self.error = error
        self.finished = True
        self.done.release()


class _Call:
    """One coroutine call sent to the loop thread."""

    __slots__ = ("args", "context", "fn", "kwargs", "outcome", "task")

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
        self.outcome = _Outcome()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Create the task inside the caller's context (runs on the loop thread)."""
        try:
            if _EAGER_TASKS:
                # The first step runs now, inside this callback, so a call that
                # never waits finishes without another loop iteration.
                self.task = asyncio.Task(  # type: ignore[call-arg,unused-ignore]
                    self._run(),
                    loop=asyncio.get_running_loop(),
                    context=self.context,
                    eager_start=True,
                )
            else:
                # A Task copies the context that is current when it is created,
                # so creating it inside `context.run` hands it the caller's
                # variables (Python 3.10 has no `context` argument).
                self.task = self.context.run(asyncio.ensure_future, self._run())
        except BaseException as exc:
            self.outcome.set_error(exc)

    async def _run(self) -> None:
        # Setting the outcome here, not in a done callback, hands the result
        # over in the task's last step instead of one loop iteration later.
        try:
            result = await self.fn(*self.args, **self.kwargs)
        except asyncio.CancelledError:
            self.outcome.set_error(_cancelled_error())
            raise
        except BaseException as exc:
            self.outcome.set_error(exc)
        else:
            self.outcome.set_result(result)

    def cancel(self) -> None:
        """Cancel the task (runs on the loop thread)."""
        if self.task is not None:
            self.task.cancel()


def _cancelled_error() -> ClientClosedError:
    return ClientClosedError(
        "the call was cancelled on the event loop, because the caller was "
        "interrupted or the client was closed while the call was in flight"
    )


def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    try:
        loop.run_forever()
    finally:
        try:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "a task failed while the sync client shut down: %r", task.exception()
            )


def _stop_loop(
    loop: asyncio.AbstractEventLoop, thread: threading.Thread, generation: int
) -> None:
    """Stop the loop and join its thread (for `close` and the finalizer)."""
    if generation != _fork_generation or loop.is_closed():
        return
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:
        return
    if threading.current_thread() is thread:
        return
    thread.join(_JOIN_TIMEOUT)
    if thread.is_alive():
        logger.warning(
            "the sync client's loop thread did not stop within %.0f s", _JOIN_TIMEOUT
        )


class SyncRunner:
    """An event loop on a daemon thread that runs coroutines for sync callers.

    The thread starts on the first call. Any number of threads may call the
    runner at once. In a process forked after the runner was created, every
    call raises `ClientClosedError`, because the loop thread exists only in the
    parent. `close` stops the loop and joins its thread. A finalizer stops
    the loop of a runner that is garbage-collected or still open at
    interpreter exit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._closed = False
        self._pid = os.getpid()
        self._generation = _fork_generation
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    @property
    def forked(self) -> bool:
        """Whether this process is a fork of the one that created the runner."""
        return self._generation != _fork_generation

    def on_loop_thread(self) -> bool:
        """Return whether the current thread is the runner's loop thread."""
        return threading.get_ident() == self._thread_id

    def loop(self) -> asyncio.AbstractEventLoop:
        """Return the running loop, starting its thread on first use.

        Raises:
            ClientClosedError: After `close`, or in a forked child process.
            RuntimeError: When called from the loop thread itself, where
                blocking on the loop would deadlock.
        """
        if self._generation != _fork_generation:
            raise ClientClosedError(
                f"this client was created in process {self._pid} and cannot be "
                f"used in process {os.getpid()}, a fork of it: its event-loop "
                "thread exists only in the parent. Create a new MaestroClient "
                "in the child process."
            )
        loop = self._loop
        if loop is None or self._closed:
            loop = self._start()
        elif self.on_loop_thread():
            raise RuntimeError(
                "a sync MaestroClient method was called from the client's own "
                "event-loop thread (for example from a callback that the client "
                "runs), which would deadlock; call the async client there instead"
            )
        return loop

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise ClientClosedError(
                    "the client is closed; create a new MaestroClient "
                    "(or use it inside 'with')"
                )
            if self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=_run_loop, args=(loop, ready), name=_THREAD_NAME, daemon=True
            )
            thread.start()
            ready.wait()
            self._thread = thread
            self._thread_id = thread.ident
            self._finalizer = weakref.finalize(
                self, _stop_loop, loop, thread, self._generation
            )
            self._loop = loop
            logger.debug("started the sync client's event loop thread")
            return loop

    def call(
        self,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``await fn(*args, **kwargs)`` on the loop thread and return its result.

        The coroutine runs in a copy of the caller's context variables. A
        `KeyboardInterrupt` in the waiting caller cancels the task, waits up to
        two seconds for it to unwind, and is re-raised.

        Raises:
            ClientClosedError: When the runner is closed, in a forked child,
                or when `close` cancels the call while it runs.
        """
        loop = self._loop
        if (
            loop is None
            or self._closed
            or self._generation != _fork_generation
            or threading.get_ident() == self._thread_id
        ):
            loop = self.loop()
        request = _Call(fn, args, kwargs)
        try:
            loop.call_soon_threadsafe(request.start)
        except RuntimeError:
            raise ClientClosedError(
                "the client was closed; create a new MaestroClient"
            ) from None
        result: T = self.wait(loop, request.outcome, request.cancel)
        return result

    def _schedule(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]
    ) -> None:
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:
            raise ClientClosedError(
                "the client was closed; create a new MaestroClient"
            ) from None

    def wait(
        self,
        loop: asyncio.AbstractEventLoop,
        outcome: _Outcome,
        cancel: Callable[[], Any],
    ) -> Any:
        """Block until `outcome` is set; on Ctrl-C run `cancel` on the loop thread."""
        done = outcome.done
        try:
            while not done.acquire(timeout=_WAIT_SLICE):
                if self._thread is not None and not self._thread.is_alive():
                    raise ClientClosedError(
                        "the client was closed while a call was in flight"
                    )
        except KeyboardInterrupt:
            if not outcome.finished:
                self._cancel_after_interrupt(loop, outcome, cancel)
            raise
        error = outcome.error
        if error is not None:
            outcome.error = None
            raise error
        return outcome.result

    @staticmethod
    def _cancel_after_interrupt(
        loop: asyncio.AbstractEventLoop,
        outcome: _Outcome,
        cancel: Callable[[], Any],
    ) -> None:
        try:
            loop.call_soon_threadsafe(cancel)
        except RuntimeError:
            return
        if not outcome.done.acquire(timeout=_CANCEL_GRACE):
            logger.warning(
                "an interrupted call did not finish cancelling within %.0f s",
                _CANCEL_GRACE,
            )

    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """Return the worker threads that run sync callbacks given to async APIs."""
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=_MAX_WORKER_THREADS,
                    thread_name_prefix="maestro-ml-sync-worker",
                )
            return self._executor

    def driver(self) -> TaskDriver:
        """Return a `TaskDriver` bound to a copy of the caller's context."""
        return TaskDriver(self, contextvars.copy_context())

    def shutdown(self, aclose: Callable[[], Awaitable[Any]]) -> None:
        """Await `aclose` on the loop, then stop the loop and join its thread.

        Safe to call twice. In a forked child it only marks the runner closed,
        because the loop thread of the parent does not exist there.
        """
        if self._closed:
            return
        if self.forked:
            self._closed = True
            return
        try:
            self.call(aclose)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the loop and join its thread; calls in flight are cancelled."""
        if self.forked:
            self._closed = True
            return
        if self.on_loop_thread():
            raise RuntimeError(
                "a sync MaestroClient cannot be closed from its own loop thread"
            )
        with self._lock:
            self._closed = True
            finalizer = self._finalizer
            executor, self._executor = self._executor, None
        if finalizer is not None:
            finalizer()
        if executor is not None:
            # Workers blocked on the stopped loop give up within one wait slice.
            executor.shutdown(wait=True, cancel_futures=True)


class TaskDriver:
    """Runs successive steps of one async object inside a single task.

    Async context managers and async generators may hold task-bound state,
    such as anyio cancel scopes and task groups, across their suspension
    points. So every step of one such object runs in the same task on the loop
    thread, inside the context copied when the driver was made.
    """

    def __init__(self, runner: SyncRunner, context: contextvars.Context) -> None:
        self._runner = runner
        self._context = context
        self._queue: asyncio.Queue[_Step | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def step(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``await fn()`` in the driver's task and return its result."""
        loop = self._runner.loop()
        self._loop = loop
        request = _Step(fn)
        self._runner._schedule(loop, functools.partial(self._submit, request))
        result: T = self._runner.wait(loop, request.outcome, self._cancel)
        return result

    def finish(self, fn: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Run the final step `fn` (if any), then end the driver's task.

        Blocks for the final step when the caller can wait for it. From the
        loop thread or after `close` it only schedules the step, and in a
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
            self._loop.call_soon_threadsafe(self._submit_final, fn)
        except RuntimeError:
            pass

    def _submit(self, request: _Step) -> None:
        if self._task is not None and self._task.done():
            request.outcome.set_error(
                ClientClosedError("the stream was interrupted and cannot continue")
            )
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = self._context.run(asyncio.ensure_future, self._drive())
        self._queue.put_nowait(request)

    def _submit_final(self, fn: Callable[[], Awaitable[Any]] | None) -> None:
        if self._queue is None or self._task is None or self._task.done():
            return
        if fn is not None:
            self._queue.put_nowait(_Step(fn))
        self._queue.put_nowait(None)

    def _cancel(self) -> None:
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
                request.outcome.set_error(_cancelled_error())
                raise
            except Exception as exc:
                request.outcome.set_error(exc)
            else:
                request.outcome.set_result(result)


class _Step:
    __slots__ = ("fn", "outcome")

    def __init__(self, fn: Callable[[], Awaitable[Any]]) -> None:
        self.fn = fn
        self.outcome = _Outcome()
