"""Label and field selectors, as the Kubernetes API parses and matches them.

Label selectors (``?labelSelector=``): ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``,
``k notin (a,b)``, ``k``, ``!k``, joined by commas (AND). Field selectors
(``?fieldSelector=``): ``path=v``, ``path==v``, ``path!=v`` over the fields each
kind supports (``metadata.name`` and ``metadata.namespace`` everywhere, plus the
ones in :data:`FIELDS`). ``LabelSelector`` objects (``matchLabels`` and
``matchExpressions``, as in a Deployment or a PodDisruptionBudget) match through
:func:`match_label_selector`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector that does not parse, or names a field the kind does not support."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # = != in notin exists !exists
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "=":
            return present and value == self.values[0]
        if self.operator == "!=":
            return not present or value != self.values[0]
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        return not present  # !exists


_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _check_key(key: str, text: str) -> str:
    if not _KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r} in {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if not _VALUE.match(value) or len(value) > 63:
        raise SelectorError(f"unable to parse requirement: invalid label value {value!r} in {text!r}")
    return value


def parse_labels(text: str | None) -> tuple[Requirement, ...]:
    if not text or not text.strip():
        return ()
    requirements = []
    for part in _split_top(text):
        match = re.match(r"^(\S+?)\s+(in|notin)\s*\((.*)\)$", part)
        if match:
            values = tuple(_check_value(v.strip(), text) for v in match.group(3).split(",") if v.strip())
            if not values:
                raise SelectorError(f"unable to parse requirement: {match.group(2)} needs at least one value in {text!r}")
            requirements.append(Requirement(_check_key(match.group(1), text), match.group(2), values))
            continue
        match = re.match(r"^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$", part)
        if match:
            operator = "!=" if match.group(2) == "!=" else "="
            requirements.append(Requirement(_check_key(match.group(1), text), operator, (_check_value(match.group(3), text),)))
            continue
        if part.startswith("!"):
            requirements.append(Requirement(_check_key(part[1:].strip(), text), "!exists"))
            continue
        if re.match(r"^\S+$", part):
            requirements.append(Requirement(_check_key(part, text), "exists"))
            continue
        raise SelectorError(f"unable to parse requirement: {part!r} in {text!r}")
    return tuple(requirements)


def labels_match(requirements: tuple[Requirement, ...], labels: Mapping[str, str] | None) -> bool:
    return all(requirement.matches(labels or {}) for requirement in requirements)


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """A ``LabelSelector`` object against labels. An empty selector matches everything; ``None`` nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        operator = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}.get(expression.get("operator"))
        if operator is None:
            return False
        if not Requirement(expression.get("key", ""), operator, tuple(expression.get("values") or ())).matches(labels):
            return False
    return True


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A ``LabelSelector`` as the string form (what a Scale's ``status.selector`` shows)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), sorted(expression.get("values") or [])
        if operator == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            parts.append(str(key))
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# -- field selectors ------------------------------------------------------------------------------------
def _path(*keys: str) -> Callable[[dict[str, Any]], str]:
    def read(obj: dict[str, Any]) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return read


COMMON = {"metadata.name": _path("metadata", "name"), "metadata.namespace": _path("metadata", "namespace")}
FIELDS: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "/pods": {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": _path("spec", "hostNetwork"),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "/events": {
        "involvedObject.kind": _path("involvedObject", "kind"),
        "involvedObject.namespace": _path("involvedObject", "namespace"),
        "involvedObject.name": _path("involvedObject", "name"),
        "involvedObject.uid": _path("involvedObject", "uid"),
        "involvedObject.apiVersion": _path("involvedObject", "apiVersion"),
        "involvedObject.resourceVersion": _path("involvedObject", "resourceVersion"),
        "involvedObject.fieldPath": _path("involvedObject", "fieldPath"),
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
    "/namespaces": {"status.phase": _path("status", "phase")},
    "/secrets": {"type": _path("type")},
    "apps/replicasets": {"status.replicas": _path("status", "replicas")},
    "/nodes": {"spec.unschedulable": _path("spec", "unschedulable")},
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    equal: bool
    value: str
    read: Callable[[dict[str, Any]], str]

    def matches(self, obj: dict[str, Any]) -> bool:
        return (self.read(obj) == self.value) == self.equal


def parse_fields(text: str | None, kind_key: str, kind_name: str) -> tuple[FieldRequirement, ...]:
    if not text or not text.strip():
        return ()
    supported = {**COMMON, **FIELDS.get(kind_key, {})}
    requirements = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        match = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part)
        if not match:
            raise SelectorError(f"invalid selector: {part!r}; a field selector is field=value, field==value or field!=value")
        name = match.group(1).strip()
        if name not in supported:
            raise SelectorError(f"field label not supported: {name}; {kind_name} supports: {', '.join(sorted(supported))}")
        requirements.append(FieldRequirement(name, match.group(2) != "!=", match.group(3).strip(), supported[name]))
    return tuple(requirements)


def fields_match(requirements: tuple[FieldRequirement, ...], obj: dict[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)
