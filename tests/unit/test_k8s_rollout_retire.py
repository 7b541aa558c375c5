"""Rollout planning, standby marks, teardown selection and restore on Kubernetes (pure functions)."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import build_pair
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_retire import (
    drained,
    plan_marks,
    plan_restore,
    select_teardown,
    teardown_candidates,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_rollback import choose_target
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_rollout import plan_rollout, readiness, validate_inputs

from tests.unit.k8s_objects import deployment, endpoint_slice, pair_objects, pod, service

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
V2 = "registry.example.com/shop:v2"
STANDBY = {"cutover.bluegreen/state": "standby", "cutover.bluegreen/retire-after": "2026-01-01T11:00:00Z"}


def pair_with(green=None, extra=(), live="blue"):
    """A pair; ``green`` are the idle colour's Deployment fields (green when blue is live)."""
    deployments, services = pair_objects(live=live, green=green, extra=list(extra))
    return build_pair("shop", "shop", deployments, services)


# -- rollout ------------------------------------------------------------------------------------------------
def test_the_idle_colour_gets_the_image_and_the_live_colours_replicas():
    plan = plan_rollout(pair_with(), image=V2)
    assert (plan["color"], plan["deployment"], plan["replicas"], plan["changed"]) == ("green", "shop-green", 2, True)
    assert plan["steps"] == [
        {"replicas": 2, "patch": {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": V2}]}}}}}
    ]
    assert plan["before"] == {"image": "registry.example.com/shop:v1", "replicas": 0, "annotations": {}}


def test_preparation_replicas_come_first_and_standby_marks_are_cleared():
    plan = plan_rollout(pair_with(green={"annotations": STANDBY}), image=V2, replicas=4, preparation_replicas=1)
    assert [step["replicas"] for step in plan["steps"]] == [1, 4]
    first, second = (step["patch"] for step in plan["steps"])
    assert first["metadata"] == {"annotations": {"cutover.bluegreen/state": None, "cutover.bluegreen/retire-after": None}}
    assert first["spec"]["template"]["spec"]["containers"] == [{"name": "app", "image": V2}]
    assert second == {"spec": {"replicas": 4}}
    assert plan["after"]["annotations"] == {}


def test_a_rollout_already_done_plans_nothing():
    plan = plan_rollout(pair_with(green={"replicas": 2, "image": V2}), image=V2)
    assert (plan["steps"], plan["changed"]) == ([], False)
    # a colour already past its preparation size only finishes the scale
    bigger = plan_rollout(pair_with(green={"replicas": 1, "image": V2}), image=V2, preparation_replicas=1)
    assert [step["patch"] for step in bigger["steps"]] == [{"spec": {"replicas": 2}}]


def test_the_live_colour_and_traffic_to_the_idle_colour_are_refused():
    with pytest.raises(CutoverError, match=r"blue is the live colour of app shop: a release goes to the idle colour \(green\)"):
        plan_rollout(pair_with(), image=V2, color="blue")
    split = pair_with(extra=[service("shop-canary", {"app": "shop", "slot": "green"})])
    with pytest.raises(CutoverError, match=r"production traffic reaches the green colour of app shop through the Service\(s\) shop-canary"):
        plan_rollout(split, image=V2)
    both = pair_with(extra=[service("shop-all", {"app": "shop"})])
    with pytest.raises(CutoverError, match=r"through the Service\(s\) shop-all"):
        plan_rollout(both, image=V2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": "Bad Image"}, r"image 'Bad Image' is not a container image reference"),
        ({"replicas": -1}, r"replicas must be a whole number from 0 to 1000, got -1"),
        ({"replicas": 1001}, r"replicas must be a whole number from 0 to 1000"),
        ({"preparation_replicas": 0}, r"preparation_replicas must be a whole number from 1 to 1000"),
        ({"replicas": 2, "preparation_replicas": 2}, r"preparation_replicas \(2\) must be smaller than replicas \(2\)"),
        ({"color": "purple"}, r"color must be one of blue, green, idle"),
        ({"timeout": -1}, r"wait_timeout must be from 0 to 86400 seconds"),
    ],
)
def test_bad_rollout_input_is_refused_naming_the_option(kwargs, message):
    with pytest.raises(CutoverError, match=message):
        validate_inputs(**kwargs)


def test_preparation_replicas_must_be_below_the_live_colours_replicas():
    with pytest.raises(CutoverError, match=r"preparation_replicas \(2\) must be smaller than replicas \(2, the live colour's\)"):
        plan_rollout(pair_with(), image=V2, preparation_replicas=2)


def test_ready_means_rolled_out_and_every_pod_ready_on_the_image():
    done = deployment("green", replicas=2, image=V2)
    pods = [pod("a", "green", image=V2), pod("b", "green", image=V2)]
    assert readiness(done, pods, 2, V2, "app", NOW)[0]
    old_still_there = [*pods, pod("c", "green")]
    assert readiness(done, old_still_there, 2, V2, "app", NOW)[:2] == (False, f"2 of 2 pods Ready on {V2}, 1 on another image")
    crashing = [pod("a", "green", image=V2), pod("b", "green", image=V2, ready=False, waiting="CrashLoopBackOff")]
    ready, _, problems = readiness(deployment("green", replicas=2, image=V2, ready=1), crashing, 2, V2, "app", NOW)
    assert not ready and [(p["pod"], p["reason"], p["fatal"]) for p in problems] == [("b", "CrashLoopBackOff", True)]
    # an old pod going away is no problem of the new release
    leaving = [*pods, pod("c", "green", ready=False, waiting="CrashLoopBackOff")]
    assert readiness(done, leaving, 2, V2, "app", NOW)[2] == []


# -- standby ------------------------------------------------------------------------------------------------
def test_the_old_colour_becomes_standby_and_the_new_one_loses_its_marks():
    pair = pair_with(green={"replicas": 2, "annotations": {**STANDBY, "cutover.bluegreen/replicas-before-teardown": "2"}})
    marks = plan_marks(pair, "blue", "green", NOW, ttl="2h")
    assert marks["standby"]["set"] == {"cutover.bluegreen/state": "standby", "cutover.bluegreen/retire-after": "2026-01-01T14:00:00Z"}
    assert marks["clear"] == ["cutover.bluegreen/state", "cutover.bluegreen/retire-after", "cutover.bluegreen/replicas-before-teardown"]
    with pytest.raises(CutoverError, match="the live colour green is never marked standby"):
        plan_marks(pair, "green", "green", NOW)


def test_a_standby_keeps_its_retire_after_time_unless_told_otherwise():
    kept = pair_with(live="green", green={"annotations": STANDBY})  # the idle colour (blue here) carries the marks
    assert kept["colors"]["blue"]["state"] == "standby"
    marks = plan_marks(kept, "blue", "green", NOW, ttl="1d")
    assert (marks["standby"]["source"], marks["standby"]["set"]) == ("kept", {})
    explicit = plan_marks(kept, "blue", "green", NOW, retire_after="2026-02-01T00:00:00Z")
    assert explicit["standby"]["set"] == {"cutover.bluegreen/retire-after": "2026-02-01T00:00:00Z"}


# -- teardown ---------------------------------------------------------------------------------------------
def test_teardown_retires_an_expired_standby_and_never_the_live_colour():
    pair = pair_with(green={"replicas": 2, "annotations": STANDBY})
    decisions = {d["color"]: d for d in select_teardown(teardown_candidates(pair), NOW)}
    assert decisions["green"]["action"] == "teardown" and "has passed" in decisions["green"]["reason"]
    assert decisions["blue"] == {
        "color": "blue",
        "action": "skip",
        "reason": "blue is the live colour; it is never torn down, even with force",
        "retire_after": None,
    }
    forced = {d["color"]: d["action"] for d in select_teardown(teardown_candidates(pair), NOW, force=True)}
    assert forced == {"blue": "skip", "green": "teardown"}


def test_teardown_waits_for_the_retire_after_time_unless_forced():
    later = {"cutover.bluegreen/state": "standby", "cutover.bluegreen/retire-after": "2026-01-01T13:00:00Z"}
    pair = pair_with(green={"replicas": 2, "annotations": later})
    (decision,) = select_teardown(teardown_candidates(pair, ["idle"]), NOW)
    assert decision["action"] == "skip" and "standby until 2026-01-01T13:00:00Z" in decision["reason"]
    (forced,) = select_teardown(teardown_candidates(pair, ["green"]), NOW, force=True)
    assert (forced["action"], forced["reason"]) == ("teardown", "forced before its retire-after time 2026-01-01T13:00:00Z")


@pytest.mark.parametrize(
    ("annotations", "extra", "reason"),
    [
        ({}, [], "green has no cutover.bluegreen/state annotation: it is not a standby"),
        (STANDBY, [service("shop-canary", {"app": "shop", "slot": "green"})], "green still receives production traffic"),
        (
            {"cutover.bluegreen/state": "standby", "cutover.bluegreen/retire-after": "soon"},
            [],
            "has no valid cutover.bluegreen/retire-after",
        ),
    ],
)
def test_teardown_skips_what_is_no_expired_standby(annotations, extra, reason):
    pair = pair_with(green={"replicas": 2, "annotations": annotations}, extra=extra)
    (decision,) = select_teardown(teardown_candidates(pair, ["green"]), NOW, force=bool(extra))
    assert decision["action"] == "skip" and reason in decision["reason"]


def test_an_already_retired_colour_is_skipped():
    retired = {"cutover.bluegreen/state": "retired", "cutover.bluegreen/retire-after": "2026-01-01T11:00:00Z"}
    (decision,) = select_teardown(teardown_candidates(pair_with(green={"annotations": retired}), ["green"]), NOW)
    assert decision["reason"] == "green is already retired (0 replicas)"


def test_drained_means_no_production_endpoint_holds_a_pod_of_the_colour():
    pods = [pod("blue-0", "blue", ip="127.0.0.5"), pod("green-0", "green", ip="127.0.0.6")]
    serving = {"shop": [endpoint_slice("shop", [("green-0", "127.0.0.6", True), ("blue-0", "127.0.0.5", False)])]}
    assert drained(pods, serving, "blue") == (False, ["blue-0 in shop"])
    assert drained(pods, {"shop": [endpoint_slice("shop", [("green-0", "127.0.0.6", True)])]}, "blue") == (True, [])


# -- restore and rollback ------------------------------------------------------------------------------------
def test_restore_scales_to_the_live_colours_replicas():
    pair = pair_with(
        green={"replicas": 0, "annotations": {"cutover.bluegreen/state": "retired", "cutover.bluegreen/replicas-before-teardown": "3"}}
    )
    plan = plan_restore(pair, "green")
    assert (plan["replicas"], plan["patch"]) == (2, {"spec": {"replicas": 2}})
    assert plan_restore(pair, "green", replicas=5)["replicas"] == 5
    assert plan_restore(pair_with(green={"replicas": 2}), "green")["patch"] is None


def test_rollback_refuses_a_colour_that_never_served():
    with pytest.raises(CutoverError, match=r"nothing to roll back to for app shop: green \(shop-green, 0 replicas"):
        choose_target(pair_with(), "previous")
    assert choose_target(pair_with(green={"annotations": STANDBY}), "previous") == ("blue", "green")
    assert choose_target(pair_with(), "blue") == ("blue", "blue")
    with pytest.raises(CutoverError, match="to must be one of previous, blue, green"):
        choose_target(pair_with(), "yellow")
