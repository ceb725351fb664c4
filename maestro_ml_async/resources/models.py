"""The model registry sub-client, ``client.models``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._bulk import BulkResults, ProgressCallback, bulk_map
from .._exceptions import (
    AlreadyExistsException,
    InvalidParameterException,
    ModelNotFoundException,
    ModelVersionNotFoundException,
)
from .._pagination import AsyncPager
from .._transport import API_PREFIX, RetryMode
from .._transport._errors import error_from_response
from .._transport._http import success_body
from .._validation import (
    check_alias,
    check_collection,
    check_key_values,
    check_name,
    check_positive_int,
    check_stage,
    check_tag_value,
    check_version,
)
from ..types.models import Model, ModelVersion
from ._model_runs import AsyncModelRunsMixin
from ._model_versions import _check_description
from ._registry_support import (
    MAX_MODEL_PAGE,
    alias_insert_conflict,
    check_new_model_name,
    check_pairs,
    check_writable_tag_key,
    reject_prompt_model,
    warn_stages_deprecated,
)
from ._responses import parse_field

if TYPE_CHECKING:
    from ..types.events import RegistryEvent

__all__ = ["AsyncModelsResource"]

logger = logging.getLogger(__name__)

# Attempts of set_alias when a concurrent insert of the same alias wins. One
# retry suffices unless the alias is also deleted between attempts.
SET_ALIAS_ATTEMPTS = 3


class AsyncModelsResource(AsyncModelRunsMixin):
    """The model registry: registered models, versions, stages and aliases.

    Names travel only in query strings and JSON bodies, never in URL paths, so
    any name MLflow accepts (spaces, ``/``, ``%``, ``#``, non-ASCII) round-trips.

    Prompts, which MLflow stores as registered models tagged
    ``mlflow.prompt.is_prompt``, are hidden as MLflow's own client hides them:
    searches exclude them, and reads of a prompt raise the not-found exception.
    Writes check for prompts as follows. `delete`, `rename`, `update`,
    `create_version`, `update_version` and `delete_version` read the model or
    version first, one extra GET for writes that are rare or cannot be undone.
    Tag and alias writes send no extra request (they are frequent and
    idempotent, and MLflow's client check halves their throughput), but the
    prompt marker tag itself cannot be set or deleted. Stage transitions check
    the version in the server's response.
    """

    def list(
        self,
        max_results: int | None = None,
        *,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> AsyncPager[Model]:
        """List registered models, ordered by name.

        ``await client.models.list(max_results=100)`` returns a list, and
        ``async for model in client.models.list()`` streams every model page by
        page.

        Args:
            max_results: The maximum number of models over all pages, or None for all.
            page_size: Models per request, 1 to 1000.
            page_token: Start at this page instead of the first.
        """
        return self.search(
            max_results=max_results, page_size=page_size, page_token=page_token
        )

    def search(
        self,
        filter_string: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int | None = None,
        *,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> AsyncPager[Model]:
        """Search registered models, leaving out prompts.

        Filter on ``name`` and ``tags.<key>`` with ``=``, ``!=``, ``LIKE`` and
        ``ILIKE``, joined by ``AND``. Order by ``name`` or
        ``last_updated_timestamp`` with ``ASC`` or ``DESC``.

        Args:
            filter_string: The search filter. The prompt exclusion is added to
                it unless it names the ``mlflow.prompt.is_prompt`` tag itself.
            order_by: One clause or a list of clauses.
            max_results: The maximum number of models over all pages, or None for all.
            page_size: Models per request, 1 to 1000.
            page_token: Start at this page instead of the first.

        Returns:
            A pager: ``await`` it for a list, iterate it with ``async for``, or
            call ``.page(token)`` for a single page.
        """
        return self._search_registry(
            Model,
            "registered-models/search",
            "registered_models",
            filter_string=filter_string,
            order_by=order_by,
            max_results=max_results,
            page_size=page_size,
            page_token=page_token,
            maximum_page_size=MAX_MODEL_PAGE,
        )

    async def get(self, name: str) -> Model:
        """Fetch a registered model.

        Raises:
            ModelNotFoundException: The model does not exist or is a prompt.
        """
        return reject_prompt_model(await self._fetch_model(check_name(name)))

    async def create(
        self,
        name: str,
        description: str | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> Model:
        """Create a registered model.

        MLflow rejects a second model of the same name, so a retried create can
        never make a duplicate, and the request is retried like a read. When a retry
        then meets RESOURCE_ALREADY_EXISTS, the model is read back and returned
        if its description and tags are the ones sent (the first attempt
        reached the server).

        Raises:
            AlreadyExistsException: A model of that name exists.
        """
        name = check_new_model_name(name)
        text = _check_description(description)
        checked_tags = check_key_values(tags)
        for tag in checked_tags:
            check_writable_tag_key(tag["key"])
        body: dict[str, Any] = {"name": name, "description": text}
        if checked_tags:
            body["tags"] = checked_tags

        path = API_PREFIX + "/registered-models/create"
        response = await self._transport.request(
            "POST", path, json=body, retry=RetryMode.SAFE, registry=True
        )
        if response.is_success:
            created = success_body(response, method="POST", path=path)
            return parse_field(created, "registered_model", Model.model_validate)
        error = error_from_response(response, not_found=ModelNotFoundException)
        attempts = int(response.extensions.get("maestro_attempts", 1))
        if isinstance(error, AlreadyExistsException) and attempts > 1:
            existing = await self._fetch_model(name)
            expected_tags = {tag["key"]: tag["value"] for tag in checked_tags}
            if existing.description == text and existing.tags == expected_tags:
                return existing
        raise error

    async def update(self, name: str, description: str) -> Model:
        """Set a model's description, reading the model first to reject a prompt."""
        name = check_name(name)
        text = _check_description(description)
        reject_prompt_model(await self._fetch_model(name))
        body = await self._transport.call(
            "PATCH",
            "registered-models/update",
            json={"name": name, "description": text},
            not_found=ModelNotFoundException,
            registry=True,
        )
        return parse_field(body, "registered_model", Model.model_validate)

    async def rename(self, name: str, new_name: str) -> Model:
        """Rename a registered model, with its versions and aliases.

        The rename is not retried after it may have reached the server, because
        a repeat would fail with not-found once the first one succeeded.
        """
        name, new_name = (
            check_name(name),
            check_new_model_name(new_name, what="new name"),
        )
        reject_prompt_model(await self._fetch_model(name))
        body = await self._transport.call(
            "POST",
            "registered-models/rename",
            json={"name": name, "new_name": new_name},
            retry=RetryMode.UNSENT,
            not_found=ModelNotFoundException,
            registry=True,
        )
        return parse_field(body, "registered_model", Model.model_validate)

    async def delete(self, name: str) -> None:
        """Delete a registered model with all its versions.

        A not-found response to a retried delete counts as success, because the
        attempt that failed may have deleted the model.

        Raises:
            ModelNotFoundException: The model does not exist or is a prompt.
        """
        name = check_name(name)
        reject_prompt_model(await self._fetch_model(name))
        await self._delete(
            "registered-models/delete", {"name": name}, ModelNotFoundException
        )

    async def set_tag(self, name: str, key: str, value: object) -> None:
        """Set a tag on a model. It is idempotent, so it retries like a read."""
        name, key = check_name(name), check_writable_tag_key(key)
        await self._transport.call(
            "POST",
            "registered-models/set-tag",
            json={"name": name, "key": key, "value": check_tag_value(key, value)},
            not_found=ModelNotFoundException,
            registry=True,
        )

    async def delete_tag(self, name: str, key: str) -> None:
        """Delete a model tag. Deleting a tag that is not set succeeds."""
        name, key = check_name(name), check_writable_tag_key(key)
        await self._transport.call(
            "DELETE",
            "registered-models/delete-tag",
            json={"name": name, "key": key},
            not_found=ModelNotFoundException,
            registry=True,
        )

    async def set_alias(self, name: str, alias: str, version: str | int) -> None:
        """Point an alias at a version, moving it if it is already set.

        Concurrent calls that set the same alias end with the alias at the
        version of one of them. When two of them add a new alias at once, the
        MLflow server rejects one insert with a unique-key error, and this
        method retries it (at most 3 attempts in all).

        Raises:
            ValidationException: The alias breaks MLflow's rules (letters,
                digits, ``_`` and ``-``; not ``latest``; not ``v<number>``).
            ModelVersionNotFoundException: The version does not exist.
        """
        name, alias, number = (
            check_name(name),
            check_alias(alias),
            check_version(version),
        )
        for attempt in range(1, SET_ALIAS_ATTEMPTS + 1):
            try:
                await self._transport.call(
                    "POST",
                    "registered-models/alias",
                    json={"name": name, "alias": alias, "version": number},
                    not_found=ModelVersionNotFoundException,
                    registry=True,
                )
                return
            except InvalidParameterException as exc:
                # A concurrent request inserted the same new alias first, so
                # the row exists now and a retry updates it.
                if attempt == SET_ALIAS_ATTEMPTS or not alias_insert_conflict(exc):
                    raise
                logger.info(
                    "set_alias %r on model %r hit a concurrent insert of the "
                    "alias (attempt %d of %d); retrying",
                    alias,
                    name,
                    attempt,
                    SET_ALIAS_ATTEMPTS,
                )

    async def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias from a registered model."""
        name, alias = check_name(name), check_alias(alias)
        await self._transport.call(
            "DELETE",
            "registered-models/alias",
            json={"name": name, "alias": alias},
            not_found=ModelNotFoundException,
            registry=True,
        )

    def watch(
        self,
        name: str | None = None,
        filter_string: str | None = None,
        *,
        poll_interval: float = 5.0,
        include_existing: bool = False,
    ) -> AsyncIterator[RegistryEvent]:
        """Poll the registry and yield each change of the watched models once.

        ``async for event in client.models.watch("churn"):`` reports new
        versions, status, stage and tag changes, alias moves and deletions. The
        iterator runs until the caller stops it.

        Args:
            name: Watch only this registered model.
            filter_string: A model search filter that selects the watched models.
            poll_interval: Seconds between polls.
            include_existing: Report what exists at the first poll as created;
                otherwise the first poll is the baseline.
        """
        from ._registry_watch import watch_registry

        return watch_registry(
            self._transport,
            name,
            filter_string,
            poll_interval=poll_interval,
            include_existing=include_existing,
        )

    def _concurrency(self, max_concurrency: object) -> int:
        """Return a bulk call's `max_concurrency`, None meaning the client's."""
        if max_concurrency is None:
            return self._transport.config.max_concurrency
        return check_positive_int(max_concurrency, name="max_concurrency")

    async def get_many(
        self,
        names: Iterable[str],
        *,
        max_concurrency: int | None = None,
        raise_on_error: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> BulkResults[Model]:
        """Fetch many models concurrently. Each result is a model or its error."""
        checked = [check_name(name) for name in check_collection(names, what="names")]
        return await bulk_map(
            self.get,
            checked,
            max_concurrency=self._concurrency(max_concurrency),
            raise_on_error=raise_on_error,
            on_progress=on_progress,
        )

    async def get_versions(
        self,
        pairs: Iterable[tuple[str, str | int]],
        *,
        max_concurrency: int | None = None,
        raise_on_error: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> BulkResults[ModelVersion]:
        """Fetch many ``(name, version)`` pairs concurrently, in input order."""

        async def fetch(pair: tuple[str, str]) -> ModelVersion:
            return await self.get_version(*pair)

        return await bulk_map(
            fetch,
            check_pairs(pairs),
            max_concurrency=self._concurrency(max_concurrency),
            raise_on_error=raise_on_error,
            on_progress=on_progress,
        )

    async def set_version_tags(
        self,
        pairs: Iterable[tuple[str, str | int]],
        key: str,
        value: object,
        *,
        max_concurrency: int | None = None,
        raise_on_error: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> BulkResults[None]:
        """Set the same tag on many versions concurrently."""
        key = check_writable_tag_key(key)
        text = check_tag_value(key, value)

        async def tag(pair: tuple[str, str]) -> None:
            await self.set_version_tag(pair[0], pair[1], key, text)

        return await bulk_map(
            tag,
            check_pairs(pairs),
            max_concurrency=self._concurrency(max_concurrency),
            raise_on_error=raise_on_error,
            on_progress=on_progress,
        )

    async def transition_versions(
        self,
        pairs: Iterable[tuple[str, str | int]],
        stage: str,
        archive_existing_versions: bool = False,
        *,
        max_concurrency: int | None = None,
        raise_on_error: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> BulkResults[ModelVersion]:
        """Move many versions to one stage concurrently (deprecated, as stages are).

        With `archive_existing_versions`, transitions of versions of one model
        race each other, so pass at most one version per model in that case.

        NOTE: The server's archiving is not atomic, so concurrent transitions
        of one model's versions can leave several of them in the stage.
        With MLflow 3.17 and a SQLite store, 20 concurrent transitions to
        Production with archiving left most of the 20 versions in Production.
        """
        warn_stages_deprecated(2)
        canonical = check_stage(stage)
        checked = check_pairs(pairs)

        async def move(pair: tuple[str, str]) -> ModelVersion:
            return await self._transition(
                pair[0], pair[1], canonical, archive_existing_versions
            )

        return await bulk_map(
            move,
            checked,
            max_concurrency=self._concurrency(max_concurrency),
            raise_on_error=raise_on_error,
            on_progress=on_progress,
        )
