#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: teardown
short_description: Retire the standby colours of a blue-green pair whose retire-after time has passed
version_added: 0.1.0
description:
  - For each standby colour (Auto Scaling group tagged C(cutover:state=standby)) whose
    C(cutover:retire-after) time has passed, drains its target group (honouring the deregistration
    delay), scales its Auto Scaling group to zero (minimum and desired size 0; the maximum size, the group
    and its launch template are kept for a fast restore) and tags it C(cutover:state=retired).
  - A standby before its retire-after time is skipped, with the time named, unless O(force=true).
  - The live colour, and any colour a production forwarder still sends traffic to, is never torn down,
    even with O(force=true). The production listener and its rules are read again right before acting;
    if the live colour changed since the pair was read, the module fails and changes nothing more.
  - A colour without the C(cutover:state) tag, or one already retired, is skipped with the reason.
  - Meant to run on a schedule; idempotent.
author:
  - cutover maintainers (@cutover)
options:
  force:
    description:
      - Tear down standbys whose retire-after time has not come yet (or that have none).
      - Never applies to the live colour.
    type: bool
    default: false
  colors:
    description:
      - Only consider these colours (V(idle) is the colour the production listener does not forward to).
      - Both colours by default.
    type: list
    elements: str
    choices: [blue, green, idle]
  wait_timeout:
    description:
      - Seconds to wait for a colour's targets to drain (0 or more).
      - Defaults to the target group's C(deregistration_delay.timeout_seconds) plus 60 seconds.
    default: null
  now:
    description:
      - The time to compare retire-after times with, as an ISO 8601 timestamp (such as V(2030-02-01T00:00:00Z));
        the current time by default.
      - For a scheduled run that should act as of a given time, and for tests.
    type: str
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - cutover.bluegreen.wait
  - cutover.bluegreen.lease
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode (reports what would be drained and scaled, changes nothing) and diff mode
    (per colour, the group's size, tags and targets before and after).
"""

EXAMPLES = r"""
- name: Retire the expired standbys of the shop service
  cutover.bluegreen.teardown:
    service: shop

- name: Retire the idle colour now, whatever its retire-after time
  cutover.bluegreen.teardown:
    service: shop
    colors: [idle]
    force: true
"""

RETURN = r"""
now:
  description: The time retire-after times were compared with.
  returned: success
  type: str
  sample: "2030-02-01T00:00:00Z"
live_color:
  description: The live colour (never torn down).
  returned: success
  type: str
  sample: green
by_color:
  description:
    - Per colour considered, what was done or why it was skipped.
    - C(action) is V(torn_down), V(would_tear_down) (check mode) or V(skipped); C(reason) says why.
    - Colours torn down also have C(asg_name), C(drained) (target ids), C(waited) (seconds),
      C(deregistration_delay), C(size_before), C(size_after), C(tags_before), C(tags_after),
      C(launch_template) (kept) and C(test_forwarders).
  returned: success
  type: dict
  sample:
    blue:
      action: torn_down
      reason: retire-after 2030-01-31T18:00:00Z has passed
      drained: ["i-0123456789abcdef0"]
      size_before: {"min_size": 2, "max_size": 4, "desired_capacity": 2}
      size_after: {"min_size": 0, "max_size": 4, "desired_capacity": 0}
    green:
      action: skipped
      reason: green is the live colour; it is never torn down, even with force
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, parse_time
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, fenced, pair_module, reported, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import teardown


def main():
    module = pair_module(
        dict(
            force=dict(type="bool", default=False),
            colors=dict(type="list", elements="str", choices=["blue", "green", "idle"]),
            now=dict(type="str"),
            **waits.argument_spec(None, wait=False),
            **fence.LEASE_ARGUMENT_SPEC,
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        now = parse_time(params["now"]) if params["now"] else None
    except CutoverError as exc:
        module.fail_json(msg=exc.message, **exc.details)

    def operation():
        with fenced(module):
            return tear_down()

    def tear_down():
        elbv2 = client(module, "elbv2")
        autoscaling = client(module, "autoscaling")
        pair = discover_pair(module, elbv2, autoscaling)
        result = teardown(
            elbv2,
            autoscaling,
            pair,
            now=now,
            force=params["force"],
            colors=params["colors"],
            wait_timeout=params["wait_timeout"],
            check_mode=module.check_mode,
            waiter=waits.waiter_of(params, module.log),
        )
        result["warnings"] = ["%s: %s" % (color, w) for color, outcome in result["by_color"].items() for w in outcome.pop("warnings", [])]
        reported(module, result)
        result["msg"] = "; ".join(
            "%s %s: %s" % (color, outcome["action"].replace("_", " "), outcome["reason"]) for color, outcome in result["by_color"].items()
        )
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
