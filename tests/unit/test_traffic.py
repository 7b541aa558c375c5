"""traffic: metric dimensions, sums, the wait for traffic to stop and the canary gate."""

from __future__ import annotations

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import dimension_value, evaluate_gate, metric_sums, wait_stopped
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import WaitTimeout

from tests.unit.fake_clock import FakeClock

LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shop-alb/50dc6c495c0c9188"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-blue/73e2d6bc24d8a067"


class FakeCloudWatch:
    """Answers GetMetricData from a list of RequestCount sums, one per call."""

    def __init__(self, request_counts, errors=0.0):
        self.request_counts = list(request_counts)
        self.errors = errors
        self.calls = []

    def get_metric_data(self, MetricDataQueries, StartTime, EndTime, aws_retry=False):
        self.calls.append(MetricDataQueries)
        count = self.request_counts.pop(0) if len(self.request_counts) > 1 else self.request_counts[0]
        values = {"RequestCount": [count], "HTTPCode_Target_5XX_Count": [self.errors]}
        return {
            "MetricDataResults": [
                {"Id": query["Id"], "Values": values[query["MetricStat"]["Metric"]["MetricName"]]} for query in MetricDataQueries
            ]
        }


def test_dimension_values_are_what_alb_publishes():
    assert dimension_value(LB) == "app/shop-alb/50dc6c495c0c9188"
    assert dimension_value(TG) == "targetgroup/shop-blue/73e2d6bc24d8a067"
    with pytest.raises(CutoverError, match="neither a load balancer nor a target group ARN"):
        dimension_value("arn:aws:ec2:us-east-1:123456789012:instance/i-1")


def test_metric_sums_asks_for_the_target_group_of_the_load_balancer():
    cloudwatch = FakeCloudWatch([42.0], errors=3.0)
    sums = metric_sums(cloudwatch, LB, TG, window=30)
    assert sums == {"RequestCount": 42.0, "HTTPCode_Target_5XX_Count": 3.0}
    dimensions = cloudwatch.calls[0][0]["MetricStat"]["Metric"]["Dimensions"]
    assert {d["Name"]: d["Value"] for d in dimensions} == {"LoadBalancer": dimension_value(LB), "TargetGroup": dimension_value(TG)}
    assert cloudwatch.calls[0][0]["MetricStat"]["Period"] == 30


def test_wait_stopped_waits_until_a_window_without_requests():
    clock = FakeClock()
    cloudwatch = FakeCloudWatch([120.0, 40.0, 3.0, 0.0])
    waited = wait_stopped(cloudwatch, LB, TG, window=10, timeout=60, clock=clock, sleep=clock.sleep)
    assert len(cloudwatch.calls) == 4
    assert 0 < waited < 60


def test_wait_stopped_times_out_naming_the_requests():
    clock = FakeClock()
    with pytest.raises(WaitTimeout, match=r"traffic of targetgroup/shop-blue/73e2d6bc24d8a067 to stop: 7 requests in the last 10 s"):
        wait_stopped(FakeCloudWatch([7.0]), LB, TG, window=10, timeout=20, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(
    ("sums", "max_5xx", "percent", "minimum", "passed", "reason"),
    [
        ({"RequestCount": 100, "HTTPCode_Target_5XX_Count": 0}, 0, None, 0, True, None),
        ({"RequestCount": 100, "HTTPCode_Target_5XX_Count": 2}, 0, None, 0, False, "2 5XX responses (at most 0 allowed)"),
        ({"RequestCount": 100, "HTTPCode_Target_5XX_Count": 2}, None, 5.0, 0, True, None),
        ({"RequestCount": 100, "HTTPCode_Target_5XX_Count": 9}, None, 5.0, 0, False, "9.0% 5XX responses (at most 5.0% allowed)"),
        ({"RequestCount": 3, "HTTPCode_Target_5XX_Count": 0}, 0, None, 50, False, "only 3 requests reached it (at least 50 needed"),
    ],
)
def test_gate(sums, max_5xx, percent, minimum, passed, reason):
    ok, reasons = evaluate_gate(sums, max_5xx, percent, minimum)
    assert ok is passed
    if reason:
        assert any(reason in r for r in reasons), reasons
    else:
        assert reasons == []
