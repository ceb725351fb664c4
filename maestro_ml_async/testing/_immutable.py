"""Update rules for fields that cannot change after create or during deletion.

The fake rejects these updates with 422 Invalid, as the API server does:

- a Pod's spec may change only in container images, ``activeDeadlineSeconds``,
  added tolerations and ``terminationGracePeriodSeconds``;
- a Job's ``spec.template`` and ``spec.selector`` are immutable;
- a ConfigMap or Secret with ``immutable: true`` keeps its data and the flag;
- an object that is being deleted gets no new finalizers (every type).

Only writes through the HTTP API are checked. The simulated controllers write
to the store directly, as the kubelet and controllers write status.
"""

from __future__ import annotations

import copy
from typing import Any

from . import _status
from ._resources import ResourceType
from ._status import StoreError

Obj = dict[str, Any]

_POD_UPDATE_MESSAGE = (
    "Forbidden: pod updates may not change fields other than "
    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
    "if it was previously negative)"
)
_IMMUTABLE = "Invalid value: the field is immutable"


def check_update(rtype: ResourceType, old: Obj, new: Obj) -> None:
    """Reject an update that changes an immutable field.

    Raises:
        StoreError: 422 Invalid with one cause per rejected field.
    """
    name = str(old["metadata"]["name"])
    causes = _finalizer_causes(old, new)
    if rtype.key == "pods":
        causes += _pod_causes(old.get("spec") or {}, new.get("spec") or {})
    elif rtype.key == "jobs.batch":
        causes += _job_causes(old.get("spec") or {}, new.get("spec") or {})
    elif rtype.key in ("configmaps", "secrets"):
        causes += _data_causes(old, new)
    if causes:
        raise StoreError(_status.invalid(rtype, name, causes))


def _finalizer_causes(old: Obj, new: Obj) -> list[tuple[str, str, str]]:
    """Reject finalizers added to an object that is being deleted."""
    if not old["metadata"].get("deletionTimestamp"):
        return []
    before = old["metadata"].get("finalizers") or []
    added = [
        f
        for f in (new.get("metadata") or {}).get("finalizers") or []
        if f not in before
    ]
    if not added:
        return []
    listed = ", ".join(f'"{name}"' for name in added)
    message = (
        "Forbidden: no new finalizers can be added if the object is being deleted, "
        f"found new finalizers []string{{{listed}}}"
    )
    return [("FieldValueForbidden", "metadata.finalizers", message)]


def _mutable_pod_spec(spec: Obj) -> Obj:
    """Return a copy of a pod spec without the fields that updates may change."""
    stripped = copy.deepcopy(spec)
    for field in ("containers", "initContainers"):
        for container in stripped.get(field) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    for field in ("activeDeadlineSeconds", "terminationGracePeriodSeconds"):
        stripped.pop(field, None)
    stripped.pop("tolerations", None)
    return stripped


def _pod_causes(old: Obj, new: Obj) -> list[tuple[str, str, str]]:
    old_tolerations = old.get("tolerations") or []
    new_tolerations = new.get("tolerations") or []
    removed = [item for item in old_tolerations if item not in new_tolerations]
    if removed or _mutable_pod_spec(old) != _mutable_pod_spec(new):
        return [("FieldValueForbidden", "spec", _POD_UPDATE_MESSAGE)]
    return []


# NOTE: the API server lets a suspended Job that never started change the
# scheduling fields of its template (node selector, tolerations, affinity,
# labels, annotations). The fake rejects every template change.
def _job_causes(old: Obj, new: Obj) -> list[tuple[str, str, str]]:
    causes = []
    for field in ("template", "selector"):
        if field in old and old.get(field) != new.get(field):
            causes.append(("FieldValueInvalid", f"spec.{field}", _IMMUTABLE))
    return causes


def _data_causes(old: Obj, new: Obj) -> list[tuple[str, str, str]]:
    if old.get("immutable") is not True:
        return []
    causes = []
    if new.get("immutable") is not True:
        message = "Invalid value: false: field is immutable when `immutable` is set"
        causes.append(("FieldValueForbidden", "immutable", message))
    for field in ("data", "binaryData", "stringData"):
        if old.get(field) != new.get(field):
            message = "Forbidden: field is immutable when `immutable` is set"
            causes.append(("FieldValueForbidden", field, message))
    return causes
