# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Judge the wave of a fleet release that just ran, on the controller (see the module's docs).

Each service of the wave noted its outcome in the host variable ``cutover_fleet_result``
(``{outcome, message}``); the rules are plugins/module_utils/fleet.py's ``judge``.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible_collections.cutover.bluegreen.plugins.module_utils.fleet import judge
from ansible_collections.cutover.bluegreen.plugins.plugin_utils.controller_action import ControllerAction

ARGUMENT_SPEC = dict(
    fleet=dict(type="dict", required=True),
    batch=dict(type="list", elements="str", required=True),
    result_variable=dict(type="str", default="cutover_fleet_result"),
)


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args, task_vars, result):
        hostvars = task_vars.get("hostvars") or {}
        results = {}
        for host in args["fleet"].get("hosts") or []:
            variables = hostvars.get(host["name"]) or {}
            noted = variables.get(args["result_variable"])
            if noted:
                results[host["name"]] = self._templar.template(noted)
        try:
            judged = judge(args["fleet"], args["batch"], results)
        except (KeyError, TypeError, ValueError) as exc:
            raise AnsibleActionFail("fleet_wave: %s" % exc) from None
        result.update(judged)
        result.update(changed=False, msg=judged["reason"] or "the fleet goes on")
        return result
