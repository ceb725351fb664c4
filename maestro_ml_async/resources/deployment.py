"""`AsyncDeploymentResource`: registry models served on KServe, with rollouts.

Each deployment is one KServe InferenceService (``serving.kserve.io/v1beta1``).
Its model comes from the MLflow registry and is served from the storage URI
that the registry reports, rewritten by ``Config.storage_uri_map``. Rollouts
use KServe's canary field ``canaryTrafficPercent``; see `update`.

kubernetes-asyncio is not imported by this module: the cluster transport is
built on first use through `ClusterHandle.get`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from .._config import Config
from .._exceptions import (
    DeploymentException,
    KubernetesConflictException,
    KubernetesNotFoundException,
    ValidationException,
)
from .._pagination import AsyncPager, Page
from .._transport import MlflowTransport
from .._transport._cluster_handle import ClusterHandle
from .._validation import check_kubernetes_name, check_name
from ..types.deployment import Deployment, DeploymentEvent
from ._deployment_bluegreen import switch_blue_green
from ._deployment_checks import (
    DEFAULT_CANARY_PERCENT,
    check_deploy_options,
    check_label_selector,
    check_list_limit,
    check_min_generation,
    check_page_size,
    check_update,
    check_wait_timeout,
)
from ._deployment_patch import (
    PatchBuilder,
    ScaleChange,
    merge_patches,
    patch_with_retry,
    promote_patch,
    rollback_patch,
    rollout_patch,
    scale_patch,
)
from ._deployment_source import (
    VersionSelector,
    check_version_selector,
    redact_uri,
    require_version_selector,
    resolve_model,
    storage_uri_for_format,
)
from ._deployment_wait import wait_until_ready
from ._kserve import (
    ANNOTATION_CANARY_PERCENT,
    GROUP,
    LABEL_MODEL_NAME_HASH,
    PLURAL,
    VERSION,
    build_inference_service,
    check_deployment_name,
    model_name_hash,
    parse_deployment,
)

if TYPE_CHECKING:
    from .._transport._kube import ClusterTransport

__all__ = ["AsyncDeploymentResource"]

logger = logging.getLogger(__name__)


class AsyncDeploymentResource:
    """Deployments of registry models as KServe InferenceServices.

    Args:
        cluster: The lazy handle on the cluster transport.
        mlflow: The MLflow transport, used to resolve registry versions.
        config: The client configuration (namespace, storage_uri_map).
    """

    def __init__(
        self, cluster: ClusterHandle, mlflow: MlflowTransport, config: Config
    ) -> None:
        self._cluster = cluster
        self._mlflow = mlflow
        self._config = config

    def _namespace(self, namespace: str | None) -> str:
        if namespace is None:
            return self._config.namespace
        return check_kubernetes_name(namespace, what="namespace", max_length=63)

    def _bind(self, obj: Mapping[str, Any]) -> Deployment:
        deployment = parse_deployment(obj)
        deployment._resource = self
        return deployment

    async def _kube(self) -> ClusterTransport:
        return await self._cluster.get()

    @staticmethod
    def _path(namespace: str, name: str | None = None) -> str:
        from .._transport._kube import resource_path

        return resource_path(GROUP, VERSION, PLURAL, namespace, name)

    # Creating ---------------------------------------------------------------

    async def deploy(
        self,
        name: str,
        model_name: str,
        model_version: str | int | None = None,
        alias: str | None = None,
        stage: str | None = None,
        replicas: int = 1,
        max_replicas: int | None = None,
        strategy: str = "rolling",
        canary_traffic_percent: int | None = None,
        resources: Mapping[str, Any] | None = None,
        runtime: str | None = None,
        model_format: str = "mlflow",
        namespace: str | None = None,
        protocol_version: str | None = None,
    ) -> Deployment:
        """Create an InferenceService that serves a registry version.

        Every input is checked, the version is resolved in the registry and its
        storage URI is mapped before anything is created on the cluster. The
        call returns once the API server accepted the object; use
        `Deployment.wait_ready` to wait for the model server.

        Args:
            name: InferenceService name: a DNS-1035 label of at most 47
                characters, because Knative appends ``-predictor-00001``.
            model_name: Registered model name.
            model_version: The version number to deploy.
            alias: Or the alias whose version to deploy (``"champion"``).
            stage: Or the stage whose latest version to deploy.
            replicas: ``minReplicas`` of the predictor (0 allows scale to zero).
            max_replicas: ``maxReplicas``; by default equal to `replicas`.
            strategy: How later version changes roll out: ``rolling``,
                ``canary`` or ``blue_green``. The last two need KServe's
                Knative mode, which this sets on the InferenceService.
            canary_traffic_percent: Share of traffic (1-99) that a new version
                gets under ``canary``; 10 when unset.
            resources: Container resources, as ``{"requests": {...},
                "limits": {...}}`` or a flat ``{"cpu": "1"}`` used for both.
            runtime: A ServingRuntime name; KServe picks one when unset.
            model_format: ``mlflow`` (the default, served over protocol v2),
                ``sklearn``, ``xgboost``, ``lightgbm``, ``pytorch``,
                ``tensorflow``, ``onnx``, ``triton``, ``huggingface``,
                ``pmml`` or ``paddle``, in any case. Another name is allowed
                with `runtime`, for a custom ServingRuntime that declares it.
            namespace: Namespace; the configuration's by default.
            protocol_version: ``v1``, ``v2`` or ``grpc-v2``; by default v2 for
                mlflow and triton, KServe's default for the others.

        Raises:
            ValidationException: An argument is invalid.
            ModelVersionNotFoundException: The model, version, alias or stage
                does not exist; nothing was sent to the cluster.
            DeploymentException: The version's artifacts are somewhere KServe
                cannot read (nothing was created), or a deployment with this
                name exists already.
        """
        name = check_deployment_name(name)
        check_name(model_name)
        ns = self._namespace(namespace)
        selector = require_version_selector(model_version, alias, stage)
        options = check_deploy_options(
            replicas=replicas,
            max_replicas=max_replicas,
            strategy=strategy,
            canary_traffic_percent=canary_traffic_percent,
            resources=resources,
            runtime=runtime,
            model_format=model_format,
            protocol_version=protocol_version,
        )
        model = await resolve_model(
            self._mlflow,
            model_name,
            selector,
            self._config.storage_uri_map,
            deployment_name=name,
        )
        model = storage_uri_for_format(model, options.model_format)
        manifest = build_inference_service(name, ns, model, options)
        kube = await self._kube()
        try:
            created = await kube.request("POST", self._path(ns), body=manifest)
        except KubernetesConflictException as exc:
            raise DeploymentException(
                f"deployment {name!r} already exists in namespace {ns!r}; use "
                "update() to roll out another version, or delete() it first",
                deployment_name=name,
            ) from exc
        logger.info(
            "created deployment %s/%s serving %r version %s from %s",
            ns,
            name,
            model.model_name,
            model.model_version,
            redact_uri(model.storage_uri),
        )
        return self._bind(created)

    # Reading ----------------------------------------------------------------

    async def get_deployment(
        self, name: str, *, namespace: str | None = None
    ) -> Deployment:
        """Read one deployment.

        Raises:
            KubernetesNotFoundException: No InferenceService has this name.
        """
        name = check_deployment_name(name)
        ns = self._namespace(namespace)
        kube = await self._kube()
        return self._bind(await kube.request("GET", self._path(ns, name)))

    def list_deployments(
        self,
        *,
        namespace: str | None = None,
        model_name: str | None = None,
        label_selector: str | None = None,
        page_size: int = 100,
        max_results: int | None = None,
    ) -> AsyncPager[Deployment]:
        """List the InferenceServices of a namespace, page by page.

        Args:
            namespace: Namespace; the configuration's by default.
            model_name: Only deployments of this registered model (selected
                by the model-name digest label that `deploy` sets).
            label_selector: A further Kubernetes label selector.
            page_size: Objects per request (``limit``), 1 to 500.
            max_results: Stop after this many deployments; None for all.

        Raises:
            ValidationException: An argument has the wrong type or is out of
                range; nothing was sent.
        """
        ns = self._namespace(namespace)
        page_size = check_page_size(page_size)
        max_results = check_list_limit(max_results)
        label_selector = check_label_selector(label_selector)
        selectors = [label_selector] if label_selector else []
        if model_name is not None:
            digest = model_name_hash(check_name(model_name))
            selectors.append(f"{LABEL_MODEL_NAME_HASH}={digest}")
        selector = ",".join(selectors) or None

        async def fetch(token: str | None) -> Page[Deployment]:
            kube = await self._kube()
            body = await kube.list_page(
                GROUP,
                VERSION,
                PLURAL,
                ns,
                label_selector=selector,
                limit=page_size,
                continue_token=token,
            )
            items = [self._bind(item) for item in body.get("items") or []]
            token = (body.get("metadata") or {}).get("continue") or None
            return Page(items, token, body)

        return AsyncPager(fetch, max_results=max_results)

    # Changing ---------------------------------------------------------------

    async def update(
        self,
        name: str,
        *,
        replicas: int | None = None,
        max_replicas: int | None = None,
        model_version: str | int | None = None,
        alias: str | None = None,
        stage: str | None = None,
        model_name: str | None = None,
        strategy: str | None = None,
        canary_traffic_percent: int | None = None,
        resources: Mapping[str, Any] | None = None,
        runtime: str | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> Deployment:
        """Scale a deployment, or roll out another version of its model.

        A version (by `model_version`, `alias` or `stage`) rolls out with the
        deployment's strategy, or with `strategy` when given, which is then
        recorded for later updates too:

        - ``rolling``: the model is replaced; the new revision takes all
          traffic once it is ready.
        - ``canary``: the new revision gets `canary_traffic_percent` of the
          traffic and the previous one keeps the rest, until `promote` or
          `rollback`.
        - ``blue_green``: the new revision comes up with no traffic; this call
          waits until it is ready (up to `timeout` seconds), then switches all
          traffic to it at once. If it never becomes ready, the traffic stays
          on the previous revision and DeploymentException is raised.

        `canary_traffic_percent` (1-99) without a version is stored as the
        share of later canary rollouts. During a canary it also moves the
        live split at once, so a canary can be widened step by step
        (10, 25, 50) before `promote`. KServe accepts 0 and 100 as well, but
        those are `rollback` and `promote`, which also record the end of the
        rollout.

        Patches are JSON merge patches computed from a fresh read; one that
        loses a race with a concurrent write (409 Conflict) is recomputed and
        sent again, a bounded number of times.

        Raises:
            ValidationException: An argument is invalid.
            ModelVersionNotFoundException: The version does not exist; the
                cluster was not changed.
            DeploymentException: The artifacts are unreadable for KServe, the
                blue-green revision failed, or the deployment's mode has no
                traffic splitting.
            TimeoutException: The blue-green revision was not ready in time;
                the traffic stayed on the previous revision.
            KubernetesNotFoundException: The deployment does not exist.
        """
        name = check_deployment_name(name)
        ns = self._namespace(namespace)
        selector = check_version_selector(model_version, alias, stage, required=False)
        timeout = check_wait_timeout(timeout)
        if selector is None and model_name is not None:
            raise ValidationException(
                "model_name needs model_version, alias or stage to roll out"
            )
        change = check_update(
            rollout=selector is not None,
            replicas=replicas,
            max_replicas=max_replicas,
            strategy=strategy,
            canary_traffic_percent=canary_traffic_percent,
            resources=resources,
            runtime=runtime,
        )
        kube = await self._kube()
        if selector is None:
            result, _ = await patch_with_retry(
                kube,
                ns,
                name,
                lambda obj: scale_patch(obj, change) or None,
                # A live canary share must not land on a state that a
                # concurrent promote or rollback has changed.
                precondition=change.canary_traffic_percent is not None,
            )
            return self._bind(result)
        return await self._roll_out(
            kube, ns, name, selector, model_name, change, timeout
        )

    async def _roll_out(
        self,
        kube: ClusterTransport,
        ns: str,
        name: str,
        selector: VersionSelector,
        model_name: str | None,
        change: ScaleChange,
        timeout: float | None,
    ) -> Deployment:
        current = await self.get_deployment(name, namespace=ns)
        source_name = model_name or current.model_name
        if source_name is None:
            raise ValidationException(
                f"deployment {name!r} records no registered model name; pass "
                "model_name= with the version to roll out"
            )
        model = await resolve_model(
            self._mlflow,
            source_name,
            selector,
            self._config.storage_uri_map,
            deployment_name=name,
        )
        model = storage_uri_for_format(model, current.model_format)
        rollout = change.strategy or current.strategy
        patched_from: list[Deployment] = []

        def build(obj: dict[str, Any]) -> dict[str, Any] | None:
            patched_from.append(parse_deployment(obj))
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            percent = change.canary_traffic_percent or int(
                annotations.get(ANNOTATION_CANARY_PERCENT) or DEFAULT_CANARY_PERCENT
            )
            return merge_patches(
                scale_patch(obj, change), rollout_patch(obj, model, rollout, percent)
            )

        result, sent = await patch_with_retry(kube, ns, name, build)
        deployment = self._bind(result)
        before = patched_from[-1]
        # Retrying a staged version (after a timeout or a cancelled update)
        # leaves the spec as it is, so the latest created revision is already
        # the new one and no newer revision will come.
        spec_changed = deployment.generation != before.generation
        before_revision = before.latest_created_revision if spec_changed else None
        logger.info(
            "rolling out %r version %s to %s/%s (%s)",
            model.model_name,
            model.model_version,
            ns,
            name,
            rollout,
        )
        if rollout != "blue_green" or not sent:
            return deployment
        return await switch_blue_green(
            kube,
            deployment,
            self._bind,
            before_revision=before_revision,
            timeout=timeout,
        )

    async def promote(self, name: str, *, namespace: str | None = None) -> Deployment:
        """Send all traffic to the latest revision (end a canary rollout).

        The latest revision is the one that the last `update` created, even
        after `rollback` moved the traffic away from it or a blue-green
        revision failed: promoting then serves the version that was rolled
        back, and a WARNING is logged. A deployment without a canary split is
        returned unchanged.

        Raises:
            KubernetesNotFoundException: The deployment does not exist.
        """
        states: list[Deployment] = []

        def build(obj: dict[str, Any]) -> dict[str, Any] | None:
            states.append(parse_deployment(obj))
            return promote_patch(obj)

        result = await self._patch_traffic(
            name, namespace, build, "promoted the latest revision of %s/%s"
        )
        before = states[-1] if states else None
        if before is not None and before.rollout_state == "rolled_back":
            logger.warning(
                "promoted %s/%s to version %s, which a rollback or a failed "
                "blue-green rollout had moved the traffic away from; its "
                "revision %s now takes all traffic",
                result.namespace,
                result.name,
                before.model_version,
                before.latest_created_revision or "unknown",
            )
        return result

    async def rollback(self, name: str, *, namespace: str | None = None) -> Deployment:
        """Send all traffic back to the version that served before the rollout.

        During a canary (or a staged blue-green rollout) the traffic is pinned
        to the previous revision with ``canaryTrafficPercent: 0``, and a
        second call changes nothing. After a promotion or a rolling update,
        the previous model (name, version, storage URI, and the labels and
        annotations derived from them) is deployed again as a new revision.
        The model replaced by that rollback becomes the recorded previous
        one, so a second rollback switches back to it: repeated calls
        alternate between the last two models.

        Raises:
            DeploymentException: No previous version is recorded.
            KubernetesNotFoundException: The deployment does not exist.
        """
        return await self._patch_traffic(
            name, namespace, rollback_patch, "rolled back %s/%s"
        )

    async def _patch_traffic(
        self, name: str, namespace: str | None, build: PatchBuilder, log_format: str
    ) -> Deployment:
        name = check_deployment_name(name)
        ns = self._namespace(namespace)
        kube = await self._kube()
        result, sent = await patch_with_retry(kube, ns, name, build)
        if sent:
            logger.info(log_format, ns, name)
        return self._bind(result)

    async def delete(
        self, name: str, *, namespace: str | None = None, missing_ok: bool = False
    ) -> None:
        """Delete a deployment (its revisions and pods go with it).

        Raises:
            KubernetesNotFoundException: It does not exist and `missing_ok` is
                False.
        """
        name = check_deployment_name(name)
        ns = self._namespace(namespace)
        kube = await self._kube()
        try:
            await kube.request(
                "DELETE", self._path(ns, name), body={"propagationPolicy": "Background"}
            )
        except KubernetesNotFoundException:
            if not missing_ok:
                raise
            return
        logger.info("deleted deployment %s/%s", ns, name)

    # Waiting and watching ---------------------------------------------------

    async def wait_ready(
        self,
        name: str,
        *,
        timeout: float | None = None,
        namespace: str | None = None,
        min_generation: int | None = None,
    ) -> Deployment:
        """Wait until the current spec of a deployment is what is ready.

        Ready means: ``status.observedGeneration`` equals
        ``metadata.generation``, the Ready condition is true, and the latest
        ready revision is the latest created one. An object without a status
        yet is pending. The wait follows a shared watch of the namespace, so
        many concurrent waits use one connection.

        Args:
            name: The deployment.
            timeout: Seconds to wait; None waits without a limit.
            namespace: Namespace; the configuration's by default.
            min_generation: Treat states older than this generation as not
                ready (pass the generation that one's own change produced).

        Raises:
            ValidationException: The name or namespace is invalid, `timeout`
                is not a positive number, or `min_generation` is not a
                non-negative integer; nothing was sent.
            DeploymentException: The controller reported a failure that it does
                not recover from (RevisionFailed, ModelLoadFailed with the exit
                code, ...); `reasons` lists the reason codes. Also raised when
                the deployment is deleted while waiting.
            TimeoutException: Not ready within `timeout`; the message lists
                every condition that is not true, with reason and message.
            KubernetesNotFoundException: The deployment does not exist.
        """
        name = check_deployment_name(name)
        ns = self._namespace(namespace)
        timeout = check_wait_timeout(timeout)
        min_generation = check_min_generation(min_generation)
        kube = await self._kube()
        return await wait_until_ready(
            kube, ns, name, self._bind, timeout=timeout, min_generation=min_generation
        )

    def watch(
        self, name: str, *, namespace: str | None = None
    ) -> AsyncIterator[DeploymentEvent]:
        """Yield every change of a deployment, starting with its current state.

        The stream survives server timeouts, dropped connections, 410 Expired
        (by listing again) and silent sockets, and delivers each change once.
        It ends only when the caller stops iterating; a DELETED event is
        yielded and the watch goes on, in case the name is created again.
        """
        name = check_deployment_name(name)
        ns = self._namespace(namespace)
        return self._watch(name, ns)

    async def _watch(self, name: str, namespace: str) -> AsyncIterator[DeploymentEvent]:
        kube = await self._kube()
        stream = kube.watch(
            GROUP,
            VERSION,
            PLURAL,
            namespace=namespace,
            field_selector=f"metadata.name={name}",
        )
        async with stream:
            async for event in stream:
                yield DeploymentEvent(
                    type=event.type, deployment=self._bind(event.object)
                )
