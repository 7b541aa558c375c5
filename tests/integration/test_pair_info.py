"""pair_info: the pair found from the service name alone, every target counted."""

from __future__ import annotations

import pytest

from .ansible_harness import run_module


def test_pair_info_reports_live_idle_and_every_target(provisioned, sandbox):
    outputs, _aws = provisioned
    result = run_module("cutover.bluegreen.pair_info", {"service": "shop"}, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["changed"] is False
    pair = result["pair"]
    assert (pair["live_color"], pair["idle_color"], pair["split"]) == ("blue", "green", False)
    assert pair["production_listener_arn"] == outputs["production_listener_arn"]
    assert pair["test_listener_arn"] == outputs["test_listener_arn"]
    blue = pair["colors"]["blue"]
    assert blue["target_group"]["arn"] == outputs["target_group_arns"]["blue"]
    assert blue["asg"]["name"] == "shop-blue" and blue["asg"]["desired_capacity"] == 2
    assert blue["health"] == {"registered": 2, "healthy": 2, "unhealthy": 0, "by_state": {"healthy": 2}}
    assert pair["colors"]["green"]["health"]["registered"] == 0
    forwarding = {(f["kind"], f["role"]) for f in pair["forwarders"]}
    assert forwarding == {("listener", "production"), ("rule", "production"), ("listener", "test")}
    # the deployment table exists but holds nothing yet
    assert (result["table_name"], result["lock"], result["deployments"]) == (outputs["table_name"], None, [])
    assert result["standby"] == {
        "color": "green",
        "state": None,
        "retire_after": None,
        "expired": False,
        "desired_capacity": 0,
        "in_service": 0,
    }
    assert not result.get("warnings")


@pytest.mark.parametrize(("retire_after", "expired"), [("2001-01-01T00:00:00Z", True), ("2999-01-01T00:00:00Z", False)])
def test_pair_info_summarizes_the_standby(provisioned, sandbox, retire_after, expired):
    _outputs, aws = provisioned
    tags = [
        {"ResourceId": "shop-green", "ResourceType": "auto-scaling-group", "Key": key, "Value": value, "PropagateAtLaunch": False}
        for key, value in (("cutover:state", "standby"), ("cutover:retire-after", retire_after))
    ]
    aws.autoscaling.create_or_update_tags(Tags=tags)
    try:
        result = run_module("cutover.bluegreen.pair_info", {"service": "shop"}, sandbox.endpoint)
    finally:
        aws.autoscaling.delete_tags(Tags=tags)
    assert not result.get("failed"), result
    standby = result["standby"]
    assert (standby["color"], standby["state"], standby["retire_after"], standby["expired"]) == ("green", "standby", retire_after, expired)


def test_pair_info_without_a_deployment_table_warns(provisioned, sandbox):
    result = run_module("cutover.bluegreen.pair_info", {"service": "shop", "table_name": "cutover-nosuch"}, sandbox.endpoint)
    assert not result.get("failed"), result
    assert (result["lock"], result["deployments"]) == (None, [])
    assert result["pair"]["live_color"] == "blue"
    assert any("the table cutover-nosuch does not exist" in warning for warning in result["warnings"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"service": "nosuch"}, "no target groups tagged cutover:service=nosuch were found"),
        ({"service": "shop", "target_group_arns": {"blue": "x"}}, "target_group_arns must name both colours; missing: green"),
        ({"service": "shop", "asg_names": {"blue": "shop-blue", "green": "nope"}}, "Auto Scaling group nope (green) does not exist"),
        ({"service": "shop", "deployments": -1}, "deployments must be between 0 and 100, got -1"),
    ],
)
def test_pair_info_bad_input(provisioned, sandbox, args, message):
    result = run_module("cutover.bluegreen.pair_info", args, sandbox.endpoint)
    assert result.get("failed"), result
    assert message in result["msg"]


def test_target_group_of_another_service_is_refused(provisioned, sandbox):
    outputs, aws = provisioned
    vpc = outputs["vpc_id"]
    other = aws.elbv2.create_target_group(
        Name="cart-blue", Protocol="HTTP", Port=8080, VpcId=vpc, Tags=[{"Key": "cutover:service", "Value": "cart"}]
    )["TargetGroups"][0]["TargetGroupArn"]
    try:
        result = run_module(
            "cutover.bluegreen.pair_info",
            {"service": "shop", "target_group_arns": {"blue": other, "green": outputs["target_group_arns"]["green"]}},
            sandbox.endpoint,
        )
        assert result.get("failed")
        assert "target group cart-blue belongs to service 'cart', not 'shop'" in result["msg"]
    finally:
        aws.elbv2.delete_target_group(TargetGroupArn=other)


def test_pair_info_reports_what_each_colour_runs_and_the_address(provisioned, sandbox):
    outputs, _ = provisioned
    result = run_module("cutover.bluegreen.pair_info", {"service": "shop"}, sandbox.endpoint)
    pair = result["pair"]
    assert pair["colors"]["blue"]["version"] == {
        "launch_template_version": 1,
        "image_id": "ami-0b5c0de0000000001",
        "instance_type": "t3.micro",
        "user_data": "version=v1",
    }
    assert pair["load_balancer_dns_name"] == outputs["load_balancer_dns_name"]
    assert (pair["production_listener_port"], pair["test_listener_port"]) == (80, 9000)


def test_discovery_without_rules_or_health_makes_fewer_calls_and_finds_the_same_pair(provisioned, sandbox):
    import boto3
    from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import discover, plain_client

    calls = []

    class Counting(plain_client):
        def __getattr__(self, name):
            method = super().__getattr__(name)
            if callable(method) and not name.startswith(("get_paginator", "can_paginate")):
                calls.append(name)
            return method

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    elbv2 = Counting(session.client("elbv2", endpoint_url=sandbox.endpoint))
    autoscaling = Counting(session.client("autoscaling", endpoint_url=sandbox.endpoint))
    full = discover(elbv2, autoscaling, "shop")
    full_calls, calls[:] = list(calls), []
    light = discover(elbv2, autoscaling, "shop", rules=False, health=False)
    assert "describe_target_health" in full_calls and "describe_target_health" not in calls
    assert (light.live_color, light.idle_color) == (full.live_color, full.idle_color)
    assert [f["kind"] for f in light.forwarders] == ["listener", "listener"]
    assert sorted(f["kind"] for f in full.forwarders) == ["listener", "listener", "rule"]
    assert light.colors["blue"]["health"] is None and full.colors["blue"]["health"]["registered"] == 2


# Last: it fills the account with groups of other services.
def test_discovery_makes_as_many_calls_in_a_crowded_account(provisioned, sandbox):
    from sandbox.dataplane.control import call

    outputs, aws = provisioned

    def calls_of_pair_info():
        call(sandbox.endpoint, "api-calls", method="DELETE")
        result = run_module("cutover.bluegreen.pair_info", {"service": "shop"}, sandbox.endpoint)
        assert not result.get("failed"), result
        return call(sandbox.endpoint, "api-calls")["calls"], result["pair"]

    empty, pair = calls_of_pair_info()
    # More target groups than one DescribeTags call takes, more Auto Scaling groups than one page holds,
    # tagged as the pairs of other services (a look-alike "shop" would rather be an error).
    for index in range(45):
        aws.elbv2.create_target_group(
            Name=f"other-{index}",
            Protocol="HTTP",
            Port=8080,
            VpcId=outputs["vpc_id"],
            Tags=[{"Key": "cutover:service", "Value": f"other-{index % 5}"}, {"Key": "cutover:color", "Value": "blue"}],
        )
    template = aws.ec2.create_launch_template(LaunchTemplateName="other", LaunchTemplateData={"ImageId": "ami-0b5c0de0000000009"})
    for index in range(55):
        aws.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=f"other-{index}",
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            VPCZoneIdentifier=",".join(outputs["subnet_ids"]),
            Tags=[{"Key": "cutover:service", "Value": f"other-{index % 5}", "PropagateAtLaunch": False}],
        )
    crowded, crowded_pair = calls_of_pair_info()
    assert crowded == empty
    assert crowded_pair["colors"]["blue"]["target_group"] == pair["colors"]["blue"]["target_group"]
    assert sum(empty.values()) <= 16, empty
