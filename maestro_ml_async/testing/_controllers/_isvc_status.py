"""Pure status rules of the simulated KServe controller: traffic and conditions."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import Obj, now

READY_CONDITIONS = (
    "IngressReady",
    "PredictorConfigurationReady",
    "PredictorReady",
    "PredictorRouteReady",
    "Ready",
    "RoutesReady",
)


@dataclass(frozen=True)
class Rollout:
    """Traffic targets and the rolled-out revisions after one traffic decision."""

    traffic: list[Obj]
    latest_rolledout: str | None
    previous_rolledout: str | None


def compute_traffic(
    latest_ready: str | None,
    latest_rolledout: str | None,
    previous_rolledout: str | None,
    canary_percent: int | None,
    *,
    tag_routing: bool = False,
) -> Rollout:
    """Split traffic the way KServe's ``canaryTrafficPercent`` does (Knative mode).

    Only ready revisions get traffic. Without ``canaryTrafficPercent`` (or at
    100) the latest ready revision takes all traffic and becomes the latest
    rolled-out revision; the one it replaces becomes the previous rolled-out
    revision. With ``N`` the latest ready revision gets ``N`` percent and the
    latest rolled-out revision keeps the rest, so ``0`` pins all traffic to the
    revision that served before the canary (a rollback). The first revision
    always takes 100 percent.
    """
    if latest_ready is None:
        return Rollout([], latest_rolledout, previous_rolledout)
    promote = (
        latest_rolledout is None
        or canary_percent is None
        or canary_percent >= 100
        or latest_ready == latest_rolledout
    )
    if promote:
        if latest_ready != latest_rolledout and latest_rolledout is not None:
            previous_rolledout = latest_rolledout
        target = {"revisionName": latest_ready, "percent": 100, "latestRevision": True}
        if tag_routing:
            target["tag"] = "latest"
        return Rollout([target], latest_ready, previous_rolledout)
    percent = max(0, int(canary_percent or 0))
    canary: Obj = {
        "revisionName": latest_ready,
        "percent": percent,
        "latestRevision": True,
    }
    stable: Obj = {
        "revisionName": latest_rolledout,
        "percent": 100 - percent,
        "latestRevision": False,
    }
    if tag_routing:
        canary["tag"] = "latest"
        stable["tag"] = "prev"
    return Rollout([canary, stable], latest_rolledout, previous_rolledout)


def knative_condition(
    old_conditions: list[Obj],
    kind: str,
    value: str,
    reason: str | None = None,
    message: str | None = None,
) -> Obj:
    """Return a Knative-shaped condition that keeps its old lastTransitionTime.

    The time is kept when the status did not change, like Knative's condition
    manager does.
    """
    stamp = now()
    for old in old_conditions:
        if old.get("type") == kind and old.get("status") == value:
            stamp = str(old.get("lastTransitionTime") or stamp)
    condition: Obj = {"type": kind, "status": value, "lastTransitionTime": stamp}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def ready_conditions(
    old_conditions: list[Obj],
    *,
    name: str,
    latest_state: str,
    latest_revision: str,
    serving: bool,
    failure_reason: str | None,
    failure_message: str | None,
) -> list[Obj]:
    """Return the InferenceService conditions, sorted by type as Knative sorts them.

    Args:
        old_conditions: Conditions currently stored, for transition times.
        name: InferenceService name.
        latest_state: ``pending``, ``ready`` or ``failed`` for the latest revision.
        latest_revision: Name of the latest created revision.
        serving: Whether some ready revision receives traffic.
        failure_reason: ``RevisionFailed`` or ``ModelLoadFailed`` when failed.
        failure_message: Message of the failure.
    """
    configuration = f"{name}-predictor"
    values: dict[str, tuple[str, str | None, str | None]] = {}
    if latest_state == "ready":
        for kind in READY_CONDITIONS:
            values[kind] = ("True", None, None)
    else:
        if latest_state == "failed":
            text = (
                f'Revision "{latest_revision}" failed with message: {failure_message}.'
            )
            values["PredictorConfigurationReady"] = ("False", "RevisionFailed", text)
            state = ("False", failure_reason, text)
        else:
            text = (
                f'Configuration "{configuration}" is waiting for a Revision to become '
                "ready."
            )
            values["PredictorConfigurationReady"] = ("Unknown", "RevisionMissing", text)
            state = ("Unknown", "RevisionMissing", text)
        values["PredictorReady"] = state
        values["Ready"] = state
        route = ("True", None, None) if serving else state
        values["PredictorRouteReady"] = route
        values["RoutesReady"] = route
        values["IngressReady"] = route
    return [
        knative_condition(old_conditions, kind, *values[kind])
        for kind in sorted(values)
    ]


def model_status(
    *,
    latest_state: str,
    latest_revision: str,
    serving: bool,
    exit_code: int | None,
    message: str | None,
    reason: str | None,
    copies: int,
    last_failure: Obj | None = None,
) -> Obj:
    """Return ``status.modelStatus`` for the latest revision's state.

    ``last_failure`` is the ``lastFailureInfo`` of the previous status. It is
    kept after the model loads again, until a new failure replaces it, and only
    ``transitionStatus`` shows that the failure is over.
    """
    # NOTE: KServe's status update keeps lastFailureInfo once the model loads
    # again (read in its controller source), and so does this. The two were
    # not compared on a running KServe.
    active = "Loaded" if serving else ""
    if latest_state == "ready":
        status: Obj = {
            "transitionStatus": "UpToDate",
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            "copies": {"failedCopies": 0, "totalCopies": copies},
        }
    elif latest_state == "failed":
        status = {
            "transitionStatus": "BlockedByFailedLoad",
            "states": {"activeModelState": active, "targetModelState": "FailedToLoad"},
            "copies": {"failedCopies": copies, "totalCopies": copies},
        }
        if reason == "ModelLoadFailed":
            last_failure = {
                "reason": "ModelLoadFailed",
                "message": message or "",
                "exitCode": exit_code if exit_code is not None else 1,
                "modelRevisionName": latest_revision,
            }
    else:
        status = {
            "transitionStatus": "InProgress",
            "states": {"activeModelState": active, "targetModelState": "Loading"},
        }
    if last_failure:
        status["lastFailureInfo"] = dict(last_failure)
    return status
