# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Check every variable of the running role before it reads or changes anything (see the module's docs).

The rules and how to add one are in plugins/module_utils/inputs.py; this action only gathers the role's
argument spec and the variables' values on the controller and reports what the rules say.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.utils.vars import load_extra_vars
from ansible_collections.cutover.bluegreen.plugins.module_utils.inputs import check, failure_message, unknown_variables
from ansible_collections.cutover.bluegreen.plugins.plugin_utils.controller_action import ControllerAction

ARGUMENT_SPEC = dict(
    role_path=dict(type="path"),
    entry_point=dict(type="str", default="main"),
)


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def options(self, role_path, entry_point):
        """The ``options`` of the role's entry point in its meta/argument_specs.yml."""
        for name in ("argument_specs.yml", "argument_specs.yaml"):
            path = os.path.join(role_path, "meta", name)
            if os.path.isfile(path):
                specs = (self._loader.load_from_file(path) or {}).get("argument_specs") or {}
                if entry_point not in specs:
                    raise AnsibleActionFail("%s has no entry point %r" % (path, entry_point))
                return specs[entry_point].get("options") or {}
        raise AnsibleActionFail("the role at %s has no meta/argument_specs.yml to check its variables against" % role_path)

    def act(self, args, task_vars, result):
        role_path = args["role_path"] or task_vars.get("role_path")
        if not role_path:
            raise AnsibleActionFail("validate_inputs runs in a role (or give role_path)")
        options = self.options(role_path, args["entry_point"])

        # The values the role's tasks will see: extra vars over role params over defaults, templated.
        raw, problems = {}, []
        for name in list(options):
            if name not in task_vars:
                continue
            try:
                raw[name] = self._templar.template(task_vars[name])
            except AnsibleError as exc:
                problems.append("%s: cannot be evaluated: %s" % (name, to_text(exc)))
                options = {other: spec for other, spec in options.items() if other != name}
        typed, found = check(options, raw, context={"playbook_dir": task_vars.get("playbook_dir")})
        problems.extend(found)
        role = os.path.basename(os.path.normpath(role_path))
        # the run's extra vars as ansible-playbook parsed them (-e key=value, -e @file, -e '{...}')
        problems.extend(unknown_variables(role, load_extra_vars(self._loader), options))
        if problems:
            result.update(failed=True, msg=failure_message(role, problems), problems=problems)
            return result
        result.update(typed)
        result.update(changed=False, msg="%s: all %d inputs are valid" % (role, len(options)))
        return result
