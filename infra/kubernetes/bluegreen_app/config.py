"""Validation of the stack configuration for one blue-green app on Kubernetes.

Pure Python, no Pulumi imports: the program calls :func:`parse_config` before it
registers a single resource, so bad input fails before anything is created, with
a message that names the key and the allowed values.

The defaults live here and only here (the fields of :class:`BlueGreenAppArgs`);
``Pulumi.yaml`` documents each key and says its default, and a unit test keeps
the two in step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

NAMESPACE = "cutover-k8s"

COLORS = ("blue", "green")
APP_LABEL = "app"
SLOT_LABEL = "slot"

# The app name becomes the value of the `app` label, the Services `<app>` and `<app>-preview`
# (DNS-1035 labels, at most 63 characters) and the Deployments `<app>-blue`/`<app>-green`, whose
# ReplicaSets and pods add `-<hash>` (10) and `-<suffix>` (5): 40 keeps every derived name short.
MAX_APP_LENGTH = 40
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A container image reference: [registry[:port]/]path[:tag][@digest] (what the kubelet accepts, loosely).
IMAGE_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$")
# Kubernetes resource quantities: 100m, 0.5, 1, 128Mi, 1G, 1e3.
QUANTITY_RE = re.compile(r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][0-9]+)?$")
LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
HTTP_PATH_RE = re.compile(r"^/[!-~]{0,1023}$")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PRE_STOP_MODES = ("sleep", "exec")


class ConfigError(ValueError):
    """The stack configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class ReadinessProbe:
    """An HTTP GET readiness probe on the container port (Kubernetes' own defaults but the period)."""

    path: str = "/health"
    initial_delay: int = 0
    period: int = 5
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class BlueGreenAppArgs:
    """Everything one blue-green app is made from (validated). The one place of every default."""

    app: str
    image: str
    namespace: str = ""  # the app's name when empty
    create_namespace: bool = True
    replicas: int = 2
    container_name: str = "app"
    container_port: int = 8080
    service_port: int = 80
    service_type: str = "ClusterIP"
    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = ""
    memory_limit: str = "256Mi"
    readiness: ReadinessProbe = field(default_factory=ReadinessProbe)
    min_ready_seconds: int = 0
    termination_grace_seconds: int = 30
    pre_stop_seconds: int = 5
    pre_stop_mode: str = "sleep"
    pdb_max_unavailable: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    deployer_service_account: str = ""  # <app>-deployer when empty
    deployer_users: tuple[str, ...] = ()
    deployer_groups: tuple[str, ...] = ()

    @property
    def effective_namespace(self) -> str:
        return self.namespace or self.app

    @property
    def service_name(self) -> str:
        return self.app

    @property
    def preview_service_name(self) -> str:
        return f"{self.app}-preview"

    def deployment_name(self, color: str) -> str:
        return f"{self.app}-{color}"

    @property
    def active_color_config_map(self) -> str:
        return f"{self.app}-active-color"

    @property
    def journal_config_map(self) -> str:
        return f"{self.app}-cutover-journal"

    @property
    def lease_name(self) -> str:
        return f"{self.app}-cutover-lock"

    @property
    def effective_service_account(self) -> str:
        return self.deployer_service_account or f"{self.app}-deployer"


# The range of every integer key: (low, high, unit). Kubernetes' own lower bounds; upper bounds are ours.
_INT_RANGES = {
    "replicas": (0, 1000, "pods"),
    "container_port": (1, 65535, ""),
    "service_port": (1, 65535, ""),
    "readiness_initial_delay": (0, 3600, "seconds"),
    "readiness_period": (1, 3600, "seconds"),
    "readiness_timeout": (1, 3600, "seconds"),
    "readiness_success_threshold": (1, 100, ""),
    "readiness_failure_threshold": (1, 100, ""),
    "min_ready_seconds": (0, 3600, "seconds"),
    "termination_grace_seconds": (0, 3600, "seconds"),
    "pre_stop_seconds": (0, 3600, "seconds"),
    "pdb_max_unavailable": (0, 1000, "pods"),
}
_BOOL_KEYS = {"create_namespace"}
_STR_KEYS = {
    "app",
    "image",
    "namespace",
    "container_name",
    "service_type",
    "cpu_request",
    "memory_request",
    "cpu_limit",
    "memory_limit",
    "readiness_path",
    "pre_stop_mode",
    "deployer_service_account",
}
_LIST_KEYS = {"deployer_users", "deployer_groups"}
_MAP_KEYS = {"env", "labels"}
KNOWN_KEYS = frozenset(_INT_RANGES) | _BOOL_KEYS | _STR_KEYS | _LIST_KEYS | _MAP_KEYS
REQUIRED_KEYS = ("app", "image")
RESERVED_LABELS = (APP_LABEL, SLOT_LABEL, "pod-template-hash")

# Config key -> (dataclass, field) whose default it takes: the defaults Pulumi.yaml documents.
_PROBE_KEYS = {
    "readiness_path": "path",
    "readiness_initial_delay": "initial_delay",
    "readiness_period": "period",
    "readiness_timeout": "timeout",
    "readiness_success_threshold": "success_threshold",
    "readiness_failure_threshold": "failure_threshold",
}


DESCRIPTIONS = {
    "app": f"App name (1-{MAX_APP_LENGTH} of a-z 0-9 -, starting with a letter): the app label, the Services <app> and "
    "<app>-preview, the Deployments <app>-blue and <app>-green.",
    "image": "Container image of the first release (later releases are rolled out by cutover.bluegreen, not by this stack).",
    "namespace": "Namespace of the app (empty: the app name).",
    "create_namespace": "Create the namespace (false: use an existing one).",
    "replicas": "Pods of the live colour (blue) at creation (0-1000); green starts at 0.",
    "container_name": "Name of the app's container (the one cutover.bluegreen sets the image of).",
    "container_port": "Port the container serves on (named http; the Services' target port).",
    "service_port": "Port of the live and preview Services.",
    "service_type": "Type of the live Service: ClusterIP, NodePort or LoadBalancer (the preview Service is ClusterIP).",
    "cpu_request": "CPU request of the container (a Kubernetes quantity; empty: none).",
    "memory_request": "Memory request of the container (empty: none).",
    "cpu_limit": "CPU limit of the container (empty: none).",
    "memory_limit": "Memory limit of the container (empty: none).",
    "readiness_path": "HTTP path of the readiness probe.",
    "readiness_initial_delay": "Seconds before the first readiness probe (0-3600).",
    "readiness_period": "Seconds between readiness probes (1-3600).",
    "readiness_timeout": "Readiness probe timeout in seconds (1-3600).",
    "readiness_success_threshold": "Consecutive successes before a pod is Ready (1-100).",
    "readiness_failure_threshold": "Consecutive failures before a pod is not Ready (1-100).",
    "min_ready_seconds": "Seconds a Ready pod must stay Ready to count as available (0-3600).",
    "termination_grace_seconds": "Seconds a stopping pod gets, preStop delay included (0-3600).",
    "pre_stop_seconds": "preStop delay in seconds, so endpoints drop the pod before its process stops (0: none; below the grace period).",
    "pre_stop_mode": "How the preStop delay runs: sleep (the kubelet's sleep action, Kubernetes 1.30+) or exec (sleep in the container).",
    "pdb_max_unavailable": "maxUnavailable of each colour's PodDisruptionBudget (0-1000).",
    "env": "Environment variables of the container (a map of strings).",
    "labels": "Extra labels of every object (app, slot and pod-template-hash are reserved).",
    "deployer_service_account": "ServiceAccount the deployer Role is bound to (empty: <app>-deployer).",
    "deployer_users": "Users the deployer Role is also bound to.",
    "deployer_groups": "Groups the deployer Role is also bound to.",
}


_ORDER = list(DESCRIPTIONS)


def defaults() -> dict[str, Any]:
    """Every optional key and its default in config form (lists as lists, ``""`` for derived names)."""
    out: dict[str, Any] = {}
    for item in fields(BlueGreenAppArgs):
        if item.name in REQUIRED_KEYS or item.name == "readiness":
            continue
        value = item.default_factory() if item.default is MISSING else item.default  # type: ignore[misc]
        out[item.name] = list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, Mapping) else value
    probe = ReadinessProbe()
    out.update({name: getattr(probe, attribute) for name, attribute in _PROBE_KEYS.items()})
    return out


def config_schema() -> dict[str, dict[str, Any]]:
    """Pulumi.yaml's ``config`` section: each key's type, its default (none for required keys), its description."""
    values = defaults()
    schema: dict[str, dict[str, Any]] = {}
    for name in sorted(KNOWN_KEYS, key=_ORDER.index):
        if name in _INT_RANGES:
            entry: dict[str, Any] = {"type": "integer"}
        elif name in _BOOL_KEYS:
            entry = {"type": "boolean"}
        elif name in _LIST_KEYS:
            entry = {"type": "array", "items": {"type": "string"}}
        elif name in _MAP_KEYS:
            entry = {"type": "object"}
        else:
            entry = {"type": "string"}
        if name in values:
            entry["default"] = values[name]
        entry["description"] = DESCRIPTIONS[name]
        schema[name] = entry
    return schema


def key(name: str) -> str:
    return f"{NAMESPACE}:{name}"


def strip_namespace(config: Mapping[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    """Keep the keys of our namespace (``cutover-k8s:x`` -> ``x``); other providers' keys are not ours."""
    prefix = f"{namespace}:"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def read_stack_config(get: Callable[[str], Any], set_keys: Iterable[str] = ()) -> dict[str, Any]:
    """The values of the stack for :func:`parse_config`, namespace stripped.

    ``get`` reads one key (``pulumi.Config(NAMESPACE).get``); ``set_keys`` are the
    config keys the stack sets (``pulumi.runtime.get_config_env()``: what the CLI
    hands the program), so that a key of our namespace the program does not know
    is refused by name instead of being ignored.
    """
    raw = {name: value for name in sorted(KNOWN_KEYS) if (value := get(name)) is not None}
    raw.update({name: "" for name in strip_namespace(dict.fromkeys(set_keys, "")) if name not in KNOWN_KEYS})
    return raw


def _int(name: str, value: Any) -> int:
    low, high, unit = _INT_RANGES[name]
    allowed = f"{low} to {high}{' ' + unit if unit else ''}"
    number = None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        number = int(value)
    if number is None:
        raise ConfigError(f"{key(name)} = {value!r} is not an integer (allowed: {allowed})")
    if not low <= number <= high:
        raise ConfigError(f"{key(name)} = {number} is out of range: allowed {allowed}")
    return number


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"{key(name)} = {value!r} must be true or false")


def _list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{key(name)} is not a valid JSON list: {exc}") from None
        else:
            value = [item.strip() for item in text.split(",") if item.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{key(name)} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def _map(name: str, value: Any) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key(name)} is not a valid JSON object: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{key(name)} must be a map of strings to strings, got {value!r}")
    return dict(value)


def _name(name: str, value: str, pattern: re.Pattern[str], what: str, limit: int) -> str:
    if not value or len(value) > limit or not pattern.match(value):
        raise ConfigError(f"{key(name)} = {value!r} is not a valid {what} (at most {limit} characters)")
    return value


def _quantity(name: str, value: str) -> str:
    if value and not QUANTITY_RE.match(value):
        raise ConfigError(f"{key(name)} = {value!r} is not a Kubernetes quantity, like 100m, 0.5, 128Mi or 1Gi")
    return value


def parse_config(raw: Mapping[str, Any]) -> BlueGreenAppArgs:
    """Validate the stack's configuration (namespace already stripped).

    Raises :class:`ConfigError` naming the offending key and the allowed values.
    """
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown configuration key(s): {', '.join(key(k) for k in unknown)}; known keys are: {', '.join(sorted(KNOWN_KEYS))}"
        )
    for name in REQUIRED_KEYS:
        if raw.get(name) in (None, ""):
            raise ConfigError(f"{key(name)} is required (pulumi config set {key(name)} <value>)")

    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name in _INT_RANGES:
            values[name] = _int(name, value)
        elif name in _BOOL_KEYS:
            values[name] = _bool(name, value)
        elif name in _LIST_KEYS:
            values[name] = _list(name, value)
        elif name in _MAP_KEYS:
            values[name] = _map(name, value)
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{key(name)} must be a string, got {value!r}")
            values[name] = value.strip()

    app = values["app"]
    if len(app) > MAX_APP_LENGTH or not DNS_1035.match(app):
        raise ConfigError(
            f"{key('app')} = {app!r} is not a valid app name: use 1 to {MAX_APP_LENGTH} lowercase letters, digits or "
            "hyphens, starting with a letter and ending with a letter or digit (a DNS-1035 label: it names the "
            "Services and Deployments and is the value of the app label)"
        )
    if not IMAGE_RE.match(values["image"]) or len(values["image"]) > 512:
        raise ConfigError(f"{key('image')} = {values['image']!r} is not a container image reference, like registry.example.com/shop:v1")
    namespace = values.get("namespace", "")
    if namespace:
        _name("namespace", namespace, DNS_1123_LABEL, "namespace name (a DNS-1123 label)", 63)
    if "container_name" in values:
        _name("container_name", values["container_name"], DNS_1123_LABEL, "container name (a DNS-1123 label)", 63)
    if values.get("deployer_service_account"):
        _name("deployer_service_account", values["deployer_service_account"], DNS_1123_SUBDOMAIN, "service account name", 253)
    service_type = values.get("service_type", BlueGreenAppArgs.service_type)
    if service_type not in SERVICE_TYPES:
        raise ConfigError(f"{key('service_type')} = {service_type!r} is not one of {', '.join(SERVICE_TYPES)}")
    pre_stop_mode = values.get("pre_stop_mode", BlueGreenAppArgs.pre_stop_mode)
    if pre_stop_mode not in PRE_STOP_MODES:
        raise ConfigError(
            f"{key('pre_stop_mode')} = {pre_stop_mode!r} is not one of {', '.join(PRE_STOP_MODES)} "
            "(sleep: the kubelet's sleep action, Kubernetes 1.30 and later; exec: runs `sleep` in the container)"
        )
    for name in ("cpu_request", "memory_request", "cpu_limit", "memory_limit"):
        _quantity(name, values.get(name, ""))

    grace = values.get("termination_grace_seconds", BlueGreenAppArgs.termination_grace_seconds)
    pre_stop = values.get("pre_stop_seconds", BlueGreenAppArgs.pre_stop_seconds)
    if pre_stop and pre_stop >= grace:
        raise ConfigError(
            f"{key('pre_stop_seconds')} = {pre_stop} must be less than {key('termination_grace_seconds')} = {grace}: "
            "the grace period counts the preStop delay, and the process needs time to finish its requests after it"
        )

    probe = ReadinessProbe(**{field_name: values[k] for k, field_name in _PROBE_KEYS.items() if k in values})
    if not HTTP_PATH_RE.match(probe.path):
        raise ConfigError(f"{key('readiness_path')} = {probe.path!r} must be an HTTP path starting with '/' (at most 1024 characters)")

    labels = values.get("labels", {})
    for label, value in labels.items():
        if label in RESERVED_LABELS:
            raise ConfigError(f"{key('labels')} may not set {label!r}: the program sets {', '.join(RESERVED_LABELS)} itself")
        if not LABEL_KEY_RE.match(label) or not LABEL_VALUE_RE.match(value):
            raise ConfigError(f"{key('labels')} has an invalid label {label}={value!r} (Kubernetes label syntax)")
    env = values.get("env", {})
    for variable in env:
        if not ENV_NAME_RE.match(variable):
            raise ConfigError(
                f"{key('env')} has an invalid variable name {variable!r} (letters, digits, '_', '-', '.'; not starting with a digit)"
            )
    for name in ("deployer_users", "deployer_groups"):
        for subject in values.get(name, ()):
            if len(subject) > 253:
                raise ConfigError(f"{key(name)} has a name longer than 253 characters: {subject[:40]!r}...")

    scalar = {
        name: values[name]
        for name in (
            "namespace",
            "create_namespace",
            "replicas",
            "container_name",
            "container_port",
            "service_port",
            "cpu_request",
            "memory_request",
            "cpu_limit",
            "memory_limit",
            "min_ready_seconds",
            "termination_grace_seconds",
            "pre_stop_seconds",
            "pdb_max_unavailable",
            "deployer_service_account",
            "deployer_users",
            "deployer_groups",
        )
        if name in values
    }
    return BlueGreenAppArgs(
        app=app,
        image=values["image"],
        service_type=service_type,
        pre_stop_mode=pre_stop_mode,
        readiness=probe,
        env=env,
        labels=labels,
        **scalar,
    )
