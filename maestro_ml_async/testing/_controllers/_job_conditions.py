"""Condition rules of the training-operator v1 job status (``pkg/util/status.go``)."""

from __future__ import annotations

from datetime import datetime, timezone

from ._base import Obj, now


def get_condition(status: Obj, kind: str) -> Obj | None:
    """Return the condition of type ``kind`` from a job status, if present."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def condition_true(status: Obj, kind: str) -> bool:
    """Return whether the job status has condition ``kind`` with status True."""
    condition = get_condition(status, kind)
    return condition is not None and condition.get("status") == "True"


def is_finished(status: Obj) -> bool:
    """Return whether the job has Succeeded or Failed."""
    return condition_true(status, "Succeeded") or condition_true(status, "Failed")


def update_job_condition(
    status: Obj, kind: str, value: str, reason: str, message: str
) -> None:
    """Set one condition of a training job status the way the operator does.

    Nothing changes after Failed. Running and Restarting remove each other, and
    Succeeded or Failed set Running to False. The updated condition moves to the
    end of the list, and it keeps its lastTransitionTime when only the reason
    changes.
    """
    if condition_true(status, "Failed"):
        return
    current = get_condition(status, kind)
    if (
        current is not None
        and current["status"] == value
        and current.get("reason") == reason
    ):
        return
    stamp = now()
    transition = stamp
    if current is not None and current["status"] == value:
        transition = current.get("lastTransitionTime", stamp)
    kept = []
    for condition in status.get("conditions") or []:
        other = condition.get("type")
        if other == kind or {kind, other} == {"Running", "Restarting"}:
            continue
        if kind in ("Failed", "Succeeded") and other == "Running":
            condition = {**condition, "status": "False"}
        kept.append(condition)
    kept.append(
        {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastUpdateTime": stamp,
            "lastTransitionTime": transition,
        }
    )
    status["conditions"] = kept


def _seconds_since(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - moment).total_seconds()
