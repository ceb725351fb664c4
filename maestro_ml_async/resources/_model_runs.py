"""Registry methods that read the run behind a version: register, metrics, files."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from .._exceptions import (
    AlreadyExistsException,
    ModelNotFoundException,
    RunNotFoundException,
    ValidationException,
)
from .._pagination import next_page_token
from .._validation import check_name
from ..types.models import Model, ModelArtifact, ModelMetrics, ModelVersion
from ._model_versions import AsyncModelVersionsMixin, _version_body
from ._registry_support import (
    check_new_model_name,
    reject_prompt_model,
    relative_artifact_path,
)

__all__ = ["AsyncModelRunsMixin"]


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
        source is the run's artifact URI joined with `artifact_path`.

        Raises:
            RunNotFoundException: The run does not exist.
            ModelNotFoundException: `name` is a prompt.
        """
        name = check_name(name)
        if not isinstance(run_id, str) or not run_id.strip():
            raise ValidationException("run_id must be a non-empty string")
        if not isinstance(artifact_path, str) or not artifact_path.strip("/ "):
            raise ValidationException("artifact_path must be a non-empty path")
        run = await self._fetch_run(run_id)
        artifact_uri = str((run.get("info") or {}).get("artifact_uri") or "")
        if not artifact_uri:
            raise RunNotFoundException(f"run {run_id!r} has no artifact_uri")
        source = artifact_uri.rstrip("/") + "/" + artifact_path.strip("/")
        body = _version_body(name, source, run_id, tags, description, None)

        await self._ensure_model(name)
        return await self._create_version_unchecked(body, wait_timeout)

    async def _ensure_model(self, name: str) -> Model:
        """Fetch the model `name`, creating it if needed, and reject a prompt."""
        try:
            existing = await self._fetch_model(name)
        except ModelNotFoundException:
            pass
        else:
            return reject_prompt_model(existing)
        check_new_model_name(name)
        try:
            body = await self._transport.call(
                "POST",
                "registered-models/create",
                json={"name": name},
                not_found=ModelNotFoundException,
                registry=True,
            )
            return Model.model_validate(body["registered_model"])
        except AlreadyExistsException:
            return reject_prompt_model(await self._fetch_model(name))

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

        Raises:
            RunNotFoundException: The version has no run, or the run is gone.
        """
        found, run = await self._run_of_version(name, version)
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
            files = body.get("files", [])
            artifacts += [ModelArtifact.model_validate(item) for item in files]
            token = next_page_token(body, seen)
            if token is None:
                return artifacts
