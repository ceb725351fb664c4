"""``meta.k8s.io/v1`` Table output, which ``kubectl get`` asks for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ._resources import ResourceType

Obj = dict[str, Any]
Cell = Callable[[Obj], Any]
# (name, description, cell) or (name, description, cell, priority). kubectl
# prints priority 0 columns by default and the others with ``-o wide``.
ColumnSpec = tuple[str, str, Cell] | tuple[str, str, Cell, int]
Column = tuple[str, str, Cell, int]


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


def _event_object(obj: Obj) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_last_seen(obj: Obj) -> str:
    stamp = (
        obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("firstTimestamp")
    )
    if isinstance(stamp, str) and "." in stamp:
        stamp = stamp.split(".")[0] + "Z"
    return human_age(stamp or obj["metadata"].get("creationTimestamp"))


def _traffic(obj: Obj, field: str, *, latest: bool) -> Any:
    """Return a field of the predictor's latest (or tagged prev) traffic target."""
    components = (obj.get("status") or {}).get("components") or {}
    for target in (components.get("predictor") or {}).get("traffic") or []:
        if latest and target.get("latestRevision") is True:
            return target.get(field)
        if not latest and target.get("tag") == "prev":
            return target.get(field)
    return None


def _column(
    name: str, description: str, kind: str = "string", priority: int = 0
) -> Obj:
    column_format = "name" if name == "Name" else ""
    return {
        "name": name,
        "type": kind,
        "format": column_format,
        "description": description,
        "priority": priority,
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
_COLUMNS: dict[str, list[ColumnSpec]] = {
    "events": [
        ("Last Seen", "Time since the event was last seen.", _event_last_seen),
        ("Type", "Normal or Warning.", lambda o: o.get("type", "")),
        ("Reason", "Why the event was recorded.", lambda o: o.get("reason", "")),
        ("Object", "The object the event is about.", _event_object),
        ("Message", "A human-readable description.", lambda o: o.get("message", "")),
    ],
    "configmaps": [
        _NAME,
        (
            "Data",
            "Keys in data and binaryData.",
            lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}),
        ),
        _AGE,
    ],
    "secrets": [
        _NAME,
        ("Type", "The type of the secret.", lambda o: o.get("type", "")),
        ("Data", "Keys in data.", lambda o: len(o.get("data") or {})),
        _AGE,
    ],
    "serviceaccounts": [
        _NAME,
        ("Secrets", "Secrets of the account.", lambda o: len(o.get("secrets") or [])),
        _AGE,
    ],
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
        (
            "Prev",
            "Traffic percent of the previous rolled out revision.",
            lambda o: _traffic(o, "percent", latest=False),
        ),
        (
            "Latest",
            "Traffic percent of the latest revision.",
            lambda o: _traffic(o, "percent", latest=True),
        ),
        (
            "PrevRolledoutRevision",
            "The previous rolled out revision.",
            lambda o: _traffic(o, "revisionName", latest=False),
            1,
        ),
        (
            "LatestReadyRevision",
            "The latest ready revision.",
            lambda o: _traffic(o, "revisionName", latest=True),
            1,
        ),
        _AGE,
    ],
}
_TRAINING_COLUMNS = [_NAME, ("State", "The latest condition.", _last_condition), _AGE]


def _columns_for(rtype: ResourceType) -> list[Column]:
    specs: list[ColumnSpec]
    if rtype.key in _COLUMNS:
        specs = _COLUMNS[rtype.key]
    elif rtype.group == "kubeflow.org" or rtype.key == "trainjobs.trainer.kubeflow.org":
        specs = list(_TRAINING_COLUMNS)
    else:
        specs = [_NAME, _AGE]
    return [
        (spec[0], spec[1], spec[2], spec[3] if len(spec) == 4 else 0) for spec in specs
    ]


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
        row: Obj = {"cells": [cell(obj) for _, _, cell, _ in columns]}
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": [
            _column(name, text, priority=priority)
            for name, text, _, priority in columns
        ],
        "rows": rows,
    }
