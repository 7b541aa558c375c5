"""The deployer's Role: only the API calls the cutover.bluegreen collection makes on Kubernetes.

Pure Python (no Pulumi): the component renders it, and a unit test compares it
with the calls in the collection's code (``kube.call("<verb>", "<resource>", ...)``),
so a new call without a rule, or a rule nothing uses, fails there.

RBAC cannot limit ``create`` or ``list`` to object names, so those rules name no
objects; reading and writing the lock, the journal, the active colour and the
two Deployments is limited to those objects, and the proxy to the preview
Service (the smoke test's way into the cluster) to that Service.
"""

from __future__ import annotations

from typing import Any


def deployer_rules(deployments: list[str], config_maps: list[str], lease: str, preview_service: str) -> list[dict[str, Any]]:
    """The Role's rules, most specific first (plain Kubernetes field names)."""
    return [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": sorted(deployments), "verbs": ["get", "patch"]},
        # Every Service selecting the old colour is switched, also those added after the stack: no names.
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "patch"]},
        # The smoke test reaches the idle colour through the API server's proxy to the preview Service only.
        {"apiGroups": [""], "resources": ["services/proxy"], "resourceNames": [preview_service], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events", "pods"], "verbs": ["list"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": sorted(config_maps), "verbs": ["get", "update"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lease], "verbs": ["get", "update"]},
    ]


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """``(api group, resource, verb)`` of every permission the rules give."""
    return {
        (group, resource, verb) for rule in rules for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]
    }
