"""The modules run in-process on a local connection and as modules elsewhere, with the same results.

One playbook runs each task twice: on the local connection (the module's code in the task's worker) and over
``module_local`` (tests/integration/connection_plugins: the same machine under another name, where the module
runs as a module). The in-process tasks get a Python interpreter that does not exist, so a module started
for them would fail: their results come from the worker.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from tests.conftest import REPO

from .ansible_harness import run_playbook

CONNECTION_PLUGINS = str(REPO / "tests" / "integration" / "connection_plugins")
IN_PROCESS = {"ansible_connection": "local", "ansible_python_interpreter": "/nonexistent/python"}
AS_MODULE = {"ansible_connection": "module_local"}
# What differs between two runs of the same task whatever the path: clocks and the play's own keys.
VOLATILE = {
    "switch_seconds",
    "switched_at",
    "apply_seconds",
    "verify_seconds",
    "elapsed_seconds",
    "remaining_seconds",
    "seconds_left",
    "_ansible_no_log",
    "exception",
    # ansible-core's notice that amazon.aws passes ``warnings`` to ``exit_json`` (which it does to list them
    # on ansible-core 2.19 and later): about the module process, not the module; the warnings are compared
    "deprecations",
    # a background job's own: its id, file, process and how long it was waited for
    "ansible_job_id",
    "results_file",
    "child_pid",
    "waited_for_job",
}

CHECK_AND_DIFF = {"check_mode": True, "diff": True}
LEASE = {"owner": "holder", "token": "token-holder", "lock": "acquire", "lease_seconds": 600, "purpose": "release 7"}
CASES = [
    ("pair_info", "cutover.bluegreen.pair_info", {"service": "shop", "deployments": 3}, {}),
    # the lock held by another run: the failure names the holder, with what the lock item says
    ("journal_held", "cutover.bluegreen.journal", {"service": "shop", "state": "started", "owner": "other", "token": "token-other"}, {}),
    # check mode and diff: the switch planned, every forwarder before and after
    ("switch_check", "cutover.bluegreen.switch", {"service": "shop", "to_color": "green", "force": True}, CHECK_AND_DIFF),
    # the module's own argument checks
    ("switch_bad", "cutover.bluegreen.switch", {"service": "shop", "to_color": "green", "weights": {"blue": 1, "green": 1}}, {}),
    ("traffic_bad", "cutover.bluegreen.traffic", {"service": "shop", "color": "green", "nosuch": 1}, {}),
    # a module of plain AnsibleModule (no AWS): nothing answers on port 9 of loopback
    ("smoke_refused", "cutover.bluegreen.smoke_test", {"url": "http://127.0.0.1:9/health", "retries": 1, "delay": 0}, {}),
    ("smoke_bad", "cutover.bluegreen.smoke_test", {"url": "http://127.0.0.1:9/", "retries": "-1"}, {}),
    # check mode: the idle colour has no release yet, so nothing is requested (as uri is skipped)
    ("smoke_check", "cutover.bluegreen.smoke_test", {"url": "http://127.0.0.1:9/"}, {"check_mode": True}),
]
HELD = {"service": "shop", "state": "held", "owner": LEASE["owner"], "token": LEASE["token"], "lease_seconds": 600}
# Background jobs (async, poll 0), waited for by job_wait: a heartbeat whose controller is gone stops at once;
# one whose controller lives (this test's process) holds until the job's time limit stops it.
JOBS = [
    ("heartbeat_gone", dict(HELD, controller={"pid": os.getpid(), "started": "0"}), 60),
    ("heartbeat_limit", dict(HELD, controller={"pid": os.getpid()}, hold_seconds=600), 2),
]


def tasks() -> list[dict[str, Any]]:
    listed = [
        {
            "name": "hold the lock",
            "cutover.bluegreen.journal": {"service": "shop", "state": "started", **LEASE},
            "vars": IN_PROCESS,
            "register": "held",
        }
    ]
    for name, module, args, keywords in CASES:
        for path, variables in (("in_process", IN_PROCESS), ("module", AS_MODULE)):
            arguments = dict(args, lock="acquire", lease_seconds=60) if name == "journal_held" else args
            listed.append({"name": f"{name} {path}", module: arguments, "vars": variables, "ignore_errors": True, **keywords})
    for name, arguments, limit in JOBS:
        for path, variables in (("in_process", IN_PROCESS), ("module", AS_MODULE)):
            job = f"job_{name}_{path}"
            start = {"cutover.bluegreen.lock": arguments, "async": limit, "poll": 0, "register": job, "changed_when": False}
            listed.append({"name": f"start {name} {path}", **start, "vars": variables})
            wait = {"jid": f"{{{{ {job}.ansible_job_id }}}}", "timeout": 30, "interval": 0.1}
            listed.append({"name": f"{name} {path}", "cutover.bluegreen.job_wait": wait, "ignore_errors": True})
    listed.append(
        {
            "name": "give the lock back",
            "cutover.bluegreen.journal": {
                "service": "shop",
                "state": "finished",
                "deployment_id": "{{ held.deployment_id }}",
                "outcome": "succeeded",
                "owner": LEASE["owner"],
                "token": LEASE["token"],
                "lock": "release",
            },
            "vars": IN_PROCESS,
        }
    )
    return listed


def comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, str):
        return re.sub(r"\b\d+ s\b", "N s", value)  # seconds left on the lease, counted down between the two
    return value


@pytest.fixture(scope="module")
def results(provisioned, sandbox) -> dict[str, dict[str, Any]]:
    play = {"hosts": "localhost", "gather_facts": False, "tasks": tasks()}
    document = run_playbook([play], sandbox.endpoint, ANSIBLE_CONNECTION_PLUGINS=CONNECTION_PLUGINS)
    found = {task["task"]["name"]: task["hosts"]["localhost"] for task in document["plays"][0]["tasks"]}
    assert not found["hold the lock"].get("failed"), found["hold the lock"]
    assert not found["give the lock back"].get("failed"), found["give the lock back"]
    return found


@pytest.mark.parametrize("name", [case[0] for case in CASES] + [job[0] for job in JOBS] + [f"start {job[0]}" for job in JOBS])
def test_in_process_and_module_give_the_same_result(results, name):
    in_process, module = results[f"{name} in_process"], results[f"{name} module"]
    assert comparable(in_process) == comparable(module)


def test_the_results_are_the_modules(results):
    pair = results["pair_info in_process"]
    assert not pair.get("failed"), pair
    assert pair["pair"]["live_color"] == "blue" and pair["lock"]["owner"] == "holder"
    assert pair["invocation"]["module_args"]["deployments"] == 3

    held = results["journal_held in_process"]
    assert held["failed"] and held["holder"] == "holder" and held["purpose"] == "release 7", held
    assert held["takeover_hint"] == "-e takeover=token-holder"

    planned = results["switch_check in_process"]
    assert not planned.get("failed") and planned["changed"] and planned["live_color"] == "green", planned
    assert planned["diff"]["before"] != planned["diff"]["after"]

    assert results["switch_bad in_process"]["msg"] == "parameters are mutually exclusive: to_color|weights"
    assert results["traffic_bad in_process"]["msg"].startswith("Unsupported parameters for (cutover.bluegreen.traffic) module: nosuch.")

    refused = results["smoke_refused in_process"]
    assert refused["failed"] and refused["attempts"] == 2 and refused["status"] is None, refused
    assert refused["msg"].startswith("the smoke test failed: GET http://127.0.0.1:9/health got no answer (")
    assert results["smoke_bad in_process"]["msg"] == "retries must be from 0 to 1000, got -1"
    checked = results["smoke_check in_process"]
    assert checked["skipped"] and not checked.get("failed") and not checked.get("changed"), checked

    gone = results["heartbeat_gone in_process"]
    assert not gone.get("failed") and gone["held"]["stopped"] == "controller_gone", gone
    assert gone["invocation"]["module_args"]["state"] == "held"
    started = results["start heartbeat_gone in_process"]
    assert started["started"] and not started["finished"] and started["results_file"].endswith("/" + started["ansible_job_id"])
    limited = results["heartbeat_limit in_process"]
    assert limited["failed"] and limited["msg"] == "Timeout exceeded" and limited["finished"], limited
