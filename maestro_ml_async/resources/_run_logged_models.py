"""Finding the MLflow 3 logged model that a run logged under a name."""

from __future__ import annotations

from typing import Any

from .._exceptions import NotSupportedByServerException, ValidationException
from .._pagination import next_page_token
from .._transport import MlflowTransport
from ..types.tracking import LoggedModel
from ._responses import parse_items

__all__ = ["find_run_logged_model"]

_SEARCH_PAGE_SIZE = 100


def _name_filter(name: str) -> str | None:
    # MLflow's filter parser does not unescape quotes, so a name with both
    # quote characters cannot be filtered on and is matched after the search.
    if "'" not in name:
        return f"name = '{name}'"
    if '"' not in name:
        return f'name = "{name}"'
    return None


async def _search(
    transport: MlflowTransport, experiment_id: str, name: str
) -> list[LoggedModel]:
    query = _name_filter(name)
    body: dict[str, object] = {
        "experiment_ids": [experiment_id],
        "max_results": _SEARCH_PAGE_SIZE,
    }
    if query is not None:
        body["filter"] = query
    models: list[LoggedModel] = []
    seen_tokens: set[str] = set()
    while True:
        response = await transport.call(
            "POST", "logged-models/search", json=body, feature="logged models"
        )
        models += parse_items(response, "models", LoggedModel.from_wire)
        token = next_page_token(response, seen_tokens)
        if token is None:
            return models
        body["page_token"] = token


def _output_steps(run: dict[str, Any]) -> dict[str, int]:
    """Map each logged model id in the run's outputs to the step it was logged at."""
    outputs = run.get("outputs") or {}
    steps: dict[str, int] = {}
    for entry in outputs.get("model_outputs") or []:
        model_id = entry.get("model_id")
        if model_id:
            steps[str(model_id)] = int(entry.get("step") or 0)
    return steps


async def find_run_logged_model(
    transport: MlflowTransport, run: dict[str, Any], name: str
) -> str | None:
    """Return the id of the logged model named `name` whose source run is `run`.

    Of several, the one the run's outputs record at the highest step is
    returned. A server without logged models (MLflow 2) gives None.

    Raises:
        ValidationException: Several logged models match, and the run's
            outputs do not record a step for each of them.
    """
    info = run.get("info") or {}
    run_id = str(info.get("run_id") or "")
    experiment_id = str(info.get("experiment_id") or "")
    if not run_id or not experiment_id:
        return None
    try:
        found = await _search(transport, experiment_id, name)
    except NotSupportedByServerException:
        return None
    candidates = [
        model.model_id
        for model in found
        if model.name == name and model.source_run_id == run_id
    ]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    steps = _output_steps(run)
    if not all(model_id in steps for model_id in candidates):
        raise ValidationException(
            f"run {run_id!r} has {len(candidates)} logged models named {name!r} "
            f"({', '.join(sorted(candidates))}) and its outputs do not say which is "
            "the latest; register one with models.create_version and source "
            "'models:/<model_id>'"
        )
    return max(candidates, key=lambda model_id: steps[model_id])
