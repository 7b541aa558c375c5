"""Client side of the Kubernetes sandbox's control routes (``/_sandbox/...``): Service URLs, pods, images.

Standard library only; used by ``python -m sandbox urls|pod|image`` and by tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..dataplane.control import ControlError, call
from .proxy import STATE_FILE
from .server import SUBDIRECTORY


def state(endpoint: str) -> dict[str, Any]:
    return call(endpoint, "state")


def service_urls(directory: str | Path) -> dict[str, dict[str, str]]:
    """``namespace/name`` -> Service port -> its loopback URL, from the state file (no call)."""
    try:
        document = json.loads((Path(directory) / SUBDIRECTORY / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {key: {port: entry["url"] for port, entry in service["ports"].items()} for key, service in document.get("services", {}).items()}


def wait_service(endpoint: str, namespace: str, name: str, port: int | None = None, endpoints: int = 1, timeout: float = 60.0) -> str:
    """Wait until HAProxy routes the Service's port to at least ``endpoints`` ready pods; its loopback URL."""
    began = time.monotonic()
    delay = 0.1
    while True:
        service = state(endpoint).get("services", {}).get(f"{namespace}/{name}")
        if service:
            chosen = service["ports"].get(str(port)) if port is not None else next(iter(service["ports"].values()), None)
            if chosen and len(chosen["endpoints"]) >= endpoints:
                return chosen["url"]
        if time.monotonic() - began > timeout:
            raise ControlError(f"Service {namespace}/{name} did not reach {endpoints} endpoint(s) within {timeout:.0f} s: {service}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def pod(endpoint: str, namespace: str, name: str, action: str = "show", container: str | None = None, **settings: Any) -> dict[str, Any]:
    """``show``, ``settings`` (keyword arguments are the settings) or ``kill`` one pod's container."""
    query = f"?container={container}" if container else ""
    if action == "show":
        return call(endpoint, f"pods/{namespace}/{name}{query}")
    if action == "settings":
        return call(endpoint, f"pods/{namespace}/{name}{query}", settings)
    if action == "kill":
        return call(endpoint, f"pods/{namespace}/{name}/kill{query}", method="POST")
    raise ValueError(f"unknown pod action {action!r}: show, settings or kill")


def api_requests(endpoint: str, reset: bool = False) -> dict[str, Any]:
    """The requests clients made to the API since the last reset (``{"total", "requests"}``); ``reset`` clears them."""
    return call(endpoint, "api-requests", method="DELETE" if reset else "GET")


def image(endpoint: str, reference: str, **settings: Any) -> dict[str, Any]:
    """Set what pods of an image do (``fail_health``, ``error_rate``, ``delay_ms``, ``crash``, ``pull_error``...)."""
    return call(endpoint, "images", {"image": reference, **settings})


__all__ = ["ControlError", "api_requests", "image", "pod", "service_urls", "state", "wait_service"]
