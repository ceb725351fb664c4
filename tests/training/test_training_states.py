"""Job states the operator produces, and what waits, watches and logs make of them."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from _training_helpers import eventually, make_client

from maestro_ml_async import AsyncMaestroClient, TrainingException
from maestro_ml_async.testing import RESOURCE_TYPES, FakeCluster
from maestro_ml_async.testing._scripts import (
    PodScript,
    fail,
    hang,
    pull_error,
    restart_then_succeed,
    succeed,
)
from maestro_ml_async.types.training import (
    JobStatus,
    LogLine,
    TrainingTimeoutException,
)

PODS = RESOURCE_TYPES["pods"]


async def statuses_of(job: Any) -> list[JobStatus]:
    return [snapshot.status async for snapshot in job.watch()]


async def test_fast_job_without_running(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # The pod is scheduled only once the watch has the Created job, and its
    # container exits at once, so the watch receives Created and then
    # Succeeded, with no Running in between.
    script = PodScript(run_time=0.0, gate="quick", gate_stage="schedule")
    cluster.scripts.set("pytorchjobs", "quick", script)
    job = await client.training.submit_job("quick", "pytorch", "img", workers=0)
    states: list[JobStatus] = []

    async def collect_states() -> None:
        async for snapshot in job.watch():
            states.append(snapshot.status)

    watcher = asyncio.ensure_future(collect_states())
    await eventually(lambda: bool(states), timeout=10, what="a first snapshot")
    cluster.scripts.open_gate("quick")
    _, reached = await asyncio.gather(watcher, job.wait(until="running", timeout=5))
    assert states[0] is JobStatus.CREATED
    assert states[-1] is JobStatus.SUCCEEDED
    assert JobStatus.RUNNING not in states
    assert reached.status is JobStatus.SUCCEEDED
    conditions = {c.type: c.status for c in reached.conditions}
    assert "Running" not in conditions or conditions["Running"] == "False"


async def test_finished_job_returns_without_watch(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    job = await client.training.submit_job("done", "pytorch", "img", workers=0)
    await job.wait(timeout=5)
    watches = cluster.stats.watch_connections_total
    again = await client.training.wait_for_job("done", timeout=0.01)
    assert again.status is JobStatus.SUCCEEDED
    assert cluster.stats.watch_connections_total == watches


async def test_unreachable_target_is_reported(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    job = await client.training.submit_job("ok-done", "pytorch", "img", workers=0)
    await job.wait(timeout=5)
    with pytest.raises(TrainingException, match="can no longer become failed"):
        await job.wait(until="failed", timeout=5)
    with pytest.raises(TrainingException, match="can no longer become suspended"):
        await job.wait(until="suspended", timeout=5)
    with pytest.raises(ValueError):
        await job.wait(until="exploded", timeout=5)


async def test_failure_raises_at_once_with_reason(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "boom", fail(exit_code=3, run_time=0.05))
    failed_at: list[float] = []
    loop = asyncio.get_running_loop()
    events = cluster.store.subscribe("pytorchjobs.kubeflow.org")

    async def spot_failure() -> None:
        while True:
            event = await events.get()
            conditions = (event.object.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Failed" and c["status"] == "True" for c in conditions):
                failed_at.append(loop.time())
                return

    spotter = asyncio.ensure_future(spot_failure())
    try:
        job = await client.training.submit_job("boom", "pytorch", "img", workers=1)
        with pytest.raises(TrainingException) as caught:
            await job.wait(timeout=20)
        raised_at = loop.time()
    finally:
        spotter.cancel()
        cluster.store.unsubscribe(events)
    assert caught.value.job_name == "boom"
    assert caught.value.reason == "PyTorchJobFailed"
    assert "backoff limit" in str(caught.value)
    assert failed_at
    assert raised_at - failed_at[0] < 0.5
    latest = await client.training.get_job("boom")
    assert latest.status is JobStatus.FAILED
    assert latest.failure is not None


async def test_restarting_job_and_logs_of_every_run(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # The kubelet keeps the log of the current and the previous run only, so
    # the first run waits until the watch has its first snapshot and the log
    # is followed. The later runs are read as current and previous run.
    script = dataclasses.replace(
        restart_then_succeed(2, logs=[(0.01, "load"), (0.01, "train")]),
        gate="flaky",
    )
    cluster.scripts.set("pytorchjobs", "flaky", script, replica_type="Master")
    job = await client.training.submit_job("flaky", "pytorch", "img", workers=0)
    states: list[JobStatus] = []

    async def collect_states() -> None:
        async for snapshot in job.watch():
            states.append(snapshot.status)

    watcher = asyncio.ensure_future(collect_states())
    reader = asyncio.ensure_future(collect_logs(job))
    await eventually(lambda: bool(states), timeout=10, what="a first snapshot")
    await eventually(
        lambda: cluster.stats.log_streams_open >= 1, timeout=10, what="a log follow"
    )
    cluster.scripts.open_gate("flaky")
    _, lines, final = await asyncio.gather(watcher, reader, job.wait(timeout=20))
    assert final.status is JobStatus.SUCCEEDED
    assert JobStatus.RESTARTING in states
    assert [line.line for line in lines] == ["load", "train"] * 3
    stamps = [line.timestamp for line in lines]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


async def collect_logs(job: Any, **options: Any) -> list[LogLine]:
    return [line async for line in job.logs(**options)]


async def test_logs_pick_up_replacement_pods(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    script = PodScript(restarts=1, logs=((0.01, "attempt"), (0.01, "end")))
    cluster.scripts.set("jobs", "retry", script)
    job = await client.training.submit_job("retry", "custom", "img")
    lines, final = await asyncio.gather(collect_logs(job), job.wait(timeout=20))
    assert final.status is JobStatus.SUCCEEDED
    pods = sorted({line.pod for line in lines})
    assert len(pods) == 2
    for pod in pods:
        assert [x.line for x in lines if x.pod == pod] == ["attempt", "end"]


async def test_follow_after_restart_reads_previous_run(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    script = PodScript(outcome="hang", restarts=1, logs=((0.0, "run"), (0.0, "x")))
    cluster.scripts.set("pytorchjobs", "late", script)
    job = await client.training.submit_job("late", "pytorch", "img", workers=0)
    pod_name = "late-master-0"

    def restarted_and_running() -> bool:
        pod = cluster.store.get(PODS, "ml-platform", pod_name) or {}
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return (
            bool(statuses)
            and statuses[0].get("restartCount", 0) >= 1
            and "running" in statuses[0].get("state", {})
            and len(cluster.pod_logs.lines("ml-platform", pod_name, "pytorch")) == 2
        )

    await eventually(restarted_and_running, timeout=10, what="the second run")
    lines: list[LogLine] = []

    async def first_four() -> None:
        async for line in job.logs():
            lines.append(line)
            if len(lines) == 4:
                return

    await asyncio.wait_for(first_four(), timeout=10)
    assert [(x.line, x.previous) for x in lines] == [
        ("run", True),
        ("x", True),
        ("run", False),
        ("x", False),
    ]
    await job.cancel()


async def test_current_logs_include_previous_run(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    script = PodScript(outcome="hang", restarts=1, logs=((0.0, "run"), (0.0, "x")))
    cluster.scripts.set("pytorchjobs", "loop", script)
    job = await client.training.submit_job("loop", "pytorch", "img", workers=0)
    await job.wait(until="running", timeout=5)

    async def restarted() -> bool:
        snapshot = await job.refresh()
        pod = cluster.store.get(PODS, "ml-platform", snapshot.pods["Master"][0])
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return (
            bool(statuses)
            and statuses[0].get("restartCount", 0) >= 1
            and ("running" in statuses[0].get("state", {}))
        )

    for _ in range(300):
        if await restarted():
            break
        await asyncio.sleep(0.01)
    lines = await collect_logs(job, follow=False)
    assert [(x.line, x.previous) for x in lines] == [
        ("run", True),
        ("x", True),
        ("run", False),
        ("x", False),
    ]
    await job.cancel()


async def test_image_pull_timeout_names_reasons(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "pull", pull_error())
    job = await client.training.submit_job("pull", "pytorch", "bad/img", workers=1)
    with pytest.raises(TrainingTimeoutException) as caught:
        await job.wait(timeout=0.5)
    error = caught.value
    assert error.job_name == "pull"
    assert error.last_status is JobStatus.CREATED
    assert set(error.pod_reasons) == {"pull-master-0", "pull-worker-0"}
    assert all(r.startswith("ImagePullBackOff") for r in error.pod_reasons.values())
    assert "ImagePullBackOff" in str(error)
    assert isinstance(error, TimeoutError)
    with pytest.raises(TrainingTimeoutException) as log_error:
        await collect_logs(job, pod_timeout=0.3)
    assert "ImagePullBackOff" in str(log_error.value)


async def test_pending_timeout_names_pending(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("jobs", "stuck", hang(pending=True))
    job = await client.training.submit_job("stuck", "sklearn", "img")
    with pytest.raises(TrainingTimeoutException) as caught:
        await job.wait(timeout=0.3)
    (reason,) = caught.value.pod_reasons.values()
    assert reason.startswith("ContainerCreating") or reason.startswith("Pending")


async def test_deleted_while_waiting(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("pytorchjobs", "vanish", hang())
    job = await client.training.submit_job("vanish", "pytorch", "img", workers=0)
    waiter = asyncio.ensure_future(job.wait(timeout=10))
    await asyncio.sleep(0.1)
    await client.training.delete_job("vanish")
    with pytest.raises(TrainingException, match="deleted") as caught:
        await waiter
    assert caught.value.reason == "Deleted"


async def test_trainjob_completes(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set("trainjobs", "tj", succeed(logs=[(0.01, "node says hi")]))
    job = await client.training.submit_job("tj", "trainjob", "img", workers=2)
    lines, final = await asyncio.gather(collect_logs(job), job.wait(timeout=10))
    assert final.status is JobStatus.SUCCEEDED
    assert [line.line for line in lines] == ["node says hi", "node says hi"]
    assert len({line.pod for line in lines}) == 2


def test_log_cursor_skips_lines_already_delivered() -> None:
    from maestro_ml_async.resources._training_logs import _Cursor, parse_log_timestamp

    first = parse_log_timestamp("2026-01-05T22:58:20.123456789Z")
    second = parse_log_timestamp("2026-01-05T22:58:21.5Z")
    assert first == 1767653900123456789
    assert second == 1767653901500000000
    assert parse_log_timestamp("not a time") is None
    cursor = _Cursor()
    cursor.rewind()
    # Two lines share one timestamp, then the connection drops.
    assert [cursor.accept(first), cursor.accept(first)] == [True, True]
    cursor.rewind()
    # The reconnect (sinceTime floors to the second) replays both and one more.
    replay = [first - 5, first, first, first, second]
    assert [cursor.accept(n) for n in replay] == [False, False, False, True, True]


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-01-05T23:58:20.123456789+01:00",
        "2026-01-05T17:28:20.123456789-05:30",
        "2026-01-05T22:58:20.123456789+00:00",
    ],
)
def test_log_timestamp_with_offset(stamp: str) -> None:
    from maestro_ml_async.resources._training_logs import (
        _split_line,
        parse_log_timestamp,
    )

    assert parse_log_timestamp(stamp) == 1767653900123456789
    nanos, text = _split_line(f"{stamp} step 1 loss=0.5\n".encode())
    assert nanos == 1767653900123456789
    assert text == "step 1 loss=0.5"


@pytest.mark.parametrize(
    "stamp",
    ["2026-01-05T22:58:20+0100", "2026-01-05 22:58:20Z", "2026-01-05T22:58:20.Z"],
)
def test_log_timestamp_rejects_other_forms(stamp: str) -> None:
    from maestro_ml_async.resources._training_logs import parse_log_timestamp

    assert parse_log_timestamp(stamp) is None


async def test_log_errors_are_retried_without_repeats(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    cluster.scripts.set(
        "jobs", "noisy", succeed(logs=[(0.02, f"l{i}") for i in range(5)])
    )
    fault = cluster.faults.fail(500, times=2, path="/log")
    job = await client.training.submit_job("noisy", "custom", "img")
    lines, _ = await asyncio.gather(collect_logs(job), job.wait(timeout=10))
    assert fault.hits == 2
    assert [line.line for line in lines] == [f"l{i}" for i in range(5)]


async def test_log_follow_resumes_after_drop(
    cluster: FakeCluster, client: AsyncMaestroClient
) -> None:
    # The server cuts the first followed log of the training container in the
    # middle of its fourth line. The stream reconnects with sinceTime and
    # neither repeats nor loses a line.
    # The container writes its lines only after that request has arrived,
    # because a stream that first reads the pod after the container's exit
    # requests the log without follow, and the fault cuts followed logs only.
    lines_out = tuple((0.02, f"m{i}") for i in range(8))
    cluster.scripts.set("jobs", "drop", PodScript(logs=lines_out, gate="drop"))
    fault = cluster.faults.drop_log(after_lines=3, container="trainer")
    job = await client.training.submit_job("drop", "custom", "img")
    reader = asyncio.ensure_future(collect_logs(job))
    await eventually(lambda: fault.hits == 1, timeout=10, what="a followed log")
    cluster.scripts.open_gate("drop")
    lines, _ = await asyncio.gather(reader, job.wait(timeout=10))
    assert fault.hits == 1
    assert [line.line for line in lines] == [f"m{i}" for i in range(8)]


async def test_wait_defaults_to_configured_timeout(cluster: FakeCluster) -> None:
    cluster.scripts.set("jobs", "slow", hang())
    async with make_client(cluster, training_job_timeout=0.3) as configured:
        job = await configured.training.submit_job("slow", "sklearn", "img")
        loop = asyncio.get_running_loop()
        started = loop.time()

        with pytest.raises(TrainingTimeoutException) as caught:
            await job.wait()

        assert "within 0.3 s" in str(caught.value)
        assert loop.time() - started < 5
