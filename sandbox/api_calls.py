"""Count the AWS API calls the sandbox answers, by service and action (for the benchmarks and tests).

``GET /_sandbox/api-calls`` returns ``{"total": n, "calls": {"elasticloadbalancing:ModifyListener": k, ...},
"applied": {...}}``: ``calls`` counts every request, ``applied`` those that reached the backend, that is all
but the ones the fault injector (:mod:`sandbox.faults`) rejected unprocessed (throttling, a 500 before
applying). ``DELETE /_sandbox/api-calls`` resets the counters.
"""

from __future__ import annotations

import io
import json
import re
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from .faults import ENVIRON_KEY

ROUTE = "/_sandbox/api-calls"
_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/")
_RPC_V2 = re.compile(r"^/service/[^/]+/operation/([^/]+)$")
REJECTED = ("throttling", "500-before")


def action_of(environ: dict[str, Any], body: bytes) -> str:
    """``service:Action`` of one AWS API request (query, JSON 1.x, RPC v2 or REST protocols)."""
    service = "unknown"
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        service = match.group(1)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    rpc = _RPC_V2.match(environ.get("PATH_INFO", ""))
    if rpc:
        return f"{service}:{rpc.group(1)}"
    fields = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if body and "json" not in environ.get("CONTENT_TYPE", ""):
        fields.update(urllib.parse.parse_qs(body.decode("utf-8", "replace")))
    if "Action" in fields:
        return f"{service}:{fields['Action'][0]}"
    return f"{service}:{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"


def counting(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    counts: Counter[str] = Counter()
    applied: Counter[str] = Counter()
    lock = threading.Lock()

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == ROUTE:
            with lock:
                if environ.get("REQUEST_METHOD") == "DELETE":
                    counts.clear()
                    applied.clear()
                body = json.dumps(
                    {"total": sum(counts.values()), "calls": dict(sorted(counts.items())), "applied": dict(sorted(applied.items()))}
                ).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path.startswith(("/_sandbox/", "/moto-api")):
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        action = action_of(environ, body)
        with lock:
            counts[action] += 1
        result = app(environ, start_response)
        if environ.get(ENVIRON_KEY) not in REJECTED:
            with lock:
                applied[action] += 1
        return result

    return application
