"""A colour's capacity, defined once: its own InService instances on the wanted version with healthy targets."""

from __future__ import annotations

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import (
    assess,
    blocking_targets,
    counts,
    group_version,
    required_capacity,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError


def instance(instance_id, state="InService", health="Healthy", version="2"):
    return {"id": instance_id, "lifecycle_state": state, "health_status": health, "launch_template_version": version}


def group(*instances, version="2", desired=None):
    return {
        "name": "shop-green",
        "desired_capacity": len(instances) if desired is None else desired,
        "launch_template": {"id": "lt-1", "name": "cutover-shop", "version": version},
        "instances": list(instances),
    }


def target(target_id, state="healthy", reason=None, description=None, port=8080):
    return {"id": target_id, "port": port, "state": state, "reason": reason, "description": description}


def test_the_groups_healthy_instances_are_the_capacity():
    found = assess(group(instance("i-1"), instance("i-2")), [target("i-1"), target("i-2")], 2)
    assert (found["capacity"], found["ready"], found["switchable"], found["problems"]) == (2, True, True, [])
    assert found["members"] == ["i-1", "i-2"] and found["version"] == "2"


def test_a_foreign_target_never_counts_and_blocks_even_healthy():
    found = assess(group(instance("i-1")), [target("i-1"), target("i-foreign")], 2)
    assert found["capacity"] == 1 and not found["ready"] and not found["switchable"]
    assert [t["id"] for t in found["foreign"]] == ["i-foreign"]
    assert "i-foreign:8080 healthy is not an instance of Auto Scaling group shop-green" in found["problems"]
    # Enough of its own instances does not make a foreign target acceptable.
    found = assess(group(instance("i-1"), instance("i-2")), [target("i-1"), target("i-2"), target("i-foreign")], 2)
    assert found["capacity"] == 2 and not found["switchable"] and not found["ready"]
    assert [t["id"] for t in blocking_targets(found)] == ["i-foreign"]


def test_a_draining_foreign_target_is_leaving_and_blocks_nothing():
    found = assess(group(instance("i-1")), [target("i-1"), target("i-foreign", "draining")], 1)
    assert found["ready"] and found["foreign"] == [] and found["draining"] == ["i-foreign:8080"]


def test_an_instance_on_another_launch_template_version_is_stale_not_capacity():
    found = assess(group(instance("i-1"), instance("i-old", version="1")), [target("i-1"), target("i-old")], 2)
    assert found["capacity"] == 1 and found["members"] == ["i-1"] and not found["switchable"]
    assert [t["id"] for t in found["stale"]] == ["i-old"]
    assert "i-old:8080 healthy runs launch-template version 1, not 2" in found["problems"]
    # The version wanted may be given (a rollout's new version), whatever the group says.
    found = assess(group(instance("i-1"), instance("i-2")), [target("i-1"), target("i-2")], 2, version=3)
    assert found["capacity"] == 0 and [t["id"] for t in found["stale"]] == ["i-1", "i-2"] and found["version"] == "3"


def test_a_group_without_a_launch_template_counts_every_version():
    asg = group(instance("i-1", version=None), version=None)
    assert group_version(asg) is None
    assert assess(asg, [target("i-1")], 1)["ready"]


def test_draining_and_missing_members_are_unregistered_not_counted():
    asg = group(instance("i-1"), instance("i-2"), instance("i-3"))
    targets = [target("i-1"), target("i-2", "draining", "Target.DeregistrationInProgress")]
    found = assess(asg, targets, 3)
    assert found["capacity"] == 1 and not found["ready"] and found["switchable"] is False
    assert found["unregistered"] == ["i-2", "i-3"]
    assert found["unregistered_targets"] == [targets[1]]  # registered again with its port
    assert "i-2 is InService but draining, not registered" in found["problems"]
    assert "i-3 is InService but not registered in the target group" in found["problems"]
    assert "only 1 target(s) registered, at least 3 wanted" in found["problems"]
    assert len(found["registered"]) == 1  # draining targets are not registered


def test_targets_on_their_way_in_are_waited_on_and_not_foreign():
    asg = group(instance("i-1"), instance("i-new", state="Pending", version="2"))
    found = assess(asg, [target("i-1"), target("i-new", "initial")], 1)
    assert found["capacity"] == 1 and found["foreign"] == [] and not found["ready"] and found["switchable"]
    assert [t["id"] for t in found["waiting"]] == ["i-new"]
    found = assess(group(instance("i-1")), [target("i-1", "initial", "Elb.RegistrationInProgress")], 1)
    assert found["problems"] == [
        "i-1:8080 initial (Elb.RegistrationInProgress)",
        "only 0 healthy instance(s) of shop-green, at least 1 wanted",
    ]


def test_a_terminating_instances_draining_target_is_only_reported():
    asg = group(instance("i-1"), instance("i-gone", state="Terminating"))
    found = assess(asg, [target("i-1"), target("i-gone", "draining")], 1)
    assert found["ready"] and found["waiting"] == [] and found["draining"] == ["i-gone:8080"]


def test_an_instance_marked_unhealthy_by_its_group_is_not_capacity():
    found = assess(group(instance("i-1", health="Unhealthy")), [target("i-1")], 1)
    assert found["capacity"] == 0 and found["members"] == [] and not found["switchable"]


@pytest.mark.parametrize(
    ("state", "reason"),
    [("unhealthy", "Target.Timeout"), ("unavailable", "Target.HealthCheckDisabled"), ("unknown", None)],
)
def test_a_failing_member_blocks_readiness_but_not_a_switch_with_enough_capacity(state, reason):
    found = assess(group(instance("i-1"), instance("i-2")), [target("i-1"), target("i-2", state, reason)], 1)
    assert found["capacity"] == 1 and not found["ready"] and found["switchable"]
    assert [t["id"] for t in found["failing"]] == ["i-2"]


def test_an_unused_target_blocks_a_switch_and_is_named_once():
    found = assess(group(instance("i-1"), instance("i-2")), [target("i-1"), target("i-2", "unused", "Target.NotInUse")], 1)
    assert found["unused"] == ["i-2:8080"] and not found["switchable"] and not found["ready"]
    assert found["problems"] == ["i-2:8080 unused (Target.NotInUse)"]


def test_nothing_required_of_an_empty_colour_is_ready_and_bad_numbers_are_refused():
    assert assess(group(), [], 0)["ready"]
    with pytest.raises(CutoverError, match="must be a whole number, 0 or more, got -1"):
        assess(group(), [], -1)
    with pytest.raises(CutoverError, match="got True"):
        assess(group(), [], True)


def test_required_capacity_defaults_to_the_desired_capacity_never_below_one():
    assert required_capacity(group(desired=3)) == 3
    assert required_capacity(group(desired=0)) == 1
    assert required_capacity(group(desired=3), 5) == 5
    assert required_capacity(group(desired=3), 0) == 1
    with pytest.raises(CutoverError, match="min_healthy must be a whole number"):
        required_capacity(group(), -2)


def test_counts_say_healthy_for_capacity_and_leave_draining_out_of_registered():
    targets = [target("i-1"), target("i-foreign"), target("i-old", "draining")]
    found = assess(group(instance("i-1")), targets, 1)
    assert counts(found, targets) == {"registered": 2, "healthy": 1, "unhealthy": 1, "by_state": {"healthy": 2, "draining": 1}}
