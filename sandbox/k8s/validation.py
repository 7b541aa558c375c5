"""Validation of the objects the sandbox runs, with Kubernetes' field paths and messages (422 Invalid).

It covers what a release depends on: names, labels, Deployment and ReplicaSet
specs (replicas, selector matching the template, rolling-update parameters, the
selector's immutability), pod specs (containers, ports, probes, grace periods),
Services (ports, target ports, type, the cluster IP's immutability), Leases and
PodDisruptionBudgets. It is not the whole of Kubernetes' validation.
"""

from __future__ import annotations

import re
from typing import Any

from .kinds import Kind
from .selectors import match_label_selector

Cause = tuple[str, str, str]  # field, reason, message

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
PERCENT = re.compile(r"^[0-9]+%$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _render(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def invalid(field: str, value: Any, detail: str) -> Cause:
    return field, "FieldValueInvalid", f"Invalid value: {_render(value)}: {detail}"


def required(field: str) -> Cause:
    return field, "FieldValueRequired", "Required value"


def unsupported(field: str, value: Any, allowed: list[str]) -> Cause:
    return (
        field,
        "FieldValueNotSupported",
        f"Unsupported value: {_render(value)}: supported values: " + ", ".join(f'"{a}"' for a in allowed),
    )


def duplicate(field: str, value: Any) -> Cause:
    return field, "FieldValueDuplicate", f"Duplicate value: {_render(value)}"


def forbidden(field: str, detail: str) -> Cause:
    return field, "FieldValueForbidden", f"Forbidden: {detail}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _non_negative(value: Any, field: str, causes: list[Cause]) -> None:
    if value is None:
        return
    if not _is_int(value):
        causes.append(invalid(field, value, "must be an integer"))
    elif value < 0:
        causes.append(invalid(field, value, "must be greater than or equal to 0"))


def _positive(value: Any, field: str, causes: list[Cause]) -> None:
    if value is None:
        return
    if not _is_int(value):
        causes.append(invalid(field, value, "must be an integer"))
    elif value <= 0:
        causes.append(invalid(field, value, "must be greater than zero"))


def name_causes(kind: Kind, name: Any) -> list[Cause]:
    if not name:
        return [("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")]
    if not isinstance(name, str):
        return [invalid("metadata.name", name, "must be a string")]
    if kind.key == "/services" or kind.key == "/namespaces":
        pattern, what, limit = (
            (DNS1035_LABEL, "a DNS-1035 label", 63) if kind.key == "/services" else (DNS1123_LABEL, "a lowercase RFC 1123 label", 63)
        )
        example = "'my-name',  or 'abc-123'" if kind.key == "/services" else "'my-name',  or '123-abc'"
        rule = (
            "must consist of lower case alphanumeric characters or '-', start with an alphabetic character, "
            "and end with an alphanumeric character"
            if kind.key == "/services"
            else "must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        )
    else:
        pattern, what, limit = DNS1123_SUBDOMAIN, "a lowercase RFC 1123 subdomain", 253
        example = "'example.com'"
        rule = "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
    if len(name) > limit:
        return [invalid("metadata.name", name, f"must be no more than {limit} characters")]
    if not pattern.match(name):
        return [invalid("metadata.name", name, f"{what} {rule} (e.g. {example})")]
    return []


def label_causes(labels: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    if labels is None:
        return causes
    if not isinstance(labels, dict):
        return [invalid(field, labels, "must be a map of strings")]
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not DNS1123_SUBDOMAIN.match(prefix)) or not QUALIFIED_NAME.match(name) or len(name) > 63:
            causes.append(
                invalid(
                    field,
                    key,
                    "name part must consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            causes.append(
                invalid(
                    f"{field}",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character",
                )
            )
    return causes


def _int_or_percent(value: Any, field: str, causes: list[Cause]) -> bool:
    """Whether the value is 0 (for the both-zero rule)."""
    if _is_int(value):
        if value < 0:
            causes.append(invalid(field, value, "must be greater than or equal to 0"))
        return value == 0
    if isinstance(value, str) and PERCENT.match(value):
        if int(value[:-1]) > 100:
            causes.append(invalid(field, value, "must not be greater than 100%"))
        return int(value[:-1]) == 0
    causes.append(invalid(field, value, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')"))
    return False


def _port_number(value: Any, field: str, causes: list[Cause]) -> None:
    if not _is_int(value) or not 1 <= value <= 65535:
        causes.append(invalid(field, value, "must be between 1 and 65535, inclusive"))


def _int_or_name_port(value: Any, field: str, causes: list[Cause]) -> None:
    if _is_int(value):
        _port_number(value, field, causes)
    elif not isinstance(value, str) or not IANA_SVC_NAME.match(value) or len(value) > 15 or not re.search("[a-z]", value):
        causes.append(invalid(field, value, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"))


def _probe(probe: Any, field: str, causes: list[Cause], readiness: bool) -> None:
    if probe is None:
        return
    if not isinstance(probe, dict):
        causes.append(invalid(field, probe, "must be an object"))
        return
    handlers = [key for key in ("httpGet", "tcpSocket", "exec", "grpc") if key in probe]
    if not handlers:
        causes.append((field, "FieldValueRequired", "Required value: must specify a handler type"))
    elif len(handlers) > 1:
        causes.append(forbidden(f"{field}.{handlers[1]}", "may not specify more than 1 handler type"))
    _non_negative(probe.get("initialDelaySeconds"), f"{field}.initialDelaySeconds", causes)
    for key in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        value = probe.get(key)
        if value is not None and (not _is_int(value) or value < 1):
            causes.append(invalid(f"{field}.{key}", value, "must be greater than or equal to 1"))
    if not readiness and probe.get("successThreshold") not in (None, 1):
        causes.append(invalid(f"{field}.successThreshold", probe["successThreshold"], "must be 1"))
    http = probe.get("httpGet")
    if isinstance(http, dict):
        if "port" not in http:
            causes.append(required(f"{field}.httpGet.port"))
        else:
            _int_or_name_port(http["port"], f"{field}.httpGet.port", causes)
        if http.get("scheme", "HTTP") not in ("HTTP", "HTTPS"):
            causes.append(unsupported(f"{field}.httpGet.scheme", http.get("scheme"), ["HTTP", "HTTPS"]))
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        _int_or_name_port(tcp.get("port"), f"{field}.tcpSocket.port", causes)


def _lifecycle(lifecycle: Any, field: str, causes: list[Cause]) -> None:
    if not isinstance(lifecycle, dict):
        return
    for hook in ("preStop", "postStart"):
        handler = lifecycle.get(hook)
        if handler is None:
            continue
        if not isinstance(handler, dict) or not any(k in handler for k in ("exec", "httpGet", "tcpSocket", "sleep")):
            causes.append((f"{field}.{hook}", "FieldValueRequired", "Required value: must specify a handler type"))
            continue
        sleep = handler.get("sleep")
        if isinstance(sleep, dict):
            seconds = sleep.get("seconds")
            if not _is_int(seconds) or seconds < 0:
                causes.append(invalid(f"{field}.{hook}.sleep.seconds", seconds, "must be greater than or equal to 0"))


def pod_spec_causes(spec: Any, field: str, restart_policies: tuple[str, ...] = ("Always", "OnFailure", "Never")) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(spec, dict):
        return [required(field)]
    containers = spec.get("containers")
    if not containers:
        causes.append(required(f"{field}.containers"))
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            where = f"{field}.{group}[{index}]"
            if not isinstance(container, dict):
                causes.append(invalid(where, container, "must be an object"))
                continue
            name = container.get("name")
            if not name:
                causes.append(required(f"{where}.name"))
            elif not isinstance(name, str) or not DNS1123_LABEL.match(name) or len(name) > 63:
                causes.append(
                    invalid(f"{where}.name", name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")
                )
            elif name in names:
                causes.append(duplicate(f"{where}.name", name))
            else:
                names.add(name)
            if not container.get("image"):
                causes.append(required(f"{where}.image"))
            port_names: set[str] = set()
            for p_index, port in enumerate(container.get("ports") or []):
                port_field = f"{where}.ports[{p_index}]"
                if not isinstance(port, dict):
                    causes.append(invalid(port_field, port, "must be an object"))
                    continue
                _port_number(port.get("containerPort"), f"{port_field}.containerPort", causes)
                if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                    causes.append(unsupported(f"{port_field}.protocol", port.get("protocol"), ["SCTP", "TCP", "UDP"]))
                if port.get("name"):
                    if port["name"] in port_names:
                        causes.append(duplicate(f"{port_field}.name", port["name"]))
                    port_names.add(port["name"])
            _probe(container.get("readinessProbe"), f"{where}.readinessProbe", causes, readiness=True)
            _probe(container.get("livenessProbe"), f"{where}.livenessProbe", causes, readiness=False)
            _probe(container.get("startupProbe"), f"{where}.startupProbe", causes, readiness=False)
            _lifecycle(container.get("lifecycle"), f"{where}.lifecycle", causes)
            for e_index, env in enumerate(container.get("env") or []):
                if not isinstance(env, dict) or not env.get("name"):
                    causes.append(required(f"{where}.env[{e_index}].name"))
    _non_negative(spec.get("terminationGracePeriodSeconds"), f"{field}.terminationGracePeriodSeconds", causes)
    if spec.get("restartPolicy", "Always") not in restart_policies:
        causes.append(unsupported(f"{field}.restartPolicy", spec.get("restartPolicy"), list(restart_policies)))
    return causes


def _workload(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    _non_negative(spec.get("replicas"), "spec.replicas", causes)
    _non_negative(spec.get("minReadySeconds"), "spec.minReadySeconds", causes)
    selector = spec.get("selector")
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(
            (
                "spec.selector",
                "FieldValueRequired",
                "Required value" if selector is None else "Invalid value: empty selector is invalid for deployment",
            )
        )
    else:
        causes += label_causes(selector.get("matchLabels"), "spec.selector.matchLabels")
        if not match_label_selector(selector, labels):
            causes.append(invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    causes += label_causes(labels, "spec.template.metadata.labels")
    causes += pod_spec_causes(template.get("spec"), "spec.template.spec", ("Always",))
    if kind.key == "apps/deployments":
        strategy = spec.get("strategy") or {}
        if strategy.get("type") not in ("RollingUpdate", "Recreate"):
            causes.append(unsupported("spec.strategy.type", strategy.get("type"), ["Recreate", "RollingUpdate"]))
        elif strategy["type"] == "Recreate" and strategy.get("rollingUpdate"):
            causes.append(forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"))
        elif strategy["type"] == "RollingUpdate":
            rolling = strategy.get("rollingUpdate") or {}
            surge_zero = _int_or_percent(rolling.get("maxSurge", "25%"), "spec.strategy.rollingUpdate.maxSurge", causes)
            unavailable_zero = _int_or_percent(rolling.get("maxUnavailable", "25%"), "spec.strategy.rollingUpdate.maxUnavailable", causes)
            if surge_zero and unavailable_zero:
                causes.append(
                    invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable", rolling.get("maxUnavailable"), "may not be 0 when `maxSurge` is 0"
                    )
                )
        _non_negative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit", causes)
        deadline = spec.get("progressDeadlineSeconds")
        _positive(deadline, "spec.progressDeadlineSeconds", causes)
        if _is_int(deadline) and _is_int(spec.get("minReadySeconds")) and deadline <= spec["minReadySeconds"]:
            causes.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        causes.append(invalid("spec.selector", selector, "field is immutable"))
    return causes


def _pod(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec")
    causes = pod_spec_causes(spec, "spec")
    if old is not None and isinstance(spec, dict):
        before, after = dict(old.get("spec") or {}), dict(spec)
        for side in (before, after):
            side["containers"] = [{k: v for k, v in c.items() if k != "image"} for c in side.get("containers") or [] if isinstance(c, dict)]
            for mutable in ("activeDeadlineSeconds", "tolerations", "nodeName"):
                side.pop(mutable, None)
        if before != after:
            causes.append(
                forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, "
                    "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), "
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                )
            )
    return causes


SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _service(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    kind = spec.get("type", "ClusterIP")
    if kind not in SERVICE_TYPES:
        causes.append(unsupported("spec.type", kind, SERVICE_TYPES))
    ports = spec.get("ports") or []
    if not ports and kind != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(required("spec.ports"))
    seen_names: set[str] = set()
    seen_ports: set[tuple[Any, Any]] = set()
    for index, port in enumerate(ports):
        field = f"spec.ports[{index}]"
        if not isinstance(port, dict):
            causes.append(invalid(field, port, "must be an object"))
            continue
        if len(ports) > 1 and not port.get("name"):
            causes.append(required(f"{field}.name"))
        elif port.get("name"):
            if port["name"] in seen_names:
                causes.append(duplicate(f"{field}.name", port["name"]))
            seen_names.add(port["name"])
        _port_number(port.get("port"), f"{field}.port", causes)
        if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            causes.append(unsupported(f"{field}.protocol", port.get("protocol"), ["SCTP", "TCP", "UDP"]))
        if "targetPort" in port:
            _int_or_name_port(port["targetPort"], f"{field}.targetPort", causes)
        identity = (port.get("port"), port.get("protocol", "TCP"))
        if identity in seen_ports:
            causes.append(duplicate(field, {"port": identity[0], "protocol": identity[1]}))
        seen_ports.add(identity)
        if port.get("nodePort") is not None and kind == "ClusterIP":
            causes.append(forbidden(f"{field}.nodePort", "may not be used when `type` is 'ClusterIP'"))
    causes += label_causes(spec.get("selector"), "spec.selector")
    if old is not None:
        before = (old.get("spec") or {}).get("clusterIP")
        if spec.get("clusterIP") not in (None, "", before) and (old.get("spec") or {}).get("type") != "ExternalName":
            causes.append(invalid("spec.clusterIPs[0]", spec.get("clusterIP"), "may not change once set"))
    return causes


def _lease(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return [invalid("spec", spec, "must be an object")]
    _positive(spec.get("leaseDurationSeconds"), "spec.leaseDurationSeconds", causes)
    _non_negative(spec.get("leaseTransitions"), "spec.leaseTransitions", causes)
    if spec.get("holderIdentity") is not None and not isinstance(spec["holderIdentity"], str):
        causes.append(invalid("spec.holderIdentity", spec["holderIdentity"], "must be a string"))
    for key in ("acquireTime", "renewTime"):
        value = spec.get(key)
        if value is not None and not (
            isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
        ):
            causes.append(invalid(f"spec.{key}", value, "must be an RFC 3339 time with microseconds (e.g. 2006-01-02T15:04:05.000000Z)"))
    return causes


def _pdb(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec") or {}
    if "minAvailable" in spec and "maxUnavailable" in spec:
        causes.append(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    for key in ("minAvailable", "maxUnavailable"):
        if key in spec:
            _int_or_percent(spec[key], f"spec.{key}", causes)
    return causes


def _config_map(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for section in ("data", "binaryData"):
        values = obj.get(section)
        if values is None:
            continue
        if not isinstance(values, dict):
            causes.append(invalid(section, values, "must be a map of strings"))
            continue
        for key, value in values.items():
            if not CONFIG_KEY.match(key):
                causes.append(
                    invalid(f"{section}[{key}]", key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
                )
            if section == "data" and not isinstance(value, str):
                causes.append(invalid(f"{section}[{key}]", value, "must be a string"))
    return causes


def causes_for(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    """Every validation failure of ``obj`` (``old``: the stored object, for an update)."""
    meta = obj.get("metadata") or {}
    causes = name_causes(kind, meta.get("name"))
    causes += label_causes(meta.get("labels"), "metadata.labels")
    if meta.get("annotations") is not None and (
        not isinstance(meta["annotations"], dict) or not all(isinstance(v, str) for v in meta["annotations"].values())
    ):
        causes.append(invalid("metadata.annotations", meta["annotations"], "must be a map of strings"))
    if kind.key in ("apps/deployments", "apps/replicasets"):
        causes += _workload(kind, obj, old)
    elif kind.key == "/pods":
        causes += _pod(obj, old)
    elif kind.key == "/services":
        causes += _service(obj, old)
    elif kind.key == "coordination.k8s.io/leases":
        causes += _lease(obj)
    elif kind.key == "policy/poddisruptionbudgets":
        causes += _pdb(obj)
    elif kind.key == "/configmaps":
        causes += _config_map(obj)
    return causes
