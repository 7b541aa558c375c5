"""lock and journal against the stack's table in the sandbox: leases never overlap, the journal keeps every deploy."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import boto3
import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.controller import boot_id, process_stat
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import plain_client
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import from_item, to_item

from .ansible_harness import run_module, run_playbook

TABLE = "cutover-shop"
LOCK_KEY = {"pk": {"S": "service#shop"}, "sk": {"S": "lock"}}


def stored_lock(aws):
    item = aws.dynamodb.get_item(TableName=TABLE, Key=LOCK_KEY, ConsistentRead=True).get("Item")
    return from_item(item) if item else None


def token_of(owner):
    """The token of the test run named ``owner`` (a run's token is unique; the tests derive it from the name)."""
    return f"{owner}-token-0001"


def write_lock(aws, owner, expires_in, purpose=None, lease_seconds=60, deployment_id=None):
    """A lease as another run would have left it (expires_in may be negative: a crashed run's lease)."""
    now = int(time.time())
    item = {
        "pk": "service#shop",
        "sk": "lock",
        "kind": "lock",
        "service": "shop",
        "owner": owner,
        "token": token_of(owner),
        "acquired_at": isoformat(utcnow()),
        "renewed_at": isoformat(utcnow()),
        "expires_at": now + expires_in,
        "lease_seconds": lease_seconds,
        "takeovers": [],
    }
    if purpose:
        item["purpose"] = purpose
    if deployment_id:
        item["deployment_id"] = deployment_id
    aws.dynamodb.put_item(TableName=TABLE, Item=to_item(item))
    return item


def deployments_in_table(aws):
    items = aws.dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": "service#shop"}, ":prefix": {"S": "deploy#"}},
    )["Items"]
    return [from_item(item) for item in items]


def run_tasks(module, tasks, sandbox):
    """Several tasks of one module in one playbook run (each may fail); their results in order."""
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": f"{module} {index}", module: args, "ignore_errors": True} for index, args in enumerate(tasks)],
    }
    document = run_playbook([play], sandbox.endpoint)
    return [task["hosts"]["localhost"] for task in document["plays"][0]["tasks"]]


@pytest.fixture
def table(provisioned):
    """The shop table with no lock in it."""
    _outputs, aws = provisioned
    aws.dynamodb.delete_item(TableName=TABLE, Key=LOCK_KEY)
    return aws


def lock(endpoint, owner, check=False, diff=False, **args):
    args = {"service": "shop", "owner": owner, "token": token_of(owner), **args}
    return run_module("cutover.bluegreen.lock", args, endpoint, check=check, diff=diff)


# -- lock ---------------------------------------------------------------------------------
def test_acquire_check_mode_then_real_then_again(table, sandbox):
    result = lock(sandbox.endpoint, "run-1", check=True, diff=True, purpose="release 7", lease_seconds=600)
    assert not result.get("failed"), result
    assert (result["changed"], result["operation"]) == (True, "acquire")
    assert result["lock"]["owner"] == "run-1"
    assert result["diff"]["before"] == {} and result["diff"]["after"]["owner"] == "run-1"
    assert stored_lock(table) is None  # check mode wrote nothing

    started = int(time.time())
    result = lock(sandbox.endpoint, "run-1", purpose="release 7", lease_seconds=600)
    assert not result.get("failed"), result
    assert (result["changed"], result["operation"], result["table_name"]) == (True, "acquire", TABLE)
    item = stored_lock(table)
    assert (item["owner"], item["purpose"], item["lease_seconds"]) == ("run-1", "release 7", 600)
    assert started + 600 <= item["expires_at"] <= int(time.time()) + 600
    assert result["lock"]["expires_at"] == lease.iso_epoch(item["expires_at"])
    assert result["lock"]["expired"] is False

    again = lock(sandbox.endpoint, "run-1", purpose="release 7", lease_seconds=600)
    assert not again.get("failed"), again
    assert (again["changed"], again["operation"]) == (False, "unchanged")
    assert stored_lock(table) == item


def test_another_run_is_refused_naming_holder_purpose_since_until_and_how_to_take_over(table, sandbox):
    held = write_lock(table, "run-1", 900, purpose="deploy v7 to green")
    expiry = lease.iso_epoch(held["expires_at"])
    for check in (True, False):
        result = lock(sandbox.endpoint, "run-2", check=check)
        assert result.get("failed"), result
        assert result["msg"].startswith(f"service shop is locked by run-1 (deploy v7 to green) since {held['acquired_at']}, until {expiry}")
        assert result["msg"].endswith(f"run again with -e takeover={token_of('run-1')}")
        assert (result["holder"], result["holder_token"], result["expires_at"]) == ("run-1", token_of("run-1"), expiry)
        assert stored_lock(table) == held
    # the same owner with another token is another run; a takeover naming someone else is refused
    result = run_module("cutover.bluegreen.lock", {"service": "shop", "owner": "run-1", "token": "run-1-other-run-02"}, sandbox.endpoint)
    assert result.get("failed") and "service shop is locked by run-1" in result["msg"]
    result = lock(sandbox.endpoint, "run-2", takeover="run-3")
    assert result.get("failed") and result["msg"].startswith("takeover=run-3 does not name the holder of the lock")
    assert stored_lock(table) == held


def test_renewal_near_expiry_keeps_the_acquisition_time(table, sandbox):
    held = write_lock(table, "run-1", 100, lease_seconds=1800)
    result = lock(sandbox.endpoint, "run-1", lease_seconds=1800)
    assert not result.get("failed"), result
    assert (result["changed"], result["operation"]) == (True, "renew")
    item = stored_lock(table)
    assert item["acquired_at"] == held["acquired_at"]
    assert item["expires_at"] >= held["expires_at"] + 1600


def dynamodb_client(endpoint):
    return plain_client(
        boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    )


def test_two_runs_racing_never_both_hold_the_lock(table, sandbox):
    """Three runs race for the lock in each of 20 rounds: exactly one wins each round.

    DynamoDB evaluates a write's condition and writes atomically per item; the sandbox does too.
    """
    owners = ("racer-a", "racer-b", "racer-c")
    clients = {owner: dynamodb_client(sandbox.endpoint) for owner in owners}
    reader = dynamodb_client(sandbox.endpoint)
    wins = dict.fromkeys(owners, 0)
    for round_ in range(20):
        barrier = threading.Barrier(len(owners))
        outcome = {}

        def contend(owner, outcome=outcome, barrier=barrier):
            barrier.wait()
            try:
                outcome[owner] = lease.acquire(clients[owner], TABLE, "shop", owner, token_of(owner), 300)
            except CutoverError as exc:
                outcome[owner] = exc

        threads = [threading.Thread(target=contend, args=(owner,)) for owner in owners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        winners = [owner for owner in owners if isinstance(outcome[owner], dict)]
        assert len(winners) == 1, (round_, outcome)
        (winner,) = winners
        wins[winner] += 1
        assert outcome[winner]["changed"] and outcome[winner]["operation"] == "acquire"
        for loser in owners:
            if loser != winner:
                assert f"service shop is locked by {winner}" in outcome[loser].message
                with pytest.raises(lease.LostLock):  # and cannot release the winner's lease
                    lease.release(clients[loser], TABLE, "shop", token_of(loser))
        assert lease.read(reader, TABLE, "shop")["owner"] == winner
        assert lease.release(clients[winner], TABLE, "shop", token_of(winner))["changed"] is True
        assert lease.read(reader, TABLE, "shop") is None
    assert sum(wins.values()) == 20


def test_an_expired_lease_is_taken_over_without_any_option(table, sandbox):
    crashed = write_lock(table, "run-1", -30, purpose="deploy v6 to blue")
    result = lock(sandbox.endpoint, "run-2", check=True)
    assert (result["changed"], result["operation"]) == (True, "take_over")
    assert stored_lock(table) == crashed

    result = lock(sandbox.endpoint, "run-2", purpose="deploy v7 to blue")
    assert not result.get("failed"), result
    assert (result["changed"], result["operation"]) == (True, "take_over")
    assert result["previous"]["owner"] == "run-1" and result["previous"]["expired"] is True
    item = stored_lock(table)
    assert (item["owner"], item["token"], item["purpose"]) == ("run-2", token_of("run-2"), "deploy v7 to blue")
    (taken,) = item["takeovers"]
    assert (taken["owner"], taken["token"], taken["purpose"], taken["reason"], taken["taken_by"]) == (
        "run-1",
        token_of("run-1"),
        "deploy v6 to blue",
        "expired",
        "run-2",
    )
    assert result["lock"]["takeovers"] == item["takeovers"]


@pytest.mark.parametrize("name", ["owner", "token"])
def test_takeover_by_name_takes_a_live_lease_and_the_old_run_cannot_release_or_renew_it(table, sandbox, name):
    live = write_lock(table, "run-1", 1200, purpose="deploy v7 to green")
    holder = "run-1" if name == "owner" else token_of("run-1")
    result = lock(sandbox.endpoint, "run-2", check=True, diff=True, takeover=holder)
    assert (result["changed"], result["operation"]) == (True, "take_over_named")
    assert (result["diff"]["before"]["owner"], result["diff"]["after"]["owner"]) == ("run-1", "run-2")
    assert stored_lock(table) == live

    result = lock(sandbox.endpoint, "run-2", takeover=holder, purpose="rollback to blue")
    assert not result.get("failed"), result
    assert (result["changed"], result["operation"]) == (True, "take_over_named")
    item = stored_lock(table)
    assert item["token"] == token_of("run-2")
    (taken,) = item["takeovers"]
    assert (taken["owner"], taken["reason"], taken["taken_by"]) == ("run-1", "named", "run-2")
    assert taken["expires_at"] == lease.iso_epoch(live["expires_at"])
    # the run whose lease was taken fails to release (or take) it
    result = lock(sandbox.endpoint, "run-1", state="released")
    assert result.get("failed") and result["lost_lock"] and "is held by run-2" in result["msg"]
    result = lock(sandbox.endpoint, "run-1")
    assert result.get("failed") and "locked by run-2" in result["msg"]
    assert stored_lock(table) == item


def test_release_only_by_the_run_that_holds_the_lease(table, sandbox):
    held = write_lock(table, "run-1", 600)
    result = lock(sandbox.endpoint, "run-2", state="released")
    assert result.get("failed"), result
    assert result["msg"].startswith("lost the lock: the lock of service shop is held by run-1")
    assert result["msg"].endswith(f"not by this run (token {token_of('run-2')}); it was not released")
    assert stored_lock(table) == held

    result = lock(sandbox.endpoint, "run-1", state="released", check=True, diff=True)
    assert (result["changed"], result["operation"], result["lock"]) == (True, "release", None)
    assert result["diff"]["before"]["owner"] == "run-1" and result["diff"]["after"] == {}
    assert stored_lock(table) == held

    result = lock(sandbox.endpoint, "run-1", state="released")
    assert (result["changed"], result["operation"]) == (True, "release")
    assert stored_lock(table) is None
    result = lock(sandbox.endpoint, "run-1", state="released")
    assert not result.get("failed"), result
    assert (result["changed"], result["operation"]) == (False, "not_held")


def test_the_heartbeat_renews_while_its_controller_lives_and_stops_when_it_dies(table, sandbox, tmp_path):
    """``state=held`` as a background job, the way the roles start it, watching a process that stands for the controller."""
    controller = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        acquired = lock(sandbox.endpoint, "run-1", lease_seconds=10, purpose="deploy v9 to green")
        assert acquired["operation"] == "acquire", acquired
        play = {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "hold",
                    "cutover.bluegreen.lock": {
                        "service": "shop",
                        "owner": "run-1",
                        "token": token_of("run-1"),
                        "state": "held",
                        "lease_seconds": 10,
                        "controller": {"pid": controller.pid, "started": process_stat(controller.pid)[1], "host": boot_id()},
                    },
                    "async": 600,
                    "poll": 0,
                }
            ],
        }
        run_playbook([play], sandbox.endpoint, ANSIBLE_ASYNC_DIR=str(tmp_path))
        renewals = {stored_lock(table)["renewed_at"]}
        deadline = time.monotonic() + 30
        while len(renewals) < 3 and time.monotonic() < deadline:  # renewed every 2.5 s
            renewals.add(stored_lock(table)["renewed_at"])
            time.sleep(0.5)
        assert len(renewals) >= 3, renewals
    finally:
        controller.kill()
        controller.wait()
    killed = time.monotonic()
    job = wait_for_job(tmp_path, timeout=15)
    assert time.monotonic() - killed < 5  # noticed within a few looks of the death
    assert job["held"]["stopped"] == "controller_gone" and job["held"]["renewals"] >= 2
    frozen = stored_lock(table)
    time.sleep(3)
    assert stored_lock(table) == frozen  # nobody renews it any more: it expires by itself


def wait_for_job(directory, timeout):
    """The result of the one async job in ``directory`` once it finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in directory.iterdir():
            try:
                result = json.loads(path.read_text())
            except ValueError:
                continue
            if result.get("finished", True) and "started" not in result:
                return result
        time.sleep(0.2)
    raise AssertionError(f"no async job finished in {directory}: {[p.read_text()[:200] for p in directory.iterdir()]}")


LOCK_BAD_INPUT = {
    "bad token": ({"token": "x y"}, "token must name one run"),
    "blank takeover": ({"takeover": "  "}, "takeover must name the holder"),
    "held without controller": ({"state": "held"}, "state is held but all of the following are missing: controller"),
    "lease_seconds 0": ({"lease_seconds": 0}, "lease_seconds must be greater than 0, got 0"),
    "negative lease_seconds": ({"lease_seconds": -60}, "lease_seconds must be greater than 0, got -60"),
    "huge lease_seconds": ({"lease_seconds": 10**7}, "lease_seconds must be at most 604800"),
    "empty owner": ({"owner": ""}, "owner must be a non-empty string"),
    "unknown state": ({"state": "locked"}, "value of state must be one of: acquired, held, released"),
    "unknown table": (
        {"table_name": "cutover-nosuch"},
        "the table cutover-nosuch does not exist; is the stack of service shop provisioned",
    ),
    "unknown service": ({"service": "nosuch"}, "the table cutover-nosuch does not exist; is the stack of service nosuch provisioned"),
}


@pytest.fixture(scope="module")
def lock_bad_input(provisioned, sandbox):
    """Every bad lock input, run as the tasks of one playbook; then the table must hold no lock."""
    _outputs, aws = provisioned
    aws.dynamodb.delete_item(TableName=TABLE, Key=LOCK_KEY)
    names = list(LOCK_BAD_INPUT)
    base = {"service": "shop", "owner": "run-1", "token": token_of("run-1")}
    results = run_tasks("cutover.bluegreen.lock", [{**base, **LOCK_BAD_INPUT[n][0]} for n in names], sandbox)
    return dict(zip(names, results, strict=True)), stored_lock(aws)


@pytest.mark.parametrize("case", list(LOCK_BAD_INPUT))
def test_lock_bad_input_fails_and_writes_nothing(lock_bad_input, case):
    results, lock_after = lock_bad_input
    result = results[case]
    assert result.get("failed"), result
    assert LOCK_BAD_INPUT[case][1] in result["msg"]
    assert lock_after is None


# -- journal ------------------------------------------------------------------------------
def journal(endpoint, check=False, diff=False, **args):
    return run_module("cutover.bluegreen.journal", {"service": "shop", **args}, endpoint, check=check, diff=diff)


def test_journal_start_steps_finish(table, sandbox):
    before = deployments_in_table(table)
    record = {"colors": {"from": "blue", "to": "green"}, "versions": {"from": {"image_id": "ami-1"}, "to": {"image_id": "ami-2"}}}
    result = journal(sandbox.endpoint, check=True, state="started", owner="run-1", record=record)
    assert not result.get("failed"), result
    assert result["changed"] and result["deployment"]["outcome"] == "in_progress"
    assert deployments_in_table(table) == before  # check mode wrote nothing

    result = journal(sandbox.endpoint, state="started", owner="run-1", record=record)
    assert not result.get("failed"), result
    deployment_id = result["deployment_id"]
    assert result["changed"] and result["deployment"]["deployment_id"] == deployment_id
    (item,) = [i for i in deployments_in_table(table) if i["deployment_id"] == deployment_id]
    assert item["sk"] == "deploy#" + deployment_id
    assert (item["outcome"], item["owner"], item["record"]) == ("in_progress", "run-1", record)
    assert "expires_at" not in item  # journal items are kept

    result = journal(sandbox.endpoint, state="step", deployment_id=deployment_id, step="rollout", status="started")
    assert result["changed"] and result["deployment"]["steps"]["rollout"]["status"] == "started"
    result = journal(sandbox.endpoint, state="step", deployment_id=deployment_id, step="rollout", status="started")
    assert result["changed"] is False
    result = journal(sandbox.endpoint, check=True, state="step", deployment_id=deployment_id, step="rollout")
    assert result["changed"] and result["deployment"]["steps"]["rollout"]["status"] == "finished"
    stored = next(i for i in deployments_in_table(table) if i["deployment_id"] == deployment_id)
    assert stored["steps"]["rollout"]["status"] == "started"
    result = journal(sandbox.endpoint, state="step", deployment_id=deployment_id, step="rollout", record={"image_id": "ami-2"})
    assert result["changed"]
    rollout = result["deployment"]["steps"]["rollout"]
    assert rollout["status"] == "finished" and rollout["seconds"] >= 0 and rollout["finished"] >= rollout["started"]
    assert result["deployment"]["record"]["image_id"] == "ami-2" and result["deployment"]["record"]["colors"] == record["colors"]
    result = journal(sandbox.endpoint, state="step", deployment_id=deployment_id, step="switch")
    assert result["deployment"]["step_order"] == ["rollout", "switch"]

    result = journal(
        sandbox.endpoint, diff=True, state="finished", deployment_id=deployment_id, outcome="succeeded", summary="green is live"
    )
    assert not result.get("failed"), result
    assert result["changed"]
    assert (result["diff"]["before"]["outcome"], result["diff"]["after"]["outcome"]) == ("in_progress", "succeeded")
    deployment = result["deployment"]
    assert deployment["outcome"] == "succeeded" and deployment["summary"] == "green is live"
    assert deployment["duration_seconds"] == deployment["durations"]["deployment_seconds"] >= 0
    (item,) = [i for i in deployments_in_table(table) if i["deployment_id"] == deployment_id]
    assert (item["outcome"], item["finished_at"]) == ("succeeded", deployment["finished_at"])

    again = journal(sandbox.endpoint, state="finished", deployment_id=deployment_id, outcome="succeeded", summary="green is live")
    assert not again.get("failed"), again
    assert again["changed"] is False
    assert [i for i in deployments_in_table(table) if i["deployment_id"] == deployment_id] == [item]


def test_journal_start_with_an_id_is_idempotent(table, sandbox):
    deployment_id = "20250101T000000Z-awx-17"
    first = journal(sandbox.endpoint, state="started", deployment_id=deployment_id, owner="awx-17")
    assert not first.get("failed"), first
    assert first["changed"] and first["deployment_id"] == deployment_id
    second = journal(sandbox.endpoint, state="started", deployment_id=deployment_id, owner="awx-17")
    assert second["changed"] is False
    assert len([i for i in deployments_in_table(table) if i["deployment_id"] == deployment_id]) == 1


JOURNAL_BAD_INPUT = {
    "lock acquire when finishing": (
        {
            "state": "finished",
            "deployment_id": "20260101T120000Z-nosuch",
            "outcome": "failed",
            "owner": "run-1",
            "token": "run-1-token-0001",
            "lock": "acquire",
        },
        "lock=acquire opens a deployment under the lock: it needs state=started, not finished",
    ),
    "lock release when starting": (
        {"state": "started", "owner": "run-1", "token": "run-1-token-0001", "lock": "release"},
        "lock=release gives the lock back after a step or a finish: it needs state=step or finished, not started",
    ),
    "lock without token": ({"state": "started", "owner": "run-1", "lock": "acquire"}, "lock=acquire needs the token of the run"),
    "lock without owner": ({"state": "started", "token": "run-1-token-0001", "lock": "acquire"}, "owner must be a non-empty string"),
    "lock with a bad lease": (
        {"state": "started", "owner": "run-1", "token": "run-1-token-0001", "lock": "acquire", "lease_seconds": 0},
        "lease_seconds must be greater than 0, got 0",
    ),
    "step without deployment_id": (
        {"state": "step", "step": "rollout"},
        "state is step but all of the following are missing: deployment_id",
    ),
    "finished without outcome": ({"state": "finished", "deployment_id": "20260101T120000Z-1a2b3c4d"}, "missing: outcome"),
    "invalid outcome": (
        {"state": "finished", "deployment_id": "20260101T120000Z-1a2b3c4d", "outcome": "great"},
        "value of outcome must be one of: succeeded, failed, rolled_back, interrupted, got: great",
    ),
    "malformed id": ({"state": "step", "deployment_id": "42", "step": "rollout"}, "deployment_id '42' is not a deployment id"),
    "malformed step": (
        {"state": "step", "deployment_id": "20260101T120000Z-1a2b3c4d", "step": "roll out"},
        "step 'roll out' is not a step name",
    ),
    "unknown deployment": (
        {"state": "step", "deployment_id": "20260101T120000Z-nosuch", "step": "rollout"},
        "deployment 20260101T120000Z-nosuch of service shop is not in the journal (table cutover-shop)",
    ),
    "unknown table": ({"state": "started", "table_name": "cutover-nosuch"}, "the table cutover-nosuch does not exist"),
}


@pytest.fixture(scope="module")
def journal_bad_input(provisioned, sandbox):
    """Every bad journal input, run as the tasks of one playbook; the journal before and after."""
    _outputs, aws = provisioned
    before = deployments_in_table(aws)
    names = list(JOURNAL_BAD_INPUT)
    results = run_tasks("cutover.bluegreen.journal", [{"service": "shop", **JOURNAL_BAD_INPUT[n][0]} for n in names], sandbox)
    return dict(zip(names, results, strict=True)), before, deployments_in_table(aws)


@pytest.mark.parametrize("case", list(JOURNAL_BAD_INPUT))
def test_journal_bad_input_fails_and_writes_nothing(journal_bad_input, case):
    results, before, after = journal_bad_input
    result = results[case]
    assert result.get("failed"), result
    assert JOURNAL_BAD_INPUT[case][1] in result["msg"]
    assert after == before


def test_journal_step_of_a_deployment_started_in_check_mode(table, sandbox):
    result = journal(sandbox.endpoint, check=True, state="step", deployment_id="20260101T120000Z-checkonly", step="rollout")
    assert not result.get("failed"), result
    assert result["changed"] and result["deployment"] is None
    assert any("may have been started in check mode" in warning for warning in result.get("warnings", []))


def under_lock(owner, **args):
    return {"owner": owner, "token": token_of(owner), **args}


def test_journal_opens_and_closes_under_the_lock(table, sandbox):
    before = deployments_in_table(table)
    write_lock(table, "other-run", 600, purpose="deploy v8 to green")
    refused = journal(sandbox.endpoint, state="started", lock="acquire", purpose="deploy v9", **under_lock("run-9"))
    assert refused.get("failed") and "other-run" in refused["msg"] and "-e takeover=other-run-token-0001" in refused["msg"]
    assert refused["holder"] == "other-run" and refused["expires_at"]
    assert deployments_in_table(table) == before  # no entry without the lock
    assert stored_lock(table)["owner"] == "other-run"

    table.dynamodb.delete_item(TableName=TABLE, Key=LOCK_KEY)
    checked = journal(sandbox.endpoint, check=True, state="started", lock="acquire", purpose="deploy v9", **under_lock("run-9"))
    assert checked["changed"] and checked["lock"]["owner"] == "run-9"
    assert stored_lock(table) is None and deployments_in_table(table) == before

    opened = journal(sandbox.endpoint, state="started", lock="acquire", lease_seconds=600, purpose="deploy v9", **under_lock("run-9"))
    assert not opened.get("failed"), opened
    assert opened["changed"] and opened["lock"]["owner"] == "run-9"
    deployment_id = opened["deployment_id"]
    held = stored_lock(table)
    assert (held["owner"], held["token"], held["purpose"], held["lease_seconds"]) == ("run-9", token_of("run-9"), "deploy v9", 600)
    assert held["deployment_id"] == deployment_id  # the lease names the entry it covers
    assert [i["outcome"] for i in deployments_in_table(table) if i["deployment_id"] == deployment_id] == ["in_progress"]

    # another run cannot write the entry nor release the lock: it is refused before it writes
    stolen = journal(sandbox.endpoint, state="step", deployment_id=deployment_id, step="canary", lock="release", **under_lock("run-10"))
    assert stolen.get("failed") and stolen["lost_lock"] and stored_lock(table)["owner"] == "run-9"
    (entry,) = [i for i in deployments_in_table(table) if i["deployment_id"] == deployment_id]
    assert "canary" not in entry["steps"]

    closed = journal(
        sandbox.endpoint, state="finished", deployment_id=deployment_id, outcome="succeeded", lock="release", **under_lock("run-9")
    )
    assert not closed.get("failed"), closed
    assert closed["changed"] and closed["lock"] is None
    assert stored_lock(table) is None
    again = journal(
        sandbox.endpoint, state="finished", deployment_id=deployment_id, outcome="succeeded", lock="release", **under_lock("run-9")
    )
    assert not again.get("failed") and again["changed"] is False and again["lock"] is None
    assert [i["outcome"] for i in deployments_in_table(table) if i["deployment_id"] == deployment_id] == ["succeeded"]


def entry_of(aws, deployment_id):
    (item,) = [i for i in deployments_in_table(aws) if i["deployment_id"] == deployment_id]
    return item


def dead_run(aws, sandbox, owner, expires_in, **record):
    """A run that opened its entry under the lock and died: its entry in progress, its lease left as it was."""
    opened = journal(sandbox.endpoint, state="started", lock="acquire", purpose="deploy v3 to green", record=record, **under_lock(owner))
    assert not opened.get("failed"), opened
    item = stored_lock(aws)
    item["expires_at"] = int(time.time()) + expires_in
    aws.dynamodb.put_item(TableName=TABLE, Item=to_item(item))
    return opened["deployment_id"]


def test_the_run_that_takes_over_closes_the_dead_runs_entry_as_interrupted(table, sandbox):
    dead = dead_run(table, sandbox, "dead-run", -5, kind="deploy", phase="full")
    opened = journal(sandbox.endpoint, state="started", lock="acquire", purpose="rollback to blue", **under_lock("rescuer"))
    assert not opened.get("failed"), opened
    assert opened["settled"] == {
        "deployment_id": dead,
        "action": "interrupt",
        "reason": f"deployment {dead} was left unfinished by its run",
    }
    entry = entry_of(table, dead)
    assert entry["outcome"] == "interrupted" and entry["finished_at"]
    assert entry["summary"].startswith("interrupted: its run dead-run stopped; rescuer took the lock over after its lease expired at ")
    assert entry["summary"].endswith(f"for rollback to blue (deployment {opened['deployment_id']})")
    by = entry["record"]["interrupted_by"]
    assert (by["owner"], by["deployment_id"], by["reason"]) == ("rescuer", opened["deployment_id"], "expired")
    took = entry_of(table, opened["deployment_id"])["record"]["took_over"]
    assert (took["owner"], took["deployment_id"], took["reason"]) == ("dead-run", dead, "expired")
    shown = run_module("cutover.bluegreen.pair_info", {"service": "shop", "deployments": 5}, sandbox.endpoint)
    assert {d["deployment_id"]: d["outcome"] for d in shown["deployments"]}[dead] == "interrupted"
    journal(
        sandbox.endpoint,
        state="finished",
        deployment_id=opened["deployment_id"],
        outcome="succeeded",
        lock="release",
        **under_lock("rescuer"),
    )


def test_a_rerun_of_the_same_release_adopts_the_dead_runs_entry(table, sandbox):
    dead = dead_run(table, sandbox, "dead-run", -5, kind="deploy", phase="full")
    opened = journal(
        sandbox.endpoint, state="started", deployment_id=dead, lock="acquire", purpose="deploy v3 to green", **under_lock("rerun")
    )
    assert not opened.get("failed"), opened
    assert opened["settled"]["action"] == "adopt" and opened["deployment_id"] == dead
    entry = entry_of(table, dead)
    assert entry["outcome"] == "in_progress" and entry["owner"] == "rerun"
    assert [(r["by"], r["from"]) for r in entry["record"]["resumed"]] == [("rerun", "dead-run")]
    assert stored_lock(table)["deployment_id"] == dead
    journal(sandbox.endpoint, state="finished", deployment_id=dead, outcome="succeeded", lock="release", **under_lock("rerun"))
    assert entry_of(table, dead)["outcome"] == "succeeded"


def test_a_takeover_by_name_with_the_lock_module_interrupts_too_but_never_a_waiting_canary(table, sandbox):
    dead = dead_run(table, sandbox, "dead-run", 600, kind="deploy", phase="full")  # killed; its lease still live
    taken = lock(sandbox.endpoint, "teardown-run", takeover=token_of("dead-run"), purpose="teardown of expired standbys")
    assert not taken.get("failed"), taken
    assert taken["operation"] == "take_over_named" and taken["interrupted"]["action"] == "interrupt"
    entry = entry_of(table, dead)
    assert entry["outcome"] == "interrupted" and entry["record"]["interrupted_by"]["reason"] == "named"
    assert "teardown-run took the lock from it by name for teardown of expired standbys" in entry["summary"]
    lock(sandbox.endpoint, "teardown-run", state="released")

    # a canary that waits for its promotion: its run released the lock; a lease naming it is never taken as its death
    canary = dead_run(table, sandbox, "canary-run", -5, kind="deploy", phase="canary")
    journal(sandbox.endpoint, state="step", deployment_id=canary, step="canary")
    taken = lock(sandbox.endpoint, "teardown-run", purpose="teardown of expired standbys")
    assert taken["interrupted"] == {
        "deployment_id": canary,
        "action": "leave",
        "reason": f"deployment {canary} is a canary waiting for promotion",
    }
    assert entry_of(table, canary)["outcome"] == "in_progress"
    lock(sandbox.endpoint, "teardown-run", state="released")
    journal(sandbox.endpoint, state="finished", deployment_id=canary, outcome="rolled_back")


def test_a_journal_write_that_fails_under_the_lock_gives_the_lock_back(table, sandbox):
    from ansible_collections.cutover.bluegreen.plugins.module_utils import journal as journal_utils

    dynamodb = dynamodb_client(sandbox.endpoint)
    with pytest.raises(CutoverError, match="not a deployment id"):
        journal_utils.open_under_lock(dynamodb, TABLE, "shop", "run-11", token_of("run-11"), 60, record={"x": 1}, deployment_id="bad")
    assert stored_lock(table) is None  # refused before the lock was taken

    def failing_write():
        raise CutoverError("the table is read-only today")

    lease.acquire(dynamodb, TABLE, "shop", "run-11", token_of("run-11"), 60)
    with pytest.raises(CutoverError, match="read-only"):
        journal_utils.close_under_lock(dynamodb, TABLE, "shop", token_of("run-11"), failing_write)
    assert stored_lock(table) is None  # released although the write failed


# -- pair_info ------------------------------------------------------------------------------
def test_pair_info_shows_the_lock_holder_and_recent_deployments(table, sandbox):
    write_lock(table, "run-9", 600, purpose="release 9")
    for stamp in ("20240101T000000Z-a", "20240301T000000Z-c", "20240201T000000Z-b"):
        result = journal(sandbox.endpoint, state="started", deployment_id=stamp)
        assert not result.get("failed"), result
    journal(sandbox.endpoint, state="finished", deployment_id="20240301T000000Z-c", outcome="rolled_back")
    everything = sorted((i["deployment_id"] for i in deployments_in_table(table)), reverse=True)

    result = run_module("cutover.bluegreen.pair_info", {"service": "shop", "deployments": 50}, sandbox.endpoint)
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["lock"]["owner"] == "run-9" and result["lock"]["purpose"] == "release 9" and result["lock"]["expired"] is False
    assert [d["deployment_id"] for d in result["deployments"]] == everything  # newest first
    assert everything.index("20240301T000000Z-c") < everything.index("20240201T000000Z-b") < everything.index("20240101T000000Z-a")
    (rolled_back,) = [d for d in result["deployments"] if d["deployment_id"] == "20240301T000000Z-c"]
    assert rolled_back["outcome"] == "rolled_back" and rolled_back["durations"]["deployment_seconds"] > 0
    assert result["table_name"] == TABLE

    result = run_module("cutover.bluegreen.pair_info", {"service": "shop", "deployments": 2}, sandbox.endpoint)
    assert [d["deployment_id"] for d in result["deployments"]] == everything[:2]
