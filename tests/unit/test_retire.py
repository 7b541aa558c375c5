"""Drain, standby, teardown and restore decisions from plain data; waits with fake clients and a fake clock."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import TAG_RETIRE_AFTER, TAG_STATE, CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.drain import (
    DRAIN_MARGIN,
    drain,
    plan_drain,
    refuse_if_serving,
    resolve_color,
    traffic_forwarders,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import Pair
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import (
    DEFAULT_TTL,
    compute_retire_after,
    mark_standby,
    parse_ttl,
    plan_restore,
    plan_standby,
    restore,
    select_teardown,
    teardown,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import WaitTimeout

from tests.unit.fake_clock import FakeClock

NOW = datetime.datetime(2030, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shop/1"
PROD = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/1/prod"
TEST = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/1/test"
RULE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/shop/1/prod/api"
TG = {color: f"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-{color}/{color}" for color in ("blue", "green")}


# -- TTL and retire-after ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (0, 0),
        (3600, 3600),
        ("3600", 3600),
        ("45s", 45),
        ("30m", 1800),
        ("2h", 7200),
        (" 2H ", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        (120.0, 120),
    ],
)
def test_parse_ttl(value, seconds):
    assert parse_ttl(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "ttl must not be negative, got -1"),
        ("-5", "ttl must not be negative, got '-5'"),
        ("-5m", "ttl must not be negative, got '-5m'"),
        ("abc", "ttl 'abc' is not a number of seconds or a duration like 30m, 2h, 1d"),
        ("", "ttl '' is not a number of seconds"),
        ("5x", "ttl '5x' is not a number of seconds"),
        ("2h-", "ttl '2h-' is not a number of seconds"),
        (1.5, "ttl must be a whole number of seconds, got 1.5"),
        (True, "ttl must be a number of seconds or a duration"),
        ([1], "ttl must be a number of seconds or a duration"),
        ("99999d", "is longer than the maximum of 3650 days"),
    ],
)
def test_parse_ttl_refuses(value, message):
    with pytest.raises(CutoverError) as caught:
        parse_ttl(value)
    assert message in caught.value.message


def test_retire_after_from_ttl_explicit_and_default():
    assert compute_retire_after(NOW, ttl=3600) == ("2030-01-01T13:00:00Z", "ttl")
    assert compute_retire_after(NOW, ttl=0) == ("2030-01-01T12:00:00Z", "ttl")
    assert compute_retire_after(NOW) == ("2030-01-02T12:00:00Z", "ttl")
    assert DEFAULT_TTL == 86400
    # An explicit time is normalised to UTC, seconds precision.
    assert compute_retire_after(NOW, retire_after="2030-01-05T10:00:00+02:00") == ("2030-01-05T08:00:00Z", "explicit")
    assert compute_retire_after(NOW, retire_after="2030-01-05T08:00:00") == ("2030-01-05T08:00:00Z", "explicit")
    with pytest.raises(CutoverError, match="mutually exclusive"):
        compute_retire_after(NOW, ttl=60, retire_after="2030-01-05T08:00:00Z")
    with pytest.raises(CutoverError, match="is not an ISO 8601 timestamp"):
        compute_retire_after(NOW, retire_after="tomorrow")


def test_retire_after_of_an_existing_standby_is_kept_unless_reset():
    existing = "2030-01-01T12:30:00Z"
    kept = compute_retire_after(NOW, ttl=3600, current_state="standby", current_retire_after=existing)
    assert kept == (existing, "kept")
    reset = compute_retire_after(NOW, ttl=3600, current_state="standby", current_retire_after=existing, reset=True)
    assert reset == ("2030-01-01T13:00:00Z", "ttl")
    # Only a standby keeps it: a retired colour marked standby again gets a fresh time.
    assert compute_retire_after(NOW, ttl=60, current_state="retired", current_retire_after=existing) == ("2030-01-01T12:01:00Z", "ttl")
    # An unreadable tag is replaced.
    assert compute_retire_after(NOW, ttl=60, current_state="standby", current_retire_after="soon") == ("2030-01-01T12:01:00Z", "ttl")
    # An explicit time replaces the existing one.
    assert compute_retire_after(NOW, retire_after="2030-02-01T00:00:00Z", current_state="standby", current_retire_after=existing)[0] == (
        "2030-02-01T00:00:00Z"
    )


def test_plan_standby_sets_only_what_differs():
    tags = {"cutover:service": "shop", "cutover:color": "blue"}
    first = plan_standby(tags, NOW, ttl=3600)
    assert first["to_set"] == {TAG_STATE: "standby", TAG_RETIRE_AFTER: "2030-01-01T13:00:00Z"}
    assert first["tags_after"] == {**tags, **first["to_set"]}
    later = NOW + datetime.timedelta(minutes=20)
    again = plan_standby(first["tags_after"], later, ttl=3600)
    assert again["to_set"] == {} and again["retire_after"] == "2030-01-01T13:00:00Z" and again["source"] == "kept"
    pushed = plan_standby(first["tags_after"], later, ttl=3600, reset=True)
    assert pushed["to_set"] == {TAG_RETIRE_AFTER: "2030-01-01T13:20:00Z"}


# -- teardown selection -----------------------------------------------------------------


def candidate(color="blue", state="standby", retire_after="2030-01-01T11:00:00Z", live=False, serving=()):
    return {"color": color, "state": state, "retire_after": retire_after, "live": live, "serving": list(serving)}


def decide(cand, force=False, now=NOW):
    [decision] = select_teardown([cand], now, force=force)
    return decision["action"], decision["reason"]


def test_expired_standby_is_torn_down():
    assert decide(candidate()) == ("teardown", "retire-after 2030-01-01T11:00:00Z has passed")
    # Exactly at the retire-after time counts as passed.
    assert decide(candidate(retire_after="2030-01-01T12:00:00Z"))[0] == "teardown"


def test_standby_before_its_ttl_is_skipped_naming_the_time_unless_forced():
    action, reason = decide(candidate(retire_after="2030-01-01T13:00:00Z"))
    assert action == "skip"
    assert "standby until 2030-01-01T13:00:00Z" in reason and "now 2030-01-01T12:00:00Z" in reason
    action, reason = decide(candidate(retire_after="2030-01-01T13:00:00Z"), force=True)
    assert (action, reason) == ("teardown", "forced before its retire-after time 2030-01-01T13:00:00Z")


def test_live_or_serving_colour_is_never_torn_down_even_forced():
    for force in (False, True):
        action, reason = decide(candidate(live=True), force=force)
        assert action == "skip" and "blue is the live colour" in reason
        forwarder = {"arn": RULE, "kind": "rule", "priority": "10", "weight": 1}
        action, reason = decide(candidate(serving=[forwarder]), force=force)
        assert action == "skip" and f"still receives production traffic through rule {RULE}" in reason


def test_colour_without_standby_tag_or_already_retired_is_skipped():
    assert decide(candidate(state=None, retire_after=None), force=True) == ("skip", "blue has no cutover:state tag: it is not a standby")
    assert decide(candidate(state="retired"), force=True) == ("skip", "blue is already retired")
    assert decide(candidate(state="active"), force=True) == ("skip", "blue has cutover:state=active, not standby")


def test_standby_without_valid_retire_after_needs_force():
    for bad in (None, "never"):
        action, reason = decide(candidate(retire_after=bad))
        assert action == "skip" and "no valid cutover:retire-after tag" in reason and "pass force" in reason
        assert decide(candidate(retire_after=bad), force=True)[0] == "teardown"


def test_selection_covers_each_colour():
    decisions = select_teardown([candidate("blue"), candidate("green", live=True)], NOW)
    assert [(d["color"], d["action"]) for d in decisions] == [("blue", "teardown"), ("green", "skip")]


# -- a hand-built pair -------------------------------------------------------------------


def forwarder(arn, kind, listener, role, weights, priority="default"):
    groups = [{"TargetGroupArn": TG[color], "Weight": weight} for color, weight in weights.items()]
    actions = [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]
    return {
        "arn": arn,
        "kind": kind,
        "listener_arn": listener,
        "role": role,
        "priority": priority,
        "actions": actions,
        "weights": {TG[color]: weight for color, weight in weights.items()},
    }


def target(instance, state="healthy", port=8080):
    return {"id": instance, "port": port, "state": state, "reason": None, "description": None}


def color_data(color, targets=(), desired=2, min_size=2, max_size=4, tags=None, instances=None):
    tags = {"cutover:service": "shop", "cutover:color": color, **(tags or {})}
    if instances is None:
        instances = [t["id"] for t in targets]
    return {
        "target_group": {"arn": TG[color], "name": f"shop-{color}"},
        "asg": {
            "name": f"shop-{color}",
            "min_size": min_size,
            "max_size": max_size,
            "desired_capacity": desired,
            "launch_template": {"id": "lt-1", "name": "cutover-shop", "version": "1"},
            "instances": [
                {"id": i, "lifecycle_state": "InService", "health_status": "Healthy", "launch_template_version": "1"} for i in instances
            ],
            "suspended_processes": [],
            "in_service": len(instances),
            "state": tags.get(TAG_STATE),
            "retire_after": tags.get(TAG_RETIRE_AFTER),
            "tags": tags,
        },
        "targets": list(targets),
        "health": {},
    }


def make_pair(default=None, rule=None, test=None, blue=None, green=None):
    """Green live by default; the /api/* rule and the test listener as given."""
    forwarders = [forwarder(PROD, "listener", PROD, "production", default or {"green": 1})]
    if rule is not None:
        forwarders.append(forwarder(RULE, "rule", PROD, "production", rule, priority="10"))
    if test is not None:
        forwarders.append(forwarder(TEST, "listener", TEST, "test", test))
    listeners = [
        {"arn": PROD, "port": 80, "protocol": "HTTP", "role": "production"},
        {"arn": TEST, "port": 8080, "protocol": "HTTP", "role": "test"},
    ]
    colors = {
        "blue": blue or color_data("blue", [target("i-b1"), target("i-b2")]),
        "green": green or color_data("green", [target("i-g1"), target("i-g2")]),
    }
    return Pair("shop", LB, colors, listeners, forwarders)


def test_drain_refused_while_a_rule_still_forwards_to_the_colour():
    # The default action has moved to green; the /api/* rule still sends blue 10 %.
    pair = make_pair(default={"green": 1}, rule={"blue": 10, "green": 90})
    assert pair.live_color == "green"
    assert [f["arn"] for f in traffic_forwarders(pair, "blue")] == [RULE]
    client = FakeElbv2(pair)
    with pytest.raises(CutoverError) as caught:
        drain(client, pair, "blue")
    assert "refusing to drain blue of 'shop'" in caught.value.message
    assert f"rule {RULE} (priority 10, weight 10)" in caught.value.message
    assert caught.value.details["forwarders"][0]["arn"] == RULE
    assert client.calls == []  # nothing read, nothing changed


def test_drain_refuses_the_live_colour_naming_its_forwarders():
    pair = make_pair(rule={"green": 1})
    with pytest.raises(CutoverError) as caught:
        refuse_if_serving(pair, "green", "drain")
    message = caught.value.message
    assert "green of 'shop': it is the live colour" in message
    assert f"listener {PROD} (default action, weight 1)" in message and f"rule {RULE}" in message


def test_drain_allowed_when_rule_weight_is_zero_and_test_listener_is_reported():
    pair = make_pair(rule={"blue": 0, "green": 1}, test={"blue": 1})
    refuse_if_serving(pair, "blue", "drain")  # no exception
    client = FakeElbv2(pair, delay=0)
    result = drain(client, pair, "blue", check_mode=True)
    assert result["changed"] is True and result["drained"] == ["i-b1", "i-b2"]
    assert [f["arn"] for f in result["test_forwarders"]] == [TEST]
    assert "the test listener still forwards to blue" in result["warnings"][0]
    assert [name for name, _ in client.calls] == ["describe_target_group_attributes"]  # check mode: no deregistration


def test_resolve_color():
    pair = make_pair()
    assert resolve_color(pair, "idle") == "blue" and resolve_color(pair, "green") == "green"
    with pytest.raises(CutoverError, match="color must be one of blue, green, idle, got 'red'"):
        resolve_color(pair, "red")


# -- fakes ------------------------------------------------------------------------------


class FakeElbv2:
    """Targets per group as lists of states per describe call; the last list repeats."""

    def __init__(self, pair, delay=300, health=None, listeners=None, rules=None):
        self.pair = pair
        self.delay = delay
        self.health = health or {}
        self.calls = []
        self.listeners = listeners
        self.rules = rules or {}

    def _record(self, name, **kwargs):
        assert kwargs.pop("aws_retry", None) is True, name
        self.calls.append((name, kwargs))

    def describe_target_group_attributes(self, **kwargs):
        self._record("describe_target_group_attributes", **kwargs)
        return {
            "Attributes": [
                {"Key": "stickiness.enabled", "Value": "false"},
                {"Key": "deregistration_delay.timeout_seconds", "Value": str(self.delay)},
            ]
        }

    def deregister_targets(self, **kwargs):
        self._record("deregister_targets", **kwargs)
        return {}

    def register_targets(self, **kwargs):
        self._record("register_targets", **kwargs)
        return {}

    def describe_target_health(self, TargetGroupArn, **kwargs):
        self._record("describe_target_health", TargetGroupArn=TargetGroupArn, **kwargs)
        sequence = self.health[TargetGroupArn]
        current = sequence.pop(0) if len(sequence) > 1 else sequence[0]
        return {
            "TargetHealthDescriptions": [
                {"Target": {"Id": instance, "Port": 8080}, "TargetHealth": {"State": state}} for instance, state in current.items()
            ]
        }

    def get_paginator(self, name):
        assert name in ("describe_listeners", "describe_rules")
        fake = self

        class Pages:  # what botocore's paginate() returns, as far as amazon.aws's paginated query uses it
            def __init__(self, kwargs):
                self.kwargs = kwargs

            def build_full_result(self):
                if name == "describe_rules":
                    return {"Rules": fake.rules.get(self.kwargs["ListenerArn"], [])}
                return {"Listeners": fake.listeners}

        class Paginator:
            def paginate(self, **kwargs):
                fake.calls.append((name, kwargs))
                return Pages(kwargs)

        return Paginator()

    def describe_rules(self, ListenerArn, **kwargs):
        self._record("describe_rules", ListenerArn=ListenerArn, **kwargs)
        return {"Rules": self.rules.get(ListenerArn, [])}


class FakeAutoscaling:
    """Group states per describe call (``{instance: lifecycle state}``, version 1); the last one repeats."""

    def __init__(self, instances=None, activities=()):
        self.instances = instances or []
        self.activities = list(activities)
        self.calls = []

    def _record(self, name, **kwargs):
        assert kwargs.pop("aws_retry", None) is True, name
        self.calls.append((name, kwargs))

    def create_or_update_tags(self, **kwargs):
        self._record("create_or_update_tags", **kwargs)

    def delete_tags(self, **kwargs):
        self._record("delete_tags", **kwargs)

    def update_auto_scaling_group(self, **kwargs):
        self._record("update_auto_scaling_group", **kwargs)

    def describe_auto_scaling_groups(self, **kwargs):
        self._record("describe_auto_scaling_groups", **kwargs)
        current = self.instances.pop(0) if len(self.instances) > 1 else self.instances[0]
        template = {"LaunchTemplateId": "lt-1", "Version": "1"}
        instances = [
            {"InstanceId": i, "LifecycleState": lifecycle, "HealthStatus": "Healthy", "LaunchTemplate": template}
            for i, lifecycle in current.items()
        ]
        return {
            "AutoScalingGroups": [
                {
                    "AutoScalingGroupName": kwargs["AutoScalingGroupNames"][0],
                    "MinSize": 2,
                    "MaxSize": 4,
                    "DesiredCapacity": 2,
                    "LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "1"},
                    "Instances": instances,
                }
            ]
        }

    def describe_scaling_activities(self, **kwargs):
        self._record("describe_scaling_activities", **kwargs)
        return {"Activities": self.activities}


def listener(arn, color):
    return {"ListenerArn": arn, "DefaultActions": [{"Type": "forward", "TargetGroupArn": TG[color]}]}


# -- drain wait -------------------------------------------------------------------------


def test_drain_waits_while_targets_are_draining_then_gone():
    pair = make_pair()
    sequence = [
        {"i-b1": "draining", "i-b2": "draining"},
        {"i-b1": "draining", "i-b2": "draining"},
        {"i-b1": "draining"},
        {},
    ]
    client = FakeElbv2(pair, delay=30, health={TG["blue"]: sequence})
    clock = FakeClock(1000.0)
    progress = []
    result = drain(client, pair, "blue", progress=progress.append, clock=clock.clock, sleep=clock.sleep)
    assert result["changed"] is True
    assert result["drained"] == ["i-b1", "i-b2"] and result["deregistration_delay"] == 30
    deregister = [kwargs for name, kwargs in client.calls if name == "deregister_targets"]
    assert deregister == [{"TargetGroupArn": TG["blue"], "Targets": [{"Id": "i-b1", "Port": 8080}, {"Id": "i-b2", "Port": 8080}]}]
    assert len([name for name, _ in client.calls if name == "describe_target_health"]) == 4
    # Three back-off sleeps (1, 1.5, 2.25 s of fake time), no real waiting.
    assert clock.sleeps == [1.0, 1.5, 2.25]
    assert result["waited"] == pytest.approx(4.75)


def test_drain_times_out_after_delay_plus_margin_naming_the_draining_targets():
    pair = make_pair()
    client = FakeElbv2(pair, delay=20, health={TG["blue"]: [{"i-b1": "draining", "i-b2": "draining"}]})
    clock = FakeClock(1000.0)
    progress = []
    with pytest.raises(WaitTimeout) as caught:
        drain(client, pair, "blue", progress=progress.append, clock=clock.clock, sleep=clock.sleep)
    assert clock.now - 1000.0 == pytest.approx(20 + DRAIN_MARGIN)
    assert "i-b1 (draining), i-b2 (draining)" in caught.value.message
    assert progress and "still waiting for targets of" in progress[0]


def test_drain_does_not_deregister_targets_already_draining():
    blue = color_data("blue", [target("i-b1", "draining"), target("i-b2")])
    pair = make_pair(blue=blue)
    assert [t["id"] for t in plan_drain(blue["targets"])["deregister"]] == ["i-b2"]
    client = FakeElbv2(pair, delay=5, health={TG["blue"]: [{"i-b1": "draining"}, {}]})
    clock = FakeClock(1000.0)
    result = drain(client, pair, "blue", clock=clock.clock, sleep=clock.sleep)
    assert result["drained"] == ["i-b2"] and result["already_draining"] == ["i-b1"]
    assert [kwargs["Targets"] for name, kwargs in client.calls if name == "deregister_targets"] == [[{"Id": "i-b2", "Port": 8080}]]


def test_drain_with_nothing_registered_changes_nothing():
    pair = make_pair(blue=color_data("blue", []))
    client = FakeElbv2(pair)
    result = drain(client, pair, "blue")
    assert result["changed"] is False and result["drained"] == [] and result["waited"] == 0
    assert client.calls == []


def test_drain_without_wait_and_short_timeout_warning():
    pair = make_pair()
    client = FakeElbv2(pair, delay=300, health={TG["blue"]: [{}]})
    result = drain(client, pair, "blue", wait=False)
    assert result["waited"] == 0
    assert "describe_target_health" not in [name for name, _ in client.calls]
    clock = FakeClock(1000.0)
    result = drain(FakeElbv2(pair, delay=300, health={TG["blue"]: [{}]}), pair, "blue", timeout=10, clock=clock.clock, sleep=clock.sleep)
    assert "shorter than the deregistration delay" in result["warnings"][0]
    with pytest.raises(CutoverError, match="timeout must be zero or more seconds"):
        drain(FakeElbv2(pair), pair, "blue", timeout=-1)


# -- standby ----------------------------------------------------------------------------


def test_mark_standby_tags_without_propagation_and_refuses_live():
    pair = make_pair()
    autoscaling = FakeAutoscaling()
    result = mark_standby(autoscaling, pair, "idle", now=NOW, ttl="1h")
    assert result["color"] == "blue" and result["changed"] is True and result["retire_after"] == "2030-01-01T13:00:00Z"
    [(name, kwargs)] = autoscaling.calls
    assert name == "create_or_update_tags"
    assert kwargs["Tags"] == [
        {
            "ResourceId": "shop-blue",
            "ResourceType": "auto-scaling-group",
            "Key": TAG_RETIRE_AFTER,
            "Value": "2030-01-01T13:00:00Z",
            "PropagateAtLaunch": False,
        },
        {"ResourceId": "shop-blue", "ResourceType": "auto-scaling-group", "Key": TAG_STATE, "Value": "standby", "PropagateAtLaunch": False},
    ]
    with pytest.raises(CutoverError, match="refusing to mark standby green of 'shop': it is the live colour"):
        mark_standby(autoscaling, pair, "green", now=NOW, ttl=60)
    with pytest.raises(CutoverError, match="ttl must not be negative"):
        mark_standby(autoscaling, pair, "blue", now=NOW, ttl=-5)
    assert len(autoscaling.calls) == 1


# -- teardown with fakes ----------------------------------------------------------------


def standby_pair(retire_after="2030-01-01T11:00:00Z"):
    tags = {TAG_STATE: "standby", TAG_RETIRE_AFTER: retire_after}
    return make_pair(blue=color_data("blue", [target("i-b1")], tags=tags))


def test_teardown_refuses_when_the_live_colour_changed_since_discovery():
    pair = standby_pair()
    # Someone switched production back to blue after the pair was read.
    client = FakeElbv2(pair, listeners=[listener(PROD, "blue"), listener(TEST, "blue")])
    autoscaling = FakeAutoscaling()
    with pytest.raises(CutoverError, match="the live colour changed from green to blue since the pair was read"):
        teardown(client, autoscaling, pair, now=NOW)
    assert [name for name, _ in client.calls] == ["describe_listeners", "describe_rules"]
    assert autoscaling.calls == []


def test_teardown_refuses_when_a_rule_now_forwards_to_the_standby():
    pair = standby_pair()
    rule = {"RuleArn": RULE, "Priority": "10", "Actions": [{"Type": "forward", "TargetGroupArn": TG["blue"]}]}
    client = FakeElbv2(pair, listeners=[listener(PROD, "green")], rules={PROD: [rule]})
    autoscaling = FakeAutoscaling()
    with pytest.raises(CutoverError, match="refusing to tear down blue of 'shop': production traffic goes to it through rule"):
        teardown(client, autoscaling, pair, now=NOW)
    assert "deregister_targets" not in [name for name, _ in client.calls] and autoscaling.calls == []


def test_teardown_drains_then_scales_to_zero_keeping_max_then_tags_retired():
    pair = standby_pair()
    client = FakeElbv2(pair, delay=5, listeners=[listener(PROD, "green"), listener(TEST, "green")], health={TG["blue"]: [{}]})
    autoscaling = FakeAutoscaling()
    clock = FakeClock(1000.0)
    result = teardown(client, autoscaling, pair, now=NOW, clock=clock.clock, sleep=clock.sleep)
    blue, green = result["by_color"]["blue"], result["by_color"]["green"]
    assert blue["action"] == "torn_down" and blue["drained"] == ["i-b1"] and blue["size_after"]["max_size"] == 4
    assert green["action"] == "skipped" and "live colour" in green["reason"]
    assert result["changed"] is True
    assert [name for name, _ in autoscaling.calls] == ["update_auto_scaling_group", "create_or_update_tags"]
    assert autoscaling.calls[0][1] == {"AutoScalingGroupName": "shop-blue", "MinSize": 0, "DesiredCapacity": 0}
    assert autoscaling.calls[1][1]["Tags"][0]["Key"] == TAG_STATE and autoscaling.calls[1][1]["Tags"][0]["Value"] == "retired"
    # The test listener's rules are never read; deregistration came before the scale-in.
    assert ("describe_rules", {"ListenerArn": TEST}) not in client.calls


def test_teardown_before_ttl_touches_nothing():
    pair = standby_pair(retire_after="2030-01-02T00:00:00Z")
    client = FakeElbv2(pair)
    autoscaling = FakeAutoscaling()
    result = teardown(client, autoscaling, pair, now=NOW)
    assert result["changed"] is False
    assert result["by_color"]["blue"]["action"] == "skipped" and "2030-01-02T00:00:00Z" in result["by_color"]["blue"]["reason"]
    assert client.calls == [] and autoscaling.calls == []


# -- restore ----------------------------------------------------------------------------


def test_plan_restore():
    retired = color_data("blue", [], desired=0, min_size=0, max_size=1, tags={TAG_STATE: "retired", TAG_RETIRE_AFTER: "x"})
    plan = plan_restore(retired["asg"], retired["targets"], 2)
    assert plan["update"] == {"MinSize": 2, "DesiredCapacity": 2, "MaxSize": 2}
    assert plan["untag"] == [TAG_STATE, TAG_RETIRE_AFTER] and plan["ready"] is False and plan["refusal"] is None
    assert TAG_STATE not in plan["tags_after"] and plan["tags_after"]["cutover:color"] == "blue"
    restored = color_data("blue", [target("i-1"), target("i-2")])
    plan = plan_restore(restored["asg"], restored["targets"], 2)
    assert (plan["update"], plan["untag"], plan["register"], plan["ready"]) == ({}, [], [], True)
    # A drained standby: running, but deregistered.
    drained = color_data("blue", [], instances=["i-1", "i-2"], tags={TAG_STATE: "standby"})
    assert plan_restore(drained["asg"], drained["targets"], 2)["register"] == ["i-1", "i-2"]
    # A drain in flight: the draining targets are not registered; they are registered again.
    draining = color_data("blue", [target("i-1", "draining"), target("i-2", "draining")], instances=["i-1", "i-2"])
    plan = plan_restore(draining["asg"], draining["targets"], 2)
    assert plan["register"] == ["i-1", "i-2"] and plan["ready"] is False
    unhealthy = color_data("blue", [target("i-1"), target("i-2", "unhealthy")])
    assert plan_restore(unhealthy["asg"], unhealthy["targets"], 2)["ready"] is False
    foreign = color_data("blue", [target("i-1"), target("i-2"), target("i-foreign")], instances=["i-1", "i-2"])
    plan = plan_restore(foreign["asg"], foreign["targets"], 2)
    assert plan["ready"] is False and plan["foreign"] == ["i-foreign:8080"]


def test_what_cannot_be_restored_is_said_before_anything_changes():
    off = color_data("blue", [], desired=0, min_size=0, max_size=0, tags={TAG_STATE: "retired"})
    assert "has a maximum size of 0" in plan_restore(off["asg"], [], 2)["refusal"]
    pair = make_pair(blue=off)
    client, autoscaling = FakeElbv2(pair), FakeAutoscaling()
    with pytest.raises(CutoverError, match=r"cannot restore blue of 'shop': Auto Scaling group shop-blue has a maximum size of 0.*Nothing"):
        restore(client, autoscaling, pair, "blue")
    assert client.calls == [] and autoscaling.calls == []
    frozen = color_data("blue", [target("i-1")], desired=1, min_size=1, instances=["i-1"], tags={TAG_STATE: "standby"})
    frozen["asg"]["suspended_processes"] = ["Launch"]
    pair = make_pair(blue=frozen)
    with pytest.raises(CutoverError, match=r"the Launch process of Auto Scaling group shop-blue is suspended.*1 instance\(s\) it lacks"):
        restore(client, autoscaling, pair, "blue", capacity=2)
    assert autoscaling.calls == []
    # Suspended Launch does not matter when no instance is missing.
    assert plan_restore(frozen["asg"], frozen["targets"], 1)["refusal"] is None


def test_a_foreign_target_stops_the_restore_before_any_change_unless_deregistered():
    blue = color_data("blue", [target("i-1"), target("i-2"), target("i-foreign")], instances=["i-1", "i-2"], tags={TAG_STATE: "standby"})
    pair = make_pair(blue=blue)
    client, autoscaling = FakeElbv2(pair), FakeAutoscaling()
    with pytest.raises(CutoverError, match=r"not instances of Auto Scaling group shop-blue: i-foreign:8080 healthy"):
        restore(client, autoscaling, pair, "blue")
    assert client.calls == [] and autoscaling.calls == []
    health = {
        TG["blue"]: [
            {"i-1": "healthy", "i-2": "healthy", "i-foreign": "healthy"},
            {"i-1": "healthy", "i-2": "healthy", "i-foreign": "draining"},
        ]
    }
    client = FakeElbv2(pair, health=health)
    autoscaling = FakeAutoscaling([{"i-1": "InService", "i-2": "InService"}])
    clock = FakeClock(1000.0)
    result = restore(client, autoscaling, pair, "blue", deregister_foreign=True, clock=clock.clock, sleep=clock.sleep)
    # Deregistered at the first look, draining at the second: the restore goes on with the colour's own instances.
    assert result["deregistered"] == ["i-foreign:8080"] and result["health"]["healthy"] == 2 and result["changed"]
    assert [kwargs["Targets"] for name, kwargs in client.calls if name == "deregister_targets"] == [[{"Id": "i-foreign", "Port": 8080}]]


def test_restore_waits_in_service_then_healthy_then_clears_tags():
    blue = color_data("blue", [], desired=0, min_size=0, tags={TAG_STATE: "retired", TAG_RETIRE_AFTER: "2030-01-01T11:00:00Z"})
    pair = make_pair(blue=blue)
    health = {
        TG["blue"]: [
            {},
            {"i-n1": "initial", "i-n2": "initial"},
            {"i-n1": "healthy", "i-n2": "initial"},
            {"i-n1": "healthy", "i-n2": "healthy"},
        ]
    }
    client = FakeElbv2(pair, health=health)
    autoscaling = FakeAutoscaling(
        [{"i-n1": "Pending"}, {"i-n1": "InService", "i-n2": "Pending"}, {"i-n1": "InService", "i-n2": "InService"}]
    )
    clock = FakeClock(1000.0)
    result = restore(client, autoscaling, pair, "blue", clock=clock.clock, sleep=clock.sleep)
    assert result["capacity"] == 2  # the live colour's desired capacity
    names = [name for name, _ in autoscaling.calls]
    # Three looks until InService; the health wait reads the group on its first look and on the deciding one.
    assert names == ["update_auto_scaling_group"] + ["describe_auto_scaling_groups"] * 5 + ["delete_tags"]
    assert autoscaling.calls[0][1] == {"AutoScalingGroupName": "shop-blue", "MinSize": 2, "DesiredCapacity": 2}
    assert {t["Key"] for t in autoscaling.calls[-1][1]["Tags"]} == {TAG_STATE, TAG_RETIRE_AFTER}
    # The first health read found nothing registered: both InService instances were registered again.
    assert [kwargs["Targets"] for name, kwargs in client.calls if name == "register_targets"] == [[{"Id": "i-n1"}, {"Id": "i-n2"}]]
    assert result["registered"] == ["i-n1", "i-n2"]
    assert result["health"]["healthy"] == 2 and result["waited"]["in_service"] > 0 and result["waited"]["healthy"] > 0


def test_a_rollback_during_a_drain_registers_the_draining_targets_again_and_returns_quickly():
    blue = color_data("blue", [target("i-b1", "draining"), target("i-b2", "draining")], instances=["i-b1", "i-b2"])
    blue["asg"]["tags"][TAG_STATE] = "standby"
    pair = make_pair(blue=blue)
    health = {
        TG["blue"]: [
            {"i-b1": "draining", "i-b2": "draining"},
            {"i-b1": "initial", "i-b2": "initial"},
            {"i-b1": "healthy", "i-b2": "healthy"},
        ]
    }
    client = FakeElbv2(pair, health=health)
    autoscaling = FakeAutoscaling([{"i-b1": "InService", "i-b2": "InService"}])
    clock = FakeClock(1000.0)
    result = restore(client, autoscaling, pair, "blue", wait_timeout=600, clock=clock.clock, sleep=clock.sleep)
    assert [kwargs["Targets"] for name, kwargs in client.calls if name == "register_targets"] == [
        [{"Id": "i-b1", "Port": 8080}, {"Id": "i-b2", "Port": 8080}]
    ]
    assert result["registered"] == ["i-b1", "i-b2"] and result["health"]["healthy"] == 2
    assert "update_auto_scaling_group" not in [name for name, _ in autoscaling.calls]
    assert clock.now - 1000.0 < 10


def test_restore_refuses_live_and_bad_capacity_and_fails_early_naming_unhealthy_targets():
    pair = make_pair(blue=color_data("blue", [], desired=0, min_size=0, tags={TAG_STATE: "retired"}))
    with pytest.raises(CutoverError, match="green is already the live colour of 'shop'"):
        restore(FakeElbv2(pair), FakeAutoscaling(), pair, "green")
    with pytest.raises(CutoverError, match="capacity must be a whole number of at least 1, got 0"):
        restore(FakeElbv2(pair), FakeAutoscaling(), pair, "blue", capacity=0)
    client = FakeElbv2(pair, health={TG["blue"]: [{"i-n1": "unhealthy", "i-n2": "healthy"}]})
    autoscaling = FakeAutoscaling([{"i-n1": "InService", "i-n2": "InService"}])
    clock = FakeClock(1000.0)
    with pytest.raises(WaitTimeout, match=r"i-n1:8080 unhealthy"):
        restore(client, autoscaling, pair, "blue", wait_timeout=30, clock=clock.clock, sleep=clock.sleep)
    assert "delete_tags" not in [name for name, _ in autoscaling.calls]  # tags stay until the colour is healthy
    # With a long timeout, an instance that stays unhealthy ends the restore after the health check's grace, not the timeout.
    client = FakeElbv2(pair, health={TG["blue"]: [{"i-n1": "unhealthy", "i-n2": "healthy"}]})
    clock = FakeClock(1000.0)
    with pytest.raises(CutoverError, match=r"stayed unhealthy for 210 s or longer: i-n1:8080 unhealthy") as caught:
        restore(client, FakeAutoscaling([{"i-n1": "InService", "i-n2": "InService"}]), pair, "blue", clock=clock.clock, sleep=clock.sleep)
    assert not isinstance(caught.value, WaitTimeout) and clock.now - 1000.0 < 300


def test_instances_that_cannot_launch_end_the_restore_early_with_the_reason():
    pair = make_pair(blue=color_data("blue", [], desired=0, min_size=0, tags={TAG_STATE: "retired"}))
    failed = [{"StatusCode": "Failed", "StatusMessage": "The image id 'ami-gone' does not exist"}] * 2
    autoscaling = FakeAutoscaling([{}], activities=failed)
    clock = FakeClock(1000.0)
    with pytest.raises(CutoverError, match="cannot launch instances: The image id 'ami-gone' does not exist"):
        restore(FakeElbv2(pair), autoscaling, pair, "blue", clock=clock.clock, sleep=clock.sleep)
    assert clock.now - 1000.0 < 120


def test_restore_check_mode_changes_nothing():
    pair = make_pair(blue=color_data("blue", [], desired=0, min_size=0, tags={TAG_STATE: "retired"}))
    client, autoscaling = FakeElbv2(pair), FakeAutoscaling()
    result = restore(client, autoscaling, pair, "idle", check_mode=True)
    assert result["changed"] is True and result["size_after"]["desired_capacity"] == 2
    assert client.calls == [] and autoscaling.calls == []
