"""Watch many training jobs at once over one watch connection per job kind.

Submits a batch of small batch/v1 training jobs with a shared label, follows
every status change of all of them through one `watch_jobs` stream, and awaits
them together with `wait_for_jobs`, whose waits share the same watch.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.demo import open_platform

JOB_COUNT = 8
# NOTE: the fake cluster's local runner ignores the image; a real cluster needs
# one with Python.
IMAGE = "python:3.11-slim"


async def watch_many(
    client: AsyncMaestroClient, count: int = JOB_COUNT
) -> dict[str, object]:
    """Submit `count` jobs, print each status change, and wait for all of them."""
    batch = uuid.uuid4().hex[:6]
    selector = f"batch={batch}"
    names = [f"sweep-{batch}-{index}" for index in range(count)]
    changes: Counter[str] = Counter()
    finished: set[str] = set()
    all_seen = asyncio.Event()

    async def follow() -> None:
        async for event in client.training.watch_jobs(selector):
            job = event.job
            changes[job.status.value] += 1
            print(f"{event.type:<8} {job.name:<20} {job.status.value}")
            if job.finished:
                finished.add(job.name)
            if finished >= set(names):
                all_seen.set()

    watcher = asyncio.create_task(follow())
    try:
        await asyncio.gather(
            *(
                client.training.submit_job(
                    name,
                    "custom",
                    IMAGE,
                    command=["python", "-c", f"print('trial {index} done')"],
                    labels={"batch": batch},
                )
                for index, name in enumerate(names)
            )
        )
        results = await client.training.wait_for_jobs(
            names, timeout=300, return_exceptions=True
        )
        # The waits and the stream use separate watches, so the stream may
        # report the last changes a moment after the waits return.
        await asyncio.wait_for(all_seen.wait(), timeout=30)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    succeeded = [
        r.name for r in results if not isinstance(r, BaseException) and not r.failure
    ]
    for name in names:
        await client.training.delete_job(name)
    return {"submitted": len(names), "succeeded": len(succeeded), "events": changes}


async def main() -> dict[str, object]:
    """Run the example on the configured or a local platform."""
    async with (
        open_platform(Path(".maestro-local"), "watch-many-jobs", 120) as platform,
        AsyncMaestroClient(config=platform.config) as client,
    ):
        summary = await watch_many(client)
    print(summary)
    return summary


if __name__ == "__main__":
    asyncio.run(main())
