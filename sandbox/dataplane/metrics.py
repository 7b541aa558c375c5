"""Request metrics from HAProxy's request log into the sandbox's CloudWatch (``AWS/ApplicationELB``), as ALB publishes them.

HAProxy logs each request (``%f %b %s %ST %Tr %Ta``: frontend, backend, server,
status, server response time, total time) as a raw datagram to a loopback UDP
port; :class:`Collector` counts them into one-second buckets. :class:`Publisher`
adds finished seconds into periods aligned to the clock and publishes each
period's datapoints into :data:`.cloudwatch.STORE` once the period ended and
the publication lag passed (:class:`.cloudwatch.Settings`), with ALB's names,
units and dimensions:

- per load balancer (``LoadBalancer=app/<name>/<id>``): RequestCount,
  HTTPCode_ELB_5XX_Count (answers of the load balancer itself: no target, or
  none that answered), HTTPCode_Target_{2,3,4,5}XX_Count, TargetResponseTime;
- per target group of it (``TargetGroup=targetgroup/<name>/<id>``, ``LoadBalancer``):
  RequestCount, HTTPCode_Target_{2,3,4,5}XX_Count, TargetResponseTime,
  and the gauges HealthyHostCount and UnHealthyHostCount (sampled every second
  for the groups a listener uses, published every period).

A count that is zero in a period is not published at all, as ALB does: a period
without requests has no RequestCount datapoint, and "the old colour served
nothing" cannot be read from a missing datapoint alone.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .cloudwatch import Aggregate, Settings, Store

LOG = logging.getLogger("sandbox.dataplane")
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


def _dims(lb: str, group: str | None) -> list[dict[str, str]]:
    if group is None:
        return [{"Name": "LoadBalancer", "Value": lb}]
    return [{"Name": "TargetGroup", "Value": group}, {"Name": "LoadBalancer", "Value": lb}]


def series(counts: Counts, elb: bool) -> list[tuple[str, Aggregate, str]]:
    """(metric, datapoint, unit) of one period's counts; zero counts publish nothing."""
    data = []
    if counts.requests:
        data.append(("RequestCount", Aggregate.count(counts.requests), "Count"))
    for klass, value in counts.target.items():
        if value:
            data.append((f"HTTPCode_Target_{klass}_Count", Aggregate.count(value), "Count"))
    if elb and counts.elb_5xx:
        data.append(("HTTPCode_ELB_5XX_Count", Aggregate.count(counts.elb_5xx), "Count"))
    if counts.times:
        data.append(("TargetResponseTime", Aggregate.of(counts.times), "Seconds"))
    return data


Where = tuple[str, str, str, str | None]  # account, region, load balancer dimension, target group dimension (None: the load balancer)


@dataclass
class Pending:
    counts: dict[Where, Counts] = field(default_factory=dict)
    hosts: dict[Where, tuple[list[float], list[float]]] = field(default_factory=dict)


class Publisher:
    """Adds the collector's finished seconds into clock-aligned periods; publishes each after its lag."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings
        self.pending: dict[int, Pending] = {}
        self.published = 0  # datapoints so far

    def period_of(self, second: int) -> int:
        return second - second % self.settings.period

    def add_second(self, second: int, bucket: Mapping[tuple[str, str], Counts], topology: Topology) -> None:
        pending = self.pending.setdefault(self.period_of(second), Pending())
        for (frontend, backend), counts in bucket.items():
            known = topology.frontends.get(frontend)
            if known is None:
                continue
            lb, account, region = known
            pending.counts.setdefault((account, region, lb, None), Counts()).merge(counts)
            group = topology.backends.get(backend)
            if group is not None:
                pending.counts.setdefault((account, region, lb, group), Counts()).merge(counts)

    def sample_hosts(self, second: int, samples: Iterable[tuple[str, str, str, str, int, int]]) -> None:
        """One sample per target group a listener uses: (account, region, lb, group, healthy, unhealthy)."""
        pending = self.pending.setdefault(self.period_of(second), Pending())
        for account, region, lb, group, healthy, unhealthy in samples:
            healthy_samples, unhealthy_samples = pending.hosts.setdefault((account, region, lb, group), ([], []))
            healthy_samples.append(float(healthy))
            unhealthy_samples.append(float(unhealthy))

    def due(self, now: float) -> list[int]:
        return sorted(start for start in self.pending if start + self.settings.period + self.settings.lag <= now)

    def publish_due(self, now: float) -> int:
        """Publish every period whose end plus the lag has passed; returns how many periods."""
        periods = self.due(now)
        for start in periods:
            pending = self.pending.pop(start)
            for (account, region, lb, group), counts in pending.counts.items():
                for name, aggregate, unit in series(counts, elb=group is None):
                    self.store.put(account, region, name, _dims(lb, group), start, aggregate, unit)
                    self.published += 1
            for (account, region, lb, group), (healthy, unhealthy) in pending.hosts.items():
                self.store.put(account, region, "HealthyHostCount", _dims(lb, group), start, Aggregate.of(healthy), "Count")
                self.store.put(account, region, "UnHealthyHostCount", _dims(lb, group), start, Aggregate.of(unhealthy), "Count")
                self.published += 2
        return len(periods)
