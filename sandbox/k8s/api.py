"""The Kubernetes API over HTTP (aiohttp): discovery, CRUD, watch, patch, subresources, Status errors.

Paths are Kubernetes' own: ``/api/v1/...`` and ``/apis/<group>/<version>/...``,
``[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]``, the legacy
``/watch/`` prefix, and the discovery documents (``/api``, ``/apis``,
``/apis/<group>``, each group-version's resource list, ``/version``). JSON only
(no protobuf, no Table output); server-side apply is refused with 415.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from . import errors, kinds, patching, validation
from .kinds import Kind
from .selectors import SelectorError, match_label_selector, parse_fields, parse_labels, selector_string
from .store import Store, Watcher, translate

if TYPE_CHECKING:
    from .cluster import Cluster

LOG = logging.getLogger("sandbox.k8s.api")
SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-cutover-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
WATCH_TIMEOUT = 1800
BOOKMARK_EVERY = 10.0
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
}


def _dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def respond(document: Any, status: int = 200) -> web.Response:
    return web.json_response(document, status=status, dumps=_dumps)


def error_response(error: errors.ApiError) -> web.Response:
    return respond(error.status(), error.code)


@dataclass(frozen=True)
class Target:
    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None
    rest: str
    watch: bool


def parse_path(group: str, version: str, segments: list[str]) -> Target:
    """Which resource, namespace, name and subresource a path under a group-version names."""
    watch = False
    if segments and segments[0] == "watch":
        watch, segments = True, segments[1:]
    if not segments:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    namespace = None
    if len(segments) >= 3 and segments[0] == "namespaces":
        kind = kinds.find(group, version, segments[2])
        if kind is not None and kind.namespaced:
            namespace, segments = segments[1], segments[2:]
    kind = kinds.find(group, version, segments[0])
    if kind is None:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    if kind.namespaced and namespace is None and len(segments) > 1:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    name = segments[1] if len(segments) > 1 else None
    subresource = segments[2] if len(segments) > 2 else None
    rest = "/".join(segments[3:])
    if subresource is not None and subresource not in kind.subresources:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    if subresource != "proxy" and rest:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    return Target(kind, namespace, name, subresource, rest, watch)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _dry_run(request: web.Request, body: Any = None) -> bool:
    values = request.query.getall("dryRun", [])
    if isinstance(body, dict) and body.get("dryRun"):
        values = values + list(body["dryRun"])
    for value in values:
        if value != "All":
            raise errors.bad_request(f'Invalid dryRun value: "{value}"; the only supported value is "All"')
    return bool(values)


def _list_kind(kind: Kind) -> str:
    return f"{kind.kind}List"


class Api:
    def __init__(self, store: Store, cluster: Cluster, address: str):
        self.store = store
        self.cluster = cluster
        self.address = address
        self.session: ClientSession | None = None
        # Requests of clients to the API (not the probes, not the control routes), as the AWS sandbox counts its
        # calls: "<METHOD> <path>" -> count; GET /_sandbox/api-requests reads them, DELETE resets them.
        self.requests: Counter[str] = Counter()

    # -- application -----------------------------------------------------------------------------------
    def app(self, extra_routes: Callable[[web.Application], None] | None = None) -> web.Application:
        app = web.Application(middlewares=[self._count, self._errors], client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/_sandbox/api-requests", self.api_requests)
        app.router.add_get("/", self.root)
        for path, handler in (("/version", self.version), ("/api", self.api_versions), ("/apis", self.api_groups)):
            app.router.add_get(path, handler)
            app.router.add_get(path + "/", handler)  # the client asks for /version/
        for probe in ("/healthz", "/livez", "/readyz"):
            app.router.add_get(probe, self.healthz)
        app.router.add_get("/apis/{group}", self.api_group)
        if extra_routes is not None:
            extra_routes(app)
        app.router.add_route("*", "/api/{version}", self.core_version)
        app.router.add_route("*", "/api/{version}/{path:.*}", self.core)
        app.router.add_route("*", "/apis/{group}/{version}", self.group_version)
        app.router.add_route("*", "/apis/{group}/{version}/{path:.*}", self.grouped)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    @web.middleware
    async def _count(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path.startswith(("/api/", "/apis/")) or request.path in ("/api", "/apis", "/version", "/version/"):
            self.requests[f"{request.method} {request.path}"] += 1
        return await handler(request)

    async def api_requests(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            self.requests.clear()
        elif request.method != "GET":
            raise errors.ApiError(405, "MethodNotAllowed", "GET or DELETE")
        return web.json_response({"total": sum(self.requests.values()), "requests": dict(self.requests)})

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.ApiError as error:
            return error_response(error)
        except web.HTTPNotFound:
            return error_response(errors.ApiError(404, "NotFound", "the server could not find the requested resource"))
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            LOG.exception("%s %s failed", request.method, request.path_qs)
            return error_response(errors.ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    # -- discovery ---------------------------------------------------------------------------------------
    async def root(self, _request: web.Request) -> web.Response:
        paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
        for group, versions in kinds.groups().items():
            if group:
                paths.append(f"/apis/{group}")
                paths += [f"/apis/{group}/{v}" for v in versions]
        return respond({"paths": sorted(paths)})

    async def version(self, _request: web.Request) -> web.Response:
        return respond(SERVER_VERSION)

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def api_versions(self, _request: web.Request) -> web.Response:
        return respond(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}],
            }
        )

    @staticmethod
    def _group(name: str, versions: list[str]) -> dict[str, Any]:
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": entries, "preferredVersion": dict(entries[0])}

    async def api_groups(self, _request: web.Request) -> web.Response:
        groups = [self._group(name, versions) for name, versions in kinds.groups().items() if name]
        return respond({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def api_group(self, request: web.Request) -> web.Response:
        versions = kinds.groups().get(request.match_info["group"])
        if not versions or not request.match_info["group"]:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        return respond({"kind": "APIGroup", "apiVersion": "v1", **self._group(request.match_info["group"], versions)})

    def _resource_list(self, group: str, version: str) -> web.Response:
        found = kinds.in_group_version(group, version)
        if not found:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        resources = [entry for kind in found for entry in kind.discovery()]
        return respond({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": found[0].api_version, "resources": resources})

    async def core_version(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise errors.method_not_allowed(f"the server does not allow this method on the requested resource: {request.method}")
        return self._resource_list("", request.match_info["version"])

    async def group_version(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise errors.method_not_allowed(f"the server does not allow this method on the requested resource: {request.method}")
        return self._resource_list(request.match_info["group"], request.match_info["version"])

    # -- resources -----------------------------------------------------------------------------------------
    async def core(self, request: web.Request) -> web.StreamResponse:
        if not request.match_info["path"]:  # /api/v1/
            return await self.core_version(request)
        return await self._dispatch(request, parse_path("", request.match_info["version"], request.match_info["path"].split("/")))

    async def grouped(self, request: web.Request) -> web.StreamResponse:
        if not request.match_info["path"]:  # /apis/apps/v1/
            return await self.group_version(request)
        return await self._dispatch(
            request, parse_path(request.match_info["group"], request.match_info["version"], request.match_info["path"].split("/"))
        )

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        content_type = (request.headers.get("Content-Type") or "application/json").split(";", 1)[0].strip().lower()
        if "protobuf" in content_type:
            raise errors.unsupported_media_type("application/json, application/yaml")
        try:
            if content_type.endswith("yaml"):
                import yaml

                return yaml.safe_load(raw)
            return json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None

    async def _dispatch(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        kind, sub = target.kind, target.subresource
        if target.watch and method != "GET":
            raise errors.method_not_allowed("watch takes GET")
        if sub == "proxy":
            return await self.proxy(request, target)
        if sub == "log" and method == "GET":
            return await self.pod_log(request, target)
        if sub == "eviction":
            if method != "POST":
                raise errors.method_not_allowed("eviction takes POST")
            return await self.evict(request, target, await self._body(request))
        if method == "GET":
            if target.name is None:
                if target.watch or _flag(request.query.get("watch")):
                    return await self.watch(request, target)
                return self.list(request, target)
            if target.watch:
                return await self.watch(request, target, name=target.name)
            obj = self.store.require(kind, target.namespace, target.name)
            if sub == "scale":
                return respond(scale_of(kind, obj))
            return respond(obj)
        if kind.verbs == kinds.READ_ONLY and method != "GET":
            raise errors.method_not_allowed(f"{method} is not allowed on {kind.plural} in the sandbox (its node is built in)")
        if method == "POST":
            if target.name is not None:
                raise errors.method_not_allowed(
                    f"the server does not allow this method on the requested resource: POST {kind.plural}/{target.name}"
                )
            body = await self._body(request)
            created = self.store.create(kind, target.namespace, body, dry_run=_dry_run(request))
            return respond(created, 201)
        if method == "PUT":
            if target.name is None:
                raise errors.method_not_allowed("PUT needs a name")
            body = await self._body(request)
            if sub == "scale":
                return respond(self.put_scale(target, body, _dry_run(request)))
            if kind.key == "/namespaces" and sub == "finalize":
                sub = None
            result = self.store.replace(kind, target.namespace, target.name, body, subresource=sub, dry_run=_dry_run(request))
            return respond(result)
        if method == "PATCH":
            if target.name is None:
                raise errors.method_not_allowed("PATCH needs a name")
            return respond(await self.patch(request, target))
        if method == "DELETE":
            body = await self._body(request)
            if target.name is None:
                return self.delete_collection(request, target, body)
            return self.delete(request, target, body)
        raise errors.method_not_allowed(f"the server does not allow this method on the requested resource: {method}")

    def _selectors(self, request: web.Request, kind: Kind) -> tuple[tuple, tuple]:
        try:
            labels = parse_labels(request.query.get("labelSelector"))
            fields = parse_fields(request.query.get("fieldSelector"), kind.key, kind.kind)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        return labels, fields

    def list(self, request: web.Request, target: Target) -> web.Response:
        kind = target.kind
        labels, fields = self._selectors(request, kind)
        items = self.store.list(kind, target.namespace, labels, fields)
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        token = request.query.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start = state["start"]
                metadata["resourceVersion"] = str(state["rv"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("continue key is not valid: illegal base64 data") from None
            items = [i for i in items if f"{i['metadata'].get('namespace', '')}/{i['metadata']['name']}" > start]
        limit = int(request.query.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            state = {"rv": int(metadata["resourceVersion"]), "start": f"{last.get('namespace', '')}/{last['name']}"}
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return respond({"kind": _list_kind(kind), "apiVersion": kind.api_version, "metadata": metadata, "items": items})

    async def watch(self, request: web.Request, target: Target, name: str | None = None) -> web.StreamResponse:
        kind = target.kind
        labels, fields = self._selectors(request, kind)
        timeout = float(request.query.get("timeoutSeconds") or WATCH_TIMEOUT)
        bookmarks = _flag(request.query.get("allowWatchBookmarks"))
        since = request.query.get("resourceVersion") or ""
        watcher = Watcher(kind, target.namespace, labels, fields, name=name)
        if since not in ("", "0"):
            try:
                rv = int(since)
            except ValueError:
                raise errors.bad_request(f'resourceVersion: Invalid value: "{since}": must be an integer') from None
            changes = self.store.since(kind, rv)
            if changes is None:
                initial: list[dict[str, Any]] = [
                    {"type": "ERROR", "object": errors.gone(f"too old resource version: {rv} ({self.store.history[0].rv - 1})").status()}
                ]
            else:
                initial = [e for c in changes if (e := translate(watcher, c.type, c.old, c.new)) is not None]
        else:
            initial = [
                {"type": "ADDED", "object": obj} for obj in self.store.list(kind, target.namespace, labels, fields) if watcher.matches(obj)
            ]
        self.store.watchers.add(watcher)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            for event in initial:
                await response.write((_dumps(event) + "\n").encode())
            if initial and initial[0]["type"] == "ERROR":
                return response
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), min(remaining, BOOKMARK_EVERY))
                except TimeoutError:
                    if bookmarks:
                        mark = {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": {"resourceVersion": str(self.store.rv)}}
                        await response.write((_dumps({"type": "BOOKMARK", "object": mark}) + "\n").encode())
                    continue
                await response.write((_dumps(event) + "\n").encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.watchers.discard(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def patch(self, request: web.Request, target: Target) -> dict[str, Any]:
        kind, sub = target.kind, target.subresource
        content_type = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type == patching.APPLY:
            raise errors.unsupported_media_type(", ".join(patching.CONTENT_TYPES) + " (the sandbox does not implement server-side apply)")
        if content_type not in patching.CONTENT_TYPES:
            raise errors.unsupported_media_type(", ".join(patching.CONTENT_TYPES))
        raw = await request.read()
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise errors.bad_request(f"the patch is not valid JSON: {exc}") from None
        dry_run = _dry_run(request)
        current = self.store.require(kind, target.namespace, target.name or "")
        if sub == "scale":
            scale = scale_of(kind, current)
            try:
                patched = patching.apply(content_type, scale, body, {})
            except patching.PatchError as exc:
                raise errors.ApiError(422, "Invalid", str(exc)) from None
            return self.put_scale(target, patched, dry_run)
        try:
            patched = patching.apply(content_type, copy.deepcopy(current), body, kinds.merge_keys(kind))
        except patching.PatchError as exc:
            code = 422 if content_type == patching.JSON_PATCH else 400
            raise errors.ApiError(code, "Invalid" if code == 422 else "BadRequest", str(exc)) from None
        patched_meta = patched.get("metadata") if isinstance(patched.get("metadata"), dict) else {}
        if patched_meta.get("resourceVersion") in (None, ""):
            patched.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.store.replace(kind, target.namespace, target.name or "", patched, subresource=sub, dry_run=dry_run)

    def put_scale(self, target: Target, body: Any, dry_run: bool) -> dict[str, Any]:
        kind = target.kind
        if not isinstance(body, dict):
            raise errors.bad_request("the body must be a Scale object")
        current = self.store.require(kind, target.namespace, target.name or "")
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_rv not in (None, "") and str(wanted_rv) != current["metadata"]["resourceVersion"]:
            raise errors.conflict(kind, target.name or "")
        replicas = (body.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                kinds.Kind("autoscaling", "v1", "scale", "Scale"),
                target.name or "",
                [validation.invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
            )
        current.setdefault("spec", {})["replicas"] = replicas
        updated = self.store.replace(kind, target.namespace, target.name or "", current, dry_run=dry_run)
        return scale_of(kind, updated)

    def _delete_options(self, request: web.Request, body: Any) -> tuple[int | None, str | None, dict[str, Any]]:
        body = body if isinstance(body, dict) else {}
        grace = request.query.get("gracePeriodSeconds")
        grace_value = int(grace) if grace not in (None, "") else body.get("gracePeriodSeconds")
        propagation = request.query.get("propagationPolicy") or body.get("propagationPolicy")
        if propagation not in (None, "Orphan", "Background", "Foreground"):
            raise errors.bad_request(
                f'propagationPolicy: Unsupported value: "{propagation}": supported values: "Foreground", "Background", "Orphan"'
            )
        if body.get("orphanDependents") is True:
            propagation = "Orphan"
        return grace_value, propagation, body.get("preconditions") or {}

    def delete(self, request: web.Request, target: Target, body: Any) -> web.Response:
        kind = target.kind
        grace, propagation, preconditions = self._delete_options(request, body)
        result, gone = self.store.delete(
            kind, target.namespace, target.name or "", grace, propagation, preconditions, dry_run=_dry_run(request, body)
        )
        if gone and kind.key != "/pods":
            details = {"name": target.name, "kind": kind.plural, "uid": result["metadata"]["uid"]}
            if kind.group:
                details["group"] = kind.group
            return respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
        return respond(result)

    def delete_collection(self, request: web.Request, target: Target, body: Any) -> web.Response:
        kind = target.kind
        labels, fields = self._selectors(request, kind)
        grace, propagation, _ = self._delete_options(request, body)
        dry_run = _dry_run(request, body)
        deleted = []
        for obj in self.store.list(kind, target.namespace, labels, fields):
            with contextlib.suppress(errors.ApiError):
                result, _ = self.store.delete(
                    kind, obj["metadata"].get("namespace"), obj["metadata"]["name"], grace, propagation, dry_run=dry_run
                )
                deleted.append(result)
        return respond(
            {
                "kind": _list_kind(kind),
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": deleted,
            }
        )

    # -- pods: eviction, logs; proxies ---------------------------------------------------------------------
    async def evict(self, request: web.Request, target: Target, body: Any) -> web.Response:
        if target.kind.key != "/pods" or not target.name:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        pod = self.store.require(target.kind, target.namespace, target.name)
        pdb_kind = kinds.BY_KEY["policy/poddisruptionbudgets"]
        labels = pod["metadata"].get("labels") or {}
        ready = _pod_ready(pod)
        for pdb in self.store.list(pdb_kind, target.namespace):
            if not match_label_selector((pdb.get("spec") or {}).get("selector"), labels):
                continue
            status = pdb.get("status") or {}
            if ready and status.get("disruptionsAllowed", 0) < 1:
                message = (
                    f"The disruption budget {pdb['metadata']['name']} needs {status.get('desiredHealthy', 0)} healthy pods "
                    f"and has {status.get('currentHealthy', 0)} currently"
                )
                raise errors.too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    {"causes": [{"reason": "DisruptionBudget", "message": message}]},
                )
            if ready:
                status = dict(status)
                status["disruptionsAllowed"] = status.get("disruptionsAllowed", 0) - 1
                disrupted = dict(status.get("disruptedPods") or {})
                disrupted[target.name] = _now_text()
                status["disruptedPods"] = disrupted
                self.store.set_status(pdb_kind, target.namespace, pdb["metadata"]["name"], status)
        options = (body or {}).get("deleteOptions") or {}
        grace, _, preconditions = self._delete_options(request, options)
        self.store.delete(target.kind, target.namespace, target.name, grace, None, preconditions, dry_run=_dry_run(request))
        return respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)

    async def pod_log(self, request: web.Request, target: Target) -> web.Response:
        pod = self.store.require(target.kind, target.namespace, target.name or "")
        container = request.query.get("container")
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        if container is None:
            if len(names) != 1:
                raise errors.bad_request(f"a container name must be specified for pod {target.name}, choose one of: [{' '.join(names)}]")
            container = names[0]
        if container not in names:
            raise errors.bad_request(f"container {container} is not valid for pod {target.name}")
        return web.Response(text=self.cluster.pod_log(pod, container), content_type="text/plain")

    async def proxy(self, request: web.Request, target: Target) -> web.StreamResponse:
        """``services/<name>[:port]/proxy/...`` and ``pods/<name>[:port]/proxy/...``: the API server's proxy."""
        raw_name = target.name or ""
        parts = raw_name.split(":")
        if len(parts) == 3:
            parts = parts[1:]
        name, port = parts[0], (parts[1] if len(parts) > 1 else "")
        obj = self.store.require(target.kind, target.namespace, name)
        if target.kind.key == "/services":
            address = self.cluster.service_endpoint(obj, port)
            if address is None:
                raise errors.ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
        else:
            address = self.cluster.pod_address(obj, port)
            if address is None:
                raise errors.ApiError(503, "ServiceUnavailable", f'pod "{name}" has no address or port {port or "(first)"}')
        url = f"http://{address[0]}:{address[1]}/{target.rest}"
        if self.session is None:
            self.session = ClientSession(timeout=ClientTimeout(total=60), auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | {"authorization", "content-length"}}
        try:
            async with self.session.request(
                request.method, url, params=request.query, headers=headers, data=await request.read(), allow_redirects=False
            ) as upstream:
                payload = await upstream.read()
                out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}}
                return web.Response(status=upstream.status, body=payload, headers=out_headers)
        except (ClientError, OSError, TimeoutError) as exc:
            raise errors.ApiError(503, "ServiceUnavailable", f"error trying to reach service: {exc}") from None


def _now_text() -> str:
    from .store import timestamp

    return timestamp()


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def scale_of(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    if kind.key not in ("apps/deployments", "apps/replicasets"):
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    metadata = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in metadata},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_string((obj.get("spec") or {}).get("selector")),
        },
    }
