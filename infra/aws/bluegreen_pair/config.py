"""Validation of the stack configuration for one blue-green pair.

Pure Python, no Pulumi imports: the program calls :func:`parse_config` before it
registers a single resource, so bad input fails before anything is created, with
a message that names the key and the allowed range.

The dataclasses below are the one source of every default. ``Pulumi.yaml``'s config
schema is generated from them (:mod:`bluegreen_pair.schema`), not written by hand:
the component is also used from Python without the project file, and the mock
runtime that provisions the sandbox does not apply the project file's defaults as
the CLI does, so the defaults have to live in the code; the CLI then hands the
program the same values the dataclasses would have supplied.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, get_type_hints

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
    deployer_policy_name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def effective_test_cidrs(self) -> tuple[str, ...]:
        """The test listener is reachable from these CIDRs only (default: the VPC)."""
        return self.test_cidrs or ((self.vpc_cidr,) if not self.vpc_id else ())

    @property
    def effective_table_name(self) -> str:
        return self.table_name or f"cutover-{self.service}"

    @property
    def effective_deployer_policy_name(self) -> str:
        return self.deployer_policy_name or f"cutover-{self.service}-deployer"

    @property
    def parameter_name(self) -> str:
        return f"/cutover/{self.service}/active-color"


# Every key the program accepts, with what it means (Pulumi.yaml's descriptions are generated from these).
DESCRIPTIONS: dict[str, str] = {
    "service": "Service name (1-26 of a-z 0-9 -). Tags every resource cutover:service=<name> and names the ALB, target groups and ASGs.",
    "image_id": "AMI of the first release (later releases are rolled out by cutover.bluegreen, not by this stack).",
    "instance_type": "EC2 instance type of the launch template.",
    "user_data": "User data of the first release (plain text; the stack encodes it).",
    "min_size": "Minimum size of the live colour's Auto Scaling group (0-1000). The idle colour starts at 0.",
    "max_size": "Maximum size of each colour's Auto Scaling group (0-1000, not below min_size).",
    "desired_capacity": "Desired capacity of the live colour at creation (between min_size and max_size).",
    "app_port": "Port the instances serve on (target-group port).",
    "production_port": "Port of the production listener.",
    "test_port": "Port of the test listener, which forwards to the idle colour for smoke tests.",
    "certificate_arn": "ACM certificate ARN; when set, the production listener speaks HTTPS.",
    "allowed_cidrs": "CIDRs allowed to reach the production listener.",
    "test_cidrs": "CIDRs allowed to reach the test listener (default the VPC's range; required with vpc_id; never 0.0.0.0/0).",
    "vpc_id": "Existing VPC to use instead of creating one (goes with subnet_ids).",
    "subnet_ids": "At least two existing subnets in two availability zones (goes with vpc_id).",
    "vpc_cidr": "Range of the VPC the stack creates (/16 to /24); two subnets are cut from it.",
    "health_check_path": "Target-group health-check path.",
    "health_check_interval": "Seconds between health checks (5-300).",
    "health_check_timeout": "Health-check timeout in seconds (2-120, below the interval).",
    "healthy_threshold": "Consecutive successes before a target is healthy (2-10).",
    "unhealthy_threshold": "Consecutive failures before a target is unhealthy (2-10).",
    "health_check_matcher": 'HTTP codes that count as healthy (200-499), e.g. "200" or "200-299".',
    "deregistration_delay": "Seconds a deregistered target keeps serving in-flight requests (0-3600).",
    "path_rules": "Path patterns that get their own production-listener rule forwarding to the live colour (switched with it).",
    "table_name": "DynamoDB table for the deployment lock and journal (default cutover-<service>).",
    "deployer_policy_name": (
        "Name of the deployer IAM policy (default cutover-<service>-deployer). IAM names are per account, not per region: "
        "the stacks of one service in several regions of an account need one each, e.g. cutover-<service>-deployer-<region>."
    ),
    "tags": "Extra tags for every resource (cutover:* tags are reserved).",
}
# Keys that set a field of HealthCheck rather than of BlueGreenPairArgs.
HEALTH_CHECK_KEYS = {
    "health_check_path": "path",
    "health_check_interval": "interval",
    "health_check_timeout": "timeout",
    "healthy_threshold": "healthy_threshold",
    "unhealthy_threshold": "unhealthy_threshold",
    "health_check_matcher": "matcher",
}

# key -> (low, high, unit) of the integer keys.
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
    "deployer_policy_name",
}
_LIST_KEYS = {"allowed_cidrs", "test_cidrs", "subnet_ids", "path_rules"}
_MAP_KEYS = {"tags"}
KNOWN_KEYS = frozenset(DESCRIPTIONS)
REQUIRED_KEYS = ("service", "image_id")


def _field(key: str) -> tuple[type, Any]:
    """The dataclass field behind a config key: its type and its default (``MISSING`` if it has none)."""
    owner, name = (HealthCheck, HEALTH_CHECK_KEYS[key]) if key in HEALTH_CHECK_KEYS else (BlueGreenPairArgs, key)
    spec = {f.name: f for f in fields(owner)}[name]
    default = spec.default_factory() if spec.default_factory is not MISSING else spec.default
    return get_type_hints(owner)[name], default


def config_defaults() -> dict[str, Any]:
    """The default of every optional key, as a stack config value (lists for tuples, "" for None)."""
    out: dict[str, Any] = {}
    for key in DESCRIPTIONS:
        _, default = _field(key)
        if default is MISSING:
            continue
        if isinstance(default, tuple):
            default = list(default)
        elif isinstance(default, Mapping):
            default = dict(default)
        out[key] = "" if default is None else default
    return out


def config_schema() -> dict[str, dict[str, Any]]:
    """Pulumi.yaml's ``config`` section: each key's type, default (none for the required keys) and description."""
    kinds = {int: "integer", str: "string", str | None: "string", tuple[str, ...]: "array", Mapping[str, str]: "object"}
    defaults = config_defaults()
    schema: dict[str, dict[str, Any]] = {}
    for key, description in DESCRIPTIONS.items():
        kind = kinds[_field(key)[0]]
        entry: dict[str, Any] = {"type": kind}
        if kind == "array":
            entry["items"] = {"type": "string"}
        if key in defaults:
            entry["default"] = defaults[key]
        entry["description"] = description
        schema[key] = entry
    return schema


def read_stack_config(get: Callable[[str], Any], set_keys: Iterable[str] = ()) -> dict[str, Any]:
    """The ``cutover:*`` values of the stack, namespace stripped, for :func:`parse_config`.

    ``get`` reads one key (``pulumi.Config("cutover").get``); ``set_keys`` are the config keys the
    stack sets (``pulumi.runtime.get_config_env()``, what the CLI hands the program), so that a key
    of our namespace that the program does not know is refused by name instead of ignored.
    """
    raw = {key: value for key in sorted(KNOWN_KEYS) if (value := get(key)) is not None}
    raw.update({key: value for key, value in strip_namespace(dict.fromkeys(set_keys, "")).items() if key not in KNOWN_KEYS})
    return raw


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

    # What the CLI does with Pulumi.yaml's defaults, done here too: every key the stack leaves out
    # takes the dataclass default, in config form, and goes through the same checks as a given value.
    given = {name: value for name, value in raw.items() if value is not None}
    values: dict[str, Any] = {}
    for name, value in {**config_defaults(), **given}.items():
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
    if not INSTANCE_TYPE_RE.match(values["instance_type"]):
        raise ConfigError(f"{_key('instance_type')} = {values['instance_type']!r} is not an EC2 instance type (e.g. t3.micro)")

    min_size, max_size, desired = values["min_size"], values["max_size"], values["desired_capacity"]
    if min_size > max_size:
        raise ConfigError(f"{_key('min_size')} = {min_size} is greater than {_key('max_size')} = {max_size}")
    if not min_size <= desired <= max_size:
        raise ConfigError(
            f"{_key('desired_capacity')} = {desired} must lie between {_key('min_size')} = {min_size} and {_key('max_size')} = {max_size}"
        )

    ports = {name: values[name] for name in ("app_port", "production_port", "test_port")}
    if ports["production_port"] == ports["test_port"]:
        raise ConfigError(
            f"{_key('test_port')} = {ports['test_port']} must differ from {_key('production_port')}: "
            "the test listener is a separate listener"
        )

    health = HealthCheck(**{field_name: values[key] for key, field_name in HEALTH_CHECK_KEYS.items()})
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

    vpc_id = values["vpc_id"] or None
    subnet_ids = values["subnet_ids"]
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
    test_cidrs = _cidrs("test_cidrs", values["test_cidrs"])
    if vpc_id and not test_cidrs:
        raise ConfigError(
            f"{_key('test_cidrs')} is required with an existing network: the test listener must be reachable only from CIDRs you name"
        )
    public = [c for c in test_cidrs if ipaddress.ip_network(c).prefixlen == 0]
    if public:
        raise ConfigError(f"{_key('test_cidrs')} may not contain {public[0]}: the test listener must not be reachable from everywhere")
    vpc_cidr = values["vpc_cidr"]
    _cidrs("vpc_cidr", (vpc_cidr,))
    if not 16 <= ipaddress.ip_network(vpc_cidr).prefixlen <= 24:
        raise ConfigError(f"{_key('vpc_cidr')} = {vpc_cidr!r} must have a prefix from /16 to /24")

    rules = values["path_rules"]
    for pattern in rules:
        if not PATH_PATTERN_RE.match(pattern):
            raise ConfigError(f"{_key('path_rules')} has an invalid path pattern {pattern!r} (must start with '/', at most 128 characters)")
    if len(rules) > 50:
        raise ConfigError(f"{_key('path_rules')} has {len(rules)} patterns: allowed 0 to 50")

    table_name = values["table_name"]
    if table_name and not re.match(r"^[A-Za-z0-9_.-]{3,255}$", table_name):
        raise ConfigError(f"{_key('table_name')} = {table_name!r} is not a valid DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)")

    policy_name = values["deployer_policy_name"]
    if policy_name and not re.match(r"^[A-Za-z0-9+=,.@_-]{1,128}$", policy_name):
        raise ConfigError(
            f"{_key('deployer_policy_name')} = {policy_name!r} is not a valid IAM policy name (1 to 128 of A-Z a-z 0-9 + = , . @ _ -)"
        )

    certificate_arn = values["certificate_arn"] or None
    if certificate_arn and not certificate_arn.startswith("arn:"):
        raise ConfigError(f"{_key('certificate_arn')} = {certificate_arn!r} is not an ARN")

    return BlueGreenPairArgs(
        service=service,
        image_id=values["image_id"],
        instance_type=values["instance_type"],
        user_data=values["user_data"],
        min_size=min_size,
        max_size=max_size,
        desired_capacity=desired,
        certificate_arn=certificate_arn,
        allowed_cidrs=_cidrs("allowed_cidrs", values["allowed_cidrs"]),
        test_cidrs=test_cidrs,
        vpc_id=vpc_id,
        subnet_ids=tuple(subnet_ids),
        vpc_cidr=vpc_cidr,
        health_check=health,
        deregistration_delay=values["deregistration_delay"],
        path_rules=tuple(rules),
        table_name=table_name,
        deployer_policy_name=policy_name,
        tags=values["tags"],
        **ports,
    )
