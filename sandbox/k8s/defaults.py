"""Defaulting, as the API server fills in what a client left out (so reads look like a real cluster's).

Applied on create and on every update of the main resource, before validation;
a client that sends back what it read changes nothing (no new resourceVersion).
"""

from __future__ import annotations

import base64
from typing import Any

from .kinds import Kind

POD_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


def _probe(probe: dict[str, Any] | None) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")


def _container(container: dict[str, Any]) -> None:
    if not isinstance(container, dict):
        return
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = str(container.get("image") or "")
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        _probe(container.get(key))


def pod_spec(spec: dict[str, Any], in_template: bool = False) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        _container(container)
    if not in_template:
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        spec.setdefault("tolerations", [dict(t) for t in POD_TOLERATIONS])


def _template(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        if isinstance(template.get("spec"), dict):
            pod_spec(template["spec"], in_template=True)


def apply(kind: Kind, obj: dict[str, Any]) -> None:
    """Fill in the defaults of ``obj`` (in place)."""
    spec = obj.get("spec")
    if kind.key == "apps/deployments" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        if isinstance(strategy, dict):
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                if isinstance(rolling, dict):
                    rolling.setdefault("maxUnavailable", "25%")
                    rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _template(spec)
    elif kind.key == "apps/replicasets" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        _template(spec)
    elif kind.key == "/pods" and isinstance(spec, dict):
        pod_spec(spec)
    elif kind.key == "/services" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
    elif kind.key == "/namespaces":
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif kind.key == "/secrets":
        obj.setdefault("type", "Opaque")
        plain = obj.pop("stringData", None)  # write-only: the API stores it base64-encoded in data
        if isinstance(plain, dict):
            data = obj.setdefault("data", {})
            for key, value in plain.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
    elif kind.key == "/events":
        obj.setdefault("type", "Normal")
        obj.setdefault("count", 1)


def initial_status(kind: Kind, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The status a new object starts with (what a client sent in ``status`` is dropped, as Kubernetes does)."""
    if kind.key == "/pods":
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    if kind.key == "/services":
        return {"loadBalancer": {}}
    if kind.key == "/namespaces":
        return {"phase": "Active"}
    if kind.key in ("apps/deployments", "apps/replicasets", "policy/poddisruptionbudgets"):
        return {}
    return None


def qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers") or []
    requests = [((c.get("resources") or {}).get("requests") or {}) for c in containers if isinstance(c, dict)]
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in containers if isinstance(c, dict)]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        lim.get("cpu")
        and lim.get("memory")
        and req.get("cpu", lim["cpu"]) == lim["cpu"]
        and req.get("memory", lim["memory"]) == lim["memory"]
        for req, lim in zip(requests, limits, strict=False)
    )
    return "Guaranteed" if guaranteed and len(limits) == len(containers) else "Burstable"
