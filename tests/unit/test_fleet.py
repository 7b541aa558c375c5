"""Fleet plans: services, waves, regions and max_fail_percentage read from what -e gives, and the judgement after a wave."""

from __future__ import annotations

import pytest
from ansible.utils.helpers import pct_to_int
from ansible_collections.cutover.bluegreen.plugins.module_utils.fleet import (
    FleetError,
    ansible_stops,
    judge,
    members_of,
    plan,
    read_waves,
    wave_sizes,
)


def ansible_batches(serial, count):
    """The batch sizes ansible-core's PlaybookExecutor makes of a ``serial`` list (its own loop, with its pct_to_int)."""
    sizes, left, index = [], count, 0
    while left > 0:
        size = min(pct_to_int(serial[index], count), left)
        sizes.append(size)
        left -= size
        index = min(index + 1, len(serial) - 1)
    return sizes


@pytest.mark.parametrize("waves", [[1, "100%"], [1, "25%"], ["10%"], ["50%", "100%"], [2, 3], ["33%", 1], [5]])
@pytest.mark.parametrize("count", [1, 2, 3, 7, 20])
def test_wave_sizes_are_the_batches_ansible_makes_of_the_same_serial(waves, count):
    assert wave_sizes(waves, count) == ansible_batches(waves, count)


def test_strings_from_key_value_extra_vars_read_as_lists_and_numbers():
    fleet = plan(services="svc01, svc02,svc03", waves="1,100%", max_fail_percentage="25", regions="us-east-1,eu-west-1")
    assert [h["name"] for h in fleet["hosts"]] == [
        "svc01@us-east-1",
        "svc02@us-east-1",
        "svc03@us-east-1",
        "svc01@eu-west-1",
        "svc02@eu-west-1",
        "svc03@eu-west-1",
    ]
    # a wave never spans two regions: the first region's two waves, then the second's
    assert fleet["serial"] == [1, 2, 1, 2]
    assert [(b["region"], b["wave"]) for b in fleet["batches"]] == [("us-east-1", 1), ("us-east-1", 2), ("eu-west-1", 1), ("eu-west-1", 2)]
    assert fleet["max_fail_percentage"] == 25 and fleet["fleet"] is True
    # the same from JSON
    assert (
        plan(services=["svc01", "svc02", "svc03"], waves=[1, "100%"], max_fail_percentage=25, regions=["us-east-1", "eu-west-1"]) == fleet
    )
    assert read_waves("2") == [2] and read_waves(2) == [2] and read_waves("") is None


def test_one_service_runs_as_localhost_as_before_and_a_fleet_as_hosts_named_after_its_services():
    single = plan(service="shop")
    assert [h["name"] for h in single["hosts"]] == ["localhost"] and single["serial"] == [1] and single["fleet"] is False
    assert single["max_fail_percentage"] == 0
    one = plan(services="shop")
    assert [h["name"] for h in one["hosts"]] == ["shop"] and one["fleet"] is True
    assert plan(services="a,b,c")["serial"] == [3]  # no waves: all at once


def test_every_bad_input_is_named_at_once():
    with pytest.raises(FleetError) as caught:
        plan(services="shop,Bad_Name,shop", waves="0,abc", max_fail_percentage="150", regions="mars,us-east-1,us-east-1")
    problems = caught.value.problems
    assert str(caught.value).startswith("fleet: 5 bad inputs, nothing was read or changed:")
    assert any(
        p.startswith("services=shop,Bad_Name,shop: allowed a service name") and p.endswith("not allowed: Bad_Name") for p in problems
    )
    assert any(p.startswith("waves=0,abc: allowed wave sizes") for p in problems)
    assert any(p.startswith("max_fail_percentage=150: allowed a whole number from 0") for p in problems)
    assert any(p.startswith("regions=mars,us-east-1,us-east-1: allowed region names") and "mars is not one" in p for p in problems)
    assert any(p == "regions=mars,us-east-1,us-east-1: allowed each region once" for p in problems)
    # app names on kubernetes may be longer than service names on aws
    long = "a" * 30
    with pytest.raises(FleetError, match=r"allowed a service name: 1 to 26 characters.*not allowed: a{30}"):
        plan(services=f"svc01,{long}")
    assert [h["service"] for h in plan(services=f"svc01,{long}", platform="kubernetes")["hosts"]] == ["svc01", long]
    with pytest.raises(FleetError, match=r"regions=us-east-1: allowed only on aws"):
        plan(services="shop", regions="us-east-1", platform="kubernetes")
    with pytest.raises(FleetError, match=r"services=a,b,a: allowed each service once"):
        plan(services="a,b,a")
    with pytest.raises(FleetError, match=r"service, services: give one of them"):
        plan(service="a", services="b")
    with pytest.raises(FleetError, match=r"none given; usage: x"):
        plan(usage="usage: x")
    with pytest.raises(FleetError, match=r"service=a,b: allowed one service name; name several with services=a,b,c"):
        plan(service="a,b")
    # one service's name is its role's to check, with the role's other inputs (one message for them all)
    assert [h["service"] for h in plan(service="Bad_Name")["hosts"]] == ["Bad_Name"]
    for bad in ("101%", "0%", "-1", "1,,x", True):
        with pytest.raises(FleetError, match="waves="):
            plan(services="a", waves=bad)


def test_a_service_group_names_services_and_regions_by_host_variables():
    hostvars = {
        "shop-us": {"service": "shop", "cutover_aws_region": "us-east-1", "deploy_smoke_test_url": "http://x"},
        "shop-eu": {"service": "shop", "cutover_aws_region": "eu-west-1"},
        "cart": {"cutover_aws_region": "us-east-1"},
    }
    members = members_of("web", ["shop-us", "shop-eu", "cart"], hostvars)
    fleet = plan(service_group="web", members=members)
    # regions in the order they first appear; within a region the group's order
    assert [(h["name"], h["service"], h["region"]) for h in fleet["hosts"]] == [
        ("shop-us", "shop", "us-east-1"),
        ("cart", "cart", "us-east-1"),
        ("shop-eu", "shop", "eu-west-1"),
    ]
    assert fleet["serial"] == [2, 1] and fleet["regions"] == ["us-east-1", "eu-west-1"]
    assert [h["name"] for h in plan(service_group="web", members=members, regions="eu-west-1,us-east-1")["hosts"]] == [
        "shop-eu",
        "shop-us",
        "cart",
    ]
    with pytest.raises(
        FleetError, match=r"every host of service_group web needs its cutover_aws_region among them; not: shop-eu \(eu-west-1\)"
    ):
        plan(service_group="web", members=members, regions="us-east-1")
    with pytest.raises(FleetError, match=r"there is no such group"):
        plan(service_group="nosuch", members=None)
    twice = members_of("web", ["a", "b"], {"a": {"service": "shop"}, "b": {"service": "shop"}})
    with pytest.raises(FleetError, match=r"each service once per region; more than once: shop"):
        plan(service_group="web", members=twice)
    bad = members_of("web", ["a"], {"a": {"service": "Shop!"}})
    with pytest.raises(FleetError, match=r"not allowed: a \(service Shop!\)"):
        plan(service_group="web", members=bad)


@pytest.mark.parametrize(
    ("failed", "size", "percentage", "stops"),
    [(0, 3, 0, False), (1, 3, 0, True), (1, 3, 34, False), (1, 3, 33, True), (1, 2, 50, False), (2, 2, 100, True), (0, 1, 100, False)],
)
def test_a_wave_stops_the_fleet_by_ansibles_own_rule(failed, size, percentage, stops):
    # linear strategy: failed / batch size > max_fail_percentage / 100; the executor: the whole batch failed
    assert ansible_stops(failed, size, percentage) is stops


def results(**outcomes):
    return {name: {"outcome": outcome, "message": f"{name} {outcome}"} for name, outcome in outcomes.items()}


def test_judge_stops_after_a_failed_wave_and_lists_every_service_once():
    fleet = plan(services="a,b,c", waves="1,100%")
    verdict = judge(fleet, ["a"], results(a="rolled_back"))
    assert verdict["stop"] and verdict["final"] and verdict["failed_hosts"] == ["a"]
    assert verdict["lines"] == [
        "a (wave 1): rolled_back - a rolled_back",
        "b (wave 2): not started - the fleet stopped: wave 1 failed: 1 of 1 service (max_fail_percentage 0)",
        "c (wave 2): not started - the fleet stopped: wave 1 failed: 1 of 1 service (max_fail_percentage 0)",
        "fleet of 3: 2 not started, 1 rolled_back; stopped: wave 1 failed: 1 of 1 service (max_fail_percentage 0)",
    ]
    going_on = judge(fleet, ["a"], results(a="succeeded"))
    assert not going_on["stop"] and not going_on["final"] and going_on["lines"] == []
    last = judge(fleet, ["b", "c"], results(a="succeeded", b="succeeded", c="failed"))
    assert last["final"] and last["stop"] and last["lines"][-1].startswith("fleet of 3: 2 succeeded, 1 failed; stopped: wave 2 failed")


def test_judge_stops_at_the_end_of_a_region_that_did_not_succeed_even_within_max_fail_percentage():
    fleet = plan(services="a,b", regions="us-east-1,eu-west-1", max_fail_percentage=50)
    verdict = judge(fleet, ["a@us-east-1", "b@us-east-1"], results(**{"a@us-east-1": "succeeded", "b@us-east-1": "failed"}))
    assert not ansible_stops(1, 2, 50)  # Ansible would go on
    assert verdict["stop"] and verdict["final"]
    assert verdict["reason"].startswith("region us-east-1 did not succeed (b@us-east-1 failed)")
    assert verdict["lines"][2] == "a (eu-west-1): not started - the fleet stopped: " + verdict["reason"]
    assert not judge(fleet, ["a@us-east-1", "b@us-east-1"], results(**{"a@us-east-1": "succeeded", "b@us-east-1": "succeeded"}))["stop"]
