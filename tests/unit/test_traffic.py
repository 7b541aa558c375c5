"""traffic: periods aligned to the clock, the proof that a colour's traffic stopped, the count gate; fixed datapoints."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import (
    FAILED,
    NOT_ENOUGH_DATA,
    PASSED,
    align_down,
    align_up,
    dimension_value,
    evaluate_gate,
    gate_sums,
    judge_stopped,
    validate_period,
    wait_stopped,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import WaitTimeout

from tests.unit.fake_clock import FakeClock

LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shop-alb/50dc6c495c0c9188"
BLUE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-blue/73e2d6bc24d8a067"
GREEN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-green/83e2d6bc24d8a067"
T0 = 1_767_268_800  # 2026-01-01T12:00:00Z, a whole minute


class OnePage:
    """What ``aws.paginate`` asks of a client's paginator, over a stand-in's method that answers in one page."""

    def __init__(self, method):
        self.method, self.params = method, {}

    def paginate(self, **params):
        self.params = params
        return self

    def build_full_result(self):
        return self.method(**self.params)


class FakeCloudWatch:
    """GetMetricData over fixed datapoints ``{(metric, target group dimension): {period start: value}}``.

    Answers like CloudWatch: only periods in [StartTime, EndTime), only datapoints
    published by ``now()`` (``published`` maps a period start to when it appears).
    """

    def __init__(self, data, now, published=None):
        self.data, self.now, self.published = data, now, published or {}
        self.calls = []

    def get_paginator(self, operation):
        return OnePage(getattr(self, operation))

    def get_metric_data(self, MetricDataQueries, StartTime, EndTime, ScanBy=None, aws_retry=False, NextToken=None):
        self.calls.append({"queries": MetricDataQueries, "start": StartTime, "end": EndTime})
        results = []
        for query in MetricDataQueries:
            stat = query["MetricStat"]
            dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
            series = self.data.get((stat["Metric"]["MetricName"], dims.get("TargetGroup")), {})
            moments = [
                m
                for m in sorted(series)
                if StartTime.timestamp() <= m < EndTime.timestamp() and self.published.get(m, m + 60) <= self.now()
            ]
            results.append(
                {
                    "Id": query["Id"],
                    "Timestamps": [datetime.datetime.fromtimestamp(m, datetime.UTC) for m in moments],
                    "Values": [series[m] for m in moments],
                }
            )
        return {"MetricDataResults": results}


def test_dimension_values_are_what_alb_publishes():
    assert dimension_value(LB) == "app/shop-alb/50dc6c495c0c9188"
    assert dimension_value(BLUE) == "targetgroup/shop-blue/73e2d6bc24d8a067"
    with pytest.raises(CutoverError, match="neither a load balancer nor a target group ARN"):
        dimension_value("arn:aws:ec2:us-east-1:123456789012:instance/i-1")


def test_periods_are_aligned_to_the_clock():
    assert align_down(T0 + 59.9, 60) == T0 and align_up(T0 + 0.1, 60) == T0 + 60 and align_up(T0, 60) == T0
    assert align_down(T0 + 7, 5) == T0 + 5
    assert validate_period(60) == 60
    for bad in (0, -60, 1.5, True, "60"):
        with pytest.raises(CutoverError, match="period must be a whole number of seconds"):
            validate_period(bad)


SWITCH = T0 + 42  # the switch happened 42 s into a minute: that minute is no evidence either way


@pytest.mark.parametrize(
    ("old", "new", "verdict", "where"),
    [
        # nothing published after the switch yet: a missing datapoint proves nothing
        ({T0: 500.0}, {}, NOT_ENOUGH_DATA, None),
        # the minute of the switch has blue's requests and green's: not judged
        ({T0: 350.0}, {T0: 150.0}, NOT_ENOUGH_DATA, None),
        # no request at all in the first whole minute (no evidence), then green served and blue did not
        ({}, {T0 + 120: 5.0}, PASSED, T0 + 120),
        # green served, blue has no datapoint: proven
        ({T0: 350.0}, {T0: 150.0, T0 + 60: 500.0}, PASSED, T0 + 60),
        # blue still served in the first whole minute (a rule forgot to move), then stopped
        ({T0 + 60: 40.0}, {T0 + 60: 460.0, T0 + 120: 500.0}, PASSED, T0 + 120),
        # blue still serving in every published minute
        ({T0 + 60: 40.0, T0 + 120: 41.0}, {T0 + 60: 460.0, T0 + 120: 459.0}, FAILED, T0 + 120),
    ],
)
def test_judge_stopped_needs_a_whole_period_in_which_the_new_colour_served(old, new, verdict, where):
    found, evidence = judge_stopped(old, new, SWITCH, 60)
    assert found == verdict, evidence
    if where is not None:
        assert evidence["period_start"] == datetime.datetime.fromtimestamp(where, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert evidence["new_requests"] == new[where]


def test_the_previous_logic_passed_at_once_where_the_new_one_waits():
    """A window of 10 s asked with a 10 s period, a missing datapoint read as zero: 'stopped' on the first look."""
    now = [SWITCH + 1.0]
    blue_serving = {("RequestCount", dimension_value(BLUE)): {T0: 300.0, T0 + 60: 200.0}}  # published a minute late
    cloudwatch = FakeCloudWatch(blue_serving, lambda: now[0], published={T0: T0 + 120, T0 + 60: T0 + 180})
    old_logic_sum = sum(
        sum(r["Values"])
        for r in cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m0",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/ApplicationELB",
                            "MetricName": "RequestCount",
                            "Dimensions": [{"Name": "TargetGroup", "Value": dimension_value(BLUE)}],
                        },
                        "Period": 10,
                        "Stat": "Sum",
                    },
                }
            ],
            StartTime=datetime.datetime.fromtimestamp(now[0] - 10, datetime.UTC),
            EndTime=datetime.datetime.fromtimestamp(now[0], datetime.UTC),
        )["MetricDataResults"]
    )
    assert old_logic_sum == 0  # the previous check called this "stopped"
    clock = FakeClock()
    with pytest.raises(WaitTimeout, match="not enough data: no complete 60-second period since 2026-01-01T12:00:42Z"):
        wait_stopped(
            cloudwatch, LB, BLUE, GREEN, SWITCH, 60, timeout=30, names=("blue", "green"), clock=clock, sleep=clock.sleep, now=lambda: now[0]
        )


def test_wait_stopped_asks_for_whole_periods_of_the_given_period_after_the_switch():
    now = [SWITCH + 100]
    data = {
        ("RequestCount", dimension_value(BLUE)): {T0: 300.0, T0 + 60: 12.0},
        ("RequestCount", dimension_value(GREEN)): {T0: 100.0, T0 + 60: 400.0, T0 + 120: 410.0},
    }
    published = {T0: T0 + 90, T0 + 60: T0 + 150, T0 + 120: T0 + 210}
    cloudwatch = FakeCloudWatch(data, lambda: now[0], published)
    clock = FakeClock()

    def sleep(seconds):
        clock.sleep(seconds)
        now[0] += seconds

    waited, evidence = wait_stopped(
        cloudwatch, LB, BLUE, GREEN, SWITCH, 60, timeout=300, names=("blue", "green"), clock=clock, sleep=sleep, now=lambda: now[0]
    )
    assert evidence["verdict"] == PASSED and evidence["period_start"] == "2026-01-01T12:02:00Z" and evidence["new_requests"] == 410.0
    assert evidence["summary"] == "blue served no request in the 60-second period from 2026-01-01T12:02:00Z in which green served 410"
    assert now[0] >= T0 + 210 and waited > 0
    # five looks a period (at most 10 s apart): the proof is noticed within 10 s of its publication
    assert max(clock.sleeps) == 10.0 and now[0] - (T0 + 210) <= 10.0
    first = cloudwatch.calls[0]
    assert {q["MetricStat"]["Period"] for q in first["queries"]} == {60}  # AWS's period, not the length of some window
    assert first["start"].timestamp() == T0 + 60  # the first whole period after the switch
    dims = {tuple(sorted((d["Name"], d["Value"]) for d in q["MetricStat"]["Metric"]["Dimensions"])) for q in first["queries"]}
    assert (("LoadBalancer", dimension_value(LB)), ("TargetGroup", dimension_value(BLUE))) in dims


def test_wait_stopped_times_out_naming_the_requests_the_old_colour_still_served():
    now = [T0 + 400]
    data = {
        ("RequestCount", dimension_value(BLUE)): {T0 + 60: 40.0, T0 + 120: 37.0},
        ("RequestCount", dimension_value(GREEN)): {T0 + 60: 460.0, T0 + 120: 463.0},
    }
    clock = FakeClock()
    with pytest.raises(
        WaitTimeout, match=r"blue still served 37 requests in the 60-second period from 2026-01-01T12:02:00Z \(green served 463\)"
    ):
        wait_stopped(
            FakeCloudWatch(data, lambda: now[0]),
            LB,
            BLUE,
            GREEN,
            SWITCH,
            60,
            timeout=20,
            names=("blue", "green"),
            clock=clock,
            sleep=clock.sleep,
            now=lambda: now[0],
        )


@pytest.mark.parametrize(
    ("sums", "max_5xx", "percent", "minimum", "verdict", "reason"),
    [
        ({"RequestCount": 100, "HTTPCode_Target_5XX_Count": 0}, 0, None, 50, PASSED, None),
        ({"RequestCount": 100, "HTTPCode_Target_5XX_Count": 2}, 0, None, 50, FAILED, "2 5XX responses (at most 0 allowed)"),
        ({"RequestCount": 100, "HTTPCode_Target_5XX_Count": 2}, None, 5.0, 50, PASSED, None),
        ({"RequestCount": 100, "HTTPCode_Target_5XX_Count": 9}, None, 5.0, 50, FAILED, "9.0% 5XX responses (at most 5.0% allowed)"),
        (
            {"RequestCount": 3, "HTTPCode_Target_5XX_Count": 0},
            0,
            None,
            50,
            NOT_ENOUGH_DATA,
            "only 3 requests reached it (at least 50 needed",
        ),
        # no datapoint at all is not a pass, even with no minimum asked for
        ({}, 0, None, 0, NOT_ENOUGH_DATA, "only 0 requests reached it (at least 1 needed"),
    ],
)
def test_gate(sums, max_5xx, percent, minimum, verdict, reason):
    found, reasons = evaluate_gate(sums, max_5xx, percent, minimum)
    assert found == verdict
    if reason:
        assert any(reason in r for r in reasons), reasons
    else:
        assert reasons == []


def test_gate_sums_judge_only_periods_that_ended_after_since_and_are_over():
    data = {
        ("RequestCount", dimension_value(GREEN)): {T0 - 60: 999.0, T0: 100.0, T0 + 60: 120.0, T0 + 120: 130.0},
        ("HTTPCode_Target_5XX_Count", dimension_value(GREEN)): {T0 + 60: 2.0},
    }
    now = T0 + 150  # the period from T0 + 120 is still open
    cloudwatch = FakeCloudWatch(data, lambda: now, published={m: m for m in range(T0 - 60, T0 + 180, 60)})
    sums = gate_sums(cloudwatch, LB, GREEN, since=T0 + 10, period=60, now=datetime.datetime.fromtimestamp(now, datetime.UTC))
    assert (sums["RequestCount"], sums["HTTPCode_Target_5XX_Count"], sums["periods"]) == (220.0, 2.0, 2)
