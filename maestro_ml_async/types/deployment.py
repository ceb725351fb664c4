"""Data models of KServe deployments: `Deployment`, its conditions and traffic."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

if TYPE_CHECKING:
    from ..resources.deployment import AsyncDeploymentResource

__all__ = [
    "Deployment",
    "DeploymentCondition",
    "DeploymentEvent",
    "ModelFailure",
    "RolloutState",
    "TrafficTarget",
]

RolloutState = Literal["stable", "canary", "blue_green", "rolled_back"]
"""The phase of a deployment's rollout, read from its spec and annotations.

``stable``: one revision serves all traffic (``canaryTrafficPercent`` unset).
``canary``: the latest revision serves ``canary_traffic_percent`` and the
previously rolled-out revision the rest. ``blue_green``: the latest revision is
up with no traffic, waiting to be switched to. ``rolled_back``: the latest
revision was pinned to 0 % by a rollback, so the previous revision serves all.
"""


class DeploymentCondition(BaseModel):
    """A condition of an InferenceService, in the Knative condition shape."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str
    status: str = Field(description='"True", "False" or "Unknown".')
    reason: str | None = None
    message: str | None = None
    severity: str | None = None
    last_transition_time: datetime | None = None

    @property
    def is_true(self) -> bool:
        """Whether the condition's status is ``"True"``."""
        return self.status == "True"

    def describe(self) -> str:
        """Return ``Type=Status (Reason: message)`` for error messages."""
        detail = ": ".join(part for part in (self.reason, self.message) if part)
        return f"{self.type}={self.status}" + (f" ({detail})" if detail else "")


class TrafficTarget(BaseModel):
    """One entry of the predictor's traffic split.

    Attributes:
        revision_name: The Knative revision that receives the traffic.
        percent: Share of the requests, 0 to 100.
        latest_revision: Whether the entry tracks the latest ready revision.
        tag: Route tag of the entry, when tag routing is on.
        role: ``canary`` for the latest revision while another revision is in
            the split, ``stable`` for the other revisions, or ``stable`` for a
            single entry that takes all traffic.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    revision_name: str | None = None
    percent: int = 0
    latest_revision: bool = False
    tag: str | None = None
    role: Literal["canary", "stable"] = "stable"


class ModelFailure(BaseModel):
    """The model server's last failure (``status.modelStatus.lastFailureInfo``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    location: str | None = None
    model_revision_name: str | None = None


class Deployment(BaseModel):
    """A registry model served by a KServe InferenceService.

    Attributes:
        name: The InferenceService name.
        namespace: Its namespace.
        url: The external URL from the status, once the controller set it.
        conditions: The status conditions (Ready, PredictorReady, IngressReady ...).
        model_name: Registered model name, read from the annotations that
            `deploy` writes; None for an InferenceService created elsewhere.
        model_version: The version in the current spec (the latest revision).
        previous_model_version: The version that was fully rolled out before
            the current rollout began, which `rollback` returns to.
        storage_uri: The ``storageUri`` of the predictor's model.
        model_format: The ``modelFormat.name`` of the predictor's model.
        runtime: The serving runtime named in the spec, if any.
        strategy: The rollout strategy recorded for later updates.
        canary_traffic_percent: The spec's ``canaryTrafficPercent``; None when unset.
        min_replicas: The predictor's ``minReplicas``.
        max_replicas: The predictor's ``maxReplicas``.
        rollout_state: See `RolloutState`.
        latest_ready_revision: Newest revision that is ready.
        latest_created_revision: Newest revision created for the spec.
        latest_rolledout_revision: Revision that last received all traffic.
        previous_rolledout_revision: Revision that had all traffic before it.
        traffic: The traffic split, with revision names, percents and roles.
        model_failure: The model server's last failure, if it reported one.
        transition_status: ``modelStatus.transitionStatus`` (UpToDate,
            InProgress, BlockedByFailedLoad, InvalidSpec).
        generation: ``metadata.generation``, bumped on every spec change.
        observed_generation: The generation the controller last acted on;
            None before the controller wrote a status.
        resource_version: ``metadata.resourceVersion``.
        created_at: ``metadata.creationTimestamp``.
        raw: The whole InferenceService object as the API server returned it.
    """

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str
    url: str | None = None
    conditions: list[DeploymentCondition] = Field(default_factory=list)
    model_name: str | None = None
    model_version: str | None = None
    previous_model_version: str | None = None
    storage_uri: str | None = None
    model_format: str | None = None
    runtime: str | None = None
    strategy: str = "rolling"
    canary_traffic_percent: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    rollout_state: RolloutState = "stable"
    latest_ready_revision: str | None = None
    latest_created_revision: str | None = None
    latest_rolledout_revision: str | None = None
    previous_rolledout_revision: str | None = None
    traffic: list[TrafficTarget] = Field(default_factory=list)
    model_failure: ModelFailure | None = None
    transition_status: str | None = None
    generation: int | None = None
    observed_generation: int | None = None
    resource_version: str | None = None
    created_at: datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    _resource: AsyncDeploymentResource | None = PrivateAttr(default=None)

    def condition(self, type_: str) -> DeploymentCondition | None:
        """Return the condition of the given type, or None when it is absent."""
        for condition in self.conditions:
            if condition.type == type_:
                return condition
        return None

    @property
    def has_status(self) -> bool:
        """Whether the controller has written any status yet."""
        return bool(self.raw.get("status"))

    @property
    def ready(self) -> bool:
        """Whether the Ready condition is true (for whatever generation it covers)."""
        condition = self.condition("Ready")
        return condition is not None and condition.is_true

    @property
    def up_to_date(self) -> bool:
        """Whether the current spec is what is ready.

        That is: the controller observed the current generation, Ready is
        true, and the latest created revision is also the latest ready one.
        A status without ``observedGeneration`` (as ModelMesh writes it) is
        judged by Ready and the revisions alone.
        """
        observed = self.observed_generation
        if self.generation is None or not self.ready:
            return False
        if observed is not None and observed < self.generation:
            return False
        created, ready = self.latest_created_revision, self.latest_ready_revision
        return created is None or created == ready

    @property
    def canary_revision(self) -> str | None:
        """The revision with the ``canary`` role in the traffic split, if any."""
        for target in self.traffic:
            if target.role == "canary":
                return target.revision_name
        return None

    @property
    def stable_revision(self) -> str | None:
        """The stable revision with the largest share of the traffic, if any."""
        stable = [t for t in self.traffic if t.role == "stable"]
        if not stable:
            return None
        return max(stable, key=lambda target: target.percent).revision_name

    def traffic_percent(self, revision_name: str) -> int:
        """Return the share of the traffic that a revision receives (0 if none)."""
        return sum(
            target.percent
            for target in self.traffic
            if target.revision_name == revision_name
        )

    def unmet_conditions(self) -> list[DeploymentCondition]:
        """Return every condition whose status is not ``"True"``."""
        return [condition for condition in self.conditions if not condition.is_true]

    async def wait_ready(self, timeout: float | None = None) -> Deployment:
        """Wait until the current spec of this deployment is ready.

        See `AsyncDeploymentResource.wait_ready`.

        Raises:
            DeploymentException: The controller reported a failure, or the
                deployment was deleted while waiting.
            TimeoutException: The deployment was not ready within `timeout`.
            RuntimeError: The object was not returned by a deployment client.
        """
        resource = self._resource
        if resource is None:
            raise RuntimeError(
                "this Deployment is not bound to a client; use "
                "client.deployment.wait_ready(name) instead"
            )
        return await resource.wait_ready(
            self.name,
            timeout=timeout,
            namespace=self.namespace,
            min_generation=self.generation,
        )

    async def refresh(self) -> Deployment:
        """Read the deployment again and return the new state.

        Raises:
            RuntimeError: The object was not returned by a deployment client.
        """
        resource = self._resource
        if resource is None:
            raise RuntimeError("this Deployment is not bound to a client")
        return await resource.get_deployment(self.name, namespace=self.namespace)


class DeploymentEvent(BaseModel):
    """One change of an InferenceService seen by `watch`.

    Attributes:
        type: ``ADDED``, ``MODIFIED`` or ``DELETED``.
        deployment: The object after the change (the last state for DELETED).
    """

    model_config = ConfigDict(extra="ignore")

    type: str
    deployment: Deployment
