"""Kubernetes objects as the API server returns them (plain dicts), for the unit tests of the library."""

from __future__ import annotations

from typing import Any


def deployment(
    color: str,
    app: str = "shop",
    replicas: int = 2,
    image: str = "registry.example.com/shop:v1",
    ready: int | None = None,
    generation: int = 1,
    observed: int | None = None,
    updated: int | None = None,
    annotations: dict[str, str] | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    ready = replicas if ready is None else ready
    status: dict[str, Any] = {
        "observedGeneration": generation if observed is None else observed,
        "replicas": replicas if total is None else total,
        "updatedReplicas": replicas if updated is None else updated,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
    }
    return {
        "metadata": {
            "name": f"{app}-{color}",
            "namespace": "shop",
            "generation": generation,
            "resourceVersion": "10",
            "labels": {"app": app, "slot": color},
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app, "slot": color}},
            "template": {"metadata": {"labels": {"app": app, "slot": color}}, "spec": {"containers": [{"name": "app", "image": image}]}},
        },
        "status": status,
    }


def service(name: str, selector: dict[str, str] | None, version: str = "7") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": version},
        "spec": {"selector": selector, "type": "ClusterIP"},
    }


def pod(
    name: str,
    color: str,
    ready: bool = True,
    image: str = "registry.example.com/shop:v1",
    phase: str = "Running",
    waiting: str | None = None,
    since: str = "2026-01-01T11:59:00Z",
    terminating: bool = False,
    ip: str | None = None,
    scheduled: tuple[str, str] | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": since}]
    if scheduled:
        conditions = [{"type": "PodScheduled", "status": "False", "reason": scheduled[0], "message": scheduled[1]}]
    state: dict[str, Any] = {"waiting": {"reason": waiting, "message": f"{waiting} details"}} if waiting else {"running": {}}
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, "podIP": ip}
    if not scheduled:
        status["containerStatuses"] = [{"name": "app", "ready": ready, "state": state, "restartCount": restarts}]
    meta: dict[str, Any] = {"name": name, "namespace": "shop", "labels": {"app": "shop", "slot": color}, "creationTimestamp": since}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    return {"metadata": meta, "spec": {"containers": [{"name": "app", "image": image}]}, "status": status}


def endpoint_slice(service_name: str, endpoints: list[tuple[str, str, bool]]) -> dict[str, Any]:
    """``endpoints``: (pod name, address, ready)."""
    return {
        "metadata": {"name": f"{service_name}-abcde", "labels": {"kubernetes.io/service-name": service_name}},
        "endpoints": [
            {"addresses": [address], "conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "name": name}}
            for name, address, ready in endpoints
        ],
    }


def pair_objects(live: str = "blue", green: dict[str, Any] | None = None, extra: list[dict[str, Any]] | None = None):
    """Deployments and Services of a pair whose live Service selects ``live``."""
    idle = "green" if live == "blue" else "blue"
    deployments = [deployment(live), deployment(idle, **{"replicas": 0, **(green or {})})]
    services = [service("shop", {"app": "shop", "slot": live}), service("shop-preview", {"app": "shop", "slot": idle}), *(extra or [])]
    return deployments, services


class FakeKube:
    """An in-memory stand-in for :class:`k8s_api.Kube` with the API server's optimistic concurrency.

    ``get``/``list``/``create``/``update``/``patch`` (JSON merge patch) by resource and name; an update or a
    patch naming a stale ``resourceVersion`` gets 409, a create of an existing name 409, a missing object 404.
    ``interfere`` runs once before the next write (another writer getting in first); ``fail`` makes a call fail.
    """

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 100
        self.calls: list[tuple[str, str, str | None]] = []
        self.interfere: Any = None
        self.fail: dict[tuple[str, str, str | None], Any] = {}

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = dict(obj, metadata=dict(obj.get("metadata") or {}, resourceVersion=str(self.version)))
        self.objects[(resource, obj["metadata"]["name"])] = obj
        return obj

    def get_or_none(self, resource, namespace, name):
        from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import Kube

        return Kube.get_or_none(self, resource, namespace, name)  # the library's own, over this call()

    def call(self, verb, resource, namespace, name=None, body=None, patch="merge", label_selector=None, field_selector=None):
        import copy

        from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import KubeError

        self.calls.append((verb, resource, name))
        if (verb, resource, name) in self.fail:
            raise self.fail.pop((verb, resource, name))
        if verb in ("create", "update", "patch") and self.interfere is not None:
            interfere, self.interfere = self.interfere, None
            interfere(self)
        key = (resource, name or (body or {}).get("metadata", {}).get("name"))
        if verb == "list":
            return {"items": [copy.deepcopy(o) for (r, _), o in sorted(self.objects.items()) if r == resource]}
        current = self.objects.get(key)
        if verb == "create":
            if current is not None:
                raise KubeError("create failed: 409 AlreadyExists", status=409, reason="AlreadyExists")
            return copy.deepcopy(self.put(resource, body))
        if current is None:
            raise KubeError(f"{verb} {resource} {name} failed: 404 NotFound", status=404, reason="NotFound")
        if verb == "get":
            return copy.deepcopy(current)
        stated = (body.get("metadata") or {}).get("resourceVersion")
        if stated is not None and stated != current["metadata"]["resourceVersion"]:
            raise KubeError(f"{verb} {resource} {name} failed: 409 Conflict", status=409, reason="Conflict")
        if verb == "update":
            return copy.deepcopy(self.put(resource, body))
        return copy.deepcopy(self.put(resource, merge(current, body)))


def merge(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out
