"""Target health: every target counts, unhealthy ones fail fast with their reasons."""

from __future__ import annotations

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.health import (
    default_unhealthy_timeout,
    describe_target,
    evaluate,
    wait_healthy,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import WaitTimeout

from tests.unit.fake_clock import FakeClock

TG = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/shop-green/1"


def target(instance_id, state="healthy", reason=None, description=None, port=8080):
    return {"id": instance_id, "port": port, "state": state, "reason": reason, "description": description}


class FakeElbv2:
    """Answers DescribeTargetHealth with the given states in order; the last one repeats."""

    def __init__(self, *states):
        self.states = list(states)
        self.calls = 0

    def describe_target_health(self, TargetGroupArn, aws_retry=False):
        assert TargetGroupArn == TG
        self.calls += 1
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {
            "TargetHealthDescriptions": [
                {
                    "Target": {"Id": t["id"], "Port": t["port"]},
                    "TargetHealth": {
                        k: v for k, v in (("State", t["state"]), ("Reason", t["reason"]), ("Description", t["description"])) if v
                    },
                }
                for t in state
            ]
        }


# --- evaluate -----------------------------------------------------------------------------------
def test_all_healthy_and_enough_is_ready():
    assert evaluate([target("i-1"), target("i-2")], 2) == (True, [])


def test_every_target_counts_not_the_first():
    ready, problems = evaluate([target("i-1"), target("i-2", "unhealthy", "Target.Timeout", "Request timed out")], 1)
    assert ready is False
    assert problems == ["i-2:8080 unhealthy (Target.Timeout: Request timed out)"]


def test_initial_targets_are_waited_on():
    ready, problems = evaluate([target("i-1"), target("i-2", "initial", "Elb.RegistrationInProgress")], 1)
    assert ready is False and problems == ["i-2:8080 initial (Elb.RegistrationInProgress)"]


def test_draining_targets_are_reported_but_not_counted():
    targets = [target("i-1"), target("i-2"), target("i-old", "draining", "Target.DeregistrationInProgress")]
    ready, problems = evaluate(targets, 2)
    assert ready is True
    assert problems == ["i-old:8080 draining (Target.DeregistrationInProgress) - leaving the group, not counted"]
    ready, problems = evaluate([target("i-1"), target("i-old", "draining")], 2)
    assert ready is False and "only 1 target(s) registered, at least 2 wanted" in problems


@pytest.mark.parametrize(
    ("state", "reason"),
    [("unused", "Target.NotInUse"), ("unavailable", "Target.HealthCheckDisabled"), ("unhealthy", "Target.FailedHealthChecks")],
)
def test_other_states_block_readiness(state, reason):
    ready, problems = evaluate([target("i-1"), target("i-2", state, reason)], 1)
    assert ready is False and problems == [f"i-2:8080 {state} ({reason})"]


def test_too_few_registered_is_not_ready():
    assert evaluate([target("i-1")], 2) == (False, ["only 1 target(s) registered, at least 2 wanted"])
    assert evaluate([], 1) == (False, ["only 0 target(s) registered, at least 1 wanted"])


def test_min_healthy_zero_with_no_targets_is_ready_and_negative_is_refused():
    assert evaluate([], 0) == (True, [])
    with pytest.raises(CutoverError, match="min_healthy must not be negative"):
        evaluate([], -1)


def test_describe_target_without_port_or_reason():
    assert describe_target({"id": "10.0.0.5", "port": None, "state": "initial", "reason": None}) == "10.0.0.5 initial"


def test_default_unhealthy_timeout_is_a_few_intervals():
    assert default_unhealthy_timeout(30, 5) == 210
    assert default_unhealthy_timeout(5, 2) == 30
    assert default_unhealthy_timeout() == 210


# --- wait_healthy ----------------------------------------------------------------------------------
def test_initial_then_healthy_returns_counts_and_the_time_waited():
    clock = FakeClock()
    messages = []
    elbv2 = FakeElbv2(
        [target("i-1", "initial"), target("i-2", "initial")],
        [target("i-1"), target("i-2", "initial")],
        [target("i-1"), target("i-2")],
    )
    summary, waited = wait_healthy(elbv2, TG, min_healthy=2, timeout=60, progress=messages.append, clock=clock, sleep=clock.sleep, delay=1)
    assert (summary["registered"], summary["healthy"], summary["ready"]) == (2, 2, True)
    assert [t["id"] for t in summary["targets"]] == ["i-1", "i-2"]
    assert elbv2.calls == 3
    assert waited == clock.now == 2.5  # 1 s, then 1.5 s


def test_a_target_that_stays_unhealthy_fails_early_naming_it_and_its_reason():
    clock = FakeClock()
    stuck = target("i-2", "unhealthy", "Target.ResponseCodeMismatch", "Health checks failed with these codes: [502]")
    elbv2 = FakeElbv2([target("i-1", "initial"), target("i-2", "initial")], [target("i-1"), stuck])
    with pytest.raises(CutoverError) as error:
        wait_healthy(
            elbv2, TG, min_healthy=2, timeout=600, unhealthy_timeout=20, name="shop-green", clock=clock, sleep=clock.sleep, delay=1
        )
    message = error.value.message
    assert message.startswith("target group shop-green: 1 target(s) stayed unhealthy for 20 s or longer")
    assert "i-2:8080 unhealthy (Target.ResponseCodeMismatch: Health checks failed with these codes: [502])" in message
    assert not isinstance(error.value, WaitTimeout)
    assert [t["id"] for t in error.value.details["unhealthy_targets"]] == ["i-2"]
    assert 20 <= clock.now < 60  # long before the 600 s timeout


def test_a_target_unhealthy_for_a_while_then_healthy_does_not_fail():
    clock = FakeClock()
    flaky = target("i-1", "unhealthy", "Target.FailedHealthChecks")
    elbv2 = FakeElbv2([flaky], [flaky], [target("i-1")])
    summary, _ = wait_healthy(elbv2, TG, min_healthy=1, timeout=60, unhealthy_timeout=5, clock=clock, sleep=clock.sleep, delay=1)
    assert summary["healthy"] == 1


def test_fewer_targets_than_wanted_times_out_with_a_clear_message():
    clock = FakeClock()
    elbv2 = FakeElbv2([target("i-1")])
    with pytest.raises(WaitTimeout) as error:
        wait_healthy(elbv2, TG, min_healthy=2, timeout=30, name="shop-green", clock=clock, sleep=clock.sleep)
    assert error.value.message == (
        "timed out after 30 s waiting for every target of target group shop-green to be healthy (at least 2): "
        "only 1 target(s) registered, at least 2 wanted"
    )
    assert error.value.details["health"]["registered"] == 1
    assert clock.now == 30


def test_unused_targets_fail_after_the_unhealthy_timeout_too():
    clock = FakeClock()
    elbv2 = FakeElbv2([target("i-1", "unused", "Target.NotInUse", "Target group is not configured to receive traffic")])
    with pytest.raises(CutoverError, match=r"i-1:8080 unused \(Target.NotInUse: Target group is not configured"):
        wait_healthy(elbv2, TG, min_healthy=1, timeout=600, unhealthy_timeout=10, clock=clock, sleep=clock.sleep)


def test_draining_targets_do_not_hold_the_wait_and_are_reported():
    clock = FakeClock()
    elbv2 = FakeElbv2([target("i-1"), target("i-old", "draining", "Target.DeregistrationInProgress")])
    summary, waited = wait_healthy(elbv2, TG, min_healthy=1, timeout=60, clock=clock, sleep=clock.sleep)
    assert waited == 0 and summary["draining"] == ["i-old:8080"]
    assert summary["by_state"] == {"healthy": 1, "draining": 1}


@pytest.mark.parametrize("option", ["min_healthy", "timeout", "unhealthy_timeout"])
def test_negative_numbers_are_refused_before_any_call(option):
    elbv2 = FakeElbv2([])
    kwargs = {"min_healthy": 1, "timeout": 10, "unhealthy_timeout": 10, option: -1}
    with pytest.raises(CutoverError, match=f"{option} must not be negative, got -1"):
        wait_healthy(elbv2, TG, **kwargs)
    assert elbv2.calls == 0


def test_min_healthy_zero_on_an_empty_group_is_ready_at_once():
    summary, waited = wait_healthy(FakeElbv2([]), TG, min_healthy=0, timeout=5)
    assert summary["registered"] == 0 and waited < 1
