"""Provision the sandbox stack from infra/aws and read the pair back with boto3."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from botocore.exceptions import ClientError

from bluegreen_pair.policy import ALL_ACTIONS
from tests.conftest import REPO

STACK = yaml.safe_load((REPO / "infra" / "aws" / "Pulumi.sandbox.yaml").read_text())["config"]


def tags_of(elbv2, arn):
    return {t["Key"]: t["Value"] for t in elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]}


def forwards_to(actions):
    return [a["TargetGroupArn"] for a in actions if a["Type"] == "forward"]


def test_pair_is_found_from_the_service_tag_alone(provisioned):
    outputs, aws = provisioned
    groups = aws.elbv2.describe_target_groups()["TargetGroups"]
    by_color = {}
    for group in groups:
        tags = tags_of(aws.elbv2, group["TargetGroupArn"])
        if tags.get("cutover:service") == "shop":
            by_color[tags["cutover:color"]] = group["TargetGroupArn"]
    assert by_color == outputs["target_group_arns"]
    asgs = aws.autoscaling.describe_auto_scaling_groups(Filters=[{"Name": "tag:cutover:service", "Values": ["shop"]}])["AutoScalingGroups"]
    colors = {next(t["Value"] for t in g["Tags"] if t["Key"] == "cutover:color"): g["AutoScalingGroupName"] for g in asgs}
    assert colors == outputs["asg_names"]


def test_listeners_and_rules(provisioned):
    outputs, aws = provisioned
    listeners = {
        listener["ListenerArn"]: listener
        for listener in aws.elbv2.describe_listeners(LoadBalancerArn=outputs["load_balancer_arn"])["Listeners"]
    }
    assert set(listeners) == {outputs["production_listener_arn"], outputs["test_listener_arn"]}
    production = listeners[outputs["production_listener_arn"]]
    test = listeners[outputs["test_listener_arn"]]
    assert (production["Port"], production["Protocol"]) == (80, "HTTP")
    assert test["Port"] == 9000
    assert forwards_to(production["DefaultActions"]) == [outputs["target_group_arns"]["blue"]]
    assert forwards_to(test["DefaultActions"]) == [outputs["target_group_arns"]["green"]]
    assert tags_of(aws.elbv2, outputs["test_listener_arn"])["cutover:listener"] == "test"
    rules = [r for r in aws.elbv2.describe_rules(ListenerArn=outputs["production_listener_arn"])["Rules"] if not r["IsDefault"]]
    assert [r["RuleArn"] for r in rules] == outputs["rule_arns"]
    assert rules[0]["Conditions"][0]["Values" if "Values" in rules[0]["Conditions"][0] else "PathPatternConfig"] in (
        ["/api/*"],
        {"Values": ["/api/*"]},
    )
    assert forwards_to(rules[0]["Actions"]) == [outputs["target_group_arns"]["blue"]]


def test_target_groups_have_the_configured_health_check(provisioned):
    outputs, aws = provisioned
    for color, arn in outputs["target_group_arns"].items():
        group = aws.elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
        assert group["TargetGroupName"] == f"shop-{color}"
        assert group["HealthCheckPath"] == STACK["cutover:health_check_path"]
        assert group["HealthCheckIntervalSeconds"] == STACK["cutover:health_check_interval"]
        assert group["HealthCheckTimeoutSeconds"] == STACK["cutover:health_check_timeout"]
        assert group["HealthyThresholdCount"] == STACK["cutover:healthy_threshold"]
        assert group["UnhealthyThresholdCount"] == STACK["cutover:unhealthy_threshold"]
        assert group["VpcId"] == outputs["vpc_id"]
        attributes = {a["Key"]: a["Value"] for a in aws.elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
        assert attributes["deregistration_delay.timeout_seconds"] == str(STACK["cutover:deregistration_delay"])
        assert tags_of(aws.elbv2, arn) == {"cutover:service": "shop", "cutover:color": color}


def test_blue_serves_at_capacity_and_green_is_empty(provisioned):
    outputs, aws = provisioned
    groups = {
        g["AutoScalingGroupName"]: g
        for g in aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=list(outputs["asg_names"].values()))[
            "AutoScalingGroups"
        ]
    }
    blue, green = groups["shop-blue"], groups["shop-green"]
    assert (blue["MinSize"], blue["MaxSize"], blue["DesiredCapacity"]) == (2, 4, 2)
    assert (green["MinSize"], green["DesiredCapacity"]) == (0, 0)
    assert blue["TargetGroupARNs"] == [outputs["target_group_arns"]["blue"]]
    assert green["TargetGroupARNs"] == [outputs["target_group_arns"]["green"]]
    for group in (blue, green):
        assert group["LaunchTemplate"]["LaunchTemplateId"] == outputs["launch_template_id"]
        assert sorted(group["VPCZoneIdentifier"].split(",")) == sorted(outputs["subnet_ids"])
    assert [i["LifecycleState"] for i in blue["Instances"]] == ["InService", "InService"]
    assert green["Instances"] == []
    registered = aws.elbv2.describe_target_health(TargetGroupArn=outputs["target_group_arns"]["blue"])["TargetHealthDescriptions"]
    assert sorted(t["Target"]["Id"] for t in registered) == sorted(i["InstanceId"] for i in blue["Instances"])
    assert aws.elbv2.describe_target_health(TargetGroupArn=outputs["target_group_arns"]["green"])["TargetHealthDescriptions"] == []
    # instances carry the pair's tags
    reservations = aws.ec2.describe_instances(InstanceIds=[i["InstanceId"] for i in blue["Instances"]])["Reservations"]
    for instance in (i for r in reservations for i in r["Instances"]):
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert (tags["cutover:service"], tags["cutover:color"]) == ("shop", "blue")
        assert instance["ImageId"] == STACK["cutover:image_id"]


def test_launch_template_holds_the_first_release(provisioned):
    outputs, aws = provisioned
    version = aws.ec2.describe_launch_template_versions(LaunchTemplateId=outputs["launch_template_id"])["LaunchTemplateVersions"][0]
    data = version["LaunchTemplateData"]
    assert data["ImageId"] == STACK["cutover:image_id"]
    assert base64.b64decode(data["UserData"]).decode() == STACK["cutover:user_data"]
    assert data["SecurityGroupIds"] == [outputs["instance_security_group_id"]]


def test_table_parameter_and_policy(provisioned):
    outputs, aws = provisioned
    table = aws.dynamodb.describe_table(TableName=outputs["table_name"])["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    ttl = aws.dynamodb.describe_time_to_live(TableName=outputs["table_name"])["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    assert aws.ssm.get_parameter(Name=outputs["active_color_parameter"])["Parameter"]["Value"] == "blue"

    policy = aws.iam.get_policy(PolicyArn=outputs["deployer_policy_arn"])["Policy"]
    document = aws.iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    assert {a for s in document["Statement"] for a in s["Action"]} == ALL_ACTIONS
    switch = next(s for s in document["Statement"] if s["Sid"] == "SwitchListenersAndRules")
    assert outputs["production_listener_arn"] in switch["Resource"]
    assert outputs["test_listener_arn"] in switch["Resource"]


def test_security_groups_limit_the_test_listener(provisioned):
    outputs, aws = provisioned
    group = aws.ec2.describe_security_groups(GroupIds=[outputs["alb_security_group_id"]])["SecurityGroups"][0]
    by_port = {p["FromPort"]: [r["CidrIp"] for r in p["IpRanges"]] for p in group["IpPermissions"]}
    assert by_port == {80: ["0.0.0.0/0"], 9000: ["10.40.0.0/16"]}
    instances = aws.ec2.describe_security_groups(GroupIds=[outputs["instance_security_group_id"]])["SecurityGroups"][0]
    assert [(p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]]) for p in instances["IpPermissions"]] == [
        (8080, [outputs["alb_security_group_id"]])
    ]


def test_metrics_collection_is_disabled_as_on_aws(provisioned):
    """amazon.aws's autoscaling_group disables the group metrics on every update of a group that collects none."""
    outputs, aws = provisioned
    group = outputs["asg_names"]["green"]

    def enabled():
        [described] = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        return sorted(m["Metric"] for m in described.get("EnabledMetrics", []))

    aws.autoscaling.enable_metrics_collection(
        AutoScalingGroupName=group, Granularity="1Minute", Metrics=["GroupDesiredCapacity", "GroupInServiceInstances"]
    )
    aws.autoscaling.disable_metrics_collection(AutoScalingGroupName=group, Metrics=["GroupDesiredCapacity"])
    assert enabled() == ["GroupInServiceInstances"]
    aws.autoscaling.disable_metrics_collection(AutoScalingGroupName=group)
    assert enabled() == []
    with pytest.raises(ClientError, match=r"ValidationError.*no-such-group not found"):
        aws.autoscaling.disable_metrics_collection(AutoScalingGroupName="no-such-group")
