#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wait_healthy
short_description: Wait until a colour can serve - enough of its own instances healthy, nothing foreign
version_added: 0.1.0
description:
  - Polls a colour's target group and Auto Scaling group, with a growing delay, until at least O(min_healthy) of
    the group's InService instances on the launch-template version it points at have a C(healthy) target and
    every target of those instances is C(healthy).
  - Only those instances count. Targets in C(initial), and instances of the group still on their way in, are
    waited on. Targets in C(draining) are leaving the group; they are reported but neither counted nor waited on.
  - A target that stays C(unhealthy), C(unused) or C(unavailable) for O(unhealthy_timeout) seconds ends the
    wait at once; the failure names every such target with its state, reason and description.
  - A target that is not an instance of the colour's Auto Scaling group (foreign), or an instance on another
    launch-template version, ends the wait at once naming it (see O(deregister_foreign)).
  - Changes nothing, unless O(deregister_foreign=true) deregisters foreign targets.
author:
  - cutover maintainers (@cutover)
options:
  color:
    description:
      - The colour whose target group to watch. V(idle) and V(live) are resolved from what the production
        listener forwards to.
    type: str
    choices: [blue, green, idle, live]
    default: idle
  min_healthy:
    description:
      - How many of the colour's instances must have a healthy target at least.
      - Defaults to the desired capacity of the colour's Auto Scaling group, and at least 1.
      - Must not be negative.
    type: int
  wait_timeout:
    aliases: [timeout]
  unhealthy_timeout:
    description:
      - Seconds a target may stay unhealthy (or unused, or unavailable) before the wait fails early.
      - Defaults to the target group's health-check interval times its healthy threshold plus two, and at
        least 30 seconds. Must not be negative.
    type: int
notes:
  - In check mode the health is read once, without waiting and without failing; RV(ready) tells whether the
    colour is ready.
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - cutover.bluegreen.wait
  - cutover.bluegreen.capacity
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Wait until the idle colour of the shop service is healthy
  cutover.bluegreen.wait_healthy:
    service: shop
  register: idle_health

- name: Wait for at least four healthy green targets, failing after a minute of unhealthy ones
  cutover.bluegreen.wait_healthy:
    service: shop
    color: green
    min_healthy: 4
    wait_timeout: 900
    unhealthy_timeout: 60
"""

RETURN = r"""
color:
  description: The colour watched.
  returned: always
  type: str
  sample: green
target_group_arn:
  description: ARN of the colour's target group.
  returned: always
  type: str
min_healthy:
  description: The number of healthy targets required.
  returned: always
  type: int
  sample: 2
ready:
  description: Whether at least O(min_healthy) of the colour's own instances are healthy and nothing else is registered.
  returned: always
  type: bool
capacity:
  description: How many of the colour's own instances (InService, on its launch-template version) have a healthy target.
  returned: always
  type: int
  sample: 2
launch_template_version:
  description: The launch-template version the colour's instances must run to count.
  returned: always
  type: str
  sample: "2"
asg_name:
  description: The colour's Auto Scaling group.
  returned: always
  type: str
  sample: shop-green
foreign:
  description: Targets (C(id:port)) that are not instances of the colour's Auto Scaling group.
  returned: always
  type: list
  elements: str
  sample: []
stale:
  description: Targets (C(id:port)) of the group's instances on another launch-template version.
  returned: always
  type: list
  elements: str
  sample: []
unused:
  description: Targets (C(id:port)) in state C(unused).
  returned: always
  type: list
  elements: str
  sample: []
deregistered:
  description: Foreign targets (C(id:port)) deregistered with O(deregister_foreign=true).
  returned: always
  type: list
  elements: str
  sample: []
waited_seconds:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 12.5
health:
  description: Counts of the colour's targets.
  returned: always
  type: dict
  contains:
    registered:
      description: Number of registered targets in any state but C(draining).
      type: int
      sample: 2
    healthy:
      description: The capacity - the colour's own instances with a healthy target.
      type: int
      sample: 2
    unhealthy:
      description: Number of registered targets that are not capacity.
      type: int
      sample: 0
    by_state:
      description: Number of targets per state, C(draining) included.
      type: dict
      sample: {"healthy": 2}
problems:
  description: Each target that is not healthy, with its reason, and any shortfall.
  returned: always
  type: list
  elements: str
  sample: []
draining:
  description: Targets (C(id:port)) that are draining.
  returned: always
  type: list
  elements: str
  sample: []
targets:
  description: Every target with its state, reason and description.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "i-0123456789abcdef0", "port": 8080, "state": "healthy", "reason": null, "description": null}]
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import ARGUMENT_SPEC as CAPACITY_ARGUMENT_SPEC
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLOR_NAMES
from ansible_collections.cutover.bluegreen.plugins.module_utils.health import color_health
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, pair_module, run


def main():
    argument_spec = dict(
        color=dict(type="str", default="idle", choices=list(COLOR_NAMES)),
        min_healthy=dict(type="int"),
        unhealthy_timeout=dict(type="int"),
        **CAPACITY_ARGUMENT_SPEC,
        **waits.argument_spec(aliases=["timeout"], wait=False),
    )
    module = pair_module(argument_spec, supports_check_mode=True)  # checks the wait options and min_healthy
    params = module.params

    def operation():
        elbv2, autoscaling = client(module, "elbv2"), client(module, "autoscaling")
        pair = discover_pair(module, elbv2, autoscaling, rules=False, health=module.check_mode)
        result = color_health(
            elbv2,
            autoscaling,
            pair,
            pair.resolve(params["color"]),
            min_healthy=params["min_healthy"],
            timeout=params["wait_timeout"],
            unhealthy_timeout=params["unhealthy_timeout"],
            deregister_foreign=params["deregister_foreign"],
            check_mode=module.check_mode,
            progress=module.log,
            waiter=waits.waiter_of(params, module.log),
        )
        result["changed"] = bool(result["deregistered"])
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
