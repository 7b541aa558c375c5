"""Watching the controller, and fencing waits and changes of a run that lost its lock (fake table, fake clock)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import controller, fence, lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import poll

from .fake_clock import FakeClock
from .test_lease import OWNER, T0, TOKEN_1, TOKEN_2, FakeTable
from .test_lease import stored as stored_at_t0


def stored(expires_in=60, **item):
    """A lease expiring ``expires_in`` seconds from the real now (fences read the real clock)."""
    return stored_at_t0(expires_in=int(time.time()) - T0 + expires_in, **item)


STAT = "4242 (ansible-playbook) S 1 4242 4242 0 -1 4194560 9 0 0 0 1 0 0 0 20 0 1 0 123456 1000 200 18446744073709551615"


# -- the controller -----------------------------------------------------------------------------
def test_the_start_time_is_read_after_the_command_name_whatever_it_holds():
    assert controller.parse_stat(STAT) == ("S", "123456")
    odd = STAT.replace("(ansible-playbook)", "(a) b (c) d)")
    assert controller.parse_stat(odd) == ("S", "123456")
    assert controller.parse_stat("") is None and controller.parse_stat("4242 (x) S 1") is None


@pytest.mark.parametrize(
    ("stat", "exists", "boot", "problem"),
    [
        (("S", "123456"), None, "boot-a", None),
        (("R", "123456"), None, "", None),  # no boot id here (not Linux): the pid and start time decide
        (None, False, "boot-a", "the controller (pid 4242) is gone"),
        (("Z", "123456"), None, "boot-a", "the controller (pid 4242) is gone"),  # killed, not yet reaped
        (("S", "999999"), None, "boot-a", "the controller (pid 4242) is gone (the pid now belongs to another process)"),
        (("S", "123456"), None, "boot-b", "the controller (pid 4242) ran on another machine or before a reboot"),
    ],
)
def test_a_controller_lives_only_as_the_same_process_on_the_same_boot(stat, exists, boot, problem):
    described = {"pid": 4242, "started": "123456", "host": "boot-a"}
    assert controller.problem(described, stat=stat, exists=exists, current_boot_id=boot) == problem


def test_a_real_process_is_watched_until_it_is_killed():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        described = controller.describe(child.pid)
        assert described["pid"] == child.pid
        if os.path.exists("/proc/self/stat"):
            assert described["started"] and described["host"] == controller.boot_id()
        assert controller.alive(described)
        child.kill()
        child.wait()
        assert controller.problem(described) == f"the controller (pid {child.pid}) is gone"
    finally:
        child.kill()
        child.wait()


# -- fences ---------------------------------------------------------------------------------------
def make_fence(table, clock, alive=lambda: True, renews=False):
    return fence.Fence(
        table,
        "cutover-shop",
        "shop",
        TOKEN_1,
        controller={"pid": 4242},
        renews=renews,
        lease_seconds=60 if renews else None,
        clock=clock,
        controller_problem=lambda _c: None if alive() else "the controller (pid 4242) is gone",
    )


def test_a_wait_stops_at_its_next_look_once_another_run_took_the_lock():
    clock = FakeClock()
    table = FakeTable(stored(expires_in=3600))
    looks = []

    def check():
        looks.append(clock())
        if clock() >= 9:
            table.item = stored(owner="awx-job-8", token=TOKEN_2, expires_in=3600, takeovers=[{"token": TOKEN_1, "reason": "named"}])
        return False

    with fence.fenced(make_fence(table, clock)), pytest.raises(lease.LostLock) as caught:
        poll(check, 600, "green to be healthy", delay=2, factor=1, clock=clock, sleep=clock.sleep)
    assert caught.value.message.startswith("lost the lock: the lock of service shop is now held by awx-job-8")
    assert caught.value.message.endswith("stopped before waiting for green to be healthy")
    assert looks == [0, 2, 4, 6, 8, 10]  # the look after the takeover never ran its check
    assert table.calls == ["GetItem"] * 7


def test_a_wait_stops_at_its_next_look_once_its_controller_died():
    clock = FakeClock()
    table = FakeTable(stored(expires_in=3600))
    alive = {"yes": True}

    def check():
        alive["yes"] = clock() < 5
        return False

    with fence.fenced(make_fence(table, clock, alive=lambda: alive["yes"])), pytest.raises(lease.LostLock) as caught:
        poll(check, 600, "targets of blue to drain", delay=2, factor=1, clock=clock, sleep=clock.sleep)
    assert caught.value.message == (
        "lost the lock: the controller (pid 4242) is gone, so this work of its run stops; "
        "stopped before waiting for targets of blue to drain"
    )
    assert clock() == 8  # the look after the check that found it dead; no read of the table for it
    assert table.calls == ["GetItem"] * 4


def test_a_look_right_after_a_check_reuses_it():
    clock = FakeClock()
    table = FakeTable(stored(expires_in=3600))
    guard = make_fence(table, clock)
    with fence.fenced(guard):
        fence.guard("switching production of shop")
        fence.look("the switched listeners to read back")  # 0 s later: no second read
        clock.sleep(fence.REUSE_SECONDS)
        fence.look("the switched listeners to read back")
    assert table.calls == ["GetItem", "GetItem"]
    fence.guard("anything")  # outside the block: no fence, nothing read
    assert table.calls == ["GetItem", "GetItem"]


def test_a_change_is_refused_once_the_lease_expired_even_if_nobody_took_it():
    table = FakeTable(stored(expires_in=-1))
    with fence.fenced(make_fence(table, FakeClock())), pytest.raises(lease.LostLock, match="expired at"):
        fence.guard("scaling blue of 'shop' to zero")


def test_a_fence_that_renews_renews_every_quarter_of_the_lease_on_its_looks():
    clock = FakeClock()
    table = FakeTable(stored(expires_in=60))
    renewing = make_fence(table, clock, renews=True)
    with fence.fenced(renewing), pytest.raises(lease.LostLock, match="is now held by awx-job-8"):
        for second in range(0, 61, 5):
            clock.now = float(second)
            if second == 50:
                table.item = stored(owner="awx-job-8", token=TOKEN_2, expires_in=60)
            fence.look("blue to be healthy")
    assert renewing.renewals == 3  # at 15, 30 and 45 s; between renewals each look reads the lease: at 50 s, taken
    assert table.calls.count("UpdateItem") == 3 and clock() == 50


def test_cleaning_up_is_allowed_while_the_lease_is_still_this_runs():
    table = FakeTable(stored(expires_in=-30))  # expired, its controller gone: nobody else works on the pair yet
    with fence.fenced(make_fence(table, FakeClock(), alive=lambda: False)):
        assert fence.may_clean_up() is True
        table.item = stored(owner=OWNER, token=TOKEN_2)
        assert fence.may_clean_up() is False
    assert fence.may_clean_up() is True  # no fence: nothing to ask
