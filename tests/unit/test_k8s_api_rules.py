"""The Kubernetes sandbox's API rules without a server: patches, selectors, validation, the store's versions."""

from __future__ import annotations

import asyncio

import pytest

from sandbox.k8s import errors, kinds, patching
from sandbox.k8s.controllers import scaled_value, template_hash
from sandbox.k8s.selectors import SelectorError, labels_match, match_label_selector, parse_fields, parse_labels, selector_string
from sandbox.k8s.store import Store, Watcher

DEPLOYMENTS = kinds.BY_KEY["apps/deployments"]
SERVICES = kinds.BY_KEY["/services"]
LEASES = kinds.BY_KEY["coordination.k8s.io/leases"]


def deployment(name: str = "shop-blue", image: str = "registry/shop:v1", replicas: int = 2) -> dict:
    labels = {"app": "shop", "slot": "blue"}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": image}, {"name": "sidecar", "image": "registry/proxy:1"}]},
            },
        },
    }


# -- strategic merge patch ----------------------------------------------------------------------------------
def test_strategic_merge_patch_merges_containers_by_name():
    target = deployment()
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry/shop:v2"}]}}}}
    result = patching.apply(patching.STRATEGIC, target, patch, kinds.merge_keys(DEPLOYMENTS))
    containers = result["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "web", "image": "registry/shop:v2"}, {"name": "sidecar", "image": "registry/proxy:1"}]
    # a merge patch replaces the list whole: the sidecar is gone
    merged = patching.apply(patching.MERGE, target, patch, kinds.merge_keys(DEPLOYMENTS))
    assert merged["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": "registry/shop:v2"}]


def test_strategic_merge_patch_directives():
    target = deployment()
    keys = kinds.merge_keys(DEPLOYMENTS)
    deleted = patching.apply(
        patching.STRATEGIC, target, {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}, keys
    )
    assert [c["name"] for c in deleted["spec"]["template"]["spec"]["containers"]] == ["web"]
    ordered = patching.apply(
        patching.STRATEGIC,
        target,
        {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]}}}},
        keys,
    )
    assert [c["name"] for c in ordered["spec"]["template"]["spec"]["containers"]] == ["sidecar", "web"]
    replaced = patching.apply(patching.STRATEGIC, target, {"spec": {"selector": {"$patch": "replace", "matchLabels": {"app": "x"}}}}, keys)
    assert replaced["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    with pytest.raises(patching.PatchError, match="lacks its merge key 'name'"):
        patching.apply(patching.STRATEGIC, target, {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, keys)


def test_selector_patches_merge_maps_and_null_deletes():
    service = {"spec": {"selector": {"app": "shop", "slot": "blue"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    keys = kinds.merge_keys(SERVICES)
    switched = patching.apply(patching.STRATEGIC, service, {"spec": {"selector": {"slot": "green"}}}, keys)
    assert switched["spec"]["selector"] == {"app": "shop", "slot": "green"}
    dropped = patching.apply(patching.MERGE, service, {"spec": {"selector": {"slot": None}}}, keys)
    assert dropped["spec"]["selector"] == {"app": "shop"}
    ports = patching.apply(patching.STRATEGIC, service, {"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}, keys)
    assert [p["port"] for p in ports["spec"]["ports"]] == [80, 443]  # Service ports merge by port


def test_json_patch_and_its_test_operation():
    service = {"spec": {"selector": {"app": "shop", "slot": "blue"}}}
    patched = patching.apply(
        patching.JSON_PATCH,
        service,
        [
            {"op": "test", "path": "/spec/selector/slot", "value": "blue"},
            {"op": "replace", "path": "/spec/selector/slot", "value": "green"},
        ],
        {},
    )
    assert patched["spec"]["selector"]["slot"] == "green"
    with pytest.raises(patching.PatchError):
        patching.apply(patching.JSON_PATCH, service, [{"op": "test", "path": "/spec/selector/slot", "value": "green"}], {})


# -- selectors ------------------------------------------------------------------------------------------------
def test_label_selectors_parse_and_match_like_kubernetes():
    labels = {"app": "shop", "slot": "green", "tier": "web"}
    assert labels_match(parse_labels("app=shop,slot in (blue, green),!canary,tier"), labels)
    assert not labels_match(parse_labels("slot notin (green)"), labels)
    assert labels_match(parse_labels("slot!=blue,app==shop"), labels)
    assert labels_match(parse_labels("release!=v1"), labels)  # absent key satisfies !=
    with pytest.raises(SelectorError, match="unable to parse requirement"):
        parse_labels("app=shop,slot in ()")
    with pytest.raises(SelectorError, match="invalid label value"):
        parse_labels("app=bad$value")


def test_field_selectors_name_their_unsupported_field():
    pod = {"metadata": {"name": "a", "namespace": "default"}, "status": {"phase": "Running"}}
    assert all(r.matches(pod) for r in parse_fields("status.phase=Running,metadata.name!=b", "/pods", "Pod"))
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.image"):
        parse_fields("spec.image=x", "/pods", "Pod")


def test_label_selector_objects_and_their_string_form():
    selector = {"matchLabels": {"app": "shop"}, "matchExpressions": [{"key": "slot", "operator": "In", "values": ["green", "blue"]}]}
    assert match_label_selector(selector, {"app": "shop", "slot": "blue"})
    assert not match_label_selector(selector, {"app": "shop", "slot": "red"})
    assert selector_string(selector) == "app=shop,slot in (blue,green)"
    assert not match_label_selector(None, {"app": "shop"})


# -- validation and the store ---------------------------------------------------------------------------------
def test_validation_names_the_field_and_the_rule():
    store = Store()
    store.create(kinds.BY_KEY["/namespaces"], None, {"metadata": {"name": "default"}})
    bad = deployment(replicas=-1)
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(errors.ApiError) as raised:
        store.create(DEPLOYMENTS, "default", bad)
    assert raised.value.code == 422
    assert raised.value.message.startswith(
        'Deployment.apps "shop-blue" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )
    assert "`selector` does not match template `labels`" in raised.value.message
    assert {c["field"] for c in raised.value.details["causes"]} == {"spec.replicas", "spec.template.metadata.labels"}
    with pytest.raises(errors.ApiError, match=r"spec.leaseDurationSeconds: Invalid value: 0: must be greater than zero"):
        store.create(LEASES, "default", {"metadata": {"name": "lock"}, "spec": {"leaseDurationSeconds": 0}})
    with pytest.raises(errors.ApiError, match=r'Service "Shop" is invalid: metadata.name: Invalid value: "Shop": a DNS-1035 label'):
        store.create(SERVICES, "default", {"metadata": {"name": "Shop"}, "spec": {"ports": [{"port": 80}]}})


def test_resource_versions_generations_and_conflicts():
    store = Store()
    store.create(kinds.BY_KEY["/namespaces"], None, {"metadata": {"name": "default"}})
    created = store.create(DEPLOYMENTS, "default", deployment())
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%", "maxSurge": "25%"}  # defaulted
    same = store.replace(DEPLOYMENTS, "default", "shop-blue", created)
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]  # no change, no new version
    labelled = dict(created, metadata={**created["metadata"], "labels": {"team": "a"}})
    relabelled = store.replace(DEPLOYMENTS, "default", "shop-blue", labelled)
    assert int(relabelled["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert relabelled["metadata"]["generation"] == 1  # metadata is not spec
    changed = dict(relabelled, spec={**relabelled["spec"], "replicas": 5})
    assert store.replace(DEPLOYMENTS, "default", "shop-blue", changed)["metadata"]["generation"] == 2
    with pytest.raises(errors.ApiError) as stale:
        store.replace(DEPLOYMENTS, "default", "shop-blue", changed)  # still names the old resourceVersion
    assert stale.value.code == 409 and stale.value.reason == "Conflict"
    assert 'Operation cannot be fulfilled on deployments.apps "shop-blue": the object has been modified' in stale.value.message
    status_only = store.replace(
        DEPLOYMENTS,
        "default",
        "shop-blue",
        {"metadata": {"name": "shop-blue"}, "spec": {"replicas": 0}, "status": {"replicas": 7}},
        "status",
    )
    assert status_only["spec"]["replicas"] == 5 and status_only["status"] == {"replicas": 7}
    with pytest.raises(errors.ApiError) as exists:
        store.create(DEPLOYMENTS, "default", deployment())
    assert exists.value.code == 409 and exists.value.reason == "AlreadyExists"


def test_watchers_see_selector_edges_and_history_resumes():
    async def scenario() -> None:
        store = Store()
        store.create(kinds.BY_KEY["/namespaces"], None, {"metadata": {"name": "default"}})
        service = store.create(
            SERVICES, "default", {"metadata": {"name": "shop", "labels": {"slot": "blue"}}, "spec": {"ports": [{"port": 80}]}}
        )
        watcher = Watcher(SERVICES, "default", parse_labels("slot=blue"))
        store.watchers.add(watcher)
        moved = dict(service, metadata={**service["metadata"], "labels": {"slot": "green"}})
        store.replace(SERVICES, "default", "shop", moved)
        event = watcher.queue.get_nowait()
        assert event["type"] == "DELETED" and event["object"]["metadata"]["labels"] == {"slot": "green"}
        changes = store.since(SERVICES, int(service["metadata"]["resourceVersion"]))
        assert [c.type for c in changes] == ["MODIFIED"]

    asyncio.run(scenario())


def test_rollout_arithmetic():
    assert scaled_value("25%", 3, round_up=True) == 1 and scaled_value("25%", 3, round_up=False) == 0
    assert scaled_value(2, 10, round_up=True) == 2
    template = deployment()["spec"]["template"]
    assert template_hash(template) == template_hash(template)
    assert template_hash(template) != template_hash(deployment(image="registry/shop:v2")["spec"]["template"])
    assert set(template_hash(template)) <= set("bcdfghjklmnpqrstvwxz2456789")
