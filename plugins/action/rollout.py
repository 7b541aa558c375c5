# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""cutover.bluegreen.rollout: the module's own code, run in-process when the task runs on the controller.

See ``plugin_utils.in_process``: on a local connection the module's ``main()`` runs in
the task's worker process (an ``async`` task's in a process forked from it); otherwise the module runs as a
module.
"""

from __future__ import annotations

from ansible_collections.cutover.bluegreen.plugins.modules.rollout import main
from ansible_collections.cutover.bluegreen.plugins.plugin_utils.in_process import InProcessModuleAction


class ActionModule(InProcessModuleAction):
    MODULE_MAIN = staticmethod(main)
