"""The one waiter: conditions, progress lines, the time waited, timeouts naming what is unmet, failing predicates."""

from __future__ import annotations

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import fence, lease_rules, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, Waiter, WaitTimeout

from .fake_clock import FakeClock


def holds_after(clock, seconds, result="done"):
    """A check that holds from ``seconds`` of fake time on, counting its looks."""
    looks = []

    def check():
        looks.append(clock())
        return result if clock() >= seconds else None

    return check, looks


def test_a_wait_returns_the_result_how_long_it_waited_and_its_looks_and_says_so():
    clock, lines = FakeClock(100.0), []
    check, looks = holds_after(clock, 104.0)
    waited = Waiter(lines.append, delay=1, factor=2, max_delay=8, clock=clock, sleep=clock.sleep).wait(
        Condition("green to be healthy", check), 60
    )
    assert waited == ("done", 7.0, 4)  # looks at 0, 1, 3 and 7 s: pauses of 1, 2 and 4 s
    assert looks == [100.0, 101.0, 103.0, 107.0] and clock.sleeps == [1, 2, 4]
    assert lines == ["green to be healthy: done after 7.0 s (4 looks)"]


def test_a_condition_that_holds_at_once_is_one_look_and_no_line():
    clock, lines = FakeClock(), []
    waited = Waiter(lines.append, clock=clock, sleep=clock.sleep).wait(Condition("nothing", lambda: {"ok": 1}), 10)
    assert waited == ({"ok": 1}, 0.0, 1) and lines == [] and clock.sleeps == []


def test_progress_is_reported_at_most_every_ten_seconds_with_where_it_stands():
    clock, lines = FakeClock(), []
    check, _looks = holds_after(clock, 35.0)
    state = iter("abcdefghijklmnopqrstuvwxyz")
    condition = Condition("targets of blue to drain", check, lambda: f"{next(state)} still draining")
    Waiter(lines.append, delay=2, factor=1, clock=clock, sleep=clock.sleep).wait(condition, 60)
    assert lines == [
        "still waiting for targets of blue to drain after 10 s: a still draining",
        "still waiting for targets of blue to drain after 20 s: b still draining",
        "still waiting for targets of blue to drain after 30 s: c still draining",
        "targets of blue to drain: done after 36.0 s (19 looks)",
    ]


def test_the_timeout_names_the_condition_still_unmet_and_where_it_stands():
    clock, lines = FakeClock(), []
    first, _ = holds_after(clock, 3.0)
    never = Condition("green to serve", lambda: None, lambda: "1 of 2 targets healthy")
    with pytest.raises(WaitTimeout) as caught:
        Waiter(lines.append, delay=1, factor=1, clock=clock, sleep=clock.sleep).wait_all([Condition("green InService", first), never], 20)
    assert caught.value.message == "timed out after 17 s waiting for green to serve: 1 of 2 targets healthy"
    assert caught.value.details["condition"] == "green to serve" and caught.value.details["waited"] == 17.0
    assert clock() == 20.0  # one deadline for both conditions, the last pause cut short to meet it
    assert lines[0] == "green InService: done after 3.0 s (4 looks)"


def test_conditions_in_turn_each_say_how_long_they_took():
    clock = FakeClock()
    first, _ = holds_after(clock, 2.0, "in service")
    second, _ = holds_after(clock, 5.0, "healthy")
    waiter = Waiter(delay=1, factor=1, clock=clock, sleep=clock.sleep)
    one, two = waiter.wait_all([Condition("in service", first), Condition("healthy", second, pace={"delay": 0.5, "factor": 1})], 60)
    assert (one.result, one.seconds, two.result, two.seconds) == ("in service", 2.0, "healthy", 3.0)
    assert clock.sleeps == [1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]  # each condition at its own pace


def test_a_failing_predicate_ends_the_wait_at_once_with_its_own_error():
    clock = FakeClock()
    looks = []

    def check():
        looks.append(clock())
        if len(looks) == 3:
            raise CutoverError("i-2:8080 stayed unhealthy", unhealthy_targets=["i-2:8080"])
        return None

    with pytest.raises(CutoverError) as caught:
        Waiter(delay=1, factor=1, clock=clock, sleep=clock.sleep).wait(Condition("green to be healthy", check), 600)
    assert not isinstance(caught.value, WaitTimeout)
    assert caught.value.message == "i-2:8080 stayed unhealthy" and caught.value.details["unhealthy_targets"] == ["i-2:8080"]
    assert looks == [0, 1, 2] and clock() == 2  # no look after the failure, no waiting for the timeout


def test_wait_sleep_caps_the_pause_whatever_the_pace():
    clock = FakeClock()
    check, _ = holds_after(clock, 12.0)
    waiter = waits.waiter_of({"wait_sleep": 2}).paced(delay=1, max_delay=15, factor=2)
    waiter.clock, waiter.sleep = clock, clock.sleep
    waiter.wait(Condition("x", check), 60)
    assert clock.sleeps == [1, 2, 2, 2, 2, 2, 2]


def test_a_negative_timeout_is_refused_before_the_first_look():
    looks = []
    with pytest.raises(CutoverError, match="timeout must be zero or more seconds, got -1"):
        Waiter().wait(Condition("x", lambda: looks.append(1)), -1)
    assert looks == []


def test_every_look_asks_the_fence_first():
    class Lost:
        def look(self, what):
            raise lease_rules.LostLock(f"the lock of service shop is now held by bob; stopped before {what}")

    looks, clock = [], FakeClock()
    with fence.fenced(Lost()), pytest.raises(lease_rules.LostLock, match="stopped before waiting for green to be healthy"):
        Waiter(clock=clock, sleep=clock.sleep).wait(Condition("green to be healthy", lambda: looks.append(1)), 60)
    assert looks == [] and clock() == 0


@pytest.mark.parametrize(
    ("params", "limits", "message"),
    [
        ({"wait_timeout": -1}, None, "wait_timeout must be zero or more seconds, got -1"),
        ({"wait_sleep": -2}, None, "wait_sleep must be zero or more seconds, got -2"),
        ({"wait_timeout": 90000}, {"wait_timeout": 86400}, "wait_timeout must be from 0 to 86400 seconds, got 90000"),
        ({"unhealthy_timeout": True}, None, "unhealthy_timeout must be a number of seconds, got True"),
    ],
)
def test_the_wait_options_are_checked_once_naming_the_option(params, limits, message):
    with pytest.raises(CutoverError, match=message):
        waits.validate(dict({"wait_timeout": 600, "wait_sleep": None}, **params), limits)
    waits.validate({"wait_timeout": 0, "wait_sleep": None, "unhealthy_timeout": 30})


def test_the_wait_options_compose_with_their_former_names_as_aliases():
    spec = waits.argument_spec(300, aliases=["timeout"], wait_aliases=["verify"])
    assert spec == {
        "wait": {"type": "bool", "default": True, "aliases": ["verify"]},
        "wait_timeout": {"type": "int", "default": 300, "aliases": ["timeout"]},
        "wait_sleep": {"type": "int"},
    }
    assert waits.argument_spec(None, wait=False) == {"wait_timeout": {"type": "int"}, "wait_sleep": {"type": "int"}}
