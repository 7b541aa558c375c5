"""analysis: the window of a bake or canary step, the gate arithmetic against a baseline, the watch loop; fixed datapoints."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.analysis import (
    DEFAULT_LIMITS,
    analyse,
    early_failure,
    figures,
    judge,
    validate_limits,
    window,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import FAILED, NOT_ENOUGH_DATA, PASSED, dimension_value

from tests.unit.fake_clock import FakeClock

LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shop-alb/50dc6c495c0c9188"
BLUE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-blue/73e2d6bc24d8a067"
GREEN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-green/83e2d6bc24d8a067"
T0 = 1_767_268_800  # 2026-01-01T12:00:00Z


def test_the_window_is_whole_periods_that_ended_after_the_switch():
    # switched 42 s into a minute, baking 3 minutes: the minute of the switch counts (it ended after it)
    assert window(T0 + 42, 180, 60) == (T0, T0 + 240, T0 - 240)
    assert window(T0, 180, 60) == (T0, T0 + 180, T0 - 180)
    assert window(T0 + 3, 10, 5) == (T0, T0 + 15, T0 - 15)
    with pytest.raises(CutoverError, match="at least 1 second"):
        window(T0, 0, 60)


def test_figures_count_errors_only_where_requests_were():
    requests = {T0: 100.0, T0 + 60: 300.0, T0 + 120: 50.0}
    errors = {T0 + 60: 6.0, T0 + 180: 9.0}
    found = figures(requests, errors, 0.0421, {T0: 110.0, T0 + 60: 310.0}, {T0 + 60: 2.0}, T0, T0 + 120)
    assert found == {
        "requests": 400.0,
        "target_5xx": 6.0,
        "target_5xx_percent": 1.5,
        "latency_ms": 42.1,
        "lb_requests": 420.0,
        "elb_5xx": 2.0,
        "elb_5xx_percent": 0.476,
    }


def healthy(requests=1000.0, errors=0.0, latency=5.0, elb=0.0):
    return {
        "requests": requests,
        "target_5xx": errors,
        "target_5xx_percent": round(100 * errors / requests, 3) if requests else None,
        "latency_ms": latency,
        "lb_requests": requests,
        "elb_5xx": elb,
        "elb_5xx_percent": round(100 * elb / requests, 3) if requests else None,
    }


def gate(result, name, kind):
    return next(g for g in result["gates"] if g["gate"] == name and g["kind"] == kind)


def test_a_healthy_release_passes_every_gate_with_its_figures():
    result = judge(healthy(latency=5.2), healthy(latency=4.9), validate_limits({"max_latency_ms": 250}))
    assert result["verdict"] == PASSED and result["reasons"] == []
    relative = gate(result, "latency_p99", "relative")
    assert (relative["new"], relative["baseline"], relative["limit"], relative["verdict"]) == (5.2, 4.9, 24.9, PASSED)
    assert {(g["gate"], g["kind"]) for g in result["gates"]} == {
        ("requests", "minimum"),
        ("target_5xx_rate", "absolute"),
        ("target_5xx_rate", "relative"),
        ("elb_5xx_rate", "absolute"),
        ("elb_5xx_rate", "relative"),
        ("latency_p99", "absolute"),
        ("latency_p99", "relative"),
    }


@pytest.mark.parametrize(
    ("new", "baseline", "limits", "failed", "detail"),
    [
        # 5% errors: above the absolute 1% and more than 1 point over the baseline
        (healthy(errors=50.0), healthy(), {}, {("target_5xx_rate", "absolute"), ("target_5xx_rate", "relative")}, "target 5XX rate 5.00%"),
        # 1.8% against a baseline of 1.0%: within +1 point, but over an absolute limit of 1.5%
        (healthy(errors=18.0), healthy(errors=10.0), {"max_5xx_percent": 1.5}, {("target_5xx_rate", "absolute")}, "(at most 1.50%)"),
        # the same rise with the absolute gate off passes
        (healthy(errors=18.0), healthy(errors=10.0), {"max_5xx_percent": None}, set(), None),
        # 2.5 points above a noisy baseline of 3%: only the relative gate sees it
        (healthy(errors=55.0), healthy(errors=30.0), {"max_5xx_percent": 10}, {("target_5xx_rate", "relative")}, "5.50% against 3.00%"),
        # the load balancer's own 502s
        (healthy(elb=30.0), healthy(), {}, {("elb_5xx_rate", "absolute"), ("elb_5xx_rate", "relative")}, "load balancer 5XX rate 3.00%"),
        # 300 ms slower: over 1.25x the baseline and over +20 ms
        (healthy(latency=305.0), healthy(latency=5.0), {}, {("latency_p99", "relative")}, "p99 latency 305.0 ms against 5.0 ms"),
        # 2 ms slower at small latencies: 1.4x, but within the slack of 20 ms
        (healthy(latency=7.0), healthy(latency=5.0), {}, set(), None),
        # over an absolute latency limit
        (healthy(latency=300.0), healthy(latency=290.0), {"max_latency_ms": 250}, {("latency_p99", "absolute")}, "(at most 250 ms)"),
        # a count gate (the canary's max 5XX)
        (healthy(errors=3.0), healthy(), {"max_5xx": 0, "max_5xx_percent": 5}, {("target_5xx_count", "absolute")}, "3 target 5XX"),
    ],
)
def test_gates_fail_naming_the_numbers(new, baseline, limits, failed, detail):
    result = judge(new, baseline, validate_limits(limits))
    assert {(g["gate"], g["kind"]) for g in result["gates"] if g["verdict"] == FAILED} == failed
    assert result["verdict"] == (FAILED if failed else PASSED)
    if detail:
        assert any(detail in reason for reason in result["reasons"]), result["reasons"]


def test_too_few_requests_is_not_enough_data_never_a_pass():
    result = judge(healthy(requests=12.0), healthy(), validate_limits({}))
    assert result["verdict"] == NOT_ENOUGH_DATA
    assert "12 requests reached the new colour (at least 50 needed to judge)" in result["reasons"]
    # no traffic at all: no datapoint, no rate, still not a pass
    empty = figures({}, {}, None, {}, {}, T0, T0 + 60)
    assert judge(empty, healthy(), validate_limits({"min_requests": 1}))["verdict"] == NOT_ENOUGH_DATA
    # a baseline without traffic cannot be compared with
    result = judge(healthy(), healthy(requests=3.0), validate_limits({}))
    assert result["verdict"] == NOT_ENOUGH_DATA
    assert any("no baseline (only 3 requests before)" in r for r in result["reasons"])
    # but a failure on enough requests is a failure, whatever else lacks data
    assert judge(healthy(errors=100.0), healthy(requests=3.0), validate_limits({}))["verdict"] == FAILED


def test_an_alarm_in_alarm_fails_and_is_named():
    states = {
        "shop-green-5xx": {"state": "ALARM", "reason": "Threshold Crossed: 1 out of the last 1 datapoints [12.0]"},
        "other": {"state": "OK"},
    }
    result = judge(healthy(), healthy(), validate_limits({}), states)
    assert result["verdict"] == FAILED
    assert result["reasons"] == ["alarm shop-green-5xx is ALARM: Threshold Crossed: 1 out of the last 1 datapoints [12.0]"]
    assert early_failure(result, healthy(requests=1.0), validate_limits({}))  # an alarm needs no request count
    insufficient = judge(healthy(), healthy(), validate_limits({}), {"x": {"state": "INSUFFICIENT_DATA"}})
    assert insufficient["verdict"] == PASSED


def test_limits_are_checked_naming_the_field():
    assert validate_limits({})["latency_percentile"] == "p99" and validate_limits({}) == DEFAULT_LIMITS
    for limits, message in (
        ({"max_5xx_percent": 120}, "max_5xx_percent must be from 0 to 100"),
        ({"max_latency_ratio": 0.5}, "max_latency_ratio must be 1 or more"),
        ({"latency_percentile": "99th"}, "latency_percentile must be a percentile such as p50"),
        ({"min_requests": 2.5}, "min_requests must be a whole number"),
        ({"nonsense": 1}, "unknown gate limits: nonsense"),
    ):
        with pytest.raises(CutoverError, match=message):
            validate_limits(limits)


class OnePage:
    """What ``aws.paginate`` asks of a client's paginator, over a stand-in's method that answers in one page."""

    def __init__(self, method):
        self.method, self.params = method, {}

    def paginate(self, **params):
        self.params = params
        return self

    def build_full_result(self):
        return self.method(**self.params)


class Metrics:
    """GetMetricData and DescribeAlarms over datapoints that appear ``lag`` seconds after their period ends."""

    def __init__(self, series, now, period, lag, alarms=None):
        self.series, self.now, self.period, self.lag, self.alarms = series, now, period, lag, alarms or {}
        self.calls = 0

    def get_paginator(self, operation):
        return OnePage(getattr(self, operation))

    def get_metric_data(self, MetricDataQueries, StartTime, EndTime, ScanBy=None, aws_retry=False, NextToken=None):
        self.calls += 1
        start, end = StartTime.timestamp(), EndTime.timestamp()
        results = []
        for query in MetricDataQueries:
            stat = query["MetricStat"]
            dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
            key = (stat["Metric"]["MetricName"], dims.get("TargetGroup", "lb"), stat["Stat"])
            points = self.series.get(key, {})
            visible = {m: v for m, v in points.items() if start <= m < end and m + self.period + self.lag <= self.now()}
            if stat["Period"] > self.period:  # a percentile over whole windows: the test gives it per bucket start
                visible = {m: v for m, v in visible.items() if (m - start) % stat["Period"] == 0}
            results.append(
                {
                    "Id": query["Id"],
                    "Timestamps": [datetime.datetime.fromtimestamp(m, datetime.UTC) for m in sorted(visible)],
                    "Values": [visible[m] for m in sorted(visible)],
                }
            )
        return {"MetricDataResults": results}

    def describe_alarms(self, AlarmNames, AlarmTypes=None, aws_retry=False):
        return {"MetricAlarms": [{"AlarmName": n, "StateValue": self.alarms[n](self.now())} for n in AlarmNames if n in self.alarms]}


def steady(start, end, per_period, period):
    return dict.fromkeys(range(start, end, period), per_period)


def bake_series(switch, period, errors_per_period=0.0, latency=0.004):
    before, after = steady(switch - 600, switch, 100.0, period), steady(switch, switch + 600, 100.0, period)
    green, blue = dimension_value(GREEN), dimension_value(BLUE)
    series = {
        ("RequestCount", blue, "Sum"): before,
        ("RequestCount", green, "Sum"): after,
        ("RequestCount", "lb", "Sum"): {**before, **after},
        ("TargetResponseTime", blue, "p99"): dict.fromkeys(range(switch - 600, switch, period), 0.004),
        ("TargetResponseTime", green, "p99"): dict.fromkeys(range(switch - 600, switch + 600, period), latency),
    }
    if errors_per_period:
        series["HTTPCode_Target_5XX_Count", green, "Sum"] = dict.fromkeys(after, errors_per_period)
    return series


def run(series, switch, seconds, period, lag, alarms=None, names=(), limits=None):
    clock = FakeClock(start=switch)
    metrics = Metrics(series, clock, period, lag, alarms)
    result = analyse(
        metrics, LB, GREEN, BLUE, switch, seconds, period, limits or {}, alarms=list(names), clock=clock, sleep=clock.sleep, now=clock
    )
    return result, clock, metrics


def test_a_good_release_passes_once_the_last_period_is_published():
    switch = T0  # whole periods: the window is exactly the bake
    result, clock, _ = run(bake_series(switch, 5), switch, 15, period=5, lag=3)
    assert result["verdict"] == PASSED and result["complete"]
    assert result["new"]["requests"] == 300.0 and result["baseline"]["requests"] == 300.0
    assert switch + 15 + 3 <= clock.now < switch + 15 + 3 + 5  # the last period's datapoints, then at once
    assert result["detect_seconds"] is None


def test_a_failing_release_is_caught_in_the_first_period_with_enough_requests():
    switch = T0
    result, clock, _ = run(bake_series(switch, 60, errors_per_period=5.0), switch, 180, period=60, lag=60)
    assert result["verdict"] == FAILED and not result["complete"]
    assert "target 5XX rate 5.00% of 100 requests (at most 1.00%)" in result["summary"]
    # the first minute's datapoints arrive a minute after it ends: detected then, not after the whole bake
    assert 120 <= result["detect_seconds"] < 140 and clock.now < switch + 180


def test_a_slow_release_fails_its_latency_gate():
    switch = T0
    result, _, _ = run(bake_series(switch, 5, latency=0.300), switch, 15, period=5, lag=3)
    assert result["verdict"] == FAILED
    assert "p99 latency 300.0 ms against 4.0 ms before" in result["summary"]


def test_no_traffic_after_the_switch_is_not_enough_data_after_the_delay():
    switch = T0
    series = bake_series(switch, 5)
    series["RequestCount", dimension_value(GREEN), "Sum"] = {}
    result, clock, _ = run(series, switch, 15, period=5, lag=3)
    assert result["verdict"] == NOT_ENOUGH_DATA and not result["complete"]
    assert clock.now >= switch + 15 + 3 * 5  # it waited for late datapoints before giving up


def test_an_alarm_that_fires_fails_the_bake_at_once():
    switch = T0
    alarms = {"shop-green-5xx": lambda now: "ALARM" if now >= switch + 9 else "OK"}
    result, clock, _ = run(bake_series(switch, 5), switch, 60, period=5, lag=3, alarms=alarms, names=["shop-green-5xx"])
    assert result["verdict"] == FAILED and result["reasons"] == ["alarm shop-green-5xx is ALARM"]
    assert 9 <= result["detect_seconds"] < 12 and clock.now < switch + 60


def test_a_named_alarm_must_exist():
    with pytest.raises(CutoverError, match="no CloudWatch alarm named nosuch"):
        run(bake_series(T0, 5), T0, 15, period=5, lag=3, alarms={}, names=["nosuch"])
