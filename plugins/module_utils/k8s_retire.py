# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Standby, teardown and restore of a colour of an app on Kubernetes.

After a switch the old colour stays warm as a *standby*: its Deployment is
annotated ``cutover.bluegreen/state: standby`` and
``cutover.bluegreen/retire-after: <UTC time>`` (the TTL rules are the AWS
ones: :func:`retire.parse_ttl`, :func:`retire.compute_retire_after`). A
scheduled *teardown* retires standbys whose time has passed: once no production
Service's endpoints hold any of their pods (drained), their Deployment is scaled
to zero replicas — kept, with its image, for a fast restore — and annotated
``state: retired`` with the replicas it had. *Restore* scales a standby or
retired colour back up for a rollback.

The live colour is never marked, scaled down or retired, nor a colour any
production Service still selects, even with ``force``; a standby is never torn
down before its retire-after time unless forced.
"""

from __future__ import annotations

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence as fences
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import (
    COLORS,
    CutoverError,
    isoformat,
    parse_time,
    resolve_color,
    utcnow,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import items
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import (
    ANNOTATION_REPLICAS,
    ANNOTATION_RETIRE_AFTER,
    ANNOTATION_STATE,
    APP_LABEL,
    RETIRED,
    SLOT_LABEL,
    STANDBY,
    STATE_ANNOTATIONS,
    app_selector,
    pod_slot,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import compute_retire_after, parse_ttl
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, waiter_for

RETURNABLE = (STANDBY, RETIRED)


# -- standby marks ---------------------------------------------------------------------------------
def plan_standby(view, now, ttl=None, retire_after=None, reset=False):
    """What marking a colour standby changes: ``{retire_after, source, set}`` (``set``: the annotations to write)."""
    value, source = compute_retire_after(
        now,
        ttl=parse_ttl(ttl),
        retire_after=retire_after,
        current_state=view.get("state"),
        current_retire_after=view.get("retire_after"),
        reset=reset,
    )
    wanted = {ANNOTATION_STATE: STANDBY, ANNOTATION_RETIRE_AFTER: value}
    return {"retire_after": value, "source": source, "set": {k: v for k, v in wanted.items() if view["annotations"].get(k) != v}}


def annotations_patch(set_=None, clear=()):
    annotations = dict(set_ or {})
    annotations.update(dict.fromkeys(clear))
    return {"metadata": {"annotations": annotations}}


def plan_marks(pair, from_color, live_color, now, ttl=None, retire_after=None, reset=False):
    """After a switch to ``live_color``: ``from_color`` becomes the standby, the live colour loses any marks."""
    if from_color == live_color:
        raise CutoverError("the live colour %s is never marked standby" % live_color)
    standby = plan_standby(pair["colors"][from_color], now, ttl, retire_after, reset)
    clear = [key for key in STATE_ANNOTATIONS if key in pair["colors"][live_color]["annotations"]]
    return {"from_color": from_color, "live_color": live_color, "standby": standby, "clear": clear}


def apply_marks(kube, pair, marks, check_mode=False, fence=None):
    """Write :func:`plan_marks`; returns ``{changed, standby: {color, retire_after, source}, cleared}``."""
    namespace = pair["namespace"]
    standby_name = pair["colors"][marks["from_color"]]["name"]
    live_name = pair["colors"][marks["live_color"]]["name"]
    changed = bool(marks["standby"]["set"] or marks["clear"])
    if not check_mode:
        if marks["standby"]["set"]:
            with fences.fenced(fence):
                fences.guard("marking %s standby" % standby_name)
            kube.call("patch", "apps/deployments", namespace, standby_name, body=annotations_patch(marks["standby"]["set"]))
        if marks["clear"]:
            kube.call("patch", "apps/deployments", namespace, live_name, body=annotations_patch(clear=marks["clear"]))
    return {
        "changed": changed,
        "standby": {
            "color": marks["from_color"],
            "deployment": standby_name,
            "retire_after": marks["standby"]["retire_after"],
            "source": marks["standby"]["source"],
        },
        "cleared": marks["clear"],
    }


# -- teardown ----------------------------------------------------------------------------------------
def teardown_candidates(pair, colors=None):
    """The plain data :func:`select_teardown` decides on, per colour (``colors``: a subset, ``idle`` allowed)."""
    wanted = {resolve_color(color, pair["live_color"], option="colors", allowed=COLORS + ("idle",)) for color in colors or COLORS}
    return [
        {
            "color": color,
            "deployment": pair["colors"][color]["name"],
            "state": pair["colors"][color]["state"],
            "retire_after": pair["colors"][color]["retire_after"],
            "replicas": pair["colors"][color]["replicas"],
            "live": color == pair["live_color"],
            "serving": sorted(set(pair["services"][color]) | set(pair["unslotted_services"])),
        }
        for color in COLORS
        if color in wanted
    ]


def select_teardown(candidates, now, force=False):
    """Decide per colour: ``{color, action: teardown|skip, reason, retire_after}``.

    The live colour, and any colour a production Service still selects, is
    skipped even with ``force``; so is a colour that is no standby, and one
    already retired at zero replicas. A standby before its retire-after time is
    skipped unless ``force``.
    """
    decisions = []
    for candidate in candidates:
        color, state, retire_after = candidate["color"], candidate.get("state"), candidate.get("retire_after")

        def decide(action, reason, color=color, retire_after=retire_after):
            decisions.append({"color": color, "action": action, "reason": reason, "retire_after": retire_after})

        if candidate.get("live"):
            decide("skip", "%s is the live colour; it is never torn down, even with force" % color)
        elif candidate.get("serving"):
            decide(
                "skip",
                "%s still receives production traffic through the Service(s) %s; it is never torn down, even with force"
                % (color, ", ".join(candidate["serving"])),
            )
        elif state == RETIRED and not candidate.get("replicas"):
            decide("skip", "%s is already retired (0 replicas)" % color)
        elif state not in RETURNABLE:
            decide("skip", "%s has no %s annotation: it is not a standby" % (color, ANNOTATION_STATE))
        else:
            try:
                moment = parse_time(retire_after) if retire_after else None
            except CutoverError:
                moment = None
            if moment is None:
                if force:
                    decide("teardown", "forced: %s has no valid %s annotation" % (color, ANNOTATION_RETIRE_AFTER))
                else:
                    decide(
                        "skip",
                        "%s has no valid %s annotation (%r); pass force to tear it down" % (color, ANNOTATION_RETIRE_AFTER, retire_after),
                    )
            elif moment > now and not force:
                decide("skip", "%s is a standby until %s (retire-after not reached; now %s)" % (color, retire_after, isoformat(now)))
            elif moment > now:
                decide("teardown", "forced before its retire-after time %s" % retire_after)
            else:
                decide("teardown", "retire-after %s has passed" % retire_after)
    return decisions


def endpoint_pods(slices):
    """Pod names (or addresses, without a target) in EndpointSlices, with whether each is ready."""
    out = {}
    for piece in slices:
        for endpoint in piece.get("endpoints") or []:
            ref = endpoint.get("targetRef") or {}
            key = ref.get("name") if ref.get("kind") == "Pod" else None
            for address in endpoint.get("addresses") or []:
                ready = (endpoint.get("conditions") or {}).get("ready")
                out[key or address] = bool(ready is None or ready)
    return out


def slices_of(kube, namespace, services):
    """The EndpointSlices of ``services`` (one list call), by Service name."""
    if not services:
        return {}
    selector = "kubernetes.io/service-name in (%s)" % ",".join(sorted(services))
    found = items(kube.call("list", "discovery.k8s.io/endpointslices", namespace, label_selector=selector))
    out = {name: [] for name in services}
    for piece in found:
        name = ((piece.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
        if name in out:
            out[name].append(piece)
    return out


def drained(pods, slices_by_service, color):
    """``(drained, where)``: no production Service's endpoints hold a pod of ``color``."""
    by_name = {(p.get("metadata") or {}).get("name"): p for p in pods}
    by_ip = {(p.get("status") or {}).get("podIP"): p for p in pods if (p.get("status") or {}).get("podIP")}
    where = []
    for service, slices in sorted(slices_by_service.items()):
        for key in endpoint_pods(slices):
            pod = by_name.get(key) or by_ip.get(key)
            if pod is not None and pod_slot(pod) == color:
                where.append("%s in %s" % ((pod.get("metadata") or {}).get("name"), service))
    return not where, where


def teardown_patch(replicas):
    """Scale to zero, remembering the size, marked retired."""
    return {
        "metadata": {"annotations": {ANNOTATION_STATE: RETIRED, ANNOTATION_REPLICAS: str(replicas)}},
        "spec": {"replicas": 0},
    }


def production_services(kube, app, namespace, preview_service):
    """Every Service of the namespace selecting this app, but the preview Service (names, one list call)."""
    out = []
    for service in items(kube.call("list", "services", namespace)):
        selector = (service.get("spec") or {}).get("selector") or {}
        name = (service.get("metadata") or {}).get("name")
        if selector.get(APP_LABEL) == app and name != preview_service:
            out.append((name, selector.get(SLOT_LABEL)))
    return out


def teardown(
    kube,
    pair,
    colors=None,
    force=False,
    wait=True,
    drain_timeout=300,
    wait_timeout=300,
    check_mode=False,
    fence=None,
    waiter=None,
    now=None,
):
    """Retire the expired standbys of ``pair``; returns ``{changed, decisions, torn_down, seconds}``."""
    waiter = waiter_for(waiter)
    started = waiter.clock()
    moment = now or utcnow()
    decisions = select_teardown(teardown_candidates(pair, colors), moment, force)
    torn = []
    for decision in decisions:
        if decision["action"] != "teardown":
            continue
        view = pair["colors"][decision["color"]]
        entry = {"color": decision["color"], "deployment": view["name"], "replicas_before": view["replicas"]}
        torn.append(entry)
        if not check_mode:
            _retire(kube, pair, entry, wait, drain_timeout, wait_timeout, fence, waiter)
    return {"changed": bool(torn), "decisions": decisions, "torn_down": torn, "seconds": round(waiter.clock() - started, 3)}


def drained_condition(kube, pair, color, entry):
    """The predicate of a teardown's drain: no production Service's endpoints hold a pod of ``color`` (``entry["drain"]``
    says where they still are); a Service pointed at the colour meanwhile fails it at once."""
    app, namespace = pair["app"], pair["namespace"]
    selector = "%s,%s=%s" % (app_selector(app), SLOT_LABEL, color)

    def check():
        services = production_services(kube, app, namespace, pair["names"]["preview_service"])
        selecting = sorted(name for name, slot in services if slot in (color, None))
        if selecting:  # read again right before the scale: a Service may have been pointed at it since
            raise CutoverError(
                "%s of app %s is selected by the Service(s) %s now; it was not torn down" % (color, app, ", ".join(selecting)),
                services=selecting,
            )
        pods = items(kube.call("list", "pods", namespace, label_selector=selector))
        ok, entry["drain"] = drained(pods, slices_of(kube, namespace, [service[0] for service in services]), color)
        return ok

    return Condition("the %s pods of %s to be drained" % (color, app), check, lambda: "; ".join(entry.get("drain") or []))


def stopped_condition(kube, pair, color, entry):
    """The predicate of a teardown's last wait: no pod of ``color`` left (``entry["pods_left"]`` counts them)."""
    selector = "%s,%s=%s" % (app_selector(pair["app"]), SLOT_LABEL, color)

    def check():
        entry["pods_left"] = len(items(kube.call("list", "pods", pair["namespace"], label_selector=selector)))
        return entry["pods_left"] == 0

    return Condition(
        "the %s pods of %s to stop" % (color, pair["app"]), check, lambda: "%s pod(s) left" % entry.get("pods_left", "no look yet, so some")
    )


def _retire(kube, pair, entry, wait, drain_timeout, wait_timeout, fence, waiter):
    """Drain one colour, scale it to zero, wait for its pods to stop; fills ``entry``."""
    color, view = entry["color"], pair["colors"][entry["color"]]
    with fences.fenced(fence):
        entry["drain_seconds"] = waiter.wait(drained_condition(kube, pair, color, entry), drain_timeout).seconds
        fences.guard("scaling %s to 0" % view["name"])
        patch = teardown_patch(view["replicas"] or view_replicas_before(view))
        kube.call("patch", "apps/deployments", pair["namespace"], view["name"], body=patch)
        if wait:
            entry["stop_seconds"] = waiter.wait(stopped_condition(kube, pair, color, entry), wait_timeout).seconds


def view_replicas_before(view):
    """The size a retired colour had, from its annotation (0 when unknown)."""
    try:
        return int(view.get("replicas_before_teardown") or 0)
    except ValueError:
        return 0


# -- restore -------------------------------------------------------------------------------------------
def restore_replicas(pair, color, replicas=None):
    """The size a colour comes back at: given, else the live colour's, else the size it had before teardown."""
    if replicas is not None:
        return replicas
    live = pair["colors"][pair["live_color"]]["replicas"]
    return live or view_replicas_before(pair["colors"][color]) or 1


def plan_restore(pair, color, replicas=None):
    """``{color, deployment, replicas, patch}``: scale ``color`` up (``patch`` None when it already has that size)."""
    view = pair["colors"][color]
    wanted = restore_replicas(pair, color, replicas)
    patch = {"spec": {"replicas": wanted}} if view["replicas"] != wanted else None
    return {
        "color": color,
        "deployment": view["name"],
        "replicas": wanted,
        "image": view["image"],
        "container": view["container"],
        "patch": patch,
    }
