"""The infra/aws program under Pulumi's mock runtime: topology, ownership, policy."""

from __future__ import annotations

import json

import pytest

from bluegreen_pair import RELEASE_OWNED, TYPE
from bluegreen_pair.config import KNOWN_KEYS
from bluegreen_pair.policy import ALL_ACTIONS
from tests.unit.pulumi_harness import run_program

TG = "aws:lb/targetGroup:TargetGroup"
ASG = "aws:autoscaling/group:Group"
LISTENER = "aws:lb/listener:Listener"
RULE = "aws:lb/listenerRule:ListenerRule"


@pytest.fixture(scope="module")
def pair():
    return run_program(
        {
            "cutover:health_check_path": "/ready",
            "cutover:health_check_interval": 7,
            "cutover:health_check_timeout": 3,
            "cutover:healthy_threshold": 3,
            "cutover:unhealthy_threshold": 4,
            "cutover:deregistration_delay": 42,
            "cutover:path_rules": ["/api/*", "/static/*"],
            "cutover:min_size": 2,
            "cutover:max_size": 6,
            "cutover:desired_capacity": 3,
            "cutover:tags": {"team": "payments"},
        }
    )


def arn(run, type_token, name):
    return f"arn:aws:mock:us-east-1:123456789012:{type_token.split(':')[-1].lower()}/{name}"


def test_each_asg_is_attached_to_its_own_target_group(pair):
    for color in ("blue", "green"):
        group = pair.one(ASG, f"shop-{color}").inputs
        assert group["targetGroupArns"] == [arn(pair, TG, f"shop-{color}")]
        assert group["name"] == f"shop-{color}"
        assert group["healthCheckType"] == "ELB"
        assert group["launchTemplate"]["id"] == "shop-template-id"


def test_blue_starts_at_capacity_and_green_at_zero(pair):
    blue, green = pair.one(ASG, "shop-blue").inputs, pair.one(ASG, "shop-green").inputs
    assert (blue["minSize"], blue["maxSize"], blue["desiredCapacity"]) == (2, 6, 3)
    assert (green["minSize"], green["desiredCapacity"]) == (0, 0)
    assert green["maxSize"] == 6


def test_production_listener_forwards_to_blue_and_test_listener_to_green(pair):
    production = pair.one(LISTENER, "shop-production").inputs
    test = pair.one(LISTENER, "shop-test").inputs
    assert production["port"] == 80 and production["protocol"] == "HTTP"
    assert production["defaultActions"] == [{"type": "forward", "targetGroupArn": arn(pair, TG, "shop-blue")}]
    assert test["port"] == 9000
    assert test["defaultActions"] == [{"type": "forward", "targetGroupArn": arn(pair, TG, "shop-green")}]
    assert production["tags"]["cutover:listener"] == "production"
    assert test["tags"]["cutover:listener"] == "test"


def test_path_rules_forward_to_the_live_colour(pair):
    rules = sorted(pair.of_type(RULE), key=lambda r: r.inputs["priority"])
    assert [r.inputs["conditions"][0]["pathPattern"]["values"] for r in rules] == [["/api/*"], ["/static/*"]]
    assert [r.inputs["priority"] for r in rules] == [10, 11]
    for rule in rules:
        assert rule.inputs["listenerArn"] == arn(pair, LISTENER, "shop-production")
        assert rule.inputs["actions"] == [{"type": "forward", "targetGroupArn": arn(pair, TG, "shop-blue")}]


def test_health_check_and_deregistration_delay_come_from_config(pair):
    for color in ("blue", "green"):
        group = pair.one(TG, f"shop-{color}").inputs
        assert group["deregistrationDelay"] == 42
        assert group["port"] == 8080
        check = group["healthCheck"]
        assert (check["path"], check["interval"], check["timeout"]) == ("/ready", 7, 3)
        assert (check["healthyThreshold"], check["unhealthyThreshold"], check["matcher"]) == (3, 4, "200")


def test_every_resource_is_tagged_with_the_service_and_colour(pair):
    for resource in pair.aws:
        if resource.type in ("aws:ec2/routeTableAssociation:RouteTableAssociation",):
            continue  # AWS gives associations no tags
        if resource.type == ASG:
            tags = {t["key"]: t["value"] for t in resource.inputs["tags"]}
            assert all(t["propagateAtLaunch"] for t in resource.inputs["tags"])
        else:
            tags = resource.inputs["tags"]
        assert tags["cutover:service"] == "shop", resource.name
        assert tags["team"] == "payments", resource.name
        if resource.type in (TG, ASG):
            assert tags["cutover:color"] == resource.name.rsplit("-", 1)[1]
        else:
            assert "cutover:color" not in tags, resource.name


def test_ignore_changes_is_exactly_what_releases_own(pair):
    for resource in pair.aws:
        assert resource.ignore_changes == RELEASE_OWNED.get(resource.type), resource.type
    assert RELEASE_OWNED[ASG] == ["minSize", "maxSize", "desiredCapacity", "launchTemplate.version"]
    assert RELEASE_OWNED[LISTENER] == ["defaultActions"]
    assert RELEASE_OWNED[RULE] == ["actions"]


def test_every_child_belongs_to_the_component(pair):
    assert [r.name for r in pair.resources if r.type == TYPE] == ["shop"]
    assert all(r.parent_type == TYPE for r in pair.aws)


def test_new_network_spans_two_zones(pair):
    subnets = pair.of_type("aws:ec2/subnet:Subnet")
    assert sorted(s.inputs["availabilityZone"] for s in subnets) == ["us-east-1a", "us-east-1b"]
    assert sorted(s.inputs["cidrBlock"] for s in subnets) == ["10.40.0.0/20", "10.40.16.0/20"]
    alb = pair.one("aws:lb/loadBalancer:LoadBalancer", "shop-alb").inputs
    assert alb["subnets"] == ["shop-subnet-0-id", "shop-subnet-1-id"]


def test_test_listener_is_reachable_only_from_the_vpc(pair):
    ingress = {rule["description"]: rule for rule in pair.one("aws:ec2/securityGroup:SecurityGroup", "shop-alb").inputs["ingress"]}
    assert ingress["production listener"]["cidrBlocks"] == ["0.0.0.0/0"]
    assert ingress["test listener"]["cidrBlocks"] == ["10.40.0.0/16"]
    assert ingress["test listener"]["fromPort"] == 9000
    instances = pair.one("aws:ec2/securityGroup:SecurityGroup", "shop-instances").inputs["ingress"]
    assert instances == [
        {"description": "from the ALB", "protocol": "tcp", "fromPort": 8080, "toPort": 8080, "securityGroups": ["shop-alb-id"]}
    ]


def test_table_and_parameter(pair):
    table = pair.one("aws:dynamodb/table:Table", "shop-table").inputs
    assert (table["name"], table["hashKey"], table["rangeKey"]) == ("cutover-shop", "pk", "sk")
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}
    parameter = pair.one("aws:ssm/parameter:Parameter", "shop-active-color").inputs
    assert parameter["name"] == "/cutover/shop/active-color"


def test_deployer_policy_lists_only_collection_actions_scoped_to_the_pair(pair):
    assert pair.one("aws:iam/policy:Policy", "shop-deployer").inputs["name"] == "cutover-shop-deployer"
    named = run_program({"cutover:deployer_policy_name": "cutover-shop-deployer-eu-west-1"})
    assert named.one("aws:iam/policy:Policy", "shop-deployer").inputs["name"] == "cutover-shop-deployer-eu-west-1"
    document = json.loads(pair.one("aws:iam/policy:Policy", "shop-deployer").inputs["policy"])
    actions = {action for statement in document["Statement"] for action in statement["Action"]}
    assert actions == ALL_ACTIONS
    assert not any(action.endswith("*") for action in actions)
    for statement in document["Statement"]:
        mutating = [a for a in statement["Action"] if not a.split(":")[1].startswith(("Describe", "Get", "Query"))]
        if mutating and statement["Resource"] == "*":
            # only launching from the pair's own template may be unscoped, and then by condition
            assert set(mutating) == {"ec2:RunInstances", "ec2:CreateTags"}
            assert statement["Condition"] == {"ArnEquals": {"ec2:LaunchTemplate": arn(pair, "x:launchtemplate", "shop-template")}}
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["SwitchListenersAndRules"]["Resource"][:2] == sorted(
        [arn(pair, LISTENER, "shop-production"), arn(pair, LISTENER, "shop-test")]
    )
    assert by_sid["ScaleAndTagColors"]["Resource"] == [arn(pair, ASG, "shop-blue"), arn(pair, ASG, "shop-green")]


def test_outputs_give_ansible_everything(pair):
    outputs = pair.outputs
    assert outputs["target_group_arns"] == {"blue": arn(pair, TG, "shop-blue"), "green": arn(pair, TG, "shop-green")}
    assert outputs["asg_names"] == {"blue": "shop-blue", "green": "shop-green"}
    assert outputs["production_listener_arn"] == arn(pair, LISTENER, "shop-production")
    assert outputs["test_listener_arn"] == arn(pair, LISTENER, "shop-test")
    assert outputs["table_name"] == "cutover-shop"
    assert outputs["active_color_parameter"] == "/cutover/shop/active-color"
    assert outputs["production_url"] == "http://shop-alb.elb.example:80"
    assert outputs["region"] == "us-east-1"
    assert len(outputs["rule_arns"]) == 2


def test_existing_network_is_used_not_created():
    run = run_program(
        {
            "cutover:vpc_id": "vpc-0123456789abcdef0",
            "cutover:subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
            "cutover:test_cidrs": ["10.1.0.0/16"],
        }
    )
    assert not run.of_type("aws:ec2/vpc:Vpc") and not run.of_type("aws:ec2/subnet:Subnet")
    assert "aws:index/getAvailabilityZones:getAvailabilityZones" not in run.invokes
    alb = run.one("aws:lb/loadBalancer:LoadBalancer", "shop-alb").inputs
    assert alb["subnets"] == ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    assert run.one(TG, "shop-blue").inputs["vpcId"] == "vpc-0123456789abcdef0"


def test_certificate_makes_production_listener_https():
    run = run_program({"cutover:certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc", "cutover:production_port": 443})
    production = run.one(LISTENER, "shop-production").inputs
    assert (production["protocol"], production["port"]) == ("HTTPS", 443)
    assert production["certificateArn"].endswith("certificate/abc")
    assert run.one(LISTENER, "shop-test").inputs["protocol"] == "HTTP"


def test_bad_config_fails_before_any_resource_is_registered():
    with pytest.raises(ValueError, match=r"cutover:health_check_interval = 3 is out of range: allowed 5 to 300 seconds"):
        run_program({"cutover:health_check_interval": 3})
    # the failed run registered nothing: the error came before the component
    run = None
    with pytest.raises(ValueError):
        run = run_program({"cutover:bogus": "1"})
    assert run is None


def test_region_comes_from_the_aws_config():
    assert run_program({"aws:region": "eu-west-1"}).outputs["region"] == "eu-west-1"


# What AWS cannot change on a resource of ours that has a fixed name, short of replacing it (the
# name itself aside: a new name is no conflict). Every type with a fixed name must be listed.
REPLACED_WHEN_CHANGED = {
    TG: ("port", "protocol", "vpcId", "targetType"),
    "aws:lb/loadBalancer:LoadBalancer": ("internal", "loadBalancerType"),
    ASG: (),
    "aws:ec2/launchTemplate:LaunchTemplate": (),
    "aws:dynamodb/table:Table": ("hashKey", "rangeKey"),
    "aws:ssm/parameter:Parameter": (),
    "aws:iam/policy:Policy": ("path", "description"),
}
EXISTING_NETWORK = {
    "cutover:vpc_id": "vpc-0123456789abcdef0",
    "cutover:subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "cutover:test_cidrs": ["10.1.0.0/16"],
}
# One change of every config key (a key may come with the keys it needs).
CHANGES = [
    {"cutover:service": "cart"},
    {"cutover:image_id": "ami-0fedcba9876543210"},
    {"cutover:instance_type": "t3.small"},
    {"cutover:user_data": "version=v9"},
    {"cutover:min_size": 1},
    {"cutover:max_size": 5},
    {"cutover:desired_capacity": 3},
    {"cutover:app_port": 8081},
    {"cutover:production_port": 8000},
    {"cutover:test_port": 9001},
    {"cutover:certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc"},
    {"cutover:allowed_cidrs": ["10.0.0.0/8"]},
    {"cutover:test_cidrs": ["10.40.0.0/24"]},
    EXISTING_NETWORK,
    {"cutover:vpc_cidr": "10.41.0.0/16"},
    {"cutover:health_check_path": "/ready"},
    {"cutover:health_check_interval": 15},
    {"cutover:health_check_timeout": 6},
    {"cutover:healthy_threshold": 3},
    {"cutover:unhealthy_threshold": 3},
    {"cutover:health_check_matcher": "200-299"},
    {"cutover:deregistration_delay": 60},
    {"cutover:path_rules": ["/api/*"]},
    {"cutover:table_name": "shop-locks"},
    {"cutover:deployer_policy_name": "cutover-shop-deployer-eu-west-1"},
    {"cutover:tags": {"team": "payments"}},
]


def test_delete_before_replace_is_set_on_exactly_the_named_resources_a_config_change_replaces():
    """A replacement under a fixed name must delete first (create-before-replace fails on the name)."""
    assert {key.split(":", 1)[1] for change in CHANGES for key in change} == KNOWN_KEYS
    base = run_program()
    named = {(r.type, r.name): r for r in base.aws if "name" in r.inputs}
    assert {type_ for type_, _ in named} == set(REPLACED_WHEN_CHANGED)
    needed = set()
    for change in CHANGES:
        for resource in run_program(change).aws:
            before = named.get((resource.type, resource.name))
            if before is None or before.inputs["name"] != resource.inputs.get("name"):
                continue
            if any(before.inputs.get(p) != resource.inputs.get(p) for p in REPLACED_WHEN_CHANGED[resource.type]):
                needed.add((resource.type, resource.name))
    assert needed == {(TG, "shop-blue"), (TG, "shop-green")}  # app_port, or the VPC
    assert {(r.type, r.name) for r in base.resources if r.delete_before_replace} == needed
