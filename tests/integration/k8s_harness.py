"""Helpers for tests of the Kubernetes sandbox: clients, manifests, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from sandbox.k8s import server


@dataclass
class Kube:
    sandbox: server.KubeSandbox
    api: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    coordination: client.CoordinationV1Api
    discovery: client.DiscoveryV1Api
    policy: client.PolicyV1Api

    @property
    def endpoint(self) -> str:
        return self.sandbox.endpoint


def connect(sandbox: server.KubeSandbox) -> Kube:
    api = config.new_client_from_config(config_file=sandbox.kubeconfig)
    return Kube(
        sandbox,
        api,
        client.CoreV1Api(api),
        client.AppsV1Api(api),
        client.CoordinationV1Api(api),
        client.DiscoveryV1Api(api),
        client.PolicyV1Api(api),
    )


def deployment(
    name: str,
    slot: str,
    image: str,
    replicas: int = 2,
    app: str = "shop",
    env: dict[str, str] | None = None,
    pre_stop: int | None = 2,
    grace: int = 15,
    period: int = 1,
    resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    labels = {"app": app, "slot": slot}
    container: dict[str, Any] = {
        "name": "web",
        "image": image,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": period, "failureThreshold": 2},
    }
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    if pre_stop is not None:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop}}}
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"terminationGracePeriodSeconds": grace, "containers": [container]}},
        },
    }


def service(name: str, selector: dict[str, str], port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"port": port, "targetPort": "http"}]},
    }


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def rolled_out(kube: Kube, name: str, namespace: str = "default") -> Callable[[], Any]:
    """A check: the Deployment's rollout is complete, as ``kubectl rollout status`` judges it."""

    def check() -> Any:
        deployment = kube.apps.read_namespaced_deployment(name, namespace)
        status, wanted = deployment.status, deployment.spec.replicas
        done = (
            (status.observed_generation or 0) >= deployment.metadata.generation
            and (status.updated_replicas or 0) == wanted
            and (status.replicas or 0) == wanted
            and (status.available_replicas or 0) == wanted
        )
        return deployment if done else None

    return check


def ready_addresses(kube: Kube, name: str, namespace: str = "default") -> list[str]:
    endpoints = kube.core.read_namespaced_endpoints(name, namespace)
    return sorted(address.ip for subset in endpoints.subsets or [] for address in subset.addresses or [])
