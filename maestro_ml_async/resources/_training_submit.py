"""Validation of `submit_job` arguments and creation of the job's objects."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config import Config
from .._exceptions import (
    KubernetesConflictException,
    KubernetesException,
    KubernetesNotFoundException,
    ValidationException,
)
from .._validation import check_kubernetes_name
from ._training_kinds import FRAMEWORKS, KINDS, JobKind, kind_for_framework
from ._training_quantities import check_resources
from ._training_specs import (
    CodeBundle,
    JobRequest,
    build_code_configmap,
    build_job,
    check_str_list,
    check_string_map,
    code_configmap_name,
    load_code_bundle,
    param_env_name,
)

if TYPE_CHECKING:
    from .._transport._kube import ClusterTransport

__all__ = ["build_request", "create_job_objects"]

logger = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_MERGE_PATCH = "application/merge-patch+json"
_LOCAL_PREFIXES = ("./", "../", "~")
_MAX_LABEL = 63
_RFC_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# Replica counts go into int32 fields (replicas, numNodes, parallelism).
_MAX_INT32 = 2**31 - 1
# Kubernetes' batch validation (maxParallelismForIndexedJob in
# pkg/apis/batch/validation) rejects an Indexed Job with a higher parallelism,
# and a batch Job of more than one worker is Indexed.
_MAX_INDEXED_PARALLELISM = 100_000


def _check_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationException(f"{what} must be an integer, got {value!r}")
    if value < 0:
        raise ValidationException(f"{what} must not be negative, got {value}")
    return value


def _check_workers(kind: JobKind, workers: int) -> None:
    if kind.kind == "Job" and workers > _MAX_INDEXED_PARALLELISM:
        raise ValidationException(
            f"workers must be at most {_MAX_INDEXED_PARALLELISM:,} for a batch "
            f"Job, because Kubernetes limits the parallelism of an Indexed Job; "
            f"got {workers:,}"
        )
    if workers > _MAX_INT32:
        raise ValidationException(
            f"workers must be at most {_MAX_INT32:,}, the largest replica "
            f"count that Kubernetes stores; got {workers:,}"
        )


def _check_framework(framework: object) -> str:
    """Return the framework with its name in lower case (``PyTorch`` -> ``pytorch``).

    The runtime after ``:`` keeps its case, because it names a Kubernetes
    object and must already be lower case.
    """
    if not isinstance(framework, str) or not framework:
        raise ValidationException("framework must be a non-empty string")
    base, _, runtime = framework.partition(":")
    base = base.strip().lower()
    if base not in FRAMEWORKS:
        raise ValidationException(
            f"unknown framework {framework!r}; expected one of "
            f"{', '.join(sorted(FRAMEWORKS))}"
        )
    if runtime and base != "trainjob":
        raise ValidationException(
            f"framework {framework!r}: only trainjob takes a runtime after ':'"
        )
    if runtime:
        check_kubernetes_name(runtime, what="training runtime")
        return f"{base}:{runtime}"
    return base


def _check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    result = check_string_map(labels, "labels")
    for key, value in result.items():
        prefix, _, name = key.rpartition("/")
        if prefix:
            check_kubernetes_name(prefix, what=f"label prefix of {key!r}")
        if not _LABEL_NAME.fullmatch(name):
            raise ValidationException(f"label key {key!r} is not a valid label name")
        if not _LABEL_VALUE.fullmatch(value):
            raise ValidationException(
                f"label value {value!r} of {key!r} is invalid: use at most 63 "
                "letters, digits, '-', '_' or '.', starting and ending with a "
                "letter or digit"
            )
    return result


def _check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    result = check_string_map(env, "env")
    for key in result:
        if not _ENV_NAME.fullmatch(key):
            raise ValidationException(f"env name {key!r} is not a valid variable name")
    for key, value in (env or {}).items():
        if not isinstance(value, str):
            # The value itself stays out of the message: it may be a secret.
            raise ValidationException(
                f"env value of {key!r} must be a string, got {type(value).__name__}"
            )
    return result


def _longest_child_name(kind: JobKind, name: str, workers: int) -> str | None:
    """Return the longest Service or pod hostname that the job's controller makes.

    The Training Operator names each replica's Service and pod
    ``<job>-<replica type>-<index>`` (the MPIJob launcher ``<job>-launcher``),
    an Indexed batch Job gives pod ``i`` the hostname ``<job>-<i>``, and a
    JobSet names the pods of a TrainJob ``<job>-<replicated job>-0-<i>``.
    Those names must be DNS labels of at most 63 characters.
    """
    last = max(workers, 1) - 1
    if kind.operator:
        names = []
        if kind.master is not None:
            suffix = "" if kind.kind == "MPIJob" else "-0"
            names.append(f"{name}-{kind.master.lower()}{suffix}")
            if workers > 0:
                names.append(f"{name}-worker-{workers - 1}")
        else:
            names.append(f"{name}-worker-{last}")
        return max(names, key=len)
    if kind.kind == "TrainJob":
        # NOTE: the replicated job is called "node" in Trainer v2's
        # torch-distributed runtime; another runtime may use a longer name.
        return f"{name}-{kind.container}-0-{last}"
    return f"{name}-{last}" if workers > 1 else None


def _check_child_names(kind: JobKind, name: str, workers: int) -> None:
    longest = _longest_child_name(kind, name, workers)
    if longest is None or len(longest) <= _MAX_LABEL:
        return
    allowed = len(name) - (len(longest) - _MAX_LABEL)
    raise ValidationException(
        f"job name {name!r} is too long for a {kind.kind} with {workers} "
        f"workers: its controller would name a Service or pod {longest!r} "
        f"({len(longest)} characters), above the DNS label limit of "
        f"{_MAX_LABEL}; use a name of at most {allowed} characters"
    )


def _check_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    result = check_string_map(params, "params")
    for key, value in (params or {}).items():
        if value is None:
            raise ValidationException(
                f"params value of {key!r} is None; leave the key out or give a value"
            )
    variables: dict[str, str] = {}
    for key in result:
        # argparse splits ``--key=value`` at the first "=", and an option
        # name with whitespace matches no option, so such keys cannot arrive.
        if "=" in key or any(char.isspace() for char in key):
            raise ValidationException(
                f"params key {key!r} contains '=' or whitespace, so it cannot "
                f"be passed as --{key}=<value>; rename it"
            )
        variable = param_env_name(key)
        other = variables.setdefault(variable, key)
        if other != key:
            raise ValidationException(
                f"params keys {other!r} and {key!r} both map to the variable "
                f"{variable}, so one would hide the other; rename one of them"
            )
    return result


def _load_local_code(
    code_path: str | Path | None,
) -> tuple[str | None, CodeBundle | None]:
    """Return `code_path` as text and its packed code if it exists locally.

    A path that does not exist locally is a path inside the image, unless it
    starts with ``./``, ``../`` or ``~``: those only make sense locally, so a
    missing one is a typo that would otherwise fail later in the cluster.
    """
    if code_path is None:
        return None, None
    path_text = str(code_path)
    if not path_text:
        raise ValidationException("code_path must not be empty")
    local = Path(path_text).expanduser()
    if local.exists():
        return path_text, load_code_bundle(local)
    if path_text in (".", "..") or path_text.startswith(_LOCAL_PREFIXES):
        raise ValidationException(
            f"code_path {path_text!r} does not exist locally; fix the path, or "
            "give an absolute path to run a script inside the image"
        )
    return path_text, None


def build_request(
    config: Config,
    *,
    name: str,
    framework: str,
    image: str,
    code_path: str | Path | None,
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    gpus: int,
    workers: int,
    params: Mapping[str, Any] | None,
    env: Mapping[str, str] | None,
    resources: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    namespace: str,
) -> JobRequest:
    """Validate the arguments of `submit_job` and pack local code.

    Raises:
        ValidationException: An argument is invalid.
    """
    # Pods and Services are named after the job, and Service names are DNS
    # labels, so the job name is held to the label limit of 63 characters, and
    # `_check_child_names` then checks the names derived from it.
    check_kubernetes_name(name, what="job name", max_length=_MAX_LABEL)
    if not name[0].isalpha():
        # The Training Operator's webhook and Services require RFC 1035
        # labels, which start with a letter; batch Jobs follow the same rule
        # here so a name works with every framework.
        raise ValidationException(
            f"job name {name!r} must start with a lowercase letter (RFC 1035 label)"
        )
    if not _RFC_1035_LABEL.fullmatch(name):
        # check_kubernetes_name anchors with "$", which also matches before a
        # trailing newline.
        raise ValidationException(
            f"job name {name!r} is not a valid Kubernetes name: use lowercase "
            "letters, digits and '-', starting with a letter"
        )
    framework = _check_framework(framework)
    if (
        not isinstance(image, str)
        or not image.strip()
        or any(c.isspace() for c in image)
    ):
        raise ValidationException(
            f"image must be a container image reference without spaces, got {image!r}"
        )
    kind = kind_for_framework(framework)
    workers = _check_count(workers, "workers")
    _check_workers(kind, workers)
    _check_child_names(kind, name, workers)
    path_text, bundle = _load_local_code(code_path)
    return JobRequest(
        name=name,
        namespace=namespace,
        framework=framework,
        kind=kind,
        image=image,
        command=check_str_list(command, "command"),
        args=check_str_list(args, "args") or [],
        gpus=_check_count(gpus, "gpus"),
        workers=workers,
        params=_check_params(params),
        env=_check_env(env),
        resources=check_resources(resources),
        labels=_check_labels(labels),
        code_path=path_text,
        bundle=bundle,
        mlflow_uri=config.mlflow_uri,
        experiment_name=config.experiment_name or name,
    )


async def create_job_objects(
    transport: ClusterTransport, request: JobRequest
) -> dict[str, Any]:
    """Create the job (and its code ConfigMap) and return the created job.

    The ConfigMap is created first, so no pod ever waits for its volume, and
    is then given an ownerReference to the job, so deleting the job deletes
    it. When a step fails, whatever was created is deleted again.
    """
    from .._transport._kube import resource_path

    kind = request.kind
    await _check_name_free(transport, request)
    configmap_path = None
    if request.bundle is not None:
        configmap = build_code_configmap(request)
        await transport.request(
            "POST",
            resource_path("", "v1", "configmaps", request.namespace),
            body=configmap,
        )
        configmap_path = resource_path(
            "", "v1", "configmaps", request.namespace, code_configmap_name(request.name)
        )
    try:
        created: dict[str, Any] = await transport.request(
            "POST",
            resource_path(kind.group, kind.version, kind.plural, request.namespace),
            body=build_job(request),
        )
    except BaseException:
        if configmap_path is not None:
            await _delete_quietly(transport, configmap_path)
        raise
    if configmap_path is not None:
        meta = created.get("metadata") or {}
        owner = {
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "blockOwnerDeletion": True,
        }
        patch = {"metadata": {"ownerReferences": [owner]}}
        try:
            await transport.request(
                "PATCH", configmap_path, body=patch, content_type=_MERGE_PATCH
            )
        except BaseException:
            await _delete_created(transport, request, configmap_path)
            raise
    await _settle_name_race(transport, request, created, configmap_path)
    return created


async def _check_name_free(transport: ClusterTransport, request: JobRequest) -> None:
    """Raise when a training job of another kind already has the request's name.

    get_job, wait_for_job and delete_job find a job by name alone, so two kinds
    with one name would make them act on whichever is found first. A job of
    the same kind is left to the API server, which returns 409. Two concurrent
    submits can both pass this read, so `_settle_name_race` checks again after
    the create.
    """
    found = await _jobs_of_other_kinds(transport, request)
    if found:
        raise _name_taken(found[0][0], request)


async def _jobs_of_other_kinds(
    transport: ClusterTransport, request: JobRequest
) -> list[tuple[JobKind, dict[str, Any]]]:
    """Return the jobs of other kinds that have the request's name."""
    others = [kind for kind in KINDS.values() if kind.kind != request.kind.kind]
    results = await asyncio.gather(
        *(
            transport.get_object(
                kind.group, kind.version, kind.plural, request.namespace, request.name
            )
            for kind in others
        ),
        return_exceptions=True,
    )
    found: list[tuple[JobKind, dict[str, Any]]] = []
    for kind, result in zip(others, results, strict=True):
        if isinstance(result, KubernetesNotFoundException):
            continue
        if isinstance(result, KubernetesException):
            # A kind the caller may not read (403) cannot be checked, so it
            # does not block the submit.
            logger.debug("name check of %s skipped: %s", kind.plural, result)
            continue
        if isinstance(result, BaseException):
            raise result
        found.append((kind, result))
    return found


async def _settle_name_race(
    transport: ClusterTransport,
    request: JobRequest,
    created: dict[str, Any],
    configmap_path: str | None,
) -> None:
    """Delete the new job again when a job of another kind took its name first.

    Runs after the create, so of two racing submits the later one finds the
    earlier job here. The new job is deleted when the other job's
    creationTimestamp is older than its own or equal to it. The timestamps
    have a resolution of one second, so two submits in the same second can
    both be deleted, but two submits of this client never both keep a job.
    """
    mine = _creation_time(created)
    for kind, other in await _jobs_of_other_kinds(transport, request):
        theirs = _creation_time(other)
        if mine is not None and theirs is not None and theirs > mine:
            # The other job was created later, so its own check deletes it.
            continue
        logger.info(
            "deleting %s %s again: a %s of that name was created first",
            request.kind.kind,
            request.name,
            kind.kind,
        )
        await _delete_created(transport, request, configmap_path)
        raise _name_taken(kind, request)


def _creation_time(obj: dict[str, Any]) -> str | None:
    # RFC 3339 timestamps in UTC with a fixed layout ("2026-12-04T01:02:03Z"),
    # as the API server writes them, sort as strings.
    value = (obj.get("metadata") or {}).get("creationTimestamp")
    return value if isinstance(value, str) and value else None


def _name_taken(kind: JobKind, request: JobRequest) -> KubernetesConflictException:
    return KubernetesConflictException(
        f"a {kind.kind} named {request.name!r} already exists in namespace "
        f"{request.namespace!r}; training jobs are looked up by name, so "
        "choose another name or delete that job first",
        reason="AlreadyExists",
    )


async def _delete_created(
    transport: ClusterTransport, request: JobRequest, configmap_path: str | None
) -> None:
    """Delete the job that this submit created, and its code ConfigMap if any."""
    from .._transport._kube import resource_path

    kind = request.kind
    job_path = resource_path(
        kind.group, kind.version, kind.plural, request.namespace, request.name
    )
    await _delete_quietly(transport, job_path)
    if configmap_path is not None:
        await _delete_quietly(transport, configmap_path)


async def _delete_quietly(transport: ClusterTransport, path: str) -> None:
    try:
        await transport.request(
            "DELETE", path, body={"propagationPolicy": "Background"}
        )
    except KubernetesException as exc:
        logger.warning("cleanup of %s failed: %s", path, exc)
