#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_lock
short_description: Acquire, renew, check or release the deployment lock of an app on Kubernetes
version_added: 0.1.0
description:
  - Holds the C(coordination.k8s.io/v1) Lease C(<app>-cutover-lock) in the app's namespace, so that two runs never
    change one app at the same time. Every run holds it under an identity of its own, a readable O(owner) and a
    O(token) unique to the run; only that run renews, checks or releases it.
  - Every write names the C(resourceVersion) it read, so the API server refuses it (409 Conflict) when another run
    wrote the Lease since; the loser of a race reads again and is refused, naming the holder.
  - O(state=acquired) takes the lease (creating the Lease when there is none). Acquiring again with the same
    O(token) changes nothing while more than half of the lease is left (and O(lease_seconds) and O(purpose) are
    unchanged); otherwise it renews it.
  - A lease of another run that has expired (its run died and stopped renewing it) is taken over; one that is
    live is refused, naming its holder, what it is doing, since when and until when, and the exact O(takeover)
    that takes it. A takeover is recorded in the C(takeovers) of RV(lock). When the lease taken over names an
    unfinished journal entry of the dead run, that entry is closed as V(interrupted), naming this run (or left for
    adoption when O(deployment_id) is the same; see M(cutover.bluegreen.k8s_journal)).
  - O(state=renewed) pushes this run's lease out by O(lease_seconds); O(state=checked) fails unless the lease is
    this run's and live. Both fail with C(lost the lock) when another run holds it.
  - O(state=held) is the run's heartbeat, meant to run as an C(async) task right after the lease is taken - it renews
    the lease every quarter of O(lease_seconds) while the run's O(controller) process lives, and ends when that
    process is gone (the lease then expires by itself), when the lease is not this run's any more, or after
    O(hold_seconds).
  - O(state=released) gives the lease back only when O(token) holds it; releasing a lease nobody holds changes
    nothing; another run's lease is not released.
author:
  - cutover maintainers (@cutover)
options:
  state:
    description:
      - V(acquired) takes (or renews) the lease, V(renewed) renews this run's lease, V(checked) checks it,
        V(held) keeps renewing it while the run lives, V(released) gives it back.
    type: str
    choices: [acquired, renewed, checked, held, released]
    default: acquired
  owner:
    description:
      - A readable name of the run for people, such as C(alice@ci-1 pid 4242) or C(awx-job-42), shown to anyone the
        lock refuses. Required with O(state=acquired).
    type: str
  token:
    description:
      - Unique to one run (a uuid). Only the run with this token renews, checks or releases its lease.
      - "8 to 128 letters, digits and C(_ . : -)."
    type: str
    required: true
  takeover:
    description:
      - Take the lock from the run it names (its owner or token, as the refusal prints it) even though its lease is
        live. Refused when it does not name the current holder. An expired lease is taken over without it.
    type: str
  lease_seconds:
    description:
      - How long the lease lasts from when it is taken or renewed, in seconds (1 to 604800). Keep it short and renew
        it while the run works, so that a dead run's lease expires soon after its death.
    type: int
    default: 60
  purpose:
    description:
      - What the run does (V(deploy registry/shop:v2 to green)...), shown to anyone who finds the app locked.
      - When omitted, a renewal keeps the stored purpose.
    type: str
  deployment_id:
    description:
      - The journal entry the run writes (see M(cutover.bluegreen.k8s_journal)), kept in the Lease so that a run
        taking over a dead run's lease knows which entry it left unfinished.
    type: str
  controller:
    description:
      - With O(state=held), the run's controller process (C(pid), C(started) ticks, C(host) boot id) as
        M(cutover.bluegreen.run_identity) returns it; the heartbeat ends when it is gone. The module must run on the
        controller's machine.
    type: dict
    suboptions:
      pid:
        description: Its process id.
        type: int
        required: true
      started:
        description: Its start time in clock ticks since boot.
        type: str
      host:
        description: The boot id of its machine.
        type: str
  hold_seconds:
    description:
      - With O(state=held), the longest the heartbeat runs, in seconds (at least 1).
    type: int
    default: 86400
extends_documentation_fragment:
  - cutover.bluegreen.k8s_app
  - kubernetes.core.k8s_auth_options
notes:
  - Needs C(get), C(create) and C(update) on the app's Lease, and to settle a dead run's entry C(get) and C(update)
    on the journal ConfigMap.
  - Whether a lease has expired is judged by the clock of the machine running the module; keep clocks in sync.
"""

EXAMPLES = r"""
- name: Lock the shop app for this run
  cutover.bluegreen.k8s_lock:
    app: shop
    namespace: shop
    owner: "awx-job-{{ awx_job_id }}"
    token: "{{ run_token }}"
    purpose: "deploy {{ image }}"

- name: Unlock it again
  cutover.bluegreen.k8s_lock:
    app: shop
    namespace: shop
    token: "{{ run_token }}"
    state: released

- name: Keep the lock while this run lives (a heartbeat in the background)
  cutover.bluegreen.k8s_lock:
    app: shop
    namespace: shop
    token: "{{ run.token }}"
    lease_seconds: "{{ run.lease_seconds }}"
    controller: "{{ run.controller }}"
    state: held
  async: 86400
  poll: 0
"""

RETURN = r"""
operation:
  description:
    - What was done (or would be, in check mode) - V(acquire), V(renew), V(take_over) (an expired lease of another
      run), V(take_over_named), V(unchanged), V(checked), V(held), V(release) or V(not_held).
  returned: success
  type: str
  sample: acquire
lock:
  description:
    - The lease after the task (null when released), with C(owner), C(token), C(purpose), C(deployment_id),
      C(acquired_at), C(renewed_at), C(expires_at), C(lease_seconds), C(expired), C(seconds_left), C(transitions)
      and C(takeovers) (the previous holders it was taken from, oldest first).
    - On a refusal, the holder's lease.
  returned: except with state=held
  type: dict
previous:
  description: The lease before the task, or null when it was free.
  returned: success, except with state=held
  type: dict
held:
  description:
    - With O(state=held), why the heartbeat ended (C(stopped) V(controller_gone), V(not_held) or V(time_limit), and
      C(reason)) and how often it renewed (C(renewals), C(failed_renewals)); null in check mode.
  returned: with state=held
  type: dict
interrupted:
  description:
    - When the lease taken over named an unfinished journal entry of the dead run, what was done with it
      (C(deployment_id), C(action) V(interrupt), V(adopt) or V(leave), C(reason)).
  returned: when a lease was taken over
  type: dict
  sample: {"deployment_id": "20260101T115900Z-0a1b2c3d", "action": "interrupt", "reason": "deployment ... was left unfinished by its run"}
holder:
  description: When another run holds the lock, its owner.
  returned: failure
  type: str
  sample: awx-job-41
takeover_hint:
  description: When another run holds the lock, the option that takes it over.
  returned: failure
  type: str
  sample: takeover=8d0c1f0e-5a53-4a55-9d8a-0a4a2b1c9e77
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import journal, k8s_journal, k8s_lease, locking
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_module import (
    CONTROLLER_SPEC,
    app_module,
    kube,
    progress_of,
    run,
    validate_app_options,
)


def main():
    module = app_module(
        dict(
            state=dict(type="str", choices=["acquired", "renewed", "checked", "held", "released"], default="acquired"),
            owner=dict(type="str"),
            token=dict(type="str", required=True, no_log=False),
            takeover=dict(type="str"),
            lease_seconds=dict(type="int", default=60),
            purpose=dict(type="str"),
            deployment_id=dict(type="str"),
            controller=CONTROLLER_SPEC,
            hold_seconds=dict(type="int", default=86400),
        ),
        supports_check_mode=True,
        required_if=[("state", "acquired", ("owner",)), ("state", "held", ("controller",))],
    )
    params = module.params
    app, namespace, token = params["app"], params["namespace"], params["token"]

    def operation():
        validate_app_options(module)
        k8s_lease.validate(params["owner"], token, params["lease_seconds"], params["takeover"], params["purpose"])
        if params["deployment_id"] is not None:
            journal.validate_deployment_id(params["deployment_id"])
        state = params["state"]
        if state == "held" and params["hold_seconds"] < 1:
            raise CutoverError("hold_seconds must be at least 1, got %d" % params["hold_seconds"])
        client = kube(module)
        if state == "held":
            if module.check_mode:
                return dict(changed=False, operation="held", held=None)
            held = k8s_lease.hold(
                client,
                app,
                namespace,
                token,
                params["lease_seconds"],
                params["controller"],
                max_seconds=params["hold_seconds"],
                progress=progress_of(module),
            )
            return dict(changed=held["renewals"] > 0, operation="held", held=held)
        if state in ("acquired", "released"):
            result = locking.lock_task(
                k8s_lease.LeaseObject(client, app, namespace),
                k8s_journal.Journal(client, app, namespace),
                state,
                params["owner"],
                token,
                params["lease_seconds"],
                purpose=params["purpose"],
                takeover=params["takeover"],
                deployment_id=params["deployment_id"],
                check_mode=module.check_mode,
            )
        elif state == "checked":
            lock = k8s_lease.check(client, app, namespace, token)
            result = dict(changed=False, operation="checked", lock=lock, previous=lock)
        else:
            previous = k8s_lease.check(client, app, namespace, token) if module.check_mode else k8s_lease.read(client, app, namespace)
            if module.check_mode:
                result = dict(changed=True, operation="renew", lock=previous, previous=previous)
            else:
                lock = k8s_lease.renew(client, app, namespace, token, params["lease_seconds"])
                result = dict(changed=True, operation="renew", lock=lock, previous=previous)
        if module._diff:
            result["diff"] = locking.diff(result, ("owner", "token", "purpose", "acquired_at", "expires_at"))
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
