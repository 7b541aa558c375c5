# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A module of the collection run in the controller's worker process, where the task runs on the controller.

Every AWS step of the roles runs on the controller (``connection: local``), where starting the module costs
more than most of them do: a Python process, the AnsiballZ payload unpacked, boto3 imported (0.7 s a module
here, our pair_info 1.2 s). For those tasks the action of the module's name runs the module's own ``main()``
in the worker that Ansible forked for the task instead, with everything a module gets:

* the task's arguments checked against the module's own argument spec (and its ``mutually_exclusive``,
  ``required_if``...), by ``ansible.module_utils.common.arg_spec.ArgumentSpecValidator``, with the failure
  messages, defaults, environment fallbacks and ``no_log`` values ``AnsibleModule`` has;
* ``AnsibleAWSModule`` itself (amazon.aws), so its clients, its credentials and region handling, its
  ``fail_json_aws`` and warnings are the module's;
* check mode, diff mode and the result as the module would print it (JSON-encoded and decoded with the
  module serialization profile, ``no_log`` values masked, ``invocation`` added).

An ``async`` task (the lease heartbeat, the background rollout) runs the same way in a process forked from
the worker (:func:`start_job`) instead of ``async_wrapper`` starting the module: detached as ``async_wrapper``
detaches its job (a session of its own, no terminal, none of the worker's pipes), writing the same status
file in the same places (``async_dir``), stopped by the same time limit, so ``async_status`` and
``cutover.bluegreen.job_wait`` read it as they read a module's job. It saves a Python process, the payload
and boto3's import (0.6 s a job here), and the job's code is already loaded when it starts.

It runs the module as a module (:meth:`InProcessModuleAction.run` falls back to Ansible's normal module
execution) when the connection is not local, the task becomes another user, or sets an ``environment`` (the
module's process would see it, the worker does not), and when the controller's Python lacks boto3 (the module
runs in the Python ``ansible_python_interpreter`` names, which may have it; otherwise the controller's boto3
serves both). The fence checks (the lease and the controller) are in the modules' code, so they run the same
way in both.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import select
import signal
import traceback

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.json import Direction, get_module_decoder, get_module_encoder
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display
from ansible_collections.amazon.aws.plugins.module_utils.botocore import HAS_BOTO3
from ansible_collections.cutover.bluegreen.plugins.plugin_utils import botocore_data, controller_action

display = Display()

# Imported first in the controller's own process (the strategy loads an action's class before it forks the task's
# worker): botocore's data is read there once, and every worker inherits it (see botocore_data).
botocore_data.warm()

# The serialization profile of a module's result (what AnsiballZ modules print and the controller decodes).
PROFILE = "legacy"


class ModuleExit(BaseException):
    """How ``exit_json``/``fail_json`` end an in-process module run, as ``SystemExit`` ends a module's process
    (a ``BaseException``, so no ``except Exception`` of the module's code catches it)."""

    def __init__(self, result):
        super().__init__(result.get("msg", ""))
        self.result = result


class TaskModule:
    """What ``AnsibleAWSModule`` and the collection's modules use of ``AnsibleModule``, over a task's arguments.

    Takes the keyword arguments ``AnsibleModule`` takes; the arguments are checked as ``AnsibleModule`` checks
    them (it uses ``ModuleArgumentSpecValidator``, which only adds the alias warnings kept here).
    """

    def __init__(
        self,
        task,
        argument_spec,
        bypass_checks=False,
        no_log=False,
        mutually_exclusive=None,
        required_together=None,
        required_one_of=None,
        add_file_common_args=False,
        supports_check_mode=False,
        required_if=None,
        required_by=None,
    ):
        del bypass_checks, add_file_common_args  # not used by the collection's modules
        self._name = task["name"]
        self.argument_spec = argument_spec
        self.supports_check_mode = supports_check_mode
        self.check_mode = task["check_mode"]
        self._diff = task["diff"]
        self._verbosity = display.verbosity
        self._debug = False
        self.no_log = no_log
        self.no_log_values = set()
        self.warnings, self.deprecations = [], []
        self.params = dict(task["args"])
        validator = ArgumentSpecValidator(argument_spec, mutually_exclusive, required_together, required_one_of, required_if, required_by)
        validation = validator.validate(self.params)
        self.params.update(validation.validated_parameters)
        self.no_log_values.update(validation._no_log_values)
        self.aliases = dict(validation._aliases)
        for alias in validation._warnings:
            self.warn("Both option {option} and its alias {alias} are set.".format(option=alias["option"], alias=alias["alias"]))
        for deprecation in validation._deprecations:
            self.deprecate(deprecation["msg"], version=deprecation.get("version"), date=deprecation.get("date"))
        if validation.error_messages:
            error = validation.errors[0]
            msg = validation.errors.msg
            if isinstance(error, UnsupportedError):
                msg = "Unsupported parameters for ({name}) {kind}: {msg}".format(name=self._name, kind="module", msg=msg)
            self.fail_json(msg=msg)
        if self.check_mode and not self.supports_check_mode:
            self.exit_json(skipped=True, msg="remote module (%s) does not support check mode" % self._name)

    def warn(self, warning):
        if warning not in self.warnings:
            self.warnings.append(warning)

    def deprecate(self, msg, version=None, date=None, collection_name=None, deprecator=None):
        del collection_name, deprecator
        self.deprecations.append({key: value for key, value in (("msg", msg), ("version", version), ("date", date)) if value})

    def log(self, msg, log_args=None):
        """A module logs to the target's syslog; here the line goes to the controller's output at -vvvv."""
        del log_args
        display.vvvv("%s: %s" % (self._name, msg))

    def debug(self, msg):
        display.debug("%s: %s" % (self._name, msg))

    def boolean(self, arg):
        from ansible.module_utils.parsing.convert_bool import boolean

        return boolean(arg)

    def exit_json(self, **kwargs):
        raise ModuleExit(self._returned(kwargs))

    def fail_json(self, msg, exception=None, **kwargs):
        kwargs.update(failed=True, msg=str(msg))
        if isinstance(exception, str):  # a formatted traceback, shown at -vvv as a module's is
            kwargs["exception"] = exception
        raise ModuleExit(self._returned(kwargs))

    def _returned(self, kwargs):
        """The result as the controller gets a module's: ``invocation``, warnings, ``no_log`` values masked."""
        if "invocation" not in kwargs:
            kwargs["invocation"] = {"module_args": self.params}
        for warning in kwargs.pop("warnings", None) or []:
            self.warn(warning)
        if self.warnings:
            kwargs["warnings"] = list(self.warnings)
        if self.deprecations:
            kwargs["deprecations"] = list(self.deprecations)
        preserved = {key: value for key, value in kwargs.items() if value is None or isinstance(value, bool)}
        kwargs = remove_values(kwargs, self.no_log_values)
        kwargs.update(preserved)
        encoded = json.dumps(kwargs, cls=get_module_encoder(PROFILE, Direction.MODULE_TO_CONTROLLER))
        return json.loads(encoded, cls=get_module_decoder(PROFILE, Direction.MODULE_TO_CONTROLLER))


@contextlib.contextmanager
def module_class(task):
    """``AnsibleAWSModule`` building its ``AnsibleModule`` as a :class:`TaskModule` of ``task``.

    amazon.aws keeps the class in ``AnsibleAWSModule.default_settings["module_class"]`` and reads it from
    there (not from the ``module_class`` keyword it also takes), so the setting is swapped for the run; the
    worker process runs this one task.
    """
    from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

    settings = AnsibleAWSModule.default_settings
    before = settings["module_class"]
    settings["module_class"] = lambda **kwargs: TaskModule(task, **kwargs)
    try:
        yield
    finally:
        settings["module_class"] = before


def run_in_process(main, task, plain=False):
    """Run a module's ``main()`` on ``task`` (``name``, ``args``, ``check_mode``, ``diff``); its result.

    With ``plain``, the module builds an ``AnsibleModule`` (not amazon.aws's) through the class its ``main``
    takes as ``module_class``.
    """
    with module_class(task):
        try:
            if plain:
                main(module_class=lambda **kwargs: TaskModule(task, **kwargs))
            else:
                main()
        except ModuleExit as done:
            return done.result
    raise RuntimeError("%s returned without exit_json or fail_json" % task["name"])


def write_job(path, status):
    """A job's status file, replaced whole (a reader never sees half of it), as ``async_wrapper`` writes it."""
    partial = path + ".tmp"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(status, cls=get_module_encoder(PROFILE, Direction.MODULE_TO_CONTROLLER)))
    os.replace(partial, path)


def _open_descriptors():
    for listing in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(listing):
            return sorted(int(name) for name in os.listdir(listing) if name.isdigit())
    return list(range(3, 256))


def job_name(task_name):
    """What ``ps -o comm`` and ``top`` show for a job of ``task_name`` (Linux keeps 15 characters): a fork of the
    worker otherwise looks like ansible-playbook itself, and after a crash a person must tell the two apart."""
    return ("cutover:" + task_name.rsplit(".", 1)[-1])[:15]


def _name_process(name):
    """Best effort: the process's name (Linux ``prctl(PR_SET_NAME)``); elsewhere it keeps its name."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode(), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _detach(keep):
    """In the job's process: a session of its own, and none of the worker's files: stdin, stdout and stderr and
    every other descriptor but ``keep`` point at /dev/null (the numbers stay taken, so no object of the worker
    that still holds one closes a file of the job's), so a caller waiting for ansible-playbook's output to end
    does not wait for the job; display goes nowhere (the worker's queue to the controller is not the job's)."""
    os.setsid()
    os.umask(0o022)
    null = os.open(os.devnull, os.O_RDWR)
    for descriptor in _open_descriptors():
        if descriptor not in (keep, null):
            with contextlib.suppress(OSError):
                os.dup2(null, descriptor)
    display._final_q = None  # pylint: disable=protected-access
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)


def _run_job(main, task, job_path, time_limit, plain):
    """In the job's process: the module's run, its result written to the status file; the time limit's
    result instead if it runs longer (``async_wrapper``'s words)."""
    jid = os.path.basename(job_path)

    def timed_out(signum, frame):
        del signum, frame
        write_job(job_path, {"failed": True, "msg": "Timeout exceeded", "child_pid": os.getpid(), "ansible_job_id": jid})
        os._exit(1)

    if time_limit > 0:
        signal.signal(signal.SIGALRM, timed_out)
        signal.alarm(int(time_limit))
    try:
        result = run_in_process(main, task, plain=plain)
    except Exception:  # noqa: BLE001 pylint: disable=broad-exception-caught  # a crash gives its traceback, as a module
        result = {"failed": True, "msg": "MODULE FAILURE: the module raised an exception", "exception": traceback.format_exc()}
    signal.alarm(0)
    write_job(job_path, result)


def start_job(main, task, job_path, time_limit, plain=False, ready_seconds=10.0):
    """Start ``main`` on ``task`` as a background job whose status file is ``job_path``; what the start of
    an ``async`` task returns.

    Forks twice (the job is nobody's child, as ``async_wrapper``'s is not), and returns once the job has
    written its first status (``started``), so a reader never finds no file for a job that was started.
    """
    jid = os.path.basename(job_path)
    os.makedirs(os.path.dirname(job_path), exist_ok=True)
    ready, told = os.pipe()
    first = os.fork()
    if first == 0:  # the first child: only forks the job and ends
        status = 1
        try:
            os.close(ready)
            if os.fork() == 0:
                _detach(keep=told)
                _name_process(job_name(task["name"]))
                write_job(job_path, {"started": True, "finished": False, "ansible_job_id": jid})
                os.write(told, b"1")
                os.close(told)
                _run_job(main, task, job_path, time_limit, plain)
            status = 0
        finally:
            os._exit(status)  # never back into the worker's code: the job and this child end here
    os.close(told)
    os.waitpid(first, 0)
    try:
        started = select.select([ready], [], [], ready_seconds)[0] and os.read(ready, 1)
    finally:
        os.close(ready)
    if not started:
        raise AnsibleActionFail("the background job %s did not start within %.0f s (%s)" % (jid, ready_seconds, job_path))
    return {"started": True, "finished": False, "ansible_job_id": jid, "results_file": job_path, "changed": True}


class InProcessModuleAction(NormalAction):
    """The action of a module that runs it in-process on a local connection (see the module docstring).

    A subclass names the module's ``main`` in ``MODULE_MAIN`` (a ``staticmethod``).
    """

    MODULE_MAIN = None
    # A module of plain AnsibleModule, without boto3 (its main takes ``module_class``; see run_in_process).
    PLAIN = False

    def in_process(self):
        """Whether this task may run in the worker (or, ``async``, in a process forked from it): on the
        controller, as this user, in this environment."""
        return (
            (HAS_BOTO3 or self.PLAIN)  # else the module, in the Python ansible_python_interpreter names, may have them
            and getattr(self._connection, "transport", None) == "local"
            and not self._play_context.become
            and not any(self._task.environment or [])  # a list of (empty by default) dicts
        )

    def run(self, tmp=None, task_vars=None):
        if not self.in_process():
            return super().run(tmp, task_vars)
        result = super(NormalAction, self).run(tmp, task_vars)
        # the arguments as the module gets them: encoded and decoded with the module serialization profile
        args = json.dumps(self._task.args, cls=get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE))
        task = dict(
            name=self._task.action,
            args=json.loads(args, cls=get_module_decoder(PROFILE, Direction.CONTROLLER_TO_MODULE)),
            check_mode=bool(self._task.check_mode),
            diff=bool(self._task.diff),
        )
        if self._task.async_val:
            # the job id's form is ansible-core's (ActionBase._execute_module), with the pid async_wrapper adds
            jid = "j%d.%d" % (secrets.randbelow(999999999999), os.getpid())
            result.update(start_job(self.MODULE_MAIN, task, controller_action.job_path(self, jid), self._task.async_val, plain=self.PLAIN))
        else:
            result.update(run_in_process(self.MODULE_MAIN, task, plain=self.PLAIN))
        return result
