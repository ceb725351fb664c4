"""The event loop behind the sync client.

`SyncRunner` owns one asyncio event loop. A sync call runs its coroutine on
that loop and blocks until the result arrives, so the async client stays the
only implementation.

The calling thread runs the loop itself whenever no other thread is running
it. That saves the two thread switches of a hand-off, which cost about as much
CPU as the client's own work on a mocked request (``benchmarks/sync_overhead.py``
measures both). A caller that cannot run the loop hands its coroutine to a
helper thread instead. That happens when another thread is running the loop,
or when the caller's thread already runs an event loop (a Jupyter cell, an
async test). Between calls no thread runs the loop, so background tasks such as
shared watches pause and resume with the next call.

The runner uses asyncio directly rather than an anyio blocking portal. That way
it copies the caller's context variables into each task, and an interrupted
caller can cancel the task and wait for it to unwind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from .._exceptions import ClientClosedError

__all__ = ["SyncRunner", "TaskDriver"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

# How long a caller that handed its call off sleeps between checks. A SIGINT
# may arrive while the helper thread runs, and Python runs the handler only
# when the main thread wakes, so this slice bounds how late Ctrl-C is noticed.
_WAIT_SLICE = 0.1
# How long an interrupted caller waits for the cancelled task to unwind.
_CANCEL_GRACE = 2.0
# How long `close` waits for the helper thread to finish the shutdown.
_JOIN_TIMEOUT = 10.0
_THREAD_NAME = "maestro-ml-sync-loop"
# Maximum number of sync callbacks (such as the function given to `bulk_map`)
# that run at the same time. Each mostly waits on the event loop.
_MAX_WORKER_THREADS = 32

# Python 3.12 added eager task start.
_EAGER_TASKS = sys.version_info >= (3, 12)

# Incremented in a forked child, so runners created before the fork see that
# their loop and helper thread belong to the parent.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _noop() -> None:
    pass


# `signal.signal` converts both handlers to enums, which costs about 10 µs
# (timed with timeit on Python 3.11), as much as the rest of a call's overhead.
# The CPython function that it wraps does the same work without that step.
try:
    from _signal import signal as _install_handler  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python builds without the C module
    _install_handler = signal.signal


def _set_sigint(handler: Any) -> Any:
    """Install a SIGINT handler and return the previous one."""
    return _install_handler(signal.SIGINT, handler)


class _Outcome:
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


class _Call:
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
        self.outcome = _Outcome()
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
            self.outcome.set_error(_cancelled_error())
            return
        try:
            if _EAGER_TASKS and loop.is_running():
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
            self.outcome.set_error(_cancelled_error())
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
                self.outcome.set_error(_cancelled_error())
            return
        if not task.cancel():
            return
        coro = task.get_coro()
        if inspect.iscoroutine(coro) and (
            inspect.getcoroutinestate(coro) == inspect.CORO_CREATED
        ):
            # A task cancelled before its first step never enters `_run`, so
            # nothing else would set the outcome that the caller waits for.
            self.outcome.set_error(_cancelled_error())


def _closed_error() -> ClientClosedError:
    return ClientClosedError("the client was closed; create a new MaestroClient")


def _cancelled_error() -> ClientClosedError:
    return ClientClosedError(
        "the call was cancelled on the event loop, because the caller was "
        "interrupted or the client was closed while the call was in flight"
    )


class _Interrupt:
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
        self.loop.call_soon_threadsafe(_noop)


class _LoopState:
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


def _serve(state: _LoopState, ready: threading.Event) -> None:
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


def _cancel_all(state: _LoopState) -> None:
    # Stopping the loop makes the helper thread close it even when a
    # handed-off call never finishes. Once the loop is closing, its own
    # shutdown tasks must run undisturbed.
    if state.closing:
        return
    for task in asyncio.all_tasks(state.loop):
        task.cancel()
    state.loop.stop()


def _stop_loop(state: _LoopState) -> None:
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


class SyncRunner:
    """An event loop that runs coroutines for sync callers.

    Any number of threads may call the runner at once. The loop and its helper
    thread start on the first call. In a process forked after the runner was
    created, every call raises `ClientClosedError`, because the loop belongs
    to the parent. `close` cancels the calls in flight, closes the loop and
    joins the helper thread. A finalizer does the same for a runner that is
    garbage-collected or still open at interpreter exit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: _LoopState | None = None
        self._closed = False
        self._pid = os.getpid()
        self._generation = _fork_generation
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        # The executor's threads, so that `close` can tell when a worker calls it.
        self._worker_threads: list[threading.Thread] = []

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    @property
    def forked(self) -> bool:
        """Whether this process is a fork of the one that created the runner."""
        return self._generation != _fork_generation

    def on_loop_thread(self) -> bool:
        """Return whether the current thread is running the runner's loop."""
        state = self._state
        return state is not None and state.owner == threading.get_ident()

    def loop(self) -> asyncio.AbstractEventLoop:
        """Return the runner's loop, creating it and the helper thread on first use.

        Raises:
            ClientClosedError: After `close`, or in a forked child process.
        """
        return self._ready().loop

    def _ready(self) -> _LoopState:
        if self._generation != _fork_generation:
            raise ClientClosedError(
                f"this client was created in process {self._pid} and cannot be "
                f"used in process {os.getpid()}, a fork of it: its event loop "
                "belongs to the parent. Create a new MaestroClient in the child "
                "process."
            )
        state = self._state
        if state is not None and not self._closed:
            return state
        with self._lock:
            if self._closed:
                raise ClientClosedError(
                    "the client is closed; create a new MaestroClient "
                    "(or use it inside 'with')"
                )
            if self._state is None:
                self._state = self._start()
            return self._state

    def _start(self) -> _LoopState:
        state = _LoopState(self._generation)
        ready = threading.Event()
        thread = threading.Thread(
            target=_serve, args=(state, ready), name=_THREAD_NAME, daemon=True
        )
        thread.start()
        ready.wait()
        state.thread = thread
        self._finalizer = weakref.finalize(self, _stop_loop, state)
        logger.debug("started the sync client's event loop")
        return state

    def call(
        self,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``await fn(*args, **kwargs)`` on the loop and return its result.

        The coroutine runs in a copy of the caller's context variables. A
        `KeyboardInterrupt` in the waiting caller cancels the task, waits for
        it to unwind (up to two seconds when the call was handed off), and is
        re-raised.

        Raises:
            ClientClosedError: When the runner is closed, in a forked child,
                or when `close` cancels the call while it runs.
            RuntimeError: When called from code that runs on the loop, where
                blocking on the loop would deadlock.
            asyncio.CancelledError: In a thread that runs an event loop, when
                the task that waits here is cancelled (``asyncio.run`` does
                that on Ctrl-C). The call is cancelled first.
        """
        request = _Call(fn, args, kwargs)
        result: T = self.run(
            request.start, request.outcome, request.cancel, start_on=request.start_on
        )
        return result

    def run(
        self,
        start: Callable[[], object],
        outcome: _Outcome,
        cancel: Callable[[], object],
        *,
        start_on: Callable[[asyncio.AbstractEventLoop], object] | None = None,
    ) -> Any:
        """Run the loop until `outcome` is set, after `start` runs on it.

        The calling thread runs the loop itself when it can, and otherwise
        hands `start` to the thread that is running the loop or to the helper
        thread. On Ctrl-C it runs `cancel` on the loop. `start_on`, when given,
        replaces `start` for a caller that runs the loop itself: it is called
        with the loop before the loop runs, which saves one loop iteration.
        """
        state = self._state
        if state is None or self._closed or state.generation != _fork_generation:
            state = self._ready()
        ident = threading.get_ident()
        if state.owner == ident:
            raise RuntimeError(
                "a sync MaestroClient method was called from code that runs on "
                "the client's own event loop (for example from a callback that "
                "the client runs), which would deadlock; call the async client "
                "there instead"
            )
        if asyncio._get_running_loop() is None and state.drive.acquire(blocking=False):
            state.owner = ident
            try:
                if state.stopping:
                    raise _closed_error()
                return self._run_here(state, start, outcome, cancel, start_on)
            finally:
                state.owner = None
                state.drive.release()
                if state.handed_off:
                    state.wake.set()
        return self._hand_off(state, start, outcome, cancel)

    @staticmethod
    def _run_here(
        state: _LoopState,
        start: Callable[[], object],
        outcome: _Outcome,
        cancel: Callable[[], object],
        start_on: Callable[[asyncio.AbstractEventLoop], object] | None,
    ) -> Any:
        # The caller holds the drive lock, so no other thread runs the loop.
        loop = state.loop
        if start_on is not None:
            # Nothing runs the loop yet, so the outcome can only be set during
            # `start_on` by an error, and then the loop must not be stopped.
            start_on(loop)
            outcome.on_finish = loop.stop
        else:
            outcome.on_finish = loop.stop
            loop.call_soon(start)
        interrupt: _Interrupt | None = None
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C cancels the call instead of raising inside the loop,
            # unless the program installed a SIGINT handler of its own.
            interrupt = _Interrupt(loop, cancel)
            previous = _set_sigint(interrupt.handle)
            if previous is not signal.default_int_handler:
                _set_sigint(previous)
                interrupt = None
        cancelled_by_close = False
        try:
            while not outcome.finished:
                loop.run_forever()
                if state.stopping and not cancelled_by_close:
                    # `close` cancels the tasks that exist when its callback
                    # runs, and stops the loop. A call whose `start` was
                    # scheduled after that callback is cancelled here.
                    cancelled_by_close = True
                    if not outcome.finished:
                        cancel()
        except KeyboardInterrupt:
            # A second Ctrl-C, or one from a handler of the caller's own.
            if not outcome.finished:
                cancel()
                _unwind(loop, outcome)
            raise
        finally:
            if interrupt is not None:
                _set_sigint(signal.default_int_handler)
        if interrupt is not None and interrupt.count:
            raise KeyboardInterrupt
        return outcome.value()

    def _hand_off(
        self,
        state: _LoopState,
        start: Callable[[], object],
        outcome: _Outcome,
        cancel: Callable[[], object],
    ) -> Any:
        # Counted before it is scheduled, so that the thread that stops running
        # the loop finds it in the count and wakes the helper thread.
        outcome.on_finish = state.hand_off_done
        with state.count_lock:
            state.handed_off += 1
        try:
            state.loop.call_soon_threadsafe(start)
        except RuntimeError:
            with state.count_lock:
                state.handed_off -= 1
            raise _closed_error() from None
        state.wake.set()
        return self.wait(state, outcome, cancel)

    @staticmethod
    def wait(state: _LoopState, outcome: _Outcome, cancel: Callable[[], object]) -> Any:
        """Block until `outcome` is set; on Ctrl-C run `cancel` on the loop.

        Raises:
            asyncio.CancelledError: When the caller's thread runs an event loop
                and the task blocked here is cancelled, after cancelling the
                call as for Ctrl-C.
        """
        done = outcome.done
        thread = state.thread
        caller = _current_task()
        cancel_requests = _cancel_requests(caller)
        caller_cancelled = False
        try:
            while not done.acquire(timeout=_WAIT_SLICE):
                if thread is not None and not thread.is_alive():
                    raise ClientClosedError(
                        "the client was closed while a call was in flight"
                    )
                if caller is not None and _cancel_requests(caller) > cancel_requests:
                    caller_cancelled = True
                    break
        except KeyboardInterrupt:
            if not outcome.finished:
                _cancel_after_interrupt(state.loop, outcome, cancel)
            raise
        if caller_cancelled:
            # The caller's loop is blocked here, so only a signal handler can
            # have cancelled its task. The SIGINT handler of `asyncio.run`
            # (Python 3.11+) does that on Ctrl-C instead of raising
            # KeyboardInterrupt, and raises it on a second Ctrl-C.
            if not outcome.finished:
                _cancel_after_interrupt(state.loop, outcome, cancel)
            raise asyncio.CancelledError
        return outcome.value()

    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """Return the worker threads that run sync callbacks given to async APIs.

        Raises:
            ClientClosedError: After `close`, which has shut the workers down.
                A new executor would leave threads behind.
        """
        with self._lock:
            if self._closed:
                raise _closed_error()
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=_MAX_WORKER_THREADS,
                    thread_name_prefix="maestro-ml-sync-worker",
                    initializer=_record_worker,
                    initargs=(self._worker_threads,),
                )
            return self._executor

    def driver(self) -> TaskDriver:
        """Return a `TaskDriver` bound to a copy of the caller's context."""
        return TaskDriver(self, contextvars.copy_context())

    def shutdown(self, aclose: Callable[[], Awaitable[Any]]) -> None:
        """Await `aclose` on the loop, then close the loop and join its thread.

        Safe to call twice. In a forked child it only marks the runner closed,
        because the loop belongs to the parent.
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
        """Close the loop and join its thread; calls in flight are cancelled."""
        if self.forked:
            self._closed = True
            return
        if self.on_loop_thread():
            raise RuntimeError(
                "a sync MaestroClient cannot be closed from code that runs on "
                "its own event loop"
            )
        with self._lock:
            self._closed = True
            finalizer = self._finalizer
            executor, self._executor = self._executor, None
        if finalizer is not None:
            finalizer()
        if executor is not None:
            _shut_down_workers(executor, self._worker_threads)


def _record_worker(threads: list[threading.Thread]) -> None:
    threads.append(threading.current_thread())


def _shut_down_workers(
    executor: concurrent.futures.ThreadPoolExecutor,
    threads: list[threading.Thread],
) -> None:
    """Shut the executor down and join its threads, except the calling one.

    Workers blocked on the closed loop give up within one wait slice. A
    callback that runs in a worker and closes the client cannot join its own
    thread, which ends when the callback returns.
    """
    current = threading.current_thread()
    if current not in threads:
        executor.shutdown(wait=True, cancel_futures=True)
        return
    executor.shutdown(wait=False, cancel_futures=True)
    for thread in threads:
        if thread is not current:
            thread.join()


def _current_task() -> asyncio.Task[Any] | None:
    """Return the task running in this thread's event loop, if there is one."""
    loop = asyncio._get_running_loop()
    if loop is None:
        return None
    return asyncio.current_task(loop)


def _cancel_requests(task: asyncio.Task[Any] | None) -> int:
    # NOTE: Task.cancelling() is new in Python 3.11. On 3.10 this returns 0,
    # so a cancelled caller is not noticed, but there `asyncio.run` installs
    # no SIGINT handler, and Ctrl-C raises KeyboardInterrupt in `wait`.
    cancelling = getattr(task, "cancelling", None)
    if cancelling is None:
        return 0
    count: int = cancelling()
    return count


def _unwind(loop: asyncio.AbstractEventLoop, outcome: _Outcome) -> None:
    """Run the loop until a cancelled call finishes, for at most the grace time."""
    deadline = time.monotonic() + _CANCEL_GRACE
    while not outcome.finished:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logger.warning(
                "an interrupted call did not finish cancelling within %.0f s",
                _CANCEL_GRACE,
            )
            return
        timer = loop.call_later(remaining, loop.stop)
        try:
            loop.run_forever()
        finally:
            timer.cancel()


def _cancel_after_interrupt(
    loop: asyncio.AbstractEventLoop,
    outcome: _Outcome,
    cancel: Callable[[], object],
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


class TaskDriver:
    """Runs successive steps of one async object inside a single task.

    Async context managers and async generators may hold task-bound state,
    such as anyio cancel scopes and task groups, across their suspension
    points. So every step of one such object runs in the same task on the
    loop, inside the context copied when the driver was made.
    """

    def __init__(self, runner: SyncRunner, context: contextvars.Context) -> None:
        self._runner = runner
        self._steps = _StepTask(context)
        self._loop: asyncio.AbstractEventLoop | None = None

    def step(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``await fn()`` in the driver's task and return its result."""
        self._loop = self._runner.loop()
        request = _Step(fn)
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


class _StepTask:
    """The task behind a `TaskDriver`, and the queue of steps it runs.

    Its callbacks may wait on the loop until the next call, because no thread
    runs the loop between calls. So it keeps no reference to the runner,
    which a waiting callback would keep from being garbage-collected.
    """

    def __init__(self, context: contextvars.Context) -> None:
        self._context = context
        self._queue: asyncio.Queue[_Step | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancelled = False

    def submit(self, request: _Step) -> None:
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
                request.outcome.set_error(_cancelled_error())

    def submit_final(self, fn: Callable[[], Awaitable[Any]] | None) -> None:
        if self._queue is None or self._task is None or self._task.done():
            return
        if fn is not None:
            self._queue.put_nowait(_Step(fn))
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
                request.outcome.set_error(_cancelled_error())
                raise
            except BaseException as exc:
                # KeyboardInterrupt and SystemExit go to the caller too. Raised
                # out of the task, they would reach whichever thread runs the
                # loop, and the caller would wait for this outcome forever.
                request.outcome.set_error(exc)
            else:
                request.outcome.set_result(result)


class _Step:
    __slots__ = ("fn", "outcome")

    def __init__(self, fn: Callable[[], Awaitable[Any]]) -> None:
        self.fn = fn
        self.outcome = _Outcome()
