"""Background jobs run in-process (plugin_utils.in_process.start_job): real forks, real status files.

A job's main is a module's ``main(module_class=...)``; these ones say where they ran, raise, or outlast the
time limit. What async_status and job_wait read is the status file, so that is what is checked.
"""

from __future__ import annotations

import json
import os
import select
import time

import pytest
from ansible_collections.cutover.bluegreen.plugins.plugin_utils.in_process import job_name, start_job


def task(**args):
    return {"name": "cutover.bluegreen.test_job", "args": args, "check_mode": False, "diff": False}


def where_am_i(module_class):
    module = module_class(argument_spec={"sleep": {"type": "float", "default": 0}})
    time.sleep(module.params["sleep"])
    with open("/proc/self/comm", encoding="utf-8") as comm:
        name = comm.read().strip()
    module.exit_json(changed=False, pid=os.getpid(), ppid=os.getppid(), sid=os.getsid(0), name=name)


def crashes(module_class):
    module_class(argument_spec={})
    raise ValueError("the module's own bug")


def status(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def finished(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = status(path)
        if "started" not in found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"job {path} did not finish within {timeout} s: {status(path)}")


def gone(pid, timeout=5.0):
    """Whether the process ends within ``timeout`` (it writes its result a moment before it ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def job_path(tmp_path):
    return str(tmp_path / "async" / "j123.456")


def test_a_job_is_started_before_the_start_returns_and_runs_detached(job_path):
    started = start_job(where_am_i, task(sleep=0.5), job_path, 60, plain=True)
    assert started == {"started": True, "finished": False, "ansible_job_id": "j123.456", "results_file": job_path, "changed": True}
    # the file exists at once, saying the job runs (the directory was made for it)
    assert status(job_path) == {"started": True, "finished": False, "ansible_job_id": "j123.456"}
    result = finished(job_path)
    assert result["invocation"] == {"module_args": {"sleep": 0.5}} and result["changed"] is False
    # nobody's child (the first child that forked it ended) and in a session of its own
    assert result["pid"] != os.getpid() and result["ppid"] != os.getpid()
    assert result["sid"] == result["pid"] != os.getsid(0)
    # named for ps and top, not a second ansible-playbook
    assert result["name"] == "cutover:test_jo" == job_name("cutover.bluegreen.test_job")


def test_a_job_holds_none_of_its_starters_files(job_path):
    # a caller reading ansible-playbook's output until its end must not wait for the job: the job keeps no
    # descriptor of its starter's (here a pipe whose write end the starter then closes)
    read, write = os.pipe()
    try:
        start_job(where_am_i, task(sleep=3), job_path, 60, plain=True)
        os.close(write)
        write = None
        ready = select.select([read], [], [], 2)[0]
        assert ready and os.read(read, 1) == b"", "the job keeps the starter's pipe open"
        assert "started" in status(job_path)  # still running
    finally:
        os.close(read)
        if write is not None:
            os.close(write)
    finished(job_path)


def test_a_job_that_raises_fails_with_its_traceback(job_path):
    start_job(crashes, task(), job_path, 60, plain=True)
    result = finished(job_path)
    assert result["failed"] and result["msg"] == "MODULE FAILURE: the module raised an exception"
    assert "ValueError: the module's own bug" in result["exception"]


def test_a_job_that_outlasts_its_time_limit_is_stopped_and_says_so(job_path):
    began = time.monotonic()
    start_job(where_am_i, task(sleep=30), job_path, 1, plain=True)
    result = finished(job_path, timeout=10)
    assert result["failed"] and result["msg"] == "Timeout exceeded" and result["ansible_job_id"] == "j123.456"
    assert time.monotonic() - began < 5
    assert gone(result["child_pid"]), "the job still runs after its time limit"


def test_bad_arguments_fail_in_the_job_as_a_module_fails(job_path):
    start_job(where_am_i, task(sleep="soon"), job_path, 60, plain=True)
    result = finished(job_path)
    assert result["failed"] and "sleep" in result["msg"] and "float" in result["msg"], result
