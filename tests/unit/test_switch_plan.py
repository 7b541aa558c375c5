"""switch library: plans from hand-built pairs, the health guard, all-or-nothing apply, verify, retries."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import Pair, forward_weights, plain_client
from ansible_collections.cutover.bluegreen.plugins.module_utils.parameter import publish_active_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.switch import (
    apply_switch,
    guard_switch,
    plan_switch,
    resolve_color,
    switch,
    validate_weights,
    verify_switch,
)
from botocore.exceptions import ClientError

PREFIX = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
LB = PREFIX + "loadbalancer/app/shop/1"
TG = {color: PREFIX + f"targetgroup/shop-{color}/{n}" for n, color in enumerate(("blue", "green"))}
OTHER_TG = PREFIX + "targetgroup/legacy/9"
PROD = PREFIX + "listener/app/shop/1/prod"
TEST = PREFIX + "listener/app/shop/1/test"
API_RULE = PREFIX + "listener-rule/app/shop/1/prod/api"
MIXED_RULE = PREFIX + "listener-rule/app/shop/1/prod/mixed"
TEST_RULE = PREFIX + "listener-rule/app/shop/1/test/t"


def forward(arn):
    return [{"Type": "forward", "TargetGroupArn": arn, "Order": 1}]


def weighted(*groups, stickiness=None):
    config = {"TargetGroups": [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in groups]}
    if stickiness is not None:
        config["TargetGroupStickinessConfig"] = stickiness
    return [{"Type": "forward", "ForwardConfig": config, "Order": 1}]


def targets(healthy=2, others=()):
    found = [{"id": f"i-h{n}", "port": 8080, "state": "healthy", "reason": None, "description": None} for n in range(healthy)]
    for n, (state, reason, description) in enumerate(others):
        found.append({"id": f"i-x{n}", "port": 8080, "state": state, "reason": reason, "description": description})
    return found


def target_of(instance_id, state="healthy"):
    return {"id": instance_id, "port": 8080, "state": state, "reason": None, "description": None}


def color(name, desired=2, in_service=None, target_list=None, instances=None):
    """A colour whose group's InService instances (version 1) are the targets' ids unless ``instances`` says otherwise."""
    target_list = targets(desired) if target_list is None else target_list
    if instances is None:
        instances = [t["id"] for t in target_list if t["state"] != "draining"]
    return {
        "target_group": {"arn": TG[name], "name": f"shop-{name}"},
        "asg": {
            "name": f"shop-{name}",
            "desired_capacity": desired,
            "in_service": len(instances) if in_service is None else in_service,
            "launch_template": {"id": "lt-1", "name": "cutover-shop", "version": "1"},
            "instances": [
                {"id": i, "lifecycle_state": "InService", "health_status": "Healthy", "launch_template_version": "1"} for i in instances
            ],
        },
        "targets": target_list,
    }


def forwarder(arn, kind, listener, role, priority, actions):
    return {
        "arn": arn,
        "kind": kind,
        "listener_arn": listener,
        "role": role,
        "priority": priority,
        "actions": actions,
        "weights": forward_weights(actions),
    }


def make_pair(prod=None, api=None, mixed=None, test=None, blue=None, green=None):
    """Blue live: production :80 default and rule 10 -> blue, rule 20 -> blue 80 + legacy 20, test :9000 -> green."""
    forwarders = [
        forwarder(PROD, "listener", PROD, "production", "default", prod or forward(TG["blue"])),
        forwarder(API_RULE, "rule", PROD, "production", "10", api or forward(TG["blue"])),
        forwarder(MIXED_RULE, "rule", PROD, "production", "20", mixed or weighted((TG["blue"], 80), (OTHER_TG, 20))),
        forwarder(TEST, "listener", TEST, "test", "default", test or forward(TG["green"])),
    ]
    listeners = [
        {"arn": PROD, "port": 80, "protocol": "HTTP", "role": "production"},
        {"arn": TEST, "port": 9000, "protocol": "HTTP", "role": "test"},
    ]
    colors = {"blue": blue or color("blue"), "green": green or color("green")}
    return Pair("shop", LB, colors, listeners, forwarders)


def by_label(changes):
    return {change["label"]: change for change in changes}


# -- planning ---------------------------------------------------------------------------------
def test_full_switch_moves_listener_and_rules_keeps_other_groups_and_swaps_test():
    pair = make_pair()
    changes = plan_switch(pair, "green")
    assert [c["label"] for c in changes] == [
        "production listener :80 default action",
        "production listener :80 rule 10",
        "production listener :80 rule 20",
        "test listener :9000 default action",
    ]
    changed = by_label(changes)
    listener = changed["production listener :80 default action"]
    assert listener["after"] == [{"Type": "forward", "TargetGroupArn": TG["green"], "Order": 1}]
    assert (listener["before_weights"], listener["after_weights"]) == ({"blue": 1}, {"green": 1})
    assert listener["before"] == forward(TG["blue"]) and listener["kind"] == "listener" and listener["priority"] == "default"
    # the legacy group keeps its place and weight; green takes blue's weight
    mixed = changed["production listener :80 rule 20"]
    assert mixed["after"][0]["ForwardConfig"]["TargetGroups"] == [
        {"TargetGroupArn": TG["green"], "Weight": 80},
        {"TargetGroupArn": OTHER_TG, "Weight": 20},
    ]
    assert mixed["after_text"] == "green 80, legacy 20"
    test = changed["test listener :9000 default action"]
    assert (test["role"], test["before_weights"], test["after_weights"]) == ("test", {"green": 1}, {"blue": 1})
    # the plan is data: the pair itself is not changed
    assert pair.forwarders[0]["actions"] == forward(TG["blue"])


def test_non_forward_actions_and_stickiness_are_kept():
    auth = {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {"Issuer": "https://idp", "ClientId": "c"}}
    sticky = {"Enabled": True, "DurationSeconds": 300}
    api = [auth, dict(weighted((TG["blue"], 1), stickiness=sticky)[0], Order=2)]
    change = by_label(plan_switch(make_pair(api=api), "green"))["production listener :80 rule 10"]
    assert change["after"][0] == auth
    assert change["after"][1] == {
        "Type": "forward",
        "Order": 2,
        "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": TG["green"], "Weight": 1}], "TargetGroupStickinessConfig": sticky},
    }


def test_already_switched_pair_plans_nothing():
    pair = make_pair(
        prod=weighted((TG["blue"], 0), (TG["green"], 100)),  # all traffic already on green, written as weights
        api=forward(TG["green"]),
        mixed=weighted((TG["green"], 80), (OTHER_TG, 20)),
        test=forward(TG["blue"]),
    )
    assert plan_switch(pair, "green") == []
    # switching the other way moves every one of them
    assert len(plan_switch(pair, "blue")) == 4


def test_without_test_listener_swap_only_production_moves():
    changes = plan_switch(make_pair(), "green", swap_test_listener=False)
    assert all(change["role"] == "production" for change in changes) and len(changes) == 3


def test_weighted_split_sets_both_weights_and_leaves_test_listener_alone():
    changes = plan_switch(make_pair(), None, weights={"blue": 90, "green": 10})
    assert [c["label"] for c in changes] == [
        "production listener :80 default action",
        "production listener :80 rule 10",
        "production listener :80 rule 20",
    ]
    listener = changes[0]
    assert listener["after"][0]["ForwardConfig"]["TargetGroups"] == [
        {"TargetGroupArn": TG["blue"], "Weight": 90},
        {"TargetGroupArn": TG["green"], "Weight": 10},
    ]
    assert listener["after_weights"] == {"blue": 90, "green": 10} and listener["after_text"] == "blue 90, green 10"
    assert changes[2]["after"][0]["ForwardConfig"]["TargetGroups"][-1] == {"TargetGroupArn": OTHER_TG, "Weight": 20}
    # once applied, the same split plans nothing
    split = make_pair(prod=changes[0]["after"], api=changes[1]["after"], mixed=changes[2]["after"])
    assert plan_switch(split, None, weights={"blue": 90, "green": 10}) == []
    assert split.split and split.live_color == "blue"


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"blue": 90, "red": 10}, "weights may only name the colours of the pair (blue, green); unknown: red"),
        ({"blue": 90}, "missing: green"),
        ({"blue": -1, "green": 10}, "weight of blue must be from 0 to 999"),
        ({"blue": 0, "green": 1000}, "weight of green must be from 0 to 999 (what a load balancer accepts), got 1000"),
        ({"blue": 0, "green": 0}, "weights blue=0, green=0 send traffic to neither colour"),
        ({"blue": "ten", "green": 1}, "weight of blue must be an integer"),
        ({"blue": True, "green": 1}, "weight of blue must be an integer"),
        ({}, "weights must be a mapping of both colours"),
    ],
)
def test_weights_that_make_no_sense_are_refused(weights, message):
    with pytest.raises(CutoverError) as caught:
        validate_weights(weights)
    assert message in caught.value.message
    with pytest.raises(CutoverError):
        plan_switch(make_pair(), None, weights=weights)


def test_weights_at_the_limits_are_accepted():
    assert validate_weights({"blue": 999, "green": 0}) == {"blue": 999, "green": 0}


def test_idle_resolves_to_the_colour_idle_now_and_is_refused_while_split():
    assert resolve_color(make_pair(), "idle") == "green"
    assert resolve_color(make_pair(), "blue") == "blue"
    split = make_pair(prod=weighted((TG["blue"], 50), (TG["green"], 50)))
    with pytest.raises(CutoverError, match="to_color=idle is ambiguous while production traffic of 'shop' is split"):
        resolve_color(split, "idle")
    with pytest.raises(CutoverError, match="to_color must be one of blue, green, idle, got 'red'"):
        resolve_color(make_pair(), "red")


# -- the guard --------------------------------------------------------------------------------
def test_too_few_healthy_targets_refused_naming_each_target_and_reason():
    bad = [
        ("unhealthy", "Target.FailedHealthChecks", "Health checks failed"),
        ("initial", "Elb.RegistrationInProgress", None),
        ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"),
    ]
    pair = make_pair(green=color("green", desired=3, target_list=targets(1, bad)))
    changes = plan_switch(pair, "green")
    with pytest.raises(CutoverError) as caught:
        guard_switch(pair, changes)
    message = caught.value.message
    assert "refusing to move traffic of shop to green" in message
    assert "target group shop-green has 1 healthy targets, 3 required" in message
    assert "i-x0:8080 unhealthy (Target.FailedHealthChecks: Health checks failed)" in message
    assert "i-x1:8080 initial (Elb.RegistrationInProgress)" in message
    assert "i-x2:8080 draining (Target.DeregistrationInProgress" in message
    assert "force=true" in message
    checked = caught.value.details["guard"]["checked"]["green"]
    assert (checked["healthy"], checked["required"], len(checked["unhealthy_targets"])) == (1, 3, 3)


def test_min_healthy_overrides_the_desired_capacity_but_never_below_one():
    pair = make_pair(green=color("green", desired=3, target_list=targets(2)))
    changes = plan_switch(pair, "green")
    with pytest.raises(CutoverError, match="2 healthy targets, 3 required"):
        guard_switch(pair, changes)
    assert guard_switch(pair, changes, min_healthy=2)["forced"] is False
    with pytest.raises(CutoverError, match="4 required"):
        guard_switch(pair, changes, min_healthy=4)
    unhealthy = make_pair(green=color("green", desired=1, target_list=targets(0, [("unhealthy", "Target.Timeout", None)])))
    with pytest.raises(CutoverError, match="0 healthy targets, 1 required"):
        guard_switch(unhealthy, plan_switch(unhealthy, "green"), min_healthy=0)
    with pytest.raises(CutoverError, match="min_healthy must be a whole number, 0 or more, got -1"):
        guard_switch(pair, changes, min_healthy=-1)


def test_empty_group_and_asg_without_instances_refused_unless_forced():
    pair = make_pair(green=color("green", desired=0, target_list=[]))
    changes = plan_switch(pair, "green")
    with pytest.raises(CutoverError) as caught:
        guard_switch(pair, changes)
    assert "Auto Scaling group shop-green has desired capacity 0 and 0 instances InService" in caught.value.message
    assert "target group shop-green has no registered targets (0 healthy, 1 required)" in caught.value.message
    forced = guard_switch(pair, changes, force=True)
    assert forced["forced"] is True and len(forced["warnings"]) == 2
    # healthy leftovers of a scaled-in group do not make it acceptable
    leftovers = make_pair(green=color("green", desired=0, target_list=targets(2)))
    with pytest.raises(CutoverError, match="desired capacity 0"):
        guard_switch(leftovers, plan_switch(leftovers, "green"))


def test_guard_checks_only_colours_that_gain_traffic():
    # green is broken, but moving test traffic or shrinking green's share needs no healthy green
    broken_green = color("green", desired=0, target_list=[])
    pair = make_pair(green=broken_green, test=forward(TG["blue"]))
    only_test = plan_switch(pair, "blue")
    assert [change["label"] for change in only_test] == ["test listener :9000 default action"]
    assert guard_switch(pair, only_test)["checked"] == {}
    half = weighted((TG["blue"], 50), (TG["green"], 50))
    canary = make_pair(prod=half, api=half, mixed=weighted((TG["blue"], 40), (TG["green"], 40), (OTHER_TG, 20)), green=broken_green)
    assert list(guard_switch(canary, plan_switch(canary, None, weights={"blue": 90, "green": 10}))["checked"]) == ["blue"]
    with pytest.raises(CutoverError, match="to green"):
        guard_switch(canary, plan_switch(canary, None, weights={"blue": 10, "green": 90}))
    # a canary split checks the colour that gets its first share
    with pytest.raises(CutoverError, match="shop-green has desired capacity 0"):
        guard_switch(pair, plan_switch(pair, None, weights={"blue": 90, "green": 10}))


def test_a_foreign_target_is_refused_even_with_enough_capacity_and_never_counted():
    green = color("green", desired=2, target_list=[*targets(2), target_of("i-foreign")], instances=["i-h0", "i-h1"])
    pair = make_pair(green=green)
    with pytest.raises(CutoverError) as caught:
        guard_switch(pair, plan_switch(pair, "green"))
    message = caught.value.message
    assert "i-foreign:8080 healthy is not an instance of Auto Scaling group shop-green" in message
    assert "deregister_foreign=true" in message
    checked = caught.value.details["guard"]["checked"]["green"]
    assert (checked["healthy"], checked["registered"], checked["foreign_targets"]) == (2, 3, ["i-foreign:8080"])
    # One of its own instances and a foreign one are one healthy target, not two.
    short = make_pair(green=color("green", desired=2, target_list=[*targets(1), target_of("i-foreign")], instances=["i-h0"]))
    with pytest.raises(CutoverError, match="has 1 healthy targets, 2 required"):
        guard_switch(short, plan_switch(short, "green"))


def test_an_instance_on_another_version_or_an_unused_target_is_refused():
    green = color("green", desired=2, target_list=targets(2))
    green["asg"]["instances"][1]["launch_template_version"] = "0"
    pair = make_pair(green=green)
    with pytest.raises(CutoverError, match="i-h1:8080 healthy runs another launch-template version than 1"):
        guard_switch(pair, plan_switch(pair, "green"), min_healthy=1)
    unused = make_pair(green=color("green", desired=1, target_list=targets(1, [("unused", "Target.NotInUse", None)])))
    with pytest.raises(CutoverError, match="target i-x0:8080 of shop-green is unused"):
        guard_switch(unused, plan_switch(unused, "green"))


def test_draining_targets_are_not_registered_targets():
    leaving = [("draining", "Target.DeregistrationInProgress", None)] * 2
    pair = make_pair(green=color("green", desired=2, target_list=targets(0, leaving), instances=["i-x0", "i-x1"]))
    with pytest.raises(CutoverError) as caught:
        guard_switch(pair, plan_switch(pair, "green"))
    assert "target group shop-green has no registered targets (0 healthy, 2 required); leaving: i-x0:8080 draining" in caught.value.message
    checked = caught.value.details["guard"]["checked"]["green"]
    assert checked["registered"] == 0 and checked["draining_targets"] == ["i-x0:8080", "i-x1:8080"]


class DeregisteringElbv2:
    def __init__(self):
        self.calls = []

    def deregister_targets(self, TargetGroupArn, Targets, aws_retry=False):
        assert aws_retry
        self.calls.append(("deregister_targets", TargetGroupArn, Targets))

    def __getattr__(self, name):
        raise AssertionError(f"unexpected call {name}")


def test_switch_with_deregister_foreign_deregisters_them_first_and_check_mode_only_says_so():
    green = color("green", desired=2, target_list=[*targets(2), target_of("i-foreign")], instances=["i-h0", "i-h1"])
    pair = make_pair(green=green)
    fake = DeregisteringElbv2()
    planned = switch(fake, pair, to_color="green", deregister_foreign=True, check_mode=True)
    assert planned["deregistered"] == {"green": ["i-foreign:8080"]} and fake.calls == []
    assert planned["guard"]["checked"]["green"]["draining_targets"] == ["i-foreign:8080"]
    with pytest.raises(AssertionError, match="unexpected call modify_listener"):  # deregistered, then it switches
        switch(fake, pair, to_color="green", deregister_foreign=True)
    assert fake.calls == [("deregister_targets", TG["green"], [{"Id": "i-foreign", "Port": 8080}])]


def test_switch_refuses_before_any_call():
    pair = make_pair(green=color("green", desired=2, target_list=targets(0, [("unhealthy", "Target.Timeout", "timed out")] * 2)))
    fake = FakeElbv2(pair)
    with pytest.raises(CutoverError, match="refusing to move traffic of shop to green"):
        switch(fake, pair, to_color="green")
    assert fake.calls == []


# -- apply, roll back, verify -----------------------------------------------------------------
def client_error(code, operation):
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, operation)


class FakeElbv2:
    """Listeners and rules in memory; fail_on = {call number: error code} (calls counted from 1)."""

    def __init__(self, pair, fail_on=None, ignore_writes=False):
        self.state = {f["arn"]: copy.deepcopy(f["actions"]) for f in pair.forwarders}
        self.rules = {f["arn"]: f["listener_arn"] for f in pair.forwarders if f["kind"] == "rule"}
        self.fail_on = dict(fail_on or {})
        self.ignore_writes = ignore_writes
        self.calls = []

    def _call(self, name, arn, actions=None):
        self.calls.append((name, arn))
        code = self.fail_on.pop(len(self.calls), None)
        if code:
            raise client_error(code, name)
        if actions is not None and not self.ignore_writes:
            self.state[arn] = copy.deepcopy(actions)

    def modify_listener(self, ListenerArn, DefaultActions, **_kwargs):
        self._call("modify_listener", ListenerArn, DefaultActions)
        return {}

    def modify_rule(self, RuleArn, Actions, **_kwargs):
        self._call("modify_rule", RuleArn, Actions)
        return {}

    def describe_listeners(self, ListenerArns, **_kwargs):
        self._call("describe_listeners", tuple(ListenerArns))
        return {"Listeners": [{"ListenerArn": arn, "DefaultActions": self.state[arn]} for arn in ListenerArns]}

    def describe_rules(self, RuleArns, **_kwargs):
        self._call("describe_rules", tuple(RuleArns))
        return {"Rules": [{"RuleArn": arn, "Actions": self.state[arn]} for arn in RuleArns]}


def test_apply_changes_production_first_then_test_and_verify_batches_reads():
    pair = make_pair()
    fake = FakeElbv2(pair)
    changes = plan_switch(pair, "green")
    apply_switch(fake, list(reversed(changes)))  # the order given does not matter
    assert fake.calls == [
        ("modify_listener", PROD),
        ("modify_rule", API_RULE),
        ("modify_rule", MIXED_RULE),
        ("modify_listener", TEST),
    ]
    fake.calls.clear()
    assert verify_switch(fake, changes)["verified"] == 4
    assert fake.calls == [("describe_listeners", (PROD, TEST)), ("describe_rules", (API_RULE, MIXED_RULE))]


def test_failure_on_second_change_rolls_back_the_first():
    pair = make_pair()
    fake = FakeElbv2(pair, fail_on={2: "AccessDenied"})
    original = copy.deepcopy(fake.state)
    with pytest.raises(CutoverError) as caught:
        apply_switch(fake, plan_switch(pair, "green"))
    message = caught.value.message
    assert "switch failed at production listener :80 rule 10" in message and "AccessDenied" in message
    assert "rolled back the 1 change already made (production listener :80 default action)" in message
    assert caught.value.details["rolled_back"] == ["production listener :80 default action"]
    # nothing after the failure was tried; the first change was put back
    assert fake.calls == [("modify_listener", PROD), ("modify_rule", API_RULE), ("modify_listener", PROD)]
    assert fake.state == original


def test_failed_rollback_says_what_is_left_switched():
    pair = make_pair()
    fake = FakeElbv2(pair, fail_on={3: "ValidationError", 4: "AccessDenied"})
    with pytest.raises(CutoverError) as caught:
        apply_switch(fake, plan_switch(pair, "green"))
    message = caught.value.message
    assert "switch failed at production listener :80 rule 20" in message
    # rule 10 is put back first (last made, first undone) and that fails; the listener is put back
    assert "rolling back failed for production listener :80 rule 10: " in message
    assert "so production listener :80 rule 10 still forwards as switched" in message
    assert caught.value.details["rolled_back"] == ["production listener :80 default action"]
    assert forward_weights(fake.state[API_RULE]) == {TG["green"]: 1}  # left switched, and said so
    assert forward_weights(fake.state[PROD]) == {TG["blue"]: 1}


def test_failure_on_first_change_changes_nothing():
    pair = make_pair()
    fake = FakeElbv2(pair, fail_on={1: "AccessDenied"})
    with pytest.raises(CutoverError, match="nothing had been changed yet"):
        apply_switch(fake, plan_switch(pair, "green"))
    assert fake.calls == [("modify_listener", PROD)]


def test_throttling_is_retried_and_the_switch_completes():
    pair = make_pair()
    fake = FakeElbv2(pair, fail_on={1: "Throttling", 2: "Throttling"})
    wrapped = RetryingBotoClientWrapper(fake, AWSRetry.jittered_backoff(retries=5, delay=0.01, max_delay=0.05))
    result = switch(wrapped, pair, to_color="green")
    assert result["changed"] and result["verified"] and result["live_color"] == "green"
    assert fake.calls[:3] == [("modify_listener", PROD)] * 3  # two throttled, then done
    assert forward_weights(fake.state[PROD]) == {TG["green"]: 1}
    assert forward_weights(fake.state[TEST]) == {TG["blue"]: 1}


def test_verify_fails_clearly_when_a_change_did_not_take():
    pair = make_pair()
    fake = FakeElbv2(pair, ignore_writes=True)
    changes = plan_switch(pair, "green")
    apply_switch(fake, changes)
    with pytest.raises(CutoverError) as caught:
        verify_switch(fake, changes, timeout=0.05, delay=0.01)
    message = caught.value.message
    assert "the switch did not take effect" in message
    assert "production listener :80 rule 10 forwards to shop-blue 1, expected shop-green 1" in message


def test_switch_result_check_mode_and_timing():
    pair = make_pair()
    fake = FakeElbv2(pair)
    planned = switch(fake, pair, to_color="idle", check_mode=True)
    assert fake.calls == [] and planned["changed"] and planned["to_color"] == "green"
    assert planned["live_color"] == "green" and planned["switch_seconds"] == 0 and planned["verified"] is False
    ticks = iter([10.0, 10.5, 10.75])
    done = switch(fake, pair, to_color="green", clock=lambda: next(ticks))
    assert (done["apply_seconds"], done["verify_seconds"], done["switch_seconds"]) == (0.5, 0.25, 0.75)
    assert done["from_color"] == "blue" and done["pair"].live_color == "green"
    assert [f["weights"] for f in done["pair"].forwarders if f["role"] == "test"] == [{TG["blue"]: 1}]
    after = done["pair"]
    again = switch(FakeElbv2(after), after, to_color="green")
    assert again["changed"] is False and again["changes"] == [] and again["switch_seconds"] == 0
    weighted_result = switch(FakeElbv2(after), after, weights={"blue": 10, "green": 90})
    assert weighted_result["to_color"] is None and weighted_result["weights"] == {"blue": 10, "green": 90}
    with pytest.raises(CutoverError, match="give either to_color or weights"):
        switch(fake, pair, to_color="green", weights={"blue": 1, "green": 1})


# -- the published colour ---------------------------------------------------------------------
class FakeSsm:
    def __init__(self, value=None):
        self.value = value
        self.puts = []

    def get_parameter(self, Name, **_kwargs):
        if self.value is None:
            raise client_error("ParameterNotFound", "GetParameter")
        return {"Parameter": {"Name": Name, "Value": self.value}}

    def put_parameter(self, **kwargs):
        self.puts.append(kwargs)
        self.value = kwargs["Value"]


def test_publish_writes_only_when_different_and_creates_a_missing_parameter():
    ssm = FakeSsm("blue")
    assert publish_active_color(plain_client(ssm), "/cutover/shop/active-color", "green", check_mode=True) == (True, "blue")
    assert ssm.puts == []
    assert publish_active_color(plain_client(ssm), "/cutover/shop/active-color", "green") == (True, "blue")
    assert ssm.puts == [{"Name": "/cutover/shop/active-color", "Value": "green", "Type": "String", "Overwrite": True}]
    assert publish_active_color(plain_client(ssm), "/cutover/shop/active-color", "green") == (False, "green")
    assert len(ssm.puts) == 1
    missing = FakeSsm()
    assert publish_active_color(plain_client(missing), "/x", "blue", description="d") == (True, None)
    assert missing.puts[0]["Type"] == "String" and missing.puts[0]["Description"] == "d"
    with pytest.raises(CutoverError, match="must be one of blue, green"):
        publish_active_color(plain_client(missing), "/x", "red")
