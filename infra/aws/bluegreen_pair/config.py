"""Validation of the stack configuration for one blue-green pair.

Pure Python, no Pulumi imports: the program calls :func:`parse_config` before it
registers a single resource, so bad input fails before anything is created, with
a message that names the key and the allowed range.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "cutover"

COLORS = ("blue", "green")

# ALB and target-group names are at most 32 characters; "<service>-green" is the
# longest name the pair builds, so a service name is at most 26 characters.
SERVICE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,24}[a-z0-9])?$")
IMAGE_RE = re.compile(r"^ami-[0-9a-f]{8,17}$")
ID_RE = {"vpc_id": re.compile(r"^vpc-[0-9a-f]{8,17}$"), "subnet_ids": re.compile(r"^subnet-[0-9a-f]{8,17}$")}
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9]+$")
MATCHER_RE = re.compile(r"^\d{3}(?:-\d{3})?(?:,\d{3}(?:-\d{3})?)*$")
PATH_PATTERN_RE = re.compile(r"^/[A-Za-z0-9_\-.$/~\"'@:+?*&=%]{0,127}$")


class ConfigError(ValueError):
    """The stack configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class HealthCheck:
    path: str = "/health"
    interval: int = 10
    timeout: int = 5
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2
    matcher: str = "200"


@dataclass(frozen=True)
class BlueGreenPairArgs:
    """Everything one blue-green pair is made from (validated)."""

    service: str
    image_id: str
    instance_type: str = "t3.micro"
    user_data: str = ""
    min_size: int = 2
    max_size: int = 4
    desired_capacity: int = 2
    app_port: int = 8080
    production_port: int = 80
    test_port: int = 9000
    certificate_arn: str | None = None
    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    test_cidrs: tuple[str, ...] = ()
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    vpc_cidr: str = "10.40.0.0/16"
    health_check: HealthCheck = field(default_factory=HealthCheck)
    deregistration_delay: int = 30
    path_rules: tuple[str, ...] = ()
    table_name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def effective_test_cidrs(self) -> tuple[str, ...]:
        """The test listener is reachable from these CIDRs only (default: the VPC)."""
        return self.test_cidrs or ((self.vpc_cidr,) if not self.vpc_id else ())

    @property
    def effective_table_name(self) -> str:
        return self.table_name or f"cutover-{self.service}"

    @property
    def parameter_name(self) -> str:
        return f"/cutover/{self.service}/active-color"


# key -> (kind, extra): the one list of keys the program accepts.
_INT_RANGES = {
    "min_size": (0, 1000, "instances"),
    "max_size": (0, 1000, "instances"),
    "desired_capacity": (0, 1000, "instances"),
    "app_port": (1, 65535, ""),
    "production_port": (1, 65535, ""),
    "test_port": (1, 65535, ""),
    "health_check_interval": (5, 300, "seconds"),
    "health_check_timeout": (2, 120, "seconds"),
    "healthy_threshold": (2, 10, ""),
    "unhealthy_threshold": (2, 10, ""),
    "deregistration_delay": (0, 3600, "seconds"),
}
_STR_KEYS = {
    "service",
    "image_id",
    "instance_type",
    "user_data",
    "certificate_arn",
    "vpc_id",
    "vpc_cidr",
    "health_check_path",
    "health_check_matcher",
    "table_name",
}
_LIST_KEYS = {"allowed_cidrs", "test_cidrs", "subnet_ids", "path_rules"}
_MAP_KEYS = {"tags"}
KNOWN_KEYS = frozenset(_INT_RANGES) | _STR_KEYS | _LIST_KEYS | _MAP_KEYS
REQUIRED_KEYS = ("service", "image_id")


def _key(name: str) -> str:
    return f"{NAMESPACE}:{name}"


def _int(name: str, value: Any) -> int:
    low, high, unit = _INT_RANGES[name]
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        number = int(value) if isinstance(value, (int, str)) else None
        if number is None:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{_key(name)} = {value!r} is not an integer (allowed: {low} to {high}{' ' + unit if unit else ''})") from None
    if not low <= number <= high:
        raise ConfigError(f"{_key(name)} = {number} is out of range: allowed {low} to {high}{' ' + unit if unit else ''}")
    return number


def _list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{_key(name)} is not a valid JSON list: {exc}") from None
        else:
            value = [item.strip() for item in text.split(",") if item.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{_key(name)} must be a list of strings, got {value!r}")
    return tuple(value)


def _map(name: str, value: Any) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{_key(name)} is not a valid JSON object: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{_key(name)} must be a map of strings to strings, got {value!r}")
    reserved = sorted(k for k in value if k.startswith("cutover:"))
    if reserved:
        raise ConfigError(f"{_key(name)} may not set the reserved tag(s) {', '.join(reserved)}: the pair sets them itself")
    return dict(value)


def _cidrs(name: str, values: tuple[str, ...]) -> tuple[str, ...]:
    for item in values:
        try:
            ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise ConfigError(f"{_key(name)} has an invalid CIDR {item!r}: {exc}") from None
    return values


def strip_namespace(config: Mapping[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    """Keep the keys of our namespace (``cutover:x`` -> ``x``); other providers' keys are not ours."""
    prefix = f"{namespace}:"
    return {key[len(prefix) :]: value for key, value in config.items() if key.startswith(prefix)}


def parse_config(raw: Mapping[str, Any]) -> BlueGreenPairArgs:
    """Validate the stack's ``cutover:*`` configuration (namespace already stripped).

    Raises :class:`ConfigError` naming the offending key and the allowed values.
    """
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown configuration key(s): {', '.join(_key(k) for k in unknown)}; known keys are: {', '.join(sorted(KNOWN_KEYS))}"
        )
    for name in REQUIRED_KEYS:
        if raw.get(name) in (None, ""):
            raise ConfigError(f"{_key(name)} is required (pulumi config set {_key(name)} <value>)")

    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name in _INT_RANGES:
            values[name] = _int(name, value)
        elif name in _LIST_KEYS:
            values[name] = _list(name, value)
        elif name in _MAP_KEYS:
            values[name] = _map(name, value)
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{_key(name)} must be a string, got {value!r}")
            values[name] = value

    service = values["service"]
    if not SERVICE_RE.match(service):
        raise ConfigError(
            f"{_key('service')} = {service!r} is not a valid name: use 1 to 26 lowercase letters, digits "
            "or hyphens, starting and ending with a letter or digit (it becomes part of ALB, target-group "
            "and table names, which AWS limits to 32 characters)"
        )
    if not IMAGE_RE.match(values["image_id"]):
        raise ConfigError(f"{_key('image_id')} = {values['image_id']!r} is not an AMI id (ami-xxxxxxxx)")
    if "instance_type" in values and not INSTANCE_TYPE_RE.match(values["instance_type"]):
        raise ConfigError(f"{_key('instance_type')} = {values['instance_type']!r} is not an EC2 instance type (e.g. t3.micro)")

    defaults = BlueGreenPairArgs(service=service, image_id=values["image_id"])
    min_size = values.get("min_size", defaults.min_size)
    max_size = values.get("max_size", max(defaults.max_size, min_size))
    desired = values.get("desired_capacity", min(max(defaults.desired_capacity, min_size), max_size))
    if min_size > max_size:
        raise ConfigError(f"{_key('min_size')} = {min_size} is greater than {_key('max_size')} = {max_size}")
    if not min_size <= desired <= max_size:
        raise ConfigError(
            f"{_key('desired_capacity')} = {desired} must lie between {_key('min_size')} = {min_size} and {_key('max_size')} = {max_size}"
        )

    ports = {name: values.get(name, getattr(defaults, name)) for name in ("app_port", "production_port", "test_port")}
    if ports["production_port"] == ports["test_port"]:
        raise ConfigError(
            f"{_key('test_port')} = {ports['test_port']} must differ from {_key('production_port')}: "
            "the test listener is a separate listener"
        )

    health = HealthCheck(
        path=values.get("health_check_path", HealthCheck.path),
        interval=values.get("health_check_interval", HealthCheck.interval),
        timeout=values.get("health_check_timeout", HealthCheck.timeout),
        healthy_threshold=values.get("healthy_threshold", HealthCheck.healthy_threshold),
        unhealthy_threshold=values.get("unhealthy_threshold", HealthCheck.unhealthy_threshold),
        matcher=values.get("health_check_matcher", HealthCheck.matcher),
    )
    if not health.path.startswith("/") or len(health.path) > 1024:
        raise ConfigError(f"{_key('health_check_path')} = {health.path!r} must start with '/' (at most 1024 characters)")
    if health.timeout >= health.interval:
        raise ConfigError(
            f"{_key('health_check_timeout')} = {health.timeout} must be less than {_key('health_check_interval')} = {health.interval}"
        )
    if not MATCHER_RE.match(health.matcher) or not all(200 <= int(code) <= 499 for code in re.findall(r"\d{3}", health.matcher)):
        raise ConfigError(
            f"{_key('health_check_matcher')} = {health.matcher!r} must be HTTP codes from 200 to 499, like '200', '200,204' or '200-299'"
        )

    vpc_id = values.get("vpc_id")
    subnet_ids = values.get("subnet_ids", ())
    if bool(vpc_id) != bool(subnet_ids):
        raise ConfigError(f"{_key('vpc_id')} and {_key('subnet_ids')} go together: set both to use an existing network, or neither")
    if vpc_id:
        if not ID_RE["vpc_id"].match(vpc_id):
            raise ConfigError(f"{_key('vpc_id')} = {vpc_id!r} is not a VPC id (vpc-xxxxxxxx)")
        bad = [s for s in subnet_ids if not ID_RE["subnet_ids"].match(s)]
        if bad or len(set(subnet_ids)) < 2:
            raise ConfigError(
                f"{_key('subnet_ids')} needs at least two distinct subnet ids (subnet-xxxxxxxx) in two "
                f"availability zones, got {list(subnet_ids)!r}"
            )
    test_cidrs = _cidrs("test_cidrs", values.get("test_cidrs", ()))
    if vpc_id and not test_cidrs:
        raise ConfigError(
            f"{_key('test_cidrs')} is required with an existing network: the test listener must be reachable only from CIDRs you name"
        )
    public = [c for c in test_cidrs if ipaddress.ip_network(c).prefixlen == 0]
    if public:
        raise ConfigError(f"{_key('test_cidrs')} may not contain {public[0]}: the test listener must not be reachable from everywhere")
    vpc_cidr = values.get("vpc_cidr", defaults.vpc_cidr)
    _cidrs("vpc_cidr", (vpc_cidr,))
    if not 16 <= ipaddress.ip_network(vpc_cidr).prefixlen <= 24:
        raise ConfigError(f"{_key('vpc_cidr')} = {vpc_cidr!r} must have a prefix from /16 to /24")

    rules = values.get("path_rules", ())
    for pattern in rules:
        if not PATH_PATTERN_RE.match(pattern):
            raise ConfigError(f"{_key('path_rules')} has an invalid path pattern {pattern!r} (must start with '/', at most 128 characters)")
    if len(rules) > 50:
        raise ConfigError(f"{_key('path_rules')} has {len(rules)} patterns: allowed 0 to 50")

    table_name = values.get("table_name", "")
    if table_name and not re.match(r"^[A-Za-z0-9_.-]{3,255}$", table_name):
        raise ConfigError(f"{_key('table_name')} = {table_name!r} is not a valid DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)")

    certificate_arn = values.get("certificate_arn") or None
    if certificate_arn and not certificate_arn.startswith("arn:"):
        raise ConfigError(f"{_key('certificate_arn')} = {certificate_arn!r} is not an ARN")

    return BlueGreenPairArgs(
        service=service,
        image_id=values["image_id"],
        instance_type=values.get("instance_type", defaults.instance_type),
        user_data=values.get("user_data", ""),
        min_size=min_size,
        max_size=max_size,
        desired_capacity=desired,
        certificate_arn=certificate_arn,
        allowed_cidrs=_cidrs("allowed_cidrs", values.get("allowed_cidrs", defaults.allowed_cidrs)),
        test_cidrs=test_cidrs,
        vpc_id=vpc_id,
        subnet_ids=tuple(subnet_ids),
        vpc_cidr=vpc_cidr,
        health_check=health,
        deregistration_delay=values.get("deregistration_delay", defaults.deregistration_delay),
        path_rules=tuple(rules),
        table_name=table_name,
        tags=values.get("tags", {}),
        **ports,
    )
