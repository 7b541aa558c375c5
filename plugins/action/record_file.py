# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Write a deployment record as JSON on the controller, without running a module (see the module's docs)."""

from __future__ import annotations

import json
import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.json import get_encoder
from ansible.module_utils.common.text.converters import to_text
from ansible_collections.cutover.bluegreen.plugins.plugin_utils.controller_action import ControllerAction

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    content=dict(type="dict", required=True),
    mode=dict(type="str", default="0644"),
)


def render(content):
    """The file's text: indented JSON with sorted keys (what ``to_nice_json`` writes), ending in a newline."""
    return json.dumps(content, cls=get_encoder("tagless"), indent=4, sort_keys=True, separators=(",", ": "), ensure_ascii=False) + "\n"


def parse_mode(mode):
    try:
        value = int(str(mode), 8)
    except ValueError:
        raise AnsibleActionFail("mode %r is not an octal file mode such as 0644" % (mode,)) from None
    if not 0 <= value <= 0o7777:
        raise AnsibleActionFail("mode %r is not an octal file mode such as 0644" % (mode,))
    return value


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""


def write_atomically(path, text, mode):
    """Write ``text`` to ``path`` through a temporary file in the same folder, so a reader never sees half a record."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise AnsibleActionFail("cannot write the record %s: the folder %s does not exist" % (path, folder))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".record-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise AnsibleActionFail("cannot write the record %s: %s" % (path, exc)) from exc


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args, task_vars, result):
        path, mode = args["path"], parse_mode(args["mode"])
        try:
            text = render(args["content"])
        except (TypeError, ValueError) as exc:
            raise AnsibleActionFail("the record for %s cannot be written as JSON: %s" % (path, to_text(exc))) from exc
        before = read_text(path)
        mode_before = os.stat(path).st_mode & 0o7777 if before is not None else None
        changed = before != text or mode_before != mode
        if changed and not self._task.check_mode:
            write_atomically(path, text, mode)
        result.update(changed=changed, path=path, bytes=len(text.encode("utf-8")))
        if self._task.diff:
            result["diff"] = dict(before_header=path, after_header=path, before=before or "", after=text)
        return result
