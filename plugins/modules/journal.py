#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: journal
short_description: Record a deployment of a service in its journal
version_added: 0.1.0
description:
  - Keeps one record per deployment in the service's deployment table (DynamoDB), with when it started, each step
    with its start, finish and seconds, the outcome, a message, durations, and free-form data such as the
    colours and versions it moved between.
  - O(state=started) opens a deployment and returns its id, which starts with its UTC start time
    (C(20260101T120000Z-1a2b3c4d)) so that the journal reads newest first.
  - O(state=step) records a step as started, finished, failed or skipped.
  - O(state=finished) closes the deployment with an outcome.
  - Journal records have no expiry; they are kept.
  - With O(lock), the deployment lock of the service (see M(cutover.bluegreen.lock)) is taken before the
    deployment opens, or given back after its last write, in the same call. The lease names the deployment it
    covers.
  - When O(lock=acquire) takes over the lease of a dead run (expired, or named by O(takeover)), the unfinished
    entry that lease names is settled first. Opening that same entry again (O(deployment_id) is its id, a re-run
    of the same release) adopts and resumes it (C(record.resumed) names who resumed it); any other run closes it
    with outcome V(interrupted), naming the run that interrupted it (C(record.interrupted_by)). The new entry
    records whom it took the lock from (C(record.took_over)). A canary waiting for promotion holds no lease and
    is never closed so.
author:
  - cutover maintainers (@cutover)
options:
  state:
    description:
      - V(started) opens a deployment. Without O(deployment_id) a new deployment is opened every time; with one,
        a deployment already in the journal is left as it is (only a different O(owner), O(summary) or O(record)
        is updated), so a resumed run can start again with its id.
      - V(step) records step O(step) of deployment O(deployment_id) as O(status).
      - V(finished) closes deployment O(deployment_id) with O(outcome). Finishing again with the same outcome,
        summary and record changes nothing; a different outcome (say V(rolled_back) after V(succeeded))
        replaces it.
      - With O(lock=release), a run whose lock was taken over writes nothing and fails with C(lost the lock),
        since its entry belongs to the run that holds the lock now.
    type: str
    choices: [started, step, finished]
    required: true
  deployment_id:
    description:
      - The deployment, as returned by O(state=started). Required for V(step) and V(finished).
      - Ids have the form C(<UTC start time YYYYMMDDTHHMMSSZ>-<suffix>), for example C(20260101T120000Z-1a2b3c4d)
        or C(20260101T120000Z-awx-42); the suffix has letters, digits and C(_ . -).
    type: str
  owner:
    description:
      - Who runs the deployment (the lock's owner, a readable name), recorded when the deployment starts.
    type: str
  token:
    description:
      - With O(lock), the token of the run that takes or gives back the lock (see M(cutover.bluegreen.lock)).
    type: str
  takeover:
    description:
      - With O(lock=acquire), take the lock from the live run it names (that run's owner or token); see
        M(cutover.bluegreen.lock).
    type: str
  step:
    description:
      - Name of the step for O(state=step), such as V(rollout), V(wait_healthy) or V(switch).
      - "Letters, digits and C(_ . : -), at most 64 characters."
    type: str
  status:
    description:
      - For O(state=step). V(started) records the step's start; a step that already started or finished is left
        alone, one that failed is started again.
      - V(finished), V(failed) or V(skipped) record the step's end and its seconds since it started.
    type: str
    choices: [started, finished, failed, skipped]
    default: finished
  outcome:
    description:
      - How the deployment ended, for O(state=finished).
    type: str
    choices: [succeeded, failed, rolled_back, interrupted]
  summary:
    description:
      - A line for humans, such as what went live or why the deployment failed.
    type: str
  record:
    description:
      - Free-form data to keep with the deployment, merged into what is stored by top-level key (each key given
        replaces the stored one).
      - By convention C(colors) (V(from), V(to)), C(versions) (V(from), V(to), each with image id and launch
        template version) and C(image_id).
    type: dict
  lock:
    description:
      - V(acquire), with O(state=started), takes the service's deployment lock for O(owner) first, with the
        refusals of M(cutover.bluegreen.lock) (a live lease of another run fails naming the holder, its
        purpose, since and until when, and how to take it over; an expired one is taken over), and opens the
        deployment only once it holds the lock. If the deployment cannot be opened, the lock is given back.
      - V(release), with O(state=step) or O(state=finished), checks the lock is still O(token)'s, writes, and
        releases it, also when the write failed.
      - Needs O(owner) and O(token). Omitted, the lock is not touched.
    type: str
    choices: [acquire, release]
  lease_seconds:
    description:
      - With O(lock=acquire), how long the lease lasts, in seconds (1 to 604800); keep it renewed with
        M(cutover.bluegreen.lock) O(state=held).
    type: int
    default: 60
  purpose:
    description:
      - With O(lock=acquire), what the lock is held for, shown to anyone who finds the service locked.
    type: str
notes:
  - "Steps it combines with O(lock), because they always go together: taking the lock and opening the run's entry,
    which the lease names (a run that takes over a dead run's lease settles the entry it names), or the run's last
    write and giving the lock back. The lock itself is taken and given back by the one entry point every module
    uses (the same as M(cutover.bluegreen.lock)'s), with the same rules."
  - Needs C(dynamodb:GetItem), C(dynamodb:PutItem) and C(dynamodb:UpdateItem) on the table, and with O(lock)
    C(dynamodb:DeleteItem).
  - In check mode nothing is written; a step or finish of a deployment that is not in the journal (because it was
    started in check mode) is reported as a change with a warning.
extends_documentation_fragment:
  - cutover.bluegreen.table
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Take the lock and open the deployment in one call
  cutover.bluegreen.journal:
    service: shop
    state: started
    owner: "{{ run.owner }}"
    token: "{{ run.token }}"
    lock: acquire
    purpose: deploy v2 to green
    record:
      kind: deploy
  register: deployment

- name: Close the deployment and give the lock back
  cutover.bluegreen.journal:
    service: shop
    state: finished
    deployment_id: "{{ deployment.deployment_id }}"
    outcome: succeeded
    owner: "{{ run.owner }}"
    token: "{{ run.token }}"
    lock: release

- name: Open the deployment
  cutover.bluegreen.journal:
    service: shop
    state: started
    owner: "awx-job-{{ awx_job_id }}"
    record:
      colors: {from: blue, to: green}
      versions:
        from: {image_id: ami-0aaaaaaaaaaaaaaaa, launch_template_version: "3"}
        to: {image_id: "{{ image_id }}"}
  register: deployment

- name: Record the rollout step
  cutover.bluegreen.journal:
    service: shop
    state: step
    deployment_id: "{{ deployment.deployment_id }}"
    step: rollout
    status: finished

- name: Close the deployment
  cutover.bluegreen.journal:
    service: shop
    state: finished
    deployment_id: "{{ deployment.deployment_id }}"
    outcome: succeeded
    summary: green is live
"""

RETURN = r"""
lock:
  description:
    - With O(lock=acquire), the lease held after the task (C(owner), C(purpose), C(acquired_at), C(expires_at)...),
      as M(cutover.bluegreen.lock) returns it; with O(lock=release), null once released.
    - Absent without O(lock).
  returned: when O(lock) is set
  type: dict
  sample: {"owner": "awx-job-42", "token": "3f2a9c0e5b7d4e1f8a6b2c3d4e5f6a7b", "purpose": "deploy v2", "expires_at": "2026-01-01T13:00:00Z"}
settled:
  description:
    - With O(lock=acquire), when a dead run's lease was taken over, what was done with the entry it named
      (C(deployment_id), C(action) V(adopt), V(interrupt) or V(leave), C(reason)).
  returned: when a lease was taken over
  type: dict
  sample: {"deployment_id": "20260101T115900Z-0a1b2c3d", "action": "interrupt", "reason": "deployment ... was left unfinished by its run"}
deployment_id:
  description: The deployment's id.
  returned: success
  type: str
  sample: 20260101T120000Z-1a2b3c4d
table_name:
  description: The table used.
  returned: success
  type: str
  sample: cutover-shop
deployment:
  description:
    - The deployment record after the task (as it would be, in check mode).
    - Null in check mode when the deployment is not in the journal.
  returned: success
  type: dict
  contains:
    deployment_id:
      description: The deployment's id.
      type: str
      sample: 20260101T120000Z-1a2b3c4d
    service:
      description: The service.
      type: str
      sample: shop
    owner:
      description: Who ran the deployment, if given.
      type: str
      sample: awx-job-42
    started_at:
      description: When the deployment started (ISO 8601, UTC).
      type: str
      sample: "2026-01-01T12:00:00Z"
    updated_at:
      description: When the record last changed.
      type: str
      sample: "2026-01-01T12:05:00Z"
    finished_at:
      description: When the deployment finished; absent while in progress.
      type: str
      sample: "2026-01-01T12:07:30Z"
    outcome:
      description:
        - V(in_progress), V(succeeded), V(failed), V(rolled_back) or V(interrupted) (its run died; the run that
          took its lock over closed it, see C(record.interrupted_by)).
      type: str
      sample: succeeded
    summary:
      description: The last summary given, if any.
      type: str
      sample: green is live
    duration_seconds:
      description: Seconds from start to finish; absent while in progress.
      type: int
      sample: 450
    steps:
      description: Per step, its C(status), C(started), C(finished) and C(seconds).
      type: dict
      sample: {"rollout": {"status": "finished", "started": "2026-01-01T12:00:05Z", "finished": "2026-01-01T12:03:05Z", "seconds": 180}}
    step_order:
      description: Step names in the order they were first recorded.
      type: list
      elements: str
      sample: [rollout, wait_healthy, switch]
    record:
      description: The free-form data kept with the deployment.
      type: dict
      sample: {"colors": {"from": "blue", "to": "green"}}
    durations:
      description:
        - C(deployment_seconds) (null while in progress), C(elapsed_seconds) (so far, or in all) and C(steps)
          (seconds per step, null while a step runs).
      type: dict
      sample: {"deployment_seconds": 450, "elapsed_seconds": 450, "steps": {"rollout": 180}}
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.cutover.bluegreen.plugins.module_utils import journal, lease, locking
from ansible_collections.cutover.bluegreen.plugins.module_utils.modules import client, run
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import TABLE_ARGUMENT_SPEC, table_name


def shown(item):
    """What the diff shows of a deployment record."""
    if not item:
        return {}
    return {key: value for key, value in item.items() if key not in ("pk", "sk", "kind", "updated_at")}


def main():
    argument_spec = dict(TABLE_ARGUMENT_SPEC, **journal.TASK_ARGUMENT_SPEC)
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True, required_if=journal.TASK_REQUIRED_IF)
    params = module.params
    table = table_name(params["service"], params["table_name"])

    def stores():
        dynamodb = client(module, "dynamodb")
        return lease.Table(dynamodb, table, params["service"]), journal.Journal(dynamodb, table, params["service"])

    def operation():
        # The options are checked before any call.
        task = locking.journal_task(stores, params, check_mode=module.check_mode, shown=shown if module._diff else None)
        if task.pop("missing"):
            module.warn(
                "deployment %s is not in the journal of %s (it may have been started in check mode); nothing was read or written"
                % (task["deployment_id"], params["service"])
            )
        task["table_name"] = table
        return task

    run(module, operation)


if __name__ == "__main__":
    main()
