"""traffic module against the sandbox's CloudWatch, fed by real requests: stopped and gate, on AWS's semantics."""

from __future__ import annotations

import time

import pytest

from sandbox.dataplane.control import instance, listener_urls, wait_settled
from sandbox.load import LoadLoop

from .ansible_harness import run_module


@pytest.fixture(scope="module")
def loaded(provisioned, sandbox):
    """Blue live under a bounded load; green idle with no request."""
    outputs, aws = provisioned
    wait_settled(sandbox.endpoint)
    production = listener_urls(sandbox.state_dir)[outputs["production_listener_arn"]]
    with LoadLoop(production, rate=40, threads=4, max_seconds=300) as load:
        yield outputs, aws, load


def test_traffic_stopped_and_gate(loaded, sandbox):
    outputs, aws, load = loaded
    period = sandbox.metric_period
    common = {"service": "shop", "period": period}
    began = time.time()
    # green serves nothing while blue serves: proven by the first whole period after the start with blue's requests
    result = run_module("cutover.bluegreen.traffic", {**common, "color": "green", "since": began, "timeout": 30}, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["evidence"]["old_requests"] == 0 and result["evidence"]["new_requests"] > 0
    assert result["waited_seconds"] >= sandbox.metric_lag  # a period has to end and be published first

    # the live colour's traffic will never stop: refused at once
    result = run_module("cutover.bluegreen.traffic", {**common, "color": "live", "timeout": 2}, sandbox.endpoint)
    assert result.get("failed") and "blue is the live colour of 'shop'" in result["msg"]

    # gate on blue over whole periods since the start: its requests, no 5XX
    gate = {**common, "color": "blue", "state": "gate", "since": began, "min_requests": 20}
    result = run_module("cutover.bluegreen.traffic", gate, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["passed"] is True and result["requests"] >= 20 and result["errors_5xx"] == 0
    # green got no request: not enough data, never a pass
    result = run_module("cutover.bluegreen.traffic", {**gate, "color": "green"}, sandbox.endpoint)
    assert result.get("failed") and "the gate of green: not enough data: only 0 requests reached it" in result["msg"]

    # one blue instance answers half its requests with 500: the gate fails naming the count
    group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[outputs["asg_names"]["blue"]])["AutoScalingGroups"][0]
    victim = group["Instances"][0]["InstanceId"]
    failing = time.time()
    instance(sandbox.endpoint, victim, "settings", error_rate=0.5)
    try:
        time.sleep(2 * period + sandbox.metric_lag)
        result = run_module("cutover.bluegreen.traffic", {**gate, "since": failing}, sandbox.endpoint)
    finally:
        instance(sandbox.endpoint, victim, "settings", reset=True)
    assert result.get("failed") and "the gate of blue: failed:" in result["msg"] and "5XX responses (at most 0 allowed)" in result["msg"]
    assert result["errors_5xx"] > 0
    result = run_module("cutover.bluegreen.traffic", {**gate, "since": failing, "max_5xx": 100000, "max_5xx_percent": 60}, sandbox.endpoint)
    assert not result.get("failed"), result
    assert not [s for s in load.samples if s.failed and s.started < failing]  # nothing failed but the injected errors

    # bad input
    result = run_module("cutover.bluegreen.traffic", {"service": "shop", "color": "green", "period": 0}, sandbox.endpoint)
    assert result.get("failed") and "period must be a whole number of seconds, at least 1" in result["msg"]
    result = run_module("cutover.bluegreen.traffic", {"service": "shop", "color": "green", "timeout": -1}, sandbox.endpoint)
    assert result.get("failed") and "timeout must be zero or more" in result["msg"]
    result = run_module("cutover.bluegreen.traffic", {**common, "color": "green", "state": "gate", "min_requests": 0}, sandbox.endpoint)
    assert result.get("failed") and "min_requests must be at least 1" in result["msg"]
