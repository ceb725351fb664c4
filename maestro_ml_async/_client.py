"""`AsyncMaestroClient`: the entry point of the SDK."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ._bulk import BulkResults, ProgressCallback, bulk_map
from ._config import Config, build_config
from ._transport import MlflowTransport, build_http_client
from ._transport._cluster_handle import ClusterHandle

# Each sub-client, with its pydantic data models, loads on first use: building
# those models costs tens of milliseconds that a script touching only the
# registry should not pay.
if TYPE_CHECKING:
    from .resources.artifacts import AsyncArtifactsResource
    from .resources.deployment import AsyncDeploymentResource
    from .resources.experiments import AsyncExperimentsResource
    from .resources.logged_models import AsyncLoggedModelsResource
    from .resources.models import AsyncModelsResource
    from .resources.runs import AsyncRunsResource
    from .resources.training import AsyncTrainingResource
    from .resources.webhooks import AsyncWebhooksResource

__all__ = ["AsyncMaestroClient"]

logger = logging.getLogger("maestro_ml_async")

T = TypeVar("T")
R = TypeVar("R")

_UNSET: Any = object()


class AsyncMaestroClient:
    """Async client for MLflow (over REST) and the Kubernetes cluster.

    Create it from the environment (``AsyncMaestroClient()``), with explicit
    settings (``AsyncMaestroClient(mlflow_uri=..., namespace=...)``), or from a
    `Config` (``AsyncMaestroClient(config=cfg)``); explicit settings override the
    config's. Use it as ``async with AsyncMaestroClient() as client:`` or call
    `aclose` when done. All sub-clients share one HTTP connection pool.

    Each keyword setting is the `Config` field of the same name (see there
    for its meaning, variables and default).

    Args:
        config: A complete configuration; when None, it is read from the
            environment and `env_file`.
        requests_per_connection: Average number of requests per HTTP
            connection before the SDK asks the server to close it (see
            `Config`). 0 switches this off, while None keeps the configured
            value, as for every setting here.
        env_file: A `.env` file read when `config` is None.
        http_transport: An httpx transport to send requests through (for
            example ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        mlflow_uri: str | None = None,
        mlflow_registry_uri: str | None = None,
        kube_context: str | None = None,
        kube_config_path: str | None = None,
        namespace: str | None = None,
        api_url: str | None = None,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        request_timeout: float | None = None,
        training_job_timeout: float | None = None,
        verify_ssl: bool | None = None,
        ca_cert_path: str | None = None,
        client_cert_path: str | None = None,
        verbose: bool | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        requests_per_connection: int | None = None,
        env_file: str | Path | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        explicit = {
            "mlflow_uri": mlflow_uri,
            "mlflow_registry_uri": mlflow_registry_uri,
            "kube_context": kube_context,
            "kube_config_path": kube_config_path,
            "namespace": namespace,
            "api_url": api_url,
            "api_key": api_key,
            "username": username,
            "password": password,
            "request_timeout": request_timeout,
            "training_job_timeout": training_job_timeout,
            "verify_ssl": verify_ssl,
            "ca_cert_path": ca_cert_path,
            "client_cert_path": client_cert_path,
            "verbose": verbose,
            "max_retries": max_retries,
            "max_concurrency": max_concurrency,
            "requests_per_connection": requests_per_connection,
        }
        overrides = {key: value for key, value in explicit.items() if value is not None}
        if config is None:
            config = build_config(overrides, env_file=env_file)
        elif overrides:
            merged = config.model_dump()
            for secret in ("api_key", "password"):
                value = getattr(config, secret)
                merged[secret] = value.get_secret_value() if value else None
            merged.update(overrides)
            config = build_config(merged)
        self.config = config
        self._mlflow = MlflowTransport(
            config,
            build_http_client(config, http_transport),
            http_factory=functools.partial(build_http_client, config, http_transport),
        )
        self._cluster = ClusterHandle(config)

    @property
    def _http(self) -> httpx.AsyncClient:
        """The HTTP client that the sub-clients currently share."""
        return self._mlflow.http

    def __repr__(self) -> str:
        return (
            f"AsyncMaestroClient(mlflow_uri={self.config.mlflow_uri!r}, "
            f"namespace={self.config.namespace!r})"
        )

    @functools.cached_property
    def models(self) -> AsyncModelsResource:
        """The model registry: registered models, versions, stages and aliases."""
        from .resources.models import AsyncModelsResource

        return AsyncModelsResource(self._mlflow)

    @functools.cached_property
    def experiments(self) -> AsyncExperimentsResource:
        """Experiments of the tracking server."""
        from .resources.experiments import AsyncExperimentsResource

        return AsyncExperimentsResource(self._mlflow)

    @functools.cached_property
    def runs(self) -> AsyncRunsResource:
        """Runs, their metrics, params and tags, and metric streams."""
        from .resources.runs import AsyncRunsResource

        return AsyncRunsResource(self._mlflow)

    @functools.cached_property
    def artifacts(self) -> AsyncArtifactsResource:
        """Run artifacts through the server's artifact proxy."""
        from .resources.artifacts import AsyncArtifactsResource

        return AsyncArtifactsResource(self._mlflow)

    @functools.cached_property
    def webhooks(self) -> AsyncWebhooksResource:
        """Registry webhooks (MLflow 3.3 and newer)."""
        from .resources.webhooks import AsyncWebhooksResource

        return AsyncWebhooksResource(self._mlflow)

    @functools.cached_property
    def logged_models(self) -> AsyncLoggedModelsResource:
        """MLflow 3 logged models."""
        from .resources.logged_models import AsyncLoggedModelsResource

        return AsyncLoggedModelsResource(self._mlflow)

    @functools.cached_property
    def training(self) -> AsyncTrainingResource:
        """Training jobs on the cluster; kubernetes-asyncio loads on first use."""
        from .resources.training import AsyncTrainingResource

        return AsyncTrainingResource(self._cluster, self.config)

    @functools.cached_property
    def deployment(self) -> AsyncDeploymentResource:
        """KServe deployments of registry models; loads the cluster side lazily."""
        from .resources.deployment import AsyncDeploymentResource

        return AsyncDeploymentResource(self._cluster, self._mlflow, self.config)

    async def bulk_map(
        self,
        func: Callable[[T], Awaitable[R]],
        items: Iterable[T],
        *,
        max_concurrency: int | None = None,
        raise_on_error: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> BulkResults[R]:
        """Run ``func(item)`` for each item with bounded concurrency.

        The bound defaults to the configuration's `max_concurrency`, which is also
        the size of the connection pool. See `maestro_ml_async.bulk_map`.
        """
        return await bulk_map(
            func,
            items,
            max_concurrency=max_concurrency or self.config.max_concurrency,
            raise_on_error=raise_on_error,
            on_progress=on_progress,
        )

    @property
    def closed(self) -> bool:
        """Whether `aclose` was called."""
        return self._mlflow.closed

    async def aclose(self) -> None:
        """Close the HTTP pool and the cluster connection; safe to call twice."""
        if self._mlflow.closed:
            return
        self._mlflow.close()
        try:
            await self._cluster.aclose()
        finally:
            await self._mlflow.aclose_pool()

    async def __aenter__(self) -> AsyncMaestroClient:
        self._mlflow.check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
