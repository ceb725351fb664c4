"""Manifests of training jobs and of the ConfigMap that ships local code.

Conventions that a training script can rely on:

- each entry of ``params`` becomes the argument ``--<key>=<value>`` (after the
  caller's ``args``) and the variable ``PARAM_<KEY>``, where KEY is the key in
  upper case with every character other than a letter or digit replaced by ``_``;
- ``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME`` (the configured
  experiment, else the job name) are set in every container, as are
  ``MAESTRO_JOB_NAME`` and ``MAESTRO_FRAMEWORK``; an ``env`` entry of the same
  name wins;
- local code is mounted read-only at `CODE_MOUNT`; a folder runs ``train.py`` or
  else ``main.py`` from it unless ``command`` is given.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import ValidationException
from ._artifact_paths import collect_upload_files
from ._training_kinds import LABEL_FRAMEWORK, LABEL_MANAGED_BY, MANAGED_BY, JobKind

__all__ = [
    "CODE_MOUNT",
    "CONFIGMAP_LIMIT",
    "CodeBundle",
    "JobRequest",
    "build_code_configmap",
    "build_job",
    "load_code_bundle",
    "param_env_name",
]

CODE_MOUNT = "/opt/maestro/code"
CONFIGMAP_LIMIT = 1024 * 1024
"""Maximum size of a ConfigMap's data (1 MiB), as the API server enforces."""
GPU_RESOURCE = "nvidia.com/gpu"
_CODE_VOLUME = "maestro-code"
_KEY_CHARS = re.compile(r"[^-._a-zA-Z0-9]")
_ENTRY_FILES = ("train.py", "main.py")
_TRAINJOB_DEFAULT_RUNTIME = "torch-distributed"


@dataclass
class CodeBundle:
    """Local code packed for a ConfigMap.

    Attributes:
        data: Text files by ConfigMap key.
        binary_data: Other files by key, base64-encoded.
        items: The volume's key -> relative path mapping, which restores folders.
        entry: The file to run, relative to the mount, if one was found.
        size: Bytes the ConfigMap's data takes.
    """

    data: dict[str, str] = field(default_factory=dict)
    binary_data: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, str]] = field(default_factory=list)
    entry: str | None = None
    size: int = 0


@dataclass
class JobRequest:
    """The validated arguments of one submission."""

    name: str
    namespace: str
    framework: str
    kind: JobKind
    image: str
    command: list[str] | None
    args: list[str]
    gpus: int
    workers: int
    params: dict[str, str]
    env: dict[str, str]
    resources: dict[str, Any] | None
    labels: dict[str, str]
    code_path: str | None
    bundle: CodeBundle | None
    mlflow_uri: str
    experiment_name: str


def param_env_name(key: str) -> str:
    """Return the variable that carries parameter `key` (``lr`` -> ``PARAM_LR``)."""
    return "PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def load_code_bundle(path: Path) -> CodeBundle:
    """Pack a local file or folder; raise ValidationException above 1 MiB.

    A folder is packed without hidden entries (names starting with ``.``, such
    as ``.env`` and ``.git``) and without ``__pycache__``, because a ConfigMap
    is readable by anyone allowed to read ConfigMaps in the namespace. Symlinks
    in it must point inside the folder, and symlinked folders are left out.
    """
    bundle = CodeBundle()
    if path.is_file():
        files = [(path.name, path)]
        bundle.entry = path.name
    else:
        try:
            listed = collect_upload_files(path, skip=_skipped_in_folder)
        except ValidationException as exc:
            raise ValidationException(f"code_path {str(path)!r}: {exc}") from None
        files = sorted((relative, file_path) for file_path, relative in listed)
        names = {relative for relative, _ in files}
        bundle.entry = next((e for e in _ENTRY_FILES if e in names), None)
    used: set[str] = set()
    for relative, file_path in files:
        key = _unique_key(_KEY_CHARS.sub("_", relative.replace("/", "__")), used)
        content = file_path.read_bytes()
        try:
            text = content.decode("utf-8")
            bundle.data[key] = text
            bundle.size += len(key) + len(content)
        except UnicodeDecodeError:
            encoded = base64.b64encode(content).decode("ascii")
            bundle.binary_data[key] = encoded
            bundle.size += len(key) + len(encoded)
        bundle.items.append({"key": key, "path": relative})
        if bundle.size > CONFIGMAP_LIMIT:
            break
    if bundle.size > CONFIGMAP_LIMIT:
        raise ValidationException(
            f"code_path {str(path)!r} contains more than {CONFIGMAP_LIMIT} bytes, the "
            "size limit of a ConfigMap; build the code into the image or put it "
            "on a volume instead"
        )
    if not files:
        raise ValidationException(f"code_path {str(path)!r} contains no files")
    return bundle


def _skipped_in_folder(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def _unique_key(key: str, used: set[str]) -> str:
    candidate, number = key, 1
    while candidate in used:
        number += 1
        candidate = f"{key}.{number}"
    used.add(candidate)
    return candidate


def build_code_configmap(request: JobRequest) -> dict[str, Any]:
    """Return the ConfigMap that carries the request's local code."""
    assert request.bundle is not None
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": code_configmap_name(request.name),
            "namespace": request.namespace,
            "labels": _labels(request),
        },
        "data": request.bundle.data,
    }
    if request.bundle.binary_data:
        body["binaryData"] = request.bundle.binary_data
    return body


def code_configmap_name(job_name: str) -> str:
    """Return the name of a job's code ConfigMap."""
    return f"{job_name}-code"


def _labels(request: JobRequest) -> dict[str, str]:
    labels = dict(request.labels)
    labels[LABEL_MANAGED_BY] = MANAGED_BY
    labels[LABEL_FRAMEWORK] = request.framework.split(":", 1)[0]
    return labels


def _entrypoint(request: JobRequest) -> tuple[list[str] | None, list[str]]:
    """Return (command, args) of the training container."""
    extra = list(request.args) + [f"--{k}={v}" for k, v in request.params.items()]
    if request.command is not None:
        return list(request.command), extra
    if request.code_path is None:
        return None, extra
    if request.bundle is not None:
        if request.bundle.entry is None:
            raise ValidationException(
                f"code_path {request.code_path!r} is a folder without train.py or "
                "main.py; name the script to run with command=[...]"
            )
        script = f"{CODE_MOUNT}/{request.bundle.entry}"
    else:
        script = request.code_path
    if request.kind.kind == "PyTorchJob" and request.gpus > 1:
        return ["torchrun", f"--nproc-per-node={request.gpus}", script], extra
    return ["python", script], extra


def _env(request: JobRequest) -> list[dict[str, str]]:
    values = {
        "MLFLOW_TRACKING_URI": request.mlflow_uri,
        "MLFLOW_EXPERIMENT_NAME": request.experiment_name,
        "MAESTRO_JOB_NAME": request.name,
        "MAESTRO_FRAMEWORK": request.framework,
    }
    for key, value in request.params.items():
        values[param_env_name(key)] = value
    values.update(request.env)
    return [{"name": name, "value": value} for name, value in values.items()]


def _resources(request: JobRequest) -> dict[str, Any]:
    given = request.resources or {}
    if given and not ({"requests", "limits"} & set(given)):
        given = {"requests": dict(given), "limits": dict(given)}
    result = {key: dict(value) for key, value in given.items() if value is not None}
    if request.gpus > 0:
        result.setdefault("limits", {})[GPU_RESOURCE] = str(request.gpus)
    return result


def _container(request: JobRequest) -> dict[str, Any]:
    command, args = _entrypoint(request)
    container: dict[str, Any] = {
        "name": request.kind.container,
        "image": request.image,
        "env": _env(request),
    }
    if command is not None:
        container["command"] = command
    if args:
        container["args"] = args
    resources = _resources(request)
    if resources:
        container["resources"] = resources
    if request.bundle is not None:
        container["volumeMounts"] = [
            {"name": _CODE_VOLUME, "mountPath": CODE_MOUNT, "readOnly": True}
        ]
        container["workingDir"] = CODE_MOUNT
    return container


def _pod_template(request: JobRequest, restart_policy: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [_container(request)]}
    if restart_policy is not None:
        spec["restartPolicy"] = restart_policy
    if request.bundle is not None:
        spec["volumes"] = [
            {
                "name": _CODE_VOLUME,
                "configMap": {
                    "name": code_configmap_name(request.name),
                    "items": request.bundle.items,
                },
            }
        ]
    return {"metadata": {"labels": _labels(request)}, "spec": spec}


def build_job(request: JobRequest) -> dict[str, Any]:
    """Return the job manifest for a validated request."""
    kind = request.kind
    metadata = {
        "name": request.name,
        "namespace": request.namespace,
        "labels": _labels(request),
    }
    head: dict[str, Any] = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": metadata,
    }
    if kind.operator:
        head["spec"] = _operator_spec(request)
    elif kind.kind == "Job":
        head["spec"] = _batch_spec(request)
    else:
        head["spec"] = _trainjob_spec(request)
    return head


def _operator_spec(request: JobRequest) -> dict[str, Any]:
    kind = request.kind
    assert kind.replica_field is not None
    replicas: dict[str, Any] = {}
    # OnFailure restarts a crashed container in place; runPolicy.backoffLimit
    # then bounds the restarts, so a broken job fails instead of looping.
    policy = "OnFailure"
    if kind.master is not None:
        replicas[kind.master] = {
            "replicas": 1,
            "restartPolicy": policy,
            "template": _pod_template(request, None),
        }
        worker_count = request.workers
    else:
        worker_count = max(request.workers, 1)
    if worker_count > 0:
        replicas["Worker"] = {
            "replicas": worker_count,
            "restartPolicy": policy,
            "template": _pod_template(request, None),
        }
    return {
        "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3},
        kind.replica_field: replicas,
    }


def _batch_spec(request: JobRequest) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "backoffLimit": 3,
        "completions": max(request.workers, 1),
        "parallelism": max(request.workers, 1),
        "template": _pod_template(request, "Never"),
    }
    if request.workers > 1:
        spec["completionMode"] = "Indexed"
    return spec


def _trainjob_spec(request: JobRequest) -> dict[str, Any]:
    _, _, runtime = request.framework.partition(":")
    container = _container(request)
    trainer: dict[str, Any] = {
        "image": request.image,
        "numNodes": max(request.workers, 1),
        "env": container["env"],
    }
    for key in ("command", "args"):
        if key in container:
            trainer[key] = container[key]
    if "resources" in container:
        trainer["resourcesPerNode"] = container["resources"]
    return {
        "runtimeRef": {
            "name": runtime or _TRAINJOB_DEFAULT_RUNTIME,
            "apiGroup": "trainer.kubeflow.org",
            "kind": "ClusterTrainingRuntime",
        },
        "trainer": trainer,
    }


def check_string_map(value: Mapping[str, Any] | None, what: str) -> dict[str, str]:
    """Validate a mapping of names to values and return it with str values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationException(
            f"{what} must be a mapping, got {type(value).__name__}"
        )
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ValidationException(
                f"{what} keys must be non-empty strings, got {key!r}"
            )
        result[key] = str(item) if not isinstance(item, bool) else str(item).lower()
    return result


def check_str_list(value: Sequence[str] | None, what: str) -> list[str] | None:
    """Validate a list of strings (a plain string is rejected)."""
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ValidationException(f"{what} must be a list of strings, got {value!r}")
    return list(value)
