"""Bulk operations: create, read, tag and delete many models concurrently.

`bulk_map` runs a coroutine per item with bounded concurrency (the client's
``max_concurrency``, 16 by default, which also sizes the connection pool),
keeps results in input order, and stores a failure as that item's result
instead of stopping the rest. A progress callback reports ``(done, total)``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from maestro_ml_async import AsyncMaestroClient, ModelNotFoundException
from maestro_ml_async.demo import open_platform

MODEL_COUNT = 40


def progress(label: str) -> Callable[[int, int], None]:
    """Return a callback that prints a progress line every 10 items."""

    def report(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"{label}: {done}/{total}")

    return report


async def bulk(client: AsyncMaestroClient, count: int = MODEL_COUNT) -> dict[str, int]:
    """Create `count` models with a version each, then read, tag and delete them."""
    prefix = f"bulk-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{index:03d}" for index in range(count)]

    async def create(name: str) -> str:
        await client.models.create(name, tags={"batch": prefix})
        version = await client.models.create_version(name, source=f"s3://m/{name}")
        return version.version

    created = await client.bulk_map(
        create, names, on_progress=progress("create"), raise_on_error=True
    )
    models = await client.models.get_many(
        [*names, f"{prefix}-missing"], on_progress=progress("get")
    )
    missing = [m for m in models if isinstance(m, ModelNotFoundException)]
    tagged = await client.models.set_version_tags(
        [(name, version) for name, version in zip(names, created.values, strict=True)],
        "reviewed",
        "yes",
        on_progress=progress("tag"),
    )
    deleted = await client.bulk_map(
        client.models.delete, names, on_progress=progress("delete")
    )
    return {
        "created": len(created.values),
        "read": len(models.values),
        "not found": len(missing),
        "tagged": len(tagged.values),
        "deleted": len(deleted.values),
        "errors": len(tagged.errors) + len(deleted.errors),
    }


async def main() -> dict[str, int]:
    """Run the bulk operations on the configured or a local platform."""
    async with (
        open_platform(Path(".maestro-local"), "bulk", 120) as platform,
        AsyncMaestroClient(config=platform.config) as client,
    ):
        summary = await bulk(client)
    print(summary)
    return summary


if __name__ == "__main__":
    asyncio.run(main())
