"""A bounded load loop on loopback: counts every request, per colour, and every failure.

It sends requests only to 127.0.0.0/8 (or localhost), at a fixed total rate,
for at most ``max_seconds`` and at most ``max_requests``, and stops by itself.
A request fails when it raises (connection refused or reset, timeout) or answers
5XX. Each answer of the sandbox's instances names its colour and version.

Each worker keeps its connection alive between requests (``keep_alive=True``, what
an ALB's clients do), or opens a new one per request (``keep_alive=False``): a
Kubernetes Service balances connections, not requests, so only new connections
follow a selector change, as with kube-proxy.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    started: float  # time.time() when the request was sent
    latency: float
    status: int  # 0 when the request raised
    color: str | None
    version: str | None
    error: str | None

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500


def loopback_only(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the load loop takes http://127.x.x.x:PORT URLs, not {url!r}")
    if parts.hostname != "localhost":
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            raise ValueError(f"the load loop sends traffic to loopback only, not {parts.hostname!r}") from None
        if not address.is_loopback:
            raise ValueError(f"the load loop sends traffic to loopback only, not {parts.hostname}")
    return parts


@dataclass
class LoadLoop:
    url: str
    rate: float = 200.0
    threads: int = 8
    max_seconds: float = 120.0
    max_requests: int = 100_000
    timeout: float = 15.0
    keep_alive: bool = True
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._parts = loopback_only(self.url)
        if not 0 < self.rate <= 2000 or not 0 < self.threads <= 64 or not 0 < self.max_seconds <= 3600:
            raise ValueError("rate must be 1-2000/s, threads 1-64, max_seconds at most 3600")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._sent = 0

    # -- running ---------------------------------------------------------------------
    def start(self) -> LoadLoop:
        self._deadline = time.monotonic() + self.max_seconds
        interval = self.threads / self.rate
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(interval, index * interval / self.threads), daemon=True, name=f"load-{index}")
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)
        return self.samples

    def __enter__(self) -> LoadLoop:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _take_turn(self) -> bool:
        with self._lock:
            if self._sent >= self.max_requests:
                return False
            self._sent += 1
            return True

    def _run(self, interval: float, offset: float) -> None:
        connection = None
        path = self._parts.path or "/"
        if self._parts.query:
            path += "?" + self._parts.query
        next_at = time.monotonic() + offset
        while not self._stop.is_set() and time.monotonic() < self._deadline and self._take_turn():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            next_at = max(next_at + interval, time.monotonic() - interval)
            if connection is None:
                connection = http.client.HTTPConnection(self._parts.hostname, self._parts.port or 80, timeout=self.timeout)
            started, began = time.time(), time.monotonic()
            try:
                connection.request("GET", path, headers={"Connection": "keep-alive" if self.keep_alive else "close"})
                response = connection.getresponse()
                body = response.read()
                sample = Sample(started, time.monotonic() - began, response.status, *_identity(body), None)
                if not self.keep_alive or response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                sample = Sample(started, time.monotonic() - began, 0, None, None, f"{type(exc).__name__}: {exc}")
                connection.close()
                connection = None
            with self._lock:
                self.samples.append(sample)
        if connection is not None:
            connection.close()


def _identity(body: bytes) -> tuple[str | None, str | None]:
    try:
        document = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    return document.get("color"), document.get("version")


# -- reading the samples ---------------------------------------------------------------------
def summarize(samples: list[Sample], since: float | None = None, until: float | None = None) -> dict[str, object]:
    chosen = [s for s in samples if (since is None or s.started >= since) and (until is None or s.started < until)]
    failed = [s for s in chosen if s.failed]
    span = (max(s.started for s in chosen) - min(s.started for s in chosen)) if len(chosen) > 1 else 0.0
    return {
        "requests": len(chosen),
        "failed": len(failed),
        "by_color": dict(Counter(s.color or "none" for s in chosen if not s.failed)),
        "by_version": dict(Counter(s.version or "none" for s in chosen if not s.failed)),
        "errors": dict(Counter(s.error or f"HTTP {s.status}" for s in failed)),
        "rate": round(len(chosen) / span, 1) if span else 0.0,
    }


def mixed_window(samples: list[Sample], old: str, new: str) -> float:
    """Seconds during which both ``old`` and ``new`` answered new requests (0 when the switch was clean).

    From the first request answered by ``new`` to the last request *sent* after it
    that ``old`` still answered.
    """
    ordered = sorted((s for s in samples if not s.failed), key=lambda s: s.started)
    first_new = next((s.started for s in ordered if s.color == new), None)
    if first_new is None:
        return 0.0
    last_old = max((s.started for s in ordered if s.color == old and s.started >= first_new), default=None)
    return round(last_old - first_new, 3) if last_old is not None else 0.0


def moved_at(samples: list[Sample], since: float, old: str, new: str) -> float | None:
    """When production was on ``new`` for good, as the load saw it: the send time of the first request after ``since``
    answered by ``new`` after which no request was answered by ``old`` (None when ``new`` never answered for good)."""
    ordered = sorted((s for s in samples if not s.failed and s.started >= since), key=lambda s: s.started)
    last_old = max((s.started for s in ordered if s.color == old), default=since)
    return next((s.started for s in ordered if s.color == new and s.started >= last_old), None)
