#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_wave
short_description: Judge a wave of a fleet release, and give the fleet's summary after the last wave that runs
version_added: 0.1.0
description:
  - Run once at the end of each wave of the collection's fleet playbooks, after every service of the wave noted
    its outcome in the host variable C(cutover_fleet_result) (C({outcome, message})).
  - Decides whether the fleet goes on, by Ansible's own rule for C(max_fail_percentage) (more than that share of
    the wave failed, or all of it) and by the rule of regions (the next region starts only when every service of
    the region before succeeded).
  - After the last wave that runs, returns the fleet's summary, one line per service of the plan, in its order,
    also for the services that did not start.
  - An action that runs in the controller process, without starting a module and without any AWS call.
author:
  - cutover maintainers (@cutover)
options:
  fleet:
    description:
      - The plan M(cutover.bluegreen.fleet_plan) returned.
    type: dict
    required: true
  batch:
    description:
      - The hosts of the wave that just ran (C(ansible_play_batch)).
    type: list
    elements: str
    required: true
  result_variable:
    description:
      - The host variable in which each service noted its outcome.
    type: str
    default: cutover_fleet_result
notes:
  - Runs the same in check mode; it changes nothing.
extends_documentation_fragment:
  - cutover.bluegreen.controller_action
attributes:
  check_mode:
    support: full
    description: Judges the same way; it never changes anything.
"""

EXAMPLES = r"""
- name: Judge this wave of the fleet
  cutover.bluegreen.fleet_wave:
    fleet: "{{ hostvars['localhost'].cutover_fleet_plan }}"
    batch: "{{ ansible_play_batch }}"
  run_once: true
  register: cutover_fleet_wave

- name: Fleet summary, one line per service
  ansible.builtin.debug:
    msg: "{{ cutover_fleet_wave.lines }}"
  run_once: true
  when: cutover_fleet_wave.final
"""

RETURN = r"""
stop:
  description: Whether the fleet stops after this wave.
  returned: success
  type: bool
final:
  description: Whether this wave is the last that runs (the last of the plan, or one that stops the fleet).
  returned: success
  type: bool
reason:
  description: Why the fleet stops, or null.
  returned: success
  type: str
  sample: "wave 1 failed: 1 of 1 service (max_fail_percentage 0)"
failed_hosts:
  description: The hosts of this wave that did not succeed.
  returned: success
  type: list
  elements: str
lines:
  description: The fleet's summary when RV(final), one line per service and a total; empty otherwise.
  returned: success
  type: list
  elements: str
  sample:
    - "shop (wave 1): rolled_back - ...; production was switched back to blue (deployment 20260101T120000Z-1a2b3c4d)"
    - "cart (wave 2): not started - the fleet stopped: wave 1 failed: 1 of 1 service (max_fail_percentage 0)"
    - "fleet of 2: 1 rolled_back, 1 not started; stopped: wave 1 failed: 1 of 1 service (max_fail_percentage 0)"
"""
