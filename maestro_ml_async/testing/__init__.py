"""A fake Kubernetes API server with simulated controllers, for tests.

``FakeCluster`` serves the Kubernetes REST API over real sockets on 127.0.0.1,
so the SDK and other clients (kubernetes-asyncio, the official ``kubernetes``
client, ``kubectl``) talk to it exactly as to a real cluster::

    async with FakeCluster() as cluster:
        await kubernetes_asyncio.config.load_kube_config(
            config_file=cluster.kubeconfig_path, context=cluster.context
        )

Tests switch faults on through ``cluster.faults`` and script pod and service
outcomes through ``cluster.scripts``. The pytest fixture ``fake_cluster`` lives
in ``maestro_ml_async.testing.pytest_plugin``.

Request bodies must be JSON (or YAML for server-side apply). kubectl's typed
generators, such as ``kubectl create configmap x --from-literal=a=b``, send
built-in kinds as Kubernetes protobuf, which the fake does not decode: they
fail with 415 UnsupportedMediaType. ``kubectl create -f`` and
``kubectl apply -f`` send JSON and work.
"""

from ._cluster import FakeCluster
from ._context import Stats
from ._faults import Fault, Faults
from ._podlogs import PodLogs
from ._resources import RESOURCE_TYPES, ResourceType
from ._scripts import (
    SCRIPT_ANNOTATION,
    SCRIPT_ID_ANNOTATION,
    PodScript,
    Scripts,
    ServingScript,
    fail,
    hang,
    init_fail,
    init_pull_error,
    model_load_failed,
    pod_script_json,
    pull_error,
    ready,
    restart_then_succeed,
    revision_failed,
    stuck,
    succeed,
    unschedulable,
)
from ._store import Store, StoreError, WatchEvent

__all__ = [
    "RESOURCE_TYPES",
    "SCRIPT_ANNOTATION",
    "SCRIPT_ID_ANNOTATION",
    "FakeCluster",
    "Fault",
    "Faults",
    "PodLogs",
    "PodScript",
    "ResourceType",
    "Scripts",
    "ServingScript",
    "Stats",
    "Store",
    "StoreError",
    "WatchEvent",
    "fail",
    "hang",
    "init_fail",
    "init_pull_error",
    "model_load_failed",
    "pod_script_json",
    "pull_error",
    "ready",
    "restart_then_succeed",
    "revision_failed",
    "stuck",
    "succeed",
    "unschedulable",
]
