"""At AWS's real constants: 60-second periods, published a minute after they end.

The one test here runs the sandbox uncompressed and shows, with real requests,
what the previous traffic check did: it asked CloudWatch for the last 10 seconds
in 10-second periods, read "no datapoint" as zero, and so declared the old
colour's traffic stopped at its first look, while a rule still sent requests
there. The check as it is now waits for a whole 60-second period after the
switch in which the new colour served requests, and reports the requests the old
colour still got in it. (The slowest test of the suite by design: about three
minutes.)
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from sandbox import server
from sandbox.dataplane.control import listener_urls, wait_settled
from sandbox.load import LoadLoop

from .ansible_harness import run_module
from .conftest import Clients, cli

PERIOD, LAG = 60, 60.0


@pytest.fixture(scope="module")
def aws_timed(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sandbox60")
    running = server.start(port=0, directory=directory, metric_period=PERIOD, metric_lag=LAG)
    try:
        cli("--dir", str(directory), "provision")
        outputs = json.loads((directory / "outputs.json").read_text())
        yield running, outputs, Clients(running.endpoint)
    finally:
        server.stop(directory)
        assert server.group_members(running.pid) == []


def previous_check(cloudwatch, outputs, color, window=10):
    """The traffic check as it was: Sum over the last ``window`` seconds in one ``window``-second period, missing = 0."""
    end = datetime.now(UTC)
    dims = [
        {"Name": "LoadBalancer", "Value": outputs["load_balancer_arn"].split(":loadbalancer/", 1)[1]},
        {"Name": "TargetGroup", "Value": outputs["target_group_arns"][color].split(":", 5)[5]},
    ]
    response = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m0",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount", "Dimensions": dims},
                    "Period": window,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=end - timedelta(seconds=window),
        EndTime=end,
    )
    return sum(sum(result["Values"]) for result in response["MetricDataResults"])


def test_at_60_second_periods_the_previous_check_passed_falsely_and_this_one_does_not(aws_timed):
    sandbox, outputs, aws = aws_timed
    wait_settled(sandbox.endpoint)
    production = listener_urls(sandbox.state_dir)[outputs["production_listener_arn"]]
    green = outputs["target_group_arns"]["green"]
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=outputs["asg_names"]["green"], DesiredCapacity=2)
    front = LoadLoop(production + "/", rate=20, threads=2, max_seconds=300)
    api = LoadLoop(production + "/api/orders", rate=10, threads=2, max_seconds=300)
    with front, api:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [
                d["TargetHealth"]["State"] for d in aws.elbv2.describe_target_health(TargetGroupArn=green)["TargetHealthDescriptions"]
            ]
            if states == ["healthy", "healthy"]:
                break
            time.sleep(1)
        assert states == ["healthy", "healthy"], states
        time.sleep(max(0.0, (50 - datetime.now(UTC).second) % 60))  # switch late in a minute: the next one is whole
        # the default action moves to green; the /api/* rule is forgotten and keeps forwarding to blue
        aws.elbv2.modify_listener(
            ListenerArn=outputs["production_listener_arn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": green}]
        )
        switched_at = time.time()
        time.sleep(3)
        # the previous check: no datapoint in the last 10 s (the period is open, the last one not yet published) -> "stopped"
        assert previous_check(aws.cloudwatch, outputs, "blue", 10) == 0
        assert previous_check(aws.cloudwatch, outputs, "blue", 30) == 0
        # the check now: no whole period since the switch is published yet -> not enough data, never a pass
        early = run_module(
            "cutover.bluegreen.traffic", {"service": "shop", "color": "blue", "since": switched_at, "timeout": 5}, sandbox.endpoint
        )
        assert early.get("failed") and "not enough data: no complete 60-second period since" in early["msg"], early
        # ... and once the first whole minute after the switch is published, it names what blue still served
        published = (switched_at // PERIOD + 2) * PERIOD + LAG  # that minute's end, plus the lag
        late = run_module(
            "cutover.bluegreen.traffic",
            {"service": "shop", "color": "blue", "since": switched_at, "timeout": int(published - time.time()) + 10},
            sandbox.endpoint,
        )
    assert late.get("failed"), late
    assert "blue still served" in late["msg"] and "requests in the 60-second period from" in late["msg"], late["msg"]
    # the load agrees: blue really served the /api/ requests after the switch, green the rest
    after = [s for s in api.samples if s.started > switched_at + 1]
    assert after and {s.color for s in after} == {"blue"}
    assert {s.color for s in front.samples if s.started > switched_at + 1} == {"green"}
    assert not [s for s in front.samples + api.samples if s.failed]
