"""lock and journal against the stack's table in the sandbox: leases never overlap, the journal keeps every deploy."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import plain_client
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import from_item, to_item

from .ansible_harness import run_module, run_playbook

TABLE = "cutover-shop"
LOCK_KEY = {"pk": {"S": "service#shop"}, "sk": {"S": "lock"}}


def stored_lock(aws):
    item = aws.dynamodb.get_item(TableName=TABLE, Key=LOCK_KEY, ConsistentRead=True).get("Item")
    return from_item(item) if item else None


def write_lock(aws, owner, expires_in, purpose=None, lease_seconds=1800):
    """A lease as another run would have left it (expires_in may be negative: a crashed run's lease)."""
    now = int(time.time())
    item = {
        "pk": "service#shop",
        "sk": "lock",
        "kind": "lock",
        "service": "shop",
        "owner": owner,
        "acquired_at": isoformat(utcnow()),
        "renewed_at": isoformat(utcnow()),
        "expires_at": now + expires_in,
        "lease_seconds": lease_seconds,
        "takeovers": [],
    }
    if purpose:
        item["purpose"] = purpose
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
    return run_module("cutover.bluegreen.lock", {"service": "shop", "owner": owner, **args}, endpoint, check=check, diff=diff)


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


def test_another_owner_is_refused_naming_holder_and_expiry(table, sandbox):
    held = write_lock(table, "run-1", 900, purpose="release 7")
    expiry = lease.iso_epoch(held["expires_at"])
    for check in (True, False):
        result = lock(sandbox.endpoint, "run-2", check=check)
        assert result.get("failed"), result
        assert "service shop is locked by run-1" in result["msg"] and "for release 7" in result["msg"]
        assert f"until {expiry}" in result["msg"]
        assert (result["holder"], result["expires_at"]) == ("run-1", expiry)
        assert stored_lock(table) == held
    # takeover is for expired leases only
    result = lock(sandbox.endpoint, "run-2", takeover=True)
    assert result.get("failed") and "locked by run-1" in result["msg"]
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


def test_two_owners_racing_never_both_hold_the_lock(table, sandbox):
    """Three owners race for the lock in each of 20 rounds: exactly one wins each round.

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
                outcome[owner] = lease.acquire(clients[owner], TABLE, "shop", owner, 300)
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
        assert lease.read(reader, TABLE, "shop")["owner"] == winner
        assert lease.release(clients[winner], TABLE, "shop", winner)["changed"] is True
        assert lease.read(reader, TABLE, "shop") is None
    assert sum(wins.values()) == 20


def test_expired_lease_is_taken_over_unless_takeover_is_off(table, sandbox):
    crashed = write_lock(table, "run-1", -30, purpose="release 6")
    result = lock(sandbox.endpoint, "run-2", takeover=False)
    assert result.get("failed"), result
    assert "locked by run-1" in result["msg"] and "expired at" in result["msg"] and "set takeover" in result["msg"]
    assert stored_lock(table) == crashed

    result = lock(sandbox.endpoint, "run-2", check=True)
    assert (result["changed"], result["operation"]) == (True, "take_over")
    assert stored_lock(table) == crashed

    result = lock(sandbox.endpoint, "run-2", purpose="release 7")
    assert not result.get("failed"), result
    assert (result["changed"], result["operation"]) == (True, "take_over")
    assert result["previous"]["owner"] == "run-1" and result["previous"]["expired"] is True
    item = stored_lock(table)
    assert item["owner"] == "run-2" and item["purpose"] == "release 7"
    (taken,) = item["takeovers"]
    assert (taken["owner"], taken["purpose"], taken["reason"], taken["taken_by"]) == ("run-1", "release 6", "expired", "run-2")
    assert result["lock"]["takeovers"] == item["takeovers"]


def test_force_takeover_of_a_live_lease_records_the_previous_holder(table, sandbox):
    live = write_lock(table, "run-1", 1200, purpose="release 7")
    result = lock(sandbox.endpoint, "run-2", check=True, diff=True, force_takeover=True)
    assert (result["changed"], result["operation"]) == (True, "force_takeover")
    assert (result["diff"]["before"]["owner"], result["diff"]["after"]["owner"]) == ("run-1", "run-2")
    assert stored_lock(table) == live

    result = lock(sandbox.endpoint, "run-2", force_takeover=True)
    assert not result.get("failed"), result
    assert (result["changed"], result["operation"]) == (True, "force_takeover")
    item = stored_lock(table)
    assert item["owner"] == "run-2"
    (taken,) = item["takeovers"]
    assert (taken["owner"], taken["reason"], taken["taken_by"]) == ("run-1", "forced", "run-2")
    assert taken["expires_at"] == lease.iso_epoch(live["expires_at"])
    # the run whose lease was taken now fails to release (or renew) it
    result = lock(sandbox.endpoint, "run-1", state="released")
    assert result.get("failed") and "held by run-2" in result["msg"]
    result = lock(sandbox.endpoint, "run-1")
    assert result.get("failed") and "locked by run-2" in result["msg"]
    assert stored_lock(table) == item


def test_release_only_by_the_owner(table, sandbox):
    held = write_lock(table, "run-1", 600)
    result = lock(sandbox.endpoint, "run-2", state="released")
    assert result.get("failed"), result
    assert "the lock of service shop is held by run-1" in result["msg"] and "not by run-2; it was not released" in result["msg"]
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


LOCK_BAD_INPUT = {
    "lease_seconds 0": ({"lease_seconds": 0}, "lease_seconds must be greater than 0, got 0"),
    "negative lease_seconds": ({"lease_seconds": -60}, "lease_seconds must be greater than 0, got -60"),
    "huge lease_seconds": ({"lease_seconds": 10**7}, "lease_seconds must be at most 604800"),
    "empty owner": ({"owner": ""}, "owner must be a non-empty string"),
    "unknown state": ({"state": "locked"}, "value of state must be one of: acquired, released"),
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
    results = run_tasks("cutover.bluegreen.lock", [{"service": "shop", "owner": "run-1", **LOCK_BAD_INPUT[n][0]} for n in names], sandbox)
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
        {"state": "finished", "deployment_id": "20260101T120000Z-nosuch", "outcome": "failed", "owner": "run-1", "lock": "acquire"},
        "lock=acquire opens a deployment under the lock: it needs state=started, not finished",
    ),
    "lock release when starting": (
        {"state": "started", "owner": "run-1", "lock": "release"},
        "lock=release gives the lock back after a step or a finish: it needs state=step or finished, not started",
    ),
    "lock without owner": ({"state": "started", "lock": "acquire"}, "owner must be a non-empty string"),
    "lock with a bad lease": (
        {"state": "started", "owner": "run-1", "lock": "acquire", "lease_seconds": 0},
        "lease_seconds must be greater than 0, got 0",
    ),
    "step without deployment_id": (
        {"state": "step", "step": "rollout"},
        "state is step but all of the following are missing: deployment_id",
    ),
    "finished without outcome": ({"state": "finished", "deployment_id": "20260101T120000Z-1a2b3c4d"}, "missing: outcome"),
    "invalid outcome": (
        {"state": "finished", "deployment_id": "20260101T120000Z-1a2b3c4d", "outcome": "great"},
        "value of outcome must be one of: succeeded, failed, rolled_back, got: great",
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


def test_journal_opens_and_closes_under_the_lock(table, sandbox):
    before = deployments_in_table(table)
    write_lock(table, "other-run", 600, purpose="deploy v8")
    refused = journal(sandbox.endpoint, state="started", owner="run-9", lock="acquire", purpose="deploy v9")
    assert refused.get("failed") and "other-run" in refused["msg"]
    assert refused["holder"] == "other-run" and refused["expires_at"]
    assert deployments_in_table(table) == before  # no entry without the lock
    assert stored_lock(table)["owner"] == "other-run"

    table.dynamodb.delete_item(TableName=TABLE, Key=LOCK_KEY)
    checked = journal(sandbox.endpoint, check=True, state="started", owner="run-9", lock="acquire", purpose="deploy v9")
    assert checked["changed"] and checked["lock"]["owner"] == "run-9"
    assert stored_lock(table) is None and deployments_in_table(table) == before

    opened = journal(sandbox.endpoint, state="started", owner="run-9", lock="acquire", lease_seconds=600, purpose="deploy v9")
    assert not opened.get("failed"), opened
    assert opened["changed"] and opened["lock"]["owner"] == "run-9"
    held = stored_lock(table)
    assert (held["owner"], held["purpose"], held["lease_seconds"]) == ("run-9", "deploy v9", 600)
    deployment_id = opened["deployment_id"]
    assert [i["outcome"] for i in deployments_in_table(table) if i["deployment_id"] == deployment_id] == ["in_progress"]

    # another run cannot finish and release someone else's lock: the write happens, the release is refused
    stolen = journal(sandbox.endpoint, state="step", deployment_id=deployment_id, step="canary", owner="run-10", lock="release")
    assert stolen.get("failed") and stored_lock(table)["owner"] == "run-9"

    closed = journal(sandbox.endpoint, state="finished", deployment_id=deployment_id, outcome="succeeded", owner="run-9", lock="release")
    assert not closed.get("failed"), closed
    assert closed["changed"] and closed["lock"] is None
    assert stored_lock(table) is None
    again = journal(sandbox.endpoint, state="finished", deployment_id=deployment_id, outcome="succeeded", owner="run-9", lock="release")
    assert not again.get("failed") and again["changed"] is False and again["lock"] is None
    assert [i["outcome"] for i in deployments_in_table(table) if i["deployment_id"] == deployment_id] == ["succeeded"]


def test_a_journal_write_that_fails_under_the_lock_gives_the_lock_back(table, sandbox):
    from ansible_collections.cutover.bluegreen.plugins.module_utils import journal as journal_utils

    dynamodb = dynamodb_client(sandbox.endpoint)

    def failing_write():
        raise CutoverError("the table is read-only today")

    with pytest.raises(CutoverError, match="read-only"):
        journal_utils.with_lock(dynamodb, TABLE, "shop", "run-11", "acquire", failing_write, lease_seconds=60)
    assert stored_lock(table) is None  # taken, then given back
    lease.acquire(dynamodb, TABLE, "shop", "run-11", 60)
    with pytest.raises(CutoverError, match="read-only"):
        journal_utils.with_lock(dynamodb, TABLE, "shop", "run-11", "release", failing_write)
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
