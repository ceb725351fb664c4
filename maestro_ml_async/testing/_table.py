"""``meta.k8s.io/v1`` Table output, which ``kubectl get`` asks for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ._resources import ResourceType

Obj = dict[str, Any]
Cell = Callable[[Obj], Any]


def human_age(timestamp: str | None, now: datetime | None = None) -> str:
    """Format the time since an RFC 3339 timestamp the way ``kubectl`` shows ages."""
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    seconds = int(((now or datetime.now(timezone.utc)) - created).total_seconds())
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _last_condition(obj: Obj) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return str(conditions[-1].get("type", "")) if conditions else ""


def _condition_status(obj: Obj, kind: str) -> str:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status", ""))
    return ""


def _pod_ready(obj: Obj) -> str:
    containers = (obj.get("spec") or {}).get("containers") or []
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for status in statuses if status.get("ready"))
    return f"{ready}/{len(containers)}"


def _pod_status(obj: Obj) -> str:
    status = obj.get("status") or {}
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        if waiting.get("reason") and waiting["reason"] != "ContainerCreating":
            return str(waiting["reason"])
        if terminated.get("reason") and status.get("phase") == "Running":
            return str(terminated["reason"])
    return str(status.get("phase", ""))


def _pod_restarts(obj: Obj) -> int:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return sum(int(status.get("restartCount", 0)) for status in statuses)


def _job_completions(obj: Obj) -> str:
    succeeded = (obj.get("status") or {}).get("succeeded", 0)
    return f"{succeeded}/{(obj.get('spec') or {}).get('completions', 1)}"


def _column(name: str, description: str, kind: str = "string") -> Obj:
    column_format = "name" if name == "Name" else ""
    return {
        "name": name,
        "type": kind,
        "format": column_format,
        "description": description,
        "priority": 0,
    }


_NAME = (
    "Name",
    "Name must be unique within a namespace.",
    lambda o: o["metadata"]["name"],
)
_AGE = (
    "Age",
    "Time since the object was created.",
    lambda o: human_age(o["metadata"].get("creationTimestamp")),
)
_COLUMNS: dict[str, list[tuple[str, str, Cell]]] = {
    "pods": [
        _NAME,
        ("Ready", "Ready containers out of all containers.", _pod_ready),
        ("Status", "The aggregate state of the containers.", _pod_status),
        ("Restarts", "Restarts of all containers.", _pod_restarts),
        _AGE,
    ],
    "namespaces": [
        _NAME,
        ("Status", "The phase of the namespace.", lambda o: o["status"].get("phase")),
        _AGE,
    ],
    "jobs.batch": [
        _NAME,
        ("Completions", "Succeeded pods out of completions.", _job_completions),
        _AGE,
    ],
    "inferenceservices.serving.kserve.io": [
        _NAME,
        (
            "URL",
            "The URL of the service.",
            lambda o: (o.get("status") or {}).get("url", ""),
        ),
        ("Ready", "The Ready condition.", lambda o: _condition_status(o, "Ready")),
        _AGE,
    ],
}
_TRAINING_COLUMNS = [_NAME, ("State", "The latest condition.", _last_condition), _AGE]


def _columns_for(rtype: ResourceType) -> list[tuple[str, str, Cell]]:
    if rtype.key in _COLUMNS:
        return _COLUMNS[rtype.key]
    if rtype.group == "kubeflow.org" or rtype.key == "trainjobs.trainer.kubeflow.org":
        return _TRAINING_COLUMNS
    return [_NAME, _AGE]


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def to_table(
    rtype: ResourceType,
    items: list[Obj],
    list_metadata: Obj,
    include_object: str = "Metadata",
) -> Obj:
    """Build a Table of ``items`` with the columns ``kubectl get`` prints.

    Args:
        rtype: Type of the items.
        items: Objects, one per row.
        list_metadata: The list's ``metadata`` (resourceVersion, continue).
        include_object: ``Metadata`` (default), ``Object`` or ``None``, as the
            ``includeObject`` query parameter sets it.
    """
    columns = _columns_for(rtype)
    rows = []
    for obj in items:
        row: Obj = {"cells": [cell(obj) for _, _, cell in columns]}
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": [_column(name, text) for name, text, _ in columns],
        "rows": rows,
    }
