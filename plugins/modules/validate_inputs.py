#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate_inputs
short_description: Check every variable of a role before the role reads or changes anything
version_added: 0.1.0
description:
  - The first task of every role of this collection. Reads the running role's C(meta/argument_specs.yml) and
    converts each of the role's variables to the type its spec gives (the way a module converts its options,
    so that C(-e deploy_health_timeout=300), a string, becomes an integer and C(-e deploy_smoke_test_status=200,204)
    a list of integers), then checks what a spec cannot say - ranges, formats and combinations of variables -
    with the table in the collection's C(plugins/module_utils/inputs.py).
  - Fails with one message that lists every bad input of the run, one line each naming the variable and what is
    allowed. Succeeds with every variable of the role, typed, in its result; register it to compute with them.
  - Some variables are also read into the form the role uses, in the result - canary steps as a list of
    C({weight, seconds}) integers whichever form they were given in, hook task files as absolute paths (relative
    ones are relative to the playbook's directory) after checking that they exist, alarm names stripped.
  - A list or mapping given as JSON text is read as JSON, for example
    C(-e 'deploy_canary_steps=[{"weight":5,"seconds":60}]').
  - Checks the values the role's tasks will see (extra vars over role parameters over defaults).
  - An action that runs in the controller process, without starting a module and without any AWS call.
author:
  - cutover maintainers (@cutover)
options:
  role_path:
    description:
      - The role whose variables to check. Defaults to the role the task belongs to.
    type: path
  entry_point:
    description:
      - The entry point of the role's argument spec.
    type: str
    default: main
notes:
  - Runs the same in check mode; it changes nothing.
extends_documentation_fragment:
  - cutover.bluegreen.controller_action
attributes:
  check_mode:
    support: full
    description: Checks the same way; it never changes anything.
"""

EXAMPLES = r"""
- name: Check every input before anything is read or changed
  cutover.bluegreen.validate_inputs:
  register: deploy_inputs

- name: Wait as long as both timeouts allow, whatever form -e gave them in
  ansible.builtin.debug:
    msg: "{{ deploy_inputs.deploy_rollout_timeout + deploy_inputs.deploy_health_timeout }}"
"""

RETURN = r"""
msg:
  description: What was checked, or every bad input, one line each.
  returned: always
  type: str
  sample: "deploy: 2 bad inputs, nothing was read or changed:\n- deploy_canary_weight=150: allowed 0 (no canary) to 99\n- ..."
problems:
  description: The bad inputs, one message each, when there are any.
  returned: failure
  type: list
  elements: str
  sample: ["deploy_capacity=-2: allowed 1 or more"]
"""
