"""The sandbox's CloudWatch for the load balancer: periods, lag, no zeros, percentiles, alarms; as AWS does it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sandbox.dataplane import cloudwatch, metrics
from sandbox.dataplane.cloudwatch import Aggregate, AlarmRule, Settings, Store, buckets, evaluate, percentile, statistic

ACCOUNT, REGION = "123456789012", "us-east-1"
LB, BLUE, GREEN = "app/shop-alb/1", "targetgroup/shop-blue/b", "targetgroup/shop-green/g"
T0 = 1_767_268_800  # 2026-01-01T12:00:00Z
TOPOLOGY = metrics.Topology(frontends={"l_1": (LB, ACCOUNT, REGION)}, backends={"tg_b": BLUE, "tg_g": GREEN})


def counts(ok=0, errors=0, elb=0, ms=4):
    found = metrics.Counts()
    for _ in range(ok):
        found.add(200, "i-1_8080", ms)
    for _ in range(errors):
        found.add(500, "i-1_8080", ms)
    for _ in range(elb):
        found.add(502, "i-1_8080", -1)  # the target never answered: the load balancer's 502
    return found


def published(store, name, dims):
    points, unit = store.points(ACCOUNT, REGION, cloudwatch.NAMESPACE, name, dims)
    return dict(points), unit


def test_periods_are_aligned_published_after_the_lag_and_zeros_are_not_published():
    store = Store()
    publisher = metrics.Publisher(store, Settings(period=5, lag=3))
    publisher.add_second(T0 + 1, {("l_1", "tg_b"): counts(ok=10, errors=2, elb=1)}, TOPOLOGY)
    publisher.add_second(T0 + 4, {("l_1", "tg_b"): counts(ok=5)}, TOPOLOGY)
    publisher.add_second(T0 + 6, {("l_1", "tg_b"): counts(ok=7)}, TOPOLOGY)
    publisher.sample_hosts(T0 + 1, [(ACCOUNT, REGION, LB, BLUE, 2, 0), (ACCOUNT, REGION, LB, GREEN, 0, 0)])
    publisher.sample_hosts(T0 + 2, [(ACCOUNT, REGION, LB, BLUE, 1, 1), (ACCOUNT, REGION, LB, GREEN, 0, 0)])
    blue = {"LoadBalancer": LB, "TargetGroup": BLUE}
    assert publisher.publish_due(T0 + 7.9) == 0 and store.series() == []  # the period ended at T0+5; the lag is 3 s
    assert publisher.publish_due(T0 + 8.0) == 1
    requests, unit = published(store, "RequestCount", blue)
    assert list(requests) == [T0] and unit == "Count"  # timestamped with the period's start
    point = requests[T0]
    assert (point.sample_count, point.total, point.minimum, point.maximum) == (18.0, 18.0, 1.0, 1.0)  # ALB's counts: samples of 1
    assert published(store, "HTTPCode_Target_5XX_Count", blue)[0][T0].total == 2.0
    assert published(store, "HTTPCode_Target_2XX_Count", blue)[0][T0].total == 15.0
    assert published(store, "HTTPCode_Target_4XX_Count", blue)[0] == {}  # a zero is no datapoint
    assert published(store, "HTTPCode_ELB_5XX_Count", blue)[0] == {}  # a load-balancer metric only
    assert published(store, "HTTPCode_ELB_5XX_Count", {"LoadBalancer": LB})[0][T0].total == 1.0
    assert published(store, "RequestCount", {"LoadBalancer": LB})[0][T0].total == 18.0
    # green had no request: no RequestCount at all, but its health gauges, zeros included
    assert published(store, "RequestCount", {"LoadBalancer": LB, "TargetGroup": GREEN})[0] == {}
    assert published(store, "HealthyHostCount", {"LoadBalancer": LB, "TargetGroup": GREEN})[0][T0].maximum == 0.0
    healthy = published(store, "HealthyHostCount", blue)[0][T0]
    assert (healthy.minimum, healthy.maximum, healthy.total / healthy.sample_count) == (1.0, 2.0, 1.5)
    times = published(store, "TargetResponseTime", blue)[0][T0]
    assert times.sample_count == 17 and times.values and max(times.values) == 0.004  # answered requests only
    assert publisher.publish_due(T0 + 13.0) == 1 and published(store, "RequestCount", blue)[0][T0 + 5].total == 7.0


def test_statistics_and_percentiles_come_from_the_real_distribution():
    one = Aggregate.of([0.001] * 98 + [0.200, 0.900])
    two = Aggregate.of([0.002] * 100)
    assert statistic([one], "p50") == 0.001 and statistic([one], "p99") == 0.2 and statistic([one], "p100") == 0.9
    assert statistic([one, two], "p99") == 0.002 and statistic([one, two], "p99.5") == 0.2
    assert statistic([one, two], "SampleCount") == 200 and statistic([one, two], "Maximum") == 0.9
    assert statistic([Aggregate.count(40), Aggregate.count(2)], "Sum") == 42.0
    assert statistic([Aggregate.count(40)], "p99") == 1.0  # counts are samples of 1
    assert statistic([Aggregate(3, 3.0, 0.0, 2.0)], "p90") is None  # a statistic set without its samples has no percentile
    assert statistic([], "Sum") is None and statistic([one], "median") is None
    assert percentile([5, 1, 4, 2, 3], 50) == 3 and percentile([], 99) is None


def test_query_buckets_start_at_the_rounded_start_time_and_step_by_the_query_period():
    points = [(T0 + m, Aggregate.count(1)) for m in range(0, 60, 5)]
    # a 20-second window of 5-second periods asked for from T0+7 (rounded down to T0+5) as one bucket per 20 s
    grouped = buckets(points, T0 + 7, T0 + 45, 20, 5)
    assert [(moment, len(group)) for moment, group in grouped] == [(T0 + 5, 4), (T0 + 25, 4)]
    # a period shorter than the metric's: the stored periods as they are
    assert [m for m, _ in buckets(points, T0, T0 + 11, 1, 5)] == [T0, T0 + 5, T0 + 10]


RULE = AlarmRule(period=60, evaluation_periods=3, datapoints_to_alarm=2, comparison="GreaterThanOrEqualToThreshold", threshold=5.0)
NOW = T0 + 300 + 1  # the periods from T0+240, +180, +120, ... have ended


@pytest.mark.parametrize(
    ("values", "treat", "state", "expected"),
    [
        # enough real datapoints: the most recent three decide, missing data plays no part
        ({240: 9, 180: 1, 120: 7}, "missing", "OK", "ALARM"),
        ({240: 9, 180: 1, 120: 1, 60: 9}, "breaching", "OK", "OK"),
        # fewer than three: missing points are filled as the alarm says
        ({240: 9}, "missing", "OK", "OK"),
        ({240: 9}, "breaching", "OK", "ALARM"),
        ({240: 9}, "notBreaching", "ALARM", "OK"),
        ({240: 9, 120: 8}, "missing", "OK", "ALARM"),
        # nothing at all in the evaluation range
        ({}, "missing", "OK", "INSUFFICIENT_DATA"),
        ({}, "ignore", "ALARM", "ALARM"),
        ({}, "breaching", "OK", "ALARM"),
        ({}, "notBreaching", "ALARM", "OK"),
        # older than the evaluation range (3 + a few periods): as good as missing
        ({-300: 9, -240: 9}, "missing", "ALARM", "INSUFFICIENT_DATA"),
        # the period still open is not evaluated
        ({300: 9}, "missing", "OK", "INSUFFICIENT_DATA"),
    ],
)
def test_alarms_evaluate_like_cloudwatch(values, treat, state, expected):
    rule = AlarmRule(**{**RULE.__dict__, "treat_missing": treat})
    result = evaluate(rule, {T0 + k: float(v) for k, v in values.items()}, NOW, state)
    assert result.state == expected, result.reason


def test_an_alarm_reason_names_the_datapoints_like_cloudwatch():
    rule = AlarmRule(period=5, evaluation_periods=1, datapoints_to_alarm=1, comparison="GreaterThanThreshold", threshold=2.0)
    result = evaluate(rule, {T0: 6.0}, T0 + 9, "OK")
    assert result.state == "ALARM"
    assert result.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [6.0 (01/01/26 12:00:00)] was greater than the threshold (2.0) "
        "(minimum 1 datapoint for OK -> ALARM transition)."
    )
    assert result.data["recentDatapoints"] == [6.0]


# -- through the API (moto in this process, patched like the sandbox daemon) ------------------------------------------
@pytest.fixture
def api():
    with mock_aws():
        cloudwatch.install(Settings(period=5, lag=3))
        cloudwatch.STORE.clear()
        try:
            yield boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION).client("cloudwatch")
        finally:
            cloudwatch.uninstall()
            cloudwatch.STORE.clear()


def now_minus(seconds):
    return int(datetime.now(UTC).timestamp()) // 5 * 5 - seconds


def publish_recent(start):
    publisher = metrics.Publisher(cloudwatch.STORE, Settings(period=5, lag=3))
    for offset, bucket in (
        (1, {("l_1", "tg_b"): counts(ok=95, errors=5, ms=4)}),
        (2, {("l_1", "tg_b"): counts(ok=1, ms=900)}),
        (6, {("l_1", "tg_g"): counts(ok=10, ms=3)}),
    ):
        publisher.add_second(start + offset, bucket, TOPOLOGY)
    publisher.publish_due(start + 60)
    return start


def test_get_metric_statistics_and_data_answer_with_alb_semantics(api):
    start = publish_recent(now_minus(30))
    blue = [{"Name": "LoadBalancer", "Value": LB}, {"Name": "TargetGroup", "Value": BLUE}]  # any order
    window = {"StartTime": datetime.fromtimestamp(start, UTC), "EndTime": datetime.fromtimestamp(start + 10, UTC)}
    sums = api.get_metric_statistics(
        Namespace="AWS/ApplicationELB", MetricName="RequestCount", Dimensions=blue, Period=10, Statistics=["Sum", "Average"], **window
    )["Datapoints"]
    assert [(p["Sum"], p["Average"], p["Unit"]) for p in sums] == [(101.0, 1.0, "Count")]
    lb_only = api.get_metric_statistics(
        Namespace="AWS/ApplicationELB",
        MetricName="RequestCount",
        Dimensions=[{"Name": "LoadBalancer", "Value": LB}],
        Period=5,
        Statistics=["Sum"],
        **window,
    )["Datapoints"]
    assert sorted(p["Sum"] for p in lb_only) == [10.0, 101.0]  # the load balancer's own series, per period
    extended = api.get_metric_statistics(
        Namespace="AWS/ApplicationELB",
        MetricName="TargetResponseTime",
        Dimensions=blue,
        Period=5,
        ExtendedStatistics=["p50", "p99"],
        **window,
    )["Datapoints"]
    assert extended[0]["ExtendedStatistics"] == {"p50": 0.004, "p99": 0.004} and "Sum" not in extended[0]
    with pytest.raises(ClientError, match="Only one of Statistics or ExtendedStatistics"):
        api.get_metric_statistics(
            Namespace="AWS/ApplicationELB",
            MetricName="RequestCount",
            Dimensions=blue,
            Period=5,
            Statistics=["Sum"],
            ExtendedStatistics=["p99"],
            **window,
        )

    def query(query_id, name, dims, stat, period=5):
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": dims},
                "Period": period,
                "Stat": stat,
            },
        }

    green = [{"Name": "TargetGroup", "Value": GREEN}, {"Name": "LoadBalancer", "Value": LB}]
    results = api.get_metric_data(
        MetricDataQueries=[
            query("blue_p99", "TargetResponseTime", blue, "p99", 10),
            query("green", "RequestCount", green, "Sum"),
            query("blue_5xx", "HTTPCode_Target_5XX_Count", blue, "Sum"),
            query("green_5xx", "HTTPCode_Target_5XX_Count", green, "Sum"),
        ],
        **window,
    )["MetricDataResults"]
    found = {r["Id"]: r for r in results}
    assert found["blue_p99"]["Values"] == [0.004]  # 96 answers at 4 ms and one at 900 ms: p99 is 4 ms
    assert found["green"]["Values"] == [10.0] and found["green"]["Timestamps"][0].timestamp() == start + 5
    assert found["blue_5xx"]["Values"] == [5.0]
    assert found["green_5xx"]["Values"] == []  # no 5XX: no datapoint, not a zero


def test_nobody_can_write_the_load_balancers_metrics(api):
    with pytest.raises(ClientError, match="The value AWS/ApplicationELB for parameter Namespace is invalid"):
        api.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=[{"MetricName": "RequestCount", "Value": 500.0}])
    api.put_metric_data(Namespace="Shop", MetricData=[{"MetricName": "Orders", "Value": 3.0}])  # a custom namespace is fine


def test_alarms_start_without_data_and_follow_the_metric(api):
    start = publish_recent(now_minus(30))
    blue = [{"Name": "TargetGroup", "Value": BLUE}, {"Name": "LoadBalancer", "Value": LB}]
    alarm = {
        "AlarmName": "shop-blue-5xx",
        "Namespace": "AWS/ApplicationELB",
        "MetricName": "HTTPCode_Target_5XX_Count",
        "Dimensions": blue,
        "Statistic": "Sum",
        "Period": 5,
        "EvaluationPeriods": 1,
        "Threshold": 3.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }
    api.put_metric_alarm(**alarm)
    described = api.describe_alarms(AlarmNames=["shop-blue-5xx"])["MetricAlarms"][0]
    assert described["StateValue"] == "INSUFFICIENT_DATA"  # AWS: a new alarm has no data yet
    # evaluated just after the period with 5 errors: ALARM
    assert cloudwatch.evaluate_alarms(start + 5 + 1) == 1
    described = api.describe_alarms(AlarmNames=["shop-blue-5xx"])["MetricAlarms"][0]
    assert described["StateValue"] == "ALARM" and "[5.0 (" in described["StateReason"]
    assert json.loads(described["StateReasonData"])["recentDatapoints"] == [5.0]
    assert cloudwatch.evaluate_alarms(start + 5 + 2) == 0  # no change, no history entry
    # the next periods have no 5XX datapoint: CloudWatch keeps judging the most recent real datapoint in its
    # evaluation range (a few periods more than EvaluationPeriods); once none is left, notBreaching means OK
    assert cloudwatch.evaluate_alarms(start + 10 + 1) == 0
    assert cloudwatch.evaluate_alarms(start + 5 * (1 + cloudwatch.EXTRA_PERIODS) + 1) == 0
    assert cloudwatch.evaluate_alarms(start + 5 * (2 + cloudwatch.EXTRA_PERIODS) + 1) == 1
    assert api.describe_alarms(AlarmNames=["shop-blue-5xx"])["MetricAlarms"][0]["StateValue"] == "OK"
    # an ALB alarm's period is a whole number of the metric's periods
    with pytest.raises(ClientError, match="Period must be a multiple of 5"):
        api.put_metric_alarm(**{**alarm, "AlarmName": "odd", "Period": 7})
    with pytest.raises(ClientError, match="DatapointsToAlarm must be less than or equal to EvaluationPeriods"):
        api.put_metric_alarm(**{**alarm, "AlarmName": "more", "DatapointsToAlarm": 2})


def test_alarms_on_custom_metrics_are_evaluated_too(api):
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=12)
    api.put_metric_data(Namespace="Shop", MetricData=[{"MetricName": "Failures", "Value": 7.0, "Timestamp": moment}])
    api.put_metric_alarm(
        AlarmName="shop-failures",
        Namespace="Shop",
        MetricName="Failures",
        Statistic="Maximum",
        Period=10,
        EvaluationPeriods=2,
        DatapointsToAlarm=1,
        Threshold=5.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.evaluate_alarms(datetime.now(UTC).timestamp())
    assert api.describe_alarms(AlarmNames=["shop-failures"])["MetricAlarms"][0]["StateValue"] == "ALARM"
