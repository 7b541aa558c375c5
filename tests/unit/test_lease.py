"""The lease's decisions, items, conditions, refusals and heartbeat, without a table; races with a fake client."""

from __future__ import annotations

import datetime

import botocore.exceptions
import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import MissingTable, from_item, to_item

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
T0 = int(NOW.timestamp())
TOKEN_1 = "1111aaaa1111aaaa1111aaaa1111aaaa"
TOKEN_2 = "2222bbbb2222bbbb2222bbbb2222bbbb"
OWNER = "ansible-playbook alice@ci-1 pid 4242"


def stored(owner=OWNER, token=TOKEN_1, expires_in=60, lease_seconds=60, purpose=None, takeovers=None, deployment_id=None):
    item = {
        "pk": "service#shop",
        "sk": "lock",
        "kind": "lock",
        "service": "shop",
        "owner": owner,
        "acquired_at": "2026-01-01T11:50:00Z",
        "renewed_at": "2026-01-01T11:59:30Z",
        "expires_at": T0 + expires_in,
        "lease_seconds": lease_seconds,
        "takeovers": takeovers or [],
    }
    if token is not None:
        item["token"] = token
    if purpose is not None:
        item["purpose"] = purpose
    if deployment_id is not None:
        item["deployment_id"] = deployment_id
    return item


# -- expiry and views -------------------------------------------------------------------------
def test_a_lease_is_expired_from_its_expiry_second_on():
    assert not lease.is_expired(T0 + 1, NOW)
    assert lease.is_expired(T0, NOW)
    assert lease.is_expired(T0 - 1, NOW)
    assert not lease.is_expired(T0, NOW - datetime.timedelta(microseconds=1))


def test_view_reports_the_holder_its_entry_and_the_time_left():
    shown = lease.view(stored(expires_in=45, deployment_id="20260101T115000Z-1a2b3c4d"), NOW)
    assert (shown["owner"], shown["token"], shown["deployment_id"]) == (OWNER, TOKEN_1, "20260101T115000Z-1a2b3c4d")
    assert shown["expires_at"] == "2026-01-01T12:00:45Z"
    assert (shown["expired"], shown["seconds_left"]) == (False, 45)
    expired = lease.view(stored(expires_in=-5), NOW)
    assert (expired["expired"], expired["seconds_left"]) == (True, 0)
    assert lease.view(None, NOW) is None


def test_a_live_run_renews_every_quarter_of_its_lease():
    assert lease.renew_interval(60) == 15
    assert lease.renew_interval(20) == 5
    assert lease.renew_interval(2) == 1.0


# -- who may take the lease ---------------------------------------------------------------------
def test_a_free_lease_is_acquired():
    assert lease.plan_acquire("shop", None, TOKEN_1, 60, NOW) == lease.ACQUIRE


def test_the_same_run_renews_or_changes_nothing():
    assert lease.plan_acquire("shop", stored(expires_in=60), TOKEN_1, 60, NOW) == lease.UNCHANGED
    assert lease.plan_acquire("shop", stored(expires_in=29), TOKEN_1, 60, NOW) == lease.RENEW
    assert lease.plan_acquire("shop", stored(expires_in=-1), TOKEN_1, 60, NOW) == lease.RENEW
    assert lease.plan_acquire("shop", stored(), TOKEN_1, 120, NOW) == lease.RENEW
    assert lease.plan_acquire("shop", stored(purpose="deploy v7"), TOKEN_1, 60, NOW, purpose="deploy v8") == lease.RENEW


def test_the_same_owner_with_another_token_is_another_run_and_is_refused():
    """Two runs from one machine by one user: same owner text, different tokens; the second is refused."""
    with pytest.raises(CutoverError) as caught:
        lease.plan_acquire("shop", stored(owner=OWNER, token=TOKEN_1, purpose="deploy v2 to green"), TOKEN_2, 60, NOW)
    assert f"service shop is locked by {OWNER} (deploy v2 to green)" in caught.value.message


def test_a_refusal_names_holder_purpose_since_until_and_the_exact_takeover_option():
    item = stored(owner=OWNER, token=TOKEN_1, expires_in=42, purpose="deploy v2 to green")
    with pytest.raises(CutoverError) as caught:
        lease.plan_acquire("shop", item, TOKEN_2, 60, NOW)
    message = caught.value.message
    assert message.startswith(f"service shop is locked by {OWNER} (deploy v2 to green) since 2026-01-01T11:50:00Z, ")
    assert "until 2026-01-01T12:00:42Z (42 s left, renewed 2026-01-01T11:59:30Z)" in message
    assert "its lease expires by itself within 42 s" in message
    assert message.endswith(f"run again with -e takeover={TOKEN_1}")
    details = caught.value.details
    assert (details["holder"], details["holder_token"], details["purpose"]) == (OWNER, TOKEN_1, "deploy v2 to green")
    assert (details["acquired_at"], details["expires_at"]) == ("2026-01-01T11:50:00Z", "2026-01-01T12:00:42Z")
    assert details["takeover_hint"] == f"-e takeover={TOKEN_1}"


def test_a_holder_without_a_token_is_named_by_its_owner_quoted_for_the_shell():
    item = stored(owner="release train 7", token=None, expires_in=30)
    with pytest.raises(CutoverError) as caught:
        lease.plan_acquire("shop", item, TOKEN_2, 60, NOW)
    assert caught.value.message.endswith("run again with -e takeover='release train 7'")
    assert lease.plan_acquire("shop", item, TOKEN_2, 60, NOW, takeover="release train 7") == lease.TAKE_OVER_NAMED


@pytest.mark.parametrize("name", [TOKEN_1, OWNER, f"  {TOKEN_1} "])
def test_takeover_naming_the_holder_takes_a_live_lease(name):
    assert lease.plan_acquire("shop", stored(expires_in=50), TOKEN_2, 60, NOW, takeover=name) == lease.TAKE_OVER_NAMED


def test_takeover_naming_another_run_is_refused():
    with pytest.raises(CutoverError) as caught:
        lease.plan_acquire("shop", stored(expires_in=50, purpose="teardown of expired standbys"), TOKEN_2, 60, NOW, takeover="awx-job-9")
    message = caught.value.message
    assert message.startswith("takeover=awx-job-9 does not name the holder of the lock: service shop is locked by")
    assert f"-e takeover={TOKEN_1}" in message


def test_an_expired_lease_is_taken_over_without_any_option():
    assert lease.plan_acquire("shop", stored(expires_in=0), TOKEN_2, 60, NOW) == lease.TAKE_OVER
    assert lease.plan_acquire("shop", stored(expires_in=-600), TOKEN_2, 60, NOW, takeover="someone else") == lease.TAKE_OVER


@pytest.mark.parametrize(
    ("owner", "token", "seconds", "takeover", "message"),
    [
        (OWNER, TOKEN_1, 0, None, "lease_seconds must be greater than 0, got 0"),
        (OWNER, TOKEN_1, True, None, "lease_seconds must be a whole number"),
        (OWNER, TOKEN_1, 10**7, None, "lease_seconds must be at most 604800"),
        ("", TOKEN_1, 60, None, "owner must be a non-empty string"),
        ("x" * 300, TOKEN_1, 60, None, "owner must be at most 256 characters"),
        (OWNER, "short", 60, None, "token must name one run"),
        (OWNER, "has space in it", 60, None, "token must name one run"),
        (OWNER, TOKEN_1, 60, "   ", "takeover must name the holder"),
    ],
)
def test_bad_input_is_refused(owner, token, seconds, takeover, message):
    with pytest.raises(CutoverError, match=message):
        lease.validate(owner, token, seconds, takeover)


# -- items ----------------------------------------------------------------------------------------
def test_an_acquired_item_names_the_run_and_its_journal_entry():
    item = lease.lease_item("shop", lease.ACQUIRE, None, OWNER, TOKEN_1, 60, NOW, purpose="deploy v2 to green", deployment_id="D1")
    assert item["expires_at"] == T0 + 60
    assert (item["owner"], item["token"], item["purpose"], item["deployment_id"]) == (OWNER, TOKEN_1, "deploy v2 to green", "D1")
    assert item["acquired_at"] == item["renewed_at"] == "2026-01-01T12:00:00Z"
    assert item["takeovers"] == []


def test_a_renewal_keeps_acquired_at_purpose_entry_and_history():
    history = [{"owner": "run-0", "reason": "expired"}]
    current = stored(expires_in=10, purpose="deploy v7", takeovers=history, deployment_id="D7")
    item = lease.lease_item("shop", lease.RENEW, current, OWNER, TOKEN_1, 60, NOW)
    assert item["acquired_at"] == "2026-01-01T11:50:00Z" and item["renewed_at"] == "2026-01-01T12:00:00Z"
    assert (item["expires_at"], item["purpose"], item["deployment_id"], item["takeovers"]) == (T0 + 60, "deploy v7", "D7", history)


@pytest.mark.parametrize(("action", "reason"), [(lease.TAKE_OVER, "expired"), (lease.TAKE_OVER_NAMED, "named")])
def test_a_takeover_records_the_previous_holder(action, reason):
    current = stored(expires_in=-30, purpose="deploy v7", deployment_id="D7")
    item = lease.lease_item("shop", action, current, "awx-job-8", TOKEN_2, 60, NOW, purpose="rollback to blue", deployment_id="D8")
    assert (item["owner"], item["token"], item["deployment_id"]) == ("awx-job-8", TOKEN_2, "D8")
    assert item["takeovers"] == [
        {
            "owner": OWNER,
            "token": TOKEN_1,
            "purpose": "deploy v7",
            "deployment_id": "D7",
            "acquired_at": "2026-01-01T11:50:00Z",
            "renewed_at": "2026-01-01T11:59:30Z",
            "expires_at": "2026-01-01T11:59:30Z",
            "taken_at": "2026-01-01T12:00:00Z",
            "taken_by": "awx-job-8",
            "reason": reason,
        }
    ]


def test_the_takeover_history_keeps_the_last_ten():
    history = [{"owner": f"run-{n}"} for n in range(10)]
    item = lease.lease_item("shop", lease.TAKE_OVER, stored(expires_in=-1, takeovers=history), "run-11", TOKEN_2, 60, NOW)
    assert len(item["takeovers"]) == 10
    assert item["takeovers"][0] == {"owner": "run-1"} and item["takeovers"][-1]["owner"] == OWNER


# -- conditions -------------------------------------------------------------------------------------
def test_conditions_pin_the_state_the_decision_was_made_from():
    free = lease.acquire_condition(lease.ACQUIRE, None, NOW)
    assert free == {"ConditionExpression": "attribute_not_exists(#n0)", "ExpressionAttributeNames": {"#n0": "pk"}}

    own = lease.acquire_condition(lease.RENEW, stored(), NOW)
    assert own["ConditionExpression"] == "#n0 = :v0"
    assert (own["ExpressionAttributeNames"], own["ExpressionAttributeValues"]) == ({"#n0": "token"}, {":v0": {"S": TOKEN_1}})

    taken = lease.acquire_condition(lease.TAKE_OVER, stored(expires_in=-5), NOW)
    assert taken["ConditionExpression"] == "#n0 = :v0 AND #n1 = :v1 AND #n2 = :v2 AND #n2 <= :v3"
    assert taken["ExpressionAttributeNames"] == {"#n0": "token", "#n1": "owner", "#n2": "expires_at"}
    assert taken["ExpressionAttributeValues"] == {
        ":v0": {"S": TOKEN_1},
        ":v1": {"S": OWNER},
        ":v2": {"N": str(T0 - 5)},
        ":v3": {"N": str(T0)},
    }
    named = lease.acquire_condition(lease.TAKE_OVER_NAMED, stored(), NOW)
    assert "<=" not in named["ConditionExpression"]
    legacy = lease.acquire_condition(lease.TAKE_OVER_NAMED, stored(token=None), NOW)
    assert legacy["ConditionExpression"].startswith("attribute_not_exists(#n0) AND")
    assert lease.release_condition(TOKEN_1)["ExpressionAttributeValues"] == {":v0": {"S": TOKEN_1}}


# -- fencing: is the lease still this run's? ---------------------------------------------------------
def test_fence_lets_only_the_live_lease_of_its_own_token_go_on():
    assert lease.fence_problem("shop", stored(expires_in=30), TOKEN_1, NOW) is None
    assert "expired at 2026-01-01T11:59:59Z" in lease.fence_problem("shop", stored(expires_in=-1), TOKEN_1, NOW)
    assert "is not held any more" in lease.fence_problem("shop", None, TOKEN_1, NOW)


def test_fence_says_who_took_the_lock_and_how():
    history = [{"owner": OWNER, "token": TOKEN_1, "taken_at": "2026-01-01T11:59:50Z", "reason": "named"}]
    taken = stored(owner="awx-job-8", token=TOKEN_2, purpose="rollback to blue", takeovers=history)
    text = lease.fence_problem("shop", taken, TOKEN_1, NOW)
    assert text == (
        "the lock of service shop is now held by awx-job-8 (rollback to blue) since 2026-01-01T11:50:00Z; "
        "it took the lock from this run at 2026-01-01T11:59:50Z, by name"
    )
    assert lease.fence_problem("shop", taken, TOKEN_2, NOW) is None


def test_release_decisions_go_by_token():
    assert lease.plan_release("shop", None, TOKEN_1, NOW) == lease.NOT_HELD
    assert lease.plan_release("shop", stored(), TOKEN_1, NOW) == lease.RELEASE
    assert lease.plan_release("shop", stored(expires_in=-1), TOKEN_1, NOW) == lease.RELEASE
    with pytest.raises(lease.LostLock) as caught:
        lease.plan_release("shop", stored(owner=OWNER, token=TOKEN_1), TOKEN_2, NOW)
    assert caught.value.message.startswith(f"lost the lock: the lock of service shop is held by {OWNER} (token {TOKEN_1})")
    assert caught.value.message.endswith(f"not by this run (token {TOKEN_2}); it was not released")
    assert caught.value.details["lost_lock"] is True


# -- against a fake table -------------------------------------------------------------------------
def client_error(code, operation):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeTable:
    """A table of one lock item; ``before_write`` runs just before each write (to let a rival win a race)."""

    def __init__(self, item=None, before_write=None, exists=True):
        self.item = item
        self.before_write = before_write
        self.exists = exists
        self.calls = []

    def _check(self, operation):
        self.calls.append(operation)
        if not self.exists:
            raise client_error("ResourceNotFoundException", operation)

    def _token_matches(self, placeholders):
        return self.item is not None and self.item.get("token") == placeholders["ExpressionAttributeValues"][":v0"]["S"]

    def get_item(self, TableName, Key, ConsistentRead, aws_retry):
        self._check("GetItem")
        return {"Item": to_item(self.item)} if self.item else {}

    def put_item(self, TableName, Item, ConditionExpression, aws_retry, **placeholders):
        self._check("PutItem")
        if self.before_write:
            self.before_write(self)
            self.before_write = None
        if ConditionExpression.startswith("attribute_not_exists(#n0)") and placeholders["ExpressionAttributeNames"]["#n0"] == "pk":
            if self.item is not None:
                raise client_error("ConditionalCheckFailedException", "PutItem")
        elif not self._token_matches(placeholders):
            raise client_error("ConditionalCheckFailedException", "PutItem")
        self.item = from_item(Item)

    def update_item(self, TableName, Key, UpdateExpression, ConditionExpression, aws_retry, **placeholders):
        self._check("UpdateItem")
        values = placeholders["ExpressionAttributeValues"]
        if self.item is None or self.item.get("token") != values[":v2"]["S"]:
            raise client_error("ConditionalCheckFailedException", "UpdateItem")
        self.item = dict(self.item, renewed_at=values[":v0"]["S"], expires_at=int(values[":v1"]["N"]))

    def delete_item(self, TableName, Key, ConditionExpression, aws_retry, **placeholders):
        self._check("DeleteItem")
        if not self._token_matches(placeholders):
            raise client_error("ConditionalCheckFailedException", "DeleteItem")
        self.item = None


def test_the_loser_of_a_race_rereads_and_fails_naming_the_winner():
    def rival_wins(table):
        table.item = stored(owner="awx-job-2", token=TOKEN_2, expires_in=60)

    table = FakeTable(before_write=rival_wins)
    with pytest.raises(CutoverError) as caught:
        lease.acquire(table, "cutover-shop", "shop", OWNER, TOKEN_1, 60, now=NOW)
    assert "locked by awx-job-2" in caught.value.message
    assert table.item["token"] == TOKEN_2
    assert table.calls == ["GetItem", "PutItem", "GetItem"]


def test_a_second_run_never_releases_the_first_runs_lease():
    table = FakeTable()
    lease.acquire(table, "cutover-shop", "shop", OWNER, TOKEN_1, 60, purpose="deploy v2", now=NOW)
    with pytest.raises(CutoverError):
        lease.acquire(table, "cutover-shop", "shop", OWNER, TOKEN_2, 60, purpose="teardown", now=NOW)
    with pytest.raises(lease.LostLock):
        lease.release(table, "cutover-shop", "shop", TOKEN_2, now=NOW)
    assert table.item["token"] == TOKEN_1
    assert lease.release(table, "cutover-shop", "shop", TOKEN_1, now=NOW)["changed"] is True
    assert table.item is None


def test_renewal_is_conditional_on_the_token():
    table = FakeTable(stored(expires_in=5))
    assert lease.renew(table, "cutover-shop", "shop", TOKEN_1, 60, now=NOW) is True
    assert table.item["expires_at"] == T0 + 60 and table.item["renewed_at"] == "2026-01-01T12:00:00Z"
    table.item = stored(token=TOKEN_2)
    assert lease.renew(table, "cutover-shop", "shop", TOKEN_1, 60, now=NOW) is False
    assert table.item["token"] == TOKEN_2 and table.item["expires_at"] == T0 + 60
    assert table.calls == ["UpdateItem", "UpdateItem"]


def test_check_raises_lost_lock_naming_the_step_it_stopped_before():
    table = FakeTable(stored(owner="awx-job-8", token=TOKEN_2))
    with pytest.raises(lease.LostLock) as caught:
        lease.check(table, "cutover-shop", "shop", TOKEN_1, before="switching production of shop", now=NOW)
    assert caught.value.message.startswith("lost the lock: the lock of service shop is now held by awx-job-8")
    assert caught.value.message.endswith("; stopped before switching production of shop")
    assert lease.check(FakeTable(stored()), "cutover-shop", "shop", TOKEN_1, now=NOW)["token"] == TOKEN_1


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_heartbeat_renews_while_the_controller_lives_and_stops_within_a_look_of_its_death():
    clock = Clock()
    table = FakeTable(stored(expires_in=60))
    dies_at = 47.0

    def controller_problem(_controller):
        return "the controller (pid 4242) is gone" if clock.now >= dies_at else None

    held = lease.hold(
        table, "cutover-shop", "shop", TOKEN_1, 60, {"pid": 4242}, clock=clock, sleep=clock.sleep, controller_problem=controller_problem
    )
    assert held["stopped"] == "controller_gone" and held["renewals"] == 3  # at 15, 30 and 45 s
    assert clock.now == dies_at  # noticed at the first look after the death (one second apart)
    assert table.calls == ["UpdateItem"] * 3


def test_the_heartbeat_stops_when_the_lease_is_released_or_taken_and_retries_failed_renewals():
    clock = Clock()
    table = FakeTable(stored(expires_in=60))
    failures = iter([client_error("ProvisionedThroughputExceededException", "UpdateItem")])
    original = table.update_item

    def flaky_update(**kwargs):
        error = next(failures, None)
        if error:
            table.calls.append("UpdateItem")
            raise error
        if clock.now >= 40:
            table.item = stored(owner="awx-job-8", token=TOKEN_2)  # taken over meanwhile
        return original(**kwargs)

    table.update_item = flaky_update
    held = lease.hold(
        table, "cutover-shop", "shop", TOKEN_1, 60, {"pid": 1}, clock=clock, sleep=clock.sleep, controller_problem=lambda _c: None
    )
    assert held["stopped"] == "not_held"
    assert (held["renewals"], held["failed_renewals"]) == (1, 1)  # 15 s failed, 30 s renewed, 45 s found it taken
    assert table.item["token"] == TOKEN_2


def test_check_mode_reads_only():
    table = FakeTable()
    result = lease.acquire(table, "cutover-shop", "shop", OWNER, TOKEN_1, 60, check_mode=True, now=NOW)
    assert result["changed"] and result["operation"] == lease.ACQUIRE
    assert result["lock"]["token"] == TOKEN_1 and result["lock"]["expires_at"] == "2026-01-01T12:01:00Z"
    assert table.calls == ["GetItem"] and table.item is None
    table.item = stored()
    result = lease.release(table, "cutover-shop", "shop", TOKEN_1, check_mode=True, now=NOW)
    assert result["changed"] and table.calls == ["GetItem", "GetItem"] and table.item is not None


def test_release_of_a_free_lock_changes_nothing():
    table = FakeTable()
    assert lease.release(table, "cutover-shop", "shop", TOKEN_1, now=NOW) == {
        "changed": False,
        "operation": "not_held",
        "lock": None,
        "previous": None,
    }
    assert table.calls == ["GetItem"]


def test_missing_table_is_named():
    with pytest.raises(MissingTable) as caught:
        lease.read(FakeTable(exists=False), "cutover-nosuch", "nosuch", NOW)
    assert caught.value.message.startswith("the table cutover-nosuch does not exist; is the stack of service nosuch provisioned")


def test_bad_input_fails_before_the_table_is_read():
    table = FakeTable()
    with pytest.raises(CutoverError):
        lease.acquire(table, "cutover-shop", "shop", OWNER, TOKEN_1, 0, now=NOW)
    with pytest.raises(CutoverError):
        lease.acquire(table, "cutover-shop", "shop", OWNER, "bad token", 60, now=NOW)
    with pytest.raises(CutoverError):
        lease.release(table, "cutover-shop", "shop", "", now=NOW)
    assert table.calls == []
