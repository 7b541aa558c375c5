# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The deployment table of a service (lock and journal): the service and the table's name.
    DOCUMENTATION = r"""
options:
  service:
    description:
      - Name of the service whose deployment lock or journal to use.
    type: str
    required: true
  table_name:
    description:
      - Name of the service's deployment table (DynamoDB), as created by the service's stack.
      - The table has a string hash key C(pk), a string range key C(sk) and time-to-live on C(expires_at).
      - Defaults to C(cutover-<service>), the name the stack gives it.
    type: str
"""

    # Only the table name, for modules whose service option is documented elsewhere.
    NAME = r"""
options:
  table_name:
    description:
      - Name of the service's deployment table (DynamoDB), as created by the service's stack.
      - Defaults to C(cutover-<service>), the name the stack gives it.
    type: str
"""
