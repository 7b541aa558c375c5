# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the collection's actions share: they run on the controller alone and check their options first."""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase


def job_path(action, jid):
    """The status file of the background job ``jid`` on the controller, where ``async_status`` reads it: in the
    shell's ``async_dir`` as the task's action sees it."""
    return os.path.join(os.path.expanduser(action.get_shell_option("async_dir", default="~/.ansible_async")), jid)


class ControllerAction(ActionBase):
    """An action that runs on the controller alone (no file transferred, no connection used).

    Its options are checked against ``ARGUMENT_SPEC`` before :meth:`act` runs with
    them; a subclass also sets ``_VALID_ARGS = frozenset(ARGUMENT_SPEC)``.
    """

    TRANSFERS_FILES = False
    _requires_connection = False
    ARGUMENT_SPEC = {}

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # nothing is transferred
        _validation, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        return self.act(args, task_vars or {}, result)

    def act(self, args, task_vars, result):
        """The action, with its checked options; returns ``result`` completed."""
        raise NotImplementedError
