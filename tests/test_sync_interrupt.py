"""Ctrl-C during a blocking sync call, in a subprocess of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

# The child starts an HTTP server on 127.0.0.1 that never answers, sends one
# request through MaestroClient, and raises SIGINT from a timer thread. It
# prints how long the call took to end and whether the server saw the
# connection close.
CHILD = textwrap.dedent(
    """
    import json, os, signal, socket, threading, time
    from maestro_ml_async import MaestroClient

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    got_request = threading.Event()
    peer_closed = threading.Event()

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(10)
        data = b""
        while b"\\r\\n\\r\\n" not in data:
            data += conn.recv(65536)
        got_request.set()
        try:
            if conn.recv(65536) == b"":
                peer_closed.set()
        except OSError:
            peer_closed.set()

    threading.Thread(target=serve, daemon=True).start()

    def interrupt():
        got_request.wait(10)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    client = MaestroClient(
        mlflow_uri=f"http://127.0.0.1:{port}", request_timeout=60, max_retries=0
    )
    started = time.monotonic()
    outcome = "returned"
    try:
        client.models.get("slow-model")
    except KeyboardInterrupt:
        outcome = "KeyboardInterrupt"
    except BaseException as exc:
        outcome = repr(exc)
    elapsed = time.monotonic() - started
    handler_restored = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    peer_closed.wait(5)
    client.close()
    threads = [t.name for t in threading.enumerate() if t.name.startswith("maestro")]
    print(json.dumps({
        "outcome": outcome,
        "elapsed": elapsed,
        "request_seen": got_request.is_set(),
        "connection_closed": peer_closed.is_set(),
        "threads_left": threads,
        "handler_restored": handler_restored,
    }))
    """
)


# The child iterates an async generator that waits forever for its second
# item, and raises SIGINT while `next()` blocks.
STREAM_CHILD = textwrap.dedent(
    """
    import asyncio, json, os, signal, threading, time
    from maestro_ml_async._sync._adapters import iterate
    from maestro_ml_async._sync._runtime import SyncRunner

    finally_ran = threading.Event()

    async def stalled():
        try:
            yield 1
            await asyncio.sleep(60)
            yield 2
        finally:
            finally_ran.set()

    runner = SyncRunner()
    items = iterate(runner, stalled())
    first = next(items)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    outcome = "returned"
    try:
        next(items)
    except KeyboardInterrupt:
        outcome = "KeyboardInterrupt"
    elapsed = time.monotonic() - started
    try:
        next(items)
        after = "item"
    except StopIteration:
        after = "StopIteration"
    except BaseException as exc:
        after = type(exc).__name__
    runner.close()
    print(json.dumps({
        "first": first,
        "outcome": outcome,
        "elapsed": elapsed,
        "finally_ran": finally_ran.is_set(),
        "after": after,
    }))
    """
)


# The child calls the sync API from a coroutine under `asyncio.run`, so the
# call is handed off, and raises SIGINT while it waits. On Python 3.11+
# `asyncio.run` handles that SIGINT by cancelling its main task.
ASYNCIO_RUN_CHILD = textwrap.dedent(
    """
    import asyncio, json, os, signal, threading, time
    from maestro_ml_async._sync._runtime import SyncRunner

    started = threading.Event()
    cancelled = threading.Event()

    async def slow():
        started.set()
        try:
            await asyncio.sleep(20)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def interrupt():
        started.wait(10)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    runner = SyncRunner()

    async def main():
        runner.call(slow)

    started_at = time.monotonic()
    outcome = "returned"
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        outcome = "KeyboardInterrupt"
    elapsed = time.monotonic() - started_at

    async def echo():
        return "still works"

    after = runner.call(echo)
    restored = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    runner.close()
    print(json.dumps({
        "outcome": outcome,
        "elapsed": elapsed,
        "cancelled": cancelled.is_set(),
        "after": after,
        "handler_restored": restored,
    }))
    """
)


def run_child(code: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_ML_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_ctrl_c_cancels_request_in_flight() -> None:
    result = run_child(CHILD)
    assert result["request_seen"]
    assert result["outcome"] == "KeyboardInterrupt"
    # SIGINT is sent 0.2 s after the request arrived. The main thread runs
    # the loop, so the handler cancels the request at once.
    assert result["elapsed"] < 1.0
    assert result["connection_closed"]
    assert result["threads_left"] == []
    assert result["handler_restored"]


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_ctrl_c_during_iteration_closes_stream() -> None:
    result = run_child(STREAM_CHILD)
    assert result["first"] == 1
    assert result["outcome"] == "KeyboardInterrupt"
    assert isinstance(result["elapsed"], float)
    assert result["elapsed"] < 1.0
    assert result["finally_ran"]
    # The generator is finished after the interrupt, like a sync generator
    # that raised.
    assert result["after"] == "StopIteration"


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_ctrl_c_under_asyncio_run() -> None:
    result = run_child(ASYNCIO_RUN_CHILD)
    assert result["outcome"] == "KeyboardInterrupt"
    # The call would take 20 s. The waiting caller notices the cancellation
    # of its task within one wait slice of 0.1 s.
    assert isinstance(result["elapsed"], float)
    assert result["elapsed"] < 5.0
    assert result["cancelled"]
    assert result["after"] == "still works"
    assert result["handler_restored"]
