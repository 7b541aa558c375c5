"""Request metrics from HAProxy's request log into the sandbox's CloudWatch (``AWS/ApplicationELB``).

HAProxy logs each request (``%f %b %s %ST %Tr %Ta``: frontend, backend, server,
status, server response time, total time) as a raw datagram to a loopback UDP
port; :class:`Collector` counts them into one-second buckets, and
:func:`datapoints` turns a finished bucket into CloudWatch datapoints with ALB's
names, units and dimensions:

- per load balancer (``LoadBalancer=app/<name>/<id>``): RequestCount,
  HTTPCode_ELB_5XX_Count, HTTPCode_Target_{2,3,4,5}XX_Count, TargetResponseTime;
- per target group of it (``TargetGroup=targetgroup/<name>/<id>``, ``LoadBalancer``):
  RequestCount, HTTPCode_Target_{2,3,4,5}XX_Count, TargetResponseTime.

A second in which a load balancer carried requests gets a datapoint for every
target group its listeners forward to (or forwarded to in the last five
minutes), zero included, so "the old colour's traffic fell to zero" reads as
zeros, not as missing data. Idle seconds publish nothing (ALB does the same). HealthyHostCount and UnHealthyHostCount are
published every ten seconds for target groups a listener uses.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LOG = logging.getLogger("sandbox.dataplane")
NAMESPACE = "AWS/ApplicationELB"
NO_SERVER = "<NOSRV>"


@dataclass
class Counts:
    requests: int = 0
    target: dict[str, int] = field(default_factory=lambda: {"2XX": 0, "3XX": 0, "4XX": 0, "5XX": 0})
    elb_5xx: int = 0
    times: list[float] = field(default_factory=list)

    def add(self, status: int, server: str, response_ms: int) -> None:
        self.requests += 1
        answered = server != NO_SERVER and response_ms >= 0
        if answered:
            self.times.append(response_ms / 1000.0)
            klass = f"{status // 100}XX"
            if klass in self.target:
                self.target[klass] += 1
        elif status >= 500:
            self.elb_5xx += 1

    def merge(self, other: Counts) -> None:
        self.requests += other.requests
        for key, value in other.target.items():
            self.target[key] += value
        self.elb_5xx += other.elb_5xx
        self.times.extend(other.times)


def parse(line: str) -> tuple[str, str, str, int, int] | None:
    """(frontend, backend, server, status, response ms) of one log line, None if it is not one."""
    fields = line.strip().split()
    if len(fields) < 5:
        return None
    try:
        return fields[0], fields[1], fields[2], int(fields[3]), int(fields[4])
    except ValueError:
        return None


class Collector:
    """Counts logged requests per second, per (frontend, backend)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[tuple[str, str], Counts]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.settimeout(0.5)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dataplane-metrics", daemon=True)
        self.clock = lambda: datetime.now(UTC).timestamp()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.record(data.decode(errors="replace"), int(self.clock()))

    def record(self, line: str, second: int) -> None:
        parsed = parse(line)
        if parsed is None:
            return
        frontend, backend, server, status, response_ms = parsed
        with self._lock:
            bucket = self._buckets.setdefault(second, {})
            bucket.setdefault((frontend, backend), Counts()).add(status, server, response_ms)

    def take(self, before: int) -> dict[int, dict[tuple[str, str], Counts]]:
        """The buckets of the seconds before ``before`` (finished), removed from the collector."""
        with self._lock:
            done = {second: counts for second, counts in self._buckets.items() if second < before}
            for second in done:
                del self._buckets[second]
        return done


@dataclass(frozen=True)
class Topology:
    """How HAProxy names map to CloudWatch dimensions, from the reconcile loop's snapshot."""

    frontends: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)  # frontend -> (lb dimension, account, region)
    backends: Mapping[str, str] = field(default_factory=dict)  # backend -> target group dimension
    attached: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # lb dimension -> target group dimensions


def _count(name: str, value: float, dims: list[dict[str, str]], when: datetime) -> dict[str, Any]:
    return {"MetricName": name, "Dimensions": dims, "Timestamp": when, "Value": float(value), "Unit": "Count", "StorageResolution": 1}


def _times(times: list[float], dims: list[dict[str, str]], when: datetime) -> list[dict[str, Any]]:
    if not times:
        return []
    stats = {"SampleCount": float(len(times)), "Sum": sum(times), "Minimum": min(times), "Maximum": max(times)}
    return [{"MetricName": "TargetResponseTime", "Dimensions": dims, "Timestamp": when, "StatisticValues": stats, "Unit": "Seconds"}]


def _series(counts: Counts, dims: list[dict[str, str]], when: datetime, elb: bool) -> list[dict[str, Any]]:
    data = [_count("RequestCount", counts.requests, dims, when)]
    data += [_count(f"HTTPCode_Target_{klass}_Count", value, dims, when) for klass, value in counts.target.items()]
    if elb:
        data.append(_count("HTTPCode_ELB_5XX_Count", counts.elb_5xx, dims, when))
    return data + _times(counts.times, dims, when)


def datapoints(second: int, bucket: Mapping[tuple[str, str], Counts], topology: Topology) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """CloudWatch MetricData per (account, region) for one finished second."""
    when = datetime.fromtimestamp(second, UTC).replace(tzinfo=None)
    per_lb: dict[str, Counts] = {}
    per_group: dict[tuple[str, str], Counts] = {}
    where: dict[str, tuple[str, str]] = {}
    for (frontend, backend), counts in bucket.items():
        known = topology.frontends.get(frontend)
        if known is None:
            continue
        lb, account, region = known
        where[lb] = (account, region)
        per_lb.setdefault(lb, Counts()).merge(counts)
        group = topology.backends.get(backend)
        if group is not None:
            per_group.setdefault((lb, group), Counts()).merge(counts)
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for lb, counts in per_lb.items():
        lb_dims = [{"Name": "LoadBalancer", "Value": lb}]
        data = _series(counts, lb_dims, when, elb=True)
        for group in sorted(set(topology.attached.get(lb, ())) | {g for (owner, g) in per_group if owner == lb}):
            group_dims = [{"Name": "TargetGroup", "Value": group}, {"Name": "LoadBalancer", "Value": lb}]
            data += _series(per_group.get((lb, group), Counts()), group_dims, when, elb=False)
        out.setdefault(where[lb], []).extend(data)
    return out


def host_counts(counts: Iterable[tuple[str, str, str, str, int, int]], second: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """HealthyHostCount/UnHealthyHostCount datapoints from (account, region, lb, group, healthy, unhealthy)."""
    when = datetime.fromtimestamp(second, UTC).replace(tzinfo=None)
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for account, region, lb, group, healthy, unhealthy in counts:
        dims = [{"Name": "TargetGroup", "Value": group}, {"Name": "LoadBalancer", "Value": lb}]
        out.setdefault((account, region), []).extend(
            [_count("HealthyHostCount", healthy, dims, when), _count("UnHealthyHostCount", unhealthy, dims, when)]
        )
    return out


def publish(data: Mapping[tuple[str, str], list[dict[str, Any]]]) -> int:
    """Put datapoints into moto's CloudWatch backends in this process; returns how many."""
    from moto.cloudwatch.models import cloudwatch_backends

    total = 0
    for (account, region), metric_data in data.items():
        if metric_data:
            cloudwatch_backends[account][region].put_metric_data(NAMESPACE, metric_data)
            total += len(metric_data)
    return total
