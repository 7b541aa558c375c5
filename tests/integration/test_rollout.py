"""rollout against the sandbox: check mode, a real rollout, idempotence, refusals and bad input.

The tests of this file share one pair and run in order: each starts from where
the previous one left green (blue stays live with two instances throughout).
"""

from __future__ import annotations

import base64

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.health import wait_healthy
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import plain_client

from .ansible_harness import run_module

ROLLOUT = "cutover.bluegreen.rollout"
ORIGINAL_AMI = "ami-0b5c0de0000000001"
NEW_AMI = "ami-0123456789abcdef0"
NEXT_AMI = "ami-0fedcba9876543210"
DEFAULT_PROCESSES = ["AZRebalance", "AlarmNotification", "ScheduledActions", "ReplaceUnhealthy"]


def group(aws, name):
    return aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def launch_template_version(aws, outputs, number):
    versions = aws.ec2.describe_launch_template_versions(LaunchTemplateId=outputs["launch_template_id"], Versions=[str(number)])
    return versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def snapshot(aws, outputs):
    """Everything a rollout may change, read back with boto3."""
    template = aws.ec2.describe_launch_templates(LaunchTemplateIds=[outputs["launch_template_id"]])["LaunchTemplates"][0]
    groups = {}
    for color, name in outputs["asg_names"].items():
        g = group(aws, name)
        groups[color] = {
            "version": g["LaunchTemplate"]["Version"],
            "sizes": (g["MinSize"], g["MaxSize"], g["DesiredCapacity"]),
            "instances": sorted(i["InstanceId"] for i in g["Instances"]),
            "suspended": sorted(p["ProcessName"] for p in g["SuspendedProcesses"]),
            "tags": sorted((t["Key"], t["Value"]) for t in g["Tags"]),
        }
    listener = aws.elbv2.describe_listeners(ListenerArns=[outputs["production_listener_arn"]])["Listeners"][0]
    return {"latest_version": template["LatestVersionNumber"], "groups": groups, "production": listener["DefaultActions"]}


def in_service(g):
    return sorted(i["InstanceId"] for i in g["Instances"] if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy")


def registered(aws, target_group_arn):
    descriptions = aws.elbv2.describe_target_health(TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in descriptions}


def test_check_mode_reports_the_rollout_and_changes_nothing(provisioned, sandbox):
    outputs, aws = provisioned
    before = snapshot(aws, outputs)
    result = run_module(ROLLOUT, {"service": "shop", "image_id": NEW_AMI}, sandbox.endpoint, check=True, diff=True)
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert (result["color"], result["live_color"], result["capacity"]) == ("green", "blue", 2)
    template = result["launch_template"]
    assert (template["created"], template["version"], template["base_version"], template["previous_version"]) == (True, 2, 1, 1)
    assert template["changes"] == {"image_id": {"before": ORIGINAL_AMI, "after": NEW_AMI}}
    assert result["diff"]["before"]["asg"] == {"launch_template_version": "1", "min_size": 0, "max_size": 4, "desired_capacity": 0}
    assert result["diff"]["after"]["asg"] == {"launch_template_version": "2", "min_size": 2, "max_size": 4, "desired_capacity": 2}
    assert result["diff"]["before"]["launch_template_data"] == {"image_id": ORIGINAL_AMI}
    assert result["diff"]["after"]["launch_template_data"] == {"image_id": NEW_AMI}
    assert snapshot(aws, outputs) == before
    assert before["latest_version"] == 1


def test_rollout_creates_version_2_and_scales_green_to_blues_capacity(provisioned, sandbox):
    outputs, aws = provisioned
    before = snapshot(aws, outputs)
    result = run_module(ROLLOUT, {"service": "shop", "image_id": NEW_AMI}, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["color"] == "green"
    assert result["launch_template"]["created"] is True and result["launch_template"]["version"] == 2
    assert result["suspended_processes"] == DEFAULT_PROCESSES
    assert [step["name"] for step in result["steps"]] == ["scale"]

    after = snapshot(aws, outputs)
    assert after["latest_version"] == 2
    assert launch_template_version(aws, outputs, 2)["ImageId"] == NEW_AMI
    green = group(aws, "shop-green")
    assert green["LaunchTemplate"]["Version"] == "2"
    assert (green["MinSize"], green["MaxSize"], green["DesiredCapacity"]) == (2, 4, 2)
    assert len(in_service(green)) == 2
    assert green["SuspendedProcesses"] == []  # every process suspended for the rollout is resumed
    # rollout waits for InService; the new targets then pass their health checks (wait_healthy's step), as on an ALB
    wait_healthy(
        plain_client(aws.elbv2),
        plain_client(aws.autoscaling),
        outputs["target_group_arns"]["green"],
        "shop-green",
        min_healthy=2,
        timeout=60,
        delay=0.5,
        max_delay=2.0,
    )
    targets = registered(aws, outputs["target_group_arns"]["green"])
    assert set(in_service(green)) <= set(targets) and {targets[i] for i in in_service(green)} == {"healthy"}
    # The live colour is untouched.
    assert after["groups"]["blue"] == before["groups"]["blue"] and after["production"] == before["production"]
    assert result["asg"]["after"]["in_service"] == 2 and result["asg"]["after"]["suspended_processes"] == []
    assert result["waited_seconds"] >= 0 and result["timings"]["total"] >= result["timings"]["scale"]


def test_second_run_with_the_same_inputs_changes_nothing(provisioned, sandbox):
    outputs, aws = provisioned
    before = snapshot(aws, outputs)
    result = run_module(ROLLOUT, {"service": "shop", "image_id": NEW_AMI}, sandbox.endpoint, diff=True)
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert (result["launch_template"]["created"], result["launch_template"]["version"], result["launch_template"]["reused"]) == (
        False,
        2,
        "current",
    )
    assert [step["update"] for step in result["steps"]] == [{}]
    assert result["suspended_processes"] == []
    assert result["diff"]["before"]["asg"] == result["diff"]["after"]["asg"]
    assert snapshot(aws, outputs) == before


def test_the_live_colour_is_refused_and_nothing_changes(provisioned, sandbox):
    outputs, aws = provisioned
    before = snapshot(aws, outputs)
    result = run_module(ROLLOUT, {"service": "shop", "color": "blue", "image_id": NEXT_AMI}, sandbox.endpoint)
    assert result.get("failed"), result
    assert "refusing to roll out blue: it is the live colour of 'shop'" in result["msg"]
    assert snapshot(aws, outputs) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"image_id": "ubuntu-22.04"}, "image_id 'ubuntu-22.04' is not an AMI id"),
        ({"image_id": NEXT_AMI, "capacity": -1}, "capacity must not be negative, got -1"),
        ({"image_id": NEXT_AMI, "capacity": 2, "preparation_capacity": 2}, "preparation_capacity (2) must be smaller than capacity (2)"),
        ({"image_id": NEXT_AMI, "preparation_capacity": 3}, "preparation_capacity (3) must be smaller than capacity (2, the live colour's"),
        ({"image_id": NEXT_AMI, "wait_timeout": -1}, "wait_timeout must be zero or more seconds, got -1"),
        ({"image_id": NEXT_AMI, "suspend_processes": ["Launch"]}, "suspend_processes must not include Launch"),
        ({"image_id": NEXT_AMI, "color": "red"}, "value of color must be one of: blue, green, idle, got: red"),
        ({"image_id": NEXT_AMI, "service": "nosuch"}, "no target groups tagged cutover:service=nosuch were found"),
    ],
)
def test_bad_input_fails_clearly_and_changes_nothing(provisioned, sandbox, args, message):
    outputs, aws = provisioned
    before = snapshot(aws, outputs)
    result = run_module(ROLLOUT, {"service": "shop", **args}, sandbox.endpoint)
    assert result.get("failed"), result
    assert message in result["msg"]
    assert snapshot(aws, outputs) == before


def test_split_production_needs_the_colour_named(provisioned, sandbox):
    outputs, aws = provisioned
    arns = outputs["target_group_arns"]
    listener = outputs["production_listener_arn"]
    original = aws.elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"]
    weighted = {"TargetGroups": [{"TargetGroupArn": arns["blue"], "Weight": 90}, {"TargetGroupArn": arns["green"], "Weight": 10}]}
    aws.elbv2.modify_listener(ListenerArn=listener, DefaultActions=[{"Type": "forward", "ForwardConfig": weighted}])
    try:
        before = snapshot(aws, outputs)
        result = run_module(ROLLOUT, {"service": "shop", "image_id": NEXT_AMI}, sandbox.endpoint)
        assert result.get("failed"), result
        assert "split between both colours (a canary phase)" in result["msg"] and "name the non-live colour (green)" in result["msg"]
        assert snapshot(aws, outputs) == before
        refused = run_module(ROLLOUT, {"service": "shop", "color": "blue", "image_id": NEXT_AMI}, sandbox.endpoint, check=True)
        assert refused.get("failed") and "it is the live colour" in refused["msg"]
        named = run_module(ROLLOUT, {"service": "shop", "color": "green", "image_id": NEXT_AMI}, sandbox.endpoint, check=True)
        assert not named.get("failed"), named
        assert named["color"] == "green" and named["changed"] is True
        assert snapshot(aws, outputs) == before
    finally:
        aws.elbv2.modify_listener(ListenerArn=listener, DefaultActions=original)


def test_preparation_capacity_replaces_old_instances_then_scales_in_two_steps(provisioned, sandbox):
    outputs, aws = provisioned
    before = snapshot(aws, outputs)
    old = before["groups"]["green"]["instances"]
    assert len(old) == 2
    args = {"service": "shop", "image_id": NEXT_AMI, "capacity": 3, "preparation_capacity": 1}
    result = run_module(ROLLOUT, args, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["launch_template"]["version"] == 3
    assert [(s["name"], s["wait_for"]) for s in result["steps"]] == [("replace", 0), ("prepare", 1), ("scale", 3)]
    assert result["steps"][0]["update"] == {"min_size": 0, "desired_capacity": 0}
    assert result["steps"][1]["update"] == {"launch_template_version": "3", "min_size": 1, "desired_capacity": 1}
    assert result["steps"][2]["update"] == {"min_size": 3, "desired_capacity": 3}
    assert {"replace", "prepare", "scale", "total"} <= set(result["timings"])

    green = group(aws, "shop-green")
    assert green["LaunchTemplate"]["Version"] == "3"
    assert (green["MinSize"], green["MaxSize"], green["DesiredCapacity"]) == (3, 4, 3)
    assert len(in_service(green)) == 3 and not set(in_service(green)) & set(old)
    assert green["SuspendedProcesses"] == []
    assert set(in_service(green)) <= set(registered(aws, outputs["target_group_arns"]["green"]))
    assert launch_template_version(aws, outputs, 3)["ImageId"] == NEXT_AMI
    assert snapshot(aws, outputs)["groups"]["blue"] == before["groups"]["blue"]

    again = run_module(ROLLOUT, args, sandbox.endpoint)
    assert not again.get("failed") and again["changed"] is False, again
    assert snapshot(aws, outputs)["latest_version"] == 3


def test_different_user_data_makes_another_version(provisioned, sandbox):
    outputs, aws = provisioned
    # Capacity 0: this test is about the launch-template version only.
    args = {"service": "shop", "image_id": NEXT_AMI, "user_data": "version=v2\n", "capacity": 0}
    check = run_module(ROLLOUT, args, sandbox.endpoint, check=True, diff=True)
    assert check["changed"] is True and check["launch_template"]["created"] is True
    assert check["diff"]["after"]["launch_template_data"] == {"image_id": NEXT_AMI, "user_data": "version=v2\n"}
    assert snapshot(aws, outputs)["latest_version"] == 3

    result = run_module(ROLLOUT, args, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["launch_template"]["version"] == 4 and result["launch_template"]["created"] is True
    assert result["launch_template"]["changes"] == {
        "image_id": {"before": ORIGINAL_AMI, "after": NEXT_AMI},
        "user_data": {"before": "version=v1", "after": "version=v2\n"},
    }
    data = launch_template_version(aws, outputs, 4)
    assert base64.b64decode(data["UserData"]).decode() == "version=v2\n" and data["ImageId"] == NEXT_AMI
    green = group(aws, "shop-green")
    assert green["LaunchTemplate"]["Version"] == "4" and green["DesiredCapacity"] == 0
    assert [i for i in green["Instances"] if i["LifecycleState"] == "InService"] == []

    again = run_module(ROLLOUT, args, sandbox.endpoint)
    assert not again.get("failed") and again["changed"] is False, again
    assert snapshot(aws, outputs)["latest_version"] == 4


def test_standby_tags_of_the_rolled_out_colour_are_removed(provisioned, sandbox):
    _outputs, aws = provisioned
    standby = [
        {"ResourceId": "shop-green", "ResourceType": "auto-scaling-group", "Key": key, "Value": value, "PropagateAtLaunch": False}
        for key, value in (("cutover:state", "standby"), ("cutover:retire-after", "2020-01-01T00:00:00Z"))
    ]
    aws.autoscaling.create_or_update_tags(Tags=standby)
    args = {"service": "shop", "image_id": NEXT_AMI, "user_data": "version=v2\n", "capacity": 0}
    check = run_module(ROLLOUT, args, sandbox.endpoint, check=True)
    assert check["changed"] is True and check["cleared_tags"] == ["cutover:retire-after", "cutover:state"]
    assert {"cutover:state", "cutover:retire-after"} <= {t["Key"] for t in group(aws, "shop-green")["Tags"]}

    result = run_module(ROLLOUT, args, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["cleared_tags"] == ["cutover:retire-after", "cutover:state"]
    assert result["launch_template"]["created"] is False
    tags = {t["Key"]: t["Value"] for t in group(aws, "shop-green")["Tags"]}
    assert "cutover:state" not in tags and "cutover:retire-after" not in tags
    assert tags["cutover:color"] == "green" and tags["cutover:service"] == "shop"
    assert {t["Key"] for t in group(aws, "shop-blue")["Tags"]} >= {"cutover:color", "cutover:service"}

    again = run_module(ROLLOUT, args, sandbox.endpoint)
    assert not again.get("failed") and again["changed"] is False, again


def test_wait_healthy_returns_once_every_new_target_passed_its_health_checks(provisioned, sandbox):
    outputs, aws = provisioned
    before = snapshot(aws, outputs)
    for args, message in (
        ({"wait": False}, "wait_healthy=true needs wait=true"),
        ({"health_timeout": -1}, "timeout must be zero or more seconds, got -1"),
    ):
        refused = run_module(ROLLOUT, {"service": "shop", "image_id": NEW_AMI, "wait_healthy": True, **args}, sandbox.endpoint)
        assert refused.get("failed") and message in refused["msg"], refused
    assert snapshot(aws, outputs) == before

    result = run_module(
        ROLLOUT,
        {"service": "shop", "image_id": NEW_AMI, "user_data": "version=v3\n", "capacity": 2, "wait_healthy": True, "health_timeout": 120},
        sandbox.endpoint,
    )
    assert not result.get("failed"), result
    assert result["changed"] is True and result["color"] == "green"
    health = result["health"]
    assert health["ready"] is True and health["min_healthy"] == 2 and health["problems"] == []
    assert health["health"]["healthy"] == 2 and health["waited_seconds"] >= 0
    # when the module returns, every InService instance is a healthy target: no separate wait is needed
    green = group(aws, "shop-green")
    targets = registered(aws, outputs["target_group_arns"]["green"])
    assert len(in_service(green)) == 2 and {targets[i] for i in in_service(green)} == {"healthy"}
    assert sorted(t["id"] for t in health["targets"] if t["state"] == "healthy") == sorted(in_service(green))

    checked = run_module(ROLLOUT, {"service": "shop", "image_id": NEXT_AMI, "wait_healthy": True}, sandbox.endpoint, check=True)
    assert checked["changed"] is True and checked["health"] is None
