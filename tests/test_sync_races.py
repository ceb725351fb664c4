"""Races in the sync runner: many threads, close from anywhere, escaping errors."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import logging
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from maestro_ml_async import ClientClosedError
from maestro_ml_async._sync._adapters import (
    SyncContextManager,
    iterate,
    run_in_worker_thread,
)
from maestro_ml_async._sync._runtime import SyncRunner

THREAD_TIMEOUT = 30.0

caller_id: contextvars.ContextVar[int] = contextvars.ContextVar("caller_id", default=-1)


@pytest.fixture
def threads_before() -> set[threading.Thread]:
    """The threads alive before the test created its runner."""
    return set(threading.enumerate())


def new_client_threads(before: set[threading.Thread]) -> list[str]:
    """Return the names of the client's threads started since `before`."""
    return [
        thread.name
        for thread in threading.enumerate()
        if thread.name.startswith("maestro-ml") and thread not in before
    ]


@pytest.fixture
def runner(threads_before: set[threading.Thread]) -> Iterator[SyncRunner]:
    sync_runner = SyncRunner()
    yield sync_runner
    sync_runner.close()


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """Exceptions that ended a thread, which would otherwise only be printed."""
    errors: list[BaseException | None] = []
    monkeypatch.setattr(
        threading, "excepthook", lambda args: errors.append(args.exc_value)
    )
    return errors


def run_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT)
    hung = [thread.name for thread in threads if thread.is_alive()]
    assert hung == [], f"threads still running after {THREAD_TIMEOUT} s"


async def echo(value: int, delay: float = 0.0) -> tuple[int, int]:
    if delay:
        await asyncio.sleep(delay)
    return value, caller_id.get()


async def numbers(count: int) -> AsyncIterator[tuple[int, int]]:
    for number in range(count):
        if number % 3 == 0:
            await asyncio.sleep(0.001)
        yield number, caller_id.get()


@asynccontextmanager
async def session() -> AsyncIterator[int]:
    await asyncio.sleep(0)
    yield caller_id.get()
    await asyncio.sleep(0.001)


def test_many_threads_mixed_work(runner: SyncRunner) -> None:
    # Every fourth thread runs an event loop of its own, so its calls are
    # always handed off. The others race for the loop. Every result carries
    # the caller's context variable, so a call that ran for the wrong caller,
    # or in the wrong context, shows up as a wrong result.
    calls_per_thread = 60
    done: dict[int, int] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        caller_id.set(index)
        choose = random.Random(index)
        adapted = run_in_worker_thread(runner, lambda v: runner.call(echo, v))
        for number in range(calls_per_thread):
            kind = choose.randrange(6)
            if kind == 0:
                assert runner.call(echo, number) == (number, index)
            elif kind == 1:
                delay = choose.random() * 0.01
                assert runner.call(echo, number, delay) == (number, index)
            elif kind == 2:
                expected = [(n, index) for n in range(7)]
                assert list(iterate(runner, numbers(7))) == expected
            elif kind == 3:
                items = iterate(runner, numbers(50))
                assert next(items) == (0, index)
                items.close()
            elif kind == 4:
                with SyncContextManager(runner, session()) as value:
                    assert value == index
            else:
                assert runner.call(adapted, number) == (number, index)
            done[index] = number + 1

    def guarded(index: int) -> None:
        try:
            if index % 4 == 0:

                async def inside_loop() -> None:
                    work(index)

                asyncio.run(inside_loop())
            else:
                work(index)
        except BaseException as exc:
            errors.append(exc)

    run_threads([functools.partial(guarded, i) for i in range(16)])
    assert errors == []
    assert done == {i: calls_per_thread for i in range(16)}


def test_close_during_handed_off_call(
    runner: SyncRunner,
    thread_errors: list[BaseException | None],
    threads_before: set[threading.Thread],
) -> None:
    # An async generator left suspended on the loop is closed by the loop's
    # shutdown, which runs after the calls in flight are cancelled.
    finalized = threading.Event()

    async def suspended() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            finalized.set()

    generator = suspended()
    assert runner.call(generator.__anext__) == 1

    started = threading.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    def close_when_started() -> None:
        assert started.wait(THREAD_TIMEOUT)
        runner.close()

    errors: list[BaseException] = []

    async def caller() -> None:
        # This thread runs an event loop, so the helper thread runs the call.
        try:
            runner.call(slow)
        except BaseException as exc:
            errors.append(exc)

    closer = threading.Thread(target=close_when_started)
    closer.start()
    asyncio.run(caller())
    closer.join(THREAD_TIMEOUT)
    assert not closer.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ClientClosedError)
    assert thread_errors == []
    assert finalized.is_set()
    assert new_client_threads(threads_before) == []


def test_close_from_worker_thread(
    runner: SyncRunner, threads_before: set[threading.Thread]
) -> None:
    close_errors: list[BaseException] = []
    closed = threading.Event()

    def close_client(value: int) -> int:
        try:
            runner.close()
        except BaseException as exc:
            close_errors.append(exc)
        finally:
            closed.set()
        return value

    adapted = run_in_worker_thread(runner, close_client)
    with pytest.raises(ClientClosedError):
        runner.call(adapted, 1)
    assert closed.wait(THREAD_TIMEOUT)
    assert close_errors == []
    assert runner.closed
    deadline = time.monotonic() + THREAD_TIMEOUT
    # The worker that called close ends once its callback has returned.
    while new_client_threads(threads_before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert new_client_threads(threads_before) == []


def test_no_worker_thread_after_close(
    runner: SyncRunner, threads_before: set[threading.Thread]
) -> None:
    # A call that keeps handing callbacks to worker threads while another
    # thread closes the client must not start a new pool after close.
    adapted = run_in_worker_thread(runner, lambda value: value)
    first_done = threading.Event()

    async def keep_mapping() -> None:
        await adapted(1)
        first_done.set()
        # Block the loop until close has begun, so the next callback is
        # submitted after close took the executor and before it cancels this call.
        deadline = time.monotonic() + THREAD_TIMEOUT
        while not runner.closed and time.monotonic() < deadline:
            time.sleep(0.001)  # noqa: ASYNC251 - blocks the loop on purpose
        await adapted(2)

    errors: list[BaseException] = []

    def mapping_thread() -> None:
        try:
            runner.call(keep_mapping)
        except BaseException as exc:
            errors.append(exc)

    mapper = threading.Thread(target=mapping_thread)
    mapper.start()
    assert first_done.wait(THREAD_TIMEOUT)
    runner.close()
    mapper.join(THREAD_TIMEOUT)
    assert not mapper.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ClientClosedError)
    assert new_client_threads(threads_before) == []


async def stalled() -> AsyncIterator[int]:
    await asyncio.sleep(5)
    yield 1


@pytest.mark.parametrize("kind", ["call", "iterator step"])
@pytest.mark.parametrize("close_lands", ["before start", "after start"])
def test_close_racing_call_start(
    runner: SyncRunner,
    monkeypatch: pytest.MonkeyPatch,
    threads_before: set[threading.Thread],
    kind: str,
    close_lands: str,
) -> None:
    # A caller runs the loop and has checked that the runner is open, and
    # close() schedules its cancellation just before or just after the call
    # is scheduled, in the same loop iteration. Close must cancel the call
    # either way, instead of leaving it to run, or leaving its caller waiting
    # for a task that was cancelled before its first step.
    runner.call(echo, 0)
    state = runner._state
    assert state is not None
    loop = state.loop
    original_call_soon = loop.call_soon
    closer: list[threading.Thread] = []

    def close_and_wait() -> None:
        thread = threading.Thread(target=runner.close)
        closer.append(thread)
        thread.start()
        deadline = time.monotonic() + THREAD_TIMEOUT
        while not state.stopping and time.monotonic() < deadline:
            time.sleep(0.001)
        # close() schedules its cancellation right after setting `stopping`.
        time.sleep(0.05)

    def call_soon(callback: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
        if closer:
            return original_call_soon(callback, *args, **kwargs)
        if close_lands == "before start":
            close_and_wait()
            return original_call_soon(callback, *args, **kwargs)
        handle = original_call_soon(callback, *args, **kwargs)
        close_and_wait()
        return handle

    monkeypatch.setattr(loop, "call_soon", call_soon)
    errors: list[BaseException] = []

    def slow_call() -> None:
        try:
            if kind == "call":
                runner.call(asyncio.sleep, 5)
            else:
                next(iterate(runner, stalled()))
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=slow_call, daemon=True)
    caller.start()
    caller.join(3)
    assert not caller.is_alive(), "close left the call running or waiting"
    assert len(errors) == 1
    assert isinstance(errors[0], ClientClosedError)
    closer[0].join(THREAD_TIMEOUT)
    assert new_client_threads(threads_before) == []


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_iterator_step_base_exception(
    runner: SyncRunner,
    caplog: pytest.LogCaptureFixture,
    error: type[BaseException],
) -> None:
    # A Ctrl-C handled as KeyboardInterrupt may surface inside the async
    # generator's frame. It must reach the caller like any other error.
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise error

    items = iterate(runner, broken())
    assert next(items) == 1
    with caplog.at_level(logging.WARNING), pytest.raises(error):
        next(items)
    assert caplog.records == []
    assert runner.call(echo, 5)[0] == 5


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_handed_off_step_base_exception(
    runner: SyncRunner,
    thread_errors: list[BaseException | None],
    error: type[BaseException],
) -> None:
    @asynccontextmanager
    async def failing_exit() -> AsyncIterator[None]:
        yield
        raise error

    outcome: list[BaseException] = []

    async def caller() -> int:
        # Handed off, so the helper thread runs the exit step.
        try:
            with SyncContextManager(runner, failing_exit()):
                pass
        except BaseException as exc:
            outcome.append(exc)
        return runner.call(echo, 7)[0]

    assert asyncio.run(caller()) == 7
    assert len(outcome) == 1
    assert isinstance(outcome[0], error)
    assert thread_errors == []


def test_helper_survives_background_exit(
    runner: SyncRunner,
    thread_errors: list[BaseException | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A task that a call left running raises SystemExit while the helper
    # thread runs the loop. The handed-off call and later ones still work.
    async def spawn_and_wait() -> str:
        async def exit_soon() -> None:
            raise SystemExit(3)

        task = asyncio.get_running_loop().create_task(exit_soon())
        await asyncio.sleep(0.05)
        assert isinstance(task.exception(), SystemExit)
        return "finished"

    async def caller() -> tuple[str, int]:
        first = runner.call(spawn_and_wait)
        return first, runner.call(echo, 8)[0]

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(caller()) == ("finished", 8)
    assert thread_errors == []
    logged = [record.exc_text or "" for record in caplog.records]
    assert any("SystemExit" in text for text in logged)


@pytest.mark.parametrize("use", ["iterate to the end", "break", "context manager"])
def test_unused_runner_collected(use: str) -> None:
    # Ending an iterator or a context manager schedules a callback on the
    # loop, which waits there until the next call. The runner must still be
    # garbage-collected, which stops the helper thread.
    sync_runner = SyncRunner()
    if use == "iterate to the end":
        assert len(list(iterate(sync_runner, numbers(3)))) == 3
    elif use == "break":
        for _ in iterate(sync_runner, numbers(3)):
            break
    else:
        with SyncContextManager(sync_runner, session()):
            pass
    helpers = [t for t in threading.enumerate() if t.name == "maestro-ml-sync-loop"]
    assert len(helpers) == 1
    reference = weakref.ref(sync_runner)
    del sync_runner
    gc.collect()
    assert reference() is None
    helpers[0].join(THREAD_TIMEOUT)
    assert not helpers[0].is_alive()
