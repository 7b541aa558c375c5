#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: switch
short_description: Move production traffic of a blue-green pair to one colour, or split it between both
version_added: 0.1.0
description:
  - Points every listener default action and rule of the production side that forwards into the pair
    at the target group of O(to_color), or, with O(weights), at both target groups with those weights
    (a canary). Target groups outside the pair and actions other than C(forward) are kept as they are.
  - On a full switch the test listener is pointed at the colour that becomes idle (see O(swap_test_listener)).
  - Refuses to move traffic to a colour with fewer than O(min_healthy) healthy instances of its own (InService
    instances of its Auto Scaling group on the launch-template version the group points at, with a healthy
    target), whose Auto Scaling group has no instances in service, or whose target group has a target that is
    not such an instance (foreign, on another version, or C(unused)), unless O(force=true). The failure names
    the target group, the healthy and required counts and every target that is not healthy or not counted,
    with its reason. Draining targets are leaving and count for nothing.
  - Production listener default actions are changed first, then rules, the test listener last. If any
    change fails (after retries of throttling), the changes already made are put back, so traffic is never
    left half switched, and the module fails saying so.
  - After the change the listeners and rules are read back to confirm the new weights (O(verify)), and the
    live colour is published in an SSM parameter (O(publish_parameter)).
  - After a full switch the colour that takes all traffic loses any standby or retired tags (C(cutover:state),
    C(cutover:retire-after)), and with O(standby_ttl) the colour that was live is kept warm as the standby,
    as M(cutover.bluegreen.standby) does, in the same call.
  - With O(journal_entry), the deployment's journal entry notes when the switch began, in the same call.
  - Idempotent with explicit colours and weights; forwarders already as wanted are not touched.
author:
  - cutover maintainers (@cutover)
options:
  to_color:
    description:
      - The colour to send all production traffic to.
      - V(idle) means the colour that is idle when the task starts. A second run of the same task then
        switches B(back), because by then the other colour is idle; use V(idle) only in one-shot commands
        (C(ansible -m)), and name the colour in playbooks, for example the C(pair.idle_color) that
        M(cutover.bluegreen.pair_info) returned before the rollout.
      - V(idle) is refused while production traffic is split between both colours.
      - Exactly one of O(to_color) and O(weights) is required.
    type: str
    choices: [blue, green, idle]
  weights:
    description:
      - Split production traffic between both colours with these weights (a canary), instead of O(to_color).
      - Each weight is an integer from 0 to 999 (what a load balancer accepts); at least one must be above 0.
      - The weights are set as given; the test listener is not touched.
      - A colour whose weight makes its share of traffic grow is checked like O(to_color) (see O(min_healthy)).
    type: dict
    suboptions:
      blue:
        description: Weight of the blue target group.
        type: int
        required: true
      green:
        description: Weight of the green target group.
        type: int
        required: true
  min_healthy:
    description:
      - How many of its own instances with a healthy target the colour receiving traffic must have.
      - Defaults to the desired capacity of that colour's Auto Scaling group.
      - Never less than 1 (V(0) behaves like V(1)); an empty or wholly unhealthy target group only takes traffic with O(force=true).
    type: int
  force:
    description:
      - Switch even if the colour receiving traffic has too few healthy targets or no instances in service.
      - What the check found is returned as warnings.
    type: bool
    default: false
  swap_test_listener:
    description:
      - On a full switch, point the test listener at the colour that becomes idle, so that the next release
        can be tested there. Ignored with O(weights).
    type: bool
    default: true
  publish_parameter:
    description:
      - Name of the SSM parameter (type String) that is set to the live colour after the switch.
        It is written only when it differs, and created if missing.
      - Defaults to C(/cutover/<service>/active-color). An empty string publishes nothing.
    type: str
  wait:
    description:
      - Read the changed listeners and rules back until they forward with the new weights, and fail naming each one
        that does not within O(wait_timeout).
    aliases: [verify]
  wait_timeout:
    description:
      - Seconds to read the changed listeners and rules back for (0 or more).
    default: 30
  standby_ttl:
    description:
      - On a full switch that moves traffic, tag the colour that was live as the standby, to be retired by
        M(cutover.bluegreen.teardown) once this time has passed, such as V(30m), V(12h), V(1d) or V(3600)
        (seconds). The retire-after time starts again from now.
      - Without it the colour that was live is left as it is. A run that moves no traffic marks nothing.
    type: str
  journal_entry:
    description:
      - The deployment (its id in the journal, see M(cutover.bluegreen.journal)) this switch belongs to. Its journal
        entry records right before the change that step C(switch) started, with C(record.switch_started_at) (epoch
        seconds), as M(cutover.bluegreen.journal) with O(cutover.bluegreen.journal#module:state=step) would. A run
        killed during or right after the switch so leaves that moment to the run that resumes the release.
      - The entry is in the service's table (O(lease.table_name) when given). Nothing is noted in check mode.
    type: str
notes:
  - "Steps it combines, because they always go together: moving production traffic, marking the colour that lost it
    as the standby (O(standby_ttl); the colour that took it loses its marks) and publishing the live colour
    (O(publish_parameter)); with O(journal_entry), the note in the run's journal entry that the switch begins,
    which the switch always follows. A full switch always makes the old colour the standby and the new one the published
    one, and marking it in the same call leaves no moment in which a run killed right after the switch leaves an
    unmarked old colour, which a rollback would refuse. The step order around it is the role's."
  - Check mode changes nothing and returns the planned changes.
  - Supports diff mode, showing per listener and rule the colours and weights before and after, and the parameter.
  - The live colour is what the production listener forwards to; the SSM parameter is only a published copy.
  - Use a lock (M(cutover.bluegreen.lock)) around a deploy so that two runs never switch one service at once.
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - cutover.bluegreen.wait
  - cutover.bluegreen.wait.optional
  - cutover.bluegreen.capacity
  - cutover.bluegreen.lease
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Send all traffic of shop to green, and the test listener to blue
  cutover.bluegreen.switch:
    service: shop
    to_color: green

- name: Canary, 10 percent of traffic to green
  cutover.bluegreen.switch:
    service: shop
    weights:
      blue: 90
      green: 10

- name: Switch to the colour just rolled out (named, so that a re-run changes nothing)
  cutover.bluegreen.switch:
    service: shop
    to_color: "{{ shop_before.pair.idle_color }}"
    min_healthy: 2
  register: switched

- name: Roll back to blue even though some of its targets are not healthy
  cutover.bluegreen.switch:
    service: shop
    to_color: blue
    force: true
    publish_parameter: ""
"""

RETURN = r"""
standby:
  description:
    - With O(standby_ttl), the colour marked standby (C(color), C(asg_name), C(retire_after), C(tags_before),
      C(tags_after)), as M(cutover.bluegreen.standby) returns it; null when nothing was marked.
  returned: always
  type: dict
  sample: {"color": "blue", "retire_after": "2026-01-02T12:00:00Z", "changed": true}
cleared_tags:
  description: The standby or retired tags removed from the colour that takes all traffic.
  returned: always
  type: list
  elements: str
  sample: ["cutover:state", "cutover:retire-after"]
from_color:
  description: The live colour before the switch.
  returned: always
  type: str
  sample: blue
to_color:
  description: The colour all production traffic goes to (O(to_color) with V(idle) resolved); null for a weighted split.
  returned: always
  type: str
  sample: green
live_color:
  description: The live colour after the switch (the colour with the larger weight on the production listener).
  returned: always
  type: str
  sample: green
split:
  description: Whether production traffic is split between both colours after the switch.
  returned: always
  type: bool
  sample: false
weights:
  description: Weight per colour of the production listener's default action after the switch.
  returned: always
  type: dict
  sample: {"blue": 90, "green": 10}
changes:
  description: One entry per listener default action or rule that was (in check mode, would be) changed, in the order of change.
  returned: always
  type: list
  elements: dict
  contains:
    label:
      description: The forwarder in words.
      type: str
      sample: production listener :80 rule 10
    arn:
      description: ARN of the listener or rule.
      type: str
    kind:
      description: V(listener) for a listener's default action, V(rule) for a rule.
      type: str
      sample: rule
    role:
      description: Role of the listener (production, test or null).
      type: str
      sample: production
    listener_arn:
      description: ARN of the listener (of the rule).
      type: str
    listener_port:
      description: Port of the listener.
      type: int
      sample: 80
    priority:
      description: Priority of the rule, V(default) for a listener's default action.
      type: str
      sample: "10"
    before:
      description: The actions before the switch (snake_case).
      type: list
      elements: dict
    after:
      description: The actions after the switch (snake_case).
      type: list
      elements: dict
    before_weights:
      description: Weight per colour before.
      type: dict
      sample: {"blue": 1}
    after_weights:
      description: Weight per colour after.
      type: dict
      sample: {"green": 1}
    before_text:
      description: Colours and weights before, in words.
      type: str
      sample: blue
    after_text:
      description: Colours and weights after, in words.
      type: str
      sample: green
guard:
  description: What was checked of the colours that receive more traffic.
  returned: always
  type: dict
  contains:
    checked:
      description:
        - Per colour, its target group and Auto Scaling group, the healthy (its own instances) and required
          counts, the targets that are not healthy, and the foreign, stale, unused and draining ones.
      type: dict
    forced:
      description: Whether the switch went ahead only because O(force=true).
      type: bool
    warnings:
      description: With O(force=true), the problems that would have stopped the switch.
      type: list
      elements: str
deregistered:
  description: Per colour receiving traffic, the foreign targets (C(id:port)) deregistered with O(deregister_foreign=true).
  returned: always
  type: dict
  sample: {"green": ["i-0123456789abcdef0:8080"]}
verified:
  description: Whether the changes were read back and confirmed.
  returned: always
  type: bool
switch_seconds:
  description: Seconds taken to change and verify the listeners and rules (0 in check mode or when nothing changed).
  returned: always
  type: float
  sample: 0.412
switched_at:
  description: When the last listener or rule was changed (seconds since the epoch); null when nothing changed.
  returned: always
  type: float
  sample: 1795372800.123
apply_seconds:
  description: Seconds taken to change the listeners and rules.
  returned: always
  type: float
verify_seconds:
  description: Seconds taken to read them back.
  returned: always
  type: float
parameter:
  description: The SSM parameter that publishes the live colour; null when O(publish_parameter) is empty.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the parameter.
      type: str
      sample: /cutover/shop/active-color
    value:
      description: Its value after the task.
      type: str
      sample: green
    previous:
      description: Its value before the task (null if it did not exist).
      type: str
      sample: blue
    changed:
      description: Whether it was (in check mode, would be) written.
      type: bool
journal_noted:
  description:
    - With O(journal_entry), whether the note that the switch began changed the journal entry (a step C(switch)
      already started or finished is left alone); null without O(journal_entry) and in check mode. The note does
      not count in C(changed), which says whether traffic, the marks or the parameter changed.
  returned: success
  type: bool
pair:
  description: The pair after the switch (in check mode, as it would be), as returned by M(cutover.bluegreen.pair_info).
  returned: always
  type: dict
lost_lock:
  description: True when nothing was switched because the run lost the lock (see O(lease)).
  returned: failure
  type: bool
"""

import time

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.cutover.bluegreen.plugins.module_utils import fence, journal, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import call_errors
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import ARGUMENT_SPEC as CAPACITY_ARGUMENT_SPEC
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, fenced, pair_module, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.parameter import default_parameter_name, publish_active_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import after_switch, parse_ttl
from ansible_collections.cutover.bluegreen.plugins.module_utils.switch import (
    describe_forwarders,
    switch,
    validate_weights,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import table_name

ARGUMENT_SPEC = dict(
    to_color=dict(type="str", choices=["blue", "green", "idle"]),
    weights=dict(type="dict", options=dict(blue=dict(type="int", required=True), green=dict(type="int", required=True))),
    min_healthy=dict(type="int"),
    force=dict(type="bool", default=False),
    swap_test_listener=dict(type="bool", default=True),
    publish_parameter=dict(type="str"),
    standby_ttl=dict(type="str"),
    journal_entry=dict(type="str"),
    **CAPACITY_ARGUMENT_SPEC,
)
ARGUMENT_SPEC.update(waits.argument_spec(30, wait_aliases=["verify"]))
ARGUMENT_SPEC.update(fence.LEASE_ARGUMENT_SPEC)


def _actions(actions):
    return [camel_dict_to_snake_dict(action) for action in actions]


def _change_result(change):
    result = dict(change)
    result["before"] = _actions(change["before"])
    result["after"] = _actions(change["after"])
    return result


def main():
    module = pair_module(
        ARGUMENT_SPEC,
        supports_check_mode=True,
        mutually_exclusive=[("to_color", "weights")],
        required_one_of=[("to_color", "weights")],
    )
    params = module.params

    def operation():
        # Bad input fails before any AWS call (the wait options and min_healthy were checked with the others).
        weights = validate_weights(params["weights"]) if params["weights"] is not None else None
        if params["standby_ttl"] is not None:
            parse_ttl(params["standby_ttl"])
        name = params["publish_parameter"]
        if name is None:
            name = default_parameter_name(params["service"])

        if params["journal_entry"] is not None:
            journal.validate_deployment_id(params["journal_entry"])

        elbv2, autoscaling = client(module, "elbv2"), client(module, "autoscaling")
        pair = discover_pair(module, elbv2, autoscaling)
        noted = None
        if params["journal_entry"] is not None and not module.check_mode:
            noted = journal.step(
                client(module, "dynamodb"),
                table_name(params["service"], (params["lease"] or {}).get("table_name")),
                params["service"],
                params["journal_entry"],
                "switch",
                status="started",
                record={"switch_started_at": time.time()},
            )["changed"]
        with fenced(module):
            result = switch(
                elbv2,
                pair,
                to_color=params["to_color"],
                weights=weights,
                min_healthy=params["min_healthy"],
                force=params["force"],
                swap_test_listener=params["swap_test_listener"],
                verify=params["wait"],
                check_mode=module.check_mode,
                verify_timeout=params["wait_timeout"],
                deregister_foreign=params["deregister_foreign"],
                waiter=waits.waiter_of(params, module.log),
            )
        for warning in result["guard"]["warnings"]:
            module.warn("%s although %s (force=true)" % ("would switch" if module.check_mode else "switched", warning))

        parameter = None
        if name:
            try:
                published, previous = publish_active_color(
                    client(module, "ssm"),
                    name,
                    result["live_color"],
                    check_mode=module.check_mode,
                    description="cutover %s: the colour the production listener forwards to" % pair.service,
                )
            except call_errors() as exc:
                done = (
                    "traffic of %s now goes to %s, but " % (pair.service, result["live_color"])
                    if result["changed"] and not module.check_mode
                    else ""
                )
                raise CutoverError(
                    "%spublishing the live colour in parameter %s failed: %s" % (done, name, exc),
                    changes=[_change_result(change) for change in result["changes"]],
                ) from exc
            parameter = dict(name=name, value=result["live_color"], previous=previous, changed=published)

        marks = dict(cleared=[], standby=None)
        if not result["split"]:
            try:
                marks = after_switch(
                    autoscaling,
                    result["pair"],
                    result["from_color"],
                    result["live_color"],
                    standby_ttl=params["standby_ttl"] if result["changed"] else None,
                    check_mode=module.check_mode,
                )
            except call_errors() + (CutoverError,) as exc:
                raise CutoverError(
                    "traffic of %s now goes to %s, but tagging the standby failed: %s" % (pair.service, result["live_color"], exc),
                    changes=[_change_result(change) for change in result["changes"]],
                ) from exc

        output = dict(
            changed=result["changed"]
            or bool(parameter and parameter["changed"])
            or bool(marks["cleared"])
            or bool(marks["standby"])
            or bool(result["deregistered"]),
            from_color=result["from_color"],
            to_color=result["to_color"],
            live_color=result["live_color"],
            split=result["split"],
            weights=result["weights"],
            changes=[_change_result(change) for change in result["changes"]],
            guard=result["guard"],
            deregistered=result["deregistered"],
            verified=result["verified"],
            switch_seconds=result["switch_seconds"],
            switched_at=result["switched_at"],
            apply_seconds=result["apply_seconds"],
            verify_seconds=result["verify_seconds"],
            parameter=parameter,
            standby=marks["standby"],
            cleared_tags=marks["cleared"],
            pair=result["pair"].to_dict(),
            journal_noted=noted,
        )
        if module._diff:
            before = describe_forwarders(result["pair_before"])
            after = describe_forwarders(result["pair"])
            if parameter:
                label = "parameter %s" % name
                before[label] = parameter["previous"]
                after[label] = parameter["value"]
            output["diff"] = dict(before=before, after=after)
        return output

    run(module, operation)


if __name__ == "__main__":
    main()
