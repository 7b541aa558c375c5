#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: record_file
short_description: Write a deployment record as a JSON file on the controller
version_added: 0.1.0
description:
  - Writes O(content) as indented JSON with sorted keys to O(path) on the Ansible controller (for AWX, inside
    the job's execution environment), through a temporary file in the same folder, so a reader never sees half
    a record.
  - An action that runs in the controller process, without starting a module, so that writing the record adds
    next to nothing to a release.
  - Idempotent, a file that already holds the same record with the same mode is left alone.
author:
  - cutover maintainers (@cutover)
options:
  path:
    description:
      - The file to write. Its folder must exist.
    type: path
    required: true
  content:
    description:
      - The record, a dictionary of JSON values.
    type: dict
    required: true
  mode:
    description:
      - The file's permissions, in octal.
    type: str
    default: "0644"
notes:
  - Supports check mode (nothing is written) and diff mode (the file's text before and after).
extends_documentation_fragment:
  - cutover.bluegreen.controller_action
attributes:
  check_mode:
    support: full
    description: Nothing is written; the result says whether the file would change.
  diff_mode:
    support: full
    description: Shows the file's text before and after.
"""

EXAMPLES = r"""
- name: Keep the deployment record next to the job's other artefacts
  cutover.bluegreen.record_file:
    path: "/var/lib/records/shop-{{ deployment.deployment_id }}.json"
    content:
      deployment_id: "{{ deployment.deployment_id }}"
      outcome: succeeded
"""

RETURN = r"""
path:
  description: The file written (or, in check mode, that would be).
  returned: success
  type: str
  sample: /var/lib/records/shop-20260101T120000Z-1a2b3c4d.json
bytes:
  description: Size of the record's text.
  returned: success
  type: int
  sample: 712
"""
