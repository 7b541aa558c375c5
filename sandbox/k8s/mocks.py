"""Pulumi mocks that create each pulumi-kubernetes object of a program in the Kubernetes sandbox.

Under ``pulumi.runtime.set_mocks`` a program runs with no CLI and no provider
plugin; each ``kubernetes:<group>/<version>:<Kind>`` resource is created through
the official ``kubernetes`` client (the dynamic client, with discovery) and its
outputs are the object the API server answered, so a program's outputs are the
sandbox's own. As the Kubernetes provider does:

- a missing ``metadata.name`` is the resource name plus 8 random characters
  (annotated ``pulumi.com/autonamed``); the id is ``<namespace>/<name>``;
- creation waits until the object is ready: a Deployment until its rollout is
  complete (every replica updated and available, for this generation), a
  Service with a selector until its Endpoints have a ready address; the
  annotation ``pulumi.com/skipAwait: "true"`` skips the wait, and a wait that
  does not end within the timeout fails the resource.

Create-only, like the AWS mocks: the sandbox starts empty every time.
"""

from __future__ import annotations

import random
import string
import time
from typing import Any

import pulumi

from ..mocks import plain

SKIP_AWAIT = "pulumi.com/skipAwait"
AWAIT_TIMEOUT = 600.0


class AwaitTimeout(RuntimeError):
    """An object did not become ready in time (the provider's create fails the same way)."""


def _api_version(token: str) -> tuple[str, str]:
    """``kubernetes:apps/v1:Deployment`` -> (``apps/v1``, ``Deployment``); the core group is ``core/v1`` -> ``v1``."""
    _, group_version, kind = token.split(":", 2)
    group, _, version = group_version.partition("/")
    return (version if group == "core" else f"{group}/{version}"), kind


class KubernetesMocks(pulumi.runtime.Mocks):
    """Creates each Kubernetes object of the program in the sandbox the kubeconfig points at."""

    def __init__(self, kubeconfig: str, await_timeout: float = AWAIT_TIMEOUT):
        from kubernetes import config, dynamic

        self.client = dynamic.DynamicClient(config.new_client_from_config(config_file=kubeconfig))
        self.await_timeout = await_timeout
        self.created: list[tuple[str, str, str]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ.startswith("pulumi:providers:"):
            return f"{args.name}-provider", plain(args.inputs)
        if not args.typ.startswith("kubernetes:"):
            return f"{args.name}-component", {}
        api_version, kind = _api_version(args.typ)
        body = plain(args.inputs)
        body["apiVersion"], body["kind"] = api_version, kind
        metadata = body.setdefault("metadata", {})
        if not metadata.get("name"):
            metadata["name"] = f"{args.name}-{''.join(random.choices(string.ascii_lowercase + string.digits, k=8))}"  # noqa: S311
            metadata.setdefault("annotations", {})["pulumi.com/autonamed"] = "true"
        try:
            resource = self.client.resources.get(api_version=api_version, kind=kind)
            namespace = (metadata.get("namespace") or "default") if resource.namespaced else None
            if namespace:
                metadata["namespace"] = namespace
            created = resource.create(body=body, namespace=namespace).to_dict()
            if (metadata.get("annotations") or {}).get(SKIP_AWAIT) != "true":
                created = self._await(resource, kind, created)
        except AwaitTimeout:
            raise
        except Exception as exc:
            raise RuntimeError(
                f"creating {args.typ} {args.name!r} in the Kubernetes sandbox failed: {getattr(exc, 'body', None) or exc}"
            ) from exc
        identity = f"{namespace}/{metadata['name']}" if namespace else metadata["name"]
        self.created.append((args.typ, args.name, identity))
        return identity, created

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        raise NotImplementedError(f"the Kubernetes sandbox does not answer the invoke {args.token}")

    # -- the provider's readiness waits ---------------------------------------------------------------
    def _await(self, resource: Any, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        check = {"Deployment": self._deployment_ready, "Service": self._service_ready}.get(kind)
        if check is None:
            return obj
        metadata = obj["metadata"]
        deadline = time.monotonic() + self.await_timeout
        delay = 0.2
        while True:
            current = resource.get(name=metadata["name"], namespace=metadata.get("namespace")).to_dict()
            ready, why = check(current)
            if ready:
                return current
            if time.monotonic() > deadline:
                raise AwaitTimeout(
                    f"{kind} {metadata.get('namespace')}/{metadata['name']} was not ready after {self.await_timeout:.0f} s: {why}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    @staticmethod
    def _deployment_ready(obj: dict[str, Any]) -> tuple[bool, str]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        wanted = int(spec.get("replicas", 1))
        if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
            return False, "the controller has not seen the latest generation"
        counts = (status.get("updatedReplicas", 0), status.get("availableReplicas", 0), status.get("replicas", 0))
        if counts != (wanted, wanted, wanted):
            return False, f"{counts[0]} updated, {counts[1]} available, {counts[2]} replicas of {wanted} wanted"
        return True, ""

    def _service_ready(self, obj: dict[str, Any]) -> tuple[bool, str]:
        spec = obj.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            return True, ""
        from kubernetes.dynamic.exceptions import NotFoundError

        endpoints = self.client.resources.get(api_version="v1", kind="Endpoints")
        try:
            found = endpoints.get(name=obj["metadata"]["name"], namespace=obj["metadata"]["namespace"]).to_dict()
        except NotFoundError:
            return False, "no Endpoints yet"
        if any(subset.get("addresses") for subset in found.get("subsets") or []):
            return True, ""
        return False, "the Service has no ready endpoint (its selector matches no ready pod)"
