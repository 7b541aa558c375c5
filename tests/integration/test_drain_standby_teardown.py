"""drain, standby, teardown and restore against the sandbox, green live; the steps run in order.

Setup (boto3 only): green scaled to 2 and made live (production listener and
the /api/* rule forward to green), the test listener pointed at blue, the
idle colour, as it is between a rollout and its switch.
"""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.health import wait_healthy
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import plain_client

from .ansible_harness import run_module, run_playbook

DRAIN = "cutover.bluegreen.drain"
STANDBY = "cutover.bluegreen.standby"
TEARDOWN = "cutover.bluegreen.teardown"
STATE_TAGS = ("cutover:state", "cutover:retire-after")


def forward(arn):
    return [{"Type": "forward", "TargetGroupArn": arn}]


@pytest.fixture(scope="module")
def pair(provisioned, sandbox):
    """Green live with 2 healthy targets; blue idle with 2 (still registered); test listener on blue."""
    outputs, aws = provisioned
    tgs = outputs["target_group_arns"]
    aws.autoscaling.update_auto_scaling_group(AutoScalingGroupName="shop-green", MinSize=2, DesiredCapacity=2)
    aws.elbv2.modify_listener(ListenerArn=outputs["production_listener_arn"], DefaultActions=forward(tgs["green"]))
    for rule in outputs["rule_arns"]:
        aws.elbv2.modify_rule(RuleArn=rule, Actions=forward(tgs["green"]))
    aws.elbv2.modify_listener(ListenerArn=outputs["test_listener_arn"], DefaultActions=forward(tgs["blue"]))
    # green's new targets pass their health checks first, as on an ALB (blue's are healthy already)
    elbv2, autoscaling = plain_client(aws.elbv2), plain_client(aws.autoscaling)
    wait_healthy(elbv2, autoscaling, tgs["green"], "shop-green", min_healthy=2, timeout=60, delay=0.5, max_delay=2.0)
    state = snapshot(aws, outputs)
    assert state["green"]["targets"] == [(i, "healthy") for i in state["green"]["in_service"]] and len(state["green"]["in_service"]) == 2
    assert len(state["blue"]["targets"]) == 2
    return outputs, aws, sandbox.endpoint


def snapshot(aws, outputs):
    """Everything these modules may change: sizes, tags, instances, targets, and where traffic goes."""
    state = {}
    groups = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["shop-blue", "shop-green"])["AutoScalingGroups"]
    for group in groups:
        color = group["AutoScalingGroupName"].split("-")[1]
        health = aws.elbv2.describe_target_health(TargetGroupArn=outputs["target_group_arns"][color])["TargetHealthDescriptions"]
        state[color] = {
            "size": (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]),
            "launch_template": group["LaunchTemplate"],
            "tags": {t["Key"]: (t["Value"], t["PropagateAtLaunch"]) for t in group["Tags"] if t["Key"] in STATE_TAGS},
            "in_service": sorted(i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"),
            "targets": sorted((d["Target"]["Id"], d["TargetHealth"]["State"]) for d in health),
        }
    listeners = aws.elbv2.describe_listeners(ListenerArns=[outputs["production_listener_arn"], outputs["test_listener_arn"]])["Listeners"]
    state["listeners"] = sorted((listener["ListenerArn"], listener["DefaultActions"][0]["TargetGroupArn"]) for listener in listeners)
    rules = aws.elbv2.describe_rules(RuleArns=outputs["rule_arns"])["Rules"]
    state["rules"] = sorted((rule["RuleArn"], rule["Actions"][0]["TargetGroupArn"]) for rule in rules)
    return state


def ok(result):
    assert not result.get("failed"), result
    return result


def parse(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_drain_blue_check_mode_real_run_and_second_run(pair):
    outputs, aws, endpoint = pair
    before = snapshot(aws, outputs)
    blue_ids = [target for target, _ in before["blue"]["targets"]]

    checked = ok(run_module(DRAIN, {"service": "shop", "color": "blue"}, endpoint, check=True, diff=True))
    assert checked["changed"] is True and sorted(checked["drained"]) == blue_ids
    assert sorted(t["id"] for t in checked["diff"]["before"]["targets"]) == blue_ids and checked["diff"]["after"]["targets"] == []
    assert snapshot(aws, outputs) == before  # check mode deregistered nothing

    drained = ok(run_module(DRAIN, {"service": "shop", "color": "idle"}, endpoint, diff=True))
    assert drained["changed"] is True and drained["color"] == "blue" and sorted(drained["drained"]) == blue_ids
    assert drained["deregistration_delay"] == 5
    # The test listener still points at blue: allowed, and said.
    assert [f["arn"] for f in drained["test_forwarders"]] == [outputs["test_listener_arn"]]
    assert any("the test listener still forwards to blue" in warning for warning in drained.get("warnings", []))
    after = snapshot(aws, outputs)
    assert after["blue"]["targets"] == []
    # Only the targets went: blue keeps its instances, green and the listeners are untouched.
    assert after["blue"]["size"] == before["blue"]["size"] and after["blue"]["in_service"] == before["blue"]["in_service"]
    assert {k: v for k, v in after.items() if k != "blue"} == {k: v for k, v in before.items() if k != "blue"}

    again = ok(run_module(DRAIN, {"service": "shop", "color": "blue"}, endpoint))
    assert again["changed"] is False and again["drained"] == []
    assert snapshot(aws, outputs) == after


def test_drain_of_the_live_colour_is_refused_and_changes_nothing(pair):
    outputs, aws, endpoint = pair
    before = snapshot(aws, outputs)
    for check in (True, False):
        result = run_module(DRAIN, {"service": "shop", "color": "green"}, endpoint, check=check)
        assert result.get("failed"), result
        assert "refusing to drain green of 'shop': it is the live colour" in result["msg"]
        assert outputs["production_listener_arn"] in result["msg"] and outputs["rule_arns"][0] in result["msg"]
        assert {f["kind"] for f in result["forwarders"]} == {"listener", "rule"}
    assert snapshot(aws, outputs) == before


def test_restore_registers_a_drained_standby_again(pair):
    """A drained colour whose instances still run: restore puts them back into its target group."""
    outputs, aws, endpoint = pair
    before = snapshot(aws, outputs)
    assert before["blue"]["targets"] == [] and len(before["blue"]["in_service"]) == 2

    checked = ok(run_module(STANDBY, {"service": "shop", "color": "blue", "state": "restored"}, endpoint, check=True))
    assert checked["changed"] is True and sorted(checked["registered"]) == before["blue"]["in_service"]
    assert snapshot(aws, outputs) == before

    restored = ok(run_module(STANDBY, {"service": "shop", "color": "blue", "state": "restored", "wait_timeout": 60}, endpoint))
    assert restored["changed"] is True and restored["capacity"] == 2 and sorted(restored["registered"]) == before["blue"]["in_service"]
    after = snapshot(aws, outputs)
    assert after["blue"]["targets"] == [(i, "healthy") for i in before["blue"]["in_service"]]
    assert after["blue"]["size"] == before["blue"]["size"]


def test_standby_blue_with_a_ttl(pair):
    outputs, aws, endpoint = pair
    before = snapshot(aws, outputs)
    args = {"service": "shop", "color": "blue", "ttl": "1h"}

    checked = ok(run_module(STANDBY, args, endpoint, check=True, diff=True))
    assert checked["changed"] is True and checked["diff"]["after"]["tags"]["cutover:state"] == "standby"
    assert snapshot(aws, outputs) == before

    started = datetime.datetime.now(datetime.UTC)
    marked = ok(run_module(STANDBY, args, endpoint, diff=True))
    assert marked["changed"] is True and marked["retire_after_source"] == "ttl"
    retire_after = parse(marked["retire_after"])
    assert started + datetime.timedelta(minutes=59) <= retire_after <= started + datetime.timedelta(minutes=62)
    assert "cutover:state" not in marked["tags_before"] and marked["tags_after"]["cutover:retire-after"] == marked["retire_after"]
    after = snapshot(aws, outputs)
    assert after["blue"]["tags"] == {"cutover:state": ("standby", False), "cutover:retire-after": (marked["retire_after"], False)}
    assert {k: v for k, v in after.items() if k != "blue"} == {k: v for k, v in before.items() if k != "blue"}
    assert after["blue"]["targets"] == before["blue"]["targets"]  # kept warm

    again = ok(run_module(STANDBY, args, endpoint))
    assert again["changed"] is False and again["retire_after"] == marked["retire_after"] and again["retire_after_source"] == "kept"
    assert snapshot(aws, outputs) == after

    refused = run_module(STANDBY, {"service": "shop", "color": "green", "ttl": 60}, endpoint)
    assert refused.get("failed") and "refusing to mark standby green of 'shop': it is the live colour" in refused["msg"]
    assert snapshot(aws, outputs) == after


def blue_retire_after(aws):
    [group] = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["shop-blue"])["AutoScalingGroups"]
    return {t["Key"]: t["Value"] for t in group["Tags"]}["cutover:retire-after"]


def test_teardown_before_the_ttl_skips_naming_the_time(pair):
    outputs, aws, endpoint = pair
    before = snapshot(aws, outputs)
    retire_after = blue_retire_after(aws)
    for check in (True, False):
        result = ok(run_module(TEARDOWN, {"service": "shop"}, endpoint, check=check))
        assert result["changed"] is False
        assert result["by_color"]["blue"]["action"] == "skipped" and retire_after in result["by_color"]["blue"]["reason"]
        assert result["by_color"]["green"]["action"] == "skipped" and "live colour" in result["by_color"]["green"]["reason"]
        assert retire_after in result["msg"]
    assert snapshot(aws, outputs) == before


def test_teardown_after_the_ttl_drains_scales_to_zero_and_retires(pair):
    outputs, aws, endpoint = pair
    before = snapshot(aws, outputs)
    blue_ids = [target for target, _ in before["blue"]["targets"]]
    assert len(blue_ids) == 2
    later = iso(parse(blue_retire_after(aws)) + datetime.timedelta(minutes=1))

    checked = ok(run_module(TEARDOWN, {"service": "shop", "now": later}, endpoint, check=True, diff=True))
    blue = checked["by_color"]["blue"]
    assert checked["changed"] is True and blue["action"] == "would_tear_down" and sorted(blue["drained"]) == blue_ids
    assert blue["size_after"] == {"min_size": 0, "max_size": 4, "desired_capacity": 0}
    assert checked["diff"]["before"]["blue"]["size"]["desired_capacity"] == 2 and checked["diff"]["after"]["blue"]["targets"] == []
    assert snapshot(aws, outputs) == before

    torn = ok(run_module(TEARDOWN, {"service": "shop", "now": later}, endpoint))
    blue = torn["by_color"]["blue"]
    assert torn["changed"] is True and torn["live_color"] == "green"
    assert blue["action"] == "torn_down" and sorted(blue["drained"]) == blue_ids and "has passed" in blue["reason"]
    assert torn["by_color"]["green"]["action"] == "skipped"
    after = snapshot(aws, outputs)
    assert after["blue"]["targets"] == [] and after["blue"]["in_service"] == []
    assert after["blue"]["size"] == (0, 4, 0)  # maximum kept
    assert after["blue"]["launch_template"] == before["blue"]["launch_template"]  # group and template kept
    assert after["blue"]["tags"]["cutover:state"] == ("retired", False)
    assert {k: v for k, v in after.items() if k != "blue"} == {k: v for k, v in before.items() if k != "blue"}

    again = ok(run_module(TEARDOWN, {"service": "shop", "now": later}, endpoint))
    assert again["changed"] is False and again["by_color"]["blue"] == {
        "action": "skipped",
        "reason": "blue is already retired",
        "retire_after": blue_retire_after(aws),
        "changed": False,
    }
    assert snapshot(aws, outputs) == after


def test_teardown_never_touches_the_live_colour_even_forced(pair):
    outputs, aws, endpoint = pair
    # Make green look like an expired standby: only the listeners say it is live.
    aws.autoscaling.create_or_update_tags(
        Tags=[
            {"ResourceId": "shop-green", "ResourceType": "auto-scaling-group", "Key": key, "Value": value, "PropagateAtLaunch": False}
            for key, value in (("cutover:state", "standby"), ("cutover:retire-after", "2000-01-01T00:00:00Z"))
        ]
    )
    try:
        before = snapshot(aws, outputs)
        for args in ({"force": True, "colors": ["green"]}, {"force": True}, {"force": True, "now": "2100-01-01T00:00:00Z"}):
            for check in (True, False):
                result = ok(run_module(TEARDOWN, {"service": "shop", **args}, endpoint, check=check))
                assert result["changed"] is False
                assert result["by_color"]["green"]["action"] == "skipped"
                assert "green is the live colour; it is never torn down, even with force" in result["by_color"]["green"]["reason"]
        assert snapshot(aws, outputs) == before
        assert before["green"]["size"] == (2, 4, 2) and len(before["green"]["targets"]) == 2
    finally:
        aws.autoscaling.delete_tags(
            Tags=[{"ResourceId": "shop-green", "ResourceType": "auto-scaling-group", "Key": key} for key in STATE_TAGS]
        )


def test_restore_a_retired_colour(pair):
    outputs, aws, endpoint = pair
    before = snapshot(aws, outputs)
    assert before["blue"]["size"] == (0, 4, 0)
    args = {"service": "shop", "color": "blue", "state": "restored", "wait_timeout": 120}

    checked = ok(run_module(STANDBY, args, endpoint, check=True, diff=True))
    assert checked["changed"] is True and checked["size_after"] == {"min_size": 2, "max_size": 4, "desired_capacity": 2}
    assert "cutover:state" not in checked["diff"]["after"]["tags"]
    assert snapshot(aws, outputs) == before

    restored = ok(run_module(STANDBY, args, endpoint, diff=True))
    assert restored["changed"] is True and restored["capacity"] == 2  # the live colour's capacity
    assert restored["health"]["healthy"] == 2
    after = snapshot(aws, outputs)
    assert after["blue"]["size"] == (2, 4, 2) and len(after["blue"]["in_service"]) == 2
    assert after["blue"]["targets"] == [(i, "healthy") for i in after["blue"]["in_service"]]
    assert after["blue"]["tags"] == {}
    assert after["blue"]["launch_template"] == before["blue"]["launch_template"]
    assert {k: v for k, v in after.items() if k != "blue"} == {k: v for k, v in before.items() if k != "blue"}

    again = ok(run_module(STANDBY, args, endpoint))
    assert again["changed"] is False
    assert snapshot(aws, outputs) == after

    live = run_module(STANDBY, {"service": "shop", "color": "green", "state": "restored"}, endpoint)
    assert live.get("failed") and "green is already the live colour of 'shop'" in live["msg"]
    assert snapshot(aws, outputs) == after


BAD_INPUTS = (
    (STANDBY, {"color": "blue", "ttl": -60}, "ttl must not be negative, got -60"),
    (STANDBY, {"color": "blue", "ttl": "-5m"}, "ttl must not be negative"),
    (STANDBY, {"color": "blue", "ttl": "abc"}, "ttl 'abc' is not a number of seconds or a duration like 30m, 2h, 1d"),
    (
        STANDBY,
        {"color": "blue", "ttl": "1h", "retire_after": "2030-01-01T00:00:00Z"},
        "parameters are mutually exclusive: ttl|retire_after",
    ),
    (STANDBY, {"color": "blue", "retire_after": "next week"}, "'next week' is not an ISO 8601 timestamp"),
    (STANDBY, {"color": "red", "ttl": 60}, "value of color must be one of: blue, green, idle, got: red"),
    (STANDBY, {"color": "blue", "capacity": 2}, "capacity applies to state=restored only"),
    (STANDBY, {"color": "blue", "state": "restored", "ttl": 60}, "ttl applies to state=standby only"),
    (STANDBY, {"color": "blue", "state": "restored", "capacity": 0}, "capacity must be at least 1, got 0"),
    (STANDBY, {"color": "blue", "state": "restored", "wait_timeout": -1}, "wait_timeout must be zero or more seconds, got -1"),
    (STANDBY, {"service": "nosuch", "color": "blue", "ttl": 60}, "no target groups tagged cutover:service=nosuch were found"),
    (DRAIN, {"color": "red"}, "value of color must be one of: blue, green, idle, got: red"),
    (DRAIN, {"color": "blue", "timeout": -5}, "timeout must be zero or more seconds, got -5"),
    (DRAIN, {"service": "nosuch", "color": "blue"}, "no target groups tagged cutover:service=nosuch were found"),
    (TEARDOWN, {"colors": ["red"]}, "value of colors must be one or more of: blue, green, idle. Got no match for: red"),
    (TEARDOWN, {"now": "yesterday"}, "'yesterday' is not an ISO 8601 timestamp"),
    (TEARDOWN, {"wait_timeout": -1, "force": True}, "wait_timeout must be zero or more seconds, got -1"),
    (TEARDOWN, {"service": "nosuch", "force": True}, "no target groups tagged cutover:service=nosuch were found"),
)


def test_bad_input_fails_clearly_and_changes_nothing(pair):
    """Every bad input fails with a message naming the problem; all of them together change nothing."""
    outputs, aws, endpoint = pair
    before = snapshot(aws, outputs)
    tasks = [
        {"name": f"bad input {index}", module: {"service": "shop", **args}, "ignore_errors": True}
        for index, (module, args, _) in enumerate(BAD_INPUTS)
    ]
    document = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], endpoint)
    results = [task["hosts"]["localhost"] for task in document["plays"][0]["tasks"]]
    assert len(results) == len(BAD_INPUTS)
    for (module, args, message), result in zip(BAD_INPUTS, results, strict=True):
        assert result.get("failed"), (module, args, result)
        assert message in result["msg"], (module, args, result["msg"])
    assert snapshot(aws, outputs) == before
