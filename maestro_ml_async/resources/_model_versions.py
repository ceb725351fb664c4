"""Model version methods of the registry sub-client."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TypeVar

from .._exceptions import (
    InvalidParameterException,
    ModelNotFoundException,
    ModelVersionNotFoundException,
    NotFoundException,
    ValidationException,
)
from .._pagination import AsyncPager, Page
from .._transport import API_PREFIX, RetryMode
from .._transport._errors import error_from_response
from .._validation import (
    check_alias,
    check_collection,
    check_key_values,
    check_max_results,
    check_name,
    check_stage,
    check_tag_value,
    check_version,
)
from ..types.models import PROMPT_TAG_KEY, Model, ModelVersion
from ._base import AsyncMlflowResource
from ._registry_support import (
    MAX_VERSION_PAGE,
    alias_not_found,
    check_filter,
    check_order_by,
    check_writable_tag_key,
    exclude_prompts,
    reject_prompt_model,
    reject_prompt_version,
    wait_until_ready,
    warn_stages_deprecated,
)
from ._responses import invalid_response, parse_field, parse_items

__all__ = ["AsyncModelVersionsMixin"]

RegistryItem = TypeVar("RegistryItem", Model, ModelVersion)


class AsyncModelVersionsMixin(AsyncMlflowResource):
    """Version-level registry calls, shared by `AsyncModelsResource`."""

    async def _fetch_model(self, name: str) -> Model:
        body = await self._transport.call(
            "GET",
            "registered-models/get",
            params={"name": name},
            not_found=ModelNotFoundException,
            registry=True,
        )
        return parse_field(body, "registered_model", Model.model_validate)

    async def _fetch_version(self, name: str, version: str) -> ModelVersion:
        body = await self._transport.call(
            "GET",
            "model-versions/get",
            params={"name": name, "version": version},
            not_found=ModelVersionNotFoundException,
            registry=True,
        )
        return parse_field(body, "model_version", ModelVersion.model_validate)

    async def _delete(
        self,
        endpoint: str,
        body: dict[str, str],
        not_found: type[NotFoundException],
    ) -> None:
        """Send a delete, counting a not-found after a retry as done.

        A retry follows a failure that may have come after the server deleted
        the object, so RESOURCE_DOES_NOT_EXIST then means the first attempt
        succeeded.
        """
        response = await self._transport.request(
            "DELETE", API_PREFIX + "/" + endpoint, json=body, registry=True
        )
        if response.is_success:
            return
        error = error_from_response(response, not_found=not_found)
        attempts = int(response.extensions.get("maestro_attempts", 1))
        if isinstance(error, NotFoundException) and attempts > 1:
            return
        raise error

    def _search_registry(
        self,
        item_type: type[RegistryItem],
        endpoint: str,
        items_key: str,
        *,
        filter_string: str | None,
        order_by: Sequence[str] | str | None,
        max_results: int | None,
        page_size: int,
        page_token: str | None,
        maximum_page_size: int,
    ) -> AsyncPager[RegistryItem]:
        """Page through a registry search endpoint, leaving out prompts.

        The arguments are checked here, before the first request. The filter
        gets the prompt exclusion, and items that still carry the prompt tag
        are dropped from each page. A filter that names the prompt tag itself
        is sent as given and its results are kept, as MLflow's client does.
        """
        checked = check_filter(filter_string)
        query = exclude_prompts(checked)
        hide_prompts = query != checked
        clauses = check_order_by(order_by)
        per_page = _page_size(page_size, max_results, maximum_page_size)

        async def fetch(token: str | None) -> Page[RegistryItem]:
            body = await self._transport.call(
                "GET",
                endpoint,
                params={
                    "filter": query,
                    "max_results": per_page,
                    "order_by": clauses,
                    "page_token": token,
                },
                registry=True,
            )
            items = parse_items(body, items_key, item_type.model_validate)
            if not hide_prompts:
                return Page(items, body.get("next_page_token") or None, body)
            kept = [item for item in items if not item.is_prompt]
            return Page(kept, body.get("next_page_token") or None, body)

        return AsyncPager(fetch, max_results=max_results, page_token=page_token)

    async def get_version(self, name: str, version: str | int) -> ModelVersion:
        """Fetch one model version.

        Raises:
            ModelVersionNotFoundException: The version does not exist, or it is
                a prompt version.
        """
        name, number = check_name(name), check_version(version)
        return reject_prompt_version(await self._fetch_version(name, number))

    async def get_latest_versions(
        self, name: str, stages: Sequence[str] | None = None
    ) -> builtins.list[ModelVersion]:
        """Fetch the newest version in each stage, or in the given stages.

        Deprecated by MLflow since 2.9, like every stage method: this emits a
        `DeprecationWarning`. Stages are case-insensitive.

        Raises:
            ModelNotFoundException: The model does not exist or is a prompt.
        """
        warn_stages_deprecated(2)
        name = check_name(name)
        if isinstance(stages, str):
            stages = [stages]
        elif stages is not None:
            stages = check_collection(stages, what="stages")
        checked = [check_stage(stage) for stage in stages or []]
        body = await self._transport.call(
            "GET",
            "registered-models/get-latest-versions",
            params={"name": name, "stages": checked},
            not_found=ModelNotFoundException,
            registry=True,
        )
        versions = parse_items(body, "model_versions", ModelVersion.model_validate)
        if any(version.is_prompt for version in versions):
            reject_prompt_model(Model(name=name, tags={PROMPT_TAG_KEY: "true"}))
        return versions

    async def create_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Mapping[str, object] | None = None,
        description: str | None = None,
        run_link: str | None = None,
        wait_timeout: float | None = 300.0,
    ) -> ModelVersion:
        """Create a model version and wait until it is READY.

        The create request is retried only when it cannot have reached the
        server (no connection, or HTTP 429), because a repeated create makes a
        second version. The model is read first, so a prompt is never given a
        version through this API.

        Args:
            name: The registered model, which must exist.
            source: The artifact location, such as ``s3://...``, ``models:/...``
                or ``runs:/<run_id>/<path>``.
            run_id: The run that produced the model.
            tags: Version tags.
            description: The version's description.
            run_link: A link to the run, kept as given.
            wait_timeout: Seconds to wait for READY. None or 0 returns at once.

        Raises:
            ModelNotFoundException: The model does not exist or is a prompt.
            RegistrationFailedException: The version ended in FAILED_REGISTRATION.
            RegistrationTimeoutException: It was still pending at the timeout.
        """
        name = check_name(name)
        body = _version_body(name, source, run_id, tags, description, run_link)
        reject_prompt_model(await self._fetch_model(name))
        return await self._create_version_unchecked(body, wait_timeout)

    async def _create_version_unchecked(
        self, body: dict[str, object], wait_timeout: float | None
    ) -> ModelVersion:
        response = await self._transport.call(
            "POST",
            "model-versions/create",
            json=body,
            retry=RetryMode.UNSENT,
            not_found=ModelNotFoundException,
            registry=True,
        )
        created = parse_field(response, "model_version", ModelVersion.model_validate)
        if not wait_timeout:
            return created
        return await wait_until_ready(
            lambda: self._fetch_version(created.name, created.version),
            created,
            wait_timeout,
        )

    async def update_version(
        self, name: str, version: str | int, description: str
    ) -> ModelVersion:
        """Set a version's description, reading it first to reject a prompt."""
        name, number = check_name(name), check_version(version)
        text = _check_description(description)
        reject_prompt_version(await self._fetch_version(name, number))
        body = await self._transport.call(
            "PATCH",
            "model-versions/update",
            json={"name": name, "version": number, "description": text},
            not_found=ModelVersionNotFoundException,
            registry=True,
        )
        return parse_field(body, "model_version", ModelVersion.model_validate)

    async def delete_version(self, name: str, version: str | int) -> None:
        """Delete a version and its aliases, reading the version first.

        Raises:
            ModelVersionNotFoundException: It does not exist or is a prompt's.
        """
        name, number = check_name(name), check_version(version)
        reject_prompt_version(await self._fetch_version(name, number))
        await self._delete(
            "model-versions/delete",
            {"name": name, "version": number},
            ModelVersionNotFoundException,
        )

    async def transition_version_stage(
        self,
        name: str,
        version: str | int,
        stage: str,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        """Move a version to a stage (None, Staging, Production or Archived).

        Deprecated by MLflow since 2.9: emits a `DeprecationWarning`. The stage is
        case-insensitive. With `archive_existing_versions`, the other versions in
        that stage move to Archived. Retried freely: setting a stage again has
        no further effect.

        NOTE: The server's archiving is not atomic. Concurrent transitions of
        versions of one model to the same stage with
        `archive_existing_versions` can leave several of them in that stage
        (seen with MLflow 3.17 and a SQLite store), so run such transitions
        one at a time.

        Raises:
            ValidationException: The stage is not one of the four.
            ModelVersionNotFoundException: The version does not exist, or the
                server's response shows a prompt version (the server has then
                already applied the transition).
        """
        warn_stages_deprecated(2)
        return await self._transition(
            check_name(name),
            check_version(version),
            check_stage(stage),
            archive_existing_versions,
        )

    async def _transition(
        self, name: str, version: str, stage: str, archive: bool
    ) -> ModelVersion:
        body = await self._transport.call(
            "POST",
            "model-versions/transition-stage",
            json={
                "name": name,
                "version": version,
                "stage": stage,
                "archive_existing_versions": bool(archive),
            },
            not_found=ModelVersionNotFoundException,
            registry=True,
        )
        return reject_prompt_version(
            parse_field(body, "model_version", ModelVersion.model_validate)
        )

    async def set_version_tag(
        self, name: str, version: str | int, key: str, value: object
    ) -> None:
        """Set a tag on a version. It is idempotent, so it retries like a read."""
        name, number = check_name(name), check_version(version)
        key = check_writable_tag_key(key)
        await self._transport.call(
            "POST",
            "model-versions/set-tag",
            json={
                "name": name,
                "version": number,
                "key": key,
                "value": check_tag_value(key, value),
            },
            not_found=ModelVersionNotFoundException,
            registry=True,
        )

    async def delete_version_tag(self, name: str, version: str | int, key: str) -> None:
        """Delete a version tag. Deleting a tag that is not set succeeds."""
        name, number = check_name(name), check_version(version)
        await self._transport.call(
            "DELETE",
            "model-versions/delete-tag",
            json={"name": name, "version": number, "key": check_writable_tag_key(key)},
            not_found=ModelVersionNotFoundException,
            registry=True,
        )

    def search_versions(
        self,
        filter_string: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int | None = None,
        *,
        page_size: int = 1000,
        page_token: str | None = None,
    ) -> AsyncPager[ModelVersion]:
        """Search model versions, leaving out prompt versions.

        Filter on ``name``, ``run_id``, ``source_path`` and ``tags.<key>``, for
        example ``"name = 'churn' AND tags.validated = 'true'"``. Aliases are
        not filled in by the server here.

        Args:
            filter_string: The search filter. The prompt exclusion is added to
                it unless it names the ``mlflow.prompt.is_prompt`` tag itself.
            order_by: Clauses such as ``"version_number DESC"``.
            max_results: The maximum number of versions over all pages, or None for all.
            page_size: Versions per request, 1 to 200000.
            page_token: Start at this page instead of the first.

        Returns:
            A pager: ``await`` it for a list, or iterate it with ``async for``.
        """
        return self._search_registry(
            ModelVersion,
            "model-versions/search",
            "model_versions",
            filter_string=filter_string,
            order_by=order_by,
            max_results=max_results,
            page_size=page_size,
            page_token=page_token,
            maximum_page_size=MAX_VERSION_PAGE,
        )

    async def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """Fetch the version that an alias points at.

        Raises:
            ModelVersionNotFoundException: The alias is not set (MLflow sends a
                400 for this, which is mapped here), or it names a prompt version.
        """
        name, alias = check_name(name), check_alias(alias)
        try:
            body = await self._transport.call(
                "GET",
                "registered-models/alias",
                params={"name": name, "alias": alias},
                not_found=ModelVersionNotFoundException,
                registry=True,
            )
        except InvalidParameterException as exc:
            if not alias_not_found(exc):
                raise
            raise ModelVersionNotFoundException(
                exc.message,
                status_code=exc.status_code,
                error_code=exc.error_code,
                method=exc.method,
                path=exc.path,
            ) from None
        return reject_prompt_version(
            parse_field(body, "model_version", ModelVersion.model_validate)
        )

    async def get_version_download_uri(self, name: str, version: str | int) -> str:
        """Return the artifact URI from which a version's files can be downloaded.

        The version is read first, so a prompt version raises
        `ModelVersionNotFoundException` as `get_version` does.
        """
        name, number = check_name(name), check_version(version)
        reject_prompt_version(await self._fetch_version(name, number))
        body = await self._transport.call(
            "GET",
            "model-versions/get-download-uri",
            params={"name": name, "version": number},
            not_found=ModelVersionNotFoundException,
            registry=True,
        )
        uri = body.get("artifact_uri")
        if not isinstance(uri, str) or not uri:
            # An empty URI would make a later download read the wrong place.
            raise invalid_response(
                body, "the server's response has no artifact_uri for the version"
            )
        return uri


def _check_description(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise ValidationException(
            f"description must be a string, got {type(description).__name__}"
        )
    return description


def _logged_model_id(source: str) -> str | None:
    """Return the logged model id of a ``models:/<model_id>`` source, else None.

    ``models:/<name>/<version>``, ``models:/<name>@<alias>`` and other
    sources name no logged model.
    """
    if not source.startswith("models:/"):
        return None
    path = source[len("models:/") :]
    if not path or "/" in path or "@" in path:
        return None
    return path


def _version_body(
    name: str,
    source: object,
    run_id: object,
    tags: Mapping[str, object] | None,
    description: object,
    run_link: object,
) -> dict[str, object]:
    """Check the fields of ``model-versions/create`` and build its body."""
    if not isinstance(source, str) or not source.strip():
        raise ValidationException("source must be a non-empty artifact URI")
    body: dict[str, object] = {"name": name, "source": source}
    model_id = _logged_model_id(source)
    if model_id is not None:
        # MLflow 3 rejects a models:/<model_id> source unless the request
        # names the same logged model in model_id.
        body["model_id"] = model_id
    if run_id is not None:
        if not isinstance(run_id, str) or not run_id.strip():
            raise ValidationException("run_id must be a non-empty string or None")
        body["run_id"] = run_id
    if run_link is not None:
        if not isinstance(run_link, str):
            raise ValidationException("run_link must be a string or None")
        body["run_link"] = run_link
    checked_tags = check_key_values(tags)
    for tag in checked_tags:
        check_writable_tag_key(tag["key"])
    if checked_tags:
        body["tags"] = checked_tags
    if description is not None:
        body["description"] = _check_description(description)
    return body


def _page_size(page_size: object, max_results: object, maximum: int) -> int:
    """Check the page size and the overall maximum, and return the request size."""
    size = check_max_results(page_size, maximum=maximum, name="page_size")
    if max_results is None:
        return size
    total = check_max_results(max_results, maximum=2**31 - 1)
    return min(size, total)
