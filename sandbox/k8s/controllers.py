"""The control plane's controllers: Deployments, ReplicaSets, the scheduler, Endpoints/EndpointSlices, PDBs, namespaces.

Each is a level-triggered ``sync`` over the store, run by :class:`sandbox.k8s.cluster.Cluster`
after every change and every half second, as Kubernetes' controllers do from
their informers. They write through the store like any client, so every change
they make has a resourceVersion and reaches watchers.

- Deployments own ReplicaSets named ``<deployment>-<pod-template-hash>``; a
  template change is a rolling update (``maxSurge``/``maxUnavailable``, old
  ReplicaSets scaled down only as new pods become available) or a Recreate;
  status carries ``observedGeneration``, ``replicas``, ``updatedReplicas``,
  ``readyReplicas``, ``availableReplicas``, ``unavailableReplicas`` (zeros
  omitted, as the real API omits them) and the ``Available``/``Progressing``
  conditions with Kubernetes' reasons, including ``ProgressDeadlineExceeded``.
- ReplicaSets own pods ``<replicaset>-<5 chars>``; scale-down deletes the pods
  least likely to serve first (unscheduled, not ready, newest), gracefully.
- The scheduler binds pods to the one node when their requests fit and its
  labels match their nodeSelector; otherwise the pod stays Pending with
  ``PodScheduled=False``/``Unschedulable`` and a FailedScheduling event.
- Endpoints list the ready pods matching a Service's selector (not-ready ones
  under ``notReadyAddresses``; terminating pods leave at once); EndpointSlices
  carry every pod with its ``ready``/``serving``/``terminating`` conditions.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import errors
from .kinds import BY_KEY
from .selectors import match_label_selector
from .store import Store, now, parse_time, random_suffix, timestamp

if TYPE_CHECKING:
    from .cluster import Cluster

LOG = logging.getLogger("sandbox.k8s.controllers")
DEPLOYMENTS = BY_KEY["apps/deployments"]
REPLICASETS = BY_KEY["apps/replicasets"]
PODS = BY_KEY["/pods"]
SERVICES = BY_KEY["/services"]
ENDPOINTS = BY_KEY["/endpoints"]
SLICES = BY_KEY["discovery.k8s.io/endpointslices"]
PDBS = BY_KEY["policy/poddisruptionbudgets"]
NAMESPACES = BY_KEY["/namespaces"]
NODES = BY_KEY["/nodes"]
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- helpers ------------------------------------------------------------------------------------------------
def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def pod_ready(pod: dict[str, Any]) -> bool:
    found = condition(pod, "Ready")
    return bool(found and found.get("status") == "True")


def pod_available(pod: dict[str, Any], min_ready: int, moment: Any) -> bool:
    found = condition(pod, "Ready")
    if not found or found.get("status") != "True":
        return False
    if min_ready <= 0:
        return True
    since = parse_time(found.get("lastTransitionTime"))
    return since is not None and since + timedelta(seconds=min_ready) <= moment


def terminating(obj: dict[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def active(pod: dict[str, Any]) -> bool:
    return not terminating(pod) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((ref for ref in (obj.get("metadata") or {}).get("ownerReferences") or [] if ref.get("controller")), None)


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    ref = controller_of(obj)
    return bool(ref and ref.get("uid") == owner["metadata"]["uid"])


def owner_reference(owner: dict[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def template_hash(template: dict[str, Any], collisions: int = 0) -> str:
    """The pod-template-hash of a template (FNV-32a, encoded like Kubernetes' SafeEncodeString)."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":")) + (str(collisions) if collisions else "")
    return "".join(SAFE_ALPHABET[ord(char) % len(SAFE_ALPHABET)] for char in str(fnv32a(text.encode())))


def without_hash(template: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(template)
    labels = (copied.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return copied


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent (maxSurge, maxUnavailable, minAvailable) against a total."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return 0


def set_condition(conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str, update_time: bool = True) -> None:
    """Set a condition; ``lastTransitionTime`` moves only when the status flips (as Kubernetes does)."""
    stamp = timestamp()
    for entry in conditions:
        if entry.get("type") == kind:
            if entry.get("status") != status:
                entry["lastTransitionTime"] = stamp
                entry["lastUpdateTime"] = stamp
            elif update_time and (entry.get("reason") != reason or entry.get("message") != message):
                entry["lastUpdateTime"] = stamp
            entry.update(status=status, reason=reason, message=message)
            return
    conditions.append(
        {"type": kind, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp, "reason": reason, "message": message}
    )


def _omit_zero(status: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if not (k in keys and not v)}


UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 0.001}


def quantity(value: Any) -> float:
    """A resource quantity ("500m", "1", "128Mi", "1G") as a number (cores or bytes)."""
    if value is None:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    match = re.match(r"^([0-9.]+(?:e[0-9]+)?)([A-Za-z]*)$", str(value).strip())
    if not match or (match.group(2) and match.group(2) not in UNITS):
        return 0.0
    return float(match.group(1)) * UNITS.get(match.group(2), 1)


def pod_requests(pod: dict[str, Any]) -> dict[str, float]:
    totals = {"cpu": 0.0, "memory": 0.0}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or resources.get("limits") or {}
        for key in totals:
            totals[key] += quantity(requests.get(key))
    return totals


class Controllers:
    """All controllers; ``sync()`` is one pass over everything."""

    def __init__(self, store: Store, cluster: Cluster, node_name: str):
        self.store = store
        self.cluster = cluster
        self.node_name = node_name
        self.progress: dict[str, tuple] = {}
        self.slice_names: dict[tuple[str, str], str] = {}
        self.unschedulable: dict[str, str] = {}

    def sync(self) -> None:
        for step in (self.namespaces, self.deployments, self.replicasets, self.schedule, self.endpoints, self.disruption_budgets):
            try:
                step()
            except errors.ApiError as error:
                if error.code != 409:  # a conflict is retried on the next pass, as controllers do
                    LOG.warning("%s: %s", step.__name__, error.message)
            except Exception:
                LOG.exception("controller %s failed (retrying)", step.__name__)

    # -- namespaces ---------------------------------------------------------------------------------------
    def namespaces(self) -> None:
        for namespace in self.store.list(NAMESPACES):
            if not terminating(namespace):
                continue
            name = namespace["metadata"]["name"]
            remaining = 0
            for kind in BY_KEY.values():
                if not kind.namespaced:
                    continue
                for obj in self.store.items(kind, name):
                    remaining += 1
                    if not terminating(obj):
                        with contextlib.suppress(errors.ApiError):
                            self.store.delete(kind, name, obj["metadata"]["name"])
            if remaining == 0:
                self.store.finish_namespace(name)

    # -- deployments ----------------------------------------------------------------------------------------
    def deployments(self) -> None:
        for deployment in self.store.list(DEPLOYMENTS):
            if terminating(deployment):
                continue
            self.sync_deployment(deployment)

    def _replica_sets_of(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        namespace = deployment["metadata"]["namespace"]
        owned = [rs for rs in self.store.list(REPLICASETS, namespace) if owned_by(rs, deployment) and not terminating(rs)]
        return sorted(owned, key=lambda rs: (rs["metadata"]["creationTimestamp"], rs["metadata"]["name"]))

    def sync_deployment(self, deployment: dict[str, Any]) -> None:
        spec = deployment["spec"]
        desired = int(spec.get("replicas", 1))
        template = spec["template"]
        all_sets = self._replica_sets_of(deployment)
        new_rs = next((rs for rs in all_sets if without_hash(rs["spec"]["template"]) == without_hash(template)), None)
        olds = [rs for rs in all_sets if rs is not new_rs]
        max_revision = max([int(rs["metadata"].get("annotations", {}).get(REVISION, "0")) for rs in all_sets] or [0])
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("rollingUpdate") or {}
        surge = scaled_value(rolling.get("maxSurge", "25%"), desired, round_up=True)
        unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        created_now = False
        if spec.get("paused"):
            self._deployment_status(deployment, new_rs, all_sets, desired, unavailable, created_now)
            return
        if new_rs is None:
            active_old = sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
            if strategy.get("type") == "Recreate":
                start = 0 if active_old or self._pods_of_sets(olds) else desired
            else:
                start = desired if not active_old else max(0, min(desired, desired + surge - active_old))
            new_rs = self._create_replica_set(deployment, template, start, max_revision + 1)
            created_now = True
            all_sets = [*olds, new_rs]
        elif int(new_rs["metadata"].get("annotations", {}).get(REVISION, "0")) < max_revision:
            annotations = new_rs["metadata"].setdefault("annotations", {})
            annotations[REVISION] = str(max_revision + 1)
            new_rs = self.store.write(REPLICASETS, new_rs)
            all_sets = [*olds, new_rs]
        revision = new_rs["metadata"].get("annotations", {}).get(REVISION)
        if (deployment["metadata"].get("annotations") or {}).get(REVISION) != revision:
            annotated = self.store.get(DEPLOYMENTS, deployment["metadata"]["namespace"], deployment["metadata"]["name"])
            if annotated is not None:
                annotated["metadata"].setdefault("annotations", {})[REVISION] = revision
                self.store.write(DEPLOYMENTS, annotated)
        if strategy.get("type") == "Recreate":
            self._recreate(new_rs, olds, desired)
        else:
            self._rolling(new_rs, olds, desired, surge, unavailable)
        self._annotate_sets(deployment, desired, surge)
        self._cleanup(deployment)
        all_sets = self._replica_sets_of(deployment)
        new_rs = next((rs for rs in all_sets if rs["metadata"]["uid"] == new_rs["metadata"]["uid"]), new_rs)
        self._deployment_status(deployment, new_rs, all_sets, desired, unavailable, created_now)

    def _create_replica_set(self, deployment: dict[str, Any], template: dict[str, Any], replicas: int, revision: int) -> dict[str, Any]:
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        collisions = 0
        while True:
            digest = template_hash(template, collisions)
            rs_name = f"{name}-{digest}"
            if self.store.peek(REPLICASETS, namespace, rs_name) is None:
                break
            collisions += 1
        rs_template = copy.deepcopy(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = copy.deepcopy(deployment["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels[HASH_LABEL] = digest
        body = {
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(deployment["spec"].get("replicas", 1)),
                    "deployment.kubernetes.io/max-replicas": str(int(deployment["spec"].get("replicas", 1))),
                    REVISION: str(revision),
                },
                "ownerReferences": [owner_reference(deployment, "Deployment", "apps/v1")],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": deployment["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": rs_template,
            },
        }
        if not body["spec"]["minReadySeconds"]:
            del body["spec"]["minReadySeconds"]
        created = self.store.create(REPLICASETS, namespace, body)
        self.cluster.record(
            deployment, "ScalingReplicaSet", f"Scaled up replica set {rs_name} from 0 to {replicas}", component="deployment-controller"
        )
        return created

    def _scale(self, deployment_name: str, rs: dict[str, Any], replicas: int) -> dict[str, Any]:
        before = int(rs["spec"].get("replicas", 0))
        if before == replicas:
            return rs
        rs = copy.deepcopy(rs)
        rs["spec"]["replicas"] = replicas
        updated = self.store.write(REPLICASETS, rs)
        owner = self.store.get(DEPLOYMENTS, rs["metadata"]["namespace"], deployment_name)
        if owner is not None:
            verb = "up" if replicas > before else "down"
            self.cluster.record(
                owner,
                "ScalingReplicaSet",
                f"Scaled {verb} replica set {rs['metadata']['name']} from {before} to {replicas}",
                component="deployment-controller",
            )
        return updated

    def _pods_of_sets(self, sets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        pods = []
        for rs in sets:
            pods += [p for p in self.store.items(PODS, rs["metadata"]["namespace"]) if owned_by(p, rs)]
        return pods

    def _recreate(self, new_rs: dict[str, Any], olds: list[dict[str, Any]], desired: int) -> None:
        owner = controller_of(new_rs)["name"]  # type: ignore[index]
        for rs in olds:
            self._scale(owner, rs, 0)
        if not self._pods_of_sets(olds):
            self._scale(owner, new_rs, desired)

    def _rolling(self, new_rs: dict[str, Any], olds: list[dict[str, Any]], desired: int, surge: int, unavailable: int) -> None:
        owner = controller_of(new_rs)["name"]  # type: ignore[index]
        new_count = int(new_rs["spec"].get("replicas", 0))
        total = new_count + sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
        if new_count > desired:
            new_rs = self._scale(owner, new_rs, desired)
        elif new_count < desired:
            room = desired + surge - total
            if room > 0:
                new_rs = self._scale(owner, new_rs, new_count + min(room, desired - new_count))
        old_count = sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
        if old_count == 0:
            return
        all_count = int(new_rs["spec"].get("replicas", 0)) + old_count
        min_available = desired - unavailable
        new_unavailable = int(new_rs["spec"].get("replicas", 0)) - int((new_rs.get("status") or {}).get("availableReplicas", 0))
        budget = all_count - min_available - new_unavailable
        if budget <= 0:
            return
        # first the old replicas that are not available anyway
        for index, rs in enumerate(olds):
            if budget <= 0:
                break
            replicas = int(rs["spec"].get("replicas", 0))
            unhealthy = replicas - int((rs.get("status") or {}).get("availableReplicas", 0))
            if replicas == 0 or unhealthy <= 0:
                continue
            cut = min(budget, unhealthy)
            olds[index] = self._scale(owner, rs, replicas - cut)
            budget -= cut
        available = int((new_rs.get("status") or {}).get("availableReplicas", 0)) + sum(
            int((rs.get("status") or {}).get("availableReplicas", 0)) for rs in olds
        )
        can_remove = min(available - min_available, sum(int(rs["spec"].get("replicas", 0)) for rs in olds))
        for index, rs in enumerate(olds):
            if can_remove <= 0:
                break
            replicas = int(rs["spec"].get("replicas", 0))
            if replicas == 0:
                continue
            cut = min(replicas, can_remove)
            olds[index] = self._scale(owner, rs, replicas - cut)
            can_remove -= cut

    def _annotate_sets(self, deployment: dict[str, Any], desired: int, surge: int) -> None:
        for rs in self._replica_sets_of(deployment):
            annotations = rs["metadata"].get("annotations") or {}
            wanted = {
                "deployment.kubernetes.io/desired-replicas": str(desired),
                "deployment.kubernetes.io/max-replicas": str(desired + surge),
            }
            if any(annotations.get(k) != v for k, v in wanted.items()):
                rs = copy.deepcopy(rs)
                rs["metadata"].setdefault("annotations", {}).update(wanted)
                self.store.write(REPLICASETS, rs)

    def _cleanup(self, deployment: dict[str, Any]) -> None:
        limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
        template = without_hash(deployment["spec"]["template"])
        idle = [
            rs
            for rs in self._replica_sets_of(deployment)
            if without_hash(rs["spec"]["template"]) != template
            and int(rs["spec"].get("replicas", 0)) == 0
            and int((rs.get("status") or {}).get("replicas", 0)) == 0
            and not self._pods_of_sets([rs])
        ]
        idle.sort(key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")))
        for rs in idle[: max(0, len(idle) - limit)]:
            self.store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _deployment_status(
        self,
        deployment: dict[str, Any],
        new_rs: dict[str, Any] | None,
        all_sets: list[dict[str, Any]],
        desired: int,
        max_unavailable: int,
        created_now: bool,
    ) -> None:
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        current = self.store.peek(DEPLOYMENTS, namespace, name)
        if current is None:
            return
        statuses = [rs.get("status") or {} for rs in all_sets]
        spec_total = sum(int(rs["spec"].get("replicas", 0)) for rs in all_sets)
        available = sum(int(s.get("availableReplicas", 0)) for s in statuses)
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": sum(int(s.get("replicas", 0)) for s in statuses),
            "updatedReplicas": int((new_rs.get("status") or {}).get("replicas", 0)) if new_rs else 0,
            "readyReplicas": sum(int(s.get("readyReplicas", 0)) for s in statuses),
            "availableReplicas": available,
            "unavailableReplicas": max(spec_total - available, 0),
        }
        if (current.get("status") or {}).get("collisionCount"):
            status["collisionCount"] = current["status"]["collisionCount"]
        conditions = copy.deepcopy((current.get("status") or {}).get("conditions") or [])
        if available >= desired - max_unavailable:
            set_condition(conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            set_condition(conditions, "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        complete = (
            new_rs is not None
            and status["updatedReplicas"] == desired
            and status["replicas"] == desired
            and available == desired
            and deployment["metadata"].get("generation", 1) == status["observedGeneration"]
        )
        key = f"{namespace}/{name}"
        fingerprint = (rs_name, status["replicas"], status["updatedReplicas"], status["readyReplicas"], available)
        progressed = self.progress.get(key) != fingerprint
        self.progress[key] = fingerprint
        progressing = condition({"status": {"conditions": conditions}}, "Progressing")
        if complete:
            set_condition(
                conditions, "Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.'
            )
        elif created_now:
            set_condition(conditions, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        elif progressed or progressing is None:
            set_condition(conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
            condition({"status": {"conditions": conditions}}, "Progressing")["lastUpdateTime"] = timestamp()  # type: ignore[index]
        elif progressing.get("status") == "True" and progressing.get("reason") != "NewReplicaSetAvailable":
            deadline = int(deployment["spec"].get("progressDeadlineSeconds", 600))
            since = parse_time(progressing.get("lastUpdateTime"))
            if since is not None and since + timedelta(seconds=deadline) < now():
                set_condition(
                    conditions, "Progressing", "False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.'
                )
        status["conditions"] = sorted(
            conditions, key=lambda c: ["Available", "Progressing"].index(c["type"]) if c["type"] in ("Available", "Progressing") else 9
        )
        status = _omit_zero(status, ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"))
        self.store.set_status(DEPLOYMENTS, namespace, name, status)

    # -- replica sets ---------------------------------------------------------------------------------------
    def replicasets(self) -> None:
        for rs in self.store.list(REPLICASETS):
            if terminating(rs):
                continue
            self.sync_replica_set(rs)

    def sync_replica_set(self, rs: dict[str, Any]) -> None:
        namespace, name = rs["metadata"]["namespace"], rs["metadata"]["name"]
        desired = int(rs["spec"].get("replicas", 1))
        pods = [p for p in self.store.list(PODS, namespace) if owned_by(p, rs)]
        live = [p for p in pods if active(p)]
        if len(live) < desired:
            template = rs["spec"]["template"]
            for _ in range(desired - len(live)):
                body = {
                    "metadata": {
                        "generateName": f"{name}-",
                        "namespace": namespace,
                        "labels": copy.deepcopy((template.get("metadata") or {}).get("labels") or {}),
                        "ownerReferences": [owner_reference(rs, "ReplicaSet", "apps/v1")],
                    },
                    "spec": copy.deepcopy(template.get("spec") or {}),
                }
                if (template.get("metadata") or {}).get("annotations"):
                    body["metadata"]["annotations"] = copy.deepcopy(template["metadata"]["annotations"])
                pod = self.store.create(PODS, namespace, body)
                live.append(pod)
                self.cluster.record(rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", component="replicaset-controller")
        elif len(live) > desired:

            def epoch(text: str | None) -> float:
                moment = parse_time(text)
                return moment.timestamp() if moment else 0.0

            def rank(pod: dict[str, Any]) -> tuple:
                """Smaller goes first: unscheduled, pending, not ready, ready for less time, more restarts, newer."""
                ready = pod_ready(pod)
                restarts = sum(c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])
                return (
                    bool((pod.get("spec") or {}).get("nodeName")),
                    {"Pending": 0, "Unknown": 1, "Running": 2}.get((pod.get("status") or {}).get("phase", "Pending"), 0),
                    ready,
                    -epoch((condition(pod, "Ready") or {}).get("lastTransitionTime")) if ready else 0.0,
                    -restarts,
                    -epoch(pod["metadata"]["creationTimestamp"]),
                )

            for pod in sorted(live, key=rank)[: len(live) - desired]:
                self.store.delete(PODS, namespace, pod["metadata"]["name"])
                self.cluster.record(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", component="replicaset-controller")
                live.remove(pod)
        min_ready = int(rs["spec"].get("minReadySeconds", 0))
        moment = now()
        labels = (rs["spec"]["template"].get("metadata") or {}).get("labels") or {}
        status = {
            "replicas": len(live),
            "fullyLabeledReplicas": sum(1 for p in live if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())),
            "readyReplicas": sum(1 for p in live if pod_ready(p)),
            "availableReplicas": sum(1 for p in live if pod_available(p, min_ready, moment)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = _omit_zero(status, ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"))
        self.store.set_status(REPLICASETS, namespace, name, status)

    # -- scheduler ------------------------------------------------------------------------------------------
    def schedule(self) -> None:
        node = self.store.peek(NODES, None, self.node_name)
        if node is None:
            return
        allocatable = {key: quantity(value) for key, value in (node.get("status") or {}).get("allocatable", {}).items()}
        used = {"cpu": 0.0, "memory": 0.0, "pods": 0.0}
        for pod in self.store.items(PODS):
            if (pod.get("spec") or {}).get("nodeName") == self.node_name and (pod.get("status") or {}).get("phase") not in (
                "Succeeded",
                "Failed",
            ):
                for key, value in pod_requests(pod).items():
                    used[key] += value
                used["pods"] += 1
        node_labels = node["metadata"].get("labels") or {}
        for pod in self.store.list(PODS):
            if (pod.get("spec") or {}).get("nodeName") or terminating(pod):
                continue
            uid = pod["metadata"]["uid"]
            reasons = []
            selector = (pod.get("spec") or {}).get("nodeSelector") or {}
            if any(node_labels.get(k) != v for k, v in selector.items()):
                reasons.append("1 node(s) didn't match Pod's node affinity/selector")
            requests = pod_requests(pod)
            for key in ("cpu", "memory"):
                if requests[key] and used[key] + requests[key] > allocatable.get(key, 0):
                    reasons.append(f"1 Insufficient {key}")
            if used["pods"] + 1 > allocatable.get("pods", 110):
                reasons.append("1 Too many pods")
            if reasons:
                message = (
                    f"0/1 nodes are available: {', '.join(reasons)}. "
                    "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
                )
                status = copy.deepcopy(pod.get("status") or {})
                conditions = status.setdefault("conditions", [])
                set_condition(conditions, "PodScheduled", "False", "Unschedulable", message, update_time=False)
                for entry in conditions:
                    entry.pop("lastUpdateTime", None)
                    entry.setdefault("lastProbeTime", None)
                self.store.set_status(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], status)
                if self.unschedulable.get(uid) != message:
                    self.unschedulable[uid] = message
                    self.cluster.record(pod, "FailedScheduling", message, kind="Warning", component="default-scheduler")
                continue
            self.unschedulable.pop(uid, None)
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = self.node_name
            bound = self.store.write(PODS, bound)
            status = copy.deepcopy(bound.get("status") or {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": timestamp()})
            status["conditions"] = conditions
            self.store.set_status(PODS, bound["metadata"]["namespace"], bound["metadata"]["name"], status)
            for key, value in requests.items():
                used[key] += value
            used["pods"] += 1
            self.cluster.record(
                bound,
                "Scheduled",
                f"Successfully assigned {bound['metadata']['namespace']}/{bound['metadata']['name']} to {self.node_name}",
                component="default-scheduler",
            )

    # -- endpoints -------------------------------------------------------------------------------------------
    def endpoints(self) -> None:
        services = self.store.list(SERVICES)
        managed: set[tuple[str, str]] = set()
        for service in services:
            selector = (service.get("spec") or {}).get("selector")
            if not selector or (service.get("spec") or {}).get("type") == "ExternalName":
                continue
            namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
            managed.add((namespace, name))
            pods = [
                p
                for p in self.store.items(PODS, namespace)
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                and (p.get("status") or {}).get("podIP")
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ]
            self._endpoints(service, pods)
            self._slice(service, pods)
        for endpoints in self.store.list(ENDPOINTS):
            key = (endpoints["metadata"]["namespace"], endpoints["metadata"]["name"])
            if (endpoints["metadata"].get("labels") or {}).get("endpoints.kubernetes.io/managed-by") and key not in managed:
                self.store.delete(ENDPOINTS, *key)

    @staticmethod
    def _resolve(port: dict[str, Any], pod: dict[str, Any]) -> int | None:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int):
            return target
        for container in (pod.get("spec") or {}).get("containers") or []:
            for container_port in container.get("ports") or []:
                if container_port.get("name") == target and container_port.get("protocol", "TCP") == port.get("protocol", "TCP"):
                    return int(container_port["containerPort"])
        return None

    @staticmethod
    def _address(pod: dict[str, Any]) -> dict[str, Any]:
        return {
            "ip": pod["status"]["podIP"],
            "nodeName": pod["spec"].get("nodeName"),
            "targetRef": {
                "kind": "Pod",
                "namespace": pod["metadata"]["namespace"],
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }

    def _endpoints(self, service: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        groups: dict[tuple, dict[str, list]] = {}
        publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
        for pod in sorted(pods, key=lambda p: p["status"]["podIP"]):
            if terminating(pod) and not publish:
                continue
            ports = []
            for port in service["spec"].get("ports") or []:
                resolved = self._resolve(port, pod)
                if resolved is not None:
                    entry = {"port": resolved, "protocol": port.get("protocol", "TCP")}
                    if port.get("name"):
                        entry["name"] = port["name"]
                    ports.append(entry)
            key = tuple(json.dumps(p, sort_keys=True) for p in ports)
            group = groups.setdefault(key, {"addresses": [], "notReadyAddresses": [], "ports": ports})
            group["addresses" if (pod_ready(pod) or publish) else "notReadyAddresses"].append(self._address(pod))
        subsets = []
        for group in groups.values():
            subset = {k: v for k, v in group.items() if v}
            if subset.get("addresses") or subset.get("notReadyAddresses"):
                subsets.append(subset)
        labels = dict(service["metadata"].get("labels") or {})
        labels["endpoints.kubernetes.io/managed-by"] = "endpoint-controller"
        body: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace, "labels": labels}}
        if subsets:
            body["subsets"] = subsets
        current = self.store.get(ENDPOINTS, namespace, name)
        if current is None:
            self.store.create(ENDPOINTS, namespace, body)
            return
        if current.get("subsets") == body.get("subsets") and (current["metadata"].get("labels") or {}) == labels:
            return
        updated = copy.deepcopy(current)
        updated["metadata"]["labels"] = labels
        updated.pop("subsets", None)
        if subsets:
            updated["subsets"] = subsets
        annotations = updated["metadata"].setdefault("annotations", {})
        annotations["endpoints.kubernetes.io/last-change-trigger-time"] = timestamp()
        self.store.write(ENDPOINTS, updated)

    def _slice(self, service: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        key = (namespace, name)
        existing = [
            s for s in self.store.list(SLICES, namespace) if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name
        ]
        slice_name = self.slice_names.get(key) or (existing[0]["metadata"]["name"] if existing else f"{name}-{random_suffix()}")
        self.slice_names[key] = slice_name
        ports = []
        endpoints = []
        for port in service["spec"].get("ports") or []:
            entry = {"port": None, "protocol": port.get("protocol", "TCP")}
            if port.get("name"):
                entry["name"] = port["name"]
            ports.append((port, entry))
        for pod in sorted(pods, key=lambda p: p["status"]["podIP"]):
            for port, entry in ports:
                if entry["port"] is None:
                    entry["port"] = self._resolve(port, pod)
            ready = pod_ready(pod)
            endpoints.append(
                {
                    "addresses": [pod["status"]["podIP"]],
                    "conditions": {"ready": ready and not terminating(pod), "serving": ready, "terminating": terminating(pod)},
                    "nodeName": pod["spec"].get("nodeName"),
                    "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
                }
            )
        labels = dict(service["metadata"].get("labels") or {})
        labels.update({"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
        wanted: dict[str, Any] = {
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [entry for _, entry in ports if entry["port"] is not None],
        }
        current = next((s for s in existing if s["metadata"]["name"] == slice_name), None)
        for stale in existing:
            if stale["metadata"]["name"] != slice_name:
                self.store.delete(SLICES, namespace, stale["metadata"]["name"])
        if current is None:
            body = {
                "metadata": {
                    "name": slice_name,
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": [owner_reference(service, "Service", "v1")],
                },
                **wanted,
            }
            self.store.create(SLICES, namespace, body)
            return
        if all(current.get(k) == v for k, v in wanted.items()) and current["metadata"].get("labels") == labels:
            return
        updated = copy.deepcopy(current)
        updated.update(copy.deepcopy(wanted))
        updated["metadata"]["labels"] = labels
        self.store.write(SLICES, updated)

    # -- disruption budgets ------------------------------------------------------------------------------------
    def disruption_budgets(self) -> None:
        for pdb in self.store.list(PDBS):
            namespace, name = pdb["metadata"]["namespace"], pdb["metadata"]["name"]
            spec = pdb.get("spec") or {}
            pods = [
                p
                for p in self.store.items(PODS, namespace)
                if active(p) and match_label_selector(spec.get("selector"), p["metadata"].get("labels"))
            ]
            owners: dict[str, int] = {}
            for pod in pods:
                ref = controller_of(pod)
                if ref and ref.get("kind") == "ReplicaSet":
                    rs = next((r for r in self.store.items(REPLICASETS, namespace) if r["metadata"]["uid"] == ref["uid"]), None)
                    if rs is not None:
                        owners[ref["uid"]] = int(rs["spec"].get("replicas", 0))
            expected = sum(owners.values()) if owners else len(pods)
            healthy = sum(1 for p in pods if pod_ready(p))
            if "minAvailable" in spec:
                desired = scaled_value(spec["minAvailable"], expected, round_up=True)
            elif "maxUnavailable" in spec:
                desired = max(0, expected - scaled_value(spec["maxUnavailable"], expected, round_up=True))
            else:
                desired = expected
            current_status = pdb.get("status") or {}
            disrupted = dict(current_status.get("disruptedPods") or {})
            for pod_name, when in list(disrupted.items()):
                moment = parse_time(when)
                if (
                    moment is None
                    or moment + timedelta(minutes=2) < now()
                    or not any(p["metadata"]["name"] == pod_name and active(p) for p in pods)
                ):
                    del disrupted[pod_name]
            allowed = max(0, healthy - desired - sum(1 for p in pods if p["metadata"]["name"] in disrupted))
            conditions = copy.deepcopy(current_status.get("conditions") or [])
            if allowed > 0:
                set_condition(conditions, "DisruptionAllowed", "True", "SufficientPods", "")
            else:
                set_condition(conditions, "DisruptionAllowed", "False", "InsufficientPods", "")
            for entry in conditions:
                entry.pop("lastUpdateTime", None)
                entry["observedGeneration"] = pdb["metadata"].get("generation", 1)
            status = {
                "observedGeneration": pdb["metadata"].get("generation", 1),
                "disruptionsAllowed": allowed,
                "currentHealthy": healthy,
                "desiredHealthy": desired,
                "expectedPods": expected,
                "conditions": conditions,
            }
            if disrupted:
                status["disruptedPods"] = disrupted
            self.store.set_status(PDBS, namespace, name, status)
