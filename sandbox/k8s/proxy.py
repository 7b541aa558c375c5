"""Services carry traffic: HAProxy in TCP mode, as kube-proxy routes a Service to its endpoints.

Every TCP port of every Service (but ExternalName) gets a frontend on a loopback
port (its ``nodePort`` for NodePort and LoadBalancer Services when that port is
free, else any free port) and a backend whose servers are the Service's ready
endpoints (``addresses`` of its Endpoints, as kube-proxy takes them from the
EndpointSlices). Like kube-proxy, balancing is per connection: a connection stays
with its pod for its whole life, and an endpoint that leaves takes no new
connections while the ones it has continue (HAProxy's ``maint`` state, then
``del server`` once it has none) — what conntrack does for an iptables rule that
is gone. A change reaches HAProxy through its runtime API :data:`PROPAGATION`
seconds after it reaches the API (kube-proxy's sync period: endpoint changes are
never instant on a real cluster either); only new or removed Services reload it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dataplane import haproxy
from .kinds import BY_KEY
from .store import Store

LOG = logging.getLogger("sandbox.k8s.proxy")
SERVICES = BY_KEY["/services"]
ENDPOINTS = BY_KEY["/endpoints"]
PROPAGATION = 1.0
STATE_FILE = "services.json"


@dataclass(frozen=True)
class Frontend:
    namespace: str
    service: str
    port: int  # the Service's port
    name: str  # the Service port's name ("" when unnamed)
    backend: str
    listen: int  # the loopback port HAProxy binds


@dataclass
class Wanted:
    frontends: dict[str, Frontend] = field(default_factory=dict)  # backend -> frontend
    servers: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)  # backend -> server name -> (ip, port)


def backend_name(namespace: str, service: str, port: int) -> str:
    digest = hashlib.sha1(f"{namespace}/{service}/{port}".encode(), usedforsecurity=False).hexdigest()[:10]
    return f"svc_{digest}"


def server_name(ip: str, port: int) -> str:
    return f"ep_{ip.replace('.', '_')}_{port}"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render_config(frontends: Iterable[Frontend], servers: dict[str, dict[str, tuple[str, int]]], paths: haproxy.Paths) -> str:
    lines = [
        "# Written by the cutover Kubernetes sandbox: one frontend per Service port; servers change at run time.",
        "global",
        f"  stats socket {paths.stats} mode 600 level admin expose-fd listeners",
        "  stats timeout 30s",
        f"  server-state-file {paths.state}",
        "  maxconn 4096",
        "  nbthread 1",
        "  hard-stop-after 65s",
        "",
        "defaults",
        "  mode tcp",
        "  load-server-state-from-file global",
        "  retries 0",  # a refused connection is the client's to see, as with kube-proxy
        "  timeout connect 5s",
        "  timeout client 600s",
        "  timeout server 600s",
        "",
    ]
    for frontend in sorted(frontends, key=lambda f: f.backend):
        lines += [
            f"frontend {frontend.backend}",
            f"  # {frontend.namespace}/{frontend.service}:{frontend.port}",
            f"  bind 127.0.0.1:{frontend.listen}",
            f"  default_backend {frontend.backend}",
            "",
            f"backend {frontend.backend}",
            "  balance roundrobin",
        ]
        for name, (ip, port) in sorted(servers.get(frontend.backend, {}).items()):
            lines.append(f"  server {name} {ip}:{port}")
        lines.append("")
    return "\n".join(lines)


class ServiceProxy:
    def __init__(self, store: Store, state_dir: Path, binary: str | None = None, propagation: float = PROPAGATION):
        self.store = store
        self.state_dir = state_dir
        self.propagation = propagation
        directory = state_dir / "haproxy"
        if len(str(directory / "stats.sock")) > 100:  # unix socket paths are short
            directory = Path(tempfile.mkdtemp(prefix="cutover-k8s-proxy-"))
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o700)
        self.paths = haproxy.Paths(directory)
        self.process = haproxy.Process(binary or haproxy.find_binary(), self.paths)
        self.frontends: dict[str, Frontend] = {}  # what HAProxy has
        self.servers: dict[str, dict[str, tuple[str, int]]] = {}  # backend -> live servers
        self.leaving: dict[str, dict[str, tuple[str, int]]] = {}  # backend -> servers in maint until idle
        self.listen_ports: dict[str, int] = {}
        self.version = ""
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.applied = 0
        self._lock = threading.Lock()  # apply() runs in a worker thread, describe() on the event loop

    def start(self) -> None:
        self.version = self.process.version()
        self.paths.state.write_text("1\n")
        self.process.start(render_config((), {}, self.paths))
        self._task = asyncio.create_task(self._run())
        LOG.info("service proxy: haproxy %s (pid %s)", self.version, self.process.pid)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.process.stop()
        if not str(self.paths.directory).startswith(str(self.state_dir)):
            shutil.rmtree(self.paths.directory, ignore_errors=True)

    def notice(self, kind_key: str) -> None:
        if kind_key in ("/services", "/endpoints"):
            self._dirty.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), 1.0)
            except TimeoutError:
                if self.leaving:
                    await asyncio.to_thread(self._reap_locked)
                continue
            await asyncio.sleep(self.propagation)  # kube-proxy's sync: changes are seen together, after a while
            self._dirty.clear()
            wanted = self.wanted()
            try:
                await asyncio.to_thread(self.apply, wanted)
                self.applied += 1
                self._write_state()
            except Exception:
                LOG.exception("service proxy: applying endpoints failed (retrying)")
                self._dirty.set()

    # -- what should be ------------------------------------------------------------------------------------
    def wanted(self) -> Wanted:
        wanted = Wanted()
        for service in self.store.items(SERVICES):
            spec = service.get("spec") or {}
            if spec.get("type") == "ExternalName":
                continue
            namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
            endpoints = self.store.peek(ENDPOINTS, namespace, name) or {}
            for port in spec.get("ports") or []:
                if port.get("protocol", "TCP") != "TCP":
                    continue
                backend = backend_name(namespace, name, int(port["port"]))
                listen = self.listen_ports.get(backend)
                if listen is None:
                    node_port = port.get("nodePort")
                    listen = int(node_port) if node_port and port_free(int(node_port)) else free_port()
                    self.listen_ports[backend] = listen
                wanted.frontends[backend] = Frontend(namespace, name, int(port["port"]), port.get("name") or "", backend, listen)
                servers = wanted.servers.setdefault(backend, {})
                for subset in endpoints.get("subsets") or []:
                    match = next(
                        (
                            p
                            for p in subset.get("ports") or []
                            if (p.get("name") or "") == (port.get("name") or "") and p.get("protocol", "TCP") == "TCP"
                        ),
                        None,
                    )
                    if match is None:
                        continue
                    for address in subset.get("addresses") or []:
                        servers[server_name(address["ip"], int(match["port"]))] = (address["ip"], int(match["port"]))
        for backend in [b for b in self.listen_ports if b not in wanted.frontends]:
            del self.listen_ports[backend]
        return wanted

    # -- making it so (in a worker thread: HAProxy calls block) -----------------------------------------------
    def apply(self, wanted: Wanted) -> None:
        with self._lock:
            self._apply(wanted)

    def _apply(self, wanted: Wanted) -> None:
        runtime = self.process.runtime
        if set(wanted.frontends.values()) != set(self.frontends.values()):
            servers = {b: dict(s) for b, s in wanted.servers.items()}
            config = render_config(wanted.frontends.values(), servers, self.paths)
            self.process.reload(config)
            self.frontends = dict(wanted.frontends)
            self.servers = servers
            self.leaving = {}
            LOG.info("service proxy: haproxy reloaded, %d service port(s)", len(self.frontends))
            return
        for backend, servers in wanted.servers.items():
            live = self.servers.setdefault(backend, {})
            for name, (ip, port) in servers.items():
                if name in live:
                    continue
                leaving = self.leaving.get(backend, {})
                if name in leaving:
                    del leaving[name]
                    runtime.command(f"set server {backend}/{name} state ready")
                else:
                    runtime.expect(f"add server {backend}/{name} {ip}:{port}", "new server registered")
                    runtime.command(f"enable server {backend}/{name}")
                live[name] = (ip, port)
                LOG.info("service proxy: %s gains endpoint %s:%d", backend, ip, port)
            for name in [n for n in live if n not in servers]:
                runtime.command(f"set server {backend}/{name} state maint")
                self.leaving.setdefault(backend, {})[name] = live.pop(name)
                LOG.info("service proxy: %s loses endpoint %s (its connections continue)", backend, name)
        self._reap()

    def _reap_locked(self) -> None:
        with self._lock:
            self._reap()

    def _reap(self) -> None:
        """Remove servers that left once they have no connection left."""
        if not self.leaving:
            return
        runtime = self.process.runtime
        rows = {(r.get("pxname"), r.get("svname")): r for r in runtime.servers()}
        for backend, servers in list(self.leaving.items()):
            for name in list(servers):
                row = rows.get((backend, name))
                if row is None or int(row.get("scur") or 0) == 0:
                    answer = runtime.command(f"del server {backend}/{name}")
                    if row is None or "deleted" in answer.lower() or "no such server" in answer.lower():
                        del servers[name]
            if not servers:
                del self.leaving[backend]

    # -- what is -------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        with self._lock:
            return self._describe()

    def _describe(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for frontend in sorted(self.frontends.values(), key=lambda f: (f.namespace, f.service, f.port)):
            entry = services.setdefault(f"{frontend.namespace}/{frontend.service}", {"ports": {}})
            entry["ports"][str(frontend.port)] = {
                "name": frontend.name,
                "url": f"http://127.0.0.1:{frontend.listen}",
                "endpoints": sorted(f"{ip}:{port}" for ip, port in self.servers.get(frontend.backend, {}).values()),
            }
        return {
            "haproxy": {"pid": self.process.pid, "version": self.version, "config": str(self.paths.config)},
            "services": services,
            "applied": self.applied,
        }

    def _write_state(self) -> None:
        path = self.state_dir / STATE_FILE
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps(self.describe(), indent=2, sort_keys=True))
        os.replace(staged, path)

    def url(self, namespace: str, service: str, port: int | None = None) -> str | None:
        for frontend in self.frontends.values():
            if frontend.namespace == namespace and frontend.service == service and (port is None or frontend.port == port):
                return f"http://127.0.0.1:{frontend.listen}"
        return None


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
