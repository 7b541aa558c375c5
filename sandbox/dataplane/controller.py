"""The reconcile loop: moto's state made real, within about a second of each API call.

A pass reads a :class:`~.model.Snapshot` of moto's backends and brings the world
in line with it:

1. instances: a process (:mod:`.app`) for every running instance of an Auto Scaling
   group or target group; stopped and terminated ones lose theirs (after their
   targets finished draining, for a scale-in);
2. Auto Scaling scale-in: targets whose instance was terminated are deregistered
   (moto leaves them registered), which starts their deregistration delay;
3. HAProxy: a reload if listeners or target groups came or went (a loopback port
   per listener), else routing maps replaced at run time; servers added, pointed
   at their process, drained or removed through the runtime API;
4. health: HAProxy's check results become target health in moto; deregistrations
   complete when the target has nothing in flight (or at the delay, cutting what
   is left) and leave ``describe_target_health`` when the delay is over;
5. metrics to CloudWatch (per period, after the publication lag; alarms evaluated), and
   the state file ``dataplane.json``.

Passes run when an API call changed something (the WSGI wrapper wakes the loop)
and every half second. A failing pass is logged to the sandbox log and retried;
it never stops the daemon.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import STATE_FILE, cloudwatch, haproxy, metrics
from .model import Instance, Snapshot, Target, TargetGroup
from .patches import INITIAL, STOPPED, Deregistration, Health, Key, Registry

LOG = logging.getLogger("sandbox.dataplane")
APP = Path(__file__).resolve().parent / "app.py"
TICK = 0.5
SLOW_PASS = 0.2
STOP_GRACE = 3.0


# -- health, from HAProxy's check results --------------------------------------------------------------
def failure_reason(check_status: str, check_code: str) -> Health:
    """ALB's reason for a failed check, from HAProxy's check status."""
    if check_status == "L7STS":
        return Health("unhealthy", "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{check_code or '?'}]")
    if check_status in ("L4TOUT", "L7TOUT"):
        return Health("unhealthy", "Target.Timeout", "Request timed out")
    return Health("unhealthy", "Target.FailedHealthChecks", "Health checks failed")


PASSED = ("L7OK", "L7OKC", "INI", "")


def target_health(
    row: dict[str, str] | None, interval: int, unhealthy: int, age: float, ever_up: bool, last_failure: Health | None
) -> Health:
    """What ALB would report for a target, from its ``show stat`` row.

    ``initial`` until the first ``rise`` passing checks (or until ``unhealthy``
    intervals of failing checks), ``healthy`` while HAProxy has it up (one failed
    check does not make it unhealthy, like ALB), else ``unhealthy`` with the
    reason of the last failure.
    """
    if row is None:
        return INITIAL
    status = row.get("status", "")
    if status.startswith(("UP", "NOLB", "DRAIN", "no check")):
        return Health("healthy")
    if status.startswith("MAINT"):
        return STOPPED
    check_status = row.get("check_status", "").lstrip("* ")
    failing = check_status not in PASSED
    if not ever_up and (not failing or age < unhealthy * interval):
        return Health("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
    if failing:
        return failure_reason(check_status, row.get("check_code", ""))
    return last_failure or Health("unhealthy", "Target.FailedHealthChecks", "Health checks failed")


# -- processes --------------------------------------------------------------------------------------
@dataclass
class InstanceProcess:
    instance: Instance
    popen: subprocess.Popen[bytes]
    port: int
    control_port: int
    version: str
    started: float
    killed: bool = False

    def alive(self) -> bool:
        return self.popen.poll() is None


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerRecord:
    key: Key
    backend: str
    name: str
    address: str
    port: int
    admin: str
    registered: float
    ever_up: bool = False
    last_failure: Health | None = None
    health: Health = INITIAL

    def server(self) -> haproxy.Server:
        return haproxy.Server(self.backend, self.name, self.address, self.port, self.admin)


@dataclass
class Drain:
    """A deregistration the loop is carrying out: drain in HAProxy, then remove."""

    record: Deregistration
    completed: bool = False
    completed_at: float | None = None


@dataclass
class Routing:
    ports: dict[str, int] = field(default_factory=dict)  # listener ARN -> loopback port
    slots: dict[str, dict[str, int]] = field(default_factory=dict)  # listener ARN -> rule ARN -> slot
    maps: dict[str, str] = field(default_factory=dict)  # map path -> content HAProxy has


class Controller:
    """Runs the data plane inside the sandbox daemon. ``start()``, ``stop()``, ``trigger()``."""

    def __init__(self, state_dir: Path, control_url: str = "", binary: str | None = None, registry: Registry | None = None):
        self.state_dir = Path(state_dir)
        self.control_url = control_url
        self.binary = binary or haproxy.find_binary()
        self.registry = registry or Registry()
        self.registry.on_change(self.trigger)
        self.paths = haproxy.Paths(self._runtime_dir())
        self.process = haproxy.Process(self.binary, self.paths)
        self.collector = metrics.Collector()
        self.publisher = metrics.Publisher(cloudwatch.STORE, cloudwatch.settings())
        self.routing = Routing()
        self.layout = haproxy.Layout()
        self.servers: dict[Key, ServerRecord] = {}
        self.drains: dict[Key, Drain] = {}
        self.instances: dict[str, InstanceProcess] = {}
        self.stopping: list[tuple[subprocess.Popen[bytes], float]] = []
        self.snapshot = Snapshot()
        self.topology = metrics.Topology()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._passes = threading.Condition()
        self._started = self._completed = 0
        self._thread: threading.Thread | None = None
        self._nowhere = socket.socket()  # bound, never listening: connections to it are refused
        self._nowhere.bind(("127.0.0.1", 0))
        self._last_state = ""
        self._last_host_sample = 0
        self._next_alarm_evaluation = 0.0
        self._failed_layout: haproxy.Layout | None = None
        self.passes = 0
        self.version = ""

    # -- life cycle --------------------------------------------------------------------------------
    def _runtime_dir(self) -> Path:
        directory = self.state_dir / "dataplane"
        if len(str(directory / "stats.sock")) > 100:  # unix socket paths are short
            directory = Path(tempfile.mkdtemp(prefix="cutover-dataplane-"))
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o700)
        return directory

    def start(self) -> None:
        self.collector.start()
        self.version = self.process.version()
        self.paths.state.write_text("1\n")  # no server state yet
        self.process.start(haproxy.render_config(self.layout, self.paths, self.collector.port))
        self._write_state()
        self._thread = threading.Thread(target=self._run, name="dataplane", daemon=True)
        self._thread.start()
        LOG.info("data plane up: haproxy %s (pid %s), state in %s", self.version, self.process.pid, self.state_dir / STATE_FILE)

    def stop(self) -> None:
        """Stop the loop, every instance process and HAProxy; wait for them."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            popens = [process.popen for process in self.instances.values()] + [popen for popen, _ in self.stopping]
            for popen in popens:
                with contextlib.suppress(ProcessLookupError):
                    popen.terminate()
            self.process.stop()
            deadline = time.monotonic() + STOP_GRACE
            for popen in popens:
                try:
                    popen.wait(max(deadline - time.monotonic(), 0.01))
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait(2)
            self.instances.clear()
            self.stopping.clear()
        self.collector.stop()
        self._nowhere.close()
        for leftover in (self.paths.stats,):
            leftover.unlink(missing_ok=True)
        if not str(self.paths.directory).startswith(str(self.state_dir)):
            shutil.rmtree(self.paths.directory, ignore_errors=True)

    def trigger(self) -> None:
        self._wake.set()

    def halt(self) -> None:
        """No more passes (safe from a signal handler): the daemon is going down."""
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(TICK)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._passes:
                self._started += 1
            try:
                with self._lock:
                    self.reconcile()
            except Exception:
                if self._stop.is_set():
                    return  # going down: HAProxy and the instances got the signal too
                LOG.exception("data plane pass failed (retrying)")
                self._stop.wait(TICK)
            finally:
                with self._passes:
                    self._completed += 1
                    self._passes.notify_all()

    def fresh(self, timeout: float = 5.0) -> bool:
        """Wait for a pass that began after this call (so what it reports includes every API call so far)."""
        with self._passes:
            wanted = self._started + 1
        self.trigger()
        with self._passes:
            return self._passes.wait_for(lambda: self._completed >= wanted, timeout)

    # -- one pass ------------------------------------------------------------------------------------
    def read(self) -> Snapshot:
        from .model import snapshot

        for attempt in range(5):
            try:
                return snapshot()
            except RuntimeError:  # moto changed a dict while we read it
                if attempt == 4:
                    raise
                time.sleep(0.01)
        raise AssertionError("unreachable")

    def reconcile(self) -> None:
        self.passes += 1
        now = time.monotonic()
        steps: list[tuple[str, float]] = []

        def step(name: str) -> None:
            steps.append((name, time.monotonic()))

        snapshot = self.read()
        if self._deregister_terminated(snapshot):
            snapshot = self.read()
        self.snapshot = snapshot
        step("read")
        for instance_id in self.registry.take_terminated():
            self._stop_process(instance_id, "terminated")
        self._processes(snapshot, now)
        step("processes")
        self._haproxy(snapshot)
        step("haproxy")
        self._targets(snapshot, now)
        step("targets")
        self._health_and_drains(snapshot, now)
        step("health")
        self._metrics(snapshot)
        step("metrics")
        self._write_state()
        step("state")
        took = steps[-1][1] - now
        if took > SLOW_PASS:
            marks = [now] + [at for _, at in steps]
            detail = ", ".join(f"{name} {(at - before) * 1000:.0f}" for (name, at), before in zip(steps, marks, strict=False))
            LOG.info("slow pass: %.0f ms (%s)", took * 1000, detail)

    def _deregister_terminated(self, snapshot: Snapshot) -> bool:
        """Targets of instances an Auto Scaling scale-in terminated: deregister them (draining starts)."""
        from moto.elbv2.models import elbv2_backends

        changed = False
        for group in snapshot.target_groups.values():
            for target in group.targets:
                instance = snapshot.instances.get(target.id)
                if instance is None or instance.state not in ("shutting-down", "terminated"):
                    continue
                moto_group = dict.get(dict.get(elbv2_backends, group.account) or {}, group.region)
                moto_group = moto_group.target_groups.get(group.arn) if moto_group else None
                if moto_group is not None and target.id in moto_group.targets:
                    moto_group.deregister([{"Id": target.id}])
                    LOG.info("instance %s terminated: deregistering it from %s (draining)", target.id, group.name)
                    changed = True
        return changed

    # -- instances -----------------------------------------------------------------------------------
    def _processes(self, snapshot: Snapshot, now: float) -> None:
        registered = {t.id for g in snapshot.target_groups.values() for t in g.targets}
        done = {key for key, drain in self.drains.items() if drain.completed}
        draining = {record.target_id for record in self.registry.deregistrations() if record.key not in done}
        wanted: dict[str, Instance] = {}
        for instance in snapshot.instances.values():
            if instance.running and (instance.auto_scaling_group or instance.id in registered):
                wanted[instance.id] = instance
            elif instance.id in draining and instance.id in self.instances:
                wanted[instance.id] = instance  # a scale-in: serves its in-flight requests first
        for instance_id in list(self.instances):
            if instance_id not in wanted:
                self._stop_process(instance_id, snapshot.instances[instance_id].state if instance_id in snapshot.instances else "gone")
        for instance_id, instance in wanted.items():
            process = self.instances.get(instance_id)
            if process is None:
                self._spawn(instance, now)
            elif not process.alive() and not process.killed and not self._stop.is_set():
                LOG.warning(
                    "instance %s's process exited (code %s); its target fails its health checks", instance_id, process.popen.returncode
                )
                process.killed = True
        still = []
        for popen, deadline in self.stopping:
            if popen.poll() is None:
                if now > deadline:
                    popen.kill()
                still.append((popen, deadline))
        self.stopping = still

    def _spawn(self, instance: Instance, now: float) -> InstanceProcess:
        from .app import release

        traffic, control = _listening_socket(), _listening_socket()
        try:
            popen = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    str(APP),
                    *("--fd", str(traffic.fileno()), "--control-fd", str(control.fileno())),
                    *("--instance-id", instance.id, "--image-id", instance.image_id),
                    *("--color", instance.color, "--service", instance.service, "--user-data", instance.user_data),
                ],
                pass_fds=(traffic.fileno(), control.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
            process = InstanceProcess(
                instance=instance,
                popen=popen,
                port=traffic.getsockname()[1],
                control_port=control.getsockname()[1],
                version=release(instance.image_id, instance.user_data)["version"],
                started=now,
            )
        finally:
            traffic.close()
            control.close()
        self.instances[instance.id] = process
        LOG.info(
            "instance %s (%s %s) serves %s on 127.0.0.1:%d (pid %d)",
            instance.id,
            instance.auto_scaling_group or "no group",
            instance.color or "-",
            process.version,
            process.port,
            popen.pid,
        )
        return process

    def _stop_process(self, instance_id: str, why: str) -> None:
        process = self.instances.pop(instance_id, None)
        if process is None:
            return
        if process.alive():
            process.popen.terminate()
            self.stopping.append((process.popen, time.monotonic() + STOP_GRACE))
        LOG.info("instance %s (%s): process %d stopped", instance_id, why, process.popen.pid)

    # -- HAProxy ------------------------------------------------------------------------------------
    def _haproxy(self, snapshot: Snapshot) -> None:
        listeners = snapshot.listeners()
        routing = self.routing
        for arn in [arn for arn in routing.ports if arn not in {li.arn for li in listeners}]:
            del routing.ports[arn]
            routing.slots.pop(arn, None)
        for listener in listeners:
            if listener.arn not in routing.ports:
                routing.ports[listener.arn] = free_port()
            routing.slots[listener.arn] = haproxy.assign_slots(routing.slots.get(listener.arn, {}), [r.arn for r in listener.rules])
        backends = {group.arn: group.backend for group in snapshot.target_groups.values()}
        maps: dict[str, str] = {}
        for listener in listeners:
            slots = routing.slots[listener.arn]
            maps[self.paths.rules_map(listener)] = haproxy.map_text(haproxy.rules_map(listener, slots))
            maps[self.paths.actions_map(listener)] = haproxy.map_text(haproxy.actions_map(listener, slots, backends))
        for path, text in maps.items():
            if routing.maps.get(path) != text:
                Path(path).write_text(text)
        layout = haproxy.layout_for(listeners, snapshot.target_groups.values(), routing.ports, self.paths)
        if layout != self.layout and layout != self._failed_layout:
            kept = {b.name for b in layout.backends}
            servers = [record.server() for record in self.servers.values() if record.backend in kept]
            config = haproxy.render_config(layout, self.paths, self.collector.port, servers)
            began = time.monotonic()
            try:
                worker = self.process.reload(config)
            except haproxy.HAProxyError as error:
                self._failed_layout = layout  # not retried until the layout changes again
                LOG.error("haproxy kept its previous configuration: %s", error)
                if isinstance(error, haproxy.ReloadFailed):  # most likely a port taken meanwhile: new ports next pass
                    live = {f.name for f in self.layout.frontends}
                    for listener in listeners:
                        if listener.frontend not in live:
                            routing.ports.pop(listener.arn, None)
            else:
                self._failed_layout = None
                self.layout = layout
                routing.maps = maps
                self.servers = {key: record for key, record in self.servers.items() if record.backend in kept}
                LOG.info(
                    "haproxy reloaded in %.0f ms (worker %s): %d listener(s), %d target group(s)",
                    (time.monotonic() - began) * 1000,
                    worker,
                    len(layout.frontends),
                    len(layout.backends),
                )
                return
        loaded = {f.rules_map for f in self.layout.frontends} | {f.actions_map for f in self.layout.frontends}
        for path, text in maps.items():
            if path in loaded and routing.maps.get(path) != text:
                self.process.runtime.replace_map(path, text)
                routing.maps[path] = text
                LOG.info("routing of %s changed", Path(path).name.split(".")[0])
        for path in [p for p in routing.maps if p not in maps]:
            del routing.maps[path]

    def _address(self, snapshot: Snapshot, target: Target) -> tuple[str, int]:
        instance = snapshot.instance_for(target)
        process = self.instances.get(instance.id) if instance else None
        if process is None:
            return "127.0.0.1", self._nowhere.getsockname()[1]
        return "127.0.0.1", process.port

    def _targets(self, snapshot: Snapshot, now: float) -> None:
        """HAProxy's servers follow the registered targets and the deregistrations."""
        backends = {b.name for b in self.layout.backends}
        groups = {g.arn: g for g in snapshot.target_groups.values() if g.backend in backends}
        desired: dict[Key, tuple[TargetGroup, Target, str]] = {}
        for group in groups.values():
            for target in group.targets:
                instance = snapshot.instance_for(target)
                admin = "maint" if instance is not None and instance.state in ("stopping", "stopped") else "ready"
                desired[(group.arn, target.id, target.port)] = (group, target, admin)
        for record in self.registry.deregistrations():
            key = record.key
            drain = self.drains.get(key)
            if drain is None or drain.record is not record:
                self.drains[key] = Drain(record)
            if key in self.servers and not self.drains[key].completed and key[0] in groups:
                desired[key] = (groups[key[0]], Target(key[1], key[2]), "drain")
        for key in [k for k in self.drains if k not in {r.key for r in self.registry.deregistrations()}]:
            del self.drains[key]  # re-registered, or its delay is over
        runtime = self.process.runtime
        for key, (group, target, admin) in desired.items():
            address, port = self._address(snapshot, target)
            record = self.servers.get(key)
            if record is None:
                if admin == "drain":
                    continue
                record = ServerRecord(key, group.backend, target.server, address, port, admin, registered=now)
                runtime.add_server(record.server(), group.health)
                self.servers[key] = record
                LOG.info("target %s of %s registered (127.0.0.1:%d)", target.server, group.name, port)
                continue
            if (address, port) != (record.address, record.port):
                runtime.set_address(record.backend, record.name, address, port, recheck=group.health.enabled)
                record.address, record.port = address, port
            if admin != record.admin:
                again = record.admin == "drain" and admin == "ready"
                if again:  # registered again while draining: ALB checks it from the start, as a new target
                    record.registered, record.ever_up, record.last_failure, record.health = now, False, None, INITIAL
                    LOG.info("target %s of %s registered again while draining (initial)", target.server, group.name)
                runtime.set_state(record.backend, record.name, admin, recheck=again and group.health.enabled)
                record.admin = admin
        for key in [k for k in self.servers if k not in desired and not (k in self.drains and not self.drains[k].completed)]:
            record = self.servers.pop(key)
            runtime.remove_server(record.backend, record.name, force=True)
            LOG.info("target %s of %s removed", record.name, key[0].rsplit("/", 2)[-2])

    def _health_and_drains(self, snapshot: Snapshot, now: float) -> None:
        rows = {(row.get("pxname"), row.get("svname")): row for row in self.process.runtime.servers()}
        health: dict[Key, Health] = {}
        for key, record in self.servers.items():
            group = snapshot.target_groups.get(key[0])
            if group is None:
                continue
            row = rows.get((record.backend, record.name))
            if row is not None and row.get("status", "").startswith("UP"):
                record.ever_up = True
            if row is not None and row.get("check_status", "").lstrip("* ") not in PASSED:
                record.last_failure = failure_reason(row["check_status"].lstrip("* "), row.get("check_code", ""))
            state = target_health(
                row, group.health.interval, group.health.unhealthy, now - record.registered, record.ever_up, record.last_failure
            )
            if state != record.health:
                LOG.info("target %s of %s: %s%s", record.name, group.name, state.state, f" ({state.reason})" if state.reason else "")
                record.health = state
            health[key] = state
        self.registry.publish(health, set(snapshot.attached()))
        runtime = self.process.runtime
        for key, drain in list(self.drains.items()):
            record = self.servers.get(key)
            if not drain.completed:
                row = rows.get((record.backend, record.name)) if record else None
                idle = row is not None and int(row.get("scur") or 0) == 0 and int(row.get("qcur") or 0) == 0
                expired = now >= drain.record.deadline
                if record is None or (idle and record.admin == "drain") or expired:
                    if record is not None:
                        removed = runtime.remove_server(record.backend, record.name, force=False)
                        if not removed and not expired:
                            continue  # still has a connection: next pass
                        if not removed:
                            runtime.remove_server(record.backend, record.name, force=True)  # the delay is over: cut
                        del self.servers[key]
                    drain.completed, drain.completed_at = True, now
                    LOG.info(
                        "target %s of %s deregistered after %.1f s%s",
                        key[1],
                        key[0].rsplit("/", 2)[-2],
                        now - drain.record.started,
                        " (delay over, connections cut)" if expired and not idle else " (nothing in flight)",
                    )
            if drain.completed and now >= drain.record.deadline:
                self.registry.finish_drain(key)  # ALB shows it draining until the delay is over
                del self.drains[key]

    # -- metrics and state -------------------------------------------------------------------------------
    def _metrics(self, snapshot: Snapshot) -> None:
        frontends = {}
        for lb in snapshot.load_balancers:
            for listener in lb.listeners:
                frontends[listener.frontend] = (lb.dimension, lb.account, lb.region)
        self.topology = metrics.Topology(frontends, {g.backend: g.dimension for g in snapshot.target_groups.values()})
        now = datetime.now(UTC).timestamp()
        second = int(now)
        for finished, bucket in sorted(self.collector.take(second).items()):
            self.publisher.add_second(finished, bucket, self.topology)
        if second > self._last_host_sample:  # the gauges: one sample a second per group a listener uses
            self._last_host_sample = second
            samples = []
            for arn, lb in snapshot.attached().items():
                group = snapshot.target_groups.get(arn)
                if group is None:
                    continue
                states = [r.health.state for k, r in self.servers.items() if k[0] == arn and k not in self.drains]
                samples.append((lb.account, lb.region, lb.dimension, group.dimension, states.count("healthy"), states.count("unhealthy")))
            self.publisher.sample_hosts(second, samples)
        published = self.publisher.publish_due(now)
        if published or now >= self._next_alarm_evaluation:  # CloudWatch evaluates alarms every period
            self._next_alarm_evaluation = now + self.publisher.settings.period
            cloudwatch.evaluate_alarms(now)

    def describe(self) -> dict[str, Any]:
        """The data plane as the control endpoint and the state file show it."""
        snapshot = self.snapshot
        listeners: dict[str, Any] = {}
        balancers: dict[str, Any] = {}
        for lb in snapshot.load_balancers:
            entry = balancers[lb.arn] = {"name": lb.name, "dns_name": lb.dns_name, "listeners": {}}
            for listener in lb.listeners:
                port = self.routing.ports.get(listener.arn)
                if port is None or listener.frontend not in {f.name for f in self.layout.frontends}:
                    continue
                url = f"http://127.0.0.1:{port}"
                listeners[listener.arn] = {
                    "url": url,
                    "port": port,
                    "protocol": listener.protocol,
                    "listener_port": listener.port,
                    "load_balancer_arn": lb.arn,
                    "load_balancer_name": lb.name,
                }
                entry["listeners"][str(listener.port)] = url
        instances = {
            instance_id: {
                "pid": process.popen.pid,
                "url": f"http://127.0.0.1:{process.port}",
                "control_url": f"http://127.0.0.1:{process.control_port}",
                "version": process.version,
                "color": process.instance.color,
                "auto_scaling_group": process.instance.auto_scaling_group,
                "alive": process.alive(),
            }
            for instance_id, process in sorted(self.instances.items())
        }
        targets: dict[str, list[dict[str, Any]]] = {}
        for key, record in sorted(self.servers.items()):
            draining = key in self.drains
            state = "draining" if draining else record.health.state
            targets.setdefault(key[0], []).append(
                {
                    "id": key[1],
                    "port": key[2],
                    "state": state,
                    "reason": None if draining else record.health.reason,
                    "address": f"127.0.0.1:{record.port}",
                }
            )
        frontends = {f.name for f in self.layout.frontends}
        attached = snapshot.attached()
        pending = [
            (group.arn, target.id, target.port)
            for group in snapshot.target_groups.values()
            if group.arn in attached and group.health.enabled
            for target in group.targets
            if (group.arn, target.id, target.port) not in self.servers
            or self.servers[(group.arn, target.id, target.port)].health.state == "initial"
        ]
        settled = self.passes > 0 and not pending and all(li.frontend in frontends for li in snapshot.listeners())
        return {
            "settled": settled,
            "control": self.control_url,
            "haproxy": {"pid": self.process.pid, "version": self.version, "config": str(self.paths.config)},
            "listeners": listeners,
            "load_balancers": balancers,
            "instances": instances,
            "targets": targets,
            "passes": self.passes,
        }

    def _write_state(self) -> None:
        document = self.describe()
        for volatile in ("passes", "targets", "settled"):
            document.pop(volatile)
        text = json.dumps(document, indent=2, sort_keys=True)
        if text != self._last_state:
            path = self.state_dir / STATE_FILE
            staged = path.with_suffix(".tmp")
            staged.write_text(text)
            os.replace(staged, path)
            self._last_state = text

    # -- control --------------------------------------------------------------------------------------
    def instance_control(self, instance_id: str, action: str, changes: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """``settings`` (change run-time settings), ``show``, ``kill`` (SIGKILL, not restarted) or ``restart``."""
        with self._lock:
            process = self.instances.get(instance_id)
            if process is None:
                return 404, {
                    "error": f"no instance process for {instance_id}; running instances: {', '.join(sorted(self.instances)) or 'none'}"
                }
            if action == "kill":
                process.killed = True
                with contextlib.suppress(ProcessLookupError):
                    process.popen.send_signal(signal.SIGKILL)
                process.popen.wait(5)
                LOG.warning("instance %s: process %d killed on request", instance_id, process.popen.pid)
                return 200, {"instance_id": instance_id, "killed": process.popen.pid}
            if action == "restart":
                self._stop_process(instance_id, "restart")
                fresh = self._spawn(process.instance, time.monotonic())
                self.trigger()
                return 200, {"instance_id": instance_id, "pid": fresh.popen.pid, "url": f"http://127.0.0.1:{fresh.port}"}
            if not process.alive():
                return 409, {"error": f"instance {instance_id}'s process is not running (killed?); restart it first"}
            control_port = process.control_port
        body = json.dumps(changes or {}).encode() if action == "settings" else None
        request = urllib.request.Request(f"http://127.0.0.1:{control_port}/", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback http
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except OSError as error:
            return 502, {"error": f"instance {instance_id} did not answer: {error}"}

    def wsgi(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """The control routes (``/_sandbox/dataplane``, ``/_sandbox/instances/...``) over ``app``; wakes the loop after API calls."""
        controller = self
        route = re.compile(r"^/_sandbox/instances/(?P<id>[^/]+)(?:/(?P<action>kill|restart))?$")

        def respond(start_response: Callable[..., Any], status: int, document: dict[str, Any]) -> list[bytes]:
            body = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict"}.get(status, "Error")
            start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            method = environ.get("REQUEST_METHOD", "GET")
            if path == "/_sandbox/dataplane":
                controller.fresh()
                with controller._lock:
                    return respond(start_response, 200, controller.describe())
            match = route.match(path)
            if match is None:  # the AWS API, or a route of another wrapper
                try:
                    return app(environ, start_response)
                finally:
                    if method != "GET":
                        controller.trigger()
            action = match.group("action")
            if action and method != "POST":
                return respond(start_response, 405, {"error": f"{action} takes POST"})
            changes = None
            if action is None and method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                try:
                    changes = json.loads(environ["wsgi.input"].read(length) or b"{}")
                except ValueError:
                    return respond(start_response, 400, {"error": "the body must be a JSON object"})
                if not isinstance(changes, dict):
                    return respond(start_response, 400, {"error": "the body must be a JSON object"})
            status, document = controller.instance_control(
                match.group("id"), action or ("settings" if method == "POST" else "show"), changes
            )
            return respond(start_response, status, document)

        return application
