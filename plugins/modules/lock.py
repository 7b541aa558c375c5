#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lock
short_description: Acquire, hold or release the deployment lock of a service
version_added: 0.1.0
description:
  - Holds a lease on a service in its deployment table (DynamoDB), so that two runs never change one service at
    the same time. Every run holds it under an identity of its own, a readable O(owner) and a O(token) unique to
    the run; only that run renews or releases it.
  - Every write is conditional on the lease being what it was read as, so two runs never hold it at once; the
    loser of a race fails, naming the holder.
  - O(state=acquired) takes the lease. Acquiring again with the same O(token) changes nothing while more than half
    of the lease is left (and O(lease_seconds) and O(purpose) are unchanged); otherwise it renews it.
  - A lease of another run that has expired (its run died and stopped renewing it) is taken over; one that is
    live is refused, naming its holder, what it is doing, since when and until when, and the exact O(takeover)
    that takes it. A takeover is recorded in RV(lock.takeovers). When the lease taken over names an unfinished
    journal entry of the dead run, that entry is closed as V(interrupted), naming this run (see
    M(cutover.bluegreen.journal)).
  - O(state=held) keeps the run's lease while the run lives, as an C(async) task started right after the lease is
    taken (C(poll=0)). It renews the lease every quarter of O(lease_seconds) and stops when the controller
    process O(controller) is gone (the lease then expires soon after), when the lease was released or taken
    over, or after O(hold_seconds).
  - O(state=released) deletes the lease only when O(token) holds it; releasing a lease nobody holds changes
    nothing; another run's lease is not released (C(lost the lock)).
author:
  - cutover maintainers (@cutover)
options:
  state:
    description:
      - V(acquired) takes (or renews) the lease, V(held) keeps renewing it while the run lives, V(released) gives it
        back.
    type: str
    choices: [acquired, held, released]
    default: acquired
  lease_seconds:
    description:
      - How long the lease lasts from when it is acquired or renewed, in seconds (1 to 604800).
      - Keep it short and hold it with O(state=held), so that a dead run's lease expires soon after its death.
    type: int
    default: 60
  purpose:
    description:
      - What the run does (V(deploy v2 to green), V(teardown of expired standbys)...), shown to anyone who finds the
        service locked.
      - When omitted, a renewal keeps the stored purpose.
    type: str
  hold_seconds:
    description:
      - With O(state=held), the longest time to keep the lease, in seconds; give the C(async) value of the task.
    type: int
    default: 86400
notes:
  - Needs C(dynamodb:GetItem), C(dynamodb:PutItem), C(dynamodb:UpdateItem) and C(dynamodb:DeleteItem) on the table.
  - Times are UTC. The lease expiry is stored in C(expires_at) (epoch seconds), the table's time-to-live
    attribute, so DynamoDB eventually deletes leases long past their expiry.
  - Whether a lease has expired is judged by the clock of the machine running the module; keep the clocks of
    the machines that deploy in sync.
extends_documentation_fragment:
  - cutover.bluegreen.table
  - cutover.bluegreen.lease.IDENTITY
  - cutover.bluegreen.lease.CONTROLLER
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Make this run's identity (owner, token, controller)
  cutover.bluegreen.run_identity:
  register: run

- name: Lock the shop service for this run
  cutover.bluegreen.lock:
    service: shop
    owner: "{{ run.owner }}"
    token: "{{ run.token }}"
    purpose: "release {{ image_id }}"

- name: Keep the lock while this run lives
  cutover.bluegreen.lock:
    service: shop
    state: held
    owner: "{{ run.owner }}"
    token: "{{ run.token }}"
    controller: "{{ run.controller }}"
  async: 86400
  poll: 0

- name: Unlock it again
  cutover.bluegreen.lock:
    service: shop
    owner: "{{ run.owner }}"
    token: "{{ run.token }}"
    state: released

- name: Take the lock from a run that is known to be gone, naming it as the refusal printed it
  cutover.bluegreen.lock:
    service: shop
    owner: "{{ run.owner }}"
    token: "{{ run.token }}"
    takeover: 3f2a9c0e5b7d4e1f8a6b2c3d4e5f6a7b
"""

RETURN = r"""
operation:
  description:
    - What was done (or would be, in check mode).
    - V(acquire) (the lease was free), V(renew) (this run's lease, new expiry), V(take_over) (an expired lease of
      another run), V(take_over_named) (a live lease of the run O(takeover) names), V(unchanged), V(release) or
      V(not_held) (nothing to release). With O(state=held), V(held).
  returned: success
  type: str
  sample: acquire
table_name:
  description: The table used.
  returned: success
  type: str
  sample: cutover-shop
lock:
  description:
    - The lease after the task, or null when nobody holds it.
    - On failure because another run holds the lock, that run's lease.
  returned: success, or when another run holds the lock
  type: dict
  contains:
    service:
      description: The service.
      type: str
      sample: shop
    owner:
      description: Who holds the lease.
      type: str
      sample: ansible-playbook alice@ci-1 pid 4242
    token:
      description: The holding run's token.
      type: str
      sample: 3f2a9c0e5b7d4e1f8a6b2c3d4e5f6a7b
    purpose:
      description: What the lease is held for, if given.
      type: str
      sample: deploy v2 to green
    deployment_id:
      description: The journal entry the holding run writes, if any.
      type: str
      sample: 20260101T120000Z-1a2b3c4d
    acquired_at:
      description: When the run acquired the lease (ISO 8601, UTC).
      type: str
      sample: "2026-01-01T12:00:00Z"
    renewed_at:
      description: When the lease was last acquired or renewed (ISO 8601, UTC).
      type: str
      sample: "2026-01-01T12:00:45Z"
    expires_at:
      description: When the lease expires (ISO 8601, UTC).
      type: str
      sample: "2026-01-01T12:01:45Z"
    expires_at_epoch:
      description: When the lease expires, in epoch seconds (the stored value).
      type: int
      sample: 1767268905
    lease_seconds:
      description: Length of the lease.
      type: int
      sample: 60
    expired:
      description: Whether the lease has expired.
      type: bool
      sample: false
    seconds_left:
      description: Seconds until the lease expires (0 when expired).
      type: int
      sample: 60
    takeovers:
      description: Previous holders this lease was taken over from (the last 10), oldest first.
      type: list
      elements: dict
      sample:
        - owner: awx-job-41
          token: 0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e
          purpose: deploy v2 to green
          deployment_id: 20260101T115900Z-0a1b2c3d
          acquired_at: "2026-01-01T11:59:00Z"
          renewed_at: "2026-01-01T11:59:45Z"
          expires_at: "2026-01-01T12:00:45Z"
          taken_at: "2026-01-01T12:00:50Z"
          taken_by: awx-job-42
          reason: expired
previous:
  description: The lease before the task, or null when it was free; same fields as RV(lock).
  returned: success
  type: dict
interrupted:
  description:
    - When the lease taken over named an unfinished journal entry of the dead run, what was done with it
      (C(deployment_id), C(action) V(interrupt) or V(leave), C(reason)).
  returned: when a lease was taken over
  type: dict
  sample: {"deployment_id": "20260101T115900Z-0a1b2c3d", "action": "interrupt", "reason": "deployment ... was left unfinished by its run"}
held:
  description:
    - With O(state=held), why holding stopped (C(stopped) V(controller_gone), V(not_held) or V(time_limit), and
      C(reason)) and how many renewals were made (C(renewals), C(failed_renewals)).
  returned: with O(state=held)
  type: dict
  sample: {"stopped": "controller_gone", "reason": "the controller (pid 4242) is gone", "renewals": 4, "failed_renewals": 0}
holder:
  description: When the lock is held by another run, that run's owner.
  returned: failure
  type: str
  sample: awx-job-41
holder_token:
  description: When the lock is held by another run, that run's token.
  returned: failure
  type: str
  sample: 0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e
takeover_hint:
  description: When the lock is held by another run, the option that takes it over (C(-e takeover=<token>)).
  returned: failure
  type: str
  sample: -e takeover=0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e
expires_at:
  description: When the lock is held by another run, when that lease expires (ISO 8601, UTC).
  returned: failure
  type: str
  sample: "2026-01-01T12:30:00Z"
lost_lock:
  description: True when this run's lease is not its own any more (taken over, released, expired).
  returned: failure
  type: bool
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.cutover.bluegreen.plugins.module_utils import journal, lease, locking
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.fence import CONTROLLER_SPEC
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import TABLE_ARGUMENT_SPEC, table_name


def main():
    argument_spec = dict(TABLE_ARGUMENT_SPEC)
    argument_spec.update(
        owner=dict(type="str", required=True),
        token=dict(type="str", required=True, no_log=False),
        state=dict(type="str", choices=["acquired", "held", "released"], default="acquired"),
        lease_seconds=dict(type="int", default=60),
        purpose=dict(type="str"),
        takeover=dict(type="str"),
        controller=CONTROLLER_SPEC,
        hold_seconds=dict(type="int", default=86400),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "held", ["controller"])],
    )
    params = module.params
    table = table_name(params["service"], params["table_name"])

    def operation():
        state = params["state"]
        lease.validate(params["owner"], params["token"], params["lease_seconds"] if state != "released" else None, params["takeover"])
        if state == "held" and params["hold_seconds"] < 1:
            raise CutoverError("hold_seconds must be at least 1, got %d" % params["hold_seconds"])
        dynamodb = client(module, "dynamodb")
        if state == "held":
            if module.check_mode:
                return dict(changed=False, operation="held", table_name=table, held=None)
            held = lease.hold(
                dynamodb,
                table,
                params["service"],
                params["token"],
                params["lease_seconds"],
                params["controller"],
                max_seconds=params["hold_seconds"],
                progress=module.log,
            )
            return dict(changed=held["renewals"] > 0, operation="held", table_name=table, held=held)
        result = locking.lock_task(
            lease.Table(dynamodb, table, params["service"]),
            journal.Journal(dynamodb, table, params["service"]),
            state,
            params["owner"],
            params["token"],
            params["lease_seconds"],
            purpose=params["purpose"],
            takeover=params["takeover"],
            check_mode=module.check_mode,
        )
        result["table_name"] = table
        if module._diff:
            result["diff"] = locking.diff(result)
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
