"""Pair discovery and the readiness verdicts of the Kubernetes library: pure functions over API objects."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import (
    build_pair,
    deployment_view,
    failing,
    pod_problem,
    probe_failures,
    ready_count,
    rollout_state,
    selects,
    validate_app,
)

from tests.unit.k8s_objects import deployment, pair_objects, pod, service

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def test_the_live_colour_is_what_the_live_service_selects():
    deployments, services = pair_objects(live="green")
    pair = build_pair("shop", "shop", deployments, services)
    assert (pair["live_color"], pair["idle_color"], pair["preview_color"]) == ("green", "blue", "blue")
    assert pair["services"] == {"blue": [], "green": ["shop"]}
    assert pair["colors"]["green"]["name"] == "shop-green" and pair["colors"]["blue"]["replicas"] == 0


def test_every_service_selecting_a_colour_of_the_app_is_found():
    extra = [
        service("shop-internal", {"app": "shop", "slot": "blue", "tier": "web"}),
        service("shop-metrics", {"app": "shop"}),
        service("cart", {"app": "cart", "slot": "blue"}),
        service("headless", None),
    ]
    deployments, services = pair_objects(extra=extra)
    pair = build_pair("shop", "shop", deployments, services)
    assert pair["services"] == {"blue": ["shop", "shop-internal"], "green": []}
    assert pair["unslotted_services"] == ["shop-metrics"]
    assert sorted(pair["service_views"]) == ["shop", "shop-internal", "shop-metrics", "shop-preview"]
    assert not pair["split"]


def test_a_service_selecting_the_idle_colour_is_a_split():
    deployments, services = pair_objects(extra=[service("shop-canary", {"app": "shop", "slot": "green"})])
    assert build_pair("shop", "shop", deployments, services)["split"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d, s: d.pop(1), r"Deployment shop/shop-green of app shop \(colour green\) was not found"),
        (lambda d, s: d[0]["spec"]["template"]["metadata"]["labels"].update(slot="green"), r"shop-blue labels its pods .* slot=blue"),
        (lambda d, s: s.pop(0), r"the live Service shop/shop of app shop was not found"),
        (
            lambda d, s: s[0]["spec"].update(selector={"app": "shop"}),
            r"the live Service shop/shop selects \{'app': 'shop'\}, not one colour",
        ),
        (lambda d, s: s[0]["spec"].update(selector={"app": "cart", "slot": "blue"}), r"not one colour of app shop"),
    ],
)
def test_an_inconsistent_pair_is_refused_naming_the_object(mutate, message):
    deployments, services = pair_objects()
    mutate(deployments, services)
    with pytest.raises(CutoverError, match=message):
        build_pair("shop", "shop", deployments, services)


def test_selects():
    assert selects({"app": "shop", "slot": "green"}, "shop") == "green"
    assert selects({"app": "shop"}, "shop") == "both"
    assert selects({"app": "shop", "slot": "purple"}, "shop") is None
    assert selects({"app": "cart", "slot": "blue"}, "shop") is None
    assert selects(None, "shop") is None


@pytest.mark.parametrize(
    ("app", "namespace", "message"),
    [("Shop", "shop", "app 'Shop' is not a valid app name"), ("a" * 41, "shop", "1 to 40"), ("shop", "Bad_NS", "namespace 'Bad_NS'")],
)
def test_bad_names_are_refused(app, namespace, message):
    with pytest.raises(CutoverError, match=message):
        validate_app(app, namespace)


# -- rollout state --------------------------------------------------------------------------------------
def test_a_rollout_is_complete_when_every_replica_is_updated_ready_and_available():
    assert rollout_state(deployment_view(deployment("green", replicas=2)))[0]
    assert rollout_state(deployment_view(deployment("green", replicas=0)))[0]
    stale = rollout_state(deployment_view(deployment("green", generation=2, observed=1)))
    assert stale == (False, "the controller has not seen generation 2 yet")
    old_pods_left = rollout_state(deployment_view(deployment("green", replicas=2, total=3)))
    assert not old_pods_left[0] and "3 pods in all" in old_pods_left[1]
    not_ready = rollout_state(deployment_view(deployment("green", replicas=2, ready=1)))
    assert not_ready == (False, "2 updated, 1 ready, 1 available of 2 wanted (2 pods in all)")
    assert not rollout_state(deployment_view(deployment("green", replicas=2)), replicas=3)[0]
    deadline = deployment("green")
    deadline["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    assert rollout_state(deployment_view(deadline)) == (False, "its progress deadline was exceeded (ProgressDeadlineExceeded)")


def test_ready_pods_are_counted_per_colour_and_image_leaving_terminating_ones_out():
    pods = [
        pod("a", "green"),
        pod("b", "green", ready=False),
        pod("c", "green", terminating=True),
        pod("d", "blue"),
        pod("e", "green", image="registry.example.com/shop:v0"),
    ]
    assert ready_count(pods, "green") == 2
    assert ready_count(pods, "green", image="registry.example.com/shop:v1") == 1
    assert ready_count(pods, "blue") == 1


# -- failing pods -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reason", ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError"]
)
def test_a_pod_that_will_not_recover_fails_at_once(reason):
    problem = pod_problem(pod("p", "green", ready=False, waiting=reason, since="2026-01-01T11:59:59Z"), NOW)
    assert (problem["reason"], problem["fatal"], problem["message"]) == (reason, True, f"{reason} details")
    assert failing([problem], unhealthy_timeout=600) == [problem]


def test_a_failing_readiness_probe_fails_only_after_the_grace_period():
    failing_probe = pod("p", "green", ready=False, since="2026-01-01T11:59:30Z")
    events = [
        {
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Unhealthy",
            "message": "Readiness probe failed: old",
            "lastTimestamp": "2026-01-01T11:59:31Z",
        },
        {
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Unhealthy",
            "message": "Readiness probe failed: HTTP probe failed with statuscode: 500",
            "lastTimestamp": "2026-01-01T11:59:50Z",
        },
        {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Unhealthy", "message": "Liveness probe failed: x"},
        {"involvedObject": {"kind": "Pod", "name": "q"}, "reason": "Pulled", "message": "Readiness probe failed: not this"},
    ]
    messages = probe_failures(events)
    assert messages == {"p": "Readiness probe failed: HTTP probe failed with statuscode: 500"}
    problem = pod_problem(failing_probe, NOW, messages)
    assert (problem["reason"], problem["fatal"], problem["seconds"]) == ("ReadinessProbeFailed", False, 30.0)
    assert problem["message"] == "Readiness probe failed: HTTP probe failed with statuscode: 500"
    assert failing([problem], unhealthy_timeout=60) == []
    assert failing([problem], unhealthy_timeout=30) == [problem]


def test_an_unschedulable_pod_is_named_with_the_schedulers_message():
    pending = pod("p", "green", ready=False, phase="Pending", scheduled=("Unschedulable", "0/1 nodes are available: Insufficient cpu."))
    problem = pod_problem(pending, NOW)
    assert (problem["reason"], problem["message"], problem["fatal"]) == (
        "Unschedulable",
        "0/1 nodes are available: Insufficient cpu.",
        False,
    )


def test_ready_pods_have_no_problem_and_starting_ones_are_not_ready_yet():
    assert pod_problem(pod("p", "green"), NOW) is None
    starting = pod_problem(pod("p", "green", ready=False, waiting="ContainerCreating", since="2026-01-01T11:59:58Z"), NOW)
    assert (starting["reason"], starting["fatal"], starting["seconds"]) == ("ContainerCreating", False, 2.0)
    running = pod_problem(pod("p", "green", ready=False, restarts=2), NOW)
    assert running["reason"] == "Restarting"
