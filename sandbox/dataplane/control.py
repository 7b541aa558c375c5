"""Client side of the data plane: its state file, its control endpoint, waiting for it to settle.

Used by ``python -m sandbox urls|instance`` and by tests; standard library only.
The daemon serves the control endpoint next to the AWS API:

  ``GET  /_sandbox/dataplane``                  listeners' loopback URLs, instances, targets, ``settled``
  ``GET  /_sandbox/instances/<id>``             an instance's settings and request counters
  ``POST /_sandbox/instances/<id>``             change its settings: ``{"fail_health": true, "error_rate": 0.3,
                                                 "delay_ms": 200, "health_delay_ms": 0}`` or ``{"reset": true}``
  ``POST /_sandbox/instances/<id>/kill``        SIGKILL its process (not restarted: its targets go unhealthy)
  ``POST /_sandbox/instances/<id>/restart``     a fresh process (new port; checks start from down)
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import STATE_FILE


class ControlError(RuntimeError):
    """The control endpoint refused a call or the data plane did not settle."""


def read_state(directory: str | Path) -> dict[str, Any]:
    """``dataplane.json`` from a sandbox state directory (empty when the data plane is off)."""
    try:
        return json.loads((Path(directory) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def listener_urls(directory: str | Path) -> dict[str, str]:
    """Listener ARN -> its loopback URL."""
    return {arn: listener["url"] for arn, listener in read_state(directory).get("listeners", {}).items()}


def call(endpoint: str, path: str, body: dict[str, Any] | None = None, method: str | None = None, timeout: float = 10) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    if not endpoint.startswith("http://"):
        raise ValueError(f"the sandbox endpoint is http://127.0.0.1:PORT, not {endpoint!r}")
    request = urllib.request.Request(  # noqa: S310 - checked above: http only
        f"{endpoint.rstrip('/')}/_sandbox/{path.lstrip('/')}",
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the sandbox on loopback
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", "")
        except ValueError:
            message = ""
        raise ControlError(f"{method or 'GET'} /_sandbox/{path}: {error.code} {message or error.reason}") from None


def dataplane(endpoint: str) -> dict[str, Any]:
    return call(endpoint, "dataplane")


def instance(endpoint: str, instance_id: str, action: str = "show", **settings: Any) -> dict[str, Any]:
    """``show``, ``settings`` (keyword arguments are the settings), ``kill`` or ``restart`` one instance."""
    if action == "show":
        return call(endpoint, f"instances/{instance_id}")
    if action == "settings":
        return call(endpoint, f"instances/{instance_id}", settings)
    if action in ("kill", "restart"):
        return call(endpoint, f"instances/{instance_id}/{action}", method="POST")
    raise ValueError(f"unknown instance action {action!r}: show, settings, kill or restart")


def wait_settled(endpoint: str, timeout: float = 60.0) -> tuple[dict[str, Any], float]:
    """Wait until every listener has its URL and no registered target is still ``initial``."""
    began = time.monotonic()
    delay = 0.1
    while True:
        state = dataplane(endpoint)
        if state.get("settled"):
            return state, time.monotonic() - began
        if time.monotonic() - began > timeout:
            pending = [f"{t['id']} ({t['state']})" for group in state.get("targets", {}).values() for t in group if t["state"] == "initial"]
            raise ControlError(f"the data plane did not settle within {timeout:.0f} s; still initial: {', '.join(pending) or 'none'}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
