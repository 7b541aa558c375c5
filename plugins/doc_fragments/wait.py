# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The wait options of every waiting module; matches waits.argument_spec() (a module states its own default when
    # it differs, and the names the option had before as aliases).
    DOCUMENTATION = r"""
options:
  wait_timeout:
    description:
      - How long to wait in all, in seconds (0 or more). A wait looks often at first and less often later, says
        every 10 seconds what it still waits for, and at the timeout fails naming what it waited for and where
        that stands. A condition that can no longer be met (a target that stays unhealthy, an instance that
        cannot launch, a pod in a crash loop) fails the wait at once, before its timeout.
    type: int
    default: 600
  wait_sleep:
    description:
      - The longest pause between two looks of a wait, in seconds (0 or more; a pause is never shorter than a
        tenth of a second).
      - By default each wait's own pace - pauses that start short and grow by half each look, up to between 2
        and 15 seconds depending on what it watches.
    type: int
"""

    # The switch for modules where waiting is optional.
    OPTIONAL = r"""
options:
  wait:
    description:
      - Wait until what the module changed is done (see O(wait_timeout)).
    type: bool
    default: true
"""
