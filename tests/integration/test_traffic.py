"""traffic module against the sandbox's CloudWatch: stopped and gate."""

from __future__ import annotations

import datetime

from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import dimension_value

from .ansible_harness import run_module


def publish(aws_cloudwatch, outputs, color, requests, errors=0):
    dimensions = [
        {"Name": "LoadBalancer", "Value": dimension_value(outputs["load_balancer_arn"])},
        {"Name": "TargetGroup", "Value": dimension_value(outputs["target_group_arns"][color])},
    ]
    now = datetime.datetime.now(datetime.UTC)
    aws_cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {"MetricName": "RequestCount", "Dimensions": dimensions, "Timestamp": now, "Value": requests, "Unit": "Count"},
            {"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dimensions, "Timestamp": now, "Value": errors, "Unit": "Count"},
        ],
    )


def test_traffic_stopped_and_gate(provisioned, sandbox):
    outputs, aws = provisioned
    cloudwatch = aws.cloudwatch
    # green never got a request: its traffic has "stopped" at once
    result = run_module("cutover.bluegreen.traffic", {"service": "shop", "color": "green", "window": 5, "timeout": 5}, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["changed"] is False and result["requests"] == 0

    # green keeps receiving requests: the wait times out, naming the count
    publish(cloudwatch, outputs, "green", 25)
    result = run_module("cutover.bluegreen.traffic", {"service": "shop", "color": "green", "window": 60, "timeout": 2}, sandbox.endpoint)
    assert result.get("failed")
    assert "25 requests in the last 60 s" in result["msg"]

    # the live colour's traffic will never stop: refused at once
    result = run_module("cutover.bluegreen.traffic", {"service": "shop", "color": "live", "timeout": 2}, sandbox.endpoint)
    assert result.get("failed") and "blue is the live colour of 'shop'" in result["msg"]

    # canary gate on green: 25 requests, then 3 errors
    gate = {"service": "shop", "color": "green", "state": "gate", "window": 60, "min_requests": 10}
    result = run_module("cutover.bluegreen.traffic", gate, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["passed"] is True and result["requests"] == 25
    publish(cloudwatch, outputs, "green", 5, errors=3)
    result = run_module("cutover.bluegreen.traffic", gate, sandbox.endpoint)
    assert result.get("failed") and "the canary gate of green failed: 3 5XX responses (at most 0 allowed)" in result["msg"]
    result = run_module("cutover.bluegreen.traffic", dict(gate, max_5xx=5), sandbox.endpoint)
    assert not result.get("failed") and result["errors_5xx"] == 3

    # bad input
    result = run_module("cutover.bluegreen.traffic", {"service": "shop", "color": "green", "window": 0}, sandbox.endpoint)
    assert result.get("failed") and "window must be at least 1 second" in result["msg"]
    result = run_module("cutover.bluegreen.traffic", {"service": "shop", "color": "green", "timeout": -1}, sandbox.endpoint)
    assert result.get("failed") and "timeout must be zero or more" in result["msg"]
