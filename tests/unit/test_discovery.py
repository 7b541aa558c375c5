"""Pair discovery through the service's Auto Scaling groups: bounded calls, the checks on what they point at."""

from __future__ import annotations

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import discover
from botocore.exceptions import ClientError

ACCOUNT = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LB = f"{ACCOUNT}:loadbalancer/app/shop/1"
OTHER_LB = f"{ACCOUNT}:loadbalancer/net/internal/2"
PROD = f"{ACCOUNT}:listener/app/shop/1/80"
TEST = f"{ACCOUNT}:listener/app/shop/1/9000"


def tg(name):
    return f"{ACCOUNT}:targetgroup/{name}/1"


def tags(**values):
    return [{"Key": key.replace("_", ":"), "Value": value} for key, value in values.items()]


class Fake:
    """ELBv2 and Auto Scaling in memory; counts every call (paginated ones by their operation)."""

    def __init__(self, groups=None, asgs=None, listeners=None, resource_tags=None):
        self.groups = groups or {}  # arn -> {"TargetGroupName", "LoadBalancerArns"}
        self.asgs = asgs or []
        self.listeners = listeners or []
        self.resource_tags = resource_tags or {}
        self.calls = []

        class Meta:
            class service_model:
                service_name = "elbv2"

        self.meta = Meta

    def get_paginator(self, operation):
        fake = self

        class Paginator:
            def paginate(self, **params):
                class Pages:
                    def build_full_result(self):
                        fake.calls.append(operation)
                        return getattr(fake, "_" + operation)(**params)

                return Pages()

        return Paginator()

    def _describe_auto_scaling_groups(self, Filters):
        [wanted] = Filters
        key = wanted["Name"][len("tag:") :]
        found = [g for g in self.asgs if {t["Key"]: t["Value"] for t in g["Tags"]}.get(key) in wanted["Values"]]
        return {"AutoScalingGroups": found}

    def _describe_target_groups(self, TargetGroupArns):
        missing = [arn for arn in TargetGroupArns if arn not in self.groups]
        if missing:
            raise ClientError({"Error": {"Code": "TargetGroupNotFound", "Message": "One or more target groups not found"}}, "X")
        return {"TargetGroups": [dict(self.groups[arn], TargetGroupArn=arn) for arn in TargetGroupArns]}

    def _describe_listeners(self, LoadBalancerArn):
        return {"Listeners": [listener for listener in self.listeners if listener["LoadBalancerArn"] == LoadBalancerArn]}

    def _describe_rules(self, ListenerArn):
        return {"Rules": []}

    def describe_tags(self, ResourceArns, **_kwargs):
        self.calls.append("describe_tags")
        assert len(ResourceArns) <= 20
        return {"TagDescriptions": [{"ResourceArn": arn, "Tags": self.resource_tags.get(arn, [])} for arn in ResourceArns]}

    def describe_target_health(self, TargetGroupArn, **_kwargs):
        self.calls.append("describe_target_health")
        return {"TargetHealthDescriptions": []}


def asg(name, color, *target_groups, service="shop"):
    return {
        "AutoScalingGroupName": name,
        "MinSize": 0,
        "MaxSize": 2,
        "DesiredCapacity": 2,
        "Instances": [],
        "TargetGroupARNs": list(target_groups),
        "Tags": tags(cutover_service=service, cutover_color=color),
    }


def listener(arn, group):
    return {
        "ListenerArn": arn,
        "LoadBalancerArn": LB,
        "Port": int(arn.rsplit("/", 1)[1]),
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": group}],
    }


def shop(**changes):
    """The shop pair, plus what ``changes`` add or replace."""
    state = {
        "groups": {
            tg("shop-blue"): {"TargetGroupName": "shop-blue", "LoadBalancerArns": [LB]},
            tg("shop-green"): {"TargetGroupName": "shop-green", "LoadBalancerArns": [LB]},
        },
        "asgs": [asg("shop-blue", "blue", tg("shop-blue")), asg("shop-green", "green", tg("shop-green"))],
        "listeners": [listener(PROD, tg("shop-blue")), listener(TEST, tg("shop-green"))],
        "resource_tags": {
            tg("shop-blue"): tags(cutover_service="shop", cutover_color="blue"),
            tg("shop-green"): tags(cutover_service="shop", cutover_color="green"),
            PROD: tags(cutover_listener="production"),
            TEST: tags(cutover_listener="test"),
        },
    }
    for key, value in changes.items():
        if isinstance(state[key], dict):
            state[key].update(value)
        else:
            state[key] = value
    return Fake(**state)


def test_the_pair_is_found_in_a_fixed_number_of_calls():
    fake = shop()
    pair = discover(fake, fake, "shop")
    assert (pair.live_color, pair.colors["green"]["target_group"]["name"], pair.load_balancer_arn) == ("blue", "shop-green", LB)
    assert [listener["role"] for listener in pair.listeners] == ["production", "test"]
    # the groups by tag, their target groups, the listeners, one DescribeTags for groups and listeners, rules, health
    assert fake.calls == [
        "describe_auto_scaling_groups",
        "describe_target_groups",
        "describe_listeners",
        "describe_tags",
        "describe_rules",
        "describe_rules",
        "describe_target_health",
        "describe_target_health",
    ]


def test_target_groups_of_other_services_and_load_balancers_are_never_read():
    others = {tg(f"other-{i}"): {"TargetGroupName": f"other-{i}", "LoadBalancerArns": [OTHER_LB]} for i in range(100)}
    other_asgs = [asg(f"other-{i}", "blue", tg(f"other-{i}"), service="other") for i in range(100)]
    crowded = shop(groups=others, resource_tags={arn: tags(cutover_service="other", cutover_color="blue") for arn in others})
    crowded.asgs += other_asgs
    empty = shop()
    discover(empty, empty, "shop")
    discover(crowded, crowded, "shop")
    assert crowded.calls == empty.calls


def test_a_group_attached_to_another_load_balancer_too_is_fine():
    internal = tg("shop-internal")
    fake = shop(
        groups={internal: {"TargetGroupName": "shop-internal", "LoadBalancerArns": [OTHER_LB]}},
        asgs=[asg("shop-blue", "blue", tg("shop-blue"), internal), asg("shop-green", "green", tg("shop-green"))],
        resource_tags={internal: tags(team="payments")},
    )
    pair = discover(fake, fake, "shop")
    assert pair.colors["blue"]["target_group"]["name"] == "shop-blue" and pair.load_balancer_arn == LB
    # the candidates spanned two load balancers: the pair's listeners and their tags are read once it is known
    assert fake.calls[:5] == [
        "describe_auto_scaling_groups",
        "describe_target_groups",
        "describe_tags",
        "describe_listeners",
        "describe_tags",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"asgs": []},
            "no target groups tagged cutover:service=shop were found: cutover finds them through the service's Auto Scaling groups",
        ),
        (
            {"asgs": [asg("shop-blue", "blue"), asg("shop-green", "green")]},
            "no target groups tagged cutover:service=shop were found: neither Auto Scaling group of the service (shop-blue, shop-green) "
            "is attached to a target group",
        ),
        (
            {"asgs": [asg("shop-blue", "blue", tg("shop-green")), asg("shop-green", "green", tg("shop-blue"))]},
            "target group shop-green is tagged cutover:color=green but attached to the blue Auto Scaling group shop-blue",
        ),
        (
            {"asgs": [asg("shop-blue", "blue", tg("shop-blue")), asg("shop-green", "green", tg("gone"))]},
            "could not be read",
        ),
        (
            {"resource_tags": {tg("shop-green"): tags(cutover_service="shop")}},
            "target group shop-green of service 'shop' has cutover:color=None; expected blue or green",
        ),
        (
            {"resource_tags": {tg("shop-green"): tags(cutover_service="cart", cutover_color="green")}},
            "service 'shop' has no green target group (tag cutover:color) attached to its green Auto Scaling group",
        ),
    ],
)
def test_what_the_groups_point_at_is_checked(changes, message):
    fake = shop(**changes)
    with pytest.raises(CutoverError) as caught:
        discover(fake, fake, "shop")
    assert message in caught.value.message


def test_explicit_target_groups_override_the_groups_attachments():
    fake = shop(asgs=[asg("shop-blue", "blue"), asg("shop-green", "green")])
    pair = discover(fake, fake, "shop", target_group_arns={"blue": tg("shop-blue"), "green": tg("shop-green")})
    assert pair.colors["blue"]["target_group"]["arn"] == tg("shop-blue")
    with pytest.raises(CutoverError, match="target group shop-green is tagged cutover:color=green but was given as the blue one"):
        discover(fake, fake, "shop", target_group_arns={"blue": tg("shop-green"), "green": tg("shop-blue")})
