"""The experiments sub-client: create, read, search, rename, delete and tag."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from .._exceptions import (
    AlreadyExistsException,
    ExperimentNotFoundException,
    MLflowException,
    ValidationException,
)
from .._pagination import AsyncPager, Page
from .._transport import RetryMode
from .._validation import (
    check_choice,
    check_entity_key,
    check_experiment_id,
    check_filter,
    check_key_values,
    check_max_results,
    check_name,
    check_order_by,
    check_tag_key,
    check_tag_value,
)
from ..types.tracking import Experiment, ViewType
from ._base import AsyncMlflowResource
from ._responses import parse_field, parse_items

__all__ = ["AsyncExperimentsResource"]

logger = logging.getLogger(__name__)

MAX_EXPERIMENT_NAME_LENGTH = 500
# MLflow 3.17's limit for an experiment tag value, in characters.
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20_000
# MLflow servers guarantee at least this many experiments per search page.
MAX_SEARCH_PAGE_SIZE = 1000


def _check_experiment_name(name: object, *, lookup: bool = False) -> str:
    # MLflow 3.17 creates an experiment named "   " (other clients may have
    # done so), so a lookup accepts such a name. Creating or renaming to one
    # is most likely a mistake, so it is rejected.
    checked = check_name(name, what="experiment name", blank_ok=lookup)
    if len(checked) > MAX_EXPERIMENT_NAME_LENGTH:
        raise ValidationException(
            f"experiment name is {len(checked)} characters; the maximum is "
            f"{MAX_EXPERIMENT_NAME_LENGTH}"
        )
    return checked


def _check_artifact_location(location: object) -> str:
    if not isinstance(location, str) or not location.strip():
        raise ValidationException(
            "artifact_location must be a non-empty URI string such as "
            f"'s3://bucket/path', got {type(location).__name__} {location!r:.40}"
        )
    return location


def _check_active(experiment: Experiment) -> Experiment:
    # A deleted experiment keeps its name taken, and MLflow rejects new runs in
    # it, so returning it from get_or_create would only move the failure.
    if experiment.lifecycle_stage != "deleted":
        return experiment
    raise MLflowException(
        f"experiment {experiment.name!r} (id {experiment.experiment_id}) is "
        "deleted, and MLflow keeps its name taken; restore it with "
        f"experiments.restore({experiment.experiment_id!r}) or use another name",
        error_code="INVALID_STATE",
    )


class AsyncExperimentsResource(AsyncMlflowResource):
    """Experiments of the tracking server.

    A missing experiment raises `ExperimentNotFoundException`, except in
    `get_by_name`, which returns None.
    """

    async def create(
        self,
        name: str,
        *,
        artifact_location: str | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> Experiment:
        """Create an experiment and return it.

        Args:
            name: A unique name of at most 500 characters.
            artifact_location: Where runs store artifacts; the server's default
                root when None.
            tags: Experiment tags.

        Raises:
            AlreadyExistsException: An experiment with this name exists (also a
                deleted one, until it is purged).
        """
        checked_tags = check_key_values(
            tags, max_length=MAX_EXPERIMENT_TAG_VALUE_LENGTH
        )
        for tag in checked_tags:
            check_entity_key(tag["key"])
        body: dict[str, object] = {
            "name": _check_experiment_name(name),
            "tags": checked_tags,
        }
        if artifact_location is not None:
            body["artifact_location"] = _check_artifact_location(artifact_location)
        response = await self._transport.call(
            "POST", "experiments/create", json=body, retry=RetryMode.UNSENT
        )
        return await self.get(str(response["experiment_id"]))

    async def get(self, experiment_id: str) -> Experiment:
        """Return an experiment by id; deleted experiments are returned too."""
        response = await self._transport.call(
            "GET",
            "experiments/get",
            params={"experiment_id": check_experiment_id(experiment_id)},
            not_found=ExperimentNotFoundException,
        )
        return parse_field(response, "experiment", Experiment.model_validate)

    async def get_by_name(self, name: str) -> Experiment | None:
        """Return the experiment with this name, or None when there is none."""
        try:
            response = await self._transport.call(
                "GET",
                "experiments/get-by-name",
                params={"experiment_name": _check_experiment_name(name, lookup=True)},
                not_found=ExperimentNotFoundException,
            )
        except ExperimentNotFoundException:
            return None
        return parse_field(response, "experiment", Experiment.model_validate)

    async def get_or_create(
        self,
        name: str,
        *,
        artifact_location: str | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> Experiment:
        """Return the experiment with this name, creating it when missing.

        Safe under races: when a concurrent caller creates the experiment
        first, the RESOURCE_ALREADY_EXISTS error is settled by reading the
        experiment back, so every caller gets the same experiment. The
        `artifact_location` and `tags` apply only when this call creates it.
        """
        # Bad arguments fail even when the experiment exists, so a call that
        # works today does not start failing once the experiment is deleted.
        if artifact_location is not None:
            _check_artifact_location(artifact_location)
        check_key_values(tags, max_length=MAX_EXPERIMENT_TAG_VALUE_LENGTH)
        existing = await self.get_by_name(name)
        if existing is not None:
            return _check_active(existing)
        try:
            return await self.create(
                name, artifact_location=artifact_location, tags=tags
            )
        except AlreadyExistsException:
            logger.debug("experiment %r was created concurrently; reading it", name)
            created = await self.get_by_name(name)
            if created is None:
                raise
            return _check_active(created)

    def search(
        self,
        filter_string: str | None = None,
        order_by: Sequence[str] | str | None = None,
        view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        *,
        max_results: int | None = None,
        page_size: int = MAX_SEARCH_PAGE_SIZE,
    ) -> AsyncPager[Experiment]:
        """Search experiments, for example ``name LIKE 'test-%'``.

        Args:
            filter_string: A filter on ``name`` and ``tags.<key>``.
            order_by: One clause such as ``"name ASC"``, or a list of clauses.
                Ties are broken by id.
            view_type: Active, deleted or all experiments.
            max_results: Stop after this many experiments (None: all).
            page_size: Experiments per request (1 to 1000).

        Raises:
            ValidationException: An argument is invalid. No request is sent then.
        """
        query = check_filter(filter_string)
        clauses = check_order_by(order_by) or []
        size = check_max_results(
            page_size, maximum=MAX_SEARCH_PAGE_SIZE, name="page_size"
        )
        if max_results is not None:
            size = min(size, check_max_results(max_results, maximum=2**31 - 1))
        view = check_choice(ViewType, view_type, what="view_type")

        async def fetch(token: str | None) -> Page[Experiment]:
            body: dict[str, object] = {
                "max_results": size,
                "view_type": view.value,
                "order_by": clauses,
            }
            if query:
                body["filter"] = query
            if token:
                body["page_token"] = token
            response = await self._transport.call(
                "POST", "experiments/search", json=body
            )
            items = parse_items(response, "experiments", Experiment.model_validate)
            return Page(items, response.get("next_page_token"), response)

        return AsyncPager(fetch, max_results=max_results)

    async def rename(self, experiment_id: str, new_name: str) -> None:
        """Rename an experiment."""
        await self._transport.call(
            "POST",
            "experiments/update",
            json={
                "experiment_id": check_experiment_id(experiment_id),
                "new_name": _check_experiment_name(new_name),
            },
            not_found=ExperimentNotFoundException,
        )

    async def delete(self, experiment_id: str) -> None:
        """Mark an experiment and its runs deleted; `restore` undoes it."""
        await self._transport.call(
            "POST",
            "experiments/delete",
            json={"experiment_id": check_experiment_id(experiment_id)},
            not_found=ExperimentNotFoundException,
        )

    async def restore(self, experiment_id: str) -> None:
        """Restore a deleted experiment."""
        await self._transport.call(
            "POST",
            "experiments/restore",
            json={"experiment_id": check_experiment_id(experiment_id)},
            not_found=ExperimentNotFoundException,
        )

    async def set_tag(self, experiment_id: str, key: str, value: object) -> None:
        """Set an experiment tag (values up to 20,000 characters)."""
        checked = check_entity_key(key)
        text = check_tag_value(
            checked, value, max_length=MAX_EXPERIMENT_TAG_VALUE_LENGTH
        )
        await self._transport.call(
            "POST",
            "experiments/set-experiment-tag",
            json={
                "experiment_id": check_experiment_id(experiment_id),
                "key": checked,
                "value": text,
            },
            not_found=ExperimentNotFoundException,
        )

    async def delete_tag(self, experiment_id: str, key: str) -> None:
        """Delete an experiment tag."""
        await self._transport.call(
            "POST",
            "experiments/delete-experiment-tag",
            json={
                "experiment_id": check_experiment_id(experiment_id),
                "key": check_tag_key(key),
            },
            not_found=ExperimentNotFoundException,
        )
