# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Plan a fleet release on the controller, before any service is read or changed (see the module's docs).

The rules are in plugins/module_utils/fleet.py; this action reads the inventory group of services (when
one is named) and hands the plan back for the play's ``add_host`` and ``serial``.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible_collections.cutover.bluegreen.plugins.module_utils.fleet import FleetError, batch_count_text, members_of, plan
from ansible_collections.cutover.bluegreen.plugins.plugin_utils.controller_action import ControllerAction

ARGUMENT_SPEC = dict(
    service=dict(type="raw"),
    services=dict(type="raw"),
    service_group=dict(type="str"),
    regions=dict(type="raw"),
    waves=dict(type="raw"),
    max_fail_percentage=dict(type="raw"),
    usage=dict(type="str", default=""),
    platform=dict(type="str", default="aws"),
)


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args, task_vars, result):
        members = None
        group = (args["service_group"] or "").strip()
        if group:
            hosts = (task_vars.get("groups") or {}).get(group)
            if hosts is not None:
                hostvars = task_vars.get("hostvars") or {}
                members = members_of(group, list(hosts), {host: hostvars.get(host) or {} for host in hosts})
        try:
            fleet = plan(
                service=args["service"],
                services=args["services"],
                service_group=group or None,
                members=members,
                regions=args["regions"],
                waves=args["waves"],
                max_fail_percentage=args["max_fail_percentage"],
                usage=args["usage"],
                platform=(args["platform"] or "aws").strip() or "aws",
            )
        except FleetError as exc:
            raise AnsibleActionFail(str(exc), result={"problems": exc.problems}) from None
        limit = task_vars.get("ansible_limit")
        if limit and fleet["fleet"]:
            # the plan's waves and the summary count every service of the fleet; a limit would leave some out unseen
            raise AnsibleActionFail(
                "fleet: --limit %s: not with a fleet; name the services to run with services=... or an inventory group "
                "with service_group=..., nothing was read or changed" % limit,
                result={"problems": ["--limit: not with a fleet"]},
            )
        result.update(fleet)
        result.update(changed=False, msg="fleet: %s" % batch_count_text(fleet))
        return result
