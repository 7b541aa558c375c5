#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollback
short_description: Roll a blue-green pair back to its previous colour in one step
version_added: 0.1.0
description:
  - Takes the service's deployment lock, switches every production listener and rule back to the previous
    colour (the standby a release left warm), keeps the colour it rolls away from warm as the new standby
    with a TTL, records the rollback in the journal and releases the lock, in one call.
  - The lock is held under the run's identity (O(owner), O(token)) and renewed on the looks of the restore wait
    while the run's O(controller) lives; when the controller dies or another run takes the lock, the rollback
    stops before its next change (C(lost the lock)). O(takeover) takes the lock at once from the live run it
    names, for an incident rollback while a killed run's lease has not expired; the unfinished journal entry of
    the run it takes over from is closed as V(interrupted).
  - A colour that teardown retired (scaled to zero) is first scaled back up, and the switch waits until
    every one of its targets is healthy; a colour with fewer healthy instances of its own than its capacity,
    or with a target that is not one of its instances, is never switched to.
  - A colour whose targets were deregistered (still draining, or gone) while its instances run gets those
    instances registered again, so a rollback right after a drain or a teardown's drain returns at once.
  - A colour that cannot be restored fails at once with the reason, before anything changes (its Auto Scaling
    group's maximum size is 0, or its Launch process is suspended while instances are missing); instances that
    cannot launch, or whose targets stay unhealthy, fail the rollback early with their reasons, not at the end
    of O(wait_timeout).
  - Refuses a colour that never served production (neither standby nor retired) - nothing to roll back to.
  - Naming the colour that is already live changes nothing.
  - While production traffic is split (a canary run waits for promotion), a rollback ends the canary. All
    traffic returns to the colour that served before it, the canary's colour becomes the standby, and the
    canary's deployment is closed in the journal as V(rolled_back). Naming the canary's colour is refused.
author:
  - cutover maintainers (@cutover)
options:
  to:
    description:
      - The colour to return to; V(previous) is the colour that is not live now.
    type: str
    default: previous
    choices: [previous, blue, green]
  lease_seconds:
    description:
      - Lease of the deployment lock, in seconds; renewed every quarter of it while the rollback waits.
    type: int
    default: 60
  table_name:
    description:
      - The lock and journal table (default C(cutover-<service>)).
    type: str
  standby_ttl:
    description:
      - How long the colour rolled away from stays warm, as seconds or a duration like V(30m), V(2h), V(1d).
    type: str
    default: 1d
  capacity:
    description:
      - Instances to restore a retired colour to (default the live colour's desired capacity).
    type: int
  wait_timeout:
    description:
      - Seconds to wait in all (0 or more) for a restored colour to be InService and then healthy.
  publish_parameter:
    description:
      - SSM parameter that publishes the live colour (default C(/cutover/<service>/active-color)); an empty string disables it.
    type: str
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - cutover.bluegreen.wait
  - cutover.bluegreen.capacity
  - cutover.bluegreen.lease.IDENTITY
  - cutover.bluegreen.lease.CONTROLLER
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - "Steps it combines: the whole rollback (lock, journal, restore, switch, standby, journal, unlock), the one
    workflow run as a single module. It is run when production hurts, so it is one process - one module start
    instead of six, and a lease its own waits renew, with no heartbeat task - and its steps always go together.
    Each step is the library function the single-step modules use, with the same refusals."
  - Supports check mode (reports what it would do; takes no lock and changes nothing).
"""

EXAMPLES = r"""
- name: Make this run's identity
  cutover.bluegreen.run_identity:
  register: run

- name: Roll shop back to the colour that was live before the last release
  cutover.bluegreen.rollback:
    service: shop
    owner: "{{ run.owner }}"
    token: "{{ run.token }}"
    controller: "{{ run.controller }}"

- name: Return to blue explicitly, keeping green warm for two hours, taking the lock from a killed deploy
  cutover.bluegreen.rollback:
    service: shop
    to: blue
    owner: "{{ run.owner }}"
    token: "{{ run.token }}"
    controller: "{{ run.controller }}"
    takeover: 3f2a9c0e5b7d4e1f8a6b2c3d4e5f6a7b
    standby_ttl: 2h
"""

RETURN = r"""
canary:
  description: The id of the canary deployment this rollback ended, or null.
  returned: always
  type: str
  sample: 20260101T120000Z-1a2b3c4d
from_color:
  description: The colour that was live.
  returned: always
  type: str
  sample: green
to_color:
  description: The colour live after the rollback.
  returned: always
  type: str
  sample: blue
message:
  description: What happened.
  returned: always
  type: str
  sample: blue is live again; green is the standby until 2026-01-02T12:00:00Z
deployment_id:
  description: The journal entry of the rollback (null when nothing was to be done).
  returned: always
  type: str
restored:
  description:
    - When the colour had been retired, how it was scaled back up (sizes, waits, health), the instances
      registered again (C(registered)) and the foreign targets deregistered (C(deregistered)).
    - C(ready) says whether it was ready to serve. In check mode a colour that is not ready yet passes the
      switch's health guard, since a real run waits for it before switching.
  returned: always
  type: dict
switch:
  description: The switch (changes per listener and rule, switch_seconds, switched_at, verified).
  returned: always
  type: dict
standby:
  description: The colour rolled away from, now the standby (retire_after, tags).
  returned: always
  type: dict
took_over:
  description:
    - When the lock was taken over from a dead (or named) run, what was done with that run's unfinished journal
      entry (C(deployment_id), C(action) V(interrupt) or V(leave), C(reason)); else null.
  returned: always
  type: dict
lost_lock:
  description: True when the rollback stopped because its run lost the lock.
  returned: failure
  type: bool
seconds:
  description: How long the rollback took, lock to unlock.
  returned: always
  type: float
  sample: 0.9
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import lease, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import ARGUMENT_SPEC as CAPACITY_ARGUMENT_SPEC
from ansible_collections.cutover.bluegreen.plugins.module_utils.fence import CONTROLLER_SPEC
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, pair_module, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.parameter import default_parameter_name
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import parse_ttl
from ansible_collections.cutover.bluegreen.plugins.module_utils.rollback import rollback
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import table_name


def main():
    module = pair_module(
        dict(
            to=dict(type="str", default="previous", choices=["previous", "blue", "green"]),
            owner=dict(type="str", required=True),
            token=dict(type="str", required=True, no_log=False),
            takeover=dict(type="str"),
            lease_seconds=dict(type="int", default=60),
            controller=CONTROLLER_SPEC,
            table_name=dict(type="str"),
            standby_ttl=dict(type="str", default="1d"),
            capacity=dict(type="int"),
            publish_parameter=dict(type="str"),
            **waits.argument_spec(wait=False),
            **CAPACITY_ARGUMENT_SPEC,
        ),
        supports_check_mode=True,
    )
    params = module.params

    def operation():
        parse_ttl(params["standby_ttl"])  # bad input fails before anything changes
        lease.validate(params["owner"], params["token"], params["lease_seconds"], params["takeover"])
        if params["capacity"] is not None and params["capacity"] < 1:
            module.fail_json(msg="capacity must be at least 1, got %s" % params["capacity"])
        clients = {name: client(module, name) for name in ("elbv2", "autoscaling", "dynamodb", "ssm")}
        parameter = params["publish_parameter"]
        return rollback(
            clients,
            lambda: discover_pair(module, clients["elbv2"], clients["autoscaling"]),
            params["service"],
            params["owner"],
            params["token"],
            table_name(params["service"], params["table_name"]),
            to=params["to"],
            lease_seconds=params["lease_seconds"],
            takeover=params["takeover"],
            controller=params["controller"],
            standby_ttl=params["standby_ttl"],
            capacity=params["capacity"],
            wait_timeout=params["wait_timeout"],
            parameter_name=default_parameter_name(params["service"]) if parameter is None else parameter,
            deregister_foreign=params["deregister_foreign"],
            check_mode=module.check_mode,
            progress=module.log,
            waiter=waits.waiter_of(params, module.log),
        )

    run(module, operation)


if __name__ == "__main__":
    main()
