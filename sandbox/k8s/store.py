"""The object store: what etcd and the API server's registry do, in memory, on one event loop.

Every write gets the next ``resourceVersion`` (one counter for all kinds, as
etcd's revision); an update naming an older ``resourceVersion`` is refused with
409 Conflict; a write that changes nothing keeps the old ``resourceVersion`` and
sends no event. ``metadata.generation`` counts spec changes of the kinds that
have one. The main resource ignores ``status`` and the ``status`` subresource
ignores everything else. Deletion is graceful where Kubernetes makes it so (a
pod on a node gets ``deletionTimestamp`` and is removed when the kubelet has
stopped it; objects with finalizers wait for them; a namespace is emptied
first); dependents named by ``ownerReferences`` are garbage-collected.

Watchers get ADDED/MODIFIED/DELETED events filtered by their selectors (an
object that stops matching is DELETED for that watcher); the last
:data:`HISTORY` events are kept so a watch can resume from a resourceVersion,
older ones answer 410 Gone. All methods run on the daemon's event loop; none
blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import random
import string
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import defaults, errors, validation
from .kinds import BY_KEY, Kind
from .selectors import FieldRequirement, Requirement, fields_match, labels_match

LOG = logging.getLogger("sandbox.k8s")
HISTORY = 5_000
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated name suffixes


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime | None = None) -> str:
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp(moment: datetime | None = None) -> str:
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(NAME_ALPHABET) for _ in range(length))  # noqa: S311 - names, not secrets


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.setdefault("metadata", {})


@dataclass(eq=False)  # each watch is its own (hashable by identity)
class Watcher:
    kind: Kind
    namespace: str | None
    labels: tuple[Requirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()
    name: str | None = None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        metadata = obj.get("metadata") or {}
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        if self.name is not None and metadata.get("name") != self.name:
            return False
        return labels_match(self.labels, metadata.get("labels")) and fields_match(self.fields, obj)

    def offer(self, event_type: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        event = translate(self, event_type, old, new)
        if event is not None:
            self.queue.put_nowait(event)


def translate(watcher: Watcher, event_type: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """The event a watcher sees for a change (selectors decide ADDED/DELETED at their edges)."""
    before, after = watcher.matches(old), watcher.matches(new)
    if event_type == "ADDED":
        return {"type": "ADDED", "object": new} if after else None
    if event_type == "DELETED":
        return {"type": "DELETED", "object": old} if before else None
    if before and after:
        return {"type": "MODIFIED", "object": new}
    if after:
        return {"type": "ADDED", "object": new}
    if before:
        return {"type": "DELETED", "object": new}
    return None


@dataclass(frozen=True)
class Change:
    rv: int
    type: str
    kind: Kind
    old: dict[str, Any] | None
    new: dict[str, Any] | None


Listener = Callable[[str, Kind, "dict[str, Any] | None", "dict[str, Any] | None"], None]


class Store:
    def __init__(self) -> None:
        self.rv = 0
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {key: {} for key in BY_KEY}
        self.history: deque[Change] = deque(maxlen=HISTORY)
        self.watchers: set[Watcher] = set()
        self.listeners: list[Listener] = []
        self.ip_counter = itertools.count(10)
        self.node_ports: set[int] = set()

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), or None."""
        obj = self.objects[kind.key].get((namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def peek(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object itself: read-only, for the controllers' hot paths."""
        return self.objects[kind.key].get((namespace or "", name))

    def require(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)
        if obj is None:
            raise errors.not_found(kind, name)
        return obj

    def items(
        self,
        kind: Kind,
        namespace: str | None = None,
        labels: tuple[Requirement, ...] = (),
        fields: tuple[FieldRequirement, ...] = (),
    ) -> list[dict[str, Any]]:
        """Stored objects (not copies: read-only) in namespace/name order."""
        found = []
        for (ns, _), obj in sorted(self.objects[kind.key].items()):
            if namespace is not None and ns != namespace:
                continue
            if labels and not labels_match(labels, (obj.get("metadata") or {}).get("labels")):
                continue
            if fields and not fields_match(fields, obj):
                continue
            found.append(obj)
        return found

    def list(self, kind: Kind, namespace: str | None = None, labels=(), fields=()) -> list[dict[str, Any]]:
        return [copy.deepcopy(obj) for obj in self.items(kind, namespace, labels, fields)]

    # -- change notification -------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def _commit(self, event_type: str, kind: Kind, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        self.history.append(Change(self.rv, event_type, kind, old, new))
        for watcher in list(self.watchers):
            if watcher.kind is kind:
                watcher.offer(event_type, old, new)
        for listener in self.listeners:
            try:
                listener(event_type, kind, old, new)
            except Exception:
                LOG.exception("a controller's change listener failed")

    def since(self, kind: Kind, rv: int) -> list[Change] | None:
        """Changes of ``kind`` after ``rv``; None when ``rv`` is older than the history kept."""
        if self.history and rv < self.history[0].rv - 1 and rv < self.rv:
            return None
        return [change for change in self.history if change.rv > rv and change.kind is kind]

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    # -- writing ---------------------------------------------------------------------------------------
    def _namespace_ready(self, kind: Kind, namespace: str | None, name: str) -> None:
        if not kind.namespaced:
            return
        ns = self.objects["/namespaces"].get(("", namespace or ""))
        if ns is None:
            raise errors.ApiError(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})
        if (ns.get("status") or {}).get("phase") == "Terminating":
            raise errors.forbidden(
                f'{kind.plural} "{name}" is forbidden: '
                f"unable to create new content in namespace {namespace} because it is being terminated",
                kind,
                name,
            )

    def _validate(self, kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        causes = validation.causes_for(kind, obj, old)
        if causes:
            raise errors.invalid(kind, str((obj.get("metadata") or {}).get("name") or ""), causes)

    def create(self, kind: Kind, namespace: str | None, body: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        metadata = meta(obj)
        if kind.namespaced:
            if metadata.get("namespace") not in (None, "", namespace):
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name") and metadata.get("generateName"):
            for _ in range(10):
                candidate = f"{metadata['generateName']}{random_suffix()}"
                if (namespace or "", candidate) not in self.objects[kind.key]:
                    metadata["name"] = candidate
                    break
        name = metadata.get("name") or ""
        defaults.apply(kind, obj)
        status = defaults.initial_status(kind, obj)
        if status is not None or kind.has_status:
            obj["status"] = status or {}
        self._validate(kind, obj, None)
        self._namespace_ready(kind, namespace, name)
        if (namespace or "", name) in self.objects[kind.key]:
            raise errors.already_exists(kind, name)
        if kind.key == "/services":
            self._allocate_service(obj)
        for volatile in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
            metadata.pop(volatile, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = timestamp()
        if kind.generation:
            metadata["generation"] = 1
        else:
            metadata.pop("generation", None)
        if dry_run:
            metadata["resourceVersion"] = str(self.rv)
            return obj
        metadata["resourceVersion"] = self._next_rv()
        self.objects[kind.key][(namespace or "", name)] = obj
        self._commit("ADDED", kind, None, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def _allocate_service(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("type") == "ExternalName":
            return
        if not spec.get("clusterIP"):
            number = next(self.ip_counter)
            spec["clusterIP"] = f"10.96.{number // 250}.{number % 250 + 1}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports") or []:
                if not port.get("nodePort"):
                    free = [p for p in range(30000, 32768) if p not in self.node_ports]
                    port["nodePort"] = random.choice(free)  # noqa: S311
                self.node_ports.add(port["nodePort"])

    def replace(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT: the whole object (or its status). 409 when ``metadata.resourceVersion`` is given and stale."""
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        current = self.objects[kind.key].get((namespace or "", name))
        if current is None:
            raise errors.not_found(kind, name)
        new_meta = body.get("metadata") or {}
        if new_meta.get("name") not in (None, name):
            raise errors.bad_request(f"the name of the object ({new_meta.get('name')}) does not match the name on the URL ({name})")
        if kind.namespaced and new_meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        wanted_rv = new_meta.get("resourceVersion")
        if wanted_rv not in (None, "") and str(wanted_rv) != current["metadata"]["resourceVersion"]:
            raise errors.conflict(kind, name)
        if new_meta.get("uid") not in (None, "", current["metadata"]["uid"]):
            raise errors.conflict(
                kind, name, f"Precondition failed: UID in precondition: {new_meta['uid']}, UID in object meta: {current['metadata']['uid']}"
            )
        if subresource == "status":
            obj = copy.deepcopy(current)
            obj["status"] = copy.deepcopy(body.get("status") or {})
        else:
            obj = copy.deepcopy(body)
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            metadata = meta(obj)
            metadata["name"] = name
            if kind.namespaced:
                metadata["namespace"] = namespace
            for kept in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                if kept in current["metadata"]:
                    metadata[kept] = current["metadata"][kept]
                else:
                    metadata.pop(kept, None)
            if kind.has_status or "status" in current:
                obj["status"] = copy.deepcopy(current.get("status", {}))
            defaults.apply(kind, obj)
            if kind.key == "/services":
                spec = obj.setdefault("spec", {})
                old_spec = current.get("spec") or {}
                if not spec.get("clusterIP") and old_spec.get("clusterIP"):
                    spec["clusterIP"] = old_spec["clusterIP"]
                for port in spec.get("ports") or []:
                    for old_port in old_spec.get("ports") or []:
                        if old_port.get("port") == port.get("port") and old_port.get("nodePort") and not port.get("nodePort"):
                            port["nodePort"] = old_port["nodePort"]
            self._validate(kind, obj, current)
            if kind.key == "/services":
                self._allocate_service(obj)
            if kind.generation and _spec_of(obj) != _spec_of(current):
                metadata["generation"] = int(current["metadata"].get("generation", 1)) + 1
        obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        obj["metadata"].pop("managedFields", None)
        if obj == current:
            return copy.deepcopy(current)  # nothing changed: same resourceVersion, no event
        if dry_run:
            return obj
        metadata = obj["metadata"]
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers") and kind.key not in ("/pods", "/namespaces"):
            return self._remove(kind, namespace, name)
        metadata["resourceVersion"] = self._next_rv()
        self.objects[kind.key][(namespace or "", name)] = obj
        self._commit("MODIFIED", kind, current, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def write(self, kind: Kind, obj: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
        """A controller's write of an object it read (conflicts are the controller's to retry)."""
        metadata = obj["metadata"]
        return self.replace(kind, metadata.get("namespace"), metadata["name"], obj, subresource=subresource)

    def set_status(self, kind: Kind, namespace: str | None, name: str, status: dict[str, Any]) -> dict[str, Any] | None:
        """A controller's status write on the latest object (no precondition); None if it is gone."""
        current = self.objects[kind.key].get((namespace or "", name))
        if current is None:
            return None
        if current.get("status") == status:
            return current
        return self.replace(kind, namespace, name, {"metadata": {"name": name}, "status": status}, subresource="status")

    def _remove(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        current = self.objects[kind.key].pop((namespace or "", name))
        current = copy.deepcopy(current)
        current["metadata"]["resourceVersion"] = self._next_rv()
        if kind.key == "/services":
            for port in (current.get("spec") or {}).get("ports") or []:
                self.node_ports.discard(port.get("nodePort"))
        self._commit("DELETED", kind, current, None)
        self._collect_dependents(current["metadata"]["uid"])
        return current

    def delete(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        grace: int | None = None,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete (or start deleting) an object: (what to return, whether it is gone already)."""
        current = self.objects[kind.key].get((namespace or "", name))
        if current is None:
            raise errors.not_found(kind, name)
        preconditions = preconditions or {}
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise errors.conflict(
                kind,
                name,
                f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, "
                f"ResourceVersion in object meta: {current['metadata']['resourceVersion']}",
            )
        if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise errors.conflict(
                kind,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {current['metadata']['uid']}",
            )
        if dry_run:
            return copy.deepcopy(current), False
        if propagation == "Orphan":
            self._orphan(current["metadata"]["uid"])
        obj = copy.deepcopy(current)
        metadata = obj["metadata"]
        if kind.key == "/pods":
            spec = obj.get("spec") or {}
            if grace is None:
                grace = int(spec.get("terminationGracePeriodSeconds", 30))
            running = bool(spec.get("nodeName")) and (obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            if grace > 0 and running:
                if metadata.get("deletionTimestamp") and int(metadata.get("deletionGracePeriodSeconds", grace)) <= grace:
                    return copy.deepcopy(current), False
                metadata["deletionTimestamp"] = timestamp(now() + timedelta(seconds=grace))
                metadata["deletionGracePeriodSeconds"] = grace
                return self._store_modified(kind, current, obj), False
            if metadata.get("finalizers"):
                metadata.setdefault("deletionTimestamp", timestamp())
                metadata["deletionGracePeriodSeconds"] = 0
                return self._store_modified(kind, current, obj), False
            return self._remove(kind, namespace, name), True
        if kind.key == "/namespaces":
            if metadata.get("deletionTimestamp"):
                return copy.deepcopy(current), False
            metadata["deletionTimestamp"] = timestamp()
            obj.setdefault("status", {})["phase"] = "Terminating"
            return self._store_modified(kind, current, obj), False
        if metadata.get("finalizers"):
            if not metadata.get("deletionTimestamp"):
                metadata["deletionTimestamp"] = timestamp()
                metadata["deletionGracePeriodSeconds"] = 0
                if kind.generation:
                    metadata["generation"] = int(metadata.get("generation", 1)) + 1
                return self._store_modified(kind, current, obj), False
            return copy.deepcopy(current), False
        return self._remove(kind, namespace, name), True

    def finish_pod(self, namespace: str, name: str, uid: str | None = None) -> None:
        """The kubelet stopped the pod: it leaves the API (when no finalizer holds it)."""
        kind = BY_KEY["/pods"]
        current = self.objects[kind.key].get((namespace, name))
        if current is None or (uid and current["metadata"]["uid"] != uid):
            return
        if current["metadata"].get("finalizers"):
            return
        self._remove(kind, namespace, name)

    def finish_namespace(self, name: str) -> None:
        self._remove(BY_KEY["/namespaces"], None, name)

    def _store_modified(self, kind: Kind, current: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj["metadata"]
        metadata["resourceVersion"] = self._next_rv()
        self.objects[kind.key][(metadata.get("namespace") or "", metadata["name"])] = obj
        self._commit("MODIFIED", kind, current, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    # -- garbage collection ---------------------------------------------------------------------------------
    def _dependents(self, uid: str) -> list[tuple[Kind, dict[str, Any]]]:
        found = []
        for key, objects in self.objects.items():
            for obj in objects.values():
                if any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or []):
                    found.append((BY_KEY[key], obj))
        return found

    def _collect_dependents(self, uid: str) -> None:
        """Background propagation: dependents whose every owner is gone are deleted."""
        for kind, obj in self._dependents(uid):
            metadata = obj["metadata"]
            owners = [ref for ref in metadata.get("ownerReferences") or [] if ref.get("uid") != uid]
            if any(self._uid_exists(ref.get("uid")) for ref in owners):
                continue
            if (metadata.get("namespace") or "", metadata["name"]) in self.objects[kind.key]:
                with contextlib.suppress(errors.ApiError):
                    self.delete(kind, metadata.get("namespace"), metadata["name"])

    def _uid_exists(self, uid: str | None) -> bool:
        return any(obj["metadata"].get("uid") == uid for objects in self.objects.values() for obj in objects.values())

    def _orphan(self, uid: str) -> None:
        for kind, obj in self._dependents(uid):
            changed = copy.deepcopy(obj)
            changed["metadata"]["ownerReferences"] = [r for r in changed["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if not changed["metadata"]["ownerReferences"]:
                del changed["metadata"]["ownerReferences"]
            self._store_modified(kind, obj, changed)


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything that is neither metadata nor status: a change here is a new generation."""
    return {key: value for key, value in obj.items() if key not in ("metadata", "status", "apiVersion", "kind")}


def random_token(length: int = 10) -> str:
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(length))  # noqa: S311
