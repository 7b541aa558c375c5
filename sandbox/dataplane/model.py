"""What the AWS API says the data plane should be: a frozen snapshot read from moto's backends.

:func:`snapshot` reads moto's in-process models (the daemon serves them, so no API
call is made) into plain frozen dataclasses; everything downstream (HAProxy
configuration, maps, process plans) is computed from those, so it is tested
without moto.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger("sandbox.dataplane")

RUNNING_STATES = frozenset({"pending", "running"})


@dataclass(frozen=True)
class HealthCheck:
    enabled: bool = True
    path: str = "/"
    interval: int = 30
    timeout: int = 5
    healthy: int = 5
    unhealthy: int = 2
    matcher: str = "200"

    def status_codes(self) -> list[int]:
        """The matcher's HTTP codes ("200", "200,202", "200-299") as a list."""
        codes: list[int] = []
        for part in (self.matcher or "200").split(","):
            part = part.strip()
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                codes.extend(range(low, high + 1))
            elif part:
                codes.append(int(part))
        return sorted(set(codes)) or [200]


@dataclass(frozen=True)
class Target:
    id: str
    port: int

    @property
    def server(self) -> str:
        """The HAProxy server name of this target."""
        return f"{self.id}_{self.port}"


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    name: str
    health: HealthCheck
    algorithm: str = "round_robin"
    deregistration_delay: int = 300
    targets: tuple[Target, ...] = ()
    account: str = ""
    region: str = ""

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[1]

    @property
    def backend(self) -> str:
        return f"tg_{self.id}"

    @property
    def dimension(self) -> str:
        """The CloudWatch ``TargetGroup`` dimension value: targetgroup/<name>/<id>."""
        return self.arn.split(":", 5)[5]


@dataclass(frozen=True)
class Action:
    """A listener or rule action, reduced to what routing needs.

    ``kind`` is ``forward`` (``forwards``: (target group ARN, weight) pairs),
    ``fixed-response`` (``status``, ``content_type``, ``body``) or ``unsupported``
    (``body`` says which type).
    """

    kind: str
    forwards: tuple[tuple[str, int], ...] = ()
    status: int = 503
    content_type: str = "text/plain"
    body: str = ""


@dataclass(frozen=True)
class Condition:
    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    arn: str
    priority: int
    conditions: tuple[Condition, ...]
    action: Action


@dataclass(frozen=True)
class Listener:
    arn: str
    load_balancer_arn: str
    protocol: str
    port: int
    default: Action
    rules: tuple[Rule, ...] = ()

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[1]

    @property
    def frontend(self) -> str:
        return f"l_{self.id}"

    def target_group_arns(self) -> set[str]:
        actions = [self.default, *(rule.action for rule in self.rules)]
        return {arn for action in actions for arn, _ in action.forwards}


@dataclass(frozen=True)
class LoadBalancer:
    arn: str
    name: str
    dns_name: str
    type: str
    listeners: tuple[Listener, ...] = ()
    account: str = ""
    region: str = ""

    @property
    def dimension(self) -> str:
        """The CloudWatch ``LoadBalancer`` dimension value: app/<name>/<id>."""
        return self.arn.split(":loadbalancer/", 1)[1]


@dataclass(frozen=True)
class Instance:
    id: str
    state: str
    image_id: str
    user_data: str = ""
    color: str = ""
    service: str = ""
    private_ip: str = ""
    auto_scaling_group: str = ""
    lifecycle_state: str = ""

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class Snapshot:
    load_balancers: tuple[LoadBalancer, ...] = ()
    target_groups: Mapping[str, TargetGroup] = field(default_factory=dict)
    instances: Mapping[str, Instance] = field(default_factory=dict)

    def listeners(self) -> list[Listener]:
        return [listener for lb in self.load_balancers for listener in lb.listeners]

    def attached(self) -> dict[str, LoadBalancer]:
        """Target groups a listener of a load balancer forwards to, with that load balancer."""
        attached: dict[str, LoadBalancer] = {}
        for lb in self.load_balancers:
            for listener in lb.listeners:
                for arn in listener.target_group_arns():
                    attached.setdefault(arn, lb)
        return attached

    def instance_for(self, target: Target) -> Instance | None:
        """The instance behind a target: by id, or by private IP for ``ip`` targets."""
        instance = self.instances.get(target.id)
        if instance is None and not target.id.startswith("i-"):
            instance = next((i for i in self.instances.values() if i.private_ip == target.id and i.running), None)
        return instance


# -- reading moto ---------------------------------------------------------------------------------
def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def action_from(data: Mapping[str, Any]) -> Action:
    """One ALB action (as the API takes it) reduced to an :class:`Action`."""
    kind = data.get("Type")
    if kind == "forward":
        groups = (data.get("ForwardConfig") or {}).get("TargetGroups") or []
        if groups:
            return Action("forward", tuple((g["TargetGroupArn"], _int(g.get("Weight", 1), 1)) for g in groups))
        if data.get("TargetGroupArn"):
            return Action("forward", ((data["TargetGroupArn"], 1),))
    if kind == "fixed-response":
        config = data.get("FixedResponseConfig") or {}
        return Action(
            "fixed-response",
            status=_int(config.get("StatusCode"), 503),
            content_type=config.get("ContentType") or "text/plain",
            body=config.get("MessageBody") or "",
        )
    return Action("unsupported", body=f"the sandbox does not emulate {kind} actions")


def actions_from(actions: Iterable[Mapping[str, Any]]) -> Action:
    """The action that answers: the first routing action in Order (authenticate-* ones pass)."""
    ordered = sorted(actions, key=lambda a: _int(a.get("Order"), 50000))
    for data in ordered:
        if not str(data.get("Type", "")).startswith("authenticate-"):
            return action_from(data)
    return Action("unsupported", body="the rule has no routing action")


def condition_from(data: Mapping[str, Any]) -> Condition:
    name = data.get("Field", "")
    config_key = {
        "path-pattern": "PathPatternConfig",
        "host-header": "HostHeaderConfig",
        "http-request-method": "HttpRequestMethodConfig",
    }.get(name)
    values = (data.get(config_key) or {}).get("Values") if config_key else None
    return Condition(name, tuple(values or data.get("Values") or ()))


def _tags(instance: Any) -> dict[str, str]:
    try:
        return {tag["key"]: tag["value"] for tag in instance.get_tags()}
    except (AttributeError, KeyError, TypeError):
        return {}


def _user_data(instance: Any) -> str:
    data = getattr(instance, "user_data", None)
    if data is None:
        return ""
    if isinstance(data, list | tuple):
        data = data[0] if data else ""
    if isinstance(data, bytes):
        return data.decode("ascii", "replace")
    return str(getattr(data, "_encoded_string", data))


def read_backends(elbv2: Any, ec2: Any, autoscaling: Any | None, account: str, region: str) -> Snapshot:
    """One account and region of moto's backends as a :class:`Snapshot`."""
    groups: dict[str, TargetGroup] = {}
    for tg in list(elbv2.target_groups.values()):
        attributes = getattr(tg, "attributes", {}) or {}
        health = HealthCheck(
            enabled=bool(getattr(tg, "health_check_enabled", True)),
            path=tg.health_check_path or "/",
            interval=_int(tg.health_check_interval_seconds, 30),
            timeout=_int(tg.health_check_timeout_seconds, 5),
            healthy=_int(tg.healthy_threshold_count, 5),
            unhealthy=_int(tg.unhealthy_threshold_count, 2),
            matcher=str((getattr(tg, "matcher", None) or {}).get("HttpCode") or "200"),
        )
        targets = tuple(Target(t["Id"], _int(t.get("Port"), _int(tg.port, 80))) for t in list(tg.targets.values()))
        groups[tg.arn] = TargetGroup(
            arn=tg.arn,
            name=tg.name,
            health=health,
            algorithm=str(attributes.get("load_balancing.algorithm.type") or "round_robin"),
            deregistration_delay=_int(attributes.get("deregistration_delay.timeout_seconds"), 300),
            targets=targets,
            account=account,
            region=region,
        )
    balancers = []
    for lb in list(elbv2.load_balancers.values()):
        listeners = []
        for listener in list(lb.listeners.values()):
            rules = []
            for rule in list(listener.rules.values()):
                if getattr(rule, "is_default", False) or rule.priority == "default":
                    continue
                rules.append(
                    Rule(
                        arn=rule.arn,
                        priority=_int(rule.priority, 50000),
                        conditions=tuple(condition_from(c) for c in rule.conditions or ()),
                        action=actions_from(a.data for a in rule.actions),
                    )
                )
            listeners.append(
                Listener(
                    arn=listener.arn,
                    load_balancer_arn=lb.arn,
                    protocol=listener.protocol,
                    port=_int(listener.port, 80),
                    default=actions_from(a.data for a in listener.default_actions),
                    rules=tuple(sorted(rules, key=lambda r: r.priority)),
                )
            )
        balancers.append(
            LoadBalancer(
                arn=lb.arn,
                name=lb.name,
                dns_name=getattr(lb, "dns_name", ""),
                type=getattr(lb, "loadbalancer_type", "application") or "application",
                listeners=tuple(sorted(listeners, key=lambda item: item.port)),
                account=account,
                region=region,
            )
        )
    memberships: dict[str, tuple[str, str]] = {}
    if autoscaling is not None:
        for group in list(autoscaling.autoscaling_groups.values()):
            for state in list(group.instance_states):
                memberships[state.instance.id] = (group.name, state.lifecycle_state)
    instances = {}
    for instance in list(ec2.all_instances()):
        tags = _tags(instance)
        group, lifecycle = memberships.get(instance.id, (tags.get("aws:autoscaling:groupName", ""), ""))
        instances[instance.id] = Instance(
            id=instance.id,
            state=instance.state,
            image_id=instance.image_id or "",
            user_data=_user_data(instance),
            color=tags.get("cutover:color", ""),
            service=tags.get("cutover:service", ""),
            private_ip=getattr(instance, "private_ip", "") or "",
            auto_scaling_group=group if instance.id in memberships else "",
            lifecycle_state=lifecycle,
        )
    return Snapshot(tuple(balancers), groups, instances)


def snapshot() -> Snapshot:
    """Every account and region moto holds ELBv2 state for, merged."""
    from moto.autoscaling.models import autoscaling_backends
    from moto.ec2.models import ec2_backends
    from moto.elbv2.models import elbv2_backends

    balancers: list[LoadBalancer] = []
    groups: dict[str, TargetGroup] = {}
    instances: dict[str, Instance] = {}
    for account, region, elbv2 in list(elbv2_backends.iter_backends()):
        if not elbv2.target_groups and not elbv2.load_balancers:
            continue
        ec2 = ec2_backends[account][region]
        autoscaling = dict.get(autoscaling_backends, account)
        autoscaling = dict.get(autoscaling, region) if autoscaling is not None else None
        part = read_backends(elbv2, ec2, autoscaling, account, region)
        balancers.extend(part.load_balancers)
        groups.update(part.target_groups)
        instances.update(part.instances)
    return Snapshot(tuple(balancers), groups, instances)
