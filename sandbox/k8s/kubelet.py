"""The kubelet of the sandbox's one node: every container of a pod is a real local process.

A pod bound to the node gets its own loopback address (``127.x.y.z``, so every
pod can listen on its ``containerPort`` as on a real pod IP). Each container runs
the sandbox's instance app (:mod:`sandbox.dataplane.app`) serving the version its
image tag names, on the container's first TCP port; what it does comes from the
image's settings (``python -m sandbox image``) and from ``SANDBOX_*`` variables in
the container's ``env``:

  ``SANDBOX_VERSION``          the version it reports (default: the image tag)
  ``SANDBOX_FAIL_HEALTH``      its health/probe answers are 500
  ``SANDBOX_ERROR_RATE``       this fraction of requests answer 500
  ``SANDBOX_DELAY_MS``         latency added to every request
  ``SANDBOX_HEALTH_DELAY_MS``  latency added to probes (beyond ``timeoutSeconds``: a timeout)
  ``SANDBOX_CRASH``            the process exits with code 1 right after it starts (CrashLoopBackOff)
  ``SANDBOX_PULL_ERROR``       the image cannot be pulled (ErrImagePull, then ImagePullBackOff)
  ``SANDBOX_SHUTDOWN``         ``graceful`` (default: on SIGTERM finish in-flight requests) or ``immediate``

Readiness, liveness and startup probes (``httpGet``, ``tcpSocket``) run with the
pod's own period, timeout and thresholds and decide the container's ``ready``
and the pod's ``Ready`` condition; a failed liveness probe or an exit restarts
the container with Kubernetes' back-off (10 s doubling to 300 s, shown as
``CrashLoopBackOff``). Deletion is graceful: the ``preStop`` hook (``sleep``, an
``exec`` that is a sleep, or ``httpGet``), then SIGTERM, then SIGKILL when
``terminationGracePeriodSeconds`` is over; only then does the pod leave the API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import errno
import json
import logging
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dataplane.app import KUBE_PROBE_AGENT
from .kinds import BY_KEY
from .store import Store, timestamp

if TYPE_CHECKING:
    from .cluster import Cluster

LOG = logging.getLogger("sandbox.k8s.kubelet")
APP = Path(__file__).resolve().parent.parent / "dataplane" / "app.py"
PODS = BY_KEY["/pods"]
PROBE_AGENT = f"{KUBE_PROBE_AGENT}1.31"
BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET = 10.0, 300.0, 600.0
SETTING_NAMES = ("version", "fail_health", "error_rate", "delay_ms", "health_delay_ms", "crash", "pull_error", "shutdown")
IMAGE_REFERENCE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_TRUE = {"1", "true", "yes", "on"}


def image_version(image: str) -> str:
    """The version an image reference names: its tag (``registry/app:v2`` -> ``v2``), or its digest."""
    if "@" in image:
        return image.split("@", 1)[1][:19]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


class IPPool:
    """Pod addresses on loopback: one /24 of 127.0.0.0/8 per sandbox, chosen at random (parallel sandboxes rarely meet)."""

    def __init__(self) -> None:
        self._base = (random.randint(16, 250), random.randint(0, 255))  # noqa: S311 - spreading, not secrecy
        self._next = 2
        self.used: set[str] = set()

    def allocate(self) -> str:
        for _ in range(254 * 4):
            if self._next > 254:
                self._next = 2
                self._base = (self._base[0], (self._base[1] + 1) % 256)
            address = f"127.{self._base[0]}.{self._base[1]}.{self._next}"
            self._next += 1
            if address not in self.used:
                self.used.add(address)
                return address
        raise RuntimeError("no free pod address on loopback")

    def release(self, address: str | None) -> None:
        if address:
            self.used.discard(address)


def _listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def container_settings(image_settings: dict[str, Any], env: list[dict[str, Any]] | None) -> dict[str, Any]:
    """What a container does: the image's settings, overridden by its ``SANDBOX_*`` variables."""
    settings = dict(image_settings)
    for variable in env or []:
        name = str(variable.get("name", ""))
        if name.startswith("SANDBOX_") and "value" in variable and name[8:].lower() in SETTING_NAMES:
            settings[name[8:].lower()] = variable["value"]
    return settings


def flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in _TRUE


def exit_reason(code: int | None) -> tuple[int, str]:
    if code is None:
        return 137, "Error"
    if code < 0:
        return 128 - code, "Error"
    return code, "Completed" if code == 0 else "Error"


def sleep_seconds(command: list[str]) -> float | None:
    """The seconds of an exec hook that only sleeps (``sleep 5``, ``sh -c "sleep 5"``), else None."""
    words = list(command)
    if len(words) >= 3 and words[0].rsplit("/", 1)[-1] in ("sh", "bash", "ash", "dash") and words[1] == "-c":
        words = shlex.split(words[2])
    if len(words) == 2 and words[0].rsplit("/", 1)[-1] == "sleep":
        with contextlib.suppress(ValueError):
            return float(words[1].rstrip("s"))
    return None


class Container:
    """One container of a pod: its process, restarts, probes and status."""

    def __init__(self, pod: PodRuntime, spec: dict[str, Any]):
        self.pod = pod
        self.spec = spec
        self.name = spec["name"]
        self.image = str(spec.get("image") or "")
        self.popen: subprocess.Popen[bytes] | None = None
        self.control_port: int | None = None
        self.port: int | None = None
        self.restarts = 0
        self.failures = 0
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.ready = False
        self.started = False
        self.container_id = ""
        self.generation = 0
        self.kill_requested = False
        self.stopping = False
        self.tasks: list[asyncio.Task[None]] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def kubelet(self) -> Kubelet:
        return self.pod.kubelet

    def settings(self) -> dict[str, Any]:
        return container_settings(self.kubelet.image_settings(self.image), self.spec.get("env"))

    def status(self) -> dict[str, Any]:
        digest = base64.b16encode(self.image.encode()).decode().lower().ljust(64, "0")[:64]
        entry: dict[str, Any] = {
            "name": self.name,
            "state": copy.deepcopy(self.state),
            "lastState": copy.deepcopy(self.last_state),
            "ready": self.ready,
            "restartCount": self.restarts,
            "image": self.image,
            "imageID": f"sandbox.local/{self.image.split('@', 1)[0].split(':', 1)[0]}@sha256:{digest}",
            "started": self.started and "running" in self.state,
        }
        if self.container_id:
            entry["containerID"] = self.container_id
        return entry

    # -- life -------------------------------------------------------------------------------------------
    async def supervise(self) -> None:
        pod = self.pod
        while not self.stopping:
            settings = self.settings()
            if not IMAGE_REFERENCE.match(self.image):
                self.state = {
                    "waiting": {
                        "reason": "InvalidImageName",
                        "message": f'Failed to apply default image tag "{self.image}": couldn\'t parse image name',
                    }
                }
                pod.publish()
                return
            if flag(settings.get("pull_error")):
                await self._pull_failed()
                continue
            try:
                self._start(settings)
            except OSError as exc:
                self.state = {"waiting": {"reason": "CreateContainerError", "message": f"cannot listen on {pod.ip}: {exc}"}}
                pod.publish()
                await self._wait(BACKOFF_START)
                continue
            pod.publish()
            began = time.monotonic()
            code = await self._wait_exit()
            self._stop_probes()
            finished = timestamp()
            exit_code, reason = exit_reason(code)
            started_at = (self.state.get("running") or {}).get("startedAt")
            self.state = {
                "terminated": {
                    "exitCode": exit_code,
                    "reason": reason,
                    "startedAt": started_at,
                    "finishedAt": finished,
                    "containerID": self.container_id,
                }
            }
            self.ready = False
            self.started = False
            self.popen = None
            if self.stopping:
                pod.publish()
                return
            LOG.info("pod %s/%s container %s exited (%s, code %s)", pod.namespace, pod.name, self.name, reason, exit_code)
            policy = pod.spec.get("restartPolicy", "Always")
            if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
                pod.publish()
                return
            self.last_state = copy.deepcopy(self.state)
            self.restarts += 1
            if time.monotonic() - began > BACKOFF_RESET:
                self.failures = 0
            delay = min(BACKOFF_START * 2**self.failures, BACKOFF_MAX)
            self.failures += 1
            self.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {delay:.0f}s restarting failed container={self.name} pod={pod.name}_{pod.namespace}({pod.uid})",
                }
            }
            self.kubelet.cluster.record(
                pod.pod,
                "BackOff",
                f"Back-off restarting failed container {self.name} in pod {pod.name}_{pod.namespace}({pod.uid})",
                kind="Warning",
                component="kubelet",
            )
            pod.publish()
            await self._wait(delay)

    async def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            await asyncio.sleep(min(0.2, deadline - time.monotonic()))

    async def _pull_failed(self) -> None:
        pod = self.pod
        message = f'failed to pull and unpack image "{self.image}": failed to resolve reference "{self.image}": not found'
        self.state = {"waiting": {"reason": "ErrImagePull", "message": message}}
        self.kubelet.cluster.record(
            pod.pod, "Failed", f'Failed to pull image "{self.image}": {message}', kind="Warning", component="kubelet"
        )
        pod.publish()
        await self._wait(1.0)
        delay = min(BACKOFF_START * 2**self.failures, BACKOFF_MAX)
        self.failures += 1
        self.state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{self.image}"'}}
        self.kubelet.cluster.record(pod.pod, "BackOff", f'Back-off pulling image "{self.image}"', kind="Normal", component="kubelet")
        pod.publish()
        await self._wait(delay)

    def _start(self, settings: dict[str, Any]) -> None:
        pod = self.pod
        ports = [p for p in self.spec.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        self.port = int(ports[0]["containerPort"]) if ports else 0
        traffic = _listen(pod.ip or "127.0.0.1", self.port)
        control = _listen(pod.ip or "127.0.0.1", 0)
        try:
            self.port = traffic.getsockname()[1]
            self.control_port = control.getsockname()[1]
            log = self.kubelet.log_path(pod.namespace, pod.name, self.name)
            version = str(settings.get("version") or image_version(self.image))
            lines = [f"version={version}"]
            for key in ("fail_health", "error_rate", "delay_ms", "health_delay_ms"):
                if key in settings:
                    lines.append(f"{key}={settings[key]}")
            if flag(settings.get("crash")):
                command = [
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    "import sys, time; time.sleep(0.3); print('fatal: crashing as configured'); sys.exit(1)",
                ]
            else:
                command = [
                    sys.executable,
                    "-I",
                    "-S",
                    str(APP),
                    *("--fd", str(traffic.fileno()), "--control-fd", str(control.fileno())),
                    *("--instance-id", pod.name, "--image-id", self.image),
                    *("--color", pod.color, "--service", pod.app),
                    *("--user-data", base64.b64encode("\n".join(lines).encode()).decode()),
                ]
                if str(settings.get("shutdown", "graceful")).lower() != "immediate":
                    command.append("--graceful")
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"{timestamp()} sandbox: starting {self.image} (version {version}) on {pod.ip}:{self.port}\n")
                out.flush()
                self.popen = subprocess.Popen(
                    command, pass_fds=(traffic.fileno(), control.fileno()), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                )
        finally:
            traffic.close()
            control.close()
        self.generation += 1
        self.container_id = f"sandbox://{self.popen.pid}-{self.generation}"
        self.state = {"running": {"startedAt": timestamp()}}
        self.kill_requested = False
        record = self.kubelet.cluster.record
        if self.restarts == 0:
            record(pod.pod, "Pulled", f'Container image "{self.image}" already present on machine', component="kubelet")
        record(pod.pod, "Created", f"Created container {self.name}", component="kubelet")
        record(pod.pod, "Started", f"Started container {self.name}", component="kubelet")
        LOG.info(
            "pod %s/%s container %s: %s on %s:%s (pid %d)", pod.namespace, pod.name, self.name, version, pod.ip, self.port, self.popen.pid
        )
        startup = self.spec.get("startupProbe")
        self.started = startup is None
        if startup is not None:
            self.tasks.append(asyncio.create_task(self._probe_loop("startup", startup, self.generation)))
        if self.spec.get("readinessProbe") is not None:
            self.tasks.append(asyncio.create_task(self._probe_loop("readiness", self.spec["readinessProbe"], self.generation)))
        else:
            self.ready = self.started
        if self.spec.get("livenessProbe") is not None:
            self.tasks.append(asyncio.create_task(self._probe_loop("liveness", self.spec["livenessProbe"], self.generation)))

    async def _wait_exit(self) -> int | None:
        while self.popen is not None and self.popen.poll() is None:
            await asyncio.sleep(0.1)
        return self.popen.returncode if self.popen is not None else None

    def _stop_probes(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()

    # -- probes ------------------------------------------------------------------------------------------
    def _port(self, value: Any) -> int | None:
        if isinstance(value, int):
            return value
        for port in self.spec.get("ports") or []:
            if port.get("name") == value:
                return int(port["containerPort"])
        return None

    async def probe(self, probe: dict[str, Any]) -> tuple[bool, str]:
        """One probe: (success, the kubelet's message on failure)."""
        timeout = float(probe.get("timeoutSeconds", 1))
        address = self.pod.ip or "127.0.0.1"
        if "httpGet" in probe:
            http = probe["httpGet"]
            port = self._port(http.get("port"))
            path = http.get("path") or "/"
            url = f"{http.get('scheme', 'HTTP').lower()}://{address}:{port}{path}"
            if port is None:
                return False, f"unknown port {http.get('port')!r}"
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(address, port)
                    try:
                        headers = "".join(f"{h['name']}: {h['value']}\r\n" for h in http.get("httpHeaders") or [] if "name" in h)
                        head = f"GET {path} HTTP/1.1\r\nHost: {address}:{port}\r\nUser-Agent: {PROBE_AGENT}\r\nAccept: */*\r\n"
                        writer.write(f"{head}{headers}Connection: close\r\n\r\n".encode())
                        await writer.drain()
                        line = await reader.readline()
                    finally:
                        writer.close()
                        with contextlib.suppress(OSError):
                            await writer.wait_closed()
            except TimeoutError:
                return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
            except OSError as exc:
                why = "connection refused" if exc.errno == errno.ECONNREFUSED else (exc.strerror or str(exc)).lower()
                return False, f'Get "{url}": dial tcp {address}:{port}: connect: {why}'
            parts = line.decode(errors="replace").split()
            if len(parts) < 2 or not parts[1].isdigit():
                return False, f'Get "{url}": malformed HTTP response'
            code = int(parts[1])
            if 200 <= code < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {code}"
        if "tcpSocket" in probe:
            port = self._port((probe["tcpSocket"] or {}).get("port"))
            try:
                async with asyncio.timeout(timeout):
                    _, writer = await asyncio.open_connection(address, port)
                    writer.close()
                return True, ""
            except (TimeoutError, OSError) as exc:
                return False, f"dial tcp {address}:{port}: connect: {getattr(exc, 'strerror', None) or 'i/o timeout'}".lower()
        handler = next((k for k in ("exec", "grpc") if k in probe), "unknown")
        return False, f"{handler} probes are not supported by the sandbox (use httpGet or tcpSocket)"

    async def _probe_loop(self, purpose: str, probe: dict[str, Any], generation: int) -> None:
        pod = self.pod
        period = float(probe.get("periodSeconds", 10))
        success_needed = int(probe.get("successThreshold", 1))
        failure_limit = int(probe.get("failureThreshold", 3))
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)) + random.uniform(0, min(period, 1.0)) * 0.1)  # noqa: S311
        successes = failures = 0
        label = purpose.capitalize()
        while generation == self.generation and "running" in self.state:
            if purpose != "startup" and not self.started:
                await asyncio.sleep(min(period, 0.5))
                continue
            began = time.monotonic()
            ok, message = await self.probe(probe)
            if generation != self.generation or "running" not in self.state:
                return
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                if not pod.terminating or purpose == "readiness":
                    self.kubelet.cluster.record(
                        pod.pod, "Unhealthy", f"{label} probe failed: {message}", kind="Warning", component="kubelet"
                    )
            if purpose == "readiness":
                if ok and successes >= success_needed and not self.ready:
                    self.ready = True
                    pod.publish()
                elif not ok and failures >= failure_limit and self.ready:
                    self.ready = False
                    pod.publish()
            elif purpose == "startup":
                if ok:
                    self.started = True
                    if self.spec.get("readinessProbe") is None:
                        self.ready = True
                    pod.publish()
                    return
                if failures >= failure_limit:
                    self._restart(f"Container {self.name} failed startup probe, will be restarted")
                    return
            elif purpose == "liveness" and not ok and failures >= failure_limit and not pod.terminating:
                self._restart(f"Container {self.name} failed liveness probe, will be restarted")
                return
            await asyncio.sleep(max(0.0, period - (time.monotonic() - began)))

    def _restart(self, message: str) -> None:
        self.kubelet.cluster.record(self.pod.pod, "Killing", message, component="kubelet")
        self.signal(signal.SIGTERM)
        grace = float(self.pod.spec.get("terminationGracePeriodSeconds", 30))
        popen = self.popen

        async def escalate() -> None:
            await asyncio.sleep(grace)
            if popen is not None and popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()

        self.kubelet.background(escalate())

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def control(self, changes: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        if self.popen is None or self.popen.poll() is not None or self.control_port is None:
            return 409, {"error": f"container {self.name} of pod {self.pod.name} is not running ({next(iter(self.state))})"}
        body = json.dumps(changes).encode() if changes is not None else None
        request = urllib.request.Request(
            f"http://{self.pod.ip}:{self.control_port}/", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - the pod's loopback control socket
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except OSError as error:
            return 502, {"error": f"container {self.name} did not answer: {error}"}


class PodRuntime:
    """A pod on the node: its address, its containers, its status, its termination."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]):
        self.kubelet = kubelet
        self.pod = pod
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.spec = pod["spec"]
        labels = pod["metadata"].get("labels") or {}
        self.color = labels.get("slot") or labels.get("color") or ""
        self.app = labels.get("app") or labels.get("app.kubernetes.io/name") or ""
        self.ip: str | None = None
        self.containers = [Container(self, spec) for spec in self.spec.get("containers") or []]
        self.terminating = False
        self.gone = False
        self.started_at = timestamp()
        self.conditions: dict[str, dict[str, Any]] = {}
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        try:
            self.ip = self._address()
            self.publish()
            for container in self.containers:
                container.task = asyncio.create_task(container.supervise())
            await asyncio.gather(*(c.task for c in self.containers if c.task), return_exceptions=True)
        except asyncio.CancelledError:
            pass
        except Exception:
            LOG.exception("pod %s/%s failed in the kubelet", self.namespace, self.name)

    def _address(self) -> str:
        """A pod address where every container's port is free (another sandbox may use the same one)."""
        for _ in range(20):
            address = self.kubelet.pool.allocate()
            sockets = []
            try:
                for container in self.containers:
                    ports = [p for p in container.spec.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
                    if ports:
                        sockets.append(_listen(address, int(ports[0]["containerPort"])))
                return address
            except OSError:
                continue
            finally:
                for sock in sockets:
                    sock.close()
        raise RuntimeError("no loopback address with free ports for the pod")

    # -- status ------------------------------------------------------------------------------------------
    def _condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
        status = "True" if ok else "False"
        previous = self.conditions.get(kind)
        entry = {"type": kind, "status": status, "lastProbeTime": None}
        entry["lastTransitionTime"] = previous["lastTransitionTime"] if previous and previous["status"] == status else timestamp()
        if not ok and reason:
            entry.update(reason=reason, message=message)
        self.conditions[kind] = entry
        return entry

    def status(self) -> dict[str, Any]:
        containers = [c.status() for c in self.containers]
        unready = [c.name for c in self.containers if not c.ready]
        all_ready = not unready and bool(self.containers)
        ever_started = all(c.container_id for c in self.containers)
        terminated = [c.state.get("terminated") for c in self.containers]
        if all(terminated) and all(not c.task or c.task.done() for c in self.containers) and self.containers:
            phase = "Succeeded" if all(t["exitCode"] == 0 for t in terminated if t) else "Failed"
        else:
            phase = "Running" if ever_started else "Pending"
        message = f"containers with unready status: [{' '.join(unready)}]"
        conditions = [
            self._condition("PodReadyToStartContainers", self.ip is not None),
            self._condition("Initialized", True),
            self._condition("Ready", all_ready, "ContainersNotReady", message),
            self._condition("ContainersReady", all_ready, "ContainersNotReady", message),
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": self.started_at},
        ]
        scheduled = next((c for c in (self.pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if scheduled:
            conditions[-1] = scheduled
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.started_at,
            "containerStatuses": containers,
            "qosClass": (self.pod.get("status") or {}).get("qosClass", "BestEffort"),
        }
        if self.ip:
            status.update(podIP=self.ip, podIPs=[{"ip": self.ip}])
        if self.spec.get("initContainers"):
            status["initContainerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "started": False,
                    "state": {
                        "terminated": {"exitCode": 0, "reason": "Completed", "startedAt": self.started_at, "finishedAt": self.started_at}
                    },
                    "lastState": {},
                }
                for c in self.spec["initContainers"]
            ]
        return status

    def publish(self) -> None:
        if self.gone:
            return
        current = self.kubelet.store.peek(PODS, self.namespace, self.name)
        if current is None or current["metadata"]["uid"] != self.uid:
            return
        self.pod = current
        self.kubelet.store.set_status(PODS, self.namespace, self.name, self.status())

    # -- termination -------------------------------------------------------------------------------------
    async def terminate(self, grace: float) -> None:
        """preStop, SIGTERM, SIGKILL at the end of the grace period; then the pod leaves the API."""
        if self.terminating:
            return
        self.terminating = True
        deadline = time.monotonic() + max(grace, 0.0)
        LOG.info("pod %s/%s: terminating (grace %.0f s)", self.namespace, self.name, grace)
        if grace > 0:
            await asyncio.gather(*(self._pre_stop(c, deadline) for c in self.containers if c.popen is not None), return_exceptions=True)
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + 2.0  # the kubelet's one-time extension after a preStop hook
        for container in self.containers:
            container.stopping = True
            self.kubelet.cluster.record(self.pod, "Killing", f"Stopping container {container.name}", component="kubelet")
            container.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        while any(c.popen is not None and c.popen.poll() is None for c in self.containers):
            if time.monotonic() >= deadline:
                for container in self.containers:
                    container.signal(signal.SIGKILL)
                LOG.info("pod %s/%s: grace period over, SIGKILL", self.namespace, self.name)
                break
            await asyncio.sleep(0.1)
        await asyncio.gather(*(c.task for c in self.containers if c.task), return_exceptions=True)
        for container in self.containers:
            container._stop_probes()
        self.publish()
        self.kubelet.forget(self)
        self.kubelet.store.finish_pod(self.namespace, self.name, self.uid)

    async def _pre_stop(self, container: Container, deadline: float) -> None:
        hook = ((container.spec.get("lifecycle") or {}).get("preStop")) or None
        if not hook:
            return
        remaining = max(0.0, deadline - time.monotonic())
        if "sleep" in hook:
            await asyncio.sleep(min(float((hook["sleep"] or {}).get("seconds", 0)), remaining))
        elif "exec" in hook:
            seconds = sleep_seconds((hook["exec"] or {}).get("command") or [])
            if seconds is None:
                self.kubelet.cluster.record(
                    self.pod,
                    "FailedPreStopHook",
                    f"PreStopHook failed: the sandbox runs only exec hooks that sleep, not {(hook['exec'] or {}).get('command')}",
                    kind="Warning",
                    component="kubelet",
                )
                return
            await asyncio.sleep(min(seconds, remaining))
        elif "httpGet" in hook:
            probe = {"httpGet": hook["httpGet"], "timeoutSeconds": max(1, int(remaining))}
            ok, message = await container.probe(probe)
            if not ok:
                self.kubelet.cluster.record(
                    self.pod, "FailedPreStopHook", f"PreStopHook failed: {message}", kind="Warning", component="kubelet"
                )

    def kill(self) -> None:
        """The pod was removed from the API without a grace period: stop everything now."""
        self.gone = True
        for container in self.containers:
            container.stopping = True
            container.signal(signal.SIGKILL)
            container._stop_probes()
        self.kubelet.forget(self)


class Kubelet:
    def __init__(self, store: Store, cluster: Cluster, node_name: str, state_dir: Path):
        self.store = store
        self.cluster = cluster
        self.node_name = node_name
        self.logs = state_dir / "pods"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pool = IPPool()
        self.pods: dict[str, PodRuntime] = {}
        self.images: dict[str, dict[str, Any]] = {}
        self._background: set[asyncio.Task[None]] = set()

    def background(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def log_path(self, namespace: str, name: str, container: str) -> Path:
        return self.logs / f"{namespace}_{name}_{container}.log"

    def image_settings(self, image: str) -> dict[str, Any]:
        return dict(self.images.get(image, {}))

    def forget(self, runtime: PodRuntime) -> None:
        if self.pods.get(runtime.uid) is runtime:
            del self.pods[runtime.uid]
        self.pool.release(runtime.ip)

    def sync(self) -> None:
        """Start pods bound to the node, terminate the deleted ones, kill the ones removed without grace."""
        seen = set()
        for pod in self.store.items(PODS):
            if (pod.get("spec") or {}).get("nodeName") != self.node_name:
                continue
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            runtime = self.pods.get(uid)
            deleting = pod["metadata"].get("deletionTimestamp")
            if runtime is None:
                if deleting or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    if deleting:
                        self.store.finish_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], uid)
                    continue
                self.pods[uid] = PodRuntime(self, copy.deepcopy(pod))
                continue
            if deleting and not runtime.terminating:
                self.background(runtime.terminate(float(pod["metadata"].get("deletionGracePeriodSeconds", 30))))
        for uid, runtime in list(self.pods.items()):
            if uid not in seen and not runtime.terminating:
                runtime.kill()
            elif uid not in seen:
                runtime.gone = True

    def find(self, namespace: str, name: str) -> PodRuntime | None:
        return next((r for r in self.pods.values() if r.namespace == namespace and r.name == name), None)

    def stop(self) -> None:
        """The daemon is going down: every container gets SIGTERM, then SIGKILL after a short grace."""
        popens = [c.popen for r in self.pods.values() for c in r.containers if c.popen is not None]
        for runtime in self.pods.values():
            runtime.gone = True
            for container in runtime.containers:
                container.stopping = True
        for popen in popens:
            with contextlib.suppress(ProcessLookupError):
                popen.terminate()
        deadline = time.monotonic() + 3.0
        for popen in popens:
            try:
                popen.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(2)

    def describe(self) -> dict[str, Any]:
        pods = {}
        for runtime in sorted(self.pods.values(), key=lambda r: (r.namespace, r.name)):
            pods[f"{runtime.namespace}/{runtime.name}"] = {
                "ip": runtime.ip,
                "terminating": runtime.terminating,
                "containers": {
                    c.name: {
                        "pid": c.popen.pid if c.popen is not None else None,
                        "port": c.port,
                        "url": f"http://{runtime.ip}:{c.port}" if c.port and runtime.ip else None,
                        "ready": c.ready,
                        "restarts": c.restarts,
                        "state": next(iter(c.state)),
                        "image": c.image,
                    }
                    for c in runtime.containers
                },
            }
        return {"pods": pods, "images": self.images, "pod_network": f"127.{self.pool._base[0]}.{self.pool._base[1]}.0/24"}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
