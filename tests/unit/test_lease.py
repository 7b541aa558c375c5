"""The lease's decisions, items and conditions, without a table; races and lost writes with a fake client."""

from __future__ import annotations

import datetime

import botocore.exceptions
import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import MissingTable, from_item, to_item

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
T0 = int(NOW.timestamp())


def stored(owner="run-1", expires_in=1800, lease_seconds=1800, purpose=None, takeovers=None):
    item = {
        "pk": "service#shop",
        "sk": "lock",
        "kind": "lock",
        "service": "shop",
        "owner": owner,
        "acquired_at": "2026-01-01T11:50:00Z",
        "renewed_at": "2026-01-01T11:50:00Z",
        "expires_at": T0 + expires_in,
        "lease_seconds": lease_seconds,
        "takeovers": takeovers or [],
    }
    if purpose is not None:
        item["purpose"] = purpose
    return item


# -- expiry -------------------------------------------------------------------------------
def test_a_lease_is_expired_from_its_expiry_second_on():
    assert not lease.is_expired(T0 + 1, NOW)
    assert lease.is_expired(T0, NOW)
    assert lease.is_expired(T0 - 1, NOW)
    assert not lease.is_expired(T0, NOW - datetime.timedelta(microseconds=1))


def test_view_reports_iso_expiry_and_seconds_left():
    shown = lease.view(stored(expires_in=90), NOW)
    assert shown["expires_at"] == "2026-01-01T12:01:30Z"
    assert shown["expires_at_epoch"] == T0 + 90
    assert (shown["expired"], shown["seconds_left"]) == (False, 90)
    expired = lease.view(stored(expires_in=-5), NOW)
    assert (expired["expired"], expired["seconds_left"]) == (True, 0)
    assert lease.view(None, NOW) is None


# -- decisions ------------------------------------------------------------------------------
def test_free_lease_is_acquired():
    assert lease.plan_acquire("shop", None, "run-1", 1800, NOW) == lease.ACQUIRE


def test_same_owner_with_most_of_the_lease_left_changes_nothing():
    assert lease.plan_acquire("shop", stored(expires_in=1800), "run-1", 1800, NOW) == lease.UNCHANGED
    assert lease.plan_acquire("shop", stored(expires_in=900), "run-1", 1800, NOW) == lease.UNCHANGED
    # purpose omitted keeps the stored one: still unchanged
    assert lease.plan_acquire("shop", stored(purpose="release 7"), "run-1", 1800, NOW) == lease.UNCHANGED


@pytest.mark.parametrize(
    ("item", "lease_seconds", "purpose"),
    [
        (stored(expires_in=899), 1800, None),  # less than half left
        (stored(expires_in=-1), 1800, None),  # our own lease, expired: renewed
        (stored(), 3600, None),  # a longer lease asked for
        (stored(purpose="release 7"), 1800, "release 8"),
    ],
)
def test_same_owner_renews(item, lease_seconds, purpose):
    assert lease.plan_acquire("shop", item, "run-1", lease_seconds, NOW, purpose=purpose) == lease.RENEW


def test_live_lease_of_another_owner_is_refused_naming_holder_and_expiry():
    with pytest.raises(CutoverError) as caught:
        lease.plan_acquire("shop", stored(owner="run-1", expires_in=600, purpose="release 7"), "run-2", 1800, NOW)
    message = caught.value.message
    assert "service shop is locked by run-1" in message
    assert "until 2026-01-01T12:10:00Z (600 s left)" in message
    assert "for release 7" in message
    assert "force_takeover" in message
    assert caught.value.details["holder"] == "run-1"
    assert caught.value.details["expires_at"] == "2026-01-01T12:10:00Z"
    # takeover (of expired leases) does not take a live one
    with pytest.raises(CutoverError):
        lease.plan_acquire("shop", stored(expires_in=1), "run-2", 1800, NOW, takeover=True)


def test_live_lease_is_taken_only_when_forced():
    assert lease.plan_acquire("shop", stored(expires_in=600), "run-2", 1800, NOW, force_takeover=True) == lease.FORCE


def test_expired_lease_of_another_owner_is_taken_over_by_default_and_refused_without_takeover():
    assert lease.plan_acquire("shop", stored(expires_in=0), "run-2", 1800, NOW) == lease.TAKE_OVER
    with pytest.raises(CutoverError) as caught:
        lease.plan_acquire("shop", stored(expires_in=-60), "run-2", 1800, NOW, takeover=False)
    assert "locked by run-1" in caught.value.message
    assert "expired at 2026-01-01T11:59:00Z" in caught.value.message
    assert caught.value.details["holder"] == "run-1"
    # forcing also takes an expired lease (recorded as an expiry takeover)
    assert lease.plan_acquire("shop", stored(expires_in=-60), "run-2", 1800, NOW, takeover=False, force_takeover=True) == lease.TAKE_OVER


@pytest.mark.parametrize(
    ("owner", "seconds", "message"),
    [
        ("run-1", 0, "lease_seconds must be greater than 0, got 0"),
        ("run-1", -5, "lease_seconds must be greater than 0, got -5"),
        ("run-1", True, "lease_seconds must be a whole number"),
        ("run-1", 1.5, "lease_seconds must be a whole number"),
        ("run-1", 10**7, "lease_seconds must be at most 604800"),
        ("", 60, "owner must be a non-empty string"),
        ("   ", 60, "owner must be a non-empty string"),
        ("x" * 300, 60, "owner must be at most 256 characters"),
    ],
)
def test_bad_input_is_refused(owner, seconds, message):
    with pytest.raises(CutoverError, match=message):
        lease.validate(owner, seconds)


# -- items --------------------------------------------------------------------------------
def test_acquired_item_expires_after_the_lease():
    item = lease.lease_item("shop", lease.ACQUIRE, None, "run-1", 600, NOW, purpose="release 7")
    assert item["expires_at"] == T0 + 600
    assert (item["pk"], item["sk"], item["owner"], item["purpose"]) == ("service#shop", "lock", "run-1", "release 7")
    assert item["acquired_at"] == item["renewed_at"] == "2026-01-01T12:00:00Z"
    assert item["takeovers"] == []


def test_renewal_keeps_acquired_at_purpose_and_history():
    history = [{"owner": "run-0", "reason": "expired"}]
    current = stored(expires_in=10, purpose="release 7", takeovers=history)
    item = lease.lease_item("shop", lease.RENEW, current, "run-1", 1800, NOW)
    assert item["acquired_at"] == "2026-01-01T11:50:00Z"
    assert item["renewed_at"] == "2026-01-01T12:00:00Z"
    assert item["expires_at"] == T0 + 1800
    assert item["purpose"] == "release 7"
    assert item["takeovers"] == history


@pytest.mark.parametrize(("action", "reason"), [(lease.TAKE_OVER, "expired"), (lease.FORCE, "forced")])
def test_takeover_records_the_previous_holder(action, reason):
    current = stored(owner="run-1", expires_in=-30, purpose="release 7")
    item = lease.lease_item("shop", action, current, "run-2", 900, NOW)
    assert item["owner"] == "run-2" and item["acquired_at"] == "2026-01-01T12:00:00Z"
    assert "purpose" not in item
    assert item["takeovers"] == [
        {
            "owner": "run-1",
            "purpose": "release 7",
            "acquired_at": "2026-01-01T11:50:00Z",
            "expires_at": "2026-01-01T11:59:30Z",
            "taken_at": "2026-01-01T12:00:00Z",
            "taken_by": "run-2",
            "reason": reason,
        }
    ]


def test_takeover_history_keeps_the_last_ten():
    history = [{"owner": f"run-{n}"} for n in range(10)]
    item = lease.lease_item("shop", lease.TAKE_OVER, stored(owner="run-10", expires_in=-1, takeovers=history), "run-11", 60, NOW)
    assert len(item["takeovers"]) == 10
    assert item["takeovers"][0] == {"owner": "run-1"}
    assert item["takeovers"][-1]["owner"] == "run-10"


# -- conditions -----------------------------------------------------------------------------
def test_conditions_pin_the_state_the_decision_was_made_from():
    free = lease.acquire_condition(lease.ACQUIRE, None, NOW)
    assert free == {"ConditionExpression": "attribute_not_exists(#n0)", "ExpressionAttributeNames": {"#n0": "pk"}}

    own = lease.acquire_condition(lease.RENEW, stored(), NOW)
    assert own["ConditionExpression"] == "#n0 = :v0"
    assert own["ExpressionAttributeNames"] == {"#n0": "owner"}
    assert own["ExpressionAttributeValues"] == {":v0": {"S": "run-1"}}

    current = stored(expires_in=-5)
    taken = lease.acquire_condition(lease.TAKE_OVER, current, NOW)
    assert taken["ConditionExpression"] == "#n0 = :v0 AND #n1 = :v1 AND #n2 = :v2 AND #n2 <= :v3"
    assert taken["ExpressionAttributeNames"] == {"#n0": "owner", "#n1": "acquired_at", "#n2": "expires_at"}
    assert taken["ExpressionAttributeValues"] == {
        ":v0": {"S": "run-1"},
        ":v1": {"S": "2026-01-01T11:50:00Z"},
        ":v2": {"N": str(T0 - 5)},
        ":v3": {"N": str(T0)},
    }
    forced = lease.acquire_condition(lease.FORCE, stored(), NOW)
    assert "<=" not in forced["ConditionExpression"]
    assert lease.release_condition("run-1")["ConditionExpression"] == "#n0 = :v0"


def test_release_decisions():
    assert lease.plan_release("shop", None, "run-1", NOW) == lease.NOT_HELD
    assert lease.plan_release("shop", stored(), "run-1", NOW) == lease.RELEASE
    assert lease.plan_release("shop", stored(expires_in=-1), "run-1", NOW) == lease.RELEASE
    with pytest.raises(CutoverError) as caught:
        lease.plan_release("shop", stored(owner="run-1", expires_in=60), "run-2", NOW)
    assert caught.value.message.startswith("the lock of service shop is held by run-1")
    assert "until 2026-01-01T12:01:00Z, not by run-2; it was not released" in caught.value.message
    with pytest.raises(CutoverError, match="expired at 2026-01-01T11:59:59Z, not by run-2"):
        lease.plan_release("shop", stored(owner="run-1", expires_in=-1), "run-2", NOW)


# -- against a fake table -----------------------------------------------------------------
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

    def get_item(self, TableName, Key, ConsistentRead, aws_retry):
        self._check("GetItem")
        return {"Item": to_item(self.item)} if self.item else {}

    def put_item(self, TableName, Item, ConditionExpression, aws_retry, **placeholders):
        self._check("PutItem")
        if self.before_write:
            self.before_write(self)
            self.before_write = None
        # The only conditions acquire() writes with from a free lease: the item must not exist.
        if ConditionExpression.startswith("attribute_not_exists") and self.item is not None:
            raise client_error("ConditionalCheckFailedException", "PutItem")
        self.item = from_item(Item)

    def delete_item(self, TableName, Key, ConditionExpression, aws_retry, **placeholders):
        self._check("DeleteItem")
        owner = placeholders["ExpressionAttributeValues"][":v0"]["S"]
        if self.item is None or self.item["owner"] != owner:
            raise client_error("ConditionalCheckFailedException", "DeleteItem")
        self.item = None


def test_the_loser_of_a_race_rereads_and_fails_naming_the_winner():
    def rival_wins(table):
        table.item = stored(owner="run-2", expires_in=1800)

    table = FakeTable(before_write=rival_wins)
    with pytest.raises(CutoverError) as caught:
        lease.acquire(table, "cutover-shop", "shop", "run-1", 1800, now=NOW)
    assert "locked by run-2" in caught.value.message
    assert table.item["owner"] == "run-2"
    assert table.calls == ["GetItem", "PutItem", "GetItem"]


def test_check_mode_reads_only():
    table = FakeTable()
    result = lease.acquire(table, "cutover-shop", "shop", "run-1", 600, check_mode=True, now=NOW)
    assert result["changed"] and result["operation"] == lease.ACQUIRE
    assert result["lock"]["owner"] == "run-1" and result["lock"]["expires_at"] == "2026-01-01T12:10:00Z"
    assert table.calls == ["GetItem"] and table.item is None
    table.item = stored()
    result = lease.release(table, "cutover-shop", "shop", "run-1", check_mode=True, now=NOW)
    assert result["changed"] and table.calls == ["GetItem", "GetItem"] and table.item is not None


def test_release_of_a_free_lock_changes_nothing():
    table = FakeTable()
    assert lease.release(table, "cutover-shop", "shop", "run-1", now=NOW) == {
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
        lease.acquire(table, "cutover-shop", "shop", "run-1", 0, now=NOW)
    with pytest.raises(CutoverError):
        lease.release(table, "cutover-shop", "shop", "", now=NOW)
    assert table.calls == []
