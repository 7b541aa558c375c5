"""Planning, guarding, applying and verifying a selector switch (pure functions; applying against an in-memory API)."""

from __future__ import annotations

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import KubeError
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import build_pair
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_switch import (
    apply_switch,
    guard_switch,
    plan_switch,
    publish_active_color,
    selector_patch,
    validate_inputs,
    verdict,
)

from tests.unit.k8s_objects import FakeKube, deployment, endpoint_slice, pair_objects, pod, service

EXTRA = service("shop-internal", {"app": "shop", "slot": "blue", "tier": "web"}, version="9")


def pair_with(extra=(), green=None, live="blue"):
    deployments, services = pair_objects(live=live, green=green if green is not None else {"replicas": 2}, extra=list(extra))
    return build_pair("shop", "shop", deployments, services)


def test_every_service_selecting_the_old_colour_moves_and_the_preview_swaps():
    plan = plan_switch(pair_with([EXTRA, service("cart", {"app": "cart", "slot": "blue"})]), "idle")
    assert (plan["from_color"], plan["to_color"]) == ("blue", "green")
    assert [(c["service"], c["role"], c["before"], c["after"]) for c in plan["changes"]] == [
        ("shop", "live", {"app": "shop", "slot": "blue"}, {"app": "shop", "slot": "green"}),
        ("shop-internal", "production", {"app": "shop", "slot": "blue", "tier": "web"}, {"app": "shop", "slot": "green", "tier": "web"}),
        ("shop-preview", "preview", {"app": "shop", "slot": "green"}, {"app": "shop", "slot": "blue"}),
    ]
    assert plan["changes"][1]["resource_version"] == "9"


def test_a_done_switch_plans_nothing_and_a_half_done_one_plans_the_rest():
    done = pair_with(
        [service("shop-internal", {"app": "shop", "slot": "green"})],
        live="green",
    )
    assert plan_switch(done, "green")["changes"] == []
    half = pair_with([EXTRA], live="green")  # the live Service moved, the internal one did not (a run killed half way)
    plan = plan_switch(half, "green")
    assert [(c["service"], c["role"]) for c in plan["changes"]] == [("shop-internal", "production")]
    assert [c["service"] for c in plan_switch(pair_with(), "green", swap_preview=False)["changes"]] == ["shop"]


def test_the_selector_patch_keeps_other_keys_and_names_the_version_read():
    change = plan_switch(pair_with([EXTRA]), "green")["changes"][1]
    assert selector_patch(change) == {"spec": {"selector": {"slot": "green"}}, "metadata": {"resourceVersion": "9"}}
    assert selector_patch(change, conditional=False) == {"spec": {"selector": {"slot": "green"}}}


# -- guard ------------------------------------------------------------------------------------------------
def ready_pods(color, count, image="registry.example.com/shop:v1", ready=True):
    return [pod(f"{color}-{i}", color, ready=ready, image=image) for i in range(count)]


def test_never_to_a_colour_with_fewer_ready_pods_than_required():
    pair = pair_with()
    plan = plan_switch(pair, "green")
    assert guard_switch(pair, plan, ready_pods("green", 2)) == {"required": 2, "ready": 2}
    with pytest.raises(CutoverError, match=r"it has 1 Ready pod\(s\), 2 required") as refused:
        guard_switch(pair, plan, ready_pods("green", 1) + ready_pods("green", 1, ready=False))
    assert (refused.value.details["ready"], refused.value.details["required"]) == (1, 2)
    with pytest.raises(CutoverError, match=r"it has 2 Ready pod\(s\), 3 required"):
        guard_switch(pair, plan, ready_pods("green", 2), min_ready=3)
    # pods of another image do not count: the colour must run what it was rolled out with
    with pytest.raises(CutoverError, match=r"it has 0 Ready pod\(s\)"):
        guard_switch(pair, plan, ready_pods("green", 2, image="registry.example.com/shop:v0"))


def test_never_to_a_colour_whose_rollout_is_not_complete():
    pair = pair_with()
    plan = plan_switch(pair, "green")
    rolling = deployment("green", replicas=2, generation=3, observed=2)
    with pytest.raises(CutoverError, match=r"its rollout is not complete \(the controller has not seen generation 3 yet\)"):
        guard_switch(pair, plan, ready_pods("green", 2), deployment=rolling)


def test_a_service_selecting_both_colours_blocks_the_switch():
    pair = pair_with([service("shop-all", {"app": "shop"})])
    with pytest.raises(CutoverError, match=r"the Service\(s\) shop-all select both colours"):
        guard_switch(pair, plan_switch(pair, "green"), ready_pods("green", 2))


def test_nothing_to_switch_needs_no_guard():
    pair = pair_with(live="green")
    assert guard_switch(pair, plan_switch(pair, "green"), []) == {"required": 0, "ready": None}


@pytest.mark.parametrize(
    ("args", "message"),
    [(("purple",), "to_color must be one of blue, green, idle"), (("idle", 0), "min_ready must be a whole number from 1 to 1000")],
)
def test_bad_input(args, message):
    with pytest.raises(CutoverError, match=message):
        validate_inputs(*args)


# -- apply -----------------------------------------------------------------------------------------------
def fake_with_services():
    kube = FakeKube()
    for obj in pair_objects(extra=[EXTRA])[1]:
        kube.put("services", obj)
    return kube


def test_apply_patches_every_service_conditionally():
    kube = fake_with_services()
    pair = build_pair("shop", "shop", pair_objects(green={"replicas": 2})[0], [o for (_, _), o in sorted(kube.objects.items())])
    apply_switch(kube, "shop", plan_switch(pair, "green")["changes"])
    selectors = {name: obj["spec"]["selector"] for (_, name), obj in kube.objects.items()}
    assert selectors == {
        "shop": {"app": "shop", "slot": "green"},
        "shop-internal": {"app": "shop", "slot": "green", "tier": "web"},
        "shop-preview": {"app": "shop", "slot": "blue"},
    }


def test_a_failed_patch_puts_back_the_services_already_switched():
    kube = fake_with_services()
    pair = build_pair("shop", "shop", pair_objects(green={"replicas": 2})[0], [o for (_, _), o in sorted(kube.objects.items())])
    kube.fail[("patch", "services", "shop-internal")] = KubeError("patch services shop/shop-internal failed: 403 Forbidden", status=403)
    with pytest.raises(
        CutoverError, match=r"switching Service shop/shop-internal failed .* the 1 Service\(s\) already switched were put back"
    ) as failed:
        apply_switch(kube, "shop", plan_switch(pair, "green")["changes"])
    assert failed.value.details["undone"] == ["shop"]
    assert {name: obj["spec"]["selector"]["slot"] for (_, name), obj in kube.objects.items()} == {
        "shop": "blue",
        "shop-internal": "blue",
        "shop-preview": "green",
    }


def test_a_service_changed_since_it_was_read_is_refused_not_overwritten():
    kube = fake_with_services()
    pair = build_pair("shop", "shop", pair_objects(green={"replicas": 2})[0], [o for (_, _), o in sorted(kube.objects.items())])
    # someone edits the internal Service after the plan read it
    kube.interfere = lambda k: k.put("services", service("shop-internal", {"app": "shop", "slot": "blue", "tier": "api"}))
    with pytest.raises(CutoverError, match=r"shop-internal failed \(its selector changed since it was read"):
        apply_switch(kube, "shop", plan_switch(pair, "green")["changes"])
    assert kube.objects[("services", "shop-internal")]["spec"]["selector"]["tier"] == "api"
    assert kube.objects[("services", "shop")]["spec"]["selector"]["slot"] == "blue"


# -- verify ------------------------------------------------------------------------------------------------
def test_verdict_wants_only_new_colour_endpoints_and_enough_of_them():
    services = [
        service("shop", {"app": "shop", "slot": "green"}),
        service("shop-internal", {"app": "shop", "slot": "green"}),
        service("shop-preview", {"app": "shop", "slot": "blue"}),
    ]
    pods = ready_pods("green", 2) + ready_pods("blue", 1)
    good = {
        "shop": [endpoint_slice("shop", [("green-0", "127.0.0.2", True), ("green-1", "127.0.0.3", True)])],
        "shop-internal": [endpoint_slice("shop-internal", [("green-0", "127.0.0.2", True), ("green-1", "127.0.0.3", True)])],
    }
    assert verdict("shop", services, good, pods, "green", 2, "shop-preview") == (True, [])
    lagging = dict(good, shop=[endpoint_slice("shop", [("green-0", "127.0.0.2", True), ("blue-0", "127.0.0.9", False)])])
    ok, problems = verdict("shop", services, lagging, pods, "green", 2, "shop-preview")
    assert not ok
    assert problems == ["Service shop still has endpoint blue-0 (blue)", "Service shop has 1 Ready green endpoint(s) of 2 required"]
    moved_back = [service("shop", {"app": "shop", "slot": "blue"}), *services[1:]]
    assert verdict("shop", moved_back, good, pods, "green", 2, "shop-preview")[1] == ["Service shop selects blue"]


def test_publishing_the_active_colour_creates_or_updates_the_config_map():
    kube = FakeKube()
    created = publish_active_color(kube, "shop", "shop", "shop-active-color", "green")
    assert (created["changed"], created["before"]) == (True, None)
    assert kube.objects[("configmaps", "shop-active-color")]["data"]["color"] == "green"
    assert publish_active_color(kube, "shop", "shop", "shop-active-color", "green")["changed"] is False
    checked = publish_active_color(kube, "shop", "shop", "shop-active-color", "blue", check_mode=True)
    assert checked["changed"] and kube.objects[("configmaps", "shop-active-color")]["data"]["color"] == "green"


def test_a_service_whose_selector_did_not_change_is_switched_though_its_version_did():
    kube = fake_with_services()
    pair = build_pair("shop", "shop", pair_objects(green={"replicas": 2})[0], [o for (_, _), o in sorted(kube.objects.items())])
    # a controller writes the internal Service (its status, a label) after the plan read it: a new resourceVersion
    kube.interfere = lambda k: k.put("services", dict(k.objects[("services", "shop-internal")], status={"loadBalancer": {}}))
    apply_switch(kube, "shop", plan_switch(pair, "green")["changes"])
    assert {name: obj["spec"]["selector"]["slot"] for (_, name), obj in kube.objects.items()} == {
        "shop": "green",
        "shop-internal": "green",
        "shop-preview": "blue",
    }
