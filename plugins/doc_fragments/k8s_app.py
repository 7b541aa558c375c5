# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a Kubernetes module finds the app; matches k8s_module.APP_ARGUMENT_SPEC.
    DOCUMENTATION = r"""
options:
  app:
    description:
      - Name of the app whose blue-green pair to act on (1 to 40 of C(a-z 0-9 -), starting with a letter).
      - The pair is the Deployments C(<app>-blue) and C(<app>-green), whose pods are labelled C(app=<app>) and
        C(slot=blue|green); the live colour is the C(slot) the live Service selects.
    type: str
    required: true
    aliases: [service]
  namespace:
    description:
      - Namespace of the app.
    type: str
    default: default
  live_service:
    description:
      - The live Service, whose selector says which colour is live (default C(<app>)).
    type: str
  preview_service:
    description:
      - The preview Service, which selects the idle colour for smoke tests and is never production
        (default C(<app>-preview)).
    type: str
  container:
    description:
      - The container of the app in the pod template, the one whose image a release sets (default the first one).
    type: str
"""

    # The lock a module's changes and waits run under (fencing); matches k8s_module.LEASE_ARGUMENT_SPEC.
    FENCE = r"""
options:
  lease:
    description:
      - The deployment lock this task's run holds (see M(cutover.bluegreen.k8s_lock)). With it, the module checks
        right before each change that the Lease C(<app>-cutover-lock) is still held by this run's token and live,
        and renews it during its waits (every quarter of O(lease.lease_seconds)); otherwise it stops, failing with
        C(lost the lock), before it changes anything more.
      - Omitted, nothing is checked.
    type: dict
    suboptions:
      token:
        description: This run's token, the C(holderIdentity) its Lease must have.
        type: str
        required: true
      lease_seconds:
        description:
          - The run's lease, in seconds. Given, the module renews the lease during its waits; omitted, it only
            checks it (the run's heartbeat, M(cutover.bluegreen.k8s_lock) with O(cutover.bluegreen.k8s_lock#module:state=held),
            renews it).
        type: int
      controller:
        description:
          - The process of the run (C(ansible-playbook)) whose life the work follows, as
            M(cutover.bluegreen.run_identity) returns it. Given, the module also stops, with C(lost the lock), once that
            process is gone - a task's worker and an C(async) job outlive a killed controller.
        type: dict
        suboptions:
          pid:
            description: Its process id.
            type: int
            required: true
          started:
            description: Its start time in clock ticks since boot (C(/proc/<pid>/stat)), so that a reused pid does not count.
            type: str
          host:
            description: The boot id of the machine it runs on.
            type: str
"""

    # The lease of a module that takes the lock itself (with cutover.bluegreen.lease.IDENTITY); matches
    # k8s_module.IDENTITY_ARGUMENT_SPEC.
    LEASE_SECONDS = r"""
options:
  lease_seconds:
    description:
      - How long the lease lasts from when it is taken or renewed, in seconds (1 to 604800). Keep it short - a live
        run renews it, a dead run's lease expires soon after its death.
    type: int
    default: 60
"""
