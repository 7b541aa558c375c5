# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which process runs a release, and whether it still lives.

A run's lease is renewed only while its controller (the ``ansible-playbook``
process) lives. Ansible runs each task's worker in a session of its own and an
``async`` job daemonizes, so killing the controller's process group does not
stop them; they watch the controller instead, by its pid *and* its start time
(a pid alone may be reused by an unrelated process after the controller died),
on the machine it runs on (the boot id tells machines and reboots apart).

A controller is described by ``{"pid": int, "started": str or None, "host":
str or None}``: ``started`` is the process start time in clock ticks since
boot (``/proc/<pid>/stat``), ``host`` the kernel's boot id. Where ``/proc`` is
missing (not Linux) both are None and only the pid is watched.
"""

from __future__ import annotations

import errno
import os

BOOT_ID = "/proc/sys/kernel/random/boot_id"
_GONE_STATES = ("Z", "X", "x")  # a zombie is dead, only not yet reaped by its parent


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def boot_id():
    """The running kernel's boot id (None where unknown)."""
    text = _read(BOOT_ID)
    return text.strip() if text else None


def parse_stat(text):
    """``(state, start ticks)`` from the text of ``/proc/<pid>/stat``, or None when unreadable.

    The command name (field 2) is in parentheses and may hold spaces and
    parentheses itself, so the fields are counted after its last ``)``.
    """
    if not text or ")" not in text:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


def process_stat(pid):
    """``(state, start ticks)`` of process ``pid`` from /proc, or None (no /proc, or no such process)."""
    return parse_stat(_read("/proc/%d/stat" % pid))


def describe(pid):
    """The controller description of process ``pid`` (see the module docstring)."""
    stat = process_stat(pid)
    return {"pid": int(pid), "started": stat[1] if stat else None, "host": boot_id()}


def _pid_exists(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, owned by someone else
    return True


def same_host(controller, current_boot_id=None):
    """Whether ``controller`` runs (ran) on this machine since its last boot; unknown counts as the same."""
    host = (controller or {}).get("host")
    here = current_boot_id if current_boot_id is not None else boot_id()
    return not host or not here or host == here


def problem(controller, stat=None, exists=None, current_boot_id=None):
    """Why ``controller`` is not alive (a text), or None while it lives.

    ``stat`` (``(state, start ticks)`` or None) and ``exists`` default to what
    this machine says about the pid now; tests pass them in.
    """
    pid = int(controller["pid"])
    if not same_host(controller, current_boot_id):
        return "the controller (pid %d) ran on another machine or before a reboot" % pid
    if stat is None and exists is None:
        stat = process_stat(pid)
        exists = stat is not None or _pid_exists(pid)
    elif exists is None:
        exists = stat is not None
    if not exists:
        return "the controller (pid %d) is gone" % pid
    if stat is not None:
        state, started = stat
        if state in _GONE_STATES:
            return "the controller (pid %d) is gone" % pid
        if controller.get("started") and started != str(controller["started"]):
            return "the controller (pid %d) is gone (the pid now belongs to another process)" % pid
    return None


def alive(controller):
    return problem(controller) is None
