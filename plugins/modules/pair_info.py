#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pair_info
short_description: Read the state of a blue-green pair
version_added: 0.1.0
description:
  - Finds a service's blue-green pair from its tags and reports the live colour (what the production
    listener forwards to), the idle colour, both Auto Scaling groups, both target groups with every
    target's health and reason, and every listener and rule that forwards into the pair.
  - Also reports, from the service's deployment table, who holds the deployment lock and the most recent
    deployments of the journal, and a summary of the standby colour and its retire-after time.
  - When the deployment table does not exist, RV(lock) is null and RV(deployments) empty, with a warning.
  - With O(release), also says whether that release is a re-run of an unfinished deployment whose run died
    (RV(resume)), and where it stands, so the re-run resumes it instead of starting another.
author:
  - cutover maintainers (@cutover)
options:
  deployments:
    description:
      - How many of the most recent deployments to return from the journal, newest first (0 to 100).
    type: int
    default: 5
  release:
    description:
      - The release the caller is about to run, to find an unfinished deployment of the same release that a dead
        run left (see RV(resume)).
    type: dict
    suboptions:
      phase:
        description: V(full) or V(canary).
        type: str
        choices: [full, canary]
        default: full
      image_id:
        description: Its image id.
        type: str
      instance_type:
        description: Its instance type.
        type: str
      user_data_sha256:
        description: The SHA-256 (hex) of its user data, if it gives user data.
        type: str
  takeover:
    description:
      - The holder the caller will take the lock from (its owner or token), as for M(cutover.bluegreen.lock);
        a live lease it names counts as one the caller may take for RV(resume).
    type: str
notes:
  - Reading the table needs C(dynamodb:GetItem) and C(dynamodb:Query).
extends_documentation_fragment:
  - cutover.bluegreen.pair
  - cutover.bluegreen.table.name
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Read the pair of the shop service
  cutover.bluegreen.pair_info:
    service: shop
  register: shop

- name: Show which colour is live
  ansible.builtin.debug:
    msg: "{{ shop.pair.live_color }} is live, {{ shop.pair.idle_color }} is idle"

- name: Show who deploys shop right now
  ansible.builtin.debug:
    msg: "{{ shop.lock.owner ~ ' holds the lock until ' ~ shop.lock.expires_at if shop.lock else 'shop is not locked' }}"
"""

RETURN = r"""
pair:
  description: The pair as discovered.
  returned: always
  type: dict
  contains:
    service:
      description: The service name.
      type: str
      sample: shop
    live_color:
      description: The colour the production listener forwards (the most) traffic to.
      type: str
      sample: blue
    idle_color:
      description: The other colour.
      type: str
      sample: green
    split:
      description: Whether production traffic is split between both colours (a canary phase).
      type: bool
    production_weights:
      description: Weight per colour of the production listener's default action.
      type: dict
      sample: {"blue": 1}
    production_listener_arn:
      description: ARN of the production listener.
      type: str
    test_listener_arn:
      description: ARN of the test listener, if the pair has one.
      type: str
    load_balancer_arn:
      description: ARN of the load balancer.
      type: str
    listeners:
      description: Listeners of the load balancer with their role (production, test or none).
      type: list
      elements: dict
    forwarders:
      description: Every listener default action and rule that forwards into the pair, with its weights.
      type: list
      elements: dict
    colors:
      description:
        - Per colour, its target group, Auto Scaling group, targets and health counts,
          and C(version) - what it runs (launch_template_version, image_id, instance_type, user_data).
      type: dict
    load_balancer_dns_name:
      description: DNS name of the load balancer.
      type: str
    production_listener_port:
      description: Port of the production listener.
      type: int
      sample: 80
    test_listener_port:
      description: Port of the test listener (which forwards to the idle colour).
      type: int
      sample: 9000
standby:
  description:
    - The colour that is not live, and whether its retire-after time has passed.
    - Null when no colour is live.
  returned: always
  type: dict
  contains:
    color:
      description: The idle colour.
      type: str
      sample: green
    state:
      description: Its C(cutover:state) tag (V(standby) or V(retired)), or null when it carries none.
      type: str
      sample: standby
    retire_after:
      description: Its C(cutover:retire-after) tag (ISO 8601, UTC), or null.
      type: str
      sample: "2026-01-02T12:00:00Z"
    expired:
      description: Whether the retire-after time has passed (false when there is none).
      type: bool
      sample: false
    desired_capacity:
      description: Desired capacity of its Auto Scaling group.
      type: int
      sample: 2
    in_service:
      description: Instances of its Auto Scaling group in service.
      type: int
      sample: 2
lock:
  description:
    - The deployment lock of the service, or null when nobody holds it (or the table does not exist).
    - Same fields as RV(cutover.bluegreen.lock#module:lock).
  returned: always
  type: dict
  contains:
    owner:
      description: Who holds the lock.
      type: str
      sample: awx-job-42
    token:
      description: The token of the run that holds it (give it as C(takeover) to take the lock from that run).
      type: str
    purpose:
      description: What the lock is held for, if given.
      type: str
    deployment_id:
      description: The journal entry the holding run writes, if any.
      type: str
    renewed_at:
      description: When the lease was last renewed (ISO 8601, UTC); a live run renews it every quarter of its lease.
      type: str
    acquired_at:
      description: When the owner acquired the lock (ISO 8601, UTC).
      type: str
      sample: "2026-01-01T12:00:00Z"
    expires_at:
      description: When the lease expires (ISO 8601, UTC).
      type: str
      sample: "2026-01-01T12:30:00Z"
    expired:
      description: Whether the lease has expired (another deploy may then take it over).
      type: bool
      sample: false
    seconds_left:
      description: Seconds until the lease expires.
      type: int
      sample: 1500
resume:
  description:
    - With O(release), the unfinished deployment that release resumes, or null. A deployment is resumed when the
      lock names it, that lock may be taken (expired, or named by O(takeover)), it is still in progress, it
      released the same version in the same phase, and production is where it left it.
    - C(deployment_id), C(from_color) and C(to_color) (from the deployment, not from the pair the switch may have
      turned), C(from_version), C(switched) (production already moved, so only verifying, baking, marking the
      standby and closing are left), C(switched_at) (when its switch began, as the deployment noted it, or null),
      C(holder) (the dead run), C(steps_left).
  returned: always
  type: dict
  sample: {"deployment_id": "20260101T120000Z-1a2b3c4d", "from_color": "blue", "to_color": "green", "switched": true}
deployments:
  description:
    - The most recent deployments of the journal, newest first, with the fields of
      RV(cutover.bluegreen.journal#module:deployment). An V(interrupted) one was left unfinished by a run that
      died; C(record.interrupted_by) names the run that took its lock over.
  returned: always
  type: list
  elements: dict
table_name:
  description: The deployment table read.
  returned: always
  type: str
  sample: cutover-shop
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import journal, lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, parse_time, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, discover_pair, pair_module, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import load_balancer_address, running_versions
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import MissingTable, table_name


def standby_summary(pair, now):
    """The idle colour of a pair (``Pair.to_dict()``) and whether its retire-after time has passed."""
    color = pair.get("idle_color")
    if not color:
        return None
    asg = pair["colors"][color]["asg"]
    retire_after = asg.get("retire_after")
    expired = False
    if retire_after:
        try:
            expired = parse_time(retire_after) <= now
        except CutoverError:
            expired = False  # a malformed tag is shown as it is; teardown refuses it
    return {
        "color": color,
        "state": asg.get("state"),
        "retire_after": retire_after,
        "expired": expired,
        "desired_capacity": asg.get("desired_capacity"),
        "in_service": asg.get("in_service"),
    }


def main():
    release = dict(
        type="dict",
        options=dict(
            phase=dict(type="str", choices=["full", "canary"], default="full"),
            image_id=dict(type="str"),
            instance_type=dict(type="str"),
            user_data_sha256=dict(type="str"),
        ),
    )
    module = pair_module(
        dict(table_name=dict(type="str"), deployments=dict(type="int", default=5), release=release, takeover=dict(type="str")),
        supports_check_mode=True,
    )
    params = module.params

    def operation():
        if not 0 <= params["deployments"] <= journal.MAX_RECENT:
            raise CutoverError("deployments must be between 0 and %d, got %d" % (journal.MAX_RECENT, params["deployments"]))
        table = table_name(params["service"], params["table_name"])
        elbv2 = client(module, "elbv2")
        found = discover_pair(module, elbv2, client(module, "autoscaling"))
        pair = found.to_dict()
        pair.update(load_balancer_address(elbv2, found))
        for color, version in running_versions(client(module, "ec2"), found).items():
            pair["colors"][color]["version"] = version
        now = utcnow()
        dynamodb = client(module, "dynamodb")
        resume = None
        try:
            lock = lease.read(dynamodb, table, params["service"], now)
            deployments = [journal.view(item, now) for item in journal.recent(dynamodb, table, params["service"], params["deployments"])]
            if params["release"] is not None and lock and lock.get("deployment_id"):
                entry = journal.get(dynamodb, table, params["service"], lock["deployment_id"])
                resume = journal.plan_resume(lock, entry, params["release"], params["takeover"], pair.get("live_color"), found.split)
        except MissingTable as exc:
            module.warn(exc.message)
            lock, deployments = None, []
        return dict(
            changed=False,
            pair=pair,
            standby=standby_summary(pair, now),
            lock=lock,
            resume=resume,
            deployments=deployments,
            table_name=table,
        )

    run(module, operation)


if __name__ == "__main__":
    main()
