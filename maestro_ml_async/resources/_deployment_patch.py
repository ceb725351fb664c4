"""Merge patches of InferenceServices: scaling, rollouts, promotion and rollback.

Each builder takes the object as just read and returns the JSON merge patch
(RFC 7386) that moves it to the requested state, or None when it is there
already. Deriving the patch from a fresh read makes a retry after a lost write
race recompute it instead of replaying a stale one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import (
    DeploymentException,
    KubernetesConflictException,
    ValidationException,
)
from ._kserve import (
    ANNOTATION_CANARY_PERCENT,
    ANNOTATION_PREVIOUS_MODEL_NAME,
    ANNOTATION_PREVIOUS_SOURCE_URI,
    ANNOTATION_PREVIOUS_STORAGE_URI,
    ANNOTATION_PREVIOUS_VERSION,
    ANNOTATION_ROLLOUT,
    ANNOTATION_SOURCE_URI,
    ANNOTATION_STRATEGY,
    DEPLOYMENT_MODE_ANNOTATION,
    GROUP,
    PLURAL,
    VERSION,
    ModelSpec,
    model_annotations,
    model_labels,
    parse_deployment,
)

if TYPE_CHECKING:
    from .._transport._kube import ClusterTransport

__all__ = [
    "MAX_CONFLICT_RETRIES",
    "ScaleChange",
    "patch_with_retry",
    "promote_patch",
    "rollback_patch",
    "rollout_patch",
    "scale_patch",
]

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
MAX_CONFLICT_RETRIES = 5
"""Fresh reads and new attempts after a 409 Conflict, before giving up."""
_RAW_MODES = frozenset({"RawDeployment", "Standard"})

Obj = dict[str, Any]
PatchBuilder = Callable[[Obj], "Obj | None"]


@dataclass(frozen=True)
class ScaleChange:
    """Requested changes to the predictor besides the model; None keeps a field."""

    replicas: int | None = None
    max_replicas: int | None = None
    resources: dict[str, Any] | None = None
    runtime: str | None = None
    strategy: str | None = None
    canary_traffic_percent: int | None = None


def _predictor(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((obj.get("spec") or {}).get("predictor")) or {}


def replace_object(old: Any, new: Mapping[str, Any]) -> dict[str, Any]:
    """Return a merge patch that turns mapping `old` into exactly `new`.

    A merge patch merges nested objects, so keys that `new` lacks are set to
    null explicitly.
    """
    patch: dict[str, Any] = dict(new)
    if isinstance(old, Mapping):
        for key in old:
            if key not in new:
                patch[key] = None
    return patch


def scale_patch(obj: Obj, change: ScaleChange) -> Obj:
    """Return the predictor fields and annotations that `change` sets.

    A canary share is recorded for later rollouts, and during a canary it
    also becomes the live ``canaryTrafficPercent``.

    Raises:
        ValidationException: The new maxReplicas is below the current
            minReplicas, which KServe rejects.
    """
    predictor = _predictor(obj)
    spec: dict[str, Any] = {}
    current_min, current_max = (
        predictor.get("minReplicas"),
        predictor.get("maxReplicas"),
    )
    if change.replicas is not None:
        spec["minReplicas"] = change.replicas
    if change.max_replicas is not None:
        floor = change.replicas if change.replicas is not None else current_min
        if isinstance(floor, int) and change.max_replicas < floor:
            raise ValidationException(
                f"max_replicas {change.max_replicas} is below minReplicas {floor}; "
                "pass replicas= as well to scale down"
            )
        spec["maxReplicas"] = change.max_replicas
    elif change.replicas is not None and isinstance(current_max, int):
        # minReplicas above maxReplicas is invalid, so scaling up raises the cap.
        if change.replicas > current_max:
            spec["maxReplicas"] = change.replicas

    model: dict[str, Any] = {}
    if change.resources is not None:
        old = (predictor.get("model") or {}).get("resources")
        model["resources"] = {
            key: replace_object((old or {}).get(key), value)
            for key, value in change.resources.items()
        }
        for key in old or {}:
            model["resources"].setdefault(key, None)
    if change.runtime is not None:
        model["runtime"] = change.runtime
    if model:
        spec["model"] = model

    percent = change.canary_traffic_percent
    if percent is not None and parse_deployment(obj).rollout_state == "canary":
        # A running canary moves to the new share (one step of a stepwise
        # canary). Outside a canary only the share of later rollouts changes.
        spec["canaryTrafficPercent"] = percent

    annotations: dict[str, Any] = {}
    if change.strategy is not None:
        annotations[ANNOTATION_STRATEGY] = change.strategy
    if percent is not None:
        annotations[ANNOTATION_CANARY_PERCENT] = str(percent)
    patch: Obj = {}
    if spec:
        patch["spec"] = {"predictor": spec}
    if annotations:
        patch["metadata"] = {"annotations": annotations}
    return patch


def check_traffic_splitting(obj: Obj, strategy: str) -> None:
    """Raise when the InferenceService runs in a mode without traffic splitting."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    mode = (obj.get("status") or {}).get("deploymentMode") or annotations.get(
        DEPLOYMENT_MODE_ANNOTATION
    )
    if mode in _RAW_MODES:
        name = (obj.get("metadata") or {}).get("name")
        raise DeploymentException(
            f"deployment {name!r} runs in KServe's {mode} mode, which has no "
            f"revisions or traffic split, so the {strategy} strategy cannot work; "
            "use strategy='rolling' or redeploy it in Knative mode",
            deployment_name=name,
        )


def rollout_patch(
    obj: Obj, model: ModelSpec, strategy: str, canary_percent: int | None
) -> Obj | None:
    """Return the patch that rolls out `model` with `strategy`.

    ``rolling`` replaces the model and clears any canary split. ``canary``
    gives the new revision `canary_percent` of the traffic. ``blue_green``
    brings the new revision up with 0 %. The version that served all traffic
    before the rollout is recorded, so `rollback_patch` can return to it.
    """
    current = parse_deployment(obj)
    # A URI that differs only by a trailing slash names the same artifacts,
    # as in deployments made before MLflow directories got the slash.
    same_uri = (current.storage_uri or "").rstrip("/") == model.storage_uri.rstrip("/")
    if (
        current.model_version == model.model_version
        and same_uri
        and current.rollout_state == "stable"
    ):
        return None
    if strategy != "rolling":
        check_traffic_splitting(obj, strategy)
    annotations: dict[str, Any] = dict(model_annotations(model))
    if current.rollout_state == "stable" and current.model_version is not None:
        # Only a fully rolled-out version is a rollback target. During a canary
        # the previous version keeps serving and stays the recorded one.
        annotations.update(_previous_model_annotations(obj))
    predictor: dict[str, Any] = {"model": {"storageUri": model.storage_uri}}
    if strategy == "canary":
        predictor["canaryTrafficPercent"] = canary_percent
        annotations[ANNOTATION_ROLLOUT] = "canary"
    elif strategy == "blue_green":
        predictor["canaryTrafficPercent"] = 0
        annotations[ANNOTATION_ROLLOUT] = "blue_green"
    else:
        predictor["canaryTrafficPercent"] = None
        annotations[ANNOTATION_ROLLOUT] = None
    # The labels follow the served model, as `deploy` sets them, so that
    # list_deployments(model_name=...) finds the deployment after a switch.
    return {
        "metadata": {"annotations": annotations, "labels": model_labels(model)},
        "spec": {"predictor": predictor},
    }


def promote_patch(obj: Obj) -> Obj | None:
    """Return the patch that sends all traffic to the latest revision."""
    current = parse_deployment(obj)
    if current.canary_traffic_percent is None:
        return None
    return {
        "metadata": {"annotations": {ANNOTATION_ROLLOUT: None}},
        "spec": {"predictor": {"canaryTrafficPercent": None}},
    }


def rollback_patch(obj: Obj) -> Obj | None:
    """Return the patch that sends all traffic back to the previous version.

    During a canary or a staged blue-green rollout, ``canaryTrafficPercent: 0``
    pins the traffic to the revision that was rolled out before, which KServe
    keeps running. After a promotion or a rolling update that revision no
    longer takes traffic, so the recorded previous model is deployed again:
    its name, version, storage URI and artifact URI, with the labels that
    `deploy` derives from them. The model that served until then becomes the
    recorded previous one, so a second rollback returns to it.

    Raises:
        DeploymentException: No previous version is recorded.
    """
    current = parse_deployment(obj)
    if current.canary_traffic_percent is not None:
        if current.rollout_state == "rolled_back":
            return None
        return {
            "metadata": {"annotations": {ANNOTATION_ROLLOUT: "rolled_back"}},
            "spec": {"predictor": {"canaryTrafficPercent": 0}},
        }
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    previous = annotations.get(ANNOTATION_PREVIOUS_VERSION)
    previous_uri = annotations.get(ANNOTATION_PREVIOUS_STORAGE_URI)
    # Deployments rolled out before the previous model name was recorded
    # only switched versions of one model.
    previous_name = (
        annotations.get(ANNOTATION_PREVIOUS_MODEL_NAME) or current.model_name
    )
    if not previous or not previous_uri or not previous_name:
        raise DeploymentException(
            f"deployment {current.name!r} has no previous version to roll back "
            "to; deploy the version you want with update(model_version=...)",
            deployment_name=current.name,
        )
    target = ModelSpec(
        model_name=previous_name,
        model_version=previous,
        storage_uri=previous_uri,
        artifact_uri=annotations.get(ANNOTATION_PREVIOUS_SOURCE_URI) or "",
    )
    restored: dict[str, Any] = dict(model_annotations(target))
    if not target.artifact_uri:
        restored[ANNOTATION_SOURCE_URI] = None
    restored.update(_previous_model_annotations(obj))
    restored[ANNOTATION_ROLLOUT] = None
    return {
        "metadata": {"annotations": restored, "labels": model_labels(target)},
        "spec": {"predictor": {"model": {"storageUri": previous_uri}}},
    }


def _previous_model_annotations(obj: Obj) -> dict[str, Any]:
    """Return the annotations that record the model `obj` serves as the previous one.

    A value that `obj` lacks is set to null, so that no part of an older
    record stays behind and mixes with this one.
    """
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    current = parse_deployment(obj)
    return {
        ANNOTATION_PREVIOUS_MODEL_NAME: current.model_name,
        ANNOTATION_PREVIOUS_VERSION: current.model_version,
        ANNOTATION_PREVIOUS_STORAGE_URI: current.storage_uri,
        ANNOTATION_PREVIOUS_SOURCE_URI: annotations.get(ANNOTATION_SOURCE_URI),
    }


def merge_patches(*patches: Obj | None) -> Obj | None:
    """Merge several merge patches into one; None when all are empty."""
    result: Obj = {}
    for patch in patches:
        if patch:
            _deep_merge(result, patch)
    return result or None


def _deep_merge(target: Obj, patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = dict(value) if isinstance(value, Mapping) else value


async def patch_with_retry(
    kube: ClusterTransport,
    namespace: str,
    name: str,
    build: PatchBuilder,
    *,
    precondition: bool = True,
) -> tuple[Obj, bool]:
    """Read the object, build a patch from it and apply it, retrying on 409.

    With `precondition`, the patch carries the resourceVersion that was read,
    so it applies only to that state; a controller's status write in between
    makes the API server return 409 Conflict. A conflict is retried from a
    fresh read up to `MAX_CONFLICT_RETRIES` times.

    Returns:
        The object after the patch, and whether a patch was sent (False when
        the builder found nothing to change).

    Raises:
        KubernetesConflictException: Every attempt lost its race.
        KubernetesNotFoundException: The object does not exist.
    """
    from .._transport._kube import resource_path

    path = resource_path(GROUP, VERSION, PLURAL, namespace, name)
    for attempt in range(MAX_CONFLICT_RETRIES + 1):
        current: Obj = await kube.request("GET", path)
        patch = build(current)
        if patch is None:
            return current, False
        if precondition:
            rv = (current.get("metadata") or {}).get("resourceVersion")
            patch = merge_patches(patch, {"metadata": {"resourceVersion": rv}}) or {}
        try:
            result: Obj = await kube.request(
                "PATCH", path, body=patch, content_type=MERGE_PATCH
            )
        except KubernetesConflictException as exc:
            if exc.reason == "AlreadyExists" or attempt == MAX_CONFLICT_RETRIES:
                raise
            delay = random.uniform(0, min(1.0, 0.02 * 2**attempt))
            logger.info(
                "patch of %s/%s lost a write race (%s); retrying from a fresh read "
                "in %.3f s (attempt %d of %d)",
                namespace,
                name,
                exc.message,
                delay,
                attempt + 2,
                MAX_CONFLICT_RETRIES + 1,
            )
            await asyncio.sleep(delay)
            continue
        return result, True
    raise AssertionError("unreachable: the loop returns or raises")
