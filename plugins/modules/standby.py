#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: standby
short_description: Keep a colour warm as a standby with a retire-after time, or restore a retired colour
version_added: 0.1.0
description:
  - With O(state=standby), tags the colour's Auto Scaling group C(cutover:state=standby) and
    C(cutover:retire-after=<UTC time>), the time after which M(cutover.bluegreen.teardown) may retire it.
    The time is now plus O(ttl), or O(retire_after). A colour that already is a standby keeps its
    retire-after time when only O(ttl) is given, so a re-run does not push it forward; O(reset=true)
    recomputes it.
  - With O(state=restored), brings a retired (scaled-to-zero) or standby colour back for a rollback -
    scales its group to O(capacity) (minimum size too), waits until that many instances are InService
    and every target of its target group is healthy, registers running instances that were drained,
    and removes the C(cutover:state) and C(cutover:retire-after) tags.
  - The live colour (what the production listener forwards to) is never marked standby and never restored.
author:
  - cutover maintainers (@cutover)
options:
  color:
    description:
      - The colour to act on; V(idle) is the colour the production listener does not forward to.
    type: str
    required: true
    choices: [blue, green, idle]
  state:
    description:
      - V(standby) marks the colour standby; V(restored) scales it back up and clears the standby tags.
    type: str
    choices: [standby, restored]
    default: standby
  ttl:
    description:
      - How long the standby is kept before it may be retired, from now.
      - Whole seconds (V(3600)) or a duration with units C(s), C(m), C(h), C(d), C(w), such as V(30m),
        V(2h), V(1d) or V(1h30m). Must not be negative.
      - When neither O(ttl) nor O(retire_after) is given, a new standby gets one day.
      - Only with O(state=standby). Mutually exclusive with O(retire_after).
    type: raw
  retire_after:
    description:
      - Explicit ISO 8601 time after which the standby may be retired, such as V(2030-01-31T18:00:00Z).
        A time without an offset is taken as UTC.
      - Only with O(state=standby). Mutually exclusive with O(ttl).
    type: str
  reset:
    description:
      - Recompute the retire-after time from O(ttl) even if the colour already is a standby with one.
      - Only with O(state=standby).
    type: bool
    default: false
  capacity:
    description:
      - Instances to restore to (desired capacity and minimum size); the maximum size is raised only if smaller.
      - Defaults to the live colour's desired capacity.
      - Only with O(state=restored).
    type: int
  wait_timeout:
    description:
      - Seconds to wait in all (0 or more), with O(state=restored), for the instances to be InService and then their
        targets healthy.
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - cutover.bluegreen.wait
  - cutover.bluegreen.capacity
  - cutover.bluegreen.lease
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode and diff mode (the group's size and tags before and after).
"""

EXAMPLES = r"""
- name: Keep the old colour warm for two hours after a switch
  cutover.bluegreen.standby:
    service: shop
    color: idle
    ttl: 2h

- name: Keep blue until a fixed time
  cutover.bluegreen.standby:
    service: shop
    color: blue
    retire_after: "2030-01-31T18:00:00Z"

- name: Bring a retired colour back before rolling back to it
  cutover.bluegreen.standby:
    service: shop
    color: blue
    state: restored
    capacity: 2
"""

RETURN = r"""
color:
  description: The colour acted on.
  returned: success
  type: str
  sample: blue
state:
  description: The state asked for.
  returned: success
  type: str
  sample: standby
asg_name:
  description: Name of the colour's Auto Scaling group.
  returned: success
  type: str
  sample: shop-blue
retire_after:
  description: The retire-after time of the standby (null with O(state=restored)).
  returned: success
  type: str
  sample: "2030-01-31T18:00:00Z"
retire_after_source:
  description: Where the retire-after time came from - V(ttl), V(explicit) or V(kept) (an existing standby's).
  returned: when O(state=standby)
  type: str
  sample: ttl
tags_before:
  description: The group's tags before.
  returned: success
  type: dict
  sample: {"cutover:service": "shop", "cutover:color": "blue"}
tags_after:
  description: The group's tags after (in check mode, as they would be).
  returned: success
  type: dict
  sample: {"cutover:service": "shop", "cutover:color": "blue", "cutover:state": "standby", "cutover:retire-after": "2030-01-31T18:00:00Z"}
capacity:
  description: The capacity restored to.
  returned: when O(state=restored)
  type: int
  sample: 2
size_before:
  description: Minimum, maximum and desired size of the group before.
  returned: when O(state=restored)
  type: dict
  sample: {"min_size": 0, "max_size": 4, "desired_capacity": 0}
size_after:
  description: Minimum, maximum and desired size of the group after.
  returned: when O(state=restored)
  type: dict
  sample: {"min_size": 2, "max_size": 4, "desired_capacity": 2}
registered:
  description: Running instances registered again in the target group (they had been drained, or were draining).
  returned: when O(state=restored)
  type: list
  elements: str
deregistered:
  description: Foreign targets (C(id:port)) deregistered with O(deregister_foreign=true).
  returned: when O(state=restored)
  type: list
  elements: str
waited:
  description: Seconds waited for the instances to be InService and for the targets to be healthy.
  returned: when O(state=restored)
  type: dict
  sample: {"in_service": 4.2, "healthy": 20.1}
health:
  description: Target counts of the colour's target group (registered, healthy - its own instances -, unhealthy, by state).
  returned: when O(state=restored)
  type: dict
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import ARGUMENT_SPEC as CAPACITY_ARGUMENT_SPEC
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, parse_time
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, fenced, pair_module, reported, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import mark_standby, parse_ttl, restore


def validate(params):
    """Check the options against each other before anything is read or changed; return the parsed ttl."""
    if params["state"] == "restored":
        for name in ("ttl", "retire_after"):
            if params[name] is not None:
                raise CutoverError("%s applies to state=standby only, not state=restored" % name)
        if params["reset"]:
            raise CutoverError("reset applies to state=standby only, not state=restored")
        if params["capacity"] is not None and params["capacity"] < 1:
            raise CutoverError("capacity must be at least 1, got %s" % params["capacity"])
        return None
    if params["capacity"] is not None:
        raise CutoverError("capacity applies to state=restored only, not state=standby")
    if params["deregister_foreign"]:
        raise CutoverError("deregister_foreign applies to state=restored only, not state=standby")
    if params["retire_after"] is not None:
        parse_time(params["retire_after"])
    return parse_ttl(params["ttl"])


def main():
    module = pair_module(
        dict(
            color=dict(type="str", required=True, choices=["blue", "green", "idle"]),
            state=dict(type="str", choices=["standby", "restored"], default="standby"),
            ttl=dict(type="raw"),
            retire_after=dict(type="str"),
            reset=dict(type="bool", default=False),
            capacity=dict(type="int"),
            **waits.argument_spec(wait=False),
            **CAPACITY_ARGUMENT_SPEC,
            **fence.LEASE_ARGUMENT_SPEC,
        ),
        mutually_exclusive=[("ttl", "retire_after")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        ttl = validate(params)
    except CutoverError as exc:
        module.fail_json(msg=exc.message, **exc.details)

    def operation():
        with fenced(module):
            return mark_or_restore()

    def mark_or_restore():
        elbv2 = client(module, "elbv2")
        autoscaling = client(module, "autoscaling")
        pair = discover_pair(module, elbv2, autoscaling)
        if params["state"] == "restored":
            result = restore(
                elbv2,
                autoscaling,
                pair,
                params["color"],
                capacity=params["capacity"],
                wait_timeout=params["wait_timeout"],
                deregister_foreign=params["deregister_foreign"],
                check_mode=module.check_mode,
                waiter=waits.waiter_of(params, module.log),
            )
        else:
            result = mark_standby(
                autoscaling,
                pair,
                params["color"],
                ttl=ttl,
                retire_after=params["retire_after"],
                reset=params["reset"],
                check_mode=module.check_mode,
            )
        return reported(module, result)

    run(module, operation)


if __name__ == "__main__":
    main()
