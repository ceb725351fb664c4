"""Registry of the resource types that the fake API server serves."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    """One REST resource of the fake API server, such as ``pytorchjobs.kubeflow.org``.

    Attributes:
        group: API group, ``""`` for the core group.
        version: API version inside the group, such as ``v1`` or ``v1beta1``.
        plural: Lowercase plural name used in URLs.
        kind: Object kind, such as ``PyTorchJob``.
        namespaced: Whether objects live in a namespace.
        has_status: Whether the type has a ``status`` subresource. Writes to the main
            resource then keep the stored ``.status``, and ``/status`` writes keep
            everything else.
        custom: Whether the type is a custom resource. The API server rejects
            strategic merge patches on custom resources (415) and requires
            ``metadata.resourceVersion`` in their PUT bodies (422).
        short_names: Short names announced in discovery (``kubectl get pj``).
        default_propagation: Deletion propagation used when a DELETE request names
            none. ``batch/v1`` Jobs orphan their pods by default, as on a real
            cluster, and every other type uses ``Background``.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    has_status: bool = True
    custom: bool = True
    short_names: tuple[str, ...] = ()
    default_propagation: str = "Background"

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` of objects, ``kubeflow.org/v1`` or ``v1`` for core."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The plural with its group: ``pytorchjobs.kubeflow.org``, or ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        """The kind of list responses, such as ``PyTorchJobList``."""
        return f"{self.kind}List"

    @property
    def singular(self) -> str:
        """The singular name announced in discovery: the lowercase kind."""
        return self.kind.lower()

    @property
    def qualified_kind(self) -> str:
        """The kind with its group, as validation messages print it."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


_KUBEFLOW = "kubeflow.org"
_TRAINER = "trainer.kubeflow.org"
_KSERVE = "serving.kserve.io"

_TYPES = (
    ResourceType(_KUBEFLOW, "v1", "pytorchjobs", "PyTorchJob"),
    ResourceType(_KUBEFLOW, "v1", "tfjobs", "TFJob"),
    ResourceType(_KUBEFLOW, "v1", "xgboostjobs", "XGBoostJob"),
    ResourceType(_KUBEFLOW, "v1", "mpijobs", "MPIJob"),
    ResourceType(_KUBEFLOW, "v1", "paddlejobs", "PaddleJob"),
    ResourceType(_KUBEFLOW, "v1", "jaxjobs", "JAXJob"),
    ResourceType(_TRAINER, "v1alpha1", "trainjobs", "TrainJob"),
    ResourceType(
        _TRAINER, "v1alpha1", "trainingruntimes", "TrainingRuntime", has_status=False
    ),
    ResourceType(
        _TRAINER,
        "v1alpha1",
        "clustertrainingruntimes",
        "ClusterTrainingRuntime",
        namespaced=False,
        has_status=False,
    ),
    ResourceType(
        _KSERVE,
        "v1beta1",
        "inferenceservices",
        "InferenceService",
        short_names=("isvc",),
    ),
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        custom=False,
        short_names=("ns",),
    ),
    ResourceType("", "v1", "pods", "Pod", custom=False, short_names=("po",)),
    ResourceType(
        "", "v1", "events", "Event", has_status=False, custom=False, short_names=("ev",)
    ),
    ResourceType("", "v1", "secrets", "Secret", has_status=False, custom=False),
    ResourceType(
        "",
        "v1",
        "configmaps",
        "ConfigMap",
        has_status=False,
        custom=False,
        short_names=("cm",),
    ),
    ResourceType(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        has_status=False,
        custom=False,
        short_names=("sa",),
    ),
    ResourceType(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        custom=False,
        short_names=("pvc",),
    ),
    ResourceType(
        "batch", "v1", "jobs", "Job", custom=False, default_propagation="Orphan"
    ),
)

RESOURCE_TYPES: dict[str, ResourceType] = {rtype.key: rtype for rtype in _TYPES}
"""Every served resource type, keyed by ``ResourceType.key``."""

_BY_PATH: dict[tuple[str, str, str], ResourceType] = {
    (rtype.group, rtype.version, rtype.plural): rtype for rtype in _TYPES
}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    """Return the resource type served at ``/apis/<group>/<version>/<plural>``.

    Args:
        group: API group, ``""`` for the core group served under ``/api``.
        version: API version.
        plural: Lowercase plural resource name.

    Returns:
        The resource type, or ``None`` when the server does not serve it.
    """
    return _BY_PATH.get((group, version, plural))


def group_versions() -> dict[str, list[ResourceType]]:
    """Return the served types grouped by ``apiVersion``, in registry order."""
    grouped: dict[str, list[ResourceType]] = {}
    for rtype in _TYPES:
        grouped.setdefault(rtype.api_version, []).append(rtype)
    return grouped
