# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A blue-green app on Kubernetes, found from its name and namespace.

The pair is two Deployments, ``<app>-blue`` and ``<app>-green``, whose pods carry
the labels ``app=<app>`` and ``slot=blue|green``. The live colour is what the
live Service ``<app>`` selects (its ``slot``): Kubernetes decides it, nothing
stored elsewhere. Every Service of the namespace whose selector names this app
and a slot sends traffic to that colour; the preview Service ``<app>-preview``
is the one that selects the idle colour on purpose, for smoke tests.

The functions here are pure: they take the objects the API returned (plain
dicts) and compute views and verdicts; :func:`discover` is the one that reads.
"""

from __future__ import annotations

import re

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLORS, CutoverError, other_color, parse_time
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import items

APP_LABEL = "app"
SLOT_LABEL = "slot"
ANNOTATION_PREFIX = "cutover.bluegreen/"
ANNOTATION_STATE = ANNOTATION_PREFIX + "state"
ANNOTATION_RETIRE_AFTER = ANNOTATION_PREFIX + "retire-after"
ANNOTATION_REPLICAS = ANNOTATION_PREFIX + "replicas-before-teardown"
STATE_ANNOTATIONS = (ANNOTATION_STATE, ANNOTATION_RETIRE_AFTER, ANNOTATION_REPLICAS)
STANDBY = "standby"
RETIRED = "retired"

MAX_APP_LENGTH = 40
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Container states that do not end by waiting: fail a rollout at once.
FATAL_WAITING = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
)
UNSCHEDULABLE = "Unschedulable"


# -- names and input ------------------------------------------------------------------------------
def names(app, live_service=None, preview_service=None):
    """The objects of ``app`` by the collection's conventions (``live_service``/``preview_service`` override)."""
    return {
        "deployments": {color: "%s-%s" % (app, color) for color in COLORS},
        "live_service": live_service or app,
        "preview_service": preview_service or "%s-preview" % app,
        "active_color_config_map": "%s-active-color" % app,
        "journal_config_map": "%s-cutover-journal" % app,
        "lease": "%s-cutover-lock" % app,
    }


def validate_app(app, namespace):
    """The app name (a DNS-1035 label, at most 40 characters) and the namespace (a DNS-1123 label)."""
    if not isinstance(app, str) or len(app) > MAX_APP_LENGTH or not DNS_1035.match(app):
        raise CutoverError(
            "app %r is not a valid app name: use 1 to %d lowercase letters, digits or hyphens, starting with a letter "
            "and ending with a letter or digit (it names the Deployments <app>-blue and <app>-green)" % (app, MAX_APP_LENGTH)
        )
    if not isinstance(namespace, str) or len(namespace) > 63 or not DNS_1123_LABEL.match(namespace):
        raise CutoverError("namespace %r is not a valid namespace name (a DNS-1123 label of at most 63 characters)" % (namespace,))


def validate_service_name(option, value):
    if value is not None and (len(value) > 63 or not DNS_1035.match(value)):
        raise CutoverError("%s %r is not a valid Service name (a DNS-1035 label of at most 63 characters)" % (option, value))


# -- views ----------------------------------------------------------------------------------------
def _meta(obj):
    return obj.get("metadata") or {}


def _container(deployment, container=None):
    containers = ((((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    if not containers:
        return None
    if container is None:
        return containers[0]
    return next((c for c in containers if c.get("name") == container), None)


def deployment_view(deployment, container=None):
    """What the collection reads of a Deployment: sizes, image, status, standby marks."""
    meta, spec, status = _meta(deployment), deployment.get("spec") or {}, deployment.get("status") or {}
    annotations = meta.get("annotations") or {}
    chosen = _container(deployment, container)
    replicas = spec.get("replicas")
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "replicas": 1 if replicas is None else int(replicas),
        "container": chosen.get("name") if chosen else None,
        "image": chosen.get("image") if chosen else None,
        "generation": int(meta.get("generation") or 0),
        "observed_generation": int(status.get("observedGeneration") or 0),
        "status_replicas": int(status.get("replicas") or 0),
        "updated_replicas": int(status.get("updatedReplicas") or 0),
        "ready_replicas": int(status.get("readyReplicas") or 0),
        "available_replicas": int(status.get("availableReplicas") or 0),
        "state": annotations.get(ANNOTATION_STATE),
        "retire_after": annotations.get(ANNOTATION_RETIRE_AFTER),
        "replicas_before_teardown": annotations.get(ANNOTATION_REPLICAS),
        "annotations": {k: v for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)},
        "pod_labels": ((((spec.get("template") or {}).get("metadata")) or {}).get("labels")) or {},
        "conditions": {c.get("type"): {"status": c.get("status"), "reason": c.get("reason")} for c in status.get("conditions") or []},
        "resource_version": meta.get("resourceVersion"),
    }


def selects(selector, app):
    """The slot a Service selector sends this app's traffic to: a colour, ``both`` (no slot), or None (not this app)."""
    if not selector or selector.get(APP_LABEL) != app:
        return None
    slot = selector.get(SLOT_LABEL)
    if slot is None:
        return "both"
    return slot if slot in COLORS else None


def service_view(service):
    meta, spec = _meta(service), service.get("spec") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "selector": dict(spec.get("selector") or {}),
        "type": spec.get("type"),
        "resource_version": meta.get("resourceVersion"),
    }


def is_terminating(pod):
    return bool(_meta(pod).get("deletionTimestamp"))


def is_ready(pod):
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def pod_slot(pod):
    return (_meta(pod).get("labels") or {}).get(SLOT_LABEL)


def pods_of(pods, color):
    """The pods of a colour that are not terminating."""
    return [p for p in pods if pod_slot(p) == color and not is_terminating(p)]


def ready_count(pods, color, image=None, container=None):
    """Ready, non-terminating pods of ``color`` (running ``image`` in ``container``, when given)."""
    count = 0
    for pod in pods_of(pods, color):
        if is_ready(pod) and (image is None or pod_image(pod, container) == image):
            count += 1
    return count


def pod_image(pod, container=None):
    containers = (pod.get("spec") or {}).get("containers") or []
    chosen = containers[0] if containers and container is None else next((c for c in containers if c.get("name") == container), None)
    return chosen.get("image") if chosen else None


# -- the pair -------------------------------------------------------------------------------------
def build_pair(app, namespace, deployments, services, pods=None, live_service=None, preview_service=None, container=None):
    """The pair from the Deployments labelled ``app=<app>`` and every Service of the namespace (plain lists).

    Fails naming what is missing or inconsistent: a Deployment of a colour, a pod
    template whose labels do not name its colour, a live Service that does not
    select exactly one colour of this app.
    """
    wanted = names(app, live_service, preview_service)
    by_name = {_meta(d).get("name"): d for d in deployments}
    colors = {}
    for color in COLORS:
        name = wanted["deployments"][color]
        found = by_name.get(name)
        if found is None:
            raise CutoverError(
                "Deployment %s/%s of app %s (colour %s) was not found; a pair is the Deployments %s-blue and %s-green "
                "labelled app=%s (infra/kubernetes creates them)" % (namespace, name, app, color, app, app, app),
                missing=name,
            )
        view = deployment_view(found, container)
        labels = view["pod_labels"]
        if labels.get(APP_LABEL) != app or labels.get(SLOT_LABEL) != color:
            raise CutoverError(
                "Deployment %s/%s labels its pods %s; the %s colour of app %s must label them app=%s and slot=%s"
                % (namespace, name, labels, color, app, app, color)
            )
        if view["container"] is None:
            raise CutoverError("Deployment %s/%s has no container named %s" % (namespace, name, container))
        colors[color] = view
    foreign = sorted(n for n in by_name if n not in wanted["deployments"].values())

    by_service = {}
    serving = {color: [] for color in COLORS}
    both = []
    mine = {}
    for service in services:
        view = service_view(service)
        by_service[view["name"]] = view
        slot = selects(view["selector"], app)
        if slot in COLORS:
            serving[slot].append(view["name"])
            mine[view["name"]] = view
        elif slot == "both":
            both.append(view["name"])
            mine[view["name"]] = view
    live = by_service.get(wanted["live_service"])
    if live is None:
        raise CutoverError(
            "the live Service %s/%s of app %s was not found" % (namespace, wanted["live_service"], app), missing=wanted["live_service"]
        )
    live_color = selects(live["selector"], app)
    if live_color not in COLORS:
        raise CutoverError(
            "the live Service %s/%s selects %s, not one colour of app %s (app=%s with slot=blue or slot=green)"
            % (namespace, live["name"], live["selector"] or "nothing", app, app),
            selector=live["selector"],
        )
    preview = by_service.get(wanted["preview_service"])
    pair = {
        "app": app,
        "namespace": namespace,
        "live_color": live_color,
        "idle_color": other_color(live_color),
        "colors": colors,
        "live_service": live,
        "preview_service": preview,
        "preview_color": selects(preview["selector"], app) if preview else None,
        # Services sending production traffic to each colour (the preview Service is not production).
        "services": {color: sorted(n for n in serving[color] if n != wanted["preview_service"]) for color in COLORS},
        "unslotted_services": sorted(both),
        # Every Service selecting this app (by name): selector and resourceVersion, what a switch plans from.
        "service_views": mine,
        "foreign_deployments": foreign,
        "names": wanted,
        "split": bool([n for n in serving[other_color(live_color)] if n != wanted["preview_service"]]),
    }
    if pods is not None:
        for color in COLORS:
            view = colors[color]
            view["pods"] = pod_summaries(pods_of(pods, color), view["container"])
            view["ready_pods"] = ready_count(pods, color)
    return pair


def pod_summaries(pods, container=None):
    return [
        {
            "name": _meta(p).get("name"),
            "ready": is_ready(p),
            "phase": (p.get("status") or {}).get("phase"),
            "image": pod_image(p, container),
            "ip": (p.get("status") or {}).get("podIP"),
        }
        for p in sorted(pods, key=lambda p: _meta(p).get("name") or "")
    ]


def app_selector(app):
    return "%s=%s" % (APP_LABEL, app)


def discover(kube, app, namespace, live_service=None, preview_service=None, container=None, with_pods=True):
    """Read the pair: the app's Deployments, every Service of the namespace, the app's pods (3 list calls)."""
    validate_app(app, namespace)
    deployments = items(kube.call("list", "apps/deployments", namespace, label_selector=app_selector(app)))
    services = items(kube.call("list", "services", namespace))
    pods = items(kube.call("list", "pods", namespace, label_selector=app_selector(app))) if with_pods else None
    return build_pair(app, namespace, deployments, services, pods, live_service, preview_service, container)


def list_pods(kube, app, namespace):
    return items(kube.call("list", "pods", namespace, label_selector=app_selector(app)))


# -- rollout and readiness ----------------------------------------------------------------------------
def rollout_state(view, replicas=None):
    """``(complete, why)`` of a Deployment view, as ``kubectl rollout status`` judges it.

    Complete: the controller saw this generation, and every wanted replica is
    updated, ready and available, with no pod of an older template left.
    """
    wanted = view["replicas"] if replicas is None else replicas
    progressing = view["conditions"].get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return False, "its progress deadline was exceeded (ProgressDeadlineExceeded)"
    if view["observed_generation"] < view["generation"]:
        return False, "the controller has not seen generation %d yet" % view["generation"]
    counts = (view["updated_replicas"], view["ready_replicas"], view["available_replicas"], view["status_replicas"])
    if view["replicas"] != wanted:
        return False, "%d replicas wanted, %d set" % (wanted, view["replicas"])
    if counts != (wanted,) * 4:
        return False, "%d updated, %d ready, %d available of %d wanted (%d pods in all)" % (
            counts[0],
            counts[1],
            counts[2],
            wanted,
            counts[3],
        )
    return True, "%d of %d updated, ready and available" % (wanted, wanted)


def _since(pod, now):
    """Seconds the pod has not been Ready (since its Ready condition last changed, else since it was created)."""
    stamp = None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            stamp = condition.get("lastTransitionTime")
    stamp = stamp or _meta(pod).get("creationTimestamp")
    try:
        return max(0.0, (now - parse_time(stamp)).total_seconds()) if stamp else 0.0
    except CutoverError:
        return 0.0


def probe_failures(events):
    """Pod name -> the newest readiness-probe failure message, from Events (reason ``Unhealthy``)."""
    out = {}
    newest = {}
    for event in events:
        involved = event.get("involvedObject") or {}
        message = event.get("message") or ""
        if involved.get("kind") != "Pod" or event.get("reason") != "Unhealthy" or not message.startswith("Readiness probe failed"):
            continue
        stamp = event.get("lastTimestamp") or event.get("eventTime") or _meta(event).get("creationTimestamp") or ""
        name = involved.get("name")
        if name not in newest or stamp >= newest[name]:
            newest[name], out[name] = stamp, message
    return out


def pod_problem(pod, now, probe_messages=None, container=None):
    """Why a pod is not Ready: ``{pod, phase, reason, message, fatal, seconds}``, or None when it is Ready.

    ``fatal`` reasons (a crash loop, an image that cannot be pulled, a bad
    container config) do not end by waiting; the others (Pending, readiness
    probe failures, starting) may, and fail a wait only after its grace period.
    """
    if is_ready(pod):
        return None
    status = pod.get("status") or {}
    entry = {"pod": _meta(pod).get("name"), "phase": status.get("phase"), "fatal": False, "seconds": round(_since(pod, now), 1)}
    statuses = status.get("containerStatuses") or []
    if container is not None:
        statuses = [s for s in statuses if s.get("name") == container] or statuses
    for state in statuses:
        waiting = (state.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            entry.update(reason=waiting["reason"], message=waiting.get("message") or _last_exit(state), fatal=True)
            return entry
    if status.get("phase") == "Failed":
        entry.update(reason=status.get("reason") or "Failed", message=status.get("message") or "the pod failed", fatal=True)
        return entry
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            entry.update(reason=condition.get("reason") or "Pending", message=condition.get("message") or "not scheduled")
            return entry
    message = (probe_messages or {}).get(entry["pod"])
    if status.get("phase") == "Running" and message:
        entry.update(reason="ReadinessProbeFailed", message=message)
        return entry
    for state in statuses:
        waiting = (state.get("state") or {}).get("waiting") or {}
        if waiting:
            entry.update(reason=waiting.get("reason") or "Waiting", message=waiting.get("message") or "")
            return entry
        if state.get("restartCount"):
            entry.update(reason="Restarting", message=_last_exit(state))
            return entry
    entry.update(reason="NotReady" if status.get("phase") == "Running" else (status.get("phase") or "Pending"), message="not Ready yet")
    return entry


def _last_exit(state):
    terminated = (state.get("lastState") or {}).get("terminated") or {}
    if not terminated:
        return ""
    return "last exit code %s (%s), %d restarts" % (terminated.get("exitCode"), terminated.get("reason"), state.get("restartCount") or 0)


def describe_problem(problem):
    text = "%s: %s" % (problem["pod"], problem["reason"])
    if problem.get("message"):
        text += " (%s)" % problem["message"]
    return text


def failing(problems, unhealthy_timeout):
    """The problems that fail a wait now: fatal ones, and the others once they last ``unhealthy_timeout`` seconds."""
    return [p for p in problems if p["fatal"] or (unhealthy_timeout is not None and p["seconds"] >= unhealthy_timeout)]
