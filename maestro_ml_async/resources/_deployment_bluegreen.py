"""The second half of a blue-green rollout: wait for the new revision, then switch.

The first half, a spec change with ``canaryTrafficPercent: 0``, brings the new
revision up without traffic. KServe keeps routing everything to the revision
that was rolled out before, so a revision that never becomes ready costs no
traffic.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._exceptions import (
    DeploymentException,
    KubernetesNotFoundException,
    TimeoutException,
)
from ..types.deployment import Deployment
from ._deployment_patch import patch_with_retry, promote_patch
from ._deployment_wait import Bind, wait_until_ready
from ._kserve import ANNOTATION_ROLLOUT, parse_deployment

if TYPE_CHECKING:
    from .._transport._kube import ClusterTransport

__all__ = ["switch_blue_green"]

logger = logging.getLogger(__name__)


async def switch_blue_green(
    kube: ClusterTransport,
    staged: Deployment,
    bind: Bind,
    *,
    before_revision: str | None,
    timeout: float | None,
) -> Deployment:
    """Wait until the staged revision is ready, then give it all traffic.

    Args:
        kube: The cluster transport.
        staged: The deployment as the staging patch returned it.
        bind: Turns an object into a `Deployment` bound to its client.
        before_revision: The latest created revision before the staging
            patch, which does not count as the new one.
        timeout: Seconds to wait for the new revision; None waits forever.

    Raises:
        DeploymentException: The new revision failed; traffic stayed on the
            previous revision and the rollout state is ``rolled_back``.
        TimeoutException: The new revision was not ready in time; traffic
            stayed on the previous revision.
    """
    name, namespace = staged.name, staged.namespace
    try:
        await wait_until_ready(
            kube,
            namespace,
            name,
            bind,
            timeout=timeout,
            min_generation=staged.generation,
            not_revision=before_revision,
        )
    except (DeploymentException, TimeoutException) as exc:
        await _mark_rolled_back(kube, namespace, name)
        stable = staged.stable_revision or staged.latest_rolledout_revision
        message = (
            f"blue-green rollout of {name!r} to version {staged.model_version} "
            f"failed, so traffic stays on the previous revision "
            f"({stable or 'unknown'}): {exc}"
        )
        if isinstance(exc, DeploymentException):
            # KServe creates a revision only for a changed predictor spec, so
            # an update() to the same version waits on this failed revision.
            message += (
                ". Fix the cause, then roll out another version or change "
                "resources or runtime so that KServe creates a new revision; "
                "an update() to the same version fails on this revision again. "
                "Or delete() the deployment and deploy() it again"
            )
            raise DeploymentException(
                message, deployment_name=name, reasons=exc.reasons
            ) from exc
        raise TimeoutException(message) from exc
    version = staged.model_version

    def switch(obj: dict[str, Any]) -> dict[str, Any] | None:
        current = parse_deployment(obj)
        if current.model_version != version:
            raise DeploymentException(
                f"deployment {name!r} changed to version {current.model_version} "
                f"while version {version} was staged; traffic was not switched",
                deployment_name=name,
            )
        return promote_patch(obj)

    result, _ = await patch_with_retry(kube, namespace, name, switch)
    logger.info("switched all traffic of %s/%s to version %s", namespace, name, version)
    return bind(result)


async def _mark_rolled_back(kube: ClusterTransport, namespace: str, name: str) -> None:
    def mark(obj: dict[str, Any]) -> dict[str, Any] | None:
        if parse_deployment(obj).rollout_state != "blue_green":
            return None
        return {"metadata": {"annotations": {ANNOTATION_ROLLOUT: "rolled_back"}}}

    try:
        await patch_with_retry(kube, namespace, name, mark)
    except KubernetesNotFoundException:
        logger.info("deployment %s/%s was deleted during its rollout", namespace, name)
