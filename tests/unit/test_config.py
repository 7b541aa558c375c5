"""Config validation: bad input is refused with a message naming the key and the range."""

from __future__ import annotations

import pytest

from bluegreen_pair import ConfigError, parse_config, strip_namespace

BASE = {"service": "shop", "image_id": "ami-0123456789abcdef0"}


def parse(**overrides):
    return parse_config({**BASE, **overrides})


def test_defaults():
    args = parse()
    assert (args.min_size, args.max_size, args.desired_capacity) == (2, 4, 2)
    assert args.health_check.interval == 10 and args.deregistration_delay == 30
    assert args.effective_test_cidrs == ("10.40.0.0/16",)
    assert args.effective_table_name == "cutover-shop"
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
        ({"certificate_arn": "cert"}, r"cutover:certificate_arn = 'cert' is not an ARN"),
    ],
)
def test_bad_input_names_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse(**overrides)


def test_missing_image_is_named():
    with pytest.raises(ConfigError, match=r"cutover:image_id is required"):
        parse_config({"service": "shop"})
