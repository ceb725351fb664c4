"""The MLflow 3 logged-models sub-client.

An MLflow 2 server has no ``logged-models`` endpoints and returns 404, which
raises `NotSupportedByServerException`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from .._exceptions import NotFoundException, ValidationException
from .._pagination import AsyncPager, Page
from .._transport import RetryMode
from .._validation import (
    check_choice,
    check_experiment_id,
    check_experiment_ids,
    check_filter,
    check_key_values,
    check_max_results,
    check_tag_key,
)
from ..types.tracking import LoggedModel, LoggedModelStatus
from ._base import AsyncMlflowResource, object_path
from ._log_batch import MAX_PARAM_VALUE_LENGTH, MAX_RUN_TAG_VALUE_LENGTH
from ._responses import parse_field, parse_items

__all__ = ["AsyncLoggedModelsResource"]

_FEATURE = "logged models"
MAX_SEARCH_PAGE_SIZE = 100


def _model_path(model_id: str, suffix: str = "") -> str:
    return object_path("logged-models", model_id, suffix, what="logged model id")


def _check_status(status: object) -> LoggedModelStatus:
    if isinstance(status, str):
        short = status.strip().upper()
        for member in LoggedModelStatus:
            if short in (member.name, member.value):
                return member
    return check_choice(LoggedModelStatus, status, what="status")


def _check_order_by(order_by: object) -> list[dict[str, object]]:
    """Check ``[{"field_name": ..., "ascending": ...}]`` order clauses."""
    if order_by is None:
        return []
    if isinstance(order_by, (str, Mapping)) or not isinstance(order_by, Sequence):
        raise ValidationException(
            "order_by must be a list of {'field_name': ..., 'ascending': ...} "
            f"mappings, got {order_by!r}"
        )
    clauses = []
    for entry in order_by:
        field_name = entry.get("field_name") if isinstance(entry, Mapping) else None
        if not isinstance(field_name, str) or not field_name.strip():
            raise ValidationException(
                f"each order_by entry needs a non-empty 'field_name', got {entry!r}"
            )
        clauses.append(dict(entry))
    return clauses


class AsyncLoggedModelsResource(AsyncMlflowResource):
    """MLflow 3 logged models: models stored in an experiment, with or without a run.

    Missing models raise `NotFoundException`.
    """

    async def _call(
        self,
        method: str,
        endpoint: str,
        *,
        json: Mapping[str, Any] | None = None,
        retry: RetryMode = RetryMode.SAFE,
    ) -> dict[str, Any]:
        return await self._transport.call(
            method,
            endpoint,
            json=json,
            retry=retry,
            not_found=NotFoundException,
            feature=_FEATURE,
        )

    async def create(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        model_type: str | None = None,
        source_run_id: str | None = None,
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> LoggedModel:
        """Create a logged model in PENDING status; `finalize` marks it READY."""
        body: dict[str, object] = {
            "experiment_id": check_experiment_id(experiment_id),
            "params": check_key_values(
                params, max_length=MAX_PARAM_VALUE_LENGTH, what="params"
            ),
            "tags": check_key_values(
                tags, max_length=MAX_RUN_TAG_VALUE_LENGTH, what="tags"
            ),
        }
        for field_name, value in (
            ("name", name),
            ("model_type", model_type),
            ("source_run_id", source_run_id),
        ):
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise ValidationException(
                    f"{field_name} must be a non-empty string or None, got {value!r}"
                )
            body[field_name] = value
        response = await self._call(
            "POST", "logged-models", json=body, retry=RetryMode.UNSENT
        )
        return parse_field(response, "model", LoggedModel.from_wire)

    async def get(self, model_id: str) -> LoggedModel:
        """Return a logged model by id (``m-...``)."""
        response = await self._transport.call(
            "GET",
            _model_path(model_id),
            not_found=NotFoundException,
            feature=_FEATURE,
        )
        return parse_field(response, "model", LoggedModel.from_wire)

    def search(
        self,
        experiment_ids: Sequence[str] | str | int,
        filter_string: str | None = None,
        *,
        order_by: Sequence[Mapping[str, object]] | None = None,
        max_results: int | None = None,
        page_size: int = MAX_SEARCH_PAGE_SIZE,
    ) -> AsyncPager[LoggedModel]:
        """Search the logged models of some experiments.

        Args:
            experiment_ids: The experiments to search in.
            filter_string: For example ``metrics.accuracy > 0.9``.
            order_by: Entries like ``{"field_name": "creation_time",
                "ascending": False}``.
            max_results: Stop after this many models (None: all).
            page_size: Models per request (1 to 100).
        """
        ids = check_experiment_ids(experiment_ids)
        if not ids:
            raise ValidationException("experiment_ids must not be empty")
        query = check_filter(filter_string)
        clauses = _check_order_by(order_by)
        size = check_max_results(
            page_size, maximum=MAX_SEARCH_PAGE_SIZE, name="page_size"
        )
        if max_results is not None:
            size = min(size, check_max_results(max_results, maximum=2**31 - 1))

        async def fetch(token: str | None) -> Page[LoggedModel]:
            body: dict[str, object] = {
                "experiment_ids": ids,
                "max_results": size,
                "order_by": clauses,
            }
            if query:
                body["filter"] = query
            if token:
                body["page_token"] = token
            response = await self._call("POST", "logged-models/search", json=body)
            items = parse_items(response, "models", LoggedModel.from_wire)
            return Page(items, response.get("next_page_token"), response)

        return AsyncPager(fetch, max_results=max_results)

    async def finalize(
        self,
        model_id: str,
        status: LoggedModelStatus | str = LoggedModelStatus.READY,
    ) -> LoggedModel:
        """Set the final upload status: READY or UPLOAD_FAILED.

        The status may be a `LoggedModelStatus`, its value
        (``LOGGED_MODEL_READY``) or the short name (``ready``), in any case.
        """
        final = _check_status(status)
        if final not in (LoggedModelStatus.READY, LoggedModelStatus.UPLOAD_FAILED):
            raise ValidationException(
                f"finalize needs READY or UPLOAD_FAILED, got {final.value}"
            )
        path = _model_path(model_id)
        response = await self._call(
            "PATCH",
            path,
            json={"model_id": model_id.strip(), "status": final.value},
        )
        return parse_field(response, "model", LoggedModel.from_wire)

    async def delete(self, model_id: str) -> None:
        """Delete a logged model."""
        await self._call("DELETE", _model_path(model_id))

    async def set_tags(self, model_id: str, tags: Mapping[str, object]) -> None:
        """Set tags of a logged model; other tags are kept."""
        entries = check_key_values(
            tags, max_length=MAX_RUN_TAG_VALUE_LENGTH, what="tags"
        )
        await self._call(
            "PATCH", _model_path(model_id, "/tags"), json={"tags": entries}
        )

    async def delete_tag(self, model_id: str, key: str) -> None:
        """Delete one tag of a logged model."""
        path = _model_path(model_id, "/tags/" + quote(check_tag_key(key), safe=""))
        await self._call("DELETE", path)
