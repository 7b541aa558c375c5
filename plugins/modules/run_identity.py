#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_identity
short_description: Make the identity under which this run holds the deployment lock
version_added: 0.1.0
description:
  - Returns, once per run, who the run is for the deployment lock (M(cutover.bluegreen.lock)), a readable
    RV(owner), a RV(token) unique to this run, and its RV(controller) process, which the lock's holder
    (O(cutover.bluegreen.lock#module:state=held)) and the fenced waits of the other modules watch, so that a
    run's lease is renewed only while the run lives.
  - Two runs from one machine, even by one user, get different tokens and never share a lock.
  - An action that runs in the controller process, without starting a module. It also checks the lock options
    the roles take with C(-e) (O(lease_seconds), O(owner), O(takeover)), which may come as strings.
  - The roles run on the controller (C(hosts=localhost), C(connection=local)); any other connection is refused,
    since the controller could not be watched from there.
author:
  - cutover maintainers (@cutover)
options:
  owner:
    description:
      - A readable name for the run. Default C(awx-job-<id>) under AWX (C(awx_job_id)), else
        C(ansible-playbook <user>@<host> pid <pid>).
    type: str
  lease_seconds:
    description:
      - The lease length to check and return as an integer, 10 to 86400 seconds; a string of digits is taken.
    type: raw
    default: 60
  takeover:
    description:
      - The holder to take the lock from (its owner or token); a blank value means none.
    type: str
  prefix:
    description:
      - The role's variable prefix (V(deploy), V(rollback), V(teardown)), so that an error names the role's variable.
    type: str
    default: ""
notes:
  - Supports check mode (it changes nothing anyway).
attributes:
  action:
    support: full
    description: Runs on the controller; the task's host is not used, its connection must be local.
  check_mode:
    support: full
    description: Changes nothing.
  diff_mode:
    support: none
    description: Nothing is written, so there is no diff.
  platform:
    support: full
    platforms: posix
    description: The controller. The process start time and boot id are read from C(/proc) where it exists.
"""

EXAMPLES = r"""
- name: Make this run's identity
  cutover.bluegreen.run_identity:
    lease_seconds: "{{ deploy_lease_seconds }}"
    takeover: "{{ takeover | default(omit) }}"
    prefix: deploy
  register: run

- name: Show it
  ansible.builtin.debug:
    msg: "{{ run.owner }} holds locks with token {{ run.token }}"
"""

RETURN = r"""
owner:
  description: The readable name of the run.
  returned: success
  type: str
  sample: ansible-playbook alice@ci-1 pid 4242
token:
  description: Unique to this run (a uuid, 32 hex digits).
  returned: success
  type: str
  sample: 3f2a9c0e5b7d4e1f8a6b2c3d4e5f6a7b
controller:
  description: The controller process, C(pid), C(started) (its start in clock ticks since boot, or null) and C(host) (the boot id, or null).
  returned: success
  type: dict
  sample: {"pid": 4242, "started": "1234567", "host": "5f0b7d2c-0d6e-4c1f-9a51-2c1d5c7e8f90"}
started_at:
  description:
    - When the controller process (the command) started, in seconds since the epoch, from C(/proc) on Linux; elsewhere
      when this task ran. The rollback role counts its end-to-end time from here.
  returned: success
  type: float
  sample: 1767268800.123
lease_seconds:
  description: The lease length, as an integer.
  returned: success
  type: int
  sample: 60
takeover:
  description: The holder to take the lock from, or null.
  returned: success
  type: str
"""
