"""switch: traffic moves between the colours of the sandbox pair, all or nothing, only to healthy targets."""

from __future__ import annotations

import time

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import EXTRA_RETRY_CODES
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import discover, forward_weights, plain_client
from ansible_collections.cutover.bluegreen.plugins.module_utils.switch import switch
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import poll
from botocore.exceptions import ClientError

from .ansible_harness import run_module, run_playbook

MODULE = "cutover.bluegreen.switch"
PARAMETER = "/cutover/shop/active-color"


def green_targets(outputs, aws):
    """``{target id: state}`` of green's target group, draining targets included."""
    descriptions = aws.elbv2.describe_target_health(TargetGroupArn=outputs["target_group_arns"]["green"])["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in descriptions}


def reset(outputs, aws, green_capacity):
    """Blue live (production and /api/* to blue, test to green), green at ``green_capacity``, parameter blue.

    Waits as a deploy on an ALB would until green's target group holds exactly its
    InService instances, every one healthy: new targets pass their health checks,
    targets of instances scaled in finish draining.
    """
    groups = outputs["target_group_arns"]
    aws.elbv2.modify_listener(
        ListenerArn=outputs["production_listener_arn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": groups["blue"]}]
    )
    for rule in outputs["rule_arns"]:
        aws.elbv2.modify_rule(RuleArn=rule, Actions=[{"Type": "forward", "TargetGroupArn": groups["blue"]}])
    aws.elbv2.modify_listener(
        ListenerArn=outputs["test_listener_arn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": groups["green"]}]
    )
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=outputs["asg_names"]["green"], DesiredCapacity=green_capacity)
    group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[outputs["asg_names"]["green"]])["AutoScalingGroups"][0]
    in_service = {i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"}
    assert len(in_service) == green_capacity
    wanted = dict.fromkeys(in_service, "healthy")
    seen = {}

    def settled():
        seen.update(targets=green_targets(outputs, aws))
        return seen["targets"] == wanted

    poll(settled, 60, f"green's targets to be {wanted}", delay=0.5, max_delay=2.0, describe=lambda: str(seen["targets"]))
    aws.ssm.put_parameter(Name=PARAMETER, Value="blue", Type="String", Overwrite=True)
    assert traffic(outputs, aws) == BLUE_LIVE


def traffic(outputs, aws):
    """What AWS says now: colour weights of the production listener, the /api/* rule, the test listener; the parameter."""
    colors = {arn: color for color, arn in outputs["target_group_arns"].items()}

    def weights(actions):
        return {colors.get(arn, arn): weight for arn, weight in forward_weights(actions).items()}

    listeners = aws.elbv2.describe_listeners(ListenerArns=[outputs["production_listener_arn"], outputs["test_listener_arn"]])["Listeners"]
    by_arn = {listener["ListenerArn"]: listener["DefaultActions"] for listener in listeners}
    (rule,) = aws.elbv2.describe_rules(RuleArns=outputs["rule_arns"])["Rules"]
    return {
        "production": weights(by_arn[outputs["production_listener_arn"]]),
        "api": weights(rule["Actions"]),
        "test": weights(by_arn[outputs["test_listener_arn"]]),
        "parameter": aws.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"],
    }


BLUE_LIVE = {"production": {"blue": 1}, "api": {"blue": 1}, "test": {"green": 1}, "parameter": "blue"}
GREEN_LIVE = {"production": {"green": 1}, "api": {"green": 1}, "test": {"blue": 1}, "parameter": "green"}
LABELS = ["production listener :80 default action", "production listener :80 rule 10", "test listener :9000 default action"]


def switch_module(sandbox, check=False, diff=False, **args):
    return run_module(MODULE, {"service": "shop", **args}, sandbox.endpoint, check=check, diff=diff)


def test_check_mode_changes_nothing_but_reports_the_plan_and_diff(provisioned, sandbox):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    result = switch_module(sandbox, check=True, diff=True, to_color="green")
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert (result["from_color"], result["to_color"], result["live_color"]) == ("blue", "green", "green")
    assert [change["label"] for change in result["changes"]] == LABELS
    listener = result["changes"][0]
    assert (listener["before_weights"], listener["after_weights"]) == ({"blue": 1}, {"green": 1})
    assert listener["before"][0]["target_group_arn"] == outputs["target_group_arns"]["blue"]
    assert listener["after"][0]["target_group_arn"] == outputs["target_group_arns"]["green"]
    assert result["diff"] == {
        "before": {
            "production listener :80 default action": "blue",
            "production listener :80 rule 10": "blue",
            "test listener :9000 default action": "green",
            "parameter /cutover/shop/active-color": "blue",
        },
        "after": {
            "production listener :80 default action": "green",
            "production listener :80 rule 10": "green",
            "test listener :9000 default action": "blue",
            "parameter /cutover/shop/active-color": "green",
        },
    }
    assert result["parameter"] == {"name": PARAMETER, "value": "green", "previous": "blue", "changed": True}
    assert result["verified"] is False and result["switch_seconds"] == 0
    assert traffic(outputs, aws) == BLUE_LIVE


def test_switch_to_green_is_idempotent_and_switches_back(provisioned, sandbox):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    result = switch_module(sandbox, to_color="green")
    assert not result.get("failed"), result
    assert result["changed"] is True and result["verified"] is True
    assert (result["from_color"], result["to_color"], result["live_color"], result["split"]) == ("blue", "green", "green", False)
    assert [change["label"] for change in result["changes"]] == LABELS
    assert 0 < result["switch_seconds"] < 30
    assert result["switch_seconds"] == pytest.approx(result["apply_seconds"] + result["verify_seconds"], abs=0.002)
    assert result["guard"]["checked"]["green"]["healthy"] == 2 and result["guard"]["checked"]["green"]["required"] == 2
    assert result["pair"]["live_color"] == "green" and result["pair"]["idle_color"] == "blue"
    assert traffic(outputs, aws) == GREEN_LIVE

    again = switch_module(sandbox, diff=True, to_color="green")
    assert not again.get("failed"), again
    assert again["changed"] is False and again["changes"] == [] and again["parameter"]["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert traffic(outputs, aws) == GREEN_LIVE

    back = switch_module(sandbox, to_color="blue")
    assert not back.get("failed"), back
    assert back["changed"] is True and (back["from_color"], back["live_color"]) == ("green", "blue")
    assert traffic(outputs, aws) == BLUE_LIVE


def test_weighted_canary_then_full_switch(provisioned, sandbox):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    canary = switch_module(sandbox, weights={"blue": 90, "green": 10})
    assert not canary.get("failed"), canary
    assert canary["changed"] is True and canary["to_color"] is None
    assert (canary["live_color"], canary["split"], canary["weights"]) == ("blue", True, {"blue": 90, "green": 10})
    assert [change["label"] for change in canary["changes"]] == LABELS[:2]  # the test listener is left alone
    split = {"blue": 90, "green": 10}
    assert traffic(outputs, aws) == {"production": split, "api": split, "test": {"green": 1}, "parameter": "blue"}

    assert switch_module(sandbox, weights={"blue": 90, "green": 10})["changed"] is False

    full = switch_module(sandbox, to_color="green")
    assert not full.get("failed"), full
    assert full["changed"] is True and full["from_color"] == "blue" and full["split"] is False
    assert traffic(outputs, aws) == GREEN_LIVE


def test_to_color_idle_is_the_colour_idle_at_the_start_so_a_rerun_switches_back(provisioned, sandbox):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    first = switch_module(sandbox, to_color="idle")
    assert not first.get("failed"), first
    assert (first["from_color"], first["to_color"]) == ("blue", "green")
    assert traffic(outputs, aws) == GREEN_LIVE
    second = switch_module(sandbox, to_color="idle")  # as documented: idle is blue now
    assert (second["changed"], second["to_color"]) == (True, "blue")
    assert traffic(outputs, aws) == BLUE_LIVE


BAD_INPUT = [
    ({"to_color": "red"}, "value of to_color must be one of: blue, green, idle, got: red"),
    ({"weights": {"blue": 0, "green": 0}}, "weights blue=0, green=0 send traffic to neither colour"),
    ({"weights": {"blue": 1000, "green": 0}}, "weight of blue must be from 0 to 999"),
    ({"weights": {"blue": -5, "green": 10}}, "weight of blue must be from 0 to 999 (what a load balancer accepts), got -5"),
    ({"weights": {"blue": 50, "green": 40, "red": 10}}, "Unsupported parameters for (cutover.bluegreen.switch) module: weights.red"),
    ({"weights": {"blue": 50}}, "missing required arguments: green found in weights"),
    ({"to_color": "green", "min_healthy": -1}, "min_healthy must be a whole number, 0 or more, got -1"),
    ({"to_color": "green", "weights": {"blue": 1, "green": 1}}, "parameters are mutually exclusive: to_color|weights"),
    ({}, "one of the following is required: to_color, weights"),
    ({"service": "nosuch", "to_color": "green"}, "no target groups tagged cutover:service=nosuch were found"),
    ({"to_color": "green", "target_group_arns": {"blue": "x"}}, "target_group_arns must name both colours; missing: green"),
]


def test_bad_input_fails_clearly_and_changes_nothing(provisioned, sandbox):
    """Every case in one playbook run (one task each, errors ignored); none may change anything."""
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    tasks = [{"name": f"case {n}", MODULE: {"service": "shop", **args}, "ignore_errors": True} for n, (args, _m) in enumerate(BAD_INPUT)]
    document = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], sandbox.endpoint)
    results = [task["hosts"]["localhost"] for task in document["plays"][0]["tasks"]]
    assert len(results) == len(BAD_INPUT)
    for (args, message), result in zip(BAD_INPUT, results, strict=True):
        assert result.get("failed"), (args, result)
        assert message in result["msg"], (args, result["msg"])
        assert not result.get("changed"), args
    assert traffic(outputs, aws) == BLUE_LIVE


# -- library level: failures in the middle of a switch ----------------------------------------
class FailFirst:
    """A boto3 client whose first call of ``method`` raises ``code``; counts every call."""

    def __init__(self, client, method, code):
        self.client = client
        self.method = method
        self.code = code
        self.calls = []

    def __getattr__(self, name):
        attribute = getattr(self.client, name)
        if not callable(attribute) or name in ("get_paginator", "can_paginate"):
            return attribute

        def call(*args, **kwargs):
            self.calls.append(name)
            if name == self.method and self.calls.count(name) == 1:
                error = {"Error": {"Code": self.code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
                raise ClientError(error, name)
            return attribute(*args, **kwargs)

        return call


def boto(sandbox, service):
    return boto3.client(
        service,
        endpoint_url=sandbox.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.mark.parametrize(
    ("code", "extra_codes"),
    [("Throttling", None), ("ThrottlingException", list(EXTRA_RETRY_CODES))],
)
def test_throttling_mid_switch_is_retried_and_verified(provisioned, sandbox, code, extra_codes):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    proxy = FailFirst(boto(sandbox, "elbv2"), "modify_rule", code)
    retry = AWSRetry.jittered_backoff(retries=5, delay=0.01, max_delay=0.05, catch_extra_error_codes=extra_codes)
    elbv2 = RetryingBotoClientWrapper(proxy, retry)
    pair = discover(elbv2, plain_client(boto(sandbox, "autoscaling")), "shop")
    proxy.calls.clear()
    result = switch(elbv2, pair, to_color="green")
    assert result["changed"] and result["verified"] and result["live_color"] == "green"
    # throttled once, retried, then verified with one read of the listeners and one of the rules
    assert proxy.calls == ["modify_listener", "modify_rule", "modify_rule", "modify_listener", "describe_listeners", "describe_rules"]
    assert traffic(outputs, aws) == dict(GREEN_LIVE, parameter="blue")


def test_failure_mid_switch_rolls_back_what_was_changed(provisioned, sandbox):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    proxy = FailFirst(boto(sandbox, "elbv2"), "modify_rule", "AccessDenied")
    elbv2 = RetryingBotoClientWrapper(proxy, AWSRetry.jittered_backoff(retries=5, delay=0.01, max_delay=0.05))
    pair = discover(elbv2, plain_client(boto(sandbox, "autoscaling")), "shop")
    with pytest.raises(CutoverError) as caught:
        switch(elbv2, pair, to_color="green")
    assert "switch failed at production listener :80 rule 10" in caught.value.message
    assert "AccessDenied" in caught.value.message
    assert "rolled back the 1 change already made (production listener :80 default action)" in caught.value.message
    assert traffic(outputs, aws) == BLUE_LIVE


# -- refusals (last: they scale green in, and every test before them needs it at 2) ----------
def test_refused_when_green_has_no_instances_and_force_overrides(provisioned, sandbox):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    leaving = aws.elbv2.describe_target_health(TargetGroupArn=outputs["target_group_arns"]["green"])["TargetHealthDescriptions"]
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=outputs["asg_names"]["green"], DesiredCapacity=0)
    # At once, while green's targets drain (5 s): listed, but not one of them counts as registered or healthy.
    elbv2 = plain_client(boto(sandbox, "elbv2"))
    with pytest.raises(CutoverError) as caught:
        switch(elbv2, discover(elbv2, plain_client(boto(sandbox, "autoscaling")), "shop"), to_color="green")
    draining = ", ".join(
        f"{d['Target']['Id']}:{d['Target']['Port']} draining (Target.DeregistrationInProgress: Target deregistration is in progress)"
        for d in sorted(leaving, key=lambda d: d["Target"]["Id"])
    )
    assert (
        "refusing to move traffic of shop to green: Auto Scaling group shop-green has desired capacity 0 and 0 instances InService; "
        f"target group shop-green has no registered targets (0 healthy, 1 required); leaving: {draining}; bring it up"
        in caught.value.message
    )
    checked = caught.value.details["guard"]["checked"]["green"]
    assert (checked["healthy"], checked["registered"], len(checked["draining_targets"])) == (0, 0, len(leaving))
    assert traffic(outputs, aws) == BLUE_LIVE

    reset(outputs, aws, green_capacity=0)  # the drains are over: green has no targets left
    for check in (True, False):
        refused = switch_module(sandbox, check=check, to_color="green")
        assert refused.get("failed"), refused
        assert "refusing to move traffic of shop to green" in refused["msg"]
        assert "Auto Scaling group shop-green has desired capacity 0 and 0 instances InService" in refused["msg"]
        assert "target group shop-green has no registered targets (0 healthy, 1 required)" in refused["msg"]
        assert refused["guard"]["checked"]["green"]["registered"] == 0
        assert traffic(outputs, aws) == BLUE_LIVE
    # a canary share is refused just the same
    assert switch_module(sandbox, weights={"blue": 99, "green": 1}).get("failed")
    assert traffic(outputs, aws) == BLUE_LIVE

    forced = switch_module(sandbox, to_color="green", force=True)
    assert not forced.get("failed"), forced
    assert forced["changed"] is True and forced["guard"]["forced"] is True
    assert any("desired capacity 0" in warning for warning in forced["warnings"])
    assert traffic(outputs, aws) == GREEN_LIVE


def test_refused_when_fewer_healthy_than_min_healthy(provisioned, sandbox):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=1)
    refused = switch_module(sandbox, to_color="green", min_healthy=2)
    assert refused.get("failed"), refused
    assert "target group shop-green has 1 healthy targets, 2 required" in refused["msg"]
    assert traffic(outputs, aws) == BLUE_LIVE
    done = switch_module(sandbox, to_color="green", min_healthy=1, publish_parameter="")
    assert not done.get("failed"), done
    assert done["parameter"] is None
    assert traffic(outputs, aws) == dict(GREEN_LIVE, parameter="blue")  # nothing published


def asg_tags(outputs, aws, color):
    group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[outputs["asg_names"][color]])["AutoScalingGroups"][0]
    return {tag["Key"]: tag["Value"] for tag in group["Tags"] if tag["Key"] in ("cutover:state", "cutover:retire-after")}


def test_a_full_switch_keeps_the_old_colour_warm_and_clears_the_new_ones_marks(provisioned, sandbox):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    name = outputs["asg_names"]["green"]
    stale = {"cutover:state": "standby", "cutover:retire-after": "2026-01-01T00:00:00Z"}  # left by an older release
    aws.autoscaling.create_or_update_tags(
        Tags=[
            {"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": key, "Value": value, "PropagateAtLaunch": False}
            for key, value in stale.items()
        ]
    )
    before = {color: asg_tags(outputs, aws, color) for color in ("blue", "green")}

    bad = switch_module(sandbox, to_color="green", standby_ttl="soon")
    assert bad.get("failed") and "ttl 'soon' is not a number of seconds or a duration" in bad["msg"]
    assert traffic(outputs, aws) == BLUE_LIVE

    checked = switch_module(sandbox, check=True, to_color="green", standby_ttl="2h")
    assert checked["changed"] and checked["standby"]["color"] == "blue"
    assert sorted(checked["cleared_tags"]) == sorted(stale)
    assert {color: asg_tags(outputs, aws, color) for color in ("blue", "green")} == before
    assert traffic(outputs, aws) == BLUE_LIVE

    result = switch_module(sandbox, to_color="green", standby_ttl="2h")
    assert not result.get("failed"), result
    assert traffic(outputs, aws) == GREEN_LIVE
    assert asg_tags(outputs, aws, "green") == {}  # live now: no retire-after left to act on
    blue = asg_tags(outputs, aws, "blue")
    assert blue["cutover:state"] == "standby" and blue["cutover:retire-after"] == result["standby"]["retire_after"]
    assert result["standby"]["color"] == "blue" and sorted(result["cleared_tags"]) == sorted(stale)

    again = switch_module(sandbox, to_color="green", standby_ttl="2h")
    assert not again.get("failed"), again
    assert again["changed"] is False and again["standby"] is None and again["cleared_tags"] == []
    assert asg_tags(outputs, aws, "blue") == blue  # the retire-after does not move on a re-run

    back = switch_module(sandbox, to_color="blue")  # a switch back without standby_ttl marks nothing
    assert not back.get("failed"), back
    assert sorted(back["cleared_tags"]) == ["cutover:retire-after", "cutover:state"] and back["standby"] is None
    assert asg_tags(outputs, aws, "blue") == {} and asg_tags(outputs, aws, "green") == {}
    assert traffic(outputs, aws) == BLUE_LIVE


def test_the_switch_notes_in_the_journal_entry_when_it_begins(provisioned, sandbox):
    outputs, aws = provisioned
    reset(outputs, aws, green_capacity=2)
    opened = run_module(
        "cutover.bluegreen.journal", {"service": "shop", "state": "started", "record": {"kind": "deploy"}}, sandbox.endpoint
    )
    assert not opened.get("failed"), opened
    entry_id = opened["deployment_id"]

    def entry():
        found = run_module("cutover.bluegreen.pair_info", {"service": "shop", "deployments": 10}, sandbox.endpoint)
        return next(item for item in found["deployments"] if item["deployment_id"] == entry_id)

    checked = switch_module(sandbox, check=True, to_color="green", journal_entry=entry_id)
    assert not checked.get("failed") and checked["journal_noted"] is None, checked
    assert "switch" not in (entry().get("steps") or {})

    bad = switch_module(sandbox, to_color="green", journal_entry="not an id")
    assert bad.get("failed") and "not an id" in bad["msg"], bad
    assert traffic(outputs, aws) == BLUE_LIVE

    began = time.time()
    result = switch_module(sandbox, to_color="green", journal_entry=entry_id)
    assert not result.get("failed"), result
    assert result["journal_noted"] is True and result["changed"] is True
    noted = entry()
    assert noted["steps"]["switch"]["status"] == "started"
    assert began <= noted["record"]["switch_started_at"] <= result["switched_at"]
    assert traffic(outputs, aws) == GREEN_LIVE

    back = switch_module(sandbox, to_color="blue")
    assert not back.get("failed"), back
