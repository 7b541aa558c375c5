#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: traffic
short_description: Check what traffic a colour of a blue-green pair really receives
version_added: 0.1.0
description:
  - Reads the load balancer's CloudWatch metrics (namespace C(AWS/ApplicationELB)) of a colour's target group,
    on CloudWatch's real semantics - aggregates per O(period) aligned to the clock, published some time after the
    period ended, and no datapoint at all for a period without requests. Only whole periods are judged, and only
    those after O(since).
  - With O(state=stopped), waits for a period that proves the colour's traffic stopped - a period that began at or
    after O(since) in which the other colour served requests and this one none. A missing datapoint alone proves
    nothing; until such a period is published the check has "not enough data", and it times out saying so.
  - With O(state=gate), judges the colour on its requests and 5XX responses in the periods that ended after
    O(since); too few requests is "not enough data", which fails the gate (it never passes).
author:
  - cutover maintainers (@cutover)
options:
  color:
    description:
      - The colour to check; V(idle) and V(live) are resolved from the production listener when the module runs.
    type: str
    required: true
    choices: [blue, green, idle, live]
  state:
    description:
      - V(stopped) waits until the colour's traffic is proven stopped; V(gate) checks its error numbers.
    type: str
    default: stopped
    choices: [stopped, gate]
  period:
    description:
      - Seconds per period of the load balancer's metrics. AWS publishes C(AWS/ApplicationELB) in 60-second
        periods; only a place that publishes shorter ones (a sandbox) needs another value.
    type: int
    default: 60
  since:
    description:
      - The moment, in seconds since the epoch, before which nothing counts; for example the C(switched_at) that
        M(cutover.bluegreen.switch) returns.
      - With O(state=stopped) the default is when the module starts; with O(state=gate), O(window) seconds before it.
    type: float
  window:
    description:
      - With O(state=gate) and no O(since), how many seconds back to judge (whole periods that ended in them).
    type: int
    default: 300
  wait_timeout:
    description:
      - With O(state=stopped), how long to wait, in seconds (0 or more). A proof needs a whole period after O(since)
        and its publication, so give it at least two periods and the publication delay.
    aliases: [timeout]
    default: 300
  max_5xx:
    description:
      - With O(state=gate), the most 5XX responses allowed.
    type: int
    default: 0
  max_5xx_percent:
    description:
      - With O(state=gate), the highest share of 5XX responses allowed, in percent.
    type: float
  min_requests:
    description:
      - With O(state=gate), how many requests must have reached the colour before it can be judged; with fewer,
        the gate fails with "not enough data". At least 1.
    type: int
    default: 50
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - cutover.bluegreen.wait
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Never changes anything; supports check mode.
  - Requests reach a target group through any listener; after a switch the test listener forwards to the old
    colour, so requests sent through it keep the old colour's traffic from stopping.
"""

EXAMPLES = r"""
- name: Prove that blue no longer receives requests after the switch
  cutover.bluegreen.traffic:
    service: shop
    color: blue
    state: stopped
    since: "{{ switch.switched_at }}"
    wait_timeout: 300

- name: Gate green on its last five minutes
  cutover.bluegreen.traffic:
    service: shop
    color: green
    state: gate
    window: 300
    max_5xx_percent: 1.0
    min_requests: 100
"""

RETURN = r"""
color:
  description: The colour checked.
  returned: success
  type: str
  sample: blue
target_group_arn:
  description: The colour's target group.
  returned: success
  type: str
verdict:
  description: V(passed), V(failed) or V(not enough data) (the last two fail the task).
  returned: success
  type: str
  sample: passed
requests:
  description: With O(state=gate), requests the colour's target group received in the judged periods.
  returned: success
  type: float
  sample: 1200.0
errors_5xx:
  description: With O(state=gate), 5XX responses of the colour's targets in the judged periods.
  returned: success
  type: float
  sample: 0.0
periods:
  description: With O(state=gate), the judged periods (C(start), C(end), C(periods)).
  returned: success
  type: dict
evidence:
  description:
    - With O(state=stopped), the period that proved it (C(period_start), C(period_seconds), C(new_requests),
      C(old_requests)) and a C(summary).
  returned: success
  type: dict
waited_seconds:
  description: With O(state=stopped), how long the proof took.
  returned: success
  type: float
  sample: 74.2
passed:
  description: With O(state=gate), whether the gate passed (a failed gate fails the task).
  returned: success
  type: bool
"""

import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLOR_NAMES, CutoverError, other_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, pair_module, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import (
    PASSED,
    evaluate_gate,
    gate_sums,
    validate_period,
    wait_stopped,
)


def main():
    started = time.time()
    module = pair_module(
        dict(
            color=dict(type="str", required=True, choices=list(COLOR_NAMES)),
            state=dict(type="str", default="stopped", choices=["stopped", "gate"]),
            period=dict(type="int", default=60),
            since=dict(type="float"),
            window=dict(type="int", default=300),
            max_5xx=dict(type="int", default=0),
            max_5xx_percent=dict(type="float"),
            min_requests=dict(type="int", default=50),
            **waits.argument_spec(300, aliases=["timeout"], wait=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["max_5xx"] < 0:
        module.fail_json(msg="max_5xx must be zero or more, got %s" % params["max_5xx"])
    if params["min_requests"] < 1:
        module.fail_json(msg="min_requests must be at least 1 (a gate never passes on no data), got %s" % params["min_requests"])
    if params["window"] < 1:
        module.fail_json(msg="window must be at least 1 second, got %s" % params["window"])
    if params["max_5xx_percent"] is not None and not 0 <= params["max_5xx_percent"] <= 100:
        module.fail_json(msg="max_5xx_percent must be between 0 and 100, got %s" % params["max_5xx_percent"])
    try:
        period = validate_period(params["period"])
    except CutoverError as exc:
        module.fail_json(msg=exc.message)

    def operation():
        pair = discover_pair(module, rules=False, health=False)
        color = pair.resolve(params["color"])
        target_group_arn = pair.colors[color]["target_group"]["arn"]
        cloudwatch = client(module, "cloudwatch")
        result = dict(changed=False, color=color, target_group_arn=target_group_arn)
        if params["state"] == "stopped":
            if color == pair.live_color and not pair.split:
                raise CutoverError("%s is the live colour of %r; its traffic will not stop" % (color, pair.service))
            other = other_color(color)
            waited, evidence = wait_stopped(
                cloudwatch,
                pair.load_balancer_arn,
                target_group_arn,
                pair.colors[other]["target_group"]["arn"],
                params["since"] if params["since"] is not None else started,
                period,
                params["wait_timeout"],
                names=(color, other),
                waiter=waits.waiter_of(params, module.log),
            )
            result.update(waited_seconds=waited, evidence=evidence, verdict=PASSED)
            return result
        since = params["since"] if params["since"] is not None else started - params["window"]
        sums = gate_sums(cloudwatch, pair.load_balancer_arn, target_group_arn, since, period)
        verdict, reasons = evaluate_gate(sums, params["max_5xx"], params["max_5xx_percent"], params["min_requests"])
        result.update(
            requests=sums["RequestCount"],
            errors_5xx=sums["HTTPCode_Target_5XX_Count"],
            periods=dict(start=sums["start"], end=sums["end"], periods=sums["periods"]),
            verdict=verdict,
            passed=verdict == PASSED,
        )
        if verdict != PASSED:
            raise CutoverError("the gate of %s: %s: %s" % (color, verdict, "; ".join(reasons)), **result)
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
