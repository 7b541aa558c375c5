#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollout
short_description: Roll out a new release on the idle colour of a blue-green pair
version_added: 0.1.0
description:
  - Rolls out the idle colour of a service's blue-green pair, never the live one (the colour the production
    listener forwards to).
  - Picks the launch-template version the colour should run. The version is based on the live colour's version
    (what production runs now) with only the given O(image_id), O(instance_type) and O(user_data) changed.
    An existing version that already has those values (the live colour's, the one the idle colour uses, or the
    newest version of the template) is reused; otherwise a new version is created from the live colour's version
    with only the changed keys.
  - Points the idle colour's Auto Scaling group at that version and scales it to O(capacity) (by default the live
    colour's desired capacity), with the minimum size equal to the capacity and the maximum size raised if needed.
    Instances launched from another version (each instance's own launch-template version counts, not the
    group's) are replaced first, by scaling the idle colour to zero.
  - With O(preparation_capacity), scales to that smaller capacity first, waits until it is InService, then scales
    to the full capacity.
  - Suspends the scaling processes in O(suspend_processes) while it scales and resumes exactly those that were
    not suspended before, also when the rollout fails.
  - Removes the C(cutover:state) and C(cutover:retire-after) tags from the colour it rolls out, since they
    described the release it replaces.
  - Running it again with the same options changes nothing.
author:
  - cutover maintainers (@cutover)
options:
  color:
    description:
      - The colour to roll out, resolved once at the start of the run.
      - V(idle) is the colour the production listener does not forward to. It is refused while production
        traffic is split between both colours (a canary phase); name the non-live colour explicitly then.
      - Naming the live colour is always refused.
    type: str
    choices: [blue, green, idle]
    default: idle
  image_id:
    description:
      - AMI the colour should run, for example V(ami-0123456789abcdef0). Kept as it is when not given.
    type: str
  instance_type:
    description:
      - EC2 instance type the colour should run, for example V(t3.micro). Kept as it is when not given.
    type: str
  user_data:
    description:
      - User data the colour should run, as plain text (it is base64-encoded for the launch template and
        compared decoded). Kept as it is when not given.
    type: str
  capacity:
    description:
      - Number of instances to run. Defaults to the live colour's desired capacity.
      - Must not be negative.
    type: int
  preparation_capacity:
    description:
      - A smaller capacity to reach first (and wait InService for, even with O(wait=false)) before scaling to
        O(capacity).
      - Must not be negative and must be smaller than O(capacity).
    type: int
  wait:
    description:
      - Wait until O(capacity) instances are InService on the version.
      - Replacing instances of another version and the preparation capacity are always waited for.
  wait_timeout:
    description:
      - Seconds to wait in all (0 or more) - for the instances, and with O(wait_healthy=true) for their targets too.
      - C(health_timeout) is an alias, from when the target health had a timeout of its own; give the sum.
    aliases: [health_timeout]
  wait_healthy:
    description:
      - Once the instances are InService, also wait until O(capacity) of them (on the rolled-out version) have a
        healthy target and nothing foreign is registered, as M(cutover.bluegreen.wait_healthy) does, so that one
        call (one C(async) job with progress) leaves the colour ready for a smoke test.
      - Needs O(wait=true).
    type: bool
    default: false
  deregister_foreign:
    description:
      - With O(wait_healthy=true), deregister targets of the colour that are not instances of its Auto Scaling
        group instead of failing on them (see M(cutover.bluegreen.wait_healthy)).
    type: bool
    default: false
  progress_file:
    description:
      - A file on the machine the module runs on to which the rollout appends one line per step of its waits (the
        version and capacity rolled out, the instances InService, the targets healthy, and every 10 s of a wait
        what it still waits for), for a task that watches an C(async) run of this module
        (M(cutover.bluegreen.job_wait) prints them as they come).
      - The lines also go to the module's log.
    type: path
  suspend_processes:
    description:
      - Scaling processes to suspend while the group is scaled; those that were not suspended before are resumed
        afterwards.
      - C(Launch), C(Terminate) and C(AddToLoadBalancer) cannot be suspended, since the rollout needs them.
    type: list
    elements: str
    default: [AZRebalance, AlarmNotification, ScheduledActions, ReplaceUnhealthy]
notes:
  - "Steps it combines with O(wait_healthy=true), because they always go together in a release: the rollout and the
    health wait, one C(async) job with one timeout (O(wait_timeout))."
  - In check mode nothing is created or changed; the result reports what would be, with the number a new
    launch-template version would get.
  - With O(wait=true) a run that changes nothing still checks that the colour is InService.
  - In check mode O(wait_healthy=true) waits for nothing; RV(health) is null.
  - With O(lease), a rollout whose run lost its lock (or whose controller died) stops at the next look of its
    waits, before any further change; the scaling processes it suspended are resumed only while the lease is
    still its run's.
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - cutover.bluegreen.wait
  - cutover.bluegreen.wait.optional
  - cutover.bluegreen.lease
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Roll out a new image on the idle colour of the shop service
  cutover.bluegreen.rollout:
    service: shop
    image_id: ami-0123456789abcdef0
  register: rolled_out

- name: Roll out green with new user data, reaching one instance before the full four
  cutover.bluegreen.rollout:
    service: shop
    color: green
    user_data: |
      #!/bin/sh
      echo version=v2 > /etc/release
    capacity: 4
    preparation_capacity: 1
    wait_timeout: 900
"""

RETURN = r"""
health:
  description:
    - With O(wait_healthy=true), the colour's target health once ready, as M(cutover.bluegreen.wait_healthy)
      returns it (C(ready), C(capacity), C(waited_seconds), C(min_healthy), C(health), C(problems), C(draining),
      C(foreign), C(deregistered), C(targets)).
    - Null otherwise and in check mode.
  returned: always
  type: dict
  sample: {"ready": true, "waited_seconds": 12.5, "min_healthy": 2, "health": {"registered": 2, "healthy": 2}}
color:
  description: The colour rolled out.
  returned: always
  type: str
  sample: green
live_color:
  description: The live colour, which was left alone.
  returned: always
  type: str
  sample: blue
capacity:
  description: The capacity the colour was scaled to.
  returned: always
  type: int
  sample: 2
preparation_capacity:
  description: The preparation capacity reached first, if one was given.
  returned: always
  type: int
  sample: null
launch_template:
  description: The launch-template version the colour runs.
  returned: always
  type: dict
  contains:
    id:
      description: Launch template id.
      type: str
      sample: lt-0123456789abcdef0
    name:
      description: Launch template name.
      type: str
      sample: cutover-shop
    version:
      description: The version number the colour runs (in check mode, the number a new version would get).
      type: int
      sample: 2
    created:
      description: Whether the version was (or in check mode, would be) created.
      type: bool
    reused:
      description: When an existing version was reused, which one (V(live), V(current) or V(latest)).
      type: str
      sample: current
    base_version:
      description: The live colour's version, which a new version is created from.
      type: int
      sample: 1
    previous_version:
      description: The version the colour used before.
      type: int
      sample: 1
    changes:
      description: The changed values against the base version, each with its value before and after.
      type: dict
      sample: {"image_id": {"before": "ami-0b5c0de0000000001", "after": "ami-0123456789abcdef0"}}
asg:
  description: The colour's Auto Scaling group before and after.
  returned: always
  type: dict
  contains:
    name:
      description: Group name.
      type: str
      sample: shop-green
    before:
      description: Launch-template version, minimum, maximum and desired capacity before the run.
      type: dict
    after:
      description: The same after the run (planned values in check mode), with instances and suspended processes.
      type: dict
steps:
  description: The group updates, in order (V(replace), V(prepare), V(scale)); an update with no keys changed nothing.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "scale", "update": {"launch_template_version": "2", "min_size": 2, "desired_capacity": 2}, "wait_for": 2}]
suspended_processes:
  description: The scaling processes suspended while scaling and resumed afterwards.
  returned: always
  type: list
  elements: str
  sample: [AZRebalance, AlarmNotification, ScheduledActions, ReplaceUnhealthy]
cleared_tags:
  description: Standby tags removed from the group.
  returned: always
  type: list
  elements: str
  sample: []
waited_seconds:
  description: Seconds spent waiting for instances.
  returned: always
  type: float
  sample: 42.5
lost_lock:
  description: True when the rollout stopped because its run lost the lock (see O(lease)).
  returned: failure
  type: bool
timings:
  description: Seconds per phase (V(launch_template), V(replace), V(prepare), V(scale), V(total)); empty in check mode.
  returned: always
  type: dict
  sample: {"launch_template": 0.2, "scale": 41.0, "total": 42.9}
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import ARGUMENT_SPEC as CAPACITY_ARGUMENT_SPEC
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.health import color_health
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, fenced, pair_module, reported, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import summarize_asg
from ansible_collections.cutover.bluegreen.plugins.module_utils.rollout import (
    DEFAULT_SUSPEND_PROCESSES,
    apply_rollout,
    asg_view,
    plan_rollout,
    validate_inputs,
)

_UPDATE_NAMES = {"MinSize": "min_size", "MaxSize": "max_size", "DesiredCapacity": "desired_capacity"}


def _step(step, version):
    update = {_UPDATE_NAMES[key]: value for key, value in step["update"].items() if key in _UPDATE_NAMES}
    if "LaunchTemplate" in step["update"]:
        update["launch_template_version"] = str(version)
    return {"name": step["name"], "update": update, "wait_for": step["wait_for"]}


def _after(summary):
    view = asg_view(summary)
    view.update(
        in_service=summary["in_service"],
        suspended_processes=summary["suspended_processes"],
        instances=summary["instances"],
    )
    return view


def result_of(plan, outcome=None):
    template = plan["template"]
    version = template["version"] if template["version"] is not None else template["latest_version"] + 1
    before = plan["group"]["before"]
    if outcome:
        version = outcome["version"]
        after = _after(summarize_asg(outcome["group"]))
    else:
        after = dict(plan["group"]["after"])
    result = dict(
        changed=plan["changed"],
        color=plan["color"],
        live_color=plan["live_color"],
        capacity=plan["capacity"],
        preparation_capacity=plan["preparation_capacity"],
        launch_template=dict(
            id=template["template_id"],
            name=template["template_name"],
            version=int(version),
            created=template["create"],
            reused=template["reused"],
            base_version=template["base_version"],
            previous_version=template["current_version"],
            changes=template["changes"],
        ),
        asg=dict(name=before["name"], before=before, after=after),
        steps=[_step(step, version) for step in plan["group"]["steps"]],
        suspended_processes=outcome["suspended"] if outcome else plan["group"]["suspend"],
        cleared_tags=plan["clear_tags"],
        waited_seconds=outcome["waited_seconds"] if outcome else 0.0,
        timings=outcome["timings"] if outcome else {},
    )
    result["diff"] = dict(
        before=dict(
            asg={k: before[k] for k in ("launch_template_version", "min_size", "max_size", "desired_capacity")},
            launch_template_data=template["current_values"],
            tags=plan["clear_tags"],
        ),
        after=dict(
            asg={k: after[k] for k in ("launch_template_version", "min_size", "max_size", "desired_capacity")},
            launch_template_data=template["values"],
            tags=[],
        ),
    )
    return result


def main():
    argument_spec = dict(
        color=dict(type="str", default="idle", choices=["blue", "green", "idle"]),
        image_id=dict(type="str"),
        instance_type=dict(type="str"),
        user_data=dict(type="str"),
        capacity=dict(type="int"),
        preparation_capacity=dict(type="int"),
        wait_healthy=dict(type="bool", default=False),
        suspend_processes=dict(type="list", elements="str", default=list(DEFAULT_SUSPEND_PROCESSES)),
        progress_file=dict(type="path"),
        **CAPACITY_ARGUMENT_SPEC,
    )
    argument_spec.update(waits.argument_spec(aliases=["health_timeout"]))
    argument_spec.update(fence.LEASE_ARGUMENT_SPEC)
    module = pair_module(argument_spec, supports_check_mode=True)
    params = module.params
    if params["wait_healthy"] and not params["wait"]:
        module.fail_json(msg="wait_healthy=true needs wait=true: the targets are waited on once the instances are InService")

    def operation():
        validate_inputs(
            params["image_id"],
            params["instance_type"],
            params["capacity"],
            params["preparation_capacity"],
            params["wait_timeout"],
            params["suspend_processes"],
        )
        with fenced(module):
            return roll_out()

    progress = waits.progress_writer(module.log, params["progress_file"])

    def roll_out():
        elbv2, autoscaling, ec2 = client(module, "elbv2"), client(module, "autoscaling"), client(module, "ec2")
        waiter = waits.waiter_of(params, progress)
        started = waiter.clock()
        pair = discover_pair(module, elbv2, autoscaling, rules=False, health=False)
        plan = plan_rollout(
            ec2,
            pair,
            color=params["color"],
            image_id=params["image_id"],
            instance_type=params["instance_type"],
            user_data=params["user_data"],
            capacity=params["capacity"],
            preparation_capacity=params["preparation_capacity"],
            suspend_processes=params["suspend_processes"],
        )
        if module.check_mode:
            result = result_of(plan)
        else:
            try:
                outcome = apply_rollout(ec2, autoscaling, plan, wait=params["wait"], wait_timeout=params["wait_timeout"], waiter=waiter)
            except CutoverError as exc:
                exc.details.setdefault("color", plan["color"])
                exc.details.setdefault("changed", plan["changed"])
                raise
            result = result_of(plan, outcome)
            progress(
                "%s: %d of %d instance(s) InService on launch-template version %s after %.1f s"
                % (
                    plan["color"],
                    result["asg"]["after"]["in_service"],
                    plan["capacity"],
                    result["launch_template"]["version"],
                    result["waited_seconds"],
                )
            )
        result["health"] = None
        if params["wait_healthy"] and not module.check_mode:
            try:
                result["health"] = color_health(
                    elbv2,
                    autoscaling,
                    pair,
                    plan["color"],
                    min_healthy=plan["capacity"],
                    timeout=max(0.0, params["wait_timeout"] - (waiter.clock() - started)),
                    version=result["launch_template"]["version"],
                    deregister_foreign=params["deregister_foreign"],
                    progress=progress,
                    waiter=waiter,
                )
                health = result["health"]
                progress(
                    "%s: %d of %d target(s) healthy (at least %d wanted) after %.1f s"
                    % (
                        plan["color"],
                        health["health"]["healthy"],
                        health["health"]["registered"],
                        health["min_healthy"],
                        health["waited_seconds"],
                    )
                )
            except CutoverError as exc:
                exc.details.setdefault("changed", result["changed"] or bool(exc.details.get("deregistered")))
                raise
            result["changed"] = result["changed"] or bool(result["health"]["deregistered"])
        return reported(module, result)

    run(module, operation)


if __name__ == "__main__":
    main()
