#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lock
short_description: Acquire or release the deployment lock of a service
version_added: 0.1.0
description:
  - Holds a lease on a service in its deployment table (DynamoDB), so that two deploys of one service never
    change it at the same time. The lease has an owner and an expiry, so a crashed run does not block the
    service for ever.
  - Every write is conditional on the lease being what it was read as, so two owners never hold it at once;
    the loser of a race fails, naming the holder.
  - Acquiring a lease already held by the same O(owner) changes nothing while more than half of the lease is
    left (and O(lease_seconds) and O(purpose) are unchanged); otherwise the lease is renewed with a new expiry.
  - A lease of another owner that has expired (a crashed run) is taken over, and the previous holder recorded
    in RV(lock.takeovers), unless O(takeover=false).
  - A live lease of another owner is refused, naming the holder and when the lease expires, unless
    O(force_takeover=true).
  - Releasing deletes the lease only when O(owner) holds it; releasing a lease nobody holds changes nothing;
    releasing another owner's lease fails.
author:
  - cutover maintainers (@cutover)
options:
  owner:
    description:
      - Who holds the lock, a name unique to this run, such as a CI job or AWX job id.
      - Required, with no default such as the controller's user, because two runs with the same owner would
        both be let in.
    type: str
    required: true
  state:
    description:
      - V(acquired) takes (or renews) the lease, V(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  lease_seconds:
    description:
      - How long the lease lasts from when it is acquired or renewed, in seconds (1 to 604800).
      - Choose it longer than a whole deploy; re-acquire to renew it during a long one.
    type: int
    default: 1800
  purpose:
    description:
      - What the lock is held for (a release version, a rollback...), shown to anyone who finds the service locked.
      - When omitted, a renewal keeps the stored purpose.
    type: str
  takeover:
    description:
      - Take over a lease of another owner that has expired (the previous holder is recorded).
      - Set V(false) to fail instead and leave the expired lease for inspection.
    type: bool
    default: true
  force_takeover:
    description:
      - Take over a lease of another owner that has B(not) expired. Only when that run is known to be gone, since
        the lock then no longer protects it.
      - The previous holder is recorded in RV(lock.takeovers) with reason V(forced).
    type: bool
    default: false
notes:
  - Needs C(dynamodb:GetItem), C(dynamodb:PutItem) and C(dynamodb:DeleteItem) on the table.
  - Times are UTC. The lease expiry is stored in C(expires_at) (epoch seconds), the table's time-to-live
    attribute, so DynamoDB eventually deletes leases long past their expiry.
  - Whether a lease has expired is judged by the clock of the machine running the module; keep the clocks of
    the machines that deploy in sync.
extends_documentation_fragment:
  - cutover.bluegreen.table
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Lock the shop service for this job
  cutover.bluegreen.lock:
    service: shop
    owner: "awx-job-{{ awx_job_id }}"
    purpose: "release {{ image_id }}"
    lease_seconds: 3600

- name: Unlock it again
  cutover.bluegreen.lock:
    service: shop
    owner: "awx-job-{{ awx_job_id }}"
    state: released

- name: Take over the lock of a run that is known to have died
  cutover.bluegreen.lock:
    service: shop
    owner: "awx-job-{{ awx_job_id }}"
    force_takeover: true
"""

RETURN = r"""
operation:
  description:
    - What was done (or would be, in check mode).
    - V(acquire) (the lease was free), V(renew) (our own lease, new expiry), V(take_over) (an expired lease of
      another owner), V(force_takeover) (a live lease of another owner), V(unchanged), V(release) or
      V(not_held) (nothing to release).
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
    - On failure because another owner holds the lock, that owner's lease.
  returned: success, or when another owner holds the lock
  type: dict
  contains:
    service:
      description: The service.
      type: str
      sample: shop
    owner:
      description: Who holds the lease.
      type: str
      sample: awx-job-42
    purpose:
      description: What the lease is held for, if given.
      type: str
      sample: release ami-0123456789abcdef0
    acquired_at:
      description: When the owner acquired the lease (ISO 8601, UTC).
      type: str
      sample: "2026-01-01T12:00:00Z"
    renewed_at:
      description: When the lease was last acquired or renewed (ISO 8601, UTC).
      type: str
      sample: "2026-01-01T12:00:00Z"
    expires_at:
      description: When the lease expires (ISO 8601, UTC).
      type: str
      sample: "2026-01-01T12:30:00Z"
    expires_at_epoch:
      description: When the lease expires, in epoch seconds (the stored value).
      type: int
      sample: 1767270600
    lease_seconds:
      description: Length of the lease.
      type: int
      sample: 1800
    expired:
      description: Whether the lease has expired.
      type: bool
      sample: false
    seconds_left:
      description: Seconds until the lease expires (0 when expired).
      type: int
      sample: 1800
    takeovers:
      description: Previous holders this lease was taken over from (the last 10), oldest first.
      type: list
      elements: dict
      sample:
        - owner: awx-job-41
          purpose: release ami-0aaaaaaaaaaaaaaaa
          acquired_at: "2026-01-01T11:00:00Z"
          expires_at: "2026-01-01T11:30:00Z"
          taken_at: "2026-01-01T12:00:00Z"
          taken_by: awx-job-42
          reason: expired
previous:
  description: The lease before the task, or null when it was free; same fields as RV(lock).
  returned: success
  type: dict
holder:
  description: When the lock is held by another owner, that owner.
  returned: failure
  type: str
  sample: awx-job-41
expires_at:
  description: When the lock is held by another owner, when that lease expires (ISO 8601, UTC).
  returned: failure
  type: str
  sample: "2026-01-01T12:30:00Z"
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import TABLE_ARGUMENT_SPEC, table_name


def holder(lock):
    """What the diff shows of a lease."""
    if not lock:
        return {}
    return {key: lock.get(key) for key in ("owner", "purpose", "acquired_at", "expires_at")}


def main():
    argument_spec = dict(TABLE_ARGUMENT_SPEC)
    argument_spec.update(
        owner=dict(type="str", required=True),
        state=dict(type="str", choices=["acquired", "released"], default="acquired"),
        lease_seconds=dict(type="int", default=1800),
        purpose=dict(type="str"),
        takeover=dict(type="bool", default=True),
        force_takeover=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    table = table_name(params["service"], params["table_name"])

    def operation():
        if params["state"] == "acquired":
            lease.validate(params["owner"], params["lease_seconds"])
        else:
            lease.validate(params["owner"])
        dynamodb = client(module, "dynamodb")
        if params["state"] == "acquired":
            result = lease.acquire(
                dynamodb,
                table,
                params["service"],
                params["owner"],
                params["lease_seconds"],
                takeover=params["takeover"],
                force_takeover=params["force_takeover"],
                purpose=params["purpose"],
                check_mode=module.check_mode,
            )
        else:
            result = lease.release(dynamodb, table, params["service"], params["owner"], check_mode=module.check_mode)
        result["table_name"] = table
        if module._diff:
            result["diff"] = dict(before=holder(result["previous"]), after=holder(result["lock"]))
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
