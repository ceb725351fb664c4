"""Registry methods that read the run behind a version: register, metrics, files."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Mapping
from typing import Any

from .._exceptions import (
    AlreadyExistsException,
    MLflowException,
    ModelNotFoundException,
    NotFoundException,
    RunNotFoundException,
    ValidationException,
)
from .._pagination import next_page_token
from .._validation import check_name
from ..types.models import Model, ModelArtifact, ModelMetrics, ModelVersion
from ._artifact_paths import safe_artifact_path
from ._base import object_path
from ._model_versions import AsyncModelVersionsMixin, _logged_model_id, _version_body
from ._registry_support import (
    check_new_model_name,
    reject_prompt_model,
    relative_artifact_path,
)
from ._responses import parse_field, parse_items
from ._run_logged_models import find_run_logged_model

__all__ = ["AsyncModelRunsMixin"]

logger = logging.getLogger(__name__)


class AsyncModelRunsMixin(AsyncModelVersionsMixin):
    """Registration from runs and the run data of versions."""

    async def register(
        self,
        run_id: str,
        artifact_path: str,
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, object] | None = None,
        wait_timeout: float | None = 300.0,
    ) -> ModelVersion:
        """Register a model logged in a run as a new version of `name`.

        The registered model is created when it does not exist yet. When a
        concurrent call creates it first, that model is used. The version's
        source is the run's artifact URI joined with `artifact_path` when the
        run's artifacts contain that path (one ``artifacts/list`` request checks
        it before anything is created).

        MLflow 3 stores a model logged with ``log_model(name=...)`` as a logged
        model outside the run's artifacts. When the run's artifacts lack
        `artifact_path`, the logged model of that name whose source run is
        `run_id` is registered instead, with source ``models:/<model_id>``, as
        MLflow's own ``register_model("runs:/...")`` does. Of several such
        models, the one the run logged at the highest step wins.

        Raises:
            ValidationException: `artifact_path` is empty, absolute or has a
                ``..`` segment, or several logged models match and the run's
                outputs do not say which is the latest.
            RunNotFoundException: The run does not exist.
            NotFoundException: Nothing is stored at `artifact_path` in the run,
                and the run has no logged model of that name.
            ModelNotFoundException: `name` is a prompt.
        """
        name = check_name(name)
        if not isinstance(run_id, str) or not run_id.strip():
            raise ValidationException("run_id must be a non-empty string")
        relative = safe_artifact_path(artifact_path, what="artifact_path")
        if not relative.strip():
            raise ValidationException("artifact_path must be a non-empty path")
        run = await self._fetch_run(run_id)
        artifact_uri = str((run.get("info") or {}).get("artifact_uri") or "")
        if not artifact_uri:
            raise RunNotFoundException(f"run {run_id!r} has no artifact_uri")
        existing = await self._find_model(name)
        model_id = await self._find_source(run_id, run, relative)
        if model_id is None:
            source = artifact_uri.rstrip("/") + "/" + relative
        else:
            source = f"models:/{model_id}"
        body = _version_body(name, source, run_id, tags, description, None)

        if existing is None:
            await self._create_model(name)
        return await self._create_version_unchecked(body, wait_timeout)

    async def _find_model(self, name: str) -> Model | None:
        """Fetch the model `name`, or None when it does not exist; reject a prompt."""
        try:
            existing = await self._fetch_model(name)
        except ModelNotFoundException:
            return None
        return reject_prompt_model(existing)

    async def _create_model(self, name: str) -> Model:
        """Create the model `name`, or fetch it when a concurrent call created it."""
        check_new_model_name(name)
        try:
            body = await self._transport.call(
                "POST",
                "registered-models/create",
                json={"name": name},
                not_found=ModelNotFoundException,
                registry=True,
            )
            return parse_field(body, "registered_model", Model.model_validate)
        except AlreadyExistsException:
            return reject_prompt_model(await self._fetch_model(name))

    async def _find_source(
        self, run_id: str, run: dict[str, Any], relative: str
    ) -> str | None:
        """Return None to register the run's own `relative` folder, or the id
        of the run's logged model named `relative`.

        A failed listing (a server that cannot reach the artifact store, or a
        user without artifact access) skips the check with a warning, because
        the registry itself does not need the artifacts.

        Raises:
            NotFoundException: Neither the run's artifacts nor its logged
                models contain `relative`.
        """
        try:
            found = await self._artifact_exists(run_id, relative)
        except MLflowException as exc:
            logger.warning(
                "could not list artifact_path %r of run %s, registering without "
                "checking it: %s",
                relative,
                run_id,
                exc,
            )
            return None
        if found:
            return None
        model_id = await find_run_logged_model(self._transport, run, relative)
        if model_id is None:
            raise NotFoundException(
                f"artifact_path {relative!r} not found in the artifacts of run "
                f"{run_id!r}, and the run has no logged model with that name; "
                "log the model there first or pass the path it was logged under",
                error_code="RESOURCE_DOES_NOT_EXIST",
            )
        logger.info(
            "run %s has no artifacts at %r; registering its logged model %s",
            run_id,
            relative,
            model_id,
        )
        return model_id

    async def _artifact_exists(self, run_id: str, relative: str) -> bool:
        # MLflow lists a folder's files but lists a file path as empty, so an
        # empty listing is followed by the parent folder's, which finds a model
        # saved as a single file.
        listing = await self._list_artifact_page(run_id, relative, None)
        if listing.get("files"):
            return True
        parent = relative.rpartition("/")[0]
        token: str | None = None
        seen: set[str] = set()
        while True:
            listing = await self._list_artifact_page(run_id, parent, token)
            paths = {item.get("path") for item in listing.get("files") or []}
            if relative in paths:
                return True
            token = next_page_token(listing, seen)
            if token is None:
                return False

    async def _list_artifact_page(
        self, run_id: str, path: str, token: str | None
    ) -> dict[str, Any]:
        return await self._transport.call(
            "GET",
            "artifacts/list",
            params={"run_id": run_id, "path": path, "page_token": token},
        )

    async def _fetch_run(self, run_id: str) -> dict[str, Any]:
        body = await self._transport.call(
            "GET",
            "runs/get",
            params={"run_id": run_id},
            not_found=RunNotFoundException,
        )
        run: dict[str, Any] = body["run"]
        return run

    async def _run_of_version(
        self, name: str, version: str | int
    ) -> tuple[ModelVersion, dict[str, Any]]:
        found = await self.get_version(name, version)
        if found.run_id is None:
            raise RunNotFoundException(
                f"model version {found.version} of {found.name!r} has no run"
            )
        return found, await self._fetch_run(found.run_id)

    async def get_model_metrics(self, name: str, version: str | int) -> ModelMetrics:
        """Fetch the latest metrics and the params of the run behind a version.

        Raises:
            RunNotFoundException: The version has no run, or the run is gone.
        """
        found, run = await self._run_of_version(name, version)
        return ModelMetrics.from_run(found.name, found.version, run)

    async def list_model_artifacts(
        self, name: str, version: str | int, path: str | None = None
    ) -> builtins.list[ModelArtifact]:
        """List the files of a version, one folder level, from its run.

        Without `path`, the folder is the version's source within the run's
        artifacts (``model`` for a source ``<run artifact_uri>/model``), or the
        run's artifact root when the source lies elsewhere.

        A version with an MLflow 3 logged model as its source
        (``models:/<model_id>``) keeps its files in that logged model, so they
        are listed from there, with paths relative to the logged model's
        artifact root (`path` is relative to it too).

        Raises:
            RunNotFoundException: The version has no run, or the run is gone.
        """
        if path is not None:
            path = safe_artifact_path(path)
        found, run = await self._run_of_version(name, version)
        model_id = _logged_model_id(found.source or "")
        if model_id is not None:
            return await self._list_logged_model_artifacts(model_id, path)
        folder = path if path is not None else relative_artifact_path(found.source, run)
        artifacts: builtins.list[ModelArtifact] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            body = await self._transport.call(
                "GET",
                "artifacts/list",
                params={"run_id": found.run_id, "path": folder, "page_token": token},
            )
            artifacts += parse_items(body, "files", ModelArtifact.model_validate)
            token = next_page_token(body, seen)
            if token is None:
                return artifacts

    async def _list_logged_model_artifacts(
        self, model_id: str, path: str | None
    ) -> builtins.list[ModelArtifact]:
        folder = safe_artifact_path(path)
        params = {"artifact_directory_path": folder} if folder else None
        body = await self._transport.call(
            "GET",
            object_path(
                "logged-models", model_id, "/artifacts/directories", what="model id"
            ),
            params=params,
            not_found=NotFoundException,
            feature="logged models",
        )
        # MLflow 3.17 returns one level in one response, without a page token.
        return parse_items(body, "files", ModelArtifact.model_validate)
