# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Wait for a background (``async``) job of this run in the controller process (see the module's docs).

``ansible.builtin.async_status`` in an ``until`` loop starts a module for every look (a Python process, about
a quarter of a second of CPU each) and prints a ``FAILED - RETRYING`` line for each. The roles run on the
controller (local connection), where a job's status file can be read directly: this action reads it every
``interval`` seconds without starting anything, prints each line the job writes to its ``progress_file`` as it
comes, and returns the job's result as ``async_status`` does once the job has finished.
"""

from __future__ import annotations

import json
import os
import time

from ansible.errors import AnsibleActionFail
from ansible.utils.display import Display
from ansible_collections.cutover.bluegreen.plugins.plugin_utils.controller_action import ControllerAction, job_path

display = Display()

ARGUMENT_SPEC = dict(
    jid=dict(type="str", required=True),
    timeout=dict(type="float", required=True),
    progress_file=dict(type="path"),
    interval=dict(type="float", default=0.25),
)


MISSING_GRACE = 10.0  # seconds a job's status file may be missing before the job counts as lost


def read_job(path):
    """The job's status (a dict), or None while it cannot be read (not written yet, or being replaced)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return None


def finished(job):
    """Whether a status file's content is the job's result, read the way ``async_status`` reads it: the
    wrapper's own record (``started``, ``finished``) until the module's result replaces it."""
    return job is not None and ("started" not in job or bool(job.get("finished")))


def new_lines(path, offset):
    """``(complete lines written after offset, new offset)``; a line still being written waits for its end."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    lines = data[:end].decode("utf-8", errors="replace").splitlines()
    return [line for line in lines if line.strip()], offset + end


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args, task_vars, result):
        transport = getattr(self._connection, "transport", None)
        if transport != "local":
            raise AnsibleActionFail(
                "job_wait reads the job's status on the controller; this task runs over %s connection" % (transport or "another")
            )
        if args["timeout"] < 0 or args["interval"] <= 0:
            raise AnsibleActionFail("job_wait: timeout must not be negative and interval must be positive")
        job_file = job_path(self, args["jid"])
        host = task_vars.get("inventory_hostname", "localhost")
        progress, offset = args["progress_file"], 0
        started = time.monotonic()
        controller = os.getppid()  # this worker's parent: the ansible-playbook process
        job = None
        while True:
            if os.getppid() != controller:
                # the controller died (the worker runs in a session of its own and outlives a kill of its group):
                # nobody waits for this result any more, and the job watches the controller itself
                raise AnsibleActionFail("the controller (pid %d) is gone; stopped waiting for job %s" % (controller, args["jid"]))
            job = read_job(job_file)
            if progress:
                lines, offset = new_lines(progress, offset)
                for line in lines:
                    display.display("%s: %s" % (host, line))
            if finished(job):
                break
            if job is None and time.monotonic() - started > MISSING_GRACE and not os.path.exists(job_file):
                raise AnsibleActionFail("could not find job %s (%s)" % (args["jid"], job_file), result={"ansible_job_id": args["jid"]})
            if time.monotonic() - started > args["timeout"]:
                raise AnsibleActionFail(
                    "job %s did not finish within %.0f s (it goes on in the background until its own async limit)"
                    % (args["jid"], args["timeout"]),
                    result={"ansible_job_id": args["jid"], "finished": False, "results_file": job_file},
                )
            time.sleep(args["interval"])
        # the job's status file stays, as async_status leaves it; the progress lines were printed
        if progress:
            try:
                os.unlink(progress)
            except OSError:
                pass
        result.update(job)
        result.update(ansible_job_id=args["jid"], started=True, finished=True, waited_for_job=round(time.monotonic() - started, 3))
        return result
