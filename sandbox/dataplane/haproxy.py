"""HAProxy for the sandbox: configuration and routing maps rendered from the model, the process, its runtime API.

One HAProxy process (master-worker, in the foreground, a child of the sandbox
daemon) carries every load balancer: a frontend per listener on a loopback port,
a backend per target group. What changes during a release never needs a reload:

- routing is two maps per listener, replaced atomically at run time
  (``prepare map``/``commit map``): ``rules`` matches ``host|method|path`` against
  each rule's conditions in priority order and yields the rule's slot (a multiple
  of :data:`BUCKETS`; the default action is slot 0); ``actions`` maps
  ``slot + rand(BUCKETS)`` to a backend, so a weighted forward splits the slot's
  range by weight;
- targets are dynamic servers (``add server``/``del server``) whose admin state is
  ``ready``, ``drain`` (deregistering: in-flight requests finish, no new ones) or
  ``maint``.

A reload (``SIGUSR2`` to the master: a new worker takes over the listening
sockets, the old one finishes its requests; ``option idle-close-on-response``
keeps idle keep-alive clients safe) happens only when listeners or target groups
appear, disappear or change their health check; server states survive it
through ``server-state-file``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .app import HEALTH_CHECK_AGENT
from .model import Action, Condition, HealthCheck, Listener, TargetGroup

BUCKETS = 10_000
"""Each action owns BUCKETS consecutive slots; a weighted forward splits them by weight."""

INSTALL_HINT = (
    "the sandbox data plane needs HAProxy (2.4 or later): install it with "
    "`sudo apt-get install haproxy` (Debian/Ubuntu; `make setup` does it), "
    "`brew install haproxy` (macOS) or your system's package manager, "
    "or point CUTOVER_HAPROXY at the binary"
)
NO_ROUTE_BACKEND = "sandbox_no_route"
SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/opt/homebrew/bin", "/usr/local/bin")


class HAProxyError(RuntimeError):
    """HAProxy is missing, refused its configuration or did not answer."""


class ReloadFailed(HAProxyError):
    """The configuration was valid but no new worker took over (a port taken meanwhile, say)."""


def find_binary() -> str:
    """The haproxy executable: CUTOVER_HAPROXY, PATH, then the sbin directories PATH often lacks."""
    configured = os.environ.get("CUTOVER_HAPROXY")
    if configured:
        if os.access(configured, os.X_OK):
            return configured
        raise HAProxyError(f"CUTOVER_HAPROXY={configured} is not an executable; {INSTALL_HINT}")
    found = shutil.which("haproxy") or shutil.which("haproxy", path=os.pathsep.join(SEARCH_PATH))
    if not found:
        raise HAProxyError(f"haproxy was not found; {INSTALL_HINT}")
    return found


# -- routing --------------------------------------------------------------------------------------
def _wildcard(pattern: str, any_run: str) -> str:
    """An ALB wildcard pattern (``*`` any run, ``?`` one character) as a regex fragment."""
    out = []
    for char in pattern:
        if char == "*":
            out.append(any_run)
        elif char == "?":
            out.append(any_run.replace("*", ""))
        elif char.isalnum() or char in "/_-~":
            out.append(char)
        else:
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x80 else re.escape(char))
    return "".join(out)


def condition_regex(conditions: Sequence[Condition]) -> str | None:
    """The regex over ``host|method|path`` that matches exactly when all the conditions do.

    Values of one condition are alternatives (OR); conditions combine with AND.
    Host patterns are case-insensitive (the key's host is lower-cased), paths and
    methods are not, like ALB. ``None`` for a condition the sandbox cannot evaluate
    (http-header, query-string, source-ip): such a rule never matches.
    """
    parts: dict[str, tuple[str, ...]] = {}
    for condition in conditions:
        if condition.field not in ("host-header", "http-request-method", "path-pattern") or not condition.values:
            return None
        if condition.field in parts:  # ALB allows one condition of each of these fields per rule
            return None
        parts[condition.field] = condition.values

    def group(field: str, any_run: str, fold: bool) -> str:
        values = parts.get(field)
        if not values:
            return any_run
        return "(?:" + "|".join(_wildcard(v.lower() if fold else v, any_run) for v in values) + ")"

    host = group("host-header", "[^|]*", fold=True)
    method = group("http-request-method", "[^|]*", fold=False)
    path = group("path-pattern", ".*", fold=False)
    return f"^{host}\\|{method}\\|{path}$"


def assign_slots(previous: Mapping[str, int], rule_arns: Iterable[str]) -> dict[str, int]:
    """Stable slots for a listener's rules: a rule keeps its slot while it exists (0 is the default action)."""
    arns = list(rule_arns)
    slots = {arn: slot for arn, slot in previous.items() if arn in arns}
    used = set(slots.values())
    next_slot = 1
    for arn in arns:
        if arn not in slots:
            while next_slot in used:
                next_slot += 1
            slots[arn] = next_slot
            used.add(next_slot)
    return slots


def action_backend(action: Action) -> str:
    """The backend name for a non-forward action (a fixed response or the no-route answer)."""
    if action.kind == "fixed-response":
        digest = hashlib.sha1(f"{action.status}|{action.content_type}|{action.body}".encode(), usedforsecurity=False).hexdigest()
        return f"fx_{digest[:12]}"
    return NO_ROUTE_BACKEND


def split(weights: Sequence[tuple[str, int]], buckets: int = BUCKETS) -> list[tuple[int, int, str]]:
    """Split ``range(buckets)`` by weight: [(first, last, target group ARN)], zero weights left out."""
    total = sum(max(weight, 0) for _, weight in weights)
    if total <= 0:
        return []
    ranges, cumulative, start = [], 0, 0
    for arn, weight in weights:
        if weight <= 0:
            continue
        cumulative += weight
        end = round(buckets * cumulative / total)
        if end > start:
            ranges.append((start, end - 1, arn))
        start = end
    return ranges


def rules_map(listener: Listener, slots: Mapping[str, int]) -> list[tuple[str, int]]:
    """(regex, slot offset) lines in priority order; unmatched requests take the default (0)."""
    lines = []
    for rule in listener.rules:
        regex = condition_regex(rule.conditions)
        if regex is not None:
            lines.append((regex, slots[rule.arn] * BUCKETS))
    return lines


def actions_map(listener: Listener, slots: Mapping[str, int], backends: Mapping[str, str]) -> list[tuple[str, str]]:
    """("first:last", backend) lines: every slot's bucket range split among its forward's target groups.

    ``backends`` maps target-group ARNs to backend names; a group missing there
    (deleted) leaves its share unrouted (503), like ALB.
    """
    lines: list[tuple[str, str]] = []
    entries = [(0, listener.default)] + [(slots[rule.arn], rule.action) for rule in listener.rules]
    for slot, action in sorted(entries, key=lambda item: item[0]):
        offset = slot * BUCKETS
        if action.kind == "forward":
            for first, last, arn in split(action.forwards):
                lines.append((f"{offset + first}:{offset + last}", backends.get(arn, NO_ROUTE_BACKEND)))
        else:
            lines.append((f"{offset}:{offset + BUCKETS - 1}", action_backend(action)))
    return lines


def map_text(lines: Iterable[tuple[object, object]]) -> str:
    return "".join(f"{key} {value}\n" for key, value in lines)


# -- configuration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frontend:
    name: str
    port: int
    rules_map: str
    actions_map: str
    public_port: int = 80
    protocol: str = "HTTP"


@dataclass(frozen=True)
class Backend:
    name: str
    health: HealthCheck
    algorithm: str = "round_robin"


@dataclass(frozen=True)
class FixedBackend:
    name: str
    status: int
    content_type: str
    body: str


@dataclass(frozen=True)
class Layout:
    """What only a reload can change: frontends, backends and fixed-response answers."""

    frontends: tuple[Frontend, ...] = ()
    backends: tuple[Backend, ...] = ()
    fixed: tuple[FixedBackend, ...] = ()


@dataclass(frozen=True)
class Server:
    """A target as an HAProxy server: where its instance listens and its admin state."""

    backend: str
    name: str
    address: str
    port: int
    admin: str = "ready"  # ready | drain | maint


@dataclass
class Paths:
    directory: Path
    config: Path = field(init=False)
    stats: Path = field(init=False)
    state: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.directory / "haproxy.cfg"
        self.stats = self.directory / "stats.sock"
        self.state = self.directory / "servers.state"

    def rules_map(self, listener: Listener) -> str:
        return str(self.directory / f"{listener.frontend}.rules.map")

    def actions_map(self, listener: Listener) -> str:
        return str(self.directory / f"{listener.frontend}.actions.map")


def backend_for(group: TargetGroup) -> Backend:
    return Backend(group.backend, group.health, group.algorithm)


def check_options(health: HealthCheck) -> str:
    """The server keywords of a target group's health check (empty when checks are disabled)."""
    if not health.enabled:
        return ""
    return f"check inter {health.interval}s rise {health.healthy} fall {health.unhealthy}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


BALANCE = {"round_robin": "roundrobin", "least_outstanding_requests": "leastconn", "weighted_random": "random"}
LOG_FORMAT = "%f %b %s %ST %Tr %Ta"


def render_config(layout: Layout, paths: Paths, log_port: int, servers: Iterable[Server] = ()) -> str:
    """The whole configuration for a layout and the servers that exist now."""
    by_backend: dict[str, list[Server]] = {}
    for server in servers:
        by_backend.setdefault(server.backend, []).append(server)
    lines = [
        "# Written by the cutover sandbox data plane; changed at run time through the stats socket.",
        "global",
        f"  stats socket {paths.stats} mode 600 level admin expose-fd listeners",
        "  stats timeout 30s",
        f"  server-state-file {paths.state}",
        f"  log 127.0.0.1:{log_port} len 2048 format raw local0 info",
        "  maxconn 4096",
        "  nbthread 1",
        "  hard-stop-after 65s",
        "",
        "defaults",
        "  mode http",
        "  log global",
        f"  log-format {_quote(LOG_FORMAT)}",
        "  option dontlognull",
        "  option idle-close-on-response",
        "  load-server-state-from-file global",
        "  retries 0",  # ALB does not retry a request on another target
        "  timeout connect 5s",
        "  timeout client 60s",  # ALB's default idle timeout
        "  timeout http-keep-alive 60s",
        "  timeout http-request 30s",
        "  timeout server 60s",
        "",
        f"backend {NO_ROUTE_BACKEND}",
        '  http-request return status 503 content-type text/plain string "no target group answers this request\\n"',
        "",
    ]
    for fixed in layout.fixed:
        lines += [
            f"backend {fixed.name}",
            f"  http-request return status {fixed.status} content-type {_quote(fixed.content_type)} string {_quote(fixed.body)}",
            "",
        ]
    for frontend in layout.frontends:
        lines += [
            f"frontend {frontend.name}",
            f"  bind 127.0.0.1:{frontend.port}",
            "  option forwardfor",
            f"  http-request set-header X-Forwarded-Proto {frontend.protocol.lower()}",
            f"  http-request set-header X-Forwarded-Port {frontend.public_port}",
            '  http-request set-var-fmt(txn.route) "%[req.hdr(host),field(1,:),lower]|%[method]|%[path]"',
            f"  http-request set-var(txn.slot) var(txn.route),map_reg_int({frontend.rules_map},0)",
            "  http-request set-var(txn.bucket) rand(" + str(BUCKETS) + "),add(txn.slot)",
            f"  use_backend %[var(txn.bucket),map_int({frontend.actions_map},{NO_ROUTE_BACKEND})]",
            f"  default_backend {NO_ROUTE_BACKEND}",
            "",
        ]
    for backend in layout.backends:
        health = backend.health
        lines += [f"backend {backend.name}", f"  balance {BALANCE.get(backend.algorithm, 'roundrobin')}"]
        if health.enabled:
            codes = "|".join(str(code) for code in health.status_codes())
            lines += [
                f"  option httpchk GET {health.path}",
                f"  http-check send hdr User-Agent {HEALTH_CHECK_AGENT}",
                f"  http-check expect rstatus ^({codes})$",
                f"  timeout check {health.timeout}s",
            ]
        # Admin states (drain, maint) and check results come back from the server-state file.
        for server in sorted(by_backend.get(backend.name, []), key=lambda s: s.name):
            lines.append(f"  server {server.name} {server.address}:{server.port} {check_options(health)}".rstrip())
        lines.append("")
    return "\n".join(lines)


def layout_for(listeners: Sequence[Listener], groups: Iterable[TargetGroup], ports: Mapping[str, int], paths: Paths) -> Layout:
    """The layout that carries these listeners (on the given loopback ports) and target groups."""
    fixed: dict[str, FixedBackend] = {}
    frontends = []
    for listener in listeners:
        frontends.append(
            Frontend(
                listener.frontend,
                ports[listener.arn],
                paths.rules_map(listener),
                paths.actions_map(listener),
                public_port=listener.port,
                protocol=listener.protocol or "HTTP",
            )
        )
        for action in [listener.default, *(rule.action for rule in listener.rules)]:
            if action.kind == "fixed-response":
                name = action_backend(action)
                fixed[name] = FixedBackend(name, action.status, action.content_type, action.body)
    return Layout(
        frontends=tuple(sorted(frontends, key=lambda f: f.name)),
        backends=tuple(sorted((backend_for(g) for g in groups), key=lambda b: b.name)),
        fixed=tuple(sorted(fixed.values(), key=lambda f: f.name)),
    )


# -- runtime API ----------------------------------------------------------------------------------
class Runtime:
    """HAProxy's runtime API on the worker's stats socket: one connection per command."""

    def __init__(self, path: Path, timeout: float = 5.0):
        self.path = path
        self.timeout = timeout

    def command(self, line: str, payload: str | None = None) -> str:
        request = line if payload is None else f"{line} <<\n{payload.rstrip(chr(10))}\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(str(self.path))
            sock.sendall(request.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def expect(self, line: str, success: str = "", payload: str | None = None) -> str:
        """A command that must answer ``success`` (a substring; empty: must answer nothing)."""
        answer = self.command(line, payload).strip()
        if (success and success.lower() not in answer.lower()) or (not success and answer):
            raise HAProxyError(f"haproxy refused {line!r}: {answer}")
        return answer

    def info(self) -> dict[str, str]:
        return dict(line.split(": ", 1) for line in self.command("show info").splitlines() if ": " in line)

    def servers(self) -> list[dict[str, str]]:
        """``show stat`` rows of servers (by column name)."""
        text = self.command("show stat -1 4 -1")
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines or not lines[0].startswith("# "):
            return []
        header = lines[0][2:].split(",")
        return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]

    def replace_map(self, path: str, text: str) -> None:
        """Swap a map's whole content atomically (requests see the old map or the new one)."""
        answer = self.expect(f"prepare map {path}", "new version created")
        match = re.search(r"(\d+)", answer)
        if not match:
            raise HAProxyError(f"haproxy did not create a map version: {answer.strip()}")
        version = match.group(1)
        if text.strip():
            self.expect(f"add map @{version} {path}", payload=text)
        self.expect(f"commit map @{version} {path}")

    def add_server(self, server: Server, health: HealthCheck) -> None:
        """A new target: added, checked from DOWN (ALB's ``initial``), then enabled.

        A dynamic server starts in maintenance; once enabled it would count as up
        before any check. Weight 0 keeps it from traffic until ``health down`` makes
        it wait for ``rise`` passing checks.
        """
        name = f"{server.backend}/{server.name}"
        self.expect(f"add server {name} {server.address}:{server.port} weight 0 {check_options(health)}".rstrip(), "new server registered")
        commands = []
        if health.enabled:
            commands += [f"enable health {name}", f"enable server {name}", f"set server {name} health down"]
        else:
            commands.append(f"enable server {name}")
        commands.append(f"set weight {name} 1")
        if server.admin != "ready":
            commands.append(f"set server {name} state {server.admin}")
        self.command("; ".join(commands))

    def set_state(self, backend: str, name: str, admin: str, recheck: bool = False) -> None:
        """Admin state; with ``recheck`` the server starts from DOWN again (``rise`` passing checks to be up)."""
        commands = [f"set server {backend}/{name} state {admin}"]
        if recheck:
            commands.insert(0, f"set server {backend}/{name} health down")
        self.command("; ".join(commands))

    def set_address(self, backend: str, name: str, address: str, port: int, recheck: bool) -> None:
        commands = [f"set server {backend}/{name} addr {address} port {port}"]
        if recheck:
            commands.append(f"set server {backend}/{name} health down")
        self.command("; ".join(commands))

    def remove_server(self, backend: str, name: str, force: bool = False) -> bool:
        """Maintenance, (cut its connections if ``force``), delete. False while it still has connections."""
        commands = [f"set server {backend}/{name} state maint"]
        if force:
            commands.append(f"shutdown sessions server {backend}/{name}")
        self.command("; ".join(commands))
        answer = self.command(f"del server {backend}/{name}")
        return "deleted" in answer.lower() or "no such server" in answer.lower()


# -- process ---------------------------------------------------------------------------------------
class Process:
    """The HAProxy master (``-W``, foreground) as a child of the daemon: started, reloaded, stopped."""

    def __init__(self, binary: str, paths: Paths):
        self.binary = binary
        self.paths = paths
        self.runtime = Runtime(paths.stats)
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def version(self) -> str:
        result = subprocess.run([self.binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
        match = re.search(r"version (\S+)", result.stdout)
        return match.group(1) if match else "unknown"

    def worker_pid(self) -> int | None:
        try:
            return int(self.runtime.info().get("Pid", ""))
        except (OSError, ValueError):
            return None

    def _wait_worker(self, other_than: int | None, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.popen.returncode if self.popen else "?"
                raise HAProxyError(f"haproxy exited with code {code} (its messages are in the sandbox log)")
            pid = self.worker_pid()
            if pid is not None and pid != other_than:
                return pid
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        raise HAProxyError(f"haproxy's worker did not answer on {self.paths.stats} within {timeout:.0f} s")

    def start(self, config: str, timeout: float = 10.0) -> int:
        self.paths.config.write_text(config)
        self.popen = subprocess.Popen(
            [self.binary, "-W", "-db", "-f", str(self.paths.config)],
            stdin=subprocess.DEVNULL,
            cwd=self.paths.directory,
        )
        return self._wait_worker(None, timeout)

    def reload(self, config: str, timeout: float = 10.0) -> int:
        """Hitless: save server states, validate, SIGUSR2 the master, wait for the new worker."""
        previous = self.worker_pid()
        state = self.runtime.command("show servers state")
        staged = self.paths.config.with_suffix(".next")
        staged.write_text(config)
        try:
            result = subprocess.run([self.binary, "-c", "-q", "-f", str(staged)], capture_output=True, text=True, timeout=30, check=False)
            if result.returncode != 0:
                raise HAProxyError(f"haproxy refused the new configuration: {(result.stderr or result.stdout).strip()[-2000:]}")
            self.paths.state.write_text(state)
            os.replace(staged, self.paths.config)
        finally:
            staged.unlink(missing_ok=True)
        assert self.popen is not None
        self.popen.send_signal(signal.SIGUSR2)
        try:
            return self._wait_worker(previous, timeout)
        except HAProxyError as error:
            raise ReloadFailed(f"{error}; the previous worker keeps serving") from None

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout)
