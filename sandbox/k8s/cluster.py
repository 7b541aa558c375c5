"""One node's worth of Kubernetes: the store, the controllers, the kubelet, the service proxy, events, control routes.

The control routes sit beside the API (``/_sandbox/...``, not Kubernetes paths):

  ``GET  /_sandbox/state``                         node, pods (address, processes), Services' loopback URLs, images
  ``GET  /_sandbox/pods/<ns>/<name>``              a pod's container (``?container=``): settings and request counters
  ``POST /_sandbox/pods/<ns>/<name>``              change them: ``{"fail_health": true, "error_rate": 0.3, "delay_ms": 200}``
  ``POST /_sandbox/pods/<ns>/<name>/kill``         SIGKILL the container's process (the kubelet restarts it after a back-off)
  ``GET  /_sandbox/images``                        per-image settings
  ``POST /_sandbox/images``                        ``{"image": "registry/app:v3", "fail_health": true}`` (``"reset": true`` clears)
  ``GET  /_sandbox/api-requests``                  the requests clients made to the API (``"<METHOD> <path>"``: count); ``DELETE`` resets
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import os
import random
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from . import errors
from .controllers import Controllers, pod_ready
from .kinds import BY_KEY
from .kubelet import SETTING_NAMES, Kubelet, flag
from .proxy import ServiceProxy
from .store import Store, timestamp

LOG = logging.getLogger("sandbox.k8s")
NODE_NAME = "cutover-sandbox"
NODE_CPU = "8"
NODE_MEMORY = "16Gi"
NODE_PODS = "110"
TICK = 0.5
EVENTS = BY_KEY["/events"]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Cluster:
    def __init__(self, state_dir: Path, binary: str | None = None, propagation: float | None = None):
        self.state_dir = Path(state_dir)
        self.store = Store()
        self.controllers = Controllers(self.store, self, NODE_NAME)
        self.kubelet = Kubelet(self.store, self, NODE_NAME, self.state_dir)
        kwargs = {} if propagation is None else {"propagation": propagation}
        self.proxy = ServiceProxy(self.store, self.state_dir, binary, **kwargs)
        self.store.subscribe(self._changed)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._events: dict[tuple[str, str, str], str] = {}

    # -- life ---------------------------------------------------------------------------------------------
    def bootstrap(self, api_host: str, api_port: int) -> None:
        store = self.store
        for name in SYSTEM_NAMESPACES:
            store.create(BY_KEY["/namespaces"], None, {"metadata": {"name": name}})
            store.create(BY_KEY["/serviceaccounts"], name, {"metadata": {"name": "default"}})
        store.create(
            BY_KEY["/nodes"],
            None,
            {
                "metadata": {
                    "name": NODE_NAME,
                    "labels": {
                        "kubernetes.io/hostname": NODE_NAME,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "node-role.kubernetes.io/control-plane": "",
                    },
                },
                "spec": {"podCIDR": "127.0.0.0/8"},
            },
        )
        resources = {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS}
        store.set_status(
            BY_KEY["/nodes"],
            None,
            NODE_NAME,
            {
                "capacity": dict(resources),
                "allocatable": dict(resources),
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE_NAME}],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": timestamp(),
                        "lastTransitionTime": timestamp(),
                    }
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.31.0-cutover-sandbox",
                    "kubeProxyVersion": "v1.31.0-cutover-sandbox",
                    "containerRuntimeVersion": "sandbox://local-processes",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "cutover sandbox",
                    "kernelVersion": os.uname().release,
                },
            },
        )
        # The API server's own Service, as every cluster has it.
        store.create(
            BY_KEY["/services"],
            "default",
            {
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": api_port}]},
            },
        )
        store.create(
            BY_KEY["/endpoints"],
            "default",
            {
                "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": api_host}], "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}],
            },
        )

    def start(self) -> None:
        self._wake = asyncio.Event()
        self.proxy.start()
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.kubelet.stop()
        self.proxy.stop()

    def _changed(self, _type: str, kind: Any, _old: Any, _new: Any) -> None:
        self.proxy.notice(kind.key)
        if kind is not EVENTS and self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK)
            self._wake.clear()
            try:
                self.controllers.sync()
                self.kubelet.sync()
            except Exception:
                LOG.exception("control loop pass failed (retrying)")
            await asyncio.sleep(0)

    # -- events --------------------------------------------------------------------------------------------
    def record(self, obj: dict[str, Any], reason: str, message: str, kind: str = "Normal", component: str = "sandbox") -> None:
        """An Event about ``obj``; a repeat of the same reason and message counts up, as Kubernetes aggregates them."""
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        if self.store.peek(BY_KEY["/namespaces"], None, namespace) is None:
            return
        uid = metadata.get("uid", "")
        key = (uid, reason, message)
        stamp = timestamp()
        name = self._events.get(key)
        existing = self.store.get(EVENTS, namespace, name) if name else None
        try:
            if existing is not None:
                existing["count"] = int(existing.get("count", 1)) + 1
                existing["lastTimestamp"] = stamp
                self.store.write(EVENTS, existing)
                return
            seed = f"{uid}{reason}{message}{random.random()}".encode()  # noqa: S311 - a name, not a secret
            name = f"{metadata.get('name', 'object')}.{hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:16]}"
            self._events[key] = name
            involved = {
                "kind": obj.get("kind", ""),
                "namespace": metadata.get("namespace"),
                "name": metadata.get("name"),
                "uid": uid,
                "apiVersion": obj.get("apiVersion", ""),
                "resourceVersion": metadata.get("resourceVersion", ""),
            }
            self.store.create(
                EVENTS,
                namespace,
                {
                    "metadata": {"name": name, "namespace": namespace},
                    "involvedObject": {k: v for k, v in involved.items() if v is not None},
                    "reason": reason,
                    "message": message,
                    "source": {"component": component, "host": NODE_NAME} if component == "kubelet" else {"component": component},
                    "firstTimestamp": stamp,
                    "lastTimestamp": stamp,
                    "count": 1,
                    "type": kind,
                    "eventTime": None,
                    "reportingComponent": component,
                    "reportingInstance": NODE_NAME if component == "kubelet" else "",
                },
            )
        except errors.ApiError:
            pass

    # -- for the API ---------------------------------------------------------------------------------------
    def pod_log(self, pod: dict[str, Any], container: str) -> str:
        path = self.kubelet.log_path(pod["metadata"]["namespace"], pod["metadata"]["name"], container)
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def service_endpoint(self, service: dict[str, Any], port: str) -> tuple[str, int] | None:
        """A ready endpoint of a Service's port (by number or name), as the API server's service proxy picks one."""
        spec = service.get("spec") or {}
        chosen = None
        for entry in spec.get("ports") or []:
            if not port or str(entry.get("port")) == port or entry.get("name") == port:
                chosen = entry
                break
        if chosen is None:
            return None
        endpoints = self.store.peek(BY_KEY["/endpoints"], service["metadata"]["namespace"], service["metadata"]["name"]) or {}
        candidates = []
        for subset in endpoints.get("subsets") or []:
            match = next((p for p in subset.get("ports") or [] if (p.get("name") or "") == (chosen.get("name") or "")), None)
            if match is None:
                continue
            candidates += [(a["ip"], int(match["port"])) for a in subset.get("addresses") or []]
        return random.choice(candidates) if candidates else None  # noqa: S311

    def pod_address(self, pod: dict[str, Any], port: str) -> tuple[str, int] | None:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return None
        if port.isdigit():
            return ip, int(port)
        for container in (pod.get("spec") or {}).get("containers") or []:
            for entry in container.get("ports") or []:
                if not port or entry.get("name") == port:
                    return ip, int(entry["containerPort"])
        return None

    # -- control routes ------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        pods = self.kubelet.describe()
        ready = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": pod_ready(p) for p in self.store.items(BY_KEY["/pods"])}
        for key, entry in pods["pods"].items():
            entry["ready"] = ready.get(key, False)
        return {"node": NODE_NAME, "resource_version": self.store.rv, **pods, **self.proxy.describe()}

    async def pod_control(
        self, namespace: str, name: str, action: str, changes: dict[str, Any] | None, container: str | None
    ) -> tuple[int, dict[str, Any]]:
        runtime = self.kubelet.find(namespace, name)
        if runtime is None:
            return 404, {
                "error": f"no pod {namespace}/{name} runs on the node; pods: {', '.join(sorted(self.kubelet.describe()['pods'])) or 'none'}"
            }
        chosen = next((c for c in runtime.containers if container in (None, c.name)), None)
        if chosen is None:
            return 404, {"error": f"pod {namespace}/{name} has no container {container}"}
        if action == "kill":
            if chosen.popen is None or chosen.popen.poll() is not None:
                return 409, {"error": f"container {chosen.name} of pod {namespace}/{name} is not running"}
            pid = chosen.popen.pid
            chosen.signal(signal.SIGKILL)
            LOG.warning("pod %s/%s container %s: process %d killed on request", namespace, name, chosen.name, pid)
            return 200, {"pod": f"{namespace}/{name}", "container": chosen.name, "killed": pid}
        return await asyncio.to_thread(chosen.control, changes if action == "settings" else None)

    def set_image(self, changes: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        image = changes.get("image")
        if not isinstance(image, str) or not image:
            return 400, {"error": 'give the image reference as "image"'}
        settings = {} if changes.get("reset") else dict(self.kubelet.images.get(image, {}))
        for key, value in changes.items():
            if key in ("image", "reset"):
                continue
            if key not in SETTING_NAMES or (key == "shutdown" and str(value) not in ("graceful", "immediate")):
                return 400, {"error": f"unknown image setting {key}={value!r}; known: {', '.join(SETTING_NAMES)}"}
            settings[key] = flag(value) if key in ("fail_health", "crash", "pull_error") else value
        if settings:
            self.kubelet.images[image] = settings
        else:
            self.kubelet.images.pop(image, None)
        return 200, {"image": image, "settings": settings}

    def routes(self, app: web.Application) -> None:
        cluster = self

        async def state(_request: web.Request) -> web.Response:
            return web.json_response(cluster.describe())

        async def pod(request: web.Request) -> web.Response:
            action = request.match_info.get("action") or ("settings" if request.method == "POST" else "show")
            if action not in ("settings", "show", "kill"):
                return web.json_response({"error": f"unknown action {action}"}, status=404)
            changes = None
            if action == "settings":
                try:
                    changes = json.loads(await request.read() or b"{}")
                except ValueError:
                    changes = None
                if not isinstance(changes, dict):
                    return web.json_response({"error": "the body must be a JSON object of settings"}, status=400)
            status, document = await cluster.pod_control(
                request.match_info["namespace"], request.match_info["name"], action, changes, request.query.get("container")
            )
            return web.json_response(document, status=status)

        async def images(request: web.Request) -> web.Response:
            if request.method == "GET":
                return web.json_response(copy.deepcopy(cluster.kubelet.images))
            try:
                changes = json.loads(await request.read() or b"{}")
            except ValueError:
                changes = None
            if not isinstance(changes, dict):
                return web.json_response({"error": "the body must be a JSON object"}, status=400)
            status, document = cluster.set_image(changes)
            return web.json_response(document, status=status)

        app.router.add_get("/_sandbox/state", state)
        app.router.add_route("*", "/_sandbox/pods/{namespace}/{name}", pod)
        app.router.add_post("/_sandbox/pods/{namespace}/{name}/{action}", pod)
        app.router.add_route("*", "/_sandbox/images", images)
