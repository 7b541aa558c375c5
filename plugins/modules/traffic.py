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
  - Reads the load balancer's CloudWatch metrics (namespace C(AWS/ApplicationELB)) of one colour's target group.
  - With O(state=stopped), waits until the colour received no request during the last O(window) seconds,
    proving that a switch really moved the traffic away from it.
  - With O(state=gate), judges a canary phase, and fails when the colour answered more 5XX responses than
    allowed during the last O(window) seconds, naming the numbers.
  - CloudWatch has no datapoint for a period without requests; that counts as zero.
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
      - V(stopped) waits for the colour's traffic to stop; V(gate) checks its error numbers.
    type: str
    default: stopped
    choices: [stopped, gate]
  window:
    description:
      - Seconds of metrics to look at.
    type: int
    default: 30
  timeout:
    description:
      - With O(state=stopped), how long to wait, in seconds.
    type: int
    default: 300
  max_5xx:
    description:
      - With O(state=gate), the most 5XX responses allowed in the window.
    type: int
    default: 0
  max_5xx_percent:
    description:
      - With O(state=gate), the highest share of 5XX responses allowed, in percent.
    type: float
  min_requests:
    description:
      - With O(state=gate), how many requests must have reached the colour before it can be judged.
    type: int
    default: 0
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Never changes anything; supports check mode.
"""

EXAMPLES = r"""
- name: Prove that blue no longer receives requests after the switch
  cutover.bluegreen.traffic:
    service: shop
    color: blue
    state: stopped
    window: 15
    timeout: 120

- name: Canary gate on green
  cutover.bluegreen.traffic:
    service: shop
    color: green
    state: gate
    window: 60
    max_5xx_percent: 1.0
    min_requests: 50
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
requests:
  description: Requests the colour's target group received in the last O(window) seconds when the module returned.
  returned: success
  type: float
  sample: 0.0
errors_5xx:
  description: 5XX responses of the colour's targets in that window.
  returned: success
  type: float
  sample: 0.0
waited_seconds:
  description: With O(state=stopped), how long the traffic took to stop.
  returned: success
  type: float
  sample: 4.2
passed:
  description: With O(state=gate), whether the gate passed (a failed gate fails the task).
  returned: success
  type: bool
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, pair_module, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import evaluate_gate, metric_sums, wait_stopped


def main():
    module = pair_module(
        dict(
            color=dict(type="str", required=True, choices=["blue", "green", "idle", "live"]),
            state=dict(type="str", default="stopped", choices=["stopped", "gate"]),
            window=dict(type="int", default=30),
            timeout=dict(type="int", default=300),
            max_5xx=dict(type="int", default=0),
            max_5xx_percent=dict(type="float"),
            min_requests=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for name in ("window", "timeout", "max_5xx", "min_requests"):
        if params[name] < 0:
            module.fail_json(msg="%s must be zero or more, got %s" % (name, params[name]))
    if params["window"] < 1:
        module.fail_json(msg="window must be at least 1 second, got %s" % params["window"])
    if params["max_5xx_percent"] is not None and not 0 <= params["max_5xx_percent"] <= 100:
        module.fail_json(msg="max_5xx_percent must be between 0 and 100, got %s" % params["max_5xx_percent"])

    def operation():
        pair = discover_pair(module, rules=False, health=False)
        color = {"idle": pair.idle_color, "live": pair.live_color}.get(params["color"], params["color"])
        target_group_arn = pair.colors[color]["target_group"]["arn"]
        cloudwatch = client(module, "cloudwatch")
        result = dict(changed=False, color=color, target_group_arn=target_group_arn)
        if params["state"] == "stopped":
            if color == pair.live_color and not pair.split:
                raise CutoverError("%s is the live colour of %r; its traffic will not stop" % (color, pair.service))
            result["waited_seconds"] = wait_stopped(
                cloudwatch, pair.load_balancer_arn, target_group_arn, params["window"], params["timeout"], progress=module.log
            )
        sums = metric_sums(cloudwatch, pair.load_balancer_arn, target_group_arn, params["window"])
        result.update(requests=sums["RequestCount"], errors_5xx=sums["HTTPCode_Target_5XX_Count"])
        if params["state"] == "gate":
            passed, reasons = evaluate_gate(sums, params["max_5xx"], params["max_5xx_percent"], params["min_requests"])
            result["passed"] = passed
            if not passed:
                raise CutoverError("the canary gate of %s failed: %s" % (color, "; ".join(reasons)), **result)
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
