"""The deployer IAM policy: only the actions the cutover.bluegreen collection calls.

Pure Python (no Pulumi): the component renders it from the pair's ARNs, and the
tests compare it with what the collection really calls.
"""

from __future__ import annotations

from typing import Any

# Read-only calls that AWS does not scope to a resource.
DESCRIBE_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeScalingActivities",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:GetMetricData",
    "ec2:DescribeLaunchTemplateVersions",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
)
SWITCH_ACTIONS = ("elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyRule")
TARGET_ACTIONS = ("elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets")
ASG_ACTIONS = (
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:DeleteTags",
    "autoscaling:ResumeProcesses",
    "autoscaling:SuspendProcesses",
    "autoscaling:UpdateAutoScalingGroup",
)
LAUNCH_TEMPLATE_ACTIONS = ("ec2:CreateLaunchTemplateVersion",)
TABLE_ACTIONS = (
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
PARAMETER_ACTIONS = ("ssm:GetParameter", "ssm:PutParameter")

ALL_ACTIONS = frozenset(
    DESCRIBE_ACTIONS
    + SWITCH_ACTIONS
    + TARGET_ACTIONS
    + ASG_ACTIONS
    + LAUNCH_TEMPLATE_ACTIONS
    + TABLE_ACTIONS
    + PARAMETER_ACTIONS
    + ("ec2:RunInstances", "ec2:CreateTags")
)


def rule_arn_pattern(listener_arn: str) -> str:
    """Rules of a listener: ``...:listener/app/x/y/z`` -> ``...:listener-rule/app/x/y/z/*``."""
    return listener_arn.replace(":listener/", ":listener-rule/", 1) + "/*"


def deployer_policy(
    *,
    listener_arns: list[str],
    target_group_arns: list[str],
    asg_arns: list[str],
    launch_template_arn: str,
    table_arn: str,
    parameter_arn: str,
) -> dict[str, Any]:
    """The policy document, every mutating action scoped to the pair's own resources."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Discover", "Effect": "Allow", "Action": sorted(DESCRIBE_ACTIONS), "Resource": "*"},
            {
                "Sid": "SwitchListenersAndRules",
                "Effect": "Allow",
                "Action": sorted(SWITCH_ACTIONS),
                "Resource": sorted(listener_arns) + sorted(rule_arn_pattern(arn) for arn in listener_arns),
            },
            {"Sid": "DrainTargets", "Effect": "Allow", "Action": sorted(TARGET_ACTIONS), "Resource": sorted(target_group_arns)},
            {"Sid": "ScaleAndTagColors", "Effect": "Allow", "Action": sorted(ASG_ACTIONS), "Resource": sorted(asg_arns)},
            {
                "Sid": "NewLaunchTemplateVersions",
                "Effect": "Allow",
                "Action": sorted(LAUNCH_TEMPLATE_ACTIONS),
                "Resource": [launch_template_arn],
            },
            {
                # UpdateAutoScalingGroup with a launch template checks that the caller
                # could launch it; allow that for this template only.
                "Sid": "LaunchFromThisTemplateOnly",
                "Effect": "Allow",
                "Action": ["ec2:RunInstances", "ec2:CreateTags"],
                "Resource": "*",
                "Condition": {"ArnEquals": {"ec2:LaunchTemplate": launch_template_arn}},
            },
            {"Sid": "LockAndJournal", "Effect": "Allow", "Action": sorted(TABLE_ACTIONS), "Resource": [table_arn]},
            {"Sid": "PublishActiveColor", "Effect": "Allow", "Action": sorted(PARAMETER_ACTIONS), "Resource": [parameter_arn]},
        ],
    }
