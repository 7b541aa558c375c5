#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: job_wait
short_description: Wait for a background (async) job of the run on the controller, printing its progress
version_added: 0.1.0
description:
  - Waits until the C(async) job O(jid) has finished and returns its result, as C(ansible.builtin.async_status)
    in an C(until) loop does, but reads the job's status file in the controller process every O(interval)
    seconds instead of starting a module for every look, and prints no C(FAILED - RETRYING) lines.
  - Prints each line the job appends to O(progress_file) as it comes, prefixed with the host
    (M(cutover.bluegreen.rollout) writes one per step of its waits with its O(cutover.bluegreen.rollout#module:progress_file)).
  - Fails when the job failed (with the job's result), when it did not finish within O(timeout) seconds (the job
    goes on until its own C(async) limit), or when its status file cannot be found.
  - Only for tasks on the controller (a local connection), which is where the collection's roles run.
author:
  - cutover maintainers (@cutover)
options:
  jid:
    description:
      - The job's id, C(ansible_job_id) of the C(async) task's registered result.
    type: str
    required: true
  timeout:
    description:
      - Seconds to wait at most.
    type: float
    required: true
  progress_file:
    description:
      - A file the job appends progress lines to.
    type: path
  interval:
    description:
      - Seconds between two looks at the status file.
    type: float
    default: 0.25
notes:
  - Reads the C(async_dir) of the shell plugin (default C(~/.ansible_async)), as C(ansible.builtin.async_status) does,
    and leaves the job's status file there as it does; O(progress_file) is removed once the job has finished.
  - Stops, failing, when the controller process that runs it is gone.
extends_documentation_fragment:
  - cutover.bluegreen.controller_action
attributes:
  action:
    support: full
    description: Runs in the controller process.
  check_mode:
    support: none
    description: An C(async) task does not run in check mode; skip this one there too.
"""

EXAMPLES = r"""
- name: Roll out the new version in the background
  cutover.bluegreen.rollout:
    service: shop
    image_id: ami-0123456789abcdef0
    wait_healthy: true
    progress_file: /tmp/shop-rollout.progress
  async: 1320
  poll: 0
  register: rollout_job

- name: Wait for the instances and their health checks, one line per step
  cutover.bluegreen.job_wait:
    jid: "{{ rollout_job.ansible_job_id }}"
    timeout: 1320
    progress_file: /tmp/shop-rollout.progress
  register: rollout
"""

RETURN = r"""
finished:
  description: Always true on success (the job's result follows, as the job returned it).
  returned: success
  type: bool
ansible_job_id:
  description: The job's id.
  returned: always
  type: str
waited_for_job:
  description: Seconds this task waited.
  returned: success
  type: float
"""
