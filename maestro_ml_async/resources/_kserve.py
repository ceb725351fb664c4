"""InferenceService manifests: the spec builder, labels, and parsing into `Deployment`.

Field names follow KServe's ``serving.kserve.io/v1beta1`` InferenceService: the
predictor contains ``minReplicas``, ``maxReplicas``, ``canaryTrafficPercent`` and a
``model`` with ``modelFormat``, ``protocolVersion``, ``storageUri``, ``runtime``
and ``resources``. The status carries the Knative revisions and traffic split
under ``status.components.predictor``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._exceptions import ValidationException
from .._timestamps import parse_rfc3339
from .._validation import check_kubernetes_name
from ..types.deployment import (
    Deployment,
    DeploymentCondition,
    ModelFailure,
    RolloutState,
    TrafficTarget,
)
from ._training_quantities import check_quantity

__all__ = [
    "GROUP",
    "MODEL_FORMATS",
    "PLURAL",
    "STRATEGIES",
    "VERSION",
    "ModelSpec",
    "build_inference_service",
    "check_deployment_name",
    "model_name_hash",
    "parse_deployment",
]

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"

PREFIX = "maestro-ml.io/"
ANNOTATION_MODEL_NAME = PREFIX + "model-name"
ANNOTATION_MODEL_VERSION = PREFIX + "model-version"
ANNOTATION_SOURCE_URI = PREFIX + "artifact-uri"
ANNOTATION_PREVIOUS_VERSION = PREFIX + "previous-model-version"
ANNOTATION_PREVIOUS_STORAGE_URI = PREFIX + "previous-storage-uri"
ANNOTATION_PREVIOUS_MODEL_NAME = PREFIX + "previous-model-name"
ANNOTATION_PREVIOUS_SOURCE_URI = PREFIX + "previous-artifact-uri"
ANNOTATION_STRATEGY = PREFIX + "strategy"
ANNOTATION_CANARY_PERCENT = PREFIX + "canary-traffic-percent"
ANNOTATION_ROLLOUT = PREFIX + "rollout"
LABEL_MODEL_NAME = PREFIX + "model-name"
LABEL_MODEL_NAME_HASH = PREFIX + "model-name-hash"
LABEL_MODEL_VERSION = PREFIX + "model-version"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "maestro-ml"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"

STRATEGIES = ("rolling", "canary", "blue_green")
MODEL_FORMATS = (
    "mlflow",
    "sklearn",
    "xgboost",
    "lightgbm",
    "pytorch",
    "tensorflow",
    "onnx",
    "triton",
    "huggingface",
    "pmml",
    "paddle",
)
# A custom ServingRuntime may declare any format name in its
# supportedModelFormats. KServe stores it as given, so only its shape is checked.
_CUSTOM_FORMAT = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
PROTOCOL_VERSIONS = ("v1", "v2", "grpc-v2")
# MLflow models run on MLServer, which speaks the open inference protocol (v2);
# Triton speaks only v2. The other servers default to v1 in KServe.
_DEFAULT_PROTOCOL = {"mlflow": "v2", "triton": "v2"}

# Knative names revisions "<isvc>-predictor-00001", and a revision name must be
# a DNS label of at most 63 characters, which leaves 47 for the service name.
MAX_DEPLOYMENT_NAME_LENGTH = 47
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_LENGTH = 63
_LABEL_INVALID = re.compile(r"[^A-Za-z0-9._-]+")
_RESOURCE_SECTIONS = frozenset({"requests", "limits"})


def check_deployment_name(name: object) -> str:
    """Check an InferenceService name (a DNS-1035 label of at most 47 characters)."""
    checked = check_kubernetes_name(
        name, what="deployment name", max_length=MAX_DEPLOYMENT_NAME_LENGTH
    )
    if not _DNS_1035_LABEL.fullmatch(checked):
        raise ValidationException(
            f"deployment name {checked!r} must start with a lowercase letter "
            "(KServe names are DNS-1035 labels)"
        )
    return checked


def model_name_hash(model_name: str) -> str:
    """Return a label-safe digest of a registered model name (16 hex digits)."""
    return hashlib.sha256(model_name.encode("utf-8")).hexdigest()[:16]


def label_safe(value: str) -> str:
    """Return a valid label value that resembles `value`.

    Invalid characters become ``-``. A value that had to change, or is too
    long, gets a digest suffix so that two different names never share it.
    """
    cleaned = _LABEL_INVALID.sub("-", value).strip("-_.")
    if cleaned == value and len(value) <= _LABEL_VALUE_LENGTH:
        return value
    suffix = model_name_hash(value)[:8]
    head = cleaned[: _LABEL_VALUE_LENGTH - len(suffix) - 1].rstrip("-_.")
    return f"{head}-{suffix}" if head else suffix


@dataclass(frozen=True)
class ModelSpec:
    """The model a predictor serves: a registry version at a storage URI.

    Attributes:
        model_name: Registered model name.
        model_version: Registered model version.
        storage_uri: The URI that KServe's storage initializer reads.
        artifact_uri: The registry's download URI before the prefix rewrite.
    """

    model_name: str
    model_version: str
    storage_uri: str
    artifact_uri: str


def check_model_format(model_format: object, *, runtime: str | None = None) -> str:
    """Check a KServe model format name and return it.

    A built-in format name is matched in any case and returned in lower case.
    Any other name needs `runtime`, the custom ServingRuntime that declares it.
    """
    if not isinstance(model_format, str) or not model_format:
        raise ValidationException(
            f"model_format must be a non-empty string, got {model_format!r}"
        )
    lowered = model_format.lower()
    if lowered in MODEL_FORMATS:
        return lowered
    if runtime is None:
        raise ValidationException(
            f"model_format must be one of {', '.join(MODEL_FORMATS)}, "
            f"got {model_format!r}; for a format of a custom ServingRuntime, "
            "also pass runtime= with that runtime's name"
        )
    if not _CUSTOM_FORMAT.fullmatch(model_format):
        raise ValidationException(
            f"model_format {model_format!r} is invalid: use letters, digits, "
            "'.', '_' and '-' (at most 63 characters)"
        )
    return model_format


def protocol_for(model_format: str, protocol_version: str | None) -> str | None:
    """Return the protocol version to set, or None to keep KServe's default."""
    if protocol_version is None:
        return _DEFAULT_PROTOCOL.get(model_format)
    if protocol_version not in PROTOCOL_VERSIONS:
        raise ValidationException(
            f"protocol_version must be one of {', '.join(PROTOCOL_VERSIONS)}, "
            f"got {protocol_version!r}"
        )
    return protocol_version


def check_resources(resources: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return container resources in the Kubernetes ``requests``/``limits`` form.

    A flat mapping such as ``{"cpu": "1", "memory": "2Gi"}`` sets both the
    requests and the limits, which gives the pod the Guaranteed QoS class.
    """
    if resources is None:
        return None
    if not isinstance(resources, Mapping) or not resources:
        raise ValidationException(
            "resources must be a non-empty mapping such as "
            '{"requests": {"cpu": "1"}, "limits": {"memory": "2Gi"}}'
        )
    if set(resources) <= _RESOURCE_SECTIONS:
        sections = {
            key: _check_quantities(key, value) for key, value in resources.items()
        }
        return sections
    if set(resources) & _RESOURCE_SECTIONS:
        raise ValidationException(
            "resources mixes 'requests'/'limits' with plain resource names; "
            "use one form or the other"
        )
    flat = _check_quantities("resources", resources)
    return {"requests": dict(flat), "limits": dict(flat)}


def _check_quantities(section: str, values: object) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise ValidationException(f"resources {section!r} must be a mapping")
    checked: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ValidationException(f"resource names in {section!r} must be strings")
        # The API server rejects a quantity outside the Kubernetes grammar with
        # 422, after the registry lookup, so it is checked here first.
        checked[key] = check_quantity(value, f"quantity of {key!r} in {section!r}")
    return checked


def model_annotations(model: ModelSpec) -> dict[str, str]:
    """Return the annotations that trace a deployment back to the registry."""
    return {
        ANNOTATION_MODEL_NAME: model.model_name,
        ANNOTATION_MODEL_VERSION: model.model_version,
        ANNOTATION_SOURCE_URI: model.artifact_uri,
    }


def model_labels(model: ModelSpec) -> dict[str, str]:
    """Return the labels that select deployments by registered model."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_MODEL_NAME: label_safe(model.model_name),
        LABEL_MODEL_NAME_HASH: model_name_hash(model.model_name),
        LABEL_MODEL_VERSION: model.model_version,
    }


@dataclass(frozen=True)
class PredictorOptions:
    """Serving options of a new InferenceService."""

    replicas: int
    max_replicas: int | None
    model_format: str
    protocol_version: str | None
    runtime: str | None
    resources: dict[str, Any] | None
    strategy: str
    canary_traffic_percent: int | None


def build_inference_service(
    name: str, namespace: str, model: ModelSpec, options: PredictorOptions
) -> dict[str, Any]:
    """Return the InferenceService manifest of a new deployment."""
    annotations = model_annotations(model)
    annotations[ANNOTATION_STRATEGY] = options.strategy
    if options.canary_traffic_percent is not None:
        annotations[ANNOTATION_CANARY_PERCENT] = str(options.canary_traffic_percent)
    if options.strategy != "rolling":
        # Revisions and traffic splitting exist only in KServe's Knative mode.
        # The Standard (raw Deployment) mode has one ReplicaSet and no split.
        # NOTE: KServe releases before 0.15 name this mode "Serverless"; whether
        # they accept "Knative" was not checked.
        annotations[DEPLOYMENT_MODE_ANNOTATION] = "Knative"
    predictor: dict[str, Any] = {
        "minReplicas": options.replicas,
        "maxReplicas": options.max_replicas or max(options.replicas, 1),
        "model": model_section(model, options),
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": model_labels(model),
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def model_section(model: ModelSpec, options: PredictorOptions) -> dict[str, Any]:
    """Return the predictor's ``model`` section."""
    section: dict[str, Any] = {
        "modelFormat": {"name": options.model_format},
        "storageUri": model.storage_uri,
    }
    protocol = protocol_for(options.model_format, options.protocol_version)
    if protocol is not None:
        section["protocolVersion"] = protocol
    if options.runtime is not None:
        section["runtime"] = options.runtime
    if options.resources is not None:
        section["resources"] = options.resources
    return section


def _dig(data: Mapping[str, Any], *keys: str) -> Any:
    current: Any = data
    for key in keys:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def _conditions(status: Mapping[str, Any]) -> list[DeploymentCondition]:
    result = []
    for item in status.get("conditions") or []:
        if not isinstance(item, Mapping) or not item.get("type"):
            continue
        result.append(
            DeploymentCondition(
                type=str(item["type"]),
                status=str(item.get("status") or "Unknown"),
                reason=item.get("reason"),
                message=item.get("message"),
                severity=item.get("severity"),
                last_transition_time=_parse_time(item.get("lastTransitionTime")),
            )
        )
    return result


def _traffic(predictor_status: Mapping[str, Any]) -> list[TrafficTarget]:
    entries = [
        e for e in predictor_status.get("traffic") or [] if isinstance(e, Mapping)
    ]
    split = len(entries) > 1
    targets = []
    for entry in entries:
        latest = bool(entry.get("latestRevision"))
        targets.append(
            TrafficTarget(
                revision_name=entry.get("revisionName"),
                percent=_int_or_none(entry.get("percent")) or 0,
                latest_revision=latest,
                tag=entry.get("tag"),
                role="canary" if split and latest else "stable",
            )
        )
    return targets


def _model_failure(status: Mapping[str, Any]) -> ModelFailure | None:
    info = _dig(status, "modelStatus", "lastFailureInfo")
    if not isinstance(info, Mapping) or not info:
        return None
    return ModelFailure(
        reason=info.get("reason"),
        message=info.get("message"),
        exit_code=_int_or_none(info.get("exitCode")),
        location=info.get("location"),
        model_revision_name=info.get("modelRevisionName"),
    )


def rollout_state_of(
    canary_percent: int | None, annotations: Mapping[str, Any]
) -> RolloutState:
    """Return the rollout state that the spec and our annotation describe."""
    if canary_percent is None or canary_percent >= 100:
        return "stable"
    if canary_percent > 0:
        return "canary"
    if annotations.get(ANNOTATION_ROLLOUT) == "blue_green":
        return "blue_green"
    return "rolled_back"


def parse_deployment(obj: Mapping[str, Any]) -> Deployment:
    """Turn an InferenceService object from the API server into a `Deployment`."""
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    status = obj.get("status") or {}
    predictor = _dig(obj, "spec", "predictor") or {}
    model = predictor.get("model") or {}
    predictor_status = _dig(status, "components", "predictor") or {}
    canary = _int_or_none(predictor.get("canaryTrafficPercent"))
    return Deployment(
        name=str(metadata.get("name") or ""),
        namespace=str(metadata.get("namespace") or ""),
        url=status.get("url") or _dig(status, "address", "url"),
        conditions=_conditions(status),
        model_name=annotations.get(ANNOTATION_MODEL_NAME),
        model_version=annotations.get(ANNOTATION_MODEL_VERSION),
        previous_model_version=annotations.get(ANNOTATION_PREVIOUS_VERSION),
        storage_uri=model.get("storageUri"),
        model_format=_dig(model, "modelFormat", "name"),
        runtime=model.get("runtime"),
        strategy=annotations.get(ANNOTATION_STRATEGY) or "rolling",
        canary_traffic_percent=canary,
        min_replicas=_int_or_none(predictor.get("minReplicas")),
        max_replicas=_int_or_none(predictor.get("maxReplicas")),
        rollout_state=rollout_state_of(canary, annotations),
        latest_ready_revision=predictor_status.get("latestReadyRevision"),
        latest_created_revision=predictor_status.get("latestCreatedRevision"),
        latest_rolledout_revision=predictor_status.get("latestRolledoutRevision"),
        previous_rolledout_revision=predictor_status.get("previousRolledoutRevision"),
        traffic=_traffic(predictor_status),
        model_failure=_model_failure(status),
        transition_status=_dig(status, "modelStatus", "transitionStatus"),
        generation=_int_or_none(metadata.get("generation")),
        observed_generation=_int_or_none(status.get("observedGeneration")),
        resource_version=metadata.get("resourceVersion"),
        created_at=_parse_time(metadata.get("creationTimestamp")),
        raw=dict(obj),
    )
