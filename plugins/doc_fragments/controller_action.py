# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The attributes of an action that runs on the controller; a module states its own check_mode (and overrides
    # any other attribute it does differently: its own keys win over the fragment's).
    DOCUMENTATION = r"""
attributes:
  action:
    support: full
    description: Runs on the controller; the task's host and connection are not used.
  diff_mode:
    support: none
    description: Nothing to show.
  platform:
    support: full
    platforms: posix
    description: The controller.
"""
