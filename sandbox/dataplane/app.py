"""One sandbox instance: a small HTTP server that serves the release it was launched with.

Run by the data plane as ``python -I -S app.py --fd N --control-fd M ...`` with two
listening sockets it already bound on loopback (no port race): the traffic socket
(what the target group's HAProxy backend sends requests and health checks to)
and a control socket only the sandbox talks to. Standard library only.

Traffic:
  ``GET /health``          200 ``ok`` (500 when the release or a control says fail_health)
  ``GET [/prefix]/slow?seconds=N``  answers after N seconds (a long request, for draining)
  anything else            200 JSON naming service, version, colour, instance id and path
Health checks are the requests whose User-Agent is ``ELB-HealthChecker/2.0`` (what
ALB sends, and what the sandbox's HAProxy sends) or ``kube-probe/...`` (a kubelet's
probe), or whose path is ``/health``.

On SIGTERM the process exits at once, unless ``--graceful`` (a pod of the
Kubernetes sandbox, like a well-behaved server): then it stops accepting
connections, closes idle keep-alive connections, answers what is in flight with
``Connection: close`` and exits when nothing is left in flight.

Release settings come from user data lines ``key=value`` (``export`` and quotes
allowed, other lines ignored): ``version``, ``fail_health``, ``error_rate`` (0..1: that
fraction of requests answer 500), ``delay_ms`` (added to every request) and
``health_delay_ms`` (added to health checks, to make them time out). The control
socket answers ``GET /`` (settings and counters) and ``POST /`` with a JSON object
of settings to change at run time (``{"reset": true}`` restores the release's).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HEALTH_CHECK_AGENT = "ELB-HealthChecker/2.0"
KUBE_PROBE_AGENT = "kube-probe/"
MAX_SLOW_SECONDS = 300.0
SETTINGS = ("fail_health", "error_rate", "delay_ms", "health_delay_ms")
_TRUE = {"1", "true", "yes", "on"}


def _setting(key: str, value: Any) -> Any:
    """A setting's value checked and converted; ValueError names the problem."""
    if key == "fail_health":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _TRUE | {"0", "false", "no", "off"}:
            return str(value).strip().lower() in _TRUE
        raise ValueError(f"fail_health must be true or false, not {value!r}")
    if key == "error_rate":
        rate = float(value)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1, not {value!r}")
        return rate
    if key in ("delay_ms", "health_delay_ms"):
        delay = int(float(value))
        if not 0 <= delay <= 600_000:
            raise ValueError(f"{key} must be between 0 and 600000, not {value!r}")
        return delay
    raise ValueError(f"unknown setting {key!r}; known: {', '.join(SETTINGS)}")


def parse_user_data(user_data: str | bytes | None) -> dict[str, str]:
    """``key=value`` lines of user data (base64 or plain), keys lower-cased."""
    if not user_data:
        return {}
    raw = user_data.encode() if isinstance(user_data, str) else user_data
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, _, value = line.partition("=")
        key = key.strip().lower()
        if key and key.replace("_", "").replace("-", "").isalnum():
            values[key.replace("-", "_")] = value.strip().strip("'\"")
    return values


def release(image_id: str | None, user_data: str | bytes | None) -> dict[str, Any]:
    """What an instance launched with this image and user data serves: version and settings.

    Unusable setting values are ignored (an instance still boots), not fatal.
    """
    values = parse_user_data(user_data)
    result: dict[str, Any] = {"version": values.get("version") or image_id or "unknown", "fail_health": False}
    result.update(error_rate=0.0, delay_ms=0, health_delay_ms=0)
    for key in SETTINGS:
        if key in values:
            with contextlib.suppress(ValueError):
                result[key] = _setting(key, values[key])
    return result


class Instance:
    """The instance's identity, settings and counters, shared by both servers' threads."""

    def __init__(self, identity: dict[str, Any], settings: dict[str, Any]):
        self.identity = identity
        self.release = {key: settings[key] for key in SETTINGS}
        self.settings = dict(self.release)
        self.lock = threading.Lock()
        self.counters = {"requests": 0, "health_checks": 0, "errors_injected": 0, "in_flight": 0}
        self.draining = False
        self.connections: dict[socket.socket, bool] = {}  # connection -> busy with a request (for a graceful stop)

    def count(self, key: str, delta: int = 1) -> None:
        with self.lock:
            self.counters[key] += delta

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        wanted = dict(self.release) if changes.get("reset") else dict(self.settings)
        for key, value in changes.items():
            if key != "reset":
                wanted[key] = _setting(key, value)
        with self.lock:
            self.settings = wanted
        return self.state()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {**self.identity, "pid": os.getpid(), "settings": dict(self.settings), "counters": dict(self.counters)}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cutover-sandbox-instance"
    instance: Instance

    def setup(self) -> None:
        super().setup()
        # One segment per response: without this Nagle and delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.instance.lock:
            self.instance.connections[self.connection] = False

    def finish(self) -> None:
        with self.instance.lock:
            self.instance.connections.pop(self.connection, None)
        with contextlib.suppress(OSError):
            super().finish()

    def parse_request(self) -> bool:
        with self.instance.lock:
            self.instance.connections[self.connection] = True
        return super().parse_request()

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, OSError, ValueError):  # checkers and proxies close as they please
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        identity = self.instance.identity
        self.send_header("X-Instance-Id", identity["instance_id"])
        self.send_header("X-Version", identity["version"])
        if self.instance.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        with self.instance.lock:
            self.instance.connections[self.connection] = False

    def _json(self, status: int, document: dict[str, Any]) -> None:
        self._send(status, json.dumps(document, sort_keys=True).encode() + b"\n")


class TrafficHandler(_Handler):
    def _serve(self) -> None:
        self._body()
        instance = self.instance
        url = urlsplit(self.path)
        settings = instance.settings
        agent = self.headers.get("User-Agent") or ""
        if agent == HEALTH_CHECK_AGENT or agent.startswith(KUBE_PROBE_AGENT) or url.path == "/health":
            instance.count("health_checks")
            if settings["health_delay_ms"]:
                time.sleep(settings["health_delay_ms"] / 1000)
            if settings["fail_health"]:
                self._send(500, b"failing\n", "text/plain")
            else:
                self._send(200, b"ok\n", "text/plain")
            return
        instance.count("requests")
        instance.count("in_flight")
        try:
            if settings["delay_ms"]:
                time.sleep(settings["delay_ms"] / 1000)
            document: dict[str, Any] = {**instance.identity, "path": url.path, "method": self.command}
            if url.path == "/slow" or url.path.endswith("/slow"):
                try:
                    seconds = float(parse_qs(url.query).get("seconds", ["5"])[0])
                except ValueError:
                    self._json(400, {**document, "error": "seconds must be a number"})
                    return
                seconds = min(max(seconds, 0.0), MAX_SLOW_SECONDS)
                time.sleep(seconds)
                document["slept"] = seconds
            if settings["error_rate"] and random.random() < settings["error_rate"]:  # noqa: S311 - fault injection, not crypto
                instance.count("errors_injected")
                self._json(500, {**document, "error": "injected failure"})
                return
            self._json(200, document)
        finally:
            instance.count("in_flight", -1)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class ControlHandler(_Handler):
    def do_GET(self) -> None:
        self._json(200, self.instance.state())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            changes = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of settings")
            self._json(200, self.instance.update(changes))
        except ValueError as exc:
            self._json(400, {"error": str(exc)})


def _server(fd: int, handler: type[_Handler]) -> ThreadingHTTPServer:
    sock = socket.socket(fileno=fd)
    server = ThreadingHTTPServer(sock.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()[:2]
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox instance")
    parser.add_argument("--fd", type=int, required=True, help="listening socket for traffic")
    parser.add_argument("--control-fd", type=int, required=True, help="listening socket for the sandbox's control calls")
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--image-id", default="")
    parser.add_argument("--color", default="")
    parser.add_argument("--service", default="")
    parser.add_argument("--user-data", default="", help="the instance's user data, base64")
    parser.add_argument("--graceful", action="store_true", help="on SIGTERM finish what is in flight, then exit")
    options = parser.parse_args(argv)
    settings = release(options.image_id, options.user_data)
    identity = {
        "instance_id": options.instance_id,
        "image_id": options.image_id,
        "version": settings["version"],
        "color": options.color,
        "service": options.service,
    }
    instance = Instance(identity, settings)
    traffic = type("Traffic", (TrafficHandler,), {"instance": instance})
    control = type("Control", (ControlHandler,), {"instance": instance})
    servers = [_server(options.fd, traffic), _server(options.control_fd, control)]

    stopping = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        if not options.graceful:
            raise SystemExit(0)
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    threading.Thread(target=servers[1].serve_forever, name="control", daemon=True).start()
    try:
        if not options.graceful:
            servers[0].serve_forever(poll_interval=0.5)
            return 0
        threading.Thread(target=servers[0].serve_forever, kwargs={"poll_interval": 0.1}, name="traffic", daemon=True).start()
        while not stopping.wait(0.5):
            pass
        drain(instance, servers[0])
    finally:
        for server in servers:
            server.socket.close()
    return 0


def drain(instance: Instance, server: ThreadingHTTPServer) -> None:
    """A graceful stop: no new connections, idle keep-alive ones closed, in-flight requests finished."""
    server.shutdown()
    server.socket.close()
    instance.draining = True
    while True:
        with instance.lock:
            idle = [conn for conn, busy in instance.connections.items() if not busy]
            busy = [conn for conn, working in instance.connections.items() if working]
        for conn in idle:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if not busy and instance.counters["in_flight"] == 0:
            return
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
