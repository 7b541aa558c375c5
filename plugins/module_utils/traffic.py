# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the load balancer really did: requests, errors and latency per colour, from CloudWatch, on its real semantics.

``AWS/ApplicationELB`` metrics are aggregates per period (60 seconds on AWS)
aligned to the clock, timestamped with the period's start, published some time
after the period ended, and absent altogether for a period in which nothing
happened: no ``RequestCount`` datapoint for a target group without requests,
no 5XX datapoint without 5XX answers. So:

- only whole periods are judged, and only those that ended after the moment
  that matters (the switch): a period still open, or not published yet, is no
  evidence;
- a missing datapoint is not a zero by itself. "The old colour served nothing"
  counts only for a period, wholly after the switch, in which the new colour's
  datapoint shows that it served requests (the load balancer publishes a
  period's datapoints together);
- a gate with too few requests says "not enough data"; it never passes.

The period is an input (AWS's 60 seconds by default). The pure functions here
(period alignment, the proof that traffic stopped, the canary gate) are tested
with fixed datapoints; the rest reads CloudWatch with one GetMetricData call per
look.
"""

from __future__ import annotations

import datetime
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import paginate
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, waiter_for

NAMESPACE = "AWS/ApplicationELB"
DEFAULT_PERIOD = 60  # AWS/ApplicationELB publishes 60-second periods
PASSED = "passed"
FAILED = "failed"
NOT_ENOUGH_DATA = "not enough data"


# -- periods (pure) ------------------------------------------------------------------------------
def validate_period(period):
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise CutoverError("period must be a whole number of seconds, at least 1 (AWS/ApplicationELB: 60), got %r" % (period,))
    return period


def align_down(moment, period):
    """The start of the period (aligned to the clock) that contains ``moment`` (epoch seconds)."""
    return int(moment // period * period)


def align_up(moment, period):
    """The first period boundary at or after ``moment``."""
    down = align_down(moment, period)
    return down if down == moment else down + period


def epoch(moment):
    """Epoch seconds of a datetime (naive ones are UTC) or a number."""
    if isinstance(moment, (int, float)):
        return float(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def stamp(moment):
    """``2026-01-01T12:00:05Z`` of epoch seconds."""
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_time(moment):
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%H:%M:%S")


# -- reading CloudWatch ------------------------------------------------------------------------
def dimension_value(arn):
    """``...:loadbalancer/app/x/y`` -> ``app/x/y``; ``...:targetgroup/x/y`` -> ``targetgroup/x/y``."""
    resource = arn.split(":", 5)[-1]
    if resource.startswith("loadbalancer/"):
        return resource[len("loadbalancer/") :]
    if resource.startswith("targetgroup/"):
        return resource
    raise CutoverError("%s is neither a load balancer nor a target group ARN" % arn)


def dimensions(load_balancer_arn, target_group_arn=None):
    """ALB's dimensions: the load balancer's own series, or one target group's of it."""
    found = [{"Name": "LoadBalancer", "Value": dimension_value(load_balancer_arn)}]
    if target_group_arn:
        found.insert(0, {"Name": "TargetGroup", "Value": dimension_value(target_group_arn)})
    return found


def query(query_id, metric, dims, stat, period):
    """One GetMetricData query."""
    return {
        "Id": query_id,
        "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dims}, "Period": int(period), "Stat": stat},
        "ReturnData": True,
    }


def read_series(cloudwatch, queries, start, end):
    """``{query id: {period start (epoch int): value}}`` over ``[start, end)``, in one GetMetricData call (and its pages).

    A query's datapoints may come in several pages, each page a result of that query: they are put together.
    """
    found = {q["Id"]: {} for q in queries}
    response = paginate(
        cloudwatch,
        "get_metric_data",
        MetricDataQueries=queries,
        StartTime=datetime.datetime.fromtimestamp(start, datetime.timezone.utc),
        EndTime=datetime.datetime.fromtimestamp(end, datetime.timezone.utc),
        ScanBy="TimestampAscending",
    )
    for result in response.get("MetricDataResults", []):
        series = found.setdefault(result["Id"], {})
        for moment, value in zip(result.get("Timestamps") or [], result.get("Values") or [], strict=False):
            series[int(epoch(moment))] = series.get(int(epoch(moment)), 0.0) + float(value)
    return found


def total(series, start=None, end=None):
    """Sum of a series' values whose period starts in ``[start, end)``."""
    return float(sum(v for moment, v in series.items() if (start is None or moment >= start) and (end is None or moment < end)))


# -- "the old colour's traffic stopped" (pure) -------------------------------------------------------
def judge_stopped(old, new, since, period):
    """Whether the periods so far prove that the old colour's traffic stopped at ``since``.

    ``old`` and ``new`` are RequestCount per period start. Judged are the periods
    that started at or after ``since`` and in which the new colour served
    requests. Returns ``(verdict, evidence)``: PASSED at the first such period
    without a request to the old colour; FAILED while every such period still
    shows requests to it; NOT_ENOUGH_DATA while there is no such period.
    """
    first = align_up(since, period)
    judged = sorted(moment for moment, value in new.items() if moment >= first and value > 0)
    still = []
    for moment in judged:
        evidence = {
            "period_start": stamp(moment),
            "period_seconds": period,
            "new_requests": new[moment],
            "old_requests": old.get(moment, 0.0),
        }
        if not old.get(moment):
            return PASSED, evidence
        still.append(evidence)
    if still:
        return FAILED, still[-1]
    return NOT_ENOUGH_DATA, {"since": stamp(since), "first_period_start": stamp(first), "period_seconds": period}


def describe_stopped(verdict, evidence, old_color, new_color):
    if verdict == PASSED:
        return "%s served no request in the %d-second period from %s in which %s served %d" % (
            old_color,
            evidence["period_seconds"],
            evidence["period_start"],
            new_color,
            evidence["new_requests"],
        )
    if verdict == FAILED:
        return "%s still served %d requests in the %d-second period from %s (%s served %d)" % (
            old_color,
            evidence["old_requests"],
            evidence["period_seconds"],
            evidence["period_start"],
            new_color,
            evidence["new_requests"],
        )
    return "not enough data: no complete %d-second period since %s in which %s served requests has been published yet" % (
        evidence["period_seconds"],
        evidence["since"],
        new_color,
    )


def wait_stopped(
    cloudwatch,
    load_balancer_arn,
    old_target_group_arn,
    new_target_group_arn,
    since,
    period,
    timeout,
    names=("the old colour", "the new colour"),
    progress=None,
    clock=time.monotonic,
    sleep=time.sleep,
    now=None,
    waiter=None,
):
    """Wait until a period after ``since`` proves that the old target group's traffic stopped; returns (waited, evidence)."""
    wall = now or (lambda: epoch(utcnow()))
    old_dims = dimensions(load_balancer_arn, old_target_group_arn)
    new_dims = dimensions(load_balancer_arn, new_target_group_arn)
    queries = [query("old", "RequestCount", old_dims, "Sum", period), query("new", "RequestCount", new_dims, "Sum", period)]
    last = {"verdict": NOT_ENOUGH_DATA, "evidence": {"since": stamp(since), "period_seconds": period}}

    def check():
        start = align_up(since, period)
        end = max(align_down(wall(), period), start + period)
        series = read_series(cloudwatch, queries, start, end)
        verdict, evidence = judge_stopped(series.get("old", {}), series.get("new", {}), since, period)
        last.update(verdict=verdict, evidence=evidence)
        return verdict == PASSED

    # Five looks per period (1 to 10 s apart; one GetMetricData each): the proof is noticed within a fifth of a
    # period of its publication (looks half a period apart were up to 2.5 s late on 5-second periods).
    pace = max(1.0, min(period / 5.0, 10.0))
    waiter = waiter_for(waiter, progress, clock, sleep, delay=pace, max_delay=pace, factor=1.5)
    condition = Condition(
        "a %d-second period proving that the traffic of %s stopped" % (period, names[0]),
        check,
        lambda: describe_stopped(last["verdict"], last["evidence"], *names),
    )
    waited = waiter.wait(condition, timeout).seconds
    return waited, dict(last["evidence"], verdict=last["verdict"], summary=describe_stopped(last["verdict"], last["evidence"], *names))


# -- the simple count gate (pure) -----------------------------------------------------------------------
def evaluate_gate(sums, max_5xx, max_5xx_percent, min_requests):
    """Does a colour pass a count gate? Returns (verdict, reasons); too few requests is NOT_ENOUGH_DATA, never a pass."""
    requests = sums.get("RequestCount", 0.0)
    errors = sums.get("HTTPCode_Target_5XX_Count", 0.0)
    reasons = []
    if max_5xx is not None and errors > max_5xx:
        reasons.append("%d 5XX responses (at most %d allowed)" % (errors, max_5xx))
    if max_5xx_percent is not None and requests and 100.0 * errors / requests > max_5xx_percent:
        reasons.append("%.1f%% 5XX responses (at most %.1f%% allowed)" % (100.0 * errors / requests, max_5xx_percent))
    if reasons:
        return FAILED, reasons
    if requests < max(min_requests, 1):
        return NOT_ENOUGH_DATA, ["only %d requests reached it (at least %d needed to judge)" % (requests, max(min_requests, 1))]
    return PASSED, []


def gate_sums(cloudwatch, load_balancer_arn, target_group_arn, since, period, now=None):
    """RequestCount and HTTPCode_Target_5XX_Count of the periods that ended after ``since`` and are over by ``now``."""
    end = align_down(epoch(now or utcnow()), period)
    start = align_down(since, period)
    dims = dimensions(load_balancer_arn, target_group_arn)
    queries = [query("r", "RequestCount", dims, "Sum", period), query("e", "HTTPCode_Target_5XX_Count", dims, "Sum", period)]
    if end <= start:
        return {"RequestCount": 0.0, "HTTPCode_Target_5XX_Count": 0.0, "periods": 0, "start": stamp(start), "end": stamp(start)}
    series = read_series(cloudwatch, queries, start, end)
    return {
        "RequestCount": total(series["r"]),
        "HTTPCode_Target_5XX_Count": total(series["e"]),
        "periods": (end - start) // period,
        "start": stamp(start),
        "end": stamp(end),
    }
