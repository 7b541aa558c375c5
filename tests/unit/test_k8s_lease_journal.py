"""The Lease lock and the ConfigMap journal on Kubernetes: decisions (pure), and their writes against an
in-memory API with the API server's optimistic concurrency (a stale resourceVersion gets 409)."""

from __future__ import annotations

import datetime
import json

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_journal, k8s_lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError

from tests.unit.k8s_objects import FakeKube

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
A, B = "token-run-a", "token-run-b"


def later(seconds):
    return NOW + datetime.timedelta(seconds=seconds)


def held(kube, token=A, owner="alice", seconds=60, purpose="deploy v2", at=NOW, deployment_id=None):
    return k8s_lease.acquire(kube, "shop", "shop", owner, token, seconds, purpose=purpose, deployment_id=deployment_id, now=at)


# -- decisions ---------------------------------------------------------------------------------------------
def test_a_lease_is_taken_renewed_and_left_alone_by_its_own_run():
    kube = FakeKube()
    first = held(kube)
    assert (first["changed"], first["operation"]) == (True, "acquire")
    stored = kube.objects[("coordination.k8s.io/leases", "shop-cutover-lock")]
    assert stored["spec"]["holderIdentity"] == A and stored["spec"]["leaseDurationSeconds"] == 60
    assert stored["metadata"]["annotations"]["cutover.bluegreen/owner"] == "alice"
    again = held(kube, at=later(10))
    assert (again["changed"], again["operation"]) == (False, "unchanged")
    renewed = held(kube, at=later(40))  # less than half of the lease left
    assert renewed["operation"] == "renew" and renewed["lock"]["acquired_at"] == "2026-01-01T12:00:00Z"
    assert renewed["lock"]["expires_at"] == "2026-01-01T12:01:40Z"


def test_another_runs_live_lease_is_refused_naming_holder_purpose_since_until_and_how_to_take_over():
    kube = FakeKube()
    held(kube)
    with pytest.raises(CutoverError) as refused:
        held(kube, token=B, owner="bob", at=later(5))
    message = refused.value.message
    assert "app shop is locked by alice (deploy v2) since 2026-01-01T12:00:00Z, until 2026-01-01T12:01:00Z (55 s left)" in message
    assert f"takeover={A}" in message
    assert refused.value.details["holder"] == "alice" and refused.value.details["takeover_hint"] == f"takeover={A}"
    # the same owner with another token is another run
    with pytest.raises(CutoverError, match="locked by alice"):
        held(kube, token=B, owner="alice", at=later(5))


def test_an_expired_lease_is_taken_over_and_a_live_one_only_by_naming_its_holder():
    kube = FakeKube()
    held(kube, deployment_id="20260101T120000Z-aaaaaaaa")
    named = k8s_lease.acquire(kube, "shop", "shop", "bob", B, 60, takeover="alice", now=later(5))
    assert named["operation"] == "take_over_named"
    (taken,) = named["lock"]["takeovers"]
    assert (taken["owner"], taken["token"], taken["reason"], taken["deployment_id"]) == ("alice", A, "named", "20260101T120000Z-aaaaaaaa")
    with pytest.raises(CutoverError, match=r"takeover=carol does not name the holder of the lock: app shop is locked by bob"):
        k8s_lease.acquire(kube, "shop", "shop", "carol", "token-run-c", 60, takeover="carol", now=later(10))
    expired = k8s_lease.acquire(kube, "shop", "shop", "carol", "token-run-c", 60, now=later(70))
    assert expired["operation"] == "take_over" and [t["reason"] for t in expired["lock"]["takeovers"]] == ["named", "expired"]
    assert kube.objects[("coordination.k8s.io/leases", "shop-cutover-lock")]["spec"]["leaseTransitions"] == 2


def test_only_the_holding_run_renews_checks_and_releases():
    kube = FakeKube()
    held(kube)
    with pytest.raises(k8s_lease.LostLock, match=r"lost the lock: the lock of app shop is now held by alice"):
        k8s_lease.check(kube, "shop", "shop", B, now=later(1))
    with pytest.raises(k8s_lease.LostLock):
        k8s_lease.renew(kube, "shop", "shop", B, now=later(1))
    with pytest.raises(
        k8s_lease.LostLock,
        match=r"held by alice \(deploy v2\) \(token token-run-a\).* not by this run \(token token-run-b\); it was not released",
    ):
        k8s_lease.release(kube, "shop", "shop", B, now=later(1))
    assert k8s_lease.renew(kube, "shop", "shop", A, 60, now=later(50))["expires_at"] == "2026-01-01T12:01:50Z"
    with pytest.raises(k8s_lease.LostLock, match="expired at 2026-01-01T12:01:50Z"):
        k8s_lease.check(kube, "shop", "shop", A, now=later(200))
    released = k8s_lease.release(kube, "shop", "shop", A, now=later(51))
    assert (released["changed"], released["operation"]) == (True, "release")
    stored = kube.objects[("coordination.k8s.io/leases", "shop-cutover-lock")]
    assert "holderIdentity" not in stored["spec"] and "cutover.bluegreen/owner" not in stored["metadata"]["annotations"]
    assert k8s_lease.release(kube, "shop", "shop", A, now=later(52))["operation"] == "not_held"
    assert k8s_lease.read(kube, "shop", "shop", now=later(52)) is None


def test_the_loser_of_a_race_reads_again_and_is_refused():
    kube = FakeKube()
    held(kube, at=later(-120))  # an expired lease both runs want to take over
    # run B gets in between run A's read and its write: A's update names a stale resourceVersion (409)
    kube.interfere = lambda k: k8s_lease.acquire(k, "shop", "shop", "bob", B, 60, now=NOW)
    with pytest.raises(CutoverError, match="app shop is locked by bob"):
        k8s_lease.acquire(kube, "shop", "shop", "carol", "token-run-c", 60, now=NOW)
    assert kube.objects[("coordination.k8s.io/leases", "shop-cutover-lock")]["spec"]["holderIdentity"] == B
    assert [c[0] for c in kube.calls].count("update") == 2  # B's takeover, and A's refused one


def test_check_mode_writes_nothing():
    kube = FakeKube()
    result = k8s_lease.acquire(kube, "shop", "shop", "alice", A, 60, check_mode=True, now=NOW)
    assert result["changed"] and result["lock"]["owner"] == "alice" and kube.objects == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": "short"}, "token must name one run: 8 to 128"),
        ({"owner": " "}, "owner must be a non-empty string"),
        ({"lease_seconds": 0}, "lease_seconds must be greater than 0, got 0"),
        ({"takeover": ""}, "takeover must name the holder"),
    ],
)
def test_bad_lock_input_is_refused(kwargs, message):
    with pytest.raises(CutoverError, match=message):
        k8s_lease.validate(**kwargs)


def test_the_fence_renews_on_waits_and_checks_before_changes():
    kube = FakeKube()
    held(kube, at=k8s_lease.utcnow())
    clock = [0.0]
    fence = k8s_lease.Fence(kube, "shop", "shop", A, lease_seconds=60, clock=lambda: clock[0])
    fence.guard("patching")
    clock[0] = 16.0  # past a quarter of the lease: a look renews
    fence.look("the rollout")
    assert fence.renewals == 1
    k8s_lease.acquire(kube, "shop", "shop", "bob", B, 60, takeover=A)
    with pytest.raises(k8s_lease.LostLock, match="stopped before switching"):
        fence.guard("switching")


# -- journal ------------------------------------------------------------------------------------------------
def journal_of(kube):
    return {k: json.loads(v) for k, v in kube.objects[("configmaps", "shop-cutover-journal")]["data"].items()}


def test_entries_are_opened_stepped_and_closed_in_the_config_map():
    kube = FakeKube()
    opened = k8s_journal.start(kube, "shop", "shop", owner="alice", record={"to_image": "v2"}, now=NOW)
    deployment_id = opened["deployment_id"]
    assert deployment_id.startswith("20260101T120000Z-") and opened["changed"]
    k8s_journal.step(kube, "shop", "shop", deployment_id, "rollout", "started", now=later(1))
    k8s_journal.step(kube, "shop", "shop", deployment_id, "rollout", "finished", now=later(31))
    closed = k8s_journal.finish(kube, "shop", "shop", deployment_id, "succeeded", summary="v2 live", now=later(40))
    entry = journal_of(kube)[deployment_id]
    assert (entry["outcome"], entry["duration_seconds"], entry["steps"]["rollout"]["seconds"]) == ("succeeded", 40, 30)
    assert entry["record"] == {"to_image": "v2"} and entry["summary"] == "v2 live" and closed["changed"]
    again = k8s_journal.finish(kube, "shop", "shop", deployment_id, "succeeded", summary="v2 live", now=later(50))
    assert not again["changed"]
    with pytest.raises(CutoverError, match="deployment 20260101T000000Z-nothere1 of app shop is not in the journal"):
        k8s_journal.finish(kube, "shop", "shop", "20260101T000000Z-nothere1", "failed")


def test_concurrent_writers_never_lose_each_others_entries():
    kube = FakeKube()
    first = k8s_journal.start(kube, "shop", "shop", owner="alice", deployment_id="20260101T120000Z-aaaaaaaa", now=NOW)
    kube.interfere = lambda k: k8s_journal.start(k, "shop", "shop", owner="bob", deployment_id="20260101T120001Z-bbbbbbbb", now=NOW)
    k8s_journal.finish(kube, "shop", "shop", first["deployment_id"], "failed", now=later(5))
    entries = journal_of(kube)
    assert sorted(entries) == ["20260101T120000Z-aaaaaaaa", "20260101T120001Z-bbbbbbbb"]
    assert entries["20260101T120000Z-aaaaaaaa"]["outcome"] == "failed"


def test_the_newest_entries_are_kept_and_open_ones_never_dropped():
    entries = {f"20260101T1200{i:02d}Z-aaaaaaaa": {"outcome": "succeeded"} for i in range(5)}
    entries["20260101T120000Z-aaaaaaaa"] = {"outcome": "in_progress"}
    kept = k8s_journal.prune(entries, keep=3)
    assert sorted(kept) == ["20260101T120000Z-aaaaaaaa", "20260101T120003Z-aaaaaaaa", "20260101T120004Z-aaaaaaaa"]


def test_taking_over_a_dead_runs_lease_closes_its_entry_as_interrupted():
    kube = FakeKube()
    entry, _, settled = k8s_journal.open_under_lock(kube, "shop", "shop", "alice", A, 60, purpose="deploy v2", now=NOW)
    assert settled is None
    assert k8s_lease.read(kube, "shop", "shop", now=NOW)["deployment_id"] == entry["deployment_id"]
    mine, locked, settled = k8s_journal.open_under_lock(kube, "shop", "shop", "bob", B, 60, purpose="rollback", takeover=A, now=later(5))
    assert locked["operation"] == "take_over_named" and settled["action"] == "interrupt"
    dead = journal_of(kube)[entry["deployment_id"]]
    assert dead["outcome"] == "interrupted" and dead["summary"].startswith(
        "interrupted: its run alice stopped; bob took the lock from it by name"
    )
    assert journal_of(kube)[mine["deployment_id"]]["record"]["took_over"]["owner"] == "alice"
    # the run that lost its lock cannot close its entry any more
    with pytest.raises(k8s_lease.LostLock):
        k8s_journal.close_under_lock(
            kube, "shop", "shop", A, lambda: k8s_journal.finish(kube, "shop", "shop", entry["deployment_id"], "failed")
        )
    assert journal_of(kube)[entry["deployment_id"]]["outcome"] == "interrupted"


def test_a_rerun_with_the_same_deployment_id_adopts_the_entry():
    assert k8s_journal.plan_settle({"deployment_id": "x"}, {"outcome": "in_progress"}, "x")[0] == k8s_journal.ADOPT
    assert k8s_journal.plan_settle({"deployment_id": "x"}, {"outcome": "failed"}, "y")[0] == k8s_journal.LEAVE
    assert k8s_journal.plan_settle({}, None, "y")[0] == k8s_journal.LEAVE


def test_interrupted_is_an_outcome_and_others_are_refused():
    changes = k8s_journal.plan_finish({"started_at": "2026-01-01T12:00:00Z", "outcome": "in_progress"}, "interrupted", later(30))
    assert changes[("outcome",)] == "interrupted" and changes[("duration_seconds",)] == 30
    with pytest.raises(CutoverError, match="outcome 'done' is not one of succeeded, failed, rolled_back, interrupted"):
        k8s_journal.plan_finish({}, "done", NOW)


# -- the heartbeat and the controller's life ----------------------------------------------------------------------
def test_the_heartbeat_renews_every_quarter_of_the_lease_while_the_controller_lives_and_stops_at_its_death():
    from tests.unit.fake_clock import FakeClock

    kube = FakeKube()
    k8s_lease.acquire(kube, "shop", "shop", "alice", A, 20, purpose="deploy v2")
    clock = FakeClock()
    deaths = iter([None] * 25 + ["the controller (pid 4242) is gone"])
    held = k8s_lease.hold(
        kube,
        "shop",
        "shop",
        A,
        20,
        {"pid": 4242},
        max_seconds=100,  # a heartbeat that missed the death would end here
        clock=clock,
        sleep=clock.sleep,
        controller_problem=lambda _c: next(deaths, "the controller (pid 4242) is gone"),
    )
    assert held["stopped"] == "controller_gone" and held["reason"] == "the controller (pid 4242) is gone"
    assert held["renewals"] == 4  # looks a second apart for 25 s: renewed at 5, 10, 15 and 20 s
    writes = [call for call in kube.calls if call[0] == "update"]
    assert len(writes) == 4


def test_the_heartbeat_stops_when_another_run_took_the_lease():
    from tests.unit.fake_clock import FakeClock

    kube = FakeKube()
    k8s_lease.acquire(kube, "shop", "shop", "alice", A, 20)
    k8s_lease.acquire(kube, "shop", "shop", "bob", B, 20, takeover="alice")
    clock = FakeClock()
    held = k8s_lease.hold(
        kube, "shop", "shop", A, 20, {"pid": 1}, max_seconds=100, clock=clock, sleep=clock.sleep, controller_problem=lambda _c: None
    )
    assert held["stopped"] == "not_held" and "now held by bob" in held["reason"] and held["renewals"] == 0
    assert kube.objects[("coordination.k8s.io/leases", "shop-cutover-lock")]["spec"]["holderIdentity"] == B  # untouched


def test_a_fence_with_a_controller_stops_the_work_of_a_dead_run_before_its_next_change():
    kube = FakeKube()
    k8s_lease.acquire(kube, "shop", "shop", "alice", A, 60)
    alive = k8s_lease.Fence(kube, "shop", "shop", A, controller={"pid": 1}, controller_problem=lambda _c: None)
    alive.guard("patching Deployment shop-green")  # lease and controller fine
    dead = k8s_lease.Fence(kube, "shop", "shop", A, controller={"pid": 1}, controller_problem=lambda _c: "the controller (pid 1) is gone")
    before = len(kube.calls)
    with pytest.raises(k8s_lease.LostLock, match=r"lost the lock: the controller \(pid 1\) is gone, .* before patching Deployment"):
        dead.guard("patching Deployment shop-green")
    with pytest.raises(k8s_lease.LostLock, match="stopped before the rollout"):
        dead.look("the rollout")
    assert len(kube.calls) == before  # not even a read


def test_a_missing_lease_or_journal_reads_as_none_and_any_other_error_is_raised():
    from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import KubeError

    kube = FakeKube()
    assert k8s_lease.read_object(kube, "shop", "shop") is None
    assert k8s_journal.read_object(kube, "shop", "shop") is None
    forbidden = KubeError("get coordination.k8s.io/leases failed: 403 Forbidden", status=403, reason="Forbidden")
    kube.fail[("get", "coordination.k8s.io/leases", "shop-cutover-lock")] = forbidden
    with pytest.raises(KubeError, match="403 Forbidden"):  # not taken for a free lock
        k8s_lease.read_object(kube, "shop", "shop")
    held(kube)
    assert k8s_lease.read_object(kube, "shop", "shop")["spec"]["holderIdentity"] == A
