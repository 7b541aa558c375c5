#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: drain
short_description: Drain a colour of a blue-green pair that no longer takes production traffic
version_added: 0.1.0
description:
  - Deregisters every target of a colour's target group and waits until they are gone from the
    target group, so that in-flight requests finish within the group's deregistration delay.
  - Refuses the live colour, and any colour that a production forwarder (the production listener's
    default action or one of its rules, with a weight above zero) still sends traffic to; the
    message names those forwarders.
  - The test listener may still forward to the colour; that is allowed and reported in RV(test_forwarders)
    and as a warning.
  - Targets in state C(draining) count as still registered.
  - Idempotent; a target group with nothing registered is left alone.
author:
  - cutover maintainers (@cutover)
options:
  color:
    description:
      - The colour to drain; V(idle) is the colour the production listener does not forward to.
    type: str
    required: true
    choices: [blue, green, idle]
  wait:
    description:
      - Wait until the deregistered targets are gone from the target group.
  wait_timeout:
    description:
      - Seconds to wait for the targets to be gone (0 or more).
      - Defaults to the target group's C(deregistration_delay.timeout_seconds) plus 60 seconds.
    aliases: [timeout]
    default: null
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - cutover.bluegreen.wait
  - cutover.bluegreen.wait.optional
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode (reports the targets that would be deregistered) and diff mode.
"""

EXAMPLES = r"""
- name: Drain the colour that no longer takes traffic
  cutover.bluegreen.drain:
    service: shop
    color: idle

- name: Drain blue, waiting at most ten minutes
  cutover.bluegreen.drain:
    service: shop
    color: blue
    wait_timeout: 600
"""

RETURN = r"""
color:
  description: The colour drained.
  returned: success
  type: str
  sample: blue
target_group_arn:
  description: ARN of the colour's target group.
  returned: success
  type: str
target_group_name:
  description: Name of the colour's target group.
  returned: success
  type: str
  sample: shop-blue
drained:
  description: Ids of the targets deregistered (in check mode, that would be deregistered).
  returned: success
  type: list
  elements: str
  sample: ["i-0123456789abcdef0"]
already_draining:
  description: Ids of targets that were already draining when the module started.
  returned: success
  type: list
  elements: str
deregistration_delay:
  description: The target group's deregistration delay in seconds (null when nothing was registered).
  returned: success
  type: int
  sample: 300
waited:
  description: Seconds waited for the targets to be gone.
  returned: success
  type: float
  sample: 12.5
test_forwarders:
  description: Test-listener forwarders that still send requests to the colour.
  returned: success
  type: list
  elements: dict
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.drain import drain, resolve_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, pair_module, reported, run


def main():
    module = pair_module(
        dict(color=dict(type="str", required=True, choices=["blue", "green", "idle"]), **waits.argument_spec(None, aliases=["timeout"])),
        supports_check_mode=True,
    )
    params = module.params

    def operation():
        elbv2 = client(module, "elbv2")
        pair = discover_pair(module, elbv2, client(module, "autoscaling"))
        result = drain(
            elbv2,
            pair,
            resolve_color(pair, params["color"]),
            timeout=params["wait_timeout"],
            wait=params["wait"],
            check_mode=module.check_mode,
            waiter=waits.waiter_of(params, module.log),
        )
        return reported(module, result)

    run(module, operation)


if __name__ == "__main__":
    main()
