"""The event-loop thread behind the sync client: threads, fork, context, close."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import select
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from maestro_ml_async import ClientClosedError, MaestroClient
from maestro_ml_async._sync._adapters import (
    SyncContextManager,
    iterate,
    run_in_worker_thread,
)
from maestro_ml_async._sync._runtime import SyncRunner

request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="unset"
)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "maestro-ml-sync-loop"]


@pytest.fixture
def runner() -> Iterator[SyncRunner]:
    sync_runner = SyncRunner()
    yield sync_runner
    sync_runner.close()


async def echo(value: object, delay: float = 0.0) -> tuple[object, str]:
    await asyncio.sleep(delay)
    return value, threading.current_thread().name


def test_call_runs_in_calling_thread(runner: SyncRunner) -> None:
    # With no other thread on the loop, the caller runs the loop itself.
    value, thread_name = runner.call(echo, 42)
    assert value == 42
    assert thread_name == threading.current_thread().name
    assert len(loop_threads()) == 1


def test_call_raises_coroutine_error(runner: SyncRunner) -> None:
    async def fail() -> None:
        raise LookupError("missing thing")

    with pytest.raises(LookupError, match="missing thing"):
        runner.call(fail)


def test_call_raises_timeout_error_of_coroutine(runner: SyncRunner) -> None:
    async def time_out() -> None:
        raise TimeoutError("took too long")

    with pytest.raises(TimeoutError, match="took too long"):
        runner.call(time_out)


async def test_call_inside_running_loop(runner: SyncRunner) -> None:
    # An async test runs on the main thread's loop, where asyncio.run fails.
    asyncio.get_running_loop()
    value, thread_name = runner.call(echo, "from a coroutine")
    assert value == "from a coroutine"
    # This thread cannot run a second loop, so the helper thread runs the call.
    assert thread_name == "maestro-ml-sync-loop"


def test_threads_share_runner(runner: SyncRunner) -> None:
    results: dict[int, list[object]] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            results[index] = [runner.call(echo, (index, i), 0.02)[0] for i in range(5)]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    elapsed = time.perf_counter() - started
    assert errors == []
    assert results == {i: [(i, j) for j in range(5)] for i in range(8)}
    # 40 calls of 20 ms in sequence take 0.8 s; sharing the loop overlaps them.
    assert elapsed < 0.6
    assert len(loop_threads()) == 1


def test_waiting_thread_is_not_queued_behind_slow_call(runner: SyncRunner) -> None:
    # One thread runs the loop for a slow call. A second thread's short call
    # runs on that same loop meanwhile, instead of waiting for the slow one.
    slow_started = threading.Event()
    finished: dict[str, float] = {}

    async def slow() -> None:
        slow_started.set()
        await asyncio.sleep(0.5)

    def run_slow() -> None:
        runner.call(slow)
        finished["slow"] = time.perf_counter()

    thread = threading.Thread(target=run_slow)
    thread.start()
    assert slow_started.wait(5)
    value, _ = runner.call(echo, "quick")
    finished["quick"] = time.perf_counter()
    thread.join(5)
    assert value == "quick"
    assert "slow" in finished
    assert finished["quick"] < finished["slow"]


def test_handed_off_call_outlives_owner_call(runner: SyncRunner) -> None:
    # The second call starts while the first thread runs the loop and ends
    # after that thread has stopped running it, so the helper thread takes over.
    owner_inside = threading.Event()
    release_owner = threading.Event()
    results: list[object] = []

    async def hold() -> None:
        owner_inside.set()
        await asyncio.to_thread(release_owner.wait, 5)

    thread = threading.Thread(target=runner.call, args=(hold,))
    thread.start()
    assert owner_inside.wait(5)

    def late_call() -> None:
        results.append(runner.call(echo, "late", 0.3))

    caller = threading.Thread(target=late_call)
    caller.start()
    time.sleep(0.05)
    release_owner.set()
    thread.join(5)
    caller.join(5)
    assert not caller.is_alive()
    assert results == [("late", "maestro-ml-sync-loop")]


def test_sigint_handler_restored_after_call(runner: SyncRunner) -> None:
    async def handler_inside() -> object:
        return signal.getsignal(signal.SIGINT)

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    inside = runner.call(handler_inside)
    # During the call, Ctrl-C cancels the request instead of raising in the loop.
    assert inside is not signal.default_int_handler
    assert callable(inside)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_own_sigint_handler_left_alone(runner: SyncRunner) -> None:
    async def handler_inside() -> object:
        return signal.getsignal(signal.SIGINT)

    def own_handler(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGINT, own_handler)
    try:
        assert runner.call(handler_inside) is own_handler
        assert signal.getsignal(signal.SIGINT) is own_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_tasks_pause_between_calls(runner: SyncRunner) -> None:
    # No thread runs the loop between calls, so a task left behind by one call
    # makes progress only during the next one, and is not lost.
    ticks: list[int] = []

    async def start_ticker() -> asyncio.Task[None]:
        async def tick() -> None:
            for number in range(3):
                ticks.append(number)
                await asyncio.sleep(0)

        return asyncio.get_running_loop().create_task(tick())

    task = runner.call(start_ticker)
    assert ticks == []
    runner.call(asyncio.sleep, 0.05)
    assert ticks == [0, 1, 2]
    assert task.done()


def test_context_variables_reach_coroutine(runner: SyncRunner) -> None:
    async def read() -> str:
        return request_id.get()

    token = request_id.set("req-7")
    try:
        assert runner.call(read) == "req-7"
    finally:
        request_id.reset(token)
    assert runner.call(read) == "unset"


def test_context_changes_stay_in_coroutine(runner: SyncRunner) -> None:
    async def write() -> None:
        request_id.set("changed inside")

    runner.call(write)
    assert request_id.get() == "unset"


def test_close_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    sync_runner = SyncRunner()
    sync_runner.call(echo, 1)
    assert len(loop_threads()) == 1
    sync_runner.close()
    assert set(threading.enumerate()) <= before
    assert sync_runner.closed


def test_close_twice_is_harmless(runner: SyncRunner) -> None:
    runner.call(echo, 1)
    runner.close()
    runner.close()


def test_call_after_close_raises(runner: SyncRunner) -> None:
    runner.call(echo, 1)
    runner.close()
    with pytest.raises(ClientClosedError, match="closed"):
        runner.call(echo, 2)


def test_close_before_first_call_starts_nothing() -> None:
    sync_runner = SyncRunner()
    sync_runner.close()
    assert loop_threads() == []


def test_close_cancels_call_in_flight(runner: SyncRunner) -> None:
    outcome: list[BaseException] = []

    def blocked_call() -> None:
        try:
            runner.call(asyncio.sleep, 30)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=blocked_call)
    thread.start()
    time.sleep(0.1)
    runner.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ClientClosedError)


def test_call_from_loop_thread_raises(runner: SyncRunner) -> None:
    async def reenter() -> object:
        return runner.call(echo, "nested")

    with pytest.raises(RuntimeError, match="runs on the client's own event loop"):
        runner.call(reenter)


def test_garbage_collected_runner_stops_thread() -> None:
    sync_runner = SyncRunner()
    sync_runner.call(echo, 1)
    thread = loop_threads()[0]
    del sync_runner
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


# --- async iterators and context managers -----------------------------------


class Numbers:
    """An async generator that records how it ends and which tasks run it."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.closed = False
        self.tasks: set[asyncio.Task[object] | None] = set()
        self.contexts: list[str] = []

    async def stream(self) -> AsyncIterator[int]:
        try:
            # A cancel scope across yields fails unless every step runs in
            # the task that entered it.
            with anyio.fail_after(30):
                for number in range(self.count):
                    self.tasks.add(asyncio.current_task())
                    self.contexts.append(request_id.get())
                    yield number
        finally:
            self.closed = True


def test_iterator_yields_all_items(runner: SyncRunner) -> None:
    numbers = Numbers(5)
    assert list(iterate(runner, numbers.stream())) == [0, 1, 2, 3, 4]
    assert numbers.closed
    assert len(numbers.tasks) == 1


def test_iterator_break_closes_async_generator(runner: SyncRunner) -> None:
    numbers = Numbers(100)
    for number in iterate(runner, numbers.stream()):
        if number == 2:
            break
    assert numbers.closed


def test_iterator_close_closes_async_generator(runner: SyncRunner) -> None:
    numbers = Numbers(100)
    items = iterate(runner, numbers.stream())
    assert next(items) == 0
    items.close()
    assert numbers.closed
    with pytest.raises(StopIteration):
        next(items)


def test_iterator_garbage_collection_closes_stream(runner: SyncRunner) -> None:
    numbers = Numbers(100)
    items = iterate(runner, numbers.stream())
    next(items)
    del items
    gc.collect()
    assert numbers.closed


def test_iterator_sees_caller_context(runner: SyncRunner) -> None:
    numbers = Numbers(3)
    token = request_id.set("iter-1")
    try:
        assert list(iterate(runner, numbers.stream())) == [0, 1, 2]
    finally:
        request_id.reset(token)
    assert numbers.contexts == ["iter-1"] * 3


def test_iterator_error_reaches_caller(runner: SyncRunner) -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise ValueError("stream broke")

    items = iterate(runner, broken())
    assert next(items) == 1
    with pytest.raises(ValueError, match="stream broke"):
        next(items)


def test_break_closes_http_stream(runner: SyncRunner) -> None:
    closed = threading.Event()

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(1000):
                yield b"x" * 10

        async def aclose(self) -> None:
            closed.set()

    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=Body()))
    http = httpx.AsyncClient(transport=transport)

    async def chunks() -> AsyncIterator[bytes]:
        async with http.stream("GET", "http://127.0.0.1/download") as response:
            async for chunk in response.aiter_raw():
                yield chunk

    for index, _ in enumerate(iterate(runner, chunks())):
        if index == 1:
            break
    assert closed.is_set()
    runner.call(http.aclose)


def test_context_manager_runs_in_one_task(runner: SyncRunner) -> None:
    seen: list[object] = []

    @asynccontextmanager
    async def session() -> AsyncIterator[str]:
        seen.append(asyncio.current_task())
        async with anyio.create_task_group():
            yield "open"
        seen.append(asyncio.current_task())

    with SyncContextManager(runner, session()) as value:
        assert value == "open"
    assert len(seen) == 2
    assert seen[0] is seen[1]


def test_context_manager_receives_exception(runner: SyncRunner) -> None:
    received: list[BaseException] = []

    @asynccontextmanager
    async def swallowing() -> AsyncIterator[None]:
        try:
            yield
        except KeyError as exc:
            received.append(exc)

    with SyncContextManager(runner, swallowing()):
        raise KeyError("inside")
    assert len(received) == 1


def test_context_manager_enter_error(runner: SyncRunner) -> None:
    @asynccontextmanager
    async def failing() -> AsyncIterator[None]:
        raise PermissionError("no entry")
        yield

    with pytest.raises(PermissionError), SyncContextManager(runner, failing()):
        pass


def test_worker_thread_callable_uses_sync_api(runner: SyncRunner) -> None:
    def sync_work(value: int) -> int:
        # Runs in a worker thread, so it may block on the loop thread.
        return int(str(runner.call(echo, value * 2)[0]))

    adapted = run_in_worker_thread(runner, sync_work)
    assert runner.call(adapted, 21) == 42


# --- fork --------------------------------------------------------------------


# Python 3.12 warns on fork in a process with threads; these tests fork on purpose.
FORK_WARNING = "ignore:This process .* is multi-threaded:DeprecationWarning"


def run_in_fork(child: Callable[[], str], timeout: float = 10.0) -> str:
    """Run `child` in a forked process and return the text it produced.

    The parent waits at most `timeout` seconds and kills a child that hangs.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.write(write_end, child().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        data = os.read(read_end, 65536) if ready else b""
    finally:
        os.close(read_end)
        deadline = time.monotonic() + 5
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)
    assert data, f"the forked child did not answer within {timeout} s"
    return data.decode()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings(FORK_WARNING)
def test_fork_child_raises_clear_error(runner: SyncRunner) -> None:
    runner.call(echo, "parent")

    def child() -> str:  # pragma: no cover - runs in the child
        try:
            runner.call(echo, "child")
        except ClientClosedError as exc:
            runner.close()
            return str(exc)
        return "no error"

    message = run_in_fork(child)
    assert "Create a new MaestroClient" in message
    assert runner.call(echo, "parent again")[0] == "parent again"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings(FORK_WARNING)
def test_fork_child_client_context_exits(mlflow_server_url: str) -> None:
    with MaestroClient(mlflow_uri=mlflow_server_url) as client:
        client.models.list(max_results=1).to_list()

        def child() -> str:  # pragma: no cover - runs in the child
            try:
                client.models.get("anything")
            except ClientClosedError as exc:
                client.close()
                return str(exc)
            return "no error"

        assert "Create a new MaestroClient" in run_in_fork(child)
        assert isinstance(client.models.list(max_results=1).to_list(), list)
    assert loop_threads() == []
