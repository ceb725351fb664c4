"""In-memory object store of the fake API server, with watch history.

The store runs on one event loop and never awaits, so every method is atomic with
respect to the other coroutines of the loop. Stored objects are never changed in
place: each write stores a new dict, so the objects inside ``WatchEvent`` values
stay valid snapshots. Readers of events must not mutate them.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from . import _status
from ._generation import generation_part, tracks_generation
from ._labels import check_labels_and_annotations
from ._managed import FieldManager, record_update
from ._resources import RESOURCE_TYPES, ResourceType
from ._status import StoreError
from ._validation import apply_create_defaults, fold_string_data, resolve_name

__all__ = ["Store", "StoreError", "WatchEvent"]

Obj = dict[str, Any]
ObjList = list[Obj]
_EventList = list["WatchEvent"]
_Dependents = list[tuple[ResourceType, Obj]]
_NAMESPACES = RESOURCE_TYPES["namespaces"]
# Metadata fields that only the server sets; writes cannot change them.
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


class WatchEvent(NamedTuple):
    """One change of one object, as watch streams send it.

    Attributes:
        type: ``ADDED``, ``MODIFIED`` or ``DELETED``.
        object: The object after the change (for ``DELETED``, its last state).
        resource_version: The resourceVersion of the change.
        rtype_key: ``ResourceType.key`` of the object's type.
        previous: The object before the change, ``None`` for ``ADDED``. Watches
            with selectors use it to send ``DELETED`` for an object that stops
            matching.
    """

    type: str
    object: Obj
    resource_version: int
    rtype_key: str
    previous: Obj | None = None


# etcd storage rejects a create that carries a resourceVersion with this
# plain error, which the API server sends as a 500 Status without a reason.
_VERSION_ON_CREATE = "resourceVersion should not be set on objects to be created"


def _positive_version(value: Any) -> bool:
    """Return whether ``value`` parses as a non-zero resourceVersion.

    The API server parses it as an unsigned integer and lets ``"0"`` and any
    text that does not parse, ``"-1"`` included, through.
    """
    text = str(value) if value is not None else ""
    return text.isascii() and text.isdigit() and int(text) > 0


def storage_order(key: tuple[str, str]) -> str:
    """Return the sort key of a ``(namespace, name)`` pair: ``namespace/name``.

    etcd returns a list in the byte order of its keys, which end in
    ``<namespace>/<name>``, so namespace ``ml-platform`` sorts before ``ml``
    (``-`` is below ``/``). Continue tokens compare keys as these strings, so
    the store must list in the same order or a paged list skips objects.
    """
    namespace, name = key
    return f"{namespace}/{name}"


def format_timestamp(moment: datetime) -> str:
    """Format a time as RFC 3339 in UTC with seconds precision, like metadata."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _with_type(rtype: ResourceType, obj: Obj) -> Obj:
    """Return a deep copy of ``obj`` that starts with the type's apiVersion and kind."""
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": rtype.api_version, "kind": rtype.kind, **copy.deepcopy(rest)}


class Store:
    """Objects of every served type, a global resourceVersion and watch history.

    Args:
        history_size: Events kept per resource type for watches that resume
            from a resourceVersion. Older resourceVersions get 410 Expired.
    """

    def __init__(self, *, history_size: int = 1000) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {
            key: {} for key in RESOURCE_TYPES
        }
        self._history: dict[str, deque[WatchEvent]] = {
            key: deque(maxlen=history_size) for key in RESOURCE_TYPES
        }
        # Highest resourceVersion dropped from each type's history ring.
        self._evicted: dict[str, int] = dict.fromkeys(RESOURCE_TYPES, 0)
        self._subscribers: dict[asyncio.Queue[WatchEvent], str | None] = {}
        self._rv = 0

    @property
    def resource_version(self) -> int:
        """The resourceVersion of the latest write."""
        return self._rv

    # Reads

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """Return a copy of one object, or ``None`` when it does not exist."""
        stored = self._objects[rtype.key].get(self._key(rtype, namespace, name))
        return copy.deepcopy(stored) if stored is not None else None

    def peek_one(
        self, rtype: ResourceType, namespace: str | None, name: str
    ) -> Obj | None:
        """Return one stored object itself, for read-only use, or ``None``."""
        return self._objects[rtype.key].get(self._key(rtype, namespace, name))

    def list(
        self, rtype: ResourceType, namespace: str | None = None
    ) -> tuple[ObjList, int]:
        """Return copies of the objects in ``storage_order``, and the RV.

        Args:
            rtype: Type to list.
            namespace: Only this namespace; ``None`` lists every namespace.
        """
        return [copy.deepcopy(obj) for obj in self.peek(rtype, namespace)], self._rv

    def snapshot(
        self, rtype: ResourceType, namespace: str | None, rv: int
    ) -> ObjList | None:
        """Return the objects as they were at ``rv``, in ``storage_order``, read-only.

        The state is rebuilt by undoing the type's history events after ``rv``.
        Returns ``None`` when some of those events were dropped from the ring.
        """
        if rv < self._evicted[rtype.key]:
            return None
        objects = dict(self._objects[rtype.key])
        for event in reversed(self._history[rtype.key]):
            if event.resource_version <= rv:
                break
            meta = event.object["metadata"]
            key = self._key(rtype, meta.get("namespace"), meta["name"])
            if event.previous is None:
                objects.pop(key, None)
            else:
                objects[key] = event.previous
        keys = sorted(objects, key=storage_order)
        if namespace is not None and rtype.namespaced:
            keys = [key for key in keys if key[0] == namespace]
        return [objects[key] for key in keys]

    def peek(self, rtype: ResourceType, namespace: str | None = None) -> ObjList:
        """Return the stored objects themselves, in ``storage_order``, read-only."""
        items = self._objects[rtype.key]
        keys = sorted(items, key=storage_order)
        if namespace is not None and rtype.namespaced:
            keys = [key for key in keys if key[0] == namespace]
        return [items[key] for key in keys]

    # Writes

    def create(
        self,
        rtype: ResourceType,
        obj: Obj,
        *,
        dry_run: bool = False,
        manager: FieldManager | None = None,
    ) -> Obj:
        """Store a new object and return it as stored.

        The server assigns ``uid``, ``resourceVersion``, ``generation`` 1 (for
        types in ``tracks_generation``) and ``creationTimestamp``, and resolves
        ``generateName``. A namespaced object without ``metadata.namespace`` goes
        to ``default``. With ``dry_run`` the object is checked and returned but
        not stored, and has no resourceVersion. With ``manager`` the write is
        recorded in ``metadata.managedFields``.

        Raises:
            StoreError: 404 when the namespace does not exist, 409 AlreadyExists,
                422 Invalid for a missing or invalid name, 500 for a
                ``metadata.resourceVersion`` other than ``0`` (not on dry runs).
        """
        new = _with_type(rtype, obj)
        meta = new.setdefault("metadata", {})
        namespace = self._check_namespace(rtype, meta)
        name = resolve_name(rtype, meta)
        meta["name"] = name
        check_labels_and_annotations(rtype, meta)
        key = self._key(rtype, namespace, name)
        if key in self._objects[rtype.key]:
            raise StoreError(_status.already_exists(rtype, name))

        if not dry_run and _positive_version(meta.get("resourceVersion")):
            raise StoreError(_status.internal(_VERSION_ON_CREATE))
        for field in (*_SERVER_METADATA, "resourceVersion"):
            meta.pop(field, None)
        uid = str(uuid.uuid4())
        meta["uid"] = uid
        if tracks_generation(rtype):
            meta["generation"] = 1
        meta["creationTimestamp"] = format_timestamp(datetime.now(timezone.utc))
        apply_create_defaults(rtype, new, uid)
        if manager is not None:
            record_update(rtype, None, new, manager)
        if dry_run:
            return new
        created = self._commit(rtype, "ADDED", new, None)
        if rtype.key == "namespaces":
            # The service account controller gives every namespace a
            # ``default`` ServiceAccount, which pods run as unless they name one.
            account = {"metadata": {"name": "default", "namespace": name}}
            self.create(RESOURCE_TYPES["serviceaccounts"], account)
        return created

    def replace(
        self,
        rtype: ResourceType,
        obj: Obj,
        *,
        status_only: bool = False,
        dry_run: bool = False,
        manager: FieldManager | None = None,
    ) -> Obj:
        """Replace an object and return it as stored.

        A ``metadata.resourceVersion`` in ``obj`` is a precondition; without one
        the write is unconditional. ``generation`` grows only when the fields
        of ``generation_part`` change. With a status subresource, a main write
        keeps the stored ``.status``, and a ``status_only`` write keeps
        everything but ``.status``.
        A write that changes nothing keeps the resourceVersion and sends no event.
        Removing the last finalizer of an object that is being deleted removes it.
        With ``dry_run`` the result is returned but not stored. Without
        ``metadata.managedFields`` in ``obj`` the stored ones are kept, and with
        ``manager`` the fields that the write changed move to that manager.

        Raises:
            StoreError: 404 when the object does not exist, 409 Conflict when the
                resourceVersion is stale.
        """
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") if rtype.namespaced else None
        name = str(meta.get("name") or "")
        stored = self._objects[rtype.key].get(self._key(rtype, namespace, name))
        if stored is None:
            raise StoreError(_status.not_found(rtype, name))
        expected = meta.get("resourceVersion")
        if expected and str(expected) != stored["metadata"]["resourceVersion"]:
            raise StoreError(_status.conflict(rtype, name))

        new = self._merge_write(rtype, stored, obj, status_only)
        if new == stored:
            return new
        if new["metadata"] != stored["metadata"]:
            check_labels_and_annotations(rtype, new["metadata"])
        if manager is not None:
            record_update(rtype, stored, new, manager)
        if dry_run:
            return new
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get(
            "finalizers"
        ):
            return self._finish_delete(rtype, new)
        return self._commit(rtype, "MODIFIED", new, stored)

    def update_status(
        self, rtype: ResourceType, namespace: str | None, name: str, status: Obj
    ) -> Obj:
        """Replace the ``.status`` of an object, without a resourceVersion check."""

        def set_status(obj: Obj) -> None:
            obj["status"] = copy.deepcopy(status)

        return self.mutate(rtype, namespace, name, set_status, status_only=True)

    def mutate(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        fn: Callable[[Obj], None],
        *,
        status_only: bool = False,
    ) -> Obj:
        """Apply ``fn`` to a copy of an object and store the result.

        ``fn`` edits the copy in place. The write is unconditional, because no
        other coroutine can run between the read and the write.

        Raises:
            StoreError: 404 when the object does not exist.
        """
        current = self.get(rtype, namespace, name)
        if current is None:
            raise StoreError(_status.not_found(rtype, name))
        fn(current)
        current["metadata"].pop("resourceVersion", None)
        current["metadata"]["name"] = name
        if rtype.namespaced:
            current["metadata"]["namespace"] = namespace
        return self.replace(rtype, current, status_only=status_only)

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: Mapping[str, Any] | None = None,
    ) -> Obj | None:
        """Delete an object and return its last state, or ``None`` if it is missing.

        An object with finalizers only gets ``deletionTimestamp`` and stays until
        its finalizers are removed, so check ``get`` to see whether it is gone.
        ``propagation`` is ``Background`` (dependents go after the owner),
        ``Foreground`` (dependents go first) or ``Orphan`` (dependents lose their
        ownerReference). Dependents are found through ``ownerReferences[].uid``
        and deleted at once, not by a separate garbage collector.

        Raises:
            StoreError: 409 Conflict when ``preconditions`` (``uid``,
                ``resourceVersion``) do not match.
        """
        stored = self._objects[rtype.key].get(self._key(rtype, namespace, name))
        if stored is None:
            return None
        self._check_preconditions(rtype, stored, preconditions or {})
        policy = propagation or rtype.default_propagation
        uid = stored["metadata"]["uid"]

        if rtype.key == "namespaces":
            return self._delete_namespace(stored)
        if policy == "Orphan":
            self._orphan_dependents(uid)
        if policy == "Foreground":
            # The API server returns the object as marked, with the
            # foregroundDeletion finalizer, before its dependents are gone.
            marked = self._mark_deleting(rtype, stored, "foregroundDeletion")
            response = copy.deepcopy(marked)
            self._delete_dependents(uid, "Foreground")
            finalizers = [
                f for f in marked["metadata"]["finalizers"] if f != "foregroundDeletion"
            ]
            marked["metadata"]["finalizers"] = finalizers
            self.replace(rtype, marked)
            return response
        if stored["metadata"].get("finalizers"):
            return self._mark_deleting(rtype, stored, None)
        return self._finish_delete(rtype, stored)

    # Watch support

    def subscribe(self, rtype_key: str | None = None) -> asyncio.Queue[WatchEvent]:
        """Return a queue that receives every later event (of one type if given)."""
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._subscribers[queue] = rtype_key
        return queue

    def unsubscribe(self, queue: asyncio.Queue[WatchEvent]) -> None:
        """Stop delivering events to ``queue``."""
        self._subscribers.pop(queue, None)

    def history_since(self, rtype: ResourceType, rv: int) -> _EventList | None:
        """Return the type's events after ``rv``, or ``None`` if some were dropped."""
        if rv < self._evicted[rtype.key]:
            return None
        return [ev for ev in self._history[rtype.key] if ev.resource_version > rv]

    def oldest_available(self, rtype: ResourceType) -> int:
        """Return the highest resourceVersion dropped from the type's history."""
        return self._evicted[rtype.key]

    # Internals

    @staticmethod
    def _key(rtype: ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if rtype.namespaced else "", name)

    def _check_namespace(self, rtype: ResourceType, meta: Obj) -> str | None:
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return None
        namespace = str(meta.get("namespace") or "default")
        meta["namespace"] = namespace
        if ("", namespace) not in self._objects["namespaces"]:
            raise StoreError(_status.not_found(_NAMESPACES, namespace))
        return namespace

    def _check_preconditions(
        self, rtype: ResourceType, stored: Obj, preconditions: Mapping[str, Any]
    ) -> None:
        meta = stored["metadata"]
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = preconditions.get(field)
            if wanted and str(wanted) != meta[field]:
                text = (
                    f"Precondition failed: {label} in precondition: {wanted}, "
                    f"{label} in object meta: {meta[field]}"
                )
                raise StoreError(_status.conflict(rtype, meta["name"], text))

    def _merge_write(
        self, rtype: ResourceType, stored: Obj, obj: Obj, status_only: bool
    ) -> Obj:
        if status_only:
            new = copy.deepcopy(stored)
            if "status" in obj:
                new["status"] = copy.deepcopy(obj["status"])
            else:
                new.pop("status", None)
            managed = (obj.get("metadata") or {}).get("managedFields")
            if managed is not None:
                new["metadata"]["managedFields"] = copy.deepcopy(managed)
            return new

        new = _with_type(rtype, obj)
        meta = new.setdefault("metadata", {})
        old_meta = stored["metadata"]
        for field in _SERVER_METADATA:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = copy.deepcopy(old_meta["managedFields"])
        if rtype.has_status:
            if "status" in stored:
                new["status"] = copy.deepcopy(stored["status"])
            else:
                new.pop("status", None)
        if rtype.key == "secrets":
            fold_string_data(new)
        changed = generation_part(rtype, new) != generation_part(rtype, stored)
        if tracks_generation(rtype) and changed:
            meta["generation"] = old_meta.get("generation", 1) + 1
        return new

    def _mark_deleting(
        self, rtype: ResourceType, stored: Obj, finalizer: str | None
    ) -> Obj:
        new = copy.deepcopy(stored)
        meta = new["metadata"]
        if finalizer and finalizer not in meta.setdefault("finalizers", []):
            meta["finalizers"].append(finalizer)
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = format_timestamp(datetime.now(timezone.utc))
            meta["deletionGracePeriodSeconds"] = 0
            if tracks_generation(rtype):
                meta["generation"] = meta.get("generation", 1) + 1
        if new == stored:
            return copy.deepcopy(stored)
        return self._commit(rtype, "MODIFIED", new, stored)

    def _delete_namespace(self, stored: Obj) -> Obj:
        namespace = stored["metadata"]["name"]
        terminating = copy.deepcopy(stored)
        terminating["status"] = {"phase": "Terminating"}
        terminating["metadata"]["deletionTimestamp"] = format_timestamp(
            datetime.now(timezone.utc)
        )
        marked = self._commit(_NAMESPACES, "MODIFIED", terminating, stored)
        for rtype in RESOURCE_TYPES.values():
            if not rtype.namespaced:
                continue
            for obj in list(self.peek(rtype, namespace)):
                self._remove(rtype, obj)
        self._remove(_NAMESPACES, self._objects["namespaces"][("", namespace)])
        return marked

    def _dependents(self, owner_uid: str) -> _Dependents:
        found: _Dependents = []
        for rtype in RESOURCE_TYPES.values():
            for obj in self._objects[rtype.key].values():
                refs = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in refs):
                    found.append((rtype, obj))
        return found

    def _delete_dependents(self, owner_uid: str, policy: str) -> None:
        for rtype, obj in self._dependents(owner_uid):
            meta = obj["metadata"]
            self.delete(rtype, meta.get("namespace"), meta["name"], propagation=policy)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for rtype, obj in self._dependents(owner_uid):

            def drop_reference(dependent: Obj) -> None:
                refs = dependent["metadata"].get("ownerReferences") or []
                kept = [ref for ref in refs if ref.get("uid") != owner_uid]
                dependent["metadata"]["ownerReferences"] = kept

            meta = obj["metadata"]
            self.mutate(rtype, meta.get("namespace"), meta["name"], drop_reference)

    def _finish_delete(self, rtype: ResourceType, obj: Obj) -> Obj:
        removed = self._remove(rtype, obj)
        self._delete_dependents(obj["metadata"]["uid"], "Background")
        return removed

    def _remove(self, rtype: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        self._objects[rtype.key].pop(
            self._key(rtype, meta.get("namespace"), meta["name"])
        )
        last = copy.deepcopy(obj)
        return self._commit(rtype, "DELETED", last, obj, store=False)

    def _commit(
        self,
        rtype: ResourceType,
        event_type: str,
        new: Obj,
        previous: Obj | None,
        *,
        store: bool = True,
    ) -> Obj:
        self._rv += 1
        meta = new["metadata"]
        meta["resourceVersion"] = str(self._rv)
        if store:
            key = self._key(rtype, meta.get("namespace"), meta["name"])
            self._objects[rtype.key][key] = new
        event = WatchEvent(event_type, new, self._rv, rtype.key, previous)
        history = self._history[rtype.key]
        if history.maxlen is not None and len(history) == history.maxlen:
            self._evicted[rtype.key] = history[0].resource_version
        history.append(event)
        for queue, wanted in self._subscribers.items():
            if wanted is None or wanted == rtype.key:
                queue.put_nowait(event)
        return copy.deepcopy(new)
