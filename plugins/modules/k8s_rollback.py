#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_rollback
short_description: Roll an app on Kubernetes back to its previous colour, in one call
version_added: 0.1.0
description:
  - Takes the app's lock (the Lease, as M(cutover.bluegreen.k8s_lock)) and opens a journal entry, scales the
    previous colour back up if teardown retired it (to the live colour's replicas, or O(replicas)), waits until its
    rollout is complete and every pod is Ready (failing early with each failing pod's reason), switches every
    Service back (as M(cutover.bluegreen.k8s_switch), with its guard and its verification of the endpoints), keeps
    the colour it leaves warm as a standby for O(standby_ttl), closes the journal entry and releases the lock -
    also when a step fails.
  - Refuses a colour that never served production (one without the standby or retired mark a switch or a teardown
    leaves), before taking the lock or changing anything.
  - Rolling back to the colour already live changes nothing.
author:
  - cutover maintainers (@cutover)
options:
  to:
    description:
      - The colour to return to; V(previous) is the colour not live now.
    type: str
    choices: [previous, blue, green]
    default: previous
  replicas:
    description:
      - Pods to bring the colour back at (1 to 1000). Default the live colour's replicas.
    type: int
  standby_ttl:
    description:
      - How long the colour left stays warm before teardown may retire it (seconds, or V(30m), V(2h), V(1d)).
    type: str
    default: 1d
  wait_timeout:
    description:
      - Seconds to wait for the colour to be Ready again (0 to 86400).
  unhealthy_timeout:
    description:
      - Seconds a pod may stay Pending or fail its readiness probe before the rollback fails (0 to 86400).
    type: int
    default: 120
  verify_timeout:
    description:
      - Seconds to wait for the endpoints to follow the selectors (0 to 3600).
    type: int
    default: 60
  controller:
    description:
      - The run's controller process (C(pid), C(started) ticks, C(host) boot id) as M(cutover.bluegreen.run_identity)
        returns it. Given, the rollback stops with C(lost the lock) before its next change or look once that process
        is gone (a task's worker outlives a killed controller). The module must then run on the controller's machine.
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
extends_documentation_fragment:
  - cutover.bluegreen.k8s_app
  - cutover.bluegreen.lease.IDENTITY
  - cutover.bluegreen.k8s_app.LEASE_SECONDS
  - cutover.bluegreen.wait
  - kubernetes.core.k8s_auth_options
notes:
  - "Steps it combines: the whole rollback (lock, journal, scale up, wait Ready, switch, standby, journal, unlock), run
    as one module for the reasons of M(cutover.bluegreen.rollback); each step is the library function of the
    single-step modules."
  - Needs what M(cutover.bluegreen.k8s_switch), M(cutover.bluegreen.k8s_lock) and M(cutover.bluegreen.k8s_journal)
    need.
  - In check mode nothing is changed, nothing is waited for, and the guard is skipped for a colour that a real run
    would first scale up.
"""

EXAMPLES = r"""
- name: Roll shop back
  cutover.bluegreen.k8s_rollback:
    app: shop
    namespace: shop
    owner: "awx-job-{{ awx_job_id }}"
    token: "{{ run_token }}"
"""

RETURN = r"""
from_color:
  description: The colour production traffic left.
  returned: success
  type: str
  sample: green
to_color:
  description: The colour production traffic is back on.
  returned: success
  type: str
  sample: blue
restored:
  description: The colour brought back (C(color), C(replicas), C(scaled), C(wait_seconds)).
  returned: success, when a rollback happened
  type: dict
switch:
  description: The switch (C(changes), C(switch), C(verify), C(active_color), C(standby)).
  returned: success, when a rollback happened
  type: dict
deployment_id:
  description: The journal entry of the rollback.
  returned: success, when a rollback happened
  type: str
  sample: 20260101T120000Z-1a2b3c4d
seconds:
  description: How long the rollback took.
  returned: success
  type: float
message:
  description: What happened.
  returned: always
  type: str
"""

from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_lease, k8s_rollback, k8s_rollout, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_module import (
    CONTROLLER_SPEC,
    IDENTITY_ARGUMENT_SPEC,
    app_module,
    check_time,
    discover_pair,
    kube,
    progress_of,
    run,
    validate_app_options,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import parse_ttl


def main():
    spec = dict(
        to=dict(type="str", choices=list(k8s_rollback.TO_CHOICES), default="previous"),
        replicas=dict(type="int"),
        standby_ttl=dict(type="str", default="1d"),
        unhealthy_timeout=dict(type="int", default=120),
        verify_timeout=dict(type="int", default=60),
        controller=CONTROLLER_SPEC,
        **waits.argument_spec(wait=False),
    )
    spec.update(IDENTITY_ARGUMENT_SPEC)
    module = app_module(spec, supports_check_mode=True)
    params = module.params

    def operation():
        validate_app_options(module)
        k8s_lease.validate(params["owner"], params["token"], params["lease_seconds"], params["takeover"])
        k8s_rollout.validate_replicas("replicas", params["replicas"], low=1)
        check_time("standby_ttl", params["standby_ttl"], parse_ttl)
        client = kube(module)
        result = k8s_rollback.rollback(
            client,
            lambda: discover_pair(module, client),
            params["app"],
            params["namespace"],
            params["owner"],
            params["token"],
            to=params["to"],
            takeover=params["takeover"],
            lease_seconds=params["lease_seconds"],
            standby_ttl=params["standby_ttl"],
            replicas=params["replicas"],
            wait_timeout=params["wait_timeout"],
            unhealthy_timeout=params["unhealthy_timeout"],
            verify_timeout=params["verify_timeout"],
            check_mode=module.check_mode,
            progress=progress_of(module),
            waiter=waits.waiter_of(params, progress_of(module)),
            controller=params["controller"],
        )
        if module._diff:
            restored = result.get("restored") or {}
            result["diff"] = dict(
                before={"live_color": result["from_color"]},
                after={"live_color": result["to_color"]},
            )
            if restored.get("scaled"):
                result["diff"]["after"]["replicas"] = {restored["color"]: restored["replicas"]}
        return result

    run(module, operation)


if __name__ == "__main__":
    main()
