# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How a module finds the pair: by service name, with optional explicit overrides.
    DOCUMENTATION = r"""
options:
  service:
    description:
      - Name of the service whose blue-green pair to act on.
      - The pair is found through the tags C(cutover:service=<service>) and C(cutover:color=blue|green)
        on its target groups and Auto Scaling groups, and C(cutover:listener=production|test) on its listeners.
    type: str
    required: true
  target_group_arns:
    description:
      - Explicit target-group ARNs, overriding discovery by tags.
      - Both colours must be given; each group must still carry the service's tag.
    type: dict
    suboptions:
      blue:
        description: ARN of the blue target group.
        type: str
      green:
        description: ARN of the green target group.
        type: str
  asg_names:
    description:
      - Explicit Auto Scaling group names, overriding discovery by tags.
    type: dict
    suboptions:
      blue:
        description: Name of the blue Auto Scaling group.
        type: str
      green:
        description: Name of the green Auto Scaling group.
        type: str
  production_listener_arn:
    description:
      - The production listener, when it is not tagged C(cutover:listener=production).
    type: str
  test_listener_arn:
    description:
      - The test listener, when it is not tagged C(cutover:listener=test).
    type: str
"""
