"""The journal's ids, plans, update expressions and durations, and the table's item codec."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import journal
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import (
    Expression,
    from_attribute,
    from_item,
    table_name,
    to_attribute,
    to_item,
)

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
ID = "20260101T120000Z-1a2b3c4d"


def later(seconds):
    return NOW + datetime.timedelta(seconds=seconds)


def started():
    return journal.new_item("shop", ID, NOW, owner="run-1", record={"colors": {"from": "blue", "to": "green"}})


# -- codec ----------------------------------------------------------------------------------
def test_values_round_trip_through_attribute_values():
    value = {
        "s": "text",
        "empty": "",
        "i": 42,
        "neg": -3,
        "f": 1.25,
        "b": True,
        "n": None,
        "l": [1, "two", {"three": 3}],
        "m": {"nested": {"deeper": [False]}},
    }
    encoded = to_attribute(value)
    assert encoded["M"]["i"] == {"N": "42"} and encoded["M"]["b"] == {"BOOL": True} and encoded["M"]["n"] == {"NULL": True}
    assert encoded["M"]["f"] == {"N": "1.25"}
    assert from_attribute(encoded) == value
    assert from_item(to_item(value)) == value


def test_numbers_come_back_whole_when_whole():
    assert from_attribute({"N": "1800"}) == 1800 and isinstance(from_attribute({"N": "1800"}), int)
    assert from_attribute({"N": "1.5"}) == 1.5
    assert from_attribute({"N": "1E+3"}) == 1000.0
    assert from_attribute({"SS": ["b", "a"]}) == ["a", "b"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), {1, 2}])
def test_values_that_cannot_be_stored_are_refused(value):
    with pytest.raises(CutoverError, match="cannot be stored"):
        to_attribute(value)


def test_table_name_defaults_to_the_stacks_name():
    assert table_name("shop") == "cutover-shop"
    assert table_name("shop", "deploys") == "deploys"
    with pytest.raises(CutoverError, match="a service name is required"):
        table_name("")


def test_expression_reuses_placeholders_for_the_same_name():
    expression = Expression()
    assert expression.name("steps", "switch") == "#n0.#n1"
    assert expression.name("steps", "rollout") == "#n0.#n2"
    assert expression.value("x") == ":v0"
    assert expression.arguments(UpdateExpression="SET a", ConditionExpression=None) == {
        "UpdateExpression": "SET a",
        "ExpressionAttributeNames": {"#n0": "steps", "#n1": "switch", "#n2": "rollout"},
        "ExpressionAttributeValues": {":v0": {"S": "x"}},
    }


# -- ids --------------------------------------------------------------------------------
def test_deployment_ids_start_with_their_time_and_sort_by_it():
    first = journal.new_deployment_id(NOW)
    second = journal.new_deployment_id(later(1))
    assert first.startswith("20260101T120000Z-") and len(first) == len("20260101T120000Z-") + 8
    assert journal.validate_deployment_id(first) == first
    assert sorted([second, first]) == [first, second]
    assert journal.sort_key(first) == "deploy#" + first
    assert journal.new_deployment_id(NOW.astimezone(datetime.timezone(datetime.timedelta(hours=2))), "x") == "20260101T120000Z-x"
    assert journal.new_deployment_id(NOW) != journal.new_deployment_id(NOW)


@pytest.mark.parametrize(
    "bad", ["", "abc", "2026-01-01T12:00:00Z-x", "20260101T120000Z-", "20260101T120000Z-a b", "20260101T120000Z-#", None, 5]
)
def test_malformed_deployment_ids_are_refused(bad):
    with pytest.raises(CutoverError, match="is not a deployment id"):
        journal.validate_deployment_id(bad)


# -- items and plans ---------------------------------------------------------------------------
def test_a_new_deployment_is_in_progress_and_never_expires():
    item = started()
    assert (item["pk"], item["sk"]) == ("service#shop", "deploy#" + ID)
    assert item["outcome"] == "in_progress" and item["started_at"] == "2026-01-01T12:00:00Z"
    assert item["steps"] == {} and item["step_order"] == []
    assert "expires_at" not in item
    assert "summary" not in journal.new_item("shop", ID, NOW)


def test_step_start_then_finish_records_seconds_and_order():
    item = started()
    changes = journal.plan_step(item, "rollout", "started", later(5))
    assert changes == {
        ("steps", "rollout"): {"status": "started", "started": "2026-01-01T12:00:05Z", "finished": None, "seconds": None},
        ("step_order",): ["rollout"],
    }
    item = journal.apply_changes(item, changes)
    # re-entering a running step changes nothing (its start time stays)
    assert journal.plan_step(item, "rollout", "started", later(30)) == {}
    changes = journal.plan_step(item, "rollout", "finished", later(185))
    assert changes == {
        ("steps", "rollout"): {"status": "finished", "started": "2026-01-01T12:00:05Z", "finished": "2026-01-01T12:03:05Z", "seconds": 180}
    }
    item = journal.apply_changes(item, changes)
    assert journal.plan_step(item, "rollout", "finished", later(200)) == {}
    assert journal.plan_step(item, "rollout", "started", later(200)) == {}


def test_a_step_finished_without_a_start_took_no_time_and_a_failed_step_can_restart():
    item = journal.apply_changes(started(), journal.plan_step(started(), "smoke", "failed", later(10)))
    assert item["steps"]["smoke"] == {
        "status": "failed",
        "started": "2026-01-01T12:00:10Z",
        "finished": "2026-01-01T12:00:10Z",
        "seconds": 0,
    }
    restart = journal.plan_step(item, "smoke", "started", later(20))
    assert restart == {("steps", "smoke"): {"status": "started", "started": "2026-01-01T12:00:20Z", "finished": None, "seconds": None}}
    item = journal.apply_changes(item, restart)
    assert item["step_order"] == ["smoke"]


def test_record_merges_by_top_level_key():
    item = started()
    changes = journal.plan_step(
        item, "switch", "finished", later(1), record={"colors": {"from": "blue", "to": "green"}, "image_id": "ami-1"}
    )
    assert ("record", "colors") not in changes  # unchanged value, not rewritten
    assert changes[("record", "image_id")] == "ami-1"
    after = journal.apply_changes(item, changes)
    assert after["record"] == {"colors": {"from": "blue", "to": "green"}, "image_id": "ami-1"}
    assert item["record"] == {"colors": {"from": "blue", "to": "green"}}  # the input is not modified


def test_finish_sets_outcome_time_and_duration_once():
    item = started()
    changes = journal.plan_finish(item, "succeeded", later(450), summary="green is live")
    assert changes == {
        ("outcome",): "succeeded",
        ("finished_at",): "2026-01-01T12:07:30Z",
        ("duration_seconds",): 450,
        ("summary",): "green is live",
    }
    item = journal.apply_changes(item, changes)
    assert journal.plan_finish(item, "succeeded", later(900), summary="green is live") == {}
    assert journal.plan_finish(item, "succeeded", later(900)) == {}
    assert journal.plan_finish(item, "succeeded", later(900), summary="other") == {("summary",): "other"}
    rolled_back = journal.plan_finish(item, "rolled_back", later(900))
    assert rolled_back[("outcome",)] == "rolled_back" and rolled_back[("duration_seconds",)] == 900


@pytest.mark.parametrize("outcome", ["in_progress", "success", "", None])
def test_invalid_outcomes_are_refused(outcome):
    with pytest.raises(CutoverError, match="is not one of succeeded, failed, rolled_back"):
        journal.plan_finish(started(), outcome, NOW)


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("", "finished", "is not a step name"),
        ("a b", "finished", "is not a step name"),
        ("x" * 65, "started", "is not a step name"),
        ("rollout", "done", "step status 'done' is not one of started, finished, failed, skipped"),
    ],
)
def test_invalid_steps_are_refused(name, status, message):
    with pytest.raises(CutoverError, match=message):
        journal.plan_step(started(), name, status, NOW)


def test_update_expression_sets_each_changed_path_on_an_existing_item():
    changes = {("steps", "switch"): {"status": "started"}, ("step_order",): ["switch"], ("record", "image_id"): "ami-1"}
    arguments = journal.update_arguments(changes, later(3))
    assert arguments["UpdateExpression"] == "SET #n0.#n1 = :v0, #n2 = :v1, #n3.#n4 = :v2, #n5 = :v3"
    assert arguments["ExpressionAttributeNames"] == {
        "#n0": "record",
        "#n1": "image_id",
        "#n2": "step_order",
        "#n3": "steps",
        "#n4": "switch",
        "#n5": "updated_at",
        "#n6": "pk",
    }
    assert arguments["ConditionExpression"] == "attribute_exists(#n6)"
    assert arguments["ExpressionAttributeValues"][":v1"] == {"L": [{"S": "switch"}]}
    assert arguments["ExpressionAttributeValues"][":v3"] == {"S": "2026-01-01T12:00:03Z"}


# -- durations ---------------------------------------------------------------------------
def test_seconds_between_iso_times():
    assert journal.seconds_between("2026-01-01T12:00:00Z", "2026-01-01T12:02:03Z") == 123
    assert journal.seconds_between("2026-01-01T12:00:00Z", later(2)) == 2
    assert journal.seconds_between(None, "2026-01-01T12:00:00Z") is None
    assert journal.seconds_between("2026-01-01T12:00:00+01:00", "2026-01-01T12:00:00Z") == 3600


def test_durations_of_a_running_and_a_finished_deployment():
    item = started()
    item = journal.apply_changes(item, journal.plan_step(item, "rollout", "finished", later(60)))
    item = journal.apply_changes(item, journal.plan_step(item, "switch", "started", later(70)))
    running = journal.durations(item, later(100))
    assert running == {"deployment_seconds": None, "elapsed_seconds": 100, "steps": {"rollout": 0, "switch": None}}
    item = journal.apply_changes(item, journal.plan_step(item, "switch", "finished", later(75)))
    item = journal.apply_changes(item, journal.plan_finish(item, "succeeded", later(80)))
    done = journal.durations(item, later(5000))
    assert done == {"deployment_seconds": 80, "elapsed_seconds": 80, "steps": {"rollout": 0, "switch": 5}}
    shown = journal.view(item, later(5000))
    assert "pk" not in shown and "sk" not in shown and shown["durations"] == done


# -- against a fake table ---------------------------------------------------------------------
class Recorder:
    def __init__(self, item=None):
        self.item = item
        self.calls = []

    def get_item(self, **kwargs):
        self.calls.append(("GetItem", kwargs))
        return {"Item": to_item(self.item)} if self.item else {}

    def update_item(self, **kwargs):
        self.calls.append(("UpdateItem", kwargs))

    def put_item(self, **kwargs):
        self.calls.append(("PutItem", kwargs))

    def query(self, **kwargs):
        self.calls.append(("Query", kwargs))
        return {"Items": []}


def test_recent_is_one_newest_first_query_on_the_deploy_prefix():
    table = Recorder()
    assert journal.recent(table, "cutover-shop", "shop", 7) == []
    ((operation, kwargs),) = table.calls
    assert operation == "Query"
    assert kwargs["ScanIndexForward"] is False and kwargs["Limit"] == 7
    assert kwargs["KeyConditionExpression"] == "#n0 = :v0 AND begins_with(#n1, :v1)"
    assert kwargs["ExpressionAttributeValues"] == {":v0": {"S": "service#shop"}, ":v1": {"S": "deploy#"}}
    assert journal.recent(table, "cutover-shop", "shop", 0) == [] and len(table.calls) == 1
    for bad in (-1, 101, True):
        with pytest.raises(CutoverError, match="between 0 and 100"):
            journal.recent(table, "cutover-shop", "shop", bad)


def test_finishing_a_finished_deployment_again_writes_nothing():
    item = started()
    item = journal.apply_changes(item, journal.plan_finish(item, "failed", later(9), summary="unhealthy"))
    table = Recorder(item)
    result = journal.finish(table, "cutover-shop", "shop", ID, "failed", summary="unhealthy", now=later(20))
    assert result["changed"] is False
    assert [operation for operation, _ in table.calls] == ["GetItem"]


def test_steps_of_a_deployment_missing_from_the_journal():
    with pytest.raises(CutoverError, match="deployment 20260101T120000Z-1a2b3c4d of service shop is not in the journal"):
        journal.step(Recorder(), "cutover-shop", "shop", ID, "rollout")
    result = journal.step(Recorder(), "cutover-shop", "shop", ID, "rollout", check_mode=True)
    assert result["changed"] and result["missing"] and result["after"] is None


def test_bad_input_fails_before_the_table_is_read():
    table = Recorder(started())
    with pytest.raises(CutoverError):
        journal.step(table, "cutover-shop", "shop", "not-an-id", "rollout")
    with pytest.raises(CutoverError):
        journal.finish(table, "cutover-shop", "shop", ID, "in_progress")
    with pytest.raises(CutoverError):
        journal.start(table, "cutover-shop", "shop", record={"x": float("nan")})
    with pytest.raises(CutoverError):
        journal.start(table, "cutover-shop", "shop", record=["not", "a", "dict"])
    assert table.calls == []


# -- after a crash: settling a dead run's entry, resuming it ------------------------------------
DEAD = {
    "owner": "ansible-playbook alice@ci-1 pid 4242",
    "token": "1111aaaa1111aaaa1111aaaa1111aaaa",
    "purpose": "deploy v2 to green",
    "deployment_id": ID,
    "expires_at": "2026-01-01T11:59:00Z",
}


def deploy_entry(outcome="in_progress", phase="full", canary_step=None, **to_version):
    item = journal.new_item(
        "shop",
        ID,
        NOW,
        owner=DEAD["owner"],
        record={
            "kind": "deploy",
            "phase": phase,
            "from_color": "blue",
            "to_color": "green",
            "from_version": {"image_id": "ami-1"},
            "to_version": {"image_id": "ami-2", "instance_type": None, "user_data_sha256": "ab12", **to_version},
            "canary_weight": 10 if phase == "canary" else 0,
        },
    )
    item["outcome"] = outcome
    if canary_step:
        item["steps"] = {"canary": {"status": canary_step}}
    return item


def test_a_takeover_interrupts_the_dead_runs_entry_unless_it_adopts_it():
    assert journal.plan_settle(DEAD, deploy_entry(), "20260101T120500Z-99999999")[0] == journal.INTERRUPT
    assert journal.plan_settle(DEAD, deploy_entry(), ID) == (journal.ADOPT, f"deployment {ID} is resumed by a re-run of the same release")


@pytest.mark.parametrize(
    ("previous", "entry", "why"),
    [
        (dict(DEAD, deployment_id=None), deploy_entry(), "the lease named no journal entry"),
        (DEAD, None, f"deployment {ID} is not in the journal"),
        (DEAD, deploy_entry(outcome="succeeded"), f"deployment {ID} is already closed (succeeded)"),
        (DEAD, deploy_entry(phase="canary", canary_step="finished"), f"deployment {ID} is a canary waiting for promotion"),
    ],
)
def test_a_takeover_leaves_closed_entries_and_waiting_canaries_alone(previous, entry, why):
    assert journal.plan_settle(previous, entry, "20260101T120500Z-99999999") == (journal.LEAVE, why)


def test_a_canary_killed_before_its_canary_step_is_not_a_waiting_canary():
    assert journal.is_waiting_canary(deploy_entry(phase="canary", canary_step="finished"))
    assert not journal.is_waiting_canary(deploy_entry(phase="canary"))
    assert not journal.is_waiting_canary(deploy_entry(phase="canary", canary_step="started"))
    assert journal.plan_settle(DEAD, deploy_entry(phase="canary", canary_step="started"), "X")[0] == journal.INTERRUPT


def test_the_interrupted_summary_names_the_dead_run_and_who_took_over_for_what():
    assert journal.interrupted_summary(DEAD, "awx-job-8", "rollback to blue", "20260101T120500Z-99999999", "named") == (
        "interrupted: its run ansible-playbook alice@ci-1 pid 4242 stopped; awx-job-8 took the lock from it by name "
        "for rollback to blue (deployment 20260101T120500Z-99999999)"
    )
    assert journal.interrupted_summary(DEAD, "cron-teardown", "teardown of expired standbys") == (
        "interrupted: its run ansible-playbook alice@ci-1 pid 4242 stopped; cron-teardown took the lock over after its "
        "lease expired at 2026-01-01T11:59:00Z for teardown of expired standbys"
    )


def test_interrupted_is_an_outcome_a_finish_can_record():
    item = deploy_entry()
    changes = journal.plan_finish(
        item, journal.INTERRUPTED, later(30), summary="interrupted: ...", record={"interrupted_by": {"owner": "x"}}
    )
    after = journal.apply_changes(item, changes)
    assert (after["outcome"], after["duration_seconds"], after["record"]["interrupted_by"]) == ("interrupted", 30, {"owner": "x"})
    assert "interrupted" in journal.FINAL_OUTCOMES


RELEASE = {"phase": "full", "image_id": "ami-2", "instance_type": None, "user_data_sha256": "ab12"}


def lock(expired=True, **extra):
    return {"owner": DEAD["owner"], "token": DEAD["token"], "deployment_id": ID, "expired": expired, **extra}


def test_a_rerun_of_the_same_release_resumes_with_the_entrys_colours():
    before = journal.plan_resume(lock(), deploy_entry(), RELEASE, live_color="blue")
    assert before["deployment_id"] == ID and before["switched"] is False
    assert (before["from_color"], before["to_color"], before["from_version"]) == ("blue", "green", {"image_id": "ami-1"})
    after = journal.plan_resume(lock(), deploy_entry(), RELEASE, live_color="green")  # killed after the switch
    assert (after["from_color"], after["to_color"], after["switched"]) == ("blue", "green", True)
    assert after["steps_left"] == "verify, bake, standby, close"
    assert after["switched_at"] is None and before["switched_at"] is None  # the dead run noted no switch
    entry = deploy_entry()
    entry["record"]["switch_started_at"] = 1767268800.25  # noted as the switch began: the bake's baseline ends there
    assert journal.plan_resume(lock(), entry, RELEASE, live_color="green")["switched_at"] == 1767268800.25
    assert journal.plan_resume(lock(), entry, RELEASE, live_color="blue")["switched_at"] is None  # switched back since


def test_a_live_lease_is_resumed_only_when_the_rerun_takes_it_by_name():
    assert journal.plan_resume(lock(expired=False), deploy_entry(), RELEASE, live_color="blue") is None
    assert journal.plan_resume(lock(expired=False), deploy_entry(), RELEASE, takeover=DEAD["token"], live_color="blue") is not None
    assert journal.plan_resume(lock(expired=False), deploy_entry(), RELEASE, takeover=DEAD["owner"], live_color="blue") is not None
    assert journal.plan_resume(lock(expired=False), deploy_entry(), RELEASE, takeover="awx-job-3", live_color="blue") is None


@pytest.mark.parametrize(
    ("release", "entry", "live", "split"),
    [
        (dict(RELEASE, image_id="ami-3"), deploy_entry(), "blue", False),  # another version
        (dict(RELEASE, user_data_sha256="cd34"), deploy_entry(), "blue", False),
        (dict(RELEASE, instance_type="t3.large"), deploy_entry(), "blue", False),
        (dict(RELEASE, phase="canary"), deploy_entry(), "blue", False),  # another phase
        (RELEASE, deploy_entry(outcome="interrupted"), "blue", False),  # already closed
        (RELEASE, deploy_entry(), "blue", True),  # split, but the release had no canary share
        (RELEASE, deploy_entry(), None, False),  # production is neither where it was nor where it went
    ],
)
def test_anything_else_is_a_new_release(release, entry, live, split):
    assert journal.plan_resume(lock(), entry, release, live_color=live, split=split) is None


def test_a_canary_killed_while_split_resumes_unswitched():
    entry = deploy_entry(phase="canary")
    resumed = journal.plan_resume(lock(), entry, dict(RELEASE, phase="canary"), live_color="blue", split=True)
    assert resumed["switched"] is False and resumed["deployment_id"] == ID


def test_no_lease_or_a_lease_of_another_entry_resumes_nothing():
    assert journal.plan_resume(None, deploy_entry(), RELEASE, live_color="blue") is None
    assert journal.plan_resume(lock(deployment_id="20260101T110000Z-0"), deploy_entry(), RELEASE, live_color="blue") is None
    assert journal.plan_resume(lock(), None, RELEASE, live_color="blue") is None
