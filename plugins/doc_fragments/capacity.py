# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # What counts as a colour's capacity, and what to do with targets that are not.
    DOCUMENTATION = r"""
options:
  deregister_foreign:
    description:
      - A colour's capacity is the InService instances of its own Auto Scaling group, on the launch-template
        version the group points at, whose targets are healthy. A target registered in its target group that is
        not an instance of that group (by hand, by another tool, or left from an earlier setup) is foreign. It is
        never counted, and the colour may not take traffic while it is registered.
      - By default a foreign target stops the step before anything moves traffic, naming it.
      - With V(true) the foreign targets of the colour are deregistered instead (they drain for the target
        group's deregistration delay) and the step goes on.
    type: bool
    default: false
"""
