"""Objects that carry ``metadata.generation``, and the changes that bump it."""

from __future__ import annotations

from typing import Any

from ._resources import ResourceType

Obj = dict[str, Any]


def tracks_generation(rtype: ResourceType) -> bool:
    """Return whether objects of the type carry ``metadata.generation``.

    Custom resources and batch Jobs do. ConfigMaps, Secrets, ServiceAccounts,
    Events and Namespaces do not. Pods did not before Kubernetes 1.33, and the
    fake follows 1.32 here.
    """
    return rtype.custom or rtype.key == "jobs.batch"


def generation_part(rtype: ResourceType, obj: Obj) -> Obj:
    """Return the fields whose change bumps the generation.

    Custom resources count every field but metadata and (with a status
    subresource) status, as apiextensions-apiserver does. Jobs count the spec.
    """
    if not rtype.custom:
        return {"spec": obj.get("spec")}
    skipped = {"apiVersion", "kind", "metadata"}
    if rtype.has_status:
        skipped.add("status")
    return {key: value for key, value in obj.items() if key not in skipped}
