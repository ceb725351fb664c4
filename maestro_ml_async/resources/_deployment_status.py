"""Readiness of an InferenceService: ready, still pending, or failed for good."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..types.deployment import Deployment, ModelFailure

__all__ = ["Readiness", "describe_not_ready", "evaluate_readiness"]

# Condition reasons after which the controller does not recover without a new
# spec. RevisionFailed comes from Knative, the others from KServe's model status.
FAILURE_REASONS = frozenset(
    {
        "RevisionFailed",
        "ModelLoadFailed",
        "RuntimeUnhealthy",
        "NoSupportingRuntime",
        "RuntimeNotRecognized",
        "InvalidPredictorSpec",
        "InvalidSpec",
        "ContainerMissing",
        "ProgressDeadlineExceeded",
    }
)
_FAILED_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})


@dataclass(frozen=True)
class Readiness:
    """The verdict on one observed state.

    Attributes:
        state: ``ready``, ``pending`` or ``failed``.
        reasons: The controller's reason codes of a failure, in order.
        details: One line per reason, with the message and exit code.
    """

    state: Literal["ready", "pending", "failed"]
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def evaluate_readiness(
    deployment: Deployment,
    *,
    min_generation: int | None = None,
    not_revision: str | None = None,
) -> Readiness:
    """Decide whether a deployment is ready, still pending, or has failed.

    Args:
        deployment: The observed state.
        min_generation: Treat a state older than this generation as pending,
            so the state before one's own spec change is never taken as ready.
        not_revision: A revision that does not count as the new one: while the
            latest created revision is still this one, the state is pending.
    """
    if not deployment.has_status:
        return Readiness("pending")
    generation = deployment.generation or 0
    if min_generation is not None and generation < min_generation:
        return Readiness("pending")
    observed = deployment.observed_generation
    if observed is None and not deployment.conditions:
        return Readiness("pending")
    # NOTE: ModelMesh InferenceServices have conditions but no
    # observedGeneration. Ready and the revisions then decide alone, so a wait
    # started right after a change may still see the previous Ready.
    if observed is not None and observed < generation:
        # A failure recorded for an older spec says nothing about this one.
        return Readiness("pending")
    reasons, details = _failures(deployment)
    if reasons:
        return Readiness("failed", reasons, details)
    if not_revision is not None and deployment.latest_created_revision in (
        None,
        not_revision,
    ):
        return Readiness("pending")
    if deployment.up_to_date:
        return Readiness("ready")
    return Readiness("pending")


def _failures(deployment: Deployment) -> tuple[list[str], list[str]]:
    reasons: list[str] = []
    details: list[str] = []
    failure = deployment.model_failure
    if failure is not None and _failure_is_current(deployment, failure):
        reason = failure.reason or deployment.transition_status or "ModelLoadFailed"
        text = f"{reason}: {failure.message or 'the model server failed'}"
        if failure.exit_code is not None:
            text += f" (exit code {failure.exit_code})"
        reasons.append(reason)
        details.append(text)
    for condition in deployment.conditions:
        if condition.status != "False" or condition.reason not in FAILURE_REASONS:
            continue
        text = f"{condition.type}: {condition.reason}: {condition.message or ''}"
        if condition.reason not in reasons:
            reasons.append(condition.reason)
        details.append(text.rstrip(": "))
    return reasons, details


def _failure_is_current(deployment: Deployment, failure: ModelFailure) -> bool:
    # KServe's status code (inference_service_status.go) keeps lastFailureInfo
    # after the model loads again and only moves transitionStatus to InProgress
    # or UpToDate, so a failure counts only while the transition status reports it.
    transition = deployment.transition_status
    if transition is not None:
        if transition not in _FAILED_TRANSITIONS:
            return False
    elif failure.reason not in FAILURE_REASONS:
        return False
    revision = failure.model_revision_name
    latest = deployment.latest_created_revision
    return revision is None or latest is None or revision == latest


def describe_not_ready(
    deployment: Deployment | None, *, not_revision: str | None = None
) -> str:
    """Return every reason why a deployment is not ready, for a timeout message.

    `not_revision` is the revision that does not count as the new one, as in
    `evaluate_readiness`.
    """
    if deployment is None:
        return "the deployment was never read"
    if not deployment.has_status:
        return "the controller has not written a status yet"
    parts: list[str] = []
    generation, observed = deployment.generation, deployment.observed_generation
    if observed is None and not deployment.conditions:
        parts.append("the controller has not observed any generation yet")
    elif observed is None:
        parts.append("the status has no observedGeneration")
    elif observed is not None and generation is not None and observed < generation:
        parts.append(
            f"the controller has observed generation {observed}, not {generation}"
        )
    created, ready = (
        deployment.latest_created_revision,
        deployment.latest_ready_revision,
    )
    if not_revision is not None and created in (None, not_revision):
        parts.append(f"no revision newer than {not_revision} was created yet")
    if created is not None and created != ready:
        parts.append(
            f"the latest created revision {created} is not ready "
            f"(latest ready: {ready})"
        )
    unmet = deployment.unmet_conditions()
    parts.extend(condition.describe() for condition in unmet)
    if not deployment.conditions:
        parts.append("the status has no conditions")
    return "; ".join(parts) or "no condition is false, but the spec is not ready"
