"""Where moto's model departs from AWS in ways a deployment can see, patched in the daemon process.

- Target health (``FakeTargetGroup.health_for``) is what the data plane's health
  checks found: ``initial`` until a new target passes the healthy threshold,
  ``healthy``, ``unhealthy`` with ALB's reason, ``unused`` when no listener
  forwards to the group, ``draining`` while deregistering (moto: always
  ``healthy``).
- Deregistration (``deregister``, ``deregister_terminated_instances``) keeps the
  target ``draining`` for the group's deregistration delay, listed by
  ``describe_target_health`` (moto: gone at once); the data plane completes it
  early (HAProxy lets go of the target, a scaled-in instance stops) when the
  target has no request in flight, like ALB. Deregistering a target that is not
  registered succeeds and changes nothing, as in AWS (moto: InvalidTarget).
- ``get_metric_statistics`` matches dimensions exactly, as CloudWatch does (moto:
  any metric whose dimensions include the asked ones, so a load balancer's
  series would add up its target groups' series too), and ``get_metric_data``
  matches them in any order (moto's ``Dimension`` sorts wrongly, so the order the
  caller listed them in had to be the order they were put in).

:class:`Registry` is what the patched methods (run by moto's request threads)
and the reconcile loop share.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

Key = tuple[str, str, int]  # (target group ARN, target id, port)


@dataclass(frozen=True)
class Health:
    state: str
    reason: str | None = None
    description: str | None = None


INITIAL = Health("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
NOT_IN_USE = Health("unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer")
STOPPED = Health("unused", "Target.InvalidState", "Target is in the stopped state")
TERMINATED = Health("unused", "Target.InvalidState", "Target is in the terminated state")
CHECKS_DISABLED = Health("unavailable", "Target.HealthCheckDisabled", "Health checks are disabled")
DRAINING = Health("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")


@dataclass(frozen=True)
class Deregistration:
    group_arn: str
    target_id: str
    port: int
    started: float
    deadline: float

    @property
    def key(self) -> Key:
        return (self.group_arn, self.target_id, self.port)


class Registry:
    """Target health and deregistrations, shared by moto's request threads and the reconcile loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._health: dict[Key, Health] = {}
        self._draining: dict[Key, Deregistration] = {}
        self._attached: set[str] = set()
        self._terminated: set[str] = set()
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def changed(self) -> None:
        for callback in self._listeners:
            callback()

    # -- written by the patched moto methods ----------------------------------------------------
    def begin_drain(self, group_arn: str, target_id: str, port: int, delay: float) -> Deregistration:
        now = self.clock()
        with self._lock:
            key = (group_arn, target_id, port)
            current = self._draining.get(key)
            if current is None:
                current = self._draining[key] = Deregistration(group_arn, target_id, port, now, now + max(delay, 0.0))
            self._health.pop(key, None)
        return current

    def cancel_drain(self, group_arn: str, target_id: str) -> None:
        with self._lock:
            for key in [k for k in self._draining if k[0] == group_arn and k[1] == target_id]:
                del self._draining[key]

    def note_terminated(self, instance_ids: Iterable[str]) -> None:
        """Instances terminated through EC2 itself: their processes stop at once (ASG scale-in drains first)."""
        with self._lock:
            self._terminated.update(instance_ids)

    # -- read by the patched moto methods ---------------------------------------------------------
    def draining(self, group_arn: str, target_id: str, port: int | None = None) -> Deregistration | None:
        with self._lock:
            for key, record in self._draining.items():
                if key[0] == group_arn and key[1] == target_id and (port is None or key[2] == port):
                    return record
        return None

    def draining_targets(self, group_arn: str) -> list[tuple[str, int]]:
        with self._lock:
            return [(key[1], key[2]) for key in self._draining if key[0] == group_arn]

    def health(self, group_arn: str, target_id: str, port: int) -> Health | None:
        with self._lock:
            return self._health.get((group_arn, target_id, port))

    def attached(self, group_arn: str) -> bool:
        with self._lock:
            return group_arn in self._attached

    # -- written and read by the reconcile loop ---------------------------------------------------
    def publish(self, health: dict[Key, Health], attached: set[str]) -> None:
        with self._lock:
            self._health = health
            self._attached = set(attached)

    def deregistrations(self) -> list[Deregistration]:
        with self._lock:
            return list(self._draining.values())

    def finish_drain(self, key: Key) -> None:
        with self._lock:
            self._draining.pop(key, None)

    def take_terminated(self) -> set[str]:
        with self._lock:
            terminated, self._terminated = self._terminated, set()
        return terminated


# -- the patches ------------------------------------------------------------------------------------
_INSTALLED: dict[str, Any] = {}


def _status(group: Any, target_id: str, port: Any, health: Health) -> Any:
    from moto.elbv2.models import FakeHealthStatus

    return FakeHealthStatus(target_id, port, group.health_check_port, health.state, health.reason, health.description)


def install(registry: Registry) -> None:
    """Patch moto in this process so that the API reports what ``registry`` knows. Idempotent."""
    from moto.cloudwatch.models import CloudWatchBackend, Dimension
    from moto.elbv2.exceptions import TargetGroupNotFoundError
    from moto.elbv2.models import ELBv2Backend, FakeTargetGroup

    if _INSTALLED:
        uninstall()
    originals = {
        (FakeTargetGroup, "health_for"): FakeTargetGroup.health_for,
        (FakeTargetGroup, "register"): FakeTargetGroup.register,
        (FakeTargetGroup, "deregister"): FakeTargetGroup.deregister,
        (FakeTargetGroup, "deregister_terminated_instances"): FakeTargetGroup.deregister_terminated_instances,
        (ELBv2Backend, "describe_target_health"): ELBv2Backend.describe_target_health,
        (CloudWatchBackend, "get_metric_statistics"): CloudWatchBackend.get_metric_statistics,
        (Dimension, "__lt__"): Dimension.__lt__,
    }
    original_health_for = FakeTargetGroup.health_for
    original_register = FakeTargetGroup.register

    def health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        target_id = target["Id"]
        registered = self.targets.get(target_id)
        asked_port = target.get("Port")
        drain = registry.draining(self.arn, target_id, int(asked_port) if asked_port else None)
        if drain is not None and (registered is None or not asked_port or int(asked_port) == drain.port):
            return _status(self, target_id, drain.port, DRAINING)
        if registered is None:
            return original_health_for(self, target, ec2_backend)
        port = registered["Port"]
        if target_id.startswith("i-"):
            instance = ec2_backend.get_instance_by_id(target_id)
            if instance is not None and instance.state in ("stopping", "stopped"):
                return _status(self, target_id, port, STOPPED)
            if instance is not None and instance.state in ("shutting-down", "terminated"):
                # an Auto Scaling scale-in: the data plane deregisters it within a second
                return _status(self, target_id, port, DRAINING)
        if not registry.attached(self.arn):
            return _status(self, target_id, port, NOT_IN_USE)
        if not self.health_check_enabled:
            return _status(self, target_id, port, CHECKS_DISABLED)
        return _status(self, target_id, port, registry.health(self.arn, target_id, int(port)) or INITIAL)

    def register(self: Any, targets: list[dict[str, Any]]) -> None:
        original_register(self, targets)
        for target in targets:
            registry.cancel_drain(self.arn, target["Id"])
        registry.changed()

    def deregister(self: Any, targets: list[dict[str, Any]]) -> None:
        # AWS: "If the specified target does not exist, the action returns successfully" (a draining one included)
        delay = float(self.attributes.get("deregistration_delay.timeout_seconds", 300))
        for target in targets:
            record = self.targets.pop(target["Id"], None)
            if record is None:
                continue
            self.deregistered_targets[target["Id"]] = record
            registry.begin_drain(self.arn, target["Id"], int(record["Port"]), delay)
        registry.changed()

    def deregister_terminated_instances(self: Any, instance_ids: list[str]) -> None:
        delay = float(self.attributes.get("deregistration_delay.timeout_seconds", 300))
        for target_id in [t for t in list(self.targets) if t in instance_ids]:
            record = self.targets.pop(target_id)
            self.deregistered_targets[target_id] = record
            registry.begin_drain(self.arn, target_id, int(record["Port"]), delay)
        registry.note_terminated(instance_ids)
        registry.changed()

    def describe_target_health(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> list[Any]:
        group = self.target_groups.get(target_group_arn)
        if group is None:
            raise TargetGroupNotFoundError()
        if not targets:
            targets = list(group.targets.values())
            targets += [{"Id": i, "Port": p} for i, p in registry.draining_targets(group.arn) if i not in group.targets]
        return [group.health_for(target, self.ec2_backend) for target in targets]

    FakeTargetGroup.health_for = health_for
    FakeTargetGroup.register = register
    FakeTargetGroup.deregister = deregister
    FakeTargetGroup.deregister_terminated_instances = deregister_terminated_instances
    ELBv2Backend.describe_target_health = describe_target_health
    CloudWatchBackend.get_metric_statistics = _get_metric_statistics
    Dimension.__lt__ = _dimension_before
    _INSTALLED.update({f"{cls.__name__}.{name}": (cls, name, function) for (cls, name), function in originals.items()})


def uninstall() -> None:
    """Put moto's own methods back."""
    for cls, name, function in _INSTALLED.values():
        setattr(cls, name, function)
    _INSTALLED.clear()


def _dimension_before(self: Any, other: Any) -> bool:
    return (self.name or "", self.value or "") < (other.name or "", other.value or "")


def _get_metric_statistics(
    self: Any,
    namespace: str,
    metric_name: str,
    start_time: Any,
    end_time: Any,
    period: int,
    stats: list[str],
    dimensions: list[dict[str, str]],
    unit: str | None = None,
) -> list[Any]:
    """moto's GetMetricStatistics with CloudWatch's exact dimension match."""
    from moto.cloudwatch.exceptions import InvalidParameterValue
    from moto.cloudwatch.models import Statistics, daterange

    start_time = start_time.replace(microsecond=0)
    end_time = end_time.replace(microsecond=0)
    if start_time >= end_time:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
    wanted = sorted((d["Name"], d.get("Value")) for d in dimensions or [])
    data = sorted(
        (
            md
            for md in self.get_all_metrics()
            if md.namespace == namespace
            and md.name == metric_name
            and start_time <= md.timestamp < end_time
            and (not unit or md.unit == unit)
            and sorted((d.name, d.value) for d in md.dimensions) == wanted
        ),
        key=lambda md: md.timestamp,
    )
    if not data:
        return []
    step = timedelta(seconds=period)
    result, index = [], 0
    for moment in daterange(data[0].timestamp, data[-1].timestamp + step, step):
        bucket = Statistics(stats, moment)
        while index < len(data) and data[index].timestamp < moment + step:
            bucket.metric_data.append(data[index])
            bucket.unit = data[index].unit
            index += 1
        if bucket.metric_data:
            result.append(bucket)
    return result
