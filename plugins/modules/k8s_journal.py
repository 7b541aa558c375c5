#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_journal
short_description: Record a deployment of an app on Kubernetes in its journal
version_added: 0.1.0
description:
  - Keeps one entry per deployment in the ConfigMap C(<app>-cutover-journal) of the app's namespace (one key per
    deployment id, its value the entry as JSON) - when it started, each step with its start, finish and seconds,
    the outcome, a summary, durations, and free-form data such as the colours and images it moved between. The
    newest 100 entries are kept.
  - O(state=started) opens a deployment and returns its id, which starts with its UTC start time
    (C(20260101T120000Z-1a2b3c4d)). O(state=step) records a step as started, finished, failed or skipped.
    O(state=finished) closes the deployment with an outcome.
  - Every write names the ConfigMap's C(resourceVersion), so concurrent writers never lose each other's entries.
  - With O(lock=acquire) the deployment lock (see M(cutover.bluegreen.k8s_lock)) is taken for O(token) before the
    deployment opens, and the Lease names the entry; when it takes over the lease of a run that died, that run's
    unfinished entry is closed as V(interrupted), naming this run (or resumed, when O(deployment_id) is the same).
    With O(lock=release) the lock is given back after the last write, in the same call.
author:
  - cutover maintainers (@cutover)
options:
  state:
    description:
      - V(started) opens a deployment, V(step) records a step, V(finished) closes it.
    type: str
    choices: [started, step, finished]
    required: true
  deployment_id:
    description:
      - The deployment. Required with O(state=step) and O(state=finished); with O(state=started), resumes that id
        (opening an existing entry changes only what differs).
    type: str
  owner:
    description:
      - Who runs the deployment; required with O(lock).
    type: str
  token:
    description:
      - The run's token; required with O(lock).
    type: str
  takeover:
    description:
      - With O(lock=acquire), take the lock from the run it names (its owner or token) although its lease is live.
    type: str
  lease_seconds:
    description:
      - With O(lock=acquire), the length of the lease in seconds (1 to 604800).
    type: int
    default: 60
  purpose:
    description:
      - With O(lock=acquire), what the run does, shown to anyone the lock refuses.
    type: str
  step:
    description:
      - "Name of the step (letters, digits, C(_ . : -), at most 64 characters). Required with O(state=step)."
    type: str
  status:
    description:
      - Status of the step.
    type: str
    choices: [started, finished, failed, skipped]
    default: finished
  outcome:
    description:
      - How the deployment ended. Required with O(state=finished).
    type: str
    choices: [succeeded, failed, rolled_back, interrupted]
  summary:
    description:
      - A line for people (what went live, why it failed).
    type: str
  record:
    description:
      - Free-form data merged into the entry's C(record) (each top-level key replaces the stored one).
    type: dict
  lock:
    description:
      - V(acquire) takes the lock before opening the deployment (O(state=started)); V(release) gives it back after
        the write (O(state=step) or O(state=finished)).
    type: str
    choices: [acquire, release]
extends_documentation_fragment:
  - cutover.bluegreen.k8s_app
  - kubernetes.core.k8s_auth_options
notes:
  - "Steps it combines with O(lock), because they always go together: taking the Lease and opening the run's entry,
    which the Lease names, or the run's last write and giving the Lease back; through the same entry point and rules
    as M(cutover.bluegreen.k8s_lock)."
  - Needs C(get), C(create) and C(update) on the journal ConfigMap, and with O(lock) on the app's Lease.
  - In check mode nothing is written.
"""

EXAMPLES = r"""
- name: Take the lock and open the deployment in one call
  cutover.bluegreen.k8s_journal:
    app: shop
    namespace: shop
    state: started
    lock: acquire
    owner: "awx-job-{{ awx_job_id }}"
    token: "{{ run_token }}"
    purpose: "deploy {{ image }}"
    record:
      to_image: "{{ image }}"
  register: opened

- name: Close it and give the lock back
  cutover.bluegreen.k8s_journal:
    app: shop
    namespace: shop
    state: finished
    deployment_id: "{{ opened.deployment_id }}"
    outcome: succeeded
    lock: release
    token: "{{ run_token }}"
"""

RETURN = r"""
deployment_id:
  description: The deployment.
  returned: success
  type: str
  sample: 20260101T120000Z-1a2b3c4d
deployment:
  description: The entry after the task, with its C(durations).
  returned: success
  type: dict
lock:
  description: With O(lock=acquire), the lease after the task; with O(lock=release), null.
  returned: when lock is given
  type: dict
settled:
  description:
    - With O(lock=acquire), when the lease was taken over from a dead run, what happened to the entry it named
      (C(action) V(interrupt), V(adopt) or V(leave), C(reason), C(deployment_id)).
  returned: when a lease was taken over
  type: dict
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import journal, k8s_journal, k8s_lease, locking
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_module import app_module, kube, run, validate_app_options


def shown(entry):
    """What the diff shows of an entry."""
    if not entry:
        return {}
    return {key: entry.get(key) for key in ("deployment_id", "outcome", "summary", "steps", "record")}


def main():
    module = app_module(
        journal.TASK_ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=journal.TASK_REQUIRED_IF + [("lock", "acquire", ["owner", "token"]), ("lock", "release", ["token"])],
    )
    params = module.params
    app, namespace = params["app"], params["namespace"]

    def stores():
        client = kube(module)
        return k8s_lease.LeaseObject(client, app, namespace), k8s_journal.Journal(client, app, namespace)

    def operation():
        validate_app_options(module)  # and the journal's options, in journal_task, before the client is made
        task = locking.journal_task(
            stores, params, k8s_journal.validate_record, check_mode=module.check_mode, shown=shown if module._diff else None
        )
        task.pop("missing")
        return task

    run(module, operation)


if __name__ == "__main__":
    main()
