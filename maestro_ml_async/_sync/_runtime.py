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
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from .._exceptions import ClientClosedError
from ._calls import Call, Interrupt, Outcome, closed_error, set_sigint
from ._loop import LoopState, fork_generation, serve, stop_loop
from ._steps import TaskDriver

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
_THREAD_NAME = "maestro-ml-sync-loop"
# Maximum number of sync callbacks (such as the function given to `bulk_map`)
# that run at the same time. Each mostly waits on the event loop.
_MAX_WORKER_THREADS = 32


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
        self._state: LoopState | None = None
        self._closed = False
        self._pid = os.getpid()
        self._generation = fork_generation()
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
        return self._generation != fork_generation()

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

    def _ready(self) -> LoopState:
        if self._generation != fork_generation():
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

    def _start(self) -> LoopState:
        state = LoopState(self._generation)
        ready = threading.Event()
        thread = threading.Thread(
            target=serve, args=(state, ready), name=_THREAD_NAME, daemon=True
        )
        thread.start()
        ready.wait()
        state.thread = thread
        self._finalizer = weakref.finalize(self, stop_loop, state)
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
        request = Call(fn, args, kwargs)
        result: T = self.run(
            request.start, request.outcome, request.cancel, start_on=request.start_on
        )
        return result

    def run(
        self,
        start: Callable[[], object],
        outcome: Outcome,
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
        if state is None or self._closed or state.generation != fork_generation():
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
                    raise closed_error()
                return self._run_here(state, start, outcome, cancel, start_on)
            finally:
                state.owner = None
                state.drive.release()
                if state.handed_off:
                    state.wake.set()
        return self._hand_off(state, start, outcome, cancel)

    @staticmethod
    def _run_here(
        state: LoopState,
        start: Callable[[], object],
        outcome: Outcome,
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
        interrupt: Interrupt | None = None
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C cancels the call instead of raising inside the loop,
            # unless the program installed a SIGINT handler of its own.
            interrupt = Interrupt(loop, cancel)
            previous = set_sigint(interrupt.handle)
            if previous is not signal.default_int_handler:
                set_sigint(previous)
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
                set_sigint(signal.default_int_handler)
        if interrupt is not None and interrupt.count:
            raise KeyboardInterrupt
        return outcome.value()

    def _hand_off(
        self,
        state: LoopState,
        start: Callable[[], object],
        outcome: Outcome,
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
            raise closed_error() from None
        state.wake.set()
        return self.wait(state, outcome, cancel)

    @staticmethod
    def wait(state: LoopState, outcome: Outcome, cancel: Callable[[], object]) -> Any:
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
                raise closed_error()
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


def _unwind(loop: asyncio.AbstractEventLoop, outcome: Outcome) -> None:
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
    outcome: Outcome,
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
