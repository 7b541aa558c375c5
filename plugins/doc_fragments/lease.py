# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The lease a module's changes and waits run under (fencing); matches fence.LEASE_ARGUMENT_SPEC.
    DOCUMENTATION = r"""
options:
  lease:
    description:
      - The deployment lock this task's run holds, as M(cutover.bluegreen.run_identity) and
        M(cutover.bluegreen.lock) describe it. With it, the module checks right before each change, and on
        every look of its waits, that the lease is still this run's (one C(GetItem)) and that the run's
        controller still lives; otherwise it stops, failing with C(lost the lock), before it changes anything
        more, and returns C(lost_lock=true).
      - This keeps a run that was killed, or whose lock was taken over, from fighting the run that holds the lock
        now (Ansible keeps a task's worker, and an C(async) job, running after its controller is killed).
      - Omitted, nothing is checked.
    type: dict
    suboptions:
      token:
        description: The token of the run that holds the lock.
        type: str
        required: true
      table_name:
        description: The deployment table (default C(cutover-<service>)).
        type: str
      lease_seconds:
        description: The run's lease, in seconds (used by modules that renew it themselves).
        type: int
      controller:
        description:
          - The run's controller process (C(pid), C(started) ticks, C(host) boot id), as
            M(cutover.bluegreen.run_identity) returns it. The module must run on the controller's machine
            (a local connection).
        type: dict
        suboptions:
          pid:
            description: The C(ansible-playbook) process's id.
            type: int
            required: true
          started:
            description: When it started, in clock ticks since boot, so that a reused pid does not pass for it.
            type: str
          host:
            description: Its machine's boot id.
            type: str
"""

    # The controller process a module that holds the lock itself watches; matches fence.CONTROLLER_SPEC.
    CONTROLLER = r"""
options:
  controller:
    description:
      - The run's controller process, as M(cutover.bluegreen.run_identity) returns it (C(pid), C(started), C(host)).
        The lease is renewed only while it lives, and the module's work stops once it is gone. The task must run on
        the controller's machine (a local connection).
      - Omitted, the controller is not watched (a lease the module renews still lapses when the module's process dies).
    type: dict
    suboptions:
      pid:
        description: Process id of the C(ansible-playbook) process.
        type: int
        required: true
      started:
        description: Its start time in clock ticks since boot (from C(/proc)), so a reused pid is not taken for it.
        type: str
      host:
        description: The boot id of its machine.
        type: str
"""

    # The identity options of a module that takes, holds or releases the lock itself.
    IDENTITY = r"""
options:
  owner:
    description:
      - A readable name of the run for people, such as C(ansible-playbook alice@ci-1 pid 4242) or C(awx-job-42),
        shown to anyone the lock refuses.
      - Two runs may have the same owner; only O(token) tells runs apart.
    type: str
    required: true
  token:
    description:
      - Unique to one run (a uuid, as M(cutover.bluegreen.run_identity) makes it). Only the run with this token
        renews, checks or releases its lease; a lease with another token is another run's, even under the same
        O(owner).
      - "8 to 128 letters, digits and C(_ . : -)."
    type: str
    required: true
  takeover:
    description:
      - Take the lock from the run it names (that run's owner or token, as the refusal prints it) even though its
        lease is live, for instance for an incident rollback while a killed run's lease has not expired yet.
      - Refused when it does not name the current holder. An expired lease is taken over without it.
      - The previous holder is recorded in the lease's C(takeovers) with reason C(named).
    type: str
"""
