# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Make the identity of this run for the deployment lock, on the controller, without running a module.

See the module's docs (plugins/modules/run_identity.py). The worker process that
runs an action is a child of the ``ansible-playbook`` process, so its parent pid
is the controller's.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid

from ansible.errors import AnsibleActionFail
from ansible_collections.cutover.bluegreen.plugins.module_utils import controller
from ansible_collections.cutover.bluegreen.plugins.module_utils.lease import RUN_LEASE_SECONDS
from ansible_collections.cutover.bluegreen.plugins.module_utils.lease_rules import MAX_OWNER_LENGTH
from ansible_collections.cutover.bluegreen.plugins.plugin_utils.controller_action import ControllerAction

ARGUMENT_SPEC = dict(
    owner=dict(type="str"),
    lease_seconds=dict(type="raw"),
    takeover=dict(type="str"),
    prefix=dict(type="str", default=""),
)
MIN_LEASE_SECONDS, MAX_LEASE_SECONDS = RUN_LEASE_SECONDS
DEFAULT_LEASE_SECONDS = 60


def default_owner(task_vars, pid):
    """``awx-job-<id>`` under AWX, else ``ansible-playbook <user>@<host> pid <pid>``."""
    for name in ("awx_job_id", "tower_job_id"):
        if task_vars.get(name) not in (None, ""):
            return "awx-job-%s" % task_vars[name]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return "ansible-playbook %s@%s pid %d" % (user, socket.gethostname(), pid)


def variable(prefix, name):
    return "%s_%s" % (prefix, name) if prefix else name


def parse_lease_seconds(value, prefix=""):
    """A whole number of seconds from MIN to MAX, also when it comes as a string (``-e x=60``)."""
    name = variable(prefix, "lease_seconds")
    if value is None or value == "":
        return DEFAULT_LEASE_SECONDS
    text = str(value).strip()
    if isinstance(value, bool) or not text.lstrip("+").isdigit():
        raise AnsibleActionFail(
            "%s must be a whole number of seconds from %d to %d, got %r" % (name, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS, value)
        )
    seconds = int(text)
    if not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
        raise AnsibleActionFail(
            "%s must be from %d to %d seconds (a live run renews it every quarter of it; a dead run's lease expires after it), got %d"
            % (name, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS, seconds)
        )
    return seconds


def parse_owner(value, prefix=""):
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    if len(value) > MAX_OWNER_LENGTH:
        raise AnsibleActionFail("%s must be at most %d characters, got %d" % (variable(prefix, "owner"), MAX_OWNER_LENGTH, len(value)))
    return value


def process_started_at(start_ticks, uptime_path="/proc/uptime", clock=time.time):
    """When a process started, in epoch seconds, from its start in clock ticks after boot (Linux), to about a
    hundredth of a second; None where unknown. The end-to-end figures of a run count from here: the command's
    start, not its first task. (The boot time in /proc/stat is whole seconds; the uptime is not.)"""
    if start_ticks is None:
        return None
    try:
        with open(uptime_path, encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        now = clock()
        return round(now - (uptime - int(start_ticks) / os.sysconf("SC_CLK_TCK")), 3)
    except (OSError, ValueError, IndexError):
        return None


def parse_takeover(value):
    if value is None or not str(value).strip():
        return None  # a blank survey answer: no takeover
    return str(value).strip()


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args, task_vars, result):
        prefix = args["prefix"]
        lease_seconds = parse_lease_seconds(args["lease_seconds"], prefix)
        owner = parse_owner(args["owner"], prefix)
        takeover = parse_takeover(args["takeover"])
        transport = getattr(self._connection, "transport", None)
        if transport != "local":
            raise AnsibleActionFail(
                "the cutover roles run on the controller (hosts: localhost, connection: local), so that the lock is kept only "
                "while this run lives; this task runs over %s connection" % (transport or "another")
            )
        pid = os.getppid()
        described = controller.describe(pid)
        result.update(
            changed=False,
            owner=owner or default_owner(task_vars or {}, pid),
            token=uuid.uuid4().hex,
            controller=described,
            started_at=process_started_at(described["started"]) or round(time.time(), 3),
            lease_seconds=lease_seconds,
            takeover=takeover,
        )
        return result
