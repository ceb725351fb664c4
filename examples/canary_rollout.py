"""A canary rollout on KServe: deploy v1, send 10% to v2, promote, roll back.

The deployment's `rollout_state` and `traffic` show at each step which revision
serves how much of the traffic. The two versions point at ``s3://`` sources,
which KServe reads directly, so no artifacts are needed to run this against
the fake cluster.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.demo import open_platform


def describe(deployment: Any) -> str:
    """Return the rollout state and traffic split as one line."""
    split = ", ".join(
        f"{t.percent}% {t.revision_name} ({t.role})" for t in deployment.traffic
    )
    return f"v{deployment.model_version} {deployment.rollout_state}: {split}"


async def canary(client: AsyncMaestroClient) -> list[str]:
    """Roll a second version out as a 10% canary; return the state after each step."""
    suffix = uuid.uuid4().hex[:6]
    model = f"churn-{suffix}"
    name = f"churn-{suffix}"
    await client.models.create(model)
    for number in (1, 2):
        await client.models.create_version(model, source=f"s3://models/churn/{number}")
    states: list[str] = []

    deployment = await client.deployment.deploy(
        name, model, model_version=1, strategy="canary", canary_traffic_percent=10
    )
    deployment = await deployment.wait_ready(timeout=120)
    states.append("deployed: " + describe(deployment))

    deployment = await client.deployment.update(name, model_version=2)
    deployment = await client.deployment.wait_ready(
        name, timeout=120, min_generation=deployment.generation
    )
    states.append("canary: " + describe(deployment))

    deployment = await client.deployment.promote(name)
    deployment = await client.deployment.wait_ready(
        name, timeout=120, min_generation=deployment.generation
    )
    states.append("promoted: " + describe(deployment))

    deployment = await client.deployment.rollback(name)
    deployment = await client.deployment.wait_ready(
        name, timeout=120, min_generation=deployment.generation
    )
    states.append("rolled back: " + describe(deployment))

    await client.deployment.delete(name)
    await client.models.delete(model)
    return states


async def main() -> list[str]:
    """Run the rollout on the configured or a local platform."""
    async with (
        open_platform(Path(".maestro-local"), "canary", 120) as platform,
        AsyncMaestroClient(config=platform.config) as client,
    ):
        states = await canary(client)
    for line in states:
        print(line)
    return states


if __name__ == "__main__":
    asyncio.run(main())
