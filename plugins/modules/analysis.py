#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: analysis
short_description: Judge the new colour of a blue-green pair on its metrics and alarms, after a switch or during a canary step
version_added: 0.2.0
description:
  - Watches the whole periods of the load balancer's CloudWatch metrics (C(AWS/ApplicationELB)) that ended after
    O(since), for O(seconds), and judges the new colour's target group on gates, each with its figures
    (the new colour, its baseline, the limit) and a verdict.
  - The gates - the target 5XX rate and the load balancer's own 5XX rate, each at most an absolute share and at most
    some percentage points above the baseline; a latency percentile of C(TargetResponseTime), at most an absolute
    value and at most a multiple of the baseline; optionally a count of 5XX responses; the named CloudWatch alarms,
    none of which may be in C(ALARM).
  - The baseline is the old colour over the same length of time just before O(since) (O(baseline=before), for a bake
    after a switch), or over the same periods (O(baseline=concurrent), for a canary step, while the old colour
    serves the rest of the traffic); the load balancer's 5XX rate is always compared with the time before O(since).
  - Too few requests (O(min_requests)), for the new colour or its baseline, is "not enough data", which fails; a
    gate never passes on missing data. A gate that fails on enough requests, or an alarm in C(ALARM), fails at
    once, before the window ends; else the module returns once the window's last period is published (or three
    periods after it ended).
  - A failure is a task failure whose message names each failed gate with its numbers; the result carries every
    gate's figures and the time from O(since) to the detection.
author:
  - cutover maintainers (@cutover)
options:
  color:
    description:
      - The new colour, judged. V(live) is what the production listener forwards to (with a split, the colour with
        the smaller share, the canary); V(idle) the other one.
    type: str
    default: live
    choices: [blue, green, idle, live]
  since:
    description:
      - When the new colour began to take production traffic (seconds since the epoch), for example the C(switched_at)
        that M(cutover.bluegreen.switch) returns.
    type: float
    required: true
  seconds:
    description:
      - How long to watch after O(since). The window is the whole periods that ended after O(since) and began
        before O(since) + O(seconds).
    type: int
    required: true
  period:
    description:
      - Seconds per period of the load balancer's metrics (AWS - 60).
    type: int
    default: 60
  baseline:
    description:
      - V(before) - the old colour over the same length of time just before O(since). V(concurrent) - the old colour
        over the same periods.
    type: str
    default: before
    choices: [before, concurrent]
  min_requests:
    description:
      - Requests the new colour (and the baseline) must have in the window for the gates to judge it; fewer is
        "not enough data". At least 1.
    type: int
    default: 50
  max_5xx:
    description:
      - The most 5XX responses of the new colour's targets in the window. Omitted, there is no count gate.
    type: int
  max_5xx_percent:
    description:
      - The highest target 5XX rate of the new colour, in percent (0 to 100). Null turns the gate off.
    type: float
    default: 1.0
  max_elb_5xx_percent:
    description:
      - The highest 5XX rate of the load balancer itself (answers no target gave), in percent (0 to 100). Null turns
        the gate off.
    type: float
    default: 1.0
  max_5xx_increase:
    description:
      - The most percentage points the target and load balancer 5XX rates may rise above their baselines. Null turns
        the relative 5XX gates off.
    type: float
    default: 1.0
  latency_percentile:
    description:
      - The percentile of C(TargetResponseTime) judged, such as V(p50), V(p90), V(p99) or V(p99.9).
    type: str
    default: p99
  max_latency_ms:
    description:
      - The highest latency percentile allowed, in milliseconds. Omitted, there is no absolute latency gate.
    type: float
  max_latency_ratio:
    description:
      - The highest latency percentile allowed as a multiple of the baseline's (1 or more). Null turns the gate off.
    type: float
    default: 1.25
  latency_slack_ms:
    description:
      - The relative latency limit is never below the baseline plus this many milliseconds, so that noise at small
        latencies does not fail a release.
    type: float
    default: 20
  alarms:
    description:
      - Names of CloudWatch alarms (metric or composite) that must not be in C(ALARM) during the window. Each must
        exist.
    type: list
    elements: str
    default: []
  progress_file:
    description:
      - A file on the machine the module runs on to which the watch appends its progress, one line each (every 10 s
        the figures so far, and when the window was judged), for a task that watches an C(async) run of this
        module (M(cutover.bluegreen.job_wait) prints them as they come).
      - The lines also go to the module's log.
    type: path
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Never changes anything. In check mode it returns at once with RV(verdict) V(skipped).
  - Needs C(cloudwatch:GetMetricData) and, with O(alarms), C(cloudwatch:DescribeAlarms).
"""

EXAMPLES = r"""
- name: Bake green for three minutes after the switch
  cutover.bluegreen.analysis:
    service: shop
    color: green
    since: "{{ switch.switched_at }}"
    seconds: 180
    latency_percentile: p99
    max_latency_ms: 500
    alarms: [shop-green-5xx]

- name: Gate a canary step against the colour that serves the rest
  cutover.bluegreen.analysis:
    service: shop
    color: green
    since: "{{ step.switched_at }}"
    seconds: 120
    baseline: concurrent
    min_requests: 20
"""

RETURN = r"""
verdict:
  description: V(passed), V(failed), V(not enough data) (the last two fail the task), or V(skipped) in check mode.
  returned: always
  type: str
  sample: passed
summary:
  description: One line - the verdict and the figures that decided it.
  returned: success
  type: str
reasons:
  description: What decided a verdict other than V(passed).
  returned: always
  type: list
  elements: str
gates:
  description:
    - Every gate - C(gate) (V(requests), V(target_5xx_rate), V(elb_5xx_rate), V(latency_p99), V(target_5xx_count),
      V(alarm)), C(kind) (V(absolute), V(relative), V(minimum), V(alarm)), C(new), C(baseline), C(limit), C(unit),
      C(verdict) and C(detail).
  returned: success
  type: list
  elements: dict
new:
  description: The new colour's figures - C(requests), C(target_5xx), C(target_5xx_percent), C(latency_ms), and the load
    balancer's C(lb_requests), C(elb_5xx), C(elb_5xx_percent).
  returned: success
  type: dict
baseline:
  description: The same figures of the baseline.
  returned: success
  type: dict
window:
  description: The judged periods - C(start), C(end), C(period), C(periods).
  returned: success
  type: dict
detected_at:
  description: When a failure was detected (seconds since the epoch), else null.
  returned: success
  type: float
detect_seconds:
  description: Seconds from O(since) to the detection of a failure, else null.
  returned: success
  type: float
waited_seconds:
  description: How long the module watched.
  returned: success
  type: float
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.analysis import (
    PASSED,
    alarm_states,
    analyse,
    validate_alarms,
    validate_limits,
    window,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, other_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, pair_module, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import validate_period

LIMITS = (
    "min_requests",
    "max_5xx",
    "max_5xx_percent",
    "max_elb_5xx_percent",
    "max_5xx_increase",
    "latency_percentile",
    "max_latency_ms",
    "max_latency_ratio",
    "latency_slack_ms",
)


def main():
    module = pair_module(
        dict(
            color=dict(type="str", default="live", choices=["blue", "green", "idle", "live"]),
            since=dict(type="float", required=True),
            seconds=dict(type="int", required=True),
            period=dict(type="int", default=60),
            baseline=dict(type="str", default="before", choices=["before", "concurrent"]),
            min_requests=dict(type="int", default=50),
            max_5xx=dict(type="int"),
            max_5xx_percent=dict(type="float", default=1.0),
            max_elb_5xx_percent=dict(type="float", default=1.0),
            max_5xx_increase=dict(type="float", default=1.0),
            latency_percentile=dict(type="str", default="p99"),
            max_latency_ms=dict(type="float"),
            max_latency_ratio=dict(type="float", default=1.25),
            latency_slack_ms=dict(type="float", default=20.0),
            alarms=dict(type="list", elements="str", default=[]),
            progress_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def operation():
        # bad input fails here, before anything is read
        limits = validate_limits({name: params[name] for name in LIMITS})
        if limits["min_requests"] < 1:
            raise CutoverError("min_requests must be at least 1 (a gate never passes on no data), got %s" % limits["min_requests"])
        period = validate_period(params["period"])
        window(params["since"], params["seconds"], period)
        alarms = validate_alarms(params["alarms"])
        pair = discover_pair(module, rules=False, health=False)
        weights = pair.production_weights if pair.split else {}
        if params["color"] == "live" and weights:
            color = min(weights, key=lambda c: (weights[c], c))
        elif params["color"] in ("live", "idle"):
            color = pair.live_color if params["color"] == "live" else pair.idle_color
        else:
            color = params["color"]
        old = other_color(color)
        cloudwatch = client(module, "cloudwatch")
        if module.check_mode:
            alarm_states(cloudwatch, alarms)  # a missing alarm fails in check mode too
            return dict(changed=False, verdict="skipped", reasons=[], color=color)
        result = analyse(
            cloudwatch,
            pair.load_balancer_arn,
            pair.colors[color]["target_group"]["arn"],
            pair.colors[old]["target_group"]["arn"],
            params["since"],
            params["seconds"],
            period,
            limits,
            alarms=alarms,
            baseline=params["baseline"],
            names=(color, old),
            progress=waits.progress_writer(module.log, params["progress_file"]),
        )
        result.update(changed=False, color=color)
        if result["verdict"] != PASSED:
            raise CutoverError("the analysis of %s: %s" % (color, result["summary"]), **result)
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
