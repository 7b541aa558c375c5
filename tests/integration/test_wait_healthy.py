"""wait_healthy against the sandbox: an empty colour times out clearly, a rolled-out one is healthy."""

from __future__ import annotations

import pytest

from .ansible_harness import run_module

WAIT = "cutover.bluegreen.wait_healthy"


def test_empty_colour_times_out_with_a_clear_message(provisioned, sandbox):
    result = run_module(WAIT, {"service": "shop", "color": "green", "min_healthy": 1, "timeout": 2}, sandbox.endpoint)
    assert result.get("failed"), result
    assert result["msg"].startswith("timed out after 2 s waiting for every target of target group shop-green to be healthy (at least 1)")
    assert result["msg"].endswith("only 0 target(s) registered, at least 1 wanted")
    assert result["health"]["registered"] == 0 and result["color"] == "green"


def test_check_mode_reads_once_without_failing(provisioned, sandbox):
    result = run_module(WAIT, {"service": "shop", "timeout": 60}, sandbox.endpoint, check=True)
    assert not result.get("failed"), result
    assert (result["color"], result["ready"], result["waited_seconds"], result["min_healthy"]) == ("green", False, 0.0, 1)
    assert result["problems"] == ["only 0 target(s) registered, at least 1 wanted"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"timeout": -1}, "timeout must be zero or more seconds, got -1"),
        ({"min_healthy": -1}, "min_healthy must be a whole number, 0 or more, got -1"),
        ({"unhealthy_timeout": -5}, "unhealthy_timeout must be zero or more seconds, got -5"),
        ({"color": "red"}, "value of color must be one of: blue, green, idle, live, got: red"),
        ({"service": "nosuch"}, "no target groups tagged cutover:service=nosuch were found"),
    ],
)
def test_bad_input_is_refused(provisioned, sandbox, args, message):
    result = run_module(WAIT, {"service": "shop", **args}, sandbox.endpoint)
    assert result.get("failed"), result
    assert message in result["msg"]


def test_live_colour_is_healthy(provisioned, sandbox):
    outputs, _aws = provisioned
    result = run_module(WAIT, {"service": "shop", "color": "live"}, sandbox.endpoint)
    assert not result.get("failed"), result
    assert (result["color"], result["changed"], result["ready"], result["min_healthy"]) == ("blue", False, True, 2)
    assert result["target_group_arn"] == outputs["target_group_arns"]["blue"]
    assert result["health"] == {"registered": 2, "healthy": 2, "unhealthy": 0, "by_state": {"healthy": 2}}


def test_rolled_out_colour_is_healthy(provisioned, sandbox):
    _outputs, aws = provisioned
    rolled = run_module("cutover.bluegreen.rollout", {"service": "shop", "image_id": "ami-0123456789abcdef0"}, sandbox.endpoint)
    assert not rolled.get("failed") and rolled["color"] == "green", rolled
    result = run_module(WAIT, {"service": "shop", "timeout": 60}, sandbox.endpoint)
    assert not result.get("failed"), result
    assert (result["color"], result["changed"], result["ready"], result["min_healthy"]) == ("green", False, True, 2)
    assert result["health"]["healthy"] == 2 and result["health"]["registered"] == 2
    instances = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["shop-green"])["AutoScalingGroups"][0]["Instances"]
    assert sorted(t["id"] for t in result["targets"]) == sorted(i["InstanceId"] for i in instances)
    assert {t["state"] for t in result["targets"]} == {"healthy"}


def test_more_healthy_targets_than_registered_times_out(provisioned, sandbox):
    result = run_module(WAIT, {"service": "shop", "color": "green", "min_healthy": 3, "timeout": 1}, sandbox.endpoint)
    assert result.get("failed"), result
    assert "only 2 target(s) registered, at least 3 wanted" in result["msg"]
    assert result["health"]["healthy"] == 2
