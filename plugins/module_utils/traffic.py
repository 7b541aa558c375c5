# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the load balancer really did: request counts and errors per colour, from CloudWatch.

After a switch, "the old colour's traffic stopped" is checked against the
load balancer's own metrics (AWS/ApplicationELB RequestCount per target
group), not assumed from the listener configuration. The same numbers gate a
canary phase (HTTPCode_Target_5XX_Count of the new colour).

CloudWatch publishes an ALB metric only for periods with requests: no
datapoint means zero.
"""

from __future__ import annotations

import datetime
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import poll

NAMESPACE = "AWS/ApplicationELB"


def dimension_value(arn):
    """``...:loadbalancer/app/x/y`` -> ``app/x/y``; ``...:targetgroup/x/y`` -> ``targetgroup/x/y``."""
    resource = arn.split(":", 5)[-1]
    if resource.startswith("loadbalancer/"):
        return resource[len("loadbalancer/") :]
    if resource.startswith("targetgroup/"):
        return resource
    raise CutoverError("%s is neither a load balancer nor a target group ARN" % arn)


def metric_sums(cloudwatch, load_balancer_arn, target_group_arn, window, now=None, metrics=("RequestCount", "HTTPCode_Target_5XX_Count")):
    """Sum of each metric for the target group over the last ``window`` seconds (one GetMetricData call)."""
    end = now or utcnow()
    start = end - datetime.timedelta(seconds=window)
    dimensions = [
        {"Name": "LoadBalancer", "Value": dimension_value(load_balancer_arn)},
        {"Name": "TargetGroup", "Value": dimension_value(target_group_arn)},
    ]
    queries = [
        {
            "Id": "m%d" % index,
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dimensions},
                "Period": max(1, int(window)),
                "Stat": "Sum",
            },
            "ReturnData": True,
        }
        for index, name in enumerate(metrics)
    ]
    response = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end, aws_retry=True)
    sums = dict.fromkeys(metrics, 0.0)
    for result in response.get("MetricDataResults", []):
        name = metrics[int(result["Id"][1:])]
        sums[name] += float(sum(result.get("Values") or []))
    return sums


def wait_stopped(cloudwatch, load_balancer_arn, target_group_arn, window, timeout, progress=None, clock=time.monotonic, sleep=time.sleep):
    """Wait until the target group received no request during the last ``window`` seconds."""
    last = {}

    def check():
        last.update(metric_sums(cloudwatch, load_balancer_arn, target_group_arn, window, metrics=("RequestCount",)))
        return last["RequestCount"] == 0

    waited = poll(
        check,
        timeout,
        "the traffic of %s to stop" % target_group_arn.split(":")[-1],
        delay=1.0,
        max_delay=5.0,
        progress=progress,
        describe=lambda: "%d requests in the last %d s" % (last.get("RequestCount", 0), window),
        clock=clock,
        sleep=sleep,
    )[1]
    return waited


def evaluate_gate(sums, max_5xx, max_5xx_percent, min_requests):
    """Pure: does a colour pass its canary gate? Returns (passed, reasons)."""
    requests = sums.get("RequestCount", 0.0)
    errors = sums.get("HTTPCode_Target_5XX_Count", 0.0)
    reasons = []
    if requests < min_requests:
        reasons.append("only %d requests reached it (at least %d needed to judge)" % (requests, min_requests))
    if max_5xx is not None and errors > max_5xx:
        reasons.append("%d 5XX responses (at most %d allowed)" % (errors, max_5xx))
    if max_5xx_percent is not None and requests and 100.0 * errors / requests > max_5xx_percent:
        reasons.append("%.1f%% 5XX responses (at most %.1f%% allowed)" % (100.0 * errors / requests, max_5xx_percent))
    return not reasons, reasons
