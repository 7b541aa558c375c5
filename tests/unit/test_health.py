"""The health wait: the colour's own instances count, unhealthy ones fail fast with their reasons, foreign ones at once."""

from __future__ import annotations

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import assess
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.health import (
    default_unhealthy_timeout,
    describe_target,
    look_pace,
    wait_healthy,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import summarize_asg
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import WaitTimeout

from tests.unit.fake_clock import FakeClock

TG = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/shop-green/1"


def target(instance_id, state="healthy", reason=None, description=None, port=8080):
    return {"id": instance_id, "port": port, "state": state, "reason": reason, "description": description}


class FakeElbv2:
    """Answers DescribeTargetHealth with the given states in order (the last one repeats); records writes."""

    def __init__(self, *states):
        self.states = list(states)
        self.calls = 0
        self.writes = []

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

    def deregister_targets(self, TargetGroupArn, Targets, aws_retry=False):
        assert aws_retry and TargetGroupArn == TG
        self.writes.append(("deregister", Targets))

    def register_targets(self, TargetGroupArn, Targets, aws_retry=False):
        assert aws_retry and TargetGroupArn == TG
        self.writes.append(("register", Targets))


class FakeAutoscaling:
    """The group shop-green with the given InService instances (all on version 2 unless told)."""

    def __init__(self, *instances, versions=None):
        self.instances = instances
        self.versions = versions or {}
        self.calls = 0

    def describe_auto_scaling_groups(self, AutoScalingGroupNames, aws_retry=False):
        assert AutoScalingGroupNames == ["shop-green"] and aws_retry
        self.calls += 1
        return {
            "AutoScalingGroups": [
                {
                    "AutoScalingGroupName": "shop-green",
                    "MinSize": 2,
                    "MaxSize": 4,
                    "DesiredCapacity": 2,
                    "LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "2"},
                    "Instances": [
                        {
                            "InstanceId": i,
                            "LifecycleState": "InService",
                            "HealthStatus": "Healthy",
                            "LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": self.versions.get(i, "2")},
                        }
                        for i in self.instances
                    ],
                    "Tags": [],
                }
            ]
        }


GROUP = FakeAutoscaling("i-1", "i-2")


def wait(elbv2, autoscaling=GROUP, **kwargs):
    return wait_healthy(elbv2, autoscaling, TG, "shop-green", **kwargs)


def asg(*instances):
    return summarize_asg(FakeAutoscaling(*instances).describe_auto_scaling_groups(["shop-green"], aws_retry=True)["AutoScalingGroups"][0])


def evaluate(asg, targets, min_healthy):
    """What the wait decides on each look: ``capacity.assess`` in short."""
    assessment = assess(asg, targets, min_healthy)
    return assessment["ready"], assessment["problems"]


# --- evaluate -----------------------------------------------------------------------------------
def test_all_healthy_and_enough_is_ready():
    assert evaluate(asg("i-1", "i-2"), [target("i-1"), target("i-2")], 2) == (True, [])


def test_every_target_counts_not_the_first():
    ready, problems = evaluate(asg("i-1", "i-2"), [target("i-1"), target("i-2", "unhealthy", "Target.Timeout", "Request timed out")], 1)
    assert ready is False
    assert problems == ["i-2:8080 unhealthy (Target.Timeout: Request timed out)"]


def test_initial_targets_are_waited_on():
    ready, problems = evaluate(asg("i-1", "i-2"), [target("i-1"), target("i-2", "initial", "Elb.RegistrationInProgress")], 1)
    assert ready is False and problems == ["i-2:8080 initial (Elb.RegistrationInProgress)"]


def test_draining_targets_are_reported_but_not_counted():
    targets = [target("i-1"), target("i-2"), target("i-old", "draining", "Target.DeregistrationInProgress")]
    ready, problems = evaluate(asg("i-1", "i-2"), targets, 2)
    assert ready is True
    assert problems == ["i-old:8080 draining (Target.DeregistrationInProgress) - leaving the group, not counted"]
    ready, problems = evaluate(asg("i-1"), [target("i-1"), target("i-old", "draining")], 2)
    assert ready is False and "only 1 target(s) registered, at least 2 wanted" in problems


@pytest.mark.parametrize(
    ("state", "reason"),
    [("unused", "Target.NotInUse"), ("unavailable", "Target.HealthCheckDisabled"), ("unhealthy", "Target.FailedHealthChecks")],
)
def test_other_states_block_readiness(state, reason):
    ready, problems = evaluate(asg("i-1", "i-2"), [target("i-1"), target("i-2", state, reason)], 1)
    assert ready is False and problems == [f"i-2:8080 {state} ({reason})"]


def test_too_few_registered_is_not_ready():
    assert evaluate(asg("i-1"), [target("i-1")], 2) == (False, ["only 1 target(s) registered, at least 2 wanted"])
    assert evaluate(asg(), [], 1) == (False, ["only 0 target(s) registered, at least 1 wanted"])


def test_min_healthy_zero_with_no_targets_is_ready_and_negative_is_refused():
    assert evaluate(asg(), [], 0) == (True, [])
    with pytest.raises(CutoverError, match="must be a whole number, 0 or more, got -1"):
        evaluate(asg(), [], -1)


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
    autoscaling = FakeAutoscaling("i-1", "i-2")
    summary, waited = wait(elbv2, autoscaling, min_healthy=2, timeout=60, progress=messages.append, clock=clock, sleep=clock.sleep, delay=1)
    assert (summary["registered"], summary["healthy"], summary["ready"], summary["capacity"]) == (2, 2, True, 2)
    assert [t["id"] for t in summary["targets"]] == ["i-1", "i-2"]
    assert elbv2.calls == 3
    assert autoscaling.calls == 2  # the first look, and the one that found it ready: not while checks were pending
    assert waited == clock.now == 2.5  # 1 s, then 1.5 s


def test_a_target_that_stays_unhealthy_fails_early_naming_it_and_its_reason():
    clock = FakeClock()
    stuck = target("i-2", "unhealthy", "Target.ResponseCodeMismatch", "Health checks failed with these codes: [502]")
    elbv2 = FakeElbv2([target("i-1", "initial"), target("i-2", "initial")], [target("i-1"), stuck])
    with pytest.raises(CutoverError) as error:
        wait(elbv2, min_healthy=2, timeout=600, unhealthy_timeout=20, name="shop-green", clock=clock, sleep=clock.sleep, delay=1)
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
    summary, _ = wait(
        elbv2, FakeAutoscaling("i-1"), min_healthy=1, timeout=60, unhealthy_timeout=5, clock=clock, sleep=clock.sleep, delay=1
    )
    assert summary["healthy"] == 1


def test_fewer_targets_than_wanted_times_out_with_a_clear_message():
    clock = FakeClock()
    elbv2 = FakeElbv2([target("i-1")])
    with pytest.raises(WaitTimeout) as error:
        wait(elbv2, FakeAutoscaling("i-1"), min_healthy=2, timeout=30, name="shop-green", clock=clock, sleep=clock.sleep)
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
        wait(elbv2, FakeAutoscaling("i-1"), min_healthy=1, timeout=600, unhealthy_timeout=10, clock=clock, sleep=clock.sleep)


def test_draining_targets_do_not_hold_the_wait_and_are_reported():
    clock = FakeClock()
    elbv2 = FakeElbv2([target("i-1"), target("i-old", "draining", "Target.DeregistrationInProgress")])
    summary, waited = wait(elbv2, FakeAutoscaling("i-1"), min_healthy=1, timeout=60, clock=clock, sleep=clock.sleep)
    assert waited == 0 and summary["draining"] == ["i-old:8080"]
    assert summary["by_state"] == {"healthy": 1, "draining": 1}


@pytest.mark.parametrize(
    ("option", "allowed"),
    [("min_healthy", "a whole number, 0 or more"), ("timeout", "zero or more seconds"), ("unhealthy_timeout", "zero or more seconds")],
)
def test_negative_numbers_are_refused_before_any_call(option, allowed):
    elbv2 = FakeElbv2([])
    kwargs = {"min_healthy": 1, "timeout": 10, "unhealthy_timeout": 10, option: -1}
    with pytest.raises(CutoverError, match=f"{option} must be {allowed}, got -1"):
        wait(elbv2, **kwargs)
    assert elbv2.calls == 0


def test_min_healthy_zero_on_an_empty_group_is_ready_at_once():
    summary, waited = wait(FakeElbv2([]), FakeAutoscaling(), min_healthy=0, timeout=5)
    assert summary["registered"] == 0 and waited < 1


# --- what is not capacity -----------------------------------------------------------------------------
def test_a_foreign_target_fails_the_wait_at_once_naming_it():
    clock = FakeClock()
    elbv2 = FakeElbv2([target("i-1"), target("i-2"), target("i-foreign")])
    with pytest.raises(CutoverError) as error:
        wait(elbv2, min_healthy=2, timeout=600, name="shop-green", clock=clock, sleep=clock.sleep)
    assert not isinstance(error.value, WaitTimeout) and clock.now == 0 and elbv2.calls == 1
    assert error.value.message.startswith(
        "target group shop-green has 1 target(s) that are not instances of Auto Scaling group shop-green: i-foreign:8080 healthy"
    )
    assert "deregister_foreign=true; in the roles deploy_deregister_foreign or rollback_deregister_foreign" in error.value.message
    assert error.value.details["foreign_targets"] == ["i-foreign:8080"] and elbv2.writes == []


def test_deregister_foreign_deregisters_them_and_waits_for_the_groups_own_instances():
    clock = FakeClock()
    elbv2 = FakeElbv2(
        [target("i-1"), target("i-2"), target("i-foreign")],
        [target("i-1"), target("i-2"), target("i-foreign", "draining")],
    )
    summary, _ = wait(elbv2, min_healthy=2, timeout=60, deregister_foreign=True, clock=clock, sleep=clock.sleep)
    assert elbv2.writes == [("deregister", [{"Id": "i-foreign", "Port": 8080}])]
    assert summary["deregistered"] == ["i-foreign:8080"] and summary["ready"] and summary["capacity"] == 2


def test_an_instance_on_another_version_fails_the_wait_at_once():
    clock = FakeClock()
    elbv2 = FakeElbv2([target("i-1"), target("i-old")])
    with pytest.raises(CutoverError, match=r"1 instance\(s\) on another launch-template version than 2: i-old:8080 healthy"):
        wait(
            elbv2,
            FakeAutoscaling("i-1", "i-old", versions={"i-old": "1"}),
            min_healthy=1,
            deregister_foreign=True,
            clock=clock,
            sleep=clock.sleep,
        )
    assert elbv2.writes == []  # never deregistered: it is the group's own instance


def test_repair_registers_draining_and_missing_instances_again_instead_of_waiting_on_them():
    clock = FakeClock()
    elbv2 = FakeElbv2(
        [target("i-1", "draining", port=8081)],
        [target("i-1", "initial", port=8081), target("i-2", "initial")],
        [target("i-1", port=8081), target("i-2")],
    )
    summary, _ = wait(elbv2, min_healthy=2, timeout=60, repair=True, clock=clock, sleep=clock.sleep)
    assert elbv2.writes == [("register", [{"Id": "i-1", "Port": 8081}, {"Id": "i-2"}])]
    assert summary["registered_again"] == ["i-1", "i-2"] and summary["capacity"] == 2


class GrowingAutoscaling(FakeAutoscaling):
    """The group launches i-3 after the first read."""

    def describe_auto_scaling_groups(self, AutoScalingGroupNames, aws_retry=False):
        if self.calls == 1:
            self.instances = (*self.instances, "i-3")
        return super().describe_auto_scaling_groups(AutoScalingGroupNames, aws_retry)


def test_the_group_is_read_again_before_a_target_is_called_foreign():
    clock = FakeClock()
    elbv2 = FakeElbv2(
        [target("i-1"), target("i-2", "initial")],
        [target("i-1"), target("i-2", "initial"), target("i-3", "initial")],
        [target("i-1"), target("i-2"), target("i-3")],
    )
    autoscaling = GrowingAutoscaling("i-1", "i-2")
    summary, _ = wait(elbv2, autoscaling, min_healthy=2, timeout=60, clock=clock, sleep=clock.sleep)
    assert summary["capacity"] == 3 and summary["foreign"] == [] and autoscaling.calls == 3


def test_a_long_wait_reads_the_group_every_few_looks_only():
    clock = FakeClock()
    elbv2 = FakeElbv2(*([[target("i-1"), target("i-2", "initial")]] * 9), [target("i-1"), target("i-2")])
    autoscaling = FakeAutoscaling("i-1", "i-2")
    wait(elbv2, autoscaling, min_healthy=2, timeout=600, clock=clock, sleep=clock.sleep)
    assert elbv2.calls == 10 and autoscaling.calls == 4  # looks 1, 4, 7 and 10 (which found it ready)


@pytest.mark.parametrize(
    "interval, pace",
    [(5, 1.0), (30, 5.0), (2, 0.5), (10, 2.0), (None, 5.0)],
)
def test_targets_are_looked_at_five_times_per_health_check_interval(interval, pace):
    # the last target to turn healthy is noticed at most a fifth of an interval late, 0.5 to 5 s apart
    assert look_pace(interval) == pace
