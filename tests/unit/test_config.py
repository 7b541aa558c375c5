"""Config validation: bad input is refused with a message naming the key and the range."""

from __future__ import annotations

import json

import pytest
import yaml

from bluegreen_pair import BlueGreenPairArgs, ConfigError, HealthCheck, config_defaults, parse_config, read_stack_config, strip_namespace
from bluegreen_pair.config import KNOWN_KEYS, REQUIRED_KEYS
from tests.conftest import REPO

BASE = {"service": "shop", "image_id": "ami-0123456789abcdef0"}


def parse(**overrides):
    return parse_config({**BASE, **overrides})


def test_defaults():
    args = parse()
    assert (args.min_size, args.max_size, args.desired_capacity) == (2, 4, 2)
    assert args.health_check.interval == 10 and args.deregistration_delay == 30
    assert args.effective_test_cidrs == ("10.40.0.0/16",)
    assert args.effective_table_name == "cutover-shop"
    assert args.effective_deployer_policy_name == "cutover-shop-deployer"
    assert parse(deployer_policy_name="cutover-shop-deployer-eu-west-1").effective_deployer_policy_name == "cutover-shop-deployer-eu-west-1"
    assert args.parameter_name == "/cutover/shop/active-color"


def test_values_arrive_as_strings_from_the_cli():
    args = parse(min_size="1", max_size="3", desired_capacity="1", path_rules='["/api/*"]', tags='{"team": "x"}')
    assert (args.min_size, args.max_size, args.desired_capacity) == (1, 3, 1)
    assert args.path_rules == ("/api/*",)
    assert args.tags == {"team": "x"}


def test_strip_namespace_keeps_only_ours():
    assert strip_namespace({"cutover:service": "a", "aws:region": "us-east-1", "other:service": "b"}) == {"service": "a"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": "blue"}, r"unknown configuration key\(s\): cutover:colour"),
        ({"min_size": -1}, r"cutover:min_size = -1 is out of range: allowed 0 to 1000 instances"),
        ({"min_size": 3, "max_size": 2}, r"cutover:min_size = 3 is greater than cutover:max_size = 2"),
        ({"desired_capacity": 9}, r"cutover:desired_capacity = 9 must lie between cutover:min_size = 2 and cutover:max_size = 4"),
        ({"min_size": "two"}, r"cutover:min_size = 'two' is not an integer"),
        ({"health_check_interval": 4}, r"cutover:health_check_interval = 4 is out of range: allowed 5 to 300 seconds"),
        ({"health_check_interval": 301}, r"cutover:health_check_interval = 301 is out of range: allowed 5 to 300 seconds"),
        ({"healthy_threshold": 1}, r"cutover:healthy_threshold = 1 is out of range: allowed 2 to 10"),
        ({"unhealthy_threshold": 11}, r"cutover:unhealthy_threshold = 11 is out of range: allowed 2 to 10"),
        ({"deregistration_delay": 3601}, r"cutover:deregistration_delay = 3601 is out of range: allowed 0 to 3600 seconds"),
        ({"deregistration_delay": -1}, r"cutover:deregistration_delay = -1 is out of range: allowed 0 to 3600 seconds"),
        ({"health_check_timeout": 10}, r"cutover:health_check_timeout = 10 must be less than cutover:health_check_interval = 10"),
        ({"health_check_path": "health"}, r"cutover:health_check_path = 'health' must start with '/'"),
        ({"health_check_matcher": "600"}, r"cutover:health_check_matcher = '600' must be HTTP codes from 200 to 499"),
        ({"service": "Shop"}, r"cutover:service = 'Shop' is not a valid name"),
        ({"service": "shop_front"}, r"cutover:service = 'shop_front' is not a valid name"),
        ({"service": "-shop"}, r"cutover:service = '-shop' is not a valid name"),
        ({"service": "a" * 27}, r"is not a valid name: use 1 to 26"),
        ({"service": ""}, r"cutover:service is required"),
        ({"image_id": "ubuntu"}, r"cutover:image_id = 'ubuntu' is not an AMI id"),
        ({"instance_type": "large"}, r"cutover:instance_type = 'large' is not an EC2 instance type"),
        ({"production_port": 9000}, r"cutover:test_port = 9000 must differ from cutover:production_port"),
        ({"app_port": 70000}, r"cutover:app_port = 70000 is out of range: allowed 1 to 65535"),
        ({"vpc_id": "vpc-0123456789abcdef0"}, r"cutover:vpc_id and cutover:subnet_ids go together"),
        (
            {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0"], "test_cidrs": ["10.0.0.0/8"]},
            r"cutover:subnet_ids needs at least two distinct subnet ids",
        ),
        (
            {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]},
            r"cutover:test_cidrs is required with an existing network",
        ),
        ({"test_cidrs": ["0.0.0.0/0"]}, r"cutover:test_cidrs may not contain 0.0.0.0/0"),
        ({"allowed_cidrs": ["10.0.0.1/8"]}, r"cutover:allowed_cidrs has an invalid CIDR '10.0.0.1/8'"),
        ({"vpc_cidr": "10.0.0.0/8"}, r"cutover:vpc_cidr = '10.0.0.0/8' must have a prefix from /16 to /24"),
        ({"path_rules": ["api/*"]}, r"cutover:path_rules has an invalid path pattern 'api/\*'"),
        ({"tags": {"cutover:color": "blue"}}, r"cutover:tags may not set the reserved tag\(s\) cutover:color"),
        ({"tags": "[1]"}, r"cutover:tags must be a map of strings to strings"),
        ({"table_name": "x"}, r"cutover:table_name = 'x' is not a valid DynamoDB table name"),
        ({"deployer_policy_name": "a b"}, r"cutover:deployer_policy_name = 'a b' is not a valid IAM policy name"),
        ({"certificate_arn": "cert"}, r"cutover:certificate_arn = 'cert' is not an ARN"),
    ],
)
def test_bad_input_names_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse(**overrides)


def test_missing_image_is_named():
    with pytest.raises(ConfigError, match=r"cutover:image_id is required"):
        parse_config({"service": "shop"})


def test_every_key_has_one_kind_and_a_description():
    from bluegreen_pair.config import _INT_RANGES, _LIST_KEYS, _MAP_KEYS, _STR_KEYS, DESCRIPTIONS, KNOWN_KEYS

    kinds = [set(_INT_RANGES), _STR_KEYS, _LIST_KEYS, _MAP_KEYS]
    assert set().union(*kinds) == KNOWN_KEYS == set(DESCRIPTIONS)
    assert sum(len(kind) for kind in kinds) == len(KNOWN_KEYS)


def test_pulumi_yaml_is_generated_from_the_dataclasses():
    """Pulumi.yaml's config schema is what bluegreen_pair.schema renders: change a default, and this fails."""
    from bluegreen_pair.schema import PROJECT_FILE, render

    text = PROJECT_FILE.read_text()
    assert render(text) == text, "Pulumi.yaml is stale: run python -m bluegreen_pair.schema in infra/aws"
    schema = yaml.safe_load(text)["config"]
    assert {key for key, entry in schema.items() if "default" not in entry} == set(REQUIRED_KEYS)
    assert schema["max_size"] == {
        "type": "integer",
        "default": BlueGreenPairArgs.max_size,
        "description": schema["max_size"]["description"],
    }
    assert schema["health_check_interval"]["default"] == HealthCheck.interval
    assert schema["allowed_cidrs"]["default"] == list(BlueGreenPairArgs.allowed_cidrs)


def cli_view(overrides):
    """What the CLI hands the program: Pulumi.yaml's defaults for every key the stack leaves out, as strings."""
    schema = yaml.safe_load((REPO / "infra" / "aws" / "Pulumi.yaml").read_text())["config"]
    values = {key: entry["default"] for key, entry in schema.items() if "default" in entry}
    values.update({**BASE, **overrides})
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}


def outcome(raw):
    try:
        return parse_config(raw)
    except ConfigError as exc:
        return str(exc)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"min_size": 6},  # max_size stays 4: refused either way, as the CLI always refused it
        {"min_size": 1, "max_size": 3, "desired_capacity": 1},
        {"desired_capacity": 9},
        {"health_check_interval": 5},  # the default timeout (5) is not below it
        {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]},
        {"certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc", "tags": {"team": "x"}},
    ],
)
def test_the_cli_and_the_mock_runtime_see_the_same_configuration(overrides):
    """With the CLI (Pulumi.yaml's defaults filled in) or without (the sandbox's mock run), one result."""
    assert outcome({**BASE, **overrides}) == outcome(cli_view(overrides))


def test_a_minimum_above_the_default_maximum_needs_the_maximum_too():
    with pytest.raises(ConfigError, match=r"cutover:min_size = 6 is greater than cutover:max_size = 4"):
        parse(min_size=6)
    assert parse(min_size=6, max_size=6, desired_capacity=6).max_size == 6


def test_defaults_are_the_dataclass_defaults_in_config_form():
    defaults = config_defaults()
    assert set(defaults) == KNOWN_KEYS - set(REQUIRED_KEYS)
    assert defaults["certificate_arn"] == "" and BlueGreenPairArgs.certificate_arn is None
    assert defaults["tags"] == {} and defaults["test_cidrs"] == []
    assert parse_config(BASE) == BlueGreenPairArgs(service="shop", image_id=BASE["image_id"])


def test_the_sandbox_stack_sets_only_known_keys():
    stack = yaml.safe_load((REPO / "infra" / "aws" / "Pulumi.sandbox.yaml").read_text())["config"]
    assert set(strip_namespace(stack)) <= KNOWN_KEYS
    parse_config(strip_namespace(stack))


def test_read_stack_config_takes_values_from_config_and_refuses_unknown_keys():
    given = {"service": "shop", "image_id": BASE["image_id"], "min_size": "3"}
    raw = read_stack_config(given.get, ["cutover:service", "cutover:min_sise", "aws:region"])
    assert raw == {**given, "min_sise": ""}
    with pytest.raises(ConfigError, match=r"unknown configuration key\(s\): cutover:min_sise"):
        parse_config(raw)
