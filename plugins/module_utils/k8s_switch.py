# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Move the production traffic of an app on Kubernetes from one colour to the other.

The switch is the selector of a Service: ``slot: blue`` becomes ``slot: green``.
Not only the live Service's: **every** Service of the namespace that selects the
old colour of this app moves (a Service someone added for another port, an
internal name, a metrics scrape...), or the cutover would not fully cut over.
The preview Service, which selects the idle colour for smoke tests, is pointed
at the colour that becomes idle.

In order, each step re-entrant:

* :func:`plan_switch` — the selector changes, as data (none when done already);
* :func:`guard_switch` — never to a colour with fewer Ready pods than required
  (by default the old colour's replicas), nor to one whose rollout is not complete;
* :func:`apply_switch` — merge patches naming each Service's ``resourceVersion``
  (a Service whose selector changed since it was read is refused, not overwritten);
  when one fails, the ones already changed are put back, so nothing is left half
  switched. Kubernetes has no transaction across objects: between two patches,
  for milliseconds, one Service has moved and another not yet;
* :func:`verify_switch` — read back: every production Service selects the new
  colour and its EndpointSlices hold only new-colour pods, enough of them Ready;
* :func:`publish_active_color` — the ConfigMap ``<app>-active-color``.
"""

from __future__ import annotations

import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence as fences
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLORS, CutoverError, isoformat, other_color, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import resolve_color as common_resolve_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import is_conflict, items
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import (
    SLOT_LABEL,
    app_selector,
    deployment_view,
    pod_slot,
    ready_count,
    rollout_state,
    selects,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_retire import (
    annotations_patch,
    apply_marks,
    endpoint_pods,
    plan_marks,
    slices_of,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, check_seconds, waiter_for

TO_COLOR_CHOICES = COLORS + ("idle",)
ATTEMPTS = 3


MAX_VERIFY_SECONDS = 3600


def validate_inputs(to_color, min_ready=None, verify_timeout=None):
    if to_color not in TO_COLOR_CHOICES:
        raise CutoverError("to_color must be one of %s, got %r" % (", ".join(TO_COLOR_CHOICES), to_color))
    if min_ready is not None and (isinstance(min_ready, bool) or not isinstance(min_ready, int) or not 1 <= min_ready <= 1000):
        raise CutoverError("min_ready must be a whole number from 1 to 1000, got %r" % (min_ready,))
    check_seconds("verify_timeout", verify_timeout, MAX_VERIFY_SECONDS)


def resolve_color(pair, to_color):
    """The colour ``to_color`` names now (:func:`common.resolve_color`)."""
    return common_resolve_color(to_color, pair["live_color"], option="to_color", allowed=TO_COLOR_CHOICES)


# -- plan -------------------------------------------------------------------------------------------
def plan_switch(pair, to_color, swap_preview=True):
    """``{from_color, to_color, changes}``: every Service selecting the other colour moves to ``to_color``.

    Each change is ``{service, role, before, after, resource_version}`` (``role``:
    ``live``, ``production`` or ``preview``); production changes come first, the
    preview last. An empty ``changes`` means the switch is done.
    """
    to = resolve_color(pair, to_color)
    old = other_color(to)
    preview = pair["names"]["preview_service"]
    changes = []
    for name, view in sorted(pair["service_views"].items()):
        slot = selects(view["selector"], pair["app"])
        if name == preview:
            if swap_preview and slot == to:
                changes.append(_change(view, "preview", old))
            continue
        if slot == old:
            changes.append(_change(view, "live" if name == pair["live_service"]["name"] else "production", to))
    changes.sort(key=lambda c: ({"live": 0, "production": 1, "preview": 2}[c["role"]], c["service"]))
    return {"from_color": old, "to_color": to, "changes": changes}


def _change(view, role, color):
    return {
        "service": view["name"],
        "role": role,
        "before": dict(view["selector"]),
        "after": dict(view["selector"], **{SLOT_LABEL: color}),
        "resource_version": view["resource_version"],
    }


def production_changes(plan):
    return [c for c in plan["changes"] if c["role"] != "preview"]


# -- guard ------------------------------------------------------------------------------------------
def required_ready(pair, to_color, min_ready=None):
    """How many Ready pods the colour traffic moves to must have: ``min_ready``, else the old colour's replicas (at least 1)."""
    if min_ready is not None:
        return min_ready
    return max(1, pair["colors"][other_color(to_color)]["replicas"])


def guard_switch(pair, plan, pods, min_ready=None, deployment=None):
    """Refuse a switch that would send production traffic to a colour not ready for it (a :class:`CutoverError`).

    ``pods`` are the app's pods; ``deployment`` the target Deployment as read
    right now (default: the one of ``pair``).
    """
    if not production_changes(plan):
        return {"required": 0, "ready": None}
    if pair["unslotted_services"]:
        raise CutoverError(
            "refusing to switch app %s: the Service(s) %s select both colours (app=%s without slot), so traffic would "
            "reach both; give them a slot selector first. Nothing was switched."
            % (pair["app"], ", ".join(pair["unslotted_services"]), pair["app"]),
            services=pair["unslotted_services"],
        )
    to = plan["to_color"]
    required = required_ready(pair, to, min_ready)
    container = pair["colors"][to]["container"]
    view = deployment_view(deployment, container) if deployment is not None else pair["colors"][to]
    ready = ready_count(pods, to, view["image"], view["container"])  # Ready on the image the colour is meant to run
    complete, why = rollout_state(view)
    details = dict(color=to, ready=ready, required=required, deployment=view["name"])
    if ready < required:
        raise CutoverError(
            "refusing to switch app %s to %s: it has %d Ready pod(s), %d required (%s). Nothing was switched."
            % (pair["app"], to, ready, required, why),
            **details,
        )
    if not complete:
        raise CutoverError(
            "refusing to switch app %s to %s: its rollout is not complete (%s). Nothing was switched." % (pair["app"], to, why), **details
        )
    return {"required": required, "ready": ready}


# -- apply ------------------------------------------------------------------------------------------
def selector_patch(change, conditional=True):
    """A merge patch setting the slot (other selector keys kept), conditional on the resourceVersion read."""
    patch = {"spec": {"selector": {SLOT_LABEL: change["after"][SLOT_LABEL]}}}
    if conditional and change.get("resource_version"):
        patch["metadata"] = {"resourceVersion": change["resource_version"]}
    return patch


def apply_switch(kube, namespace, changes, fence=None, clock=time.monotonic):
    """Patch every Service; when one fails put back those already patched and raise. Returns ``{seconds, switched_at, epoch}``."""
    applied = []
    with fences.fenced(fence):
        fences.guard("switching the Services")
    started = clock()
    for change in changes:
        try:
            _patch_selector(kube, namespace, change)
        except CutoverError as exc:
            undone, failed = _undo(kube, namespace, applied)
            raise CutoverError(
                "switching Service %s/%s failed (%s); the %d Service(s) already switched were put back%s"
                % (namespace, change["service"], exc.message, len(undone), (", except %s" % ", ".join(failed)) if failed else ""),
                failed_service=change["service"],
                undone=undone,
                not_undone=failed,
            ) from exc
        applied.append(change)
    # ``epoch``: the same moment as seconds since the epoch, to the millisecond (what a deployment record keeps).
    return {"seconds": round(clock() - started, 4), "switched_at": isoformat(utcnow()), "epoch": round(time.time(), 3)}


def _patch_selector(kube, namespace, change):
    """Patch one Service, conditional on its resourceVersion.

    When the Service changed since it was read (409) but its selector is still the
    one planned from (a label, an annotation, its status changed), the patch is made
    again against what it is now; a changed selector is refused, never overwritten.
    """
    for _attempt in range(ATTEMPTS):
        try:
            return kube.call("patch", "services", namespace, change["service"], body=selector_patch(change))
        except CutoverError as exc:
            if not is_conflict(exc):
                raise
            current = kube.call("get", "services", namespace, change["service"])
            selector = (current.get("spec") or {}).get("selector") or {}
            if selector != change["before"]:
                raise CutoverError(
                    "its selector changed since it was read (%s, planned from %s)" % (selector, change["before"]), status=409
                ) from exc
            change = dict(change, resource_version=(current.get("metadata") or {}).get("resourceVersion"))
    raise CutoverError("it kept changing while it was being switched (%d attempts)" % ATTEMPTS)


def _undo(kube, namespace, applied):
    undone, failed = [], []
    for change in reversed(applied):
        back = dict(change, after=change["before"])
        try:
            kube.call("patch", "services", namespace, change["service"], body=selector_patch(back, conditional=False))
            undone.append(change["service"])
        except CutoverError:
            failed.append(change["service"])
    return undone, failed


# -- verify -----------------------------------------------------------------------------------------
def verdict(app, services, slices_by_service, pods, to_color, required, preview):
    """``(ok, problems)``: every production Service of the app selects ``to_color`` and its endpoints hold only its pods."""
    by_name = {(p.get("metadata") or {}).get("name"): p for p in pods}
    by_ip = {(p.get("status") or {}).get("podIP"): p for p in pods if (p.get("status") or {}).get("podIP")}
    problems = []
    for service in services:
        name = (service.get("metadata") or {}).get("name")
        if name == preview:
            continue
        slot = selects((service.get("spec") or {}).get("selector") or {}, app)
        if slot is None:
            continue
        if slot != to_color:
            problems.append("Service %s selects %s" % (name, slot))
            continue
        ready = 0
        for key, is_ready in endpoint_pods(slices_by_service.get(name) or []).items():
            pod = by_name.get(key) or by_ip.get(key)
            color = pod_slot(pod) if pod is not None else None
            if color != to_color:
                problems.append("Service %s still has endpoint %s (%s)" % (name, key, color or "not a pod of the app"))
            elif is_ready:
                ready += 1
        if ready < required:
            problems.append("Service %s has %d Ready %s endpoint(s) of %d required" % (name, ready, to_color, required))
    return not problems, problems


def switched_condition(kube, pair, to_color, required):
    """The predicate of :func:`verify_switch`: :func:`verdict` holds (``state``: its problems, the Services verified)."""
    app, namespace = pair["app"], pair["namespace"]
    preview = pair["names"]["preview_service"]
    state = {"problems": ["nothing read yet"], "services": []}

    def check():
        services = items(kube.call("list", "services", namespace))
        mine = [s for s in services if selects((s.get("spec") or {}).get("selector") or {}, app)]
        names = [(s.get("metadata") or {}).get("name") for s in mine if (s.get("metadata") or {}).get("name") != preview]
        slices = slices_of(kube, namespace, names)
        pods = items(kube.call("list", "pods", namespace, label_selector=app_selector(app)))
        ok, state["problems"] = verdict(app, mine, slices, pods, to_color, required, preview)
        state["services"] = sorted(names)
        return ok

    what = "every production Service of %s to hold only %s endpoints" % (app, to_color)
    return Condition(what, check, lambda: "; ".join(state["problems"])), state


def verify_switch(kube, pair, to_color, required, timeout=60, fence=None, waiter=None):
    """Read back until :func:`verdict` holds (endpoints follow a selector within seconds); returns ``{seconds, services}``."""
    condition, state = switched_condition(kube, pair, to_color, required)
    with fences.fenced(fence):
        waited = waiter_for(waiter, delay=0.25, max_delay=2.0).wait(condition, timeout)
    return {"seconds": waited.seconds, "services": state["services"]}


# -- the active colour -----------------------------------------------------------------------------------
def publish_active_color(kube, app, namespace, name, color, check_mode=False, now=None):
    """Set ``data.color`` of the ConfigMap ``name`` (created when missing); returns ``{changed, before, after}``."""
    current = kube.get_or_none("configmaps", namespace, name)
    before = ((current or {}).get("data") or {}).get("color")
    if before == color:
        return {"changed": False, "before": before, "after": color, "config_map": name}
    if not check_mode:
        data = dict((current or {}).get("data") or {}, color=color, since=isoformat(now or utcnow()))
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
                "data": data,
            }
            kube.call("create", "configmaps", namespace, body=body)
        else:
            body = dict(current, data=data)  # names the resourceVersion read: a concurrent change is refused (409)
            kube.call("update", "configmaps", namespace, name, body=body)
    return {"changed": True, "before": before, "after": color, "config_map": name}


def read_target(kube, pair, to_color):
    """The target Deployment and the app's pods, read right before the guard."""
    deployment = kube.call("get", "apps/deployments", pair["namespace"], pair["colors"][to_color]["name"])
    pods = items(kube.call("list", "pods", pair["namespace"], label_selector=app_selector(pair["app"])))
    return deployment, pods


# -- the whole switch ------------------------------------------------------------------------------------
def switch(
    kube,
    pair,
    to_color="idle",
    min_ready=None,
    swap_preview=True,
    verify=True,
    verify_timeout=60,
    publish=True,
    standby_ttl=None,
    retire_after=None,
    guard=True,
    check_mode=False,
    fence=None,
    waiter=None,
    now=None,
):
    """Plan, guard, mark the old colour standby, apply, verify, publish the active colour.

    The old colour is marked standby *before* traffic moves (and unmarked again
    when the switch fails), so a run killed half way leaves a colour a re-run or
    a rollback can tell served production; a standby that is still live is never
    torn down (teardown refuses the live colour and any colour a Service selects).
    Returns ``{changed, from_color, to_color, changes, guard, switch, verify, active_color, standby, cleared}``.
    """
    moment = now or utcnow()
    plan = plan_switch(pair, to_color, swap_preview)
    to, old = plan["to_color"], plan["from_color"]
    guarded = None
    if guard:
        deployment, pods = read_target(kube, pair, to)
        guarded = guard_switch(pair, plan, pods, min_ready, deployment)
    moving = bool(production_changes(plan))
    # A switch that moves traffic starts the old colour's retire-after time again (as on AWS).
    marks = plan_marks(pair, old, to, moment, standby_ttl, retire_after, reset=moving)
    if not moving:
        marks["standby"]["set"] = {}  # only a switch that moves production traffic makes a standby
    standby = apply_marks(kube, pair, dict(marks, clear=[]), check_mode, fence)
    applied = None
    if plan["changes"] and not check_mode:
        try:
            applied = apply_switch(kube, pair["namespace"], plan["changes"], fence, waiter_for(waiter).clock)
        except CutoverError:
            if marks["standby"]["set"]:
                previous = pair["colors"][old]["annotations"]
                kube.call(
                    "patch",
                    "apps/deployments",
                    pair["namespace"],
                    pair["colors"][old]["name"],
                    body=annotations_patch(
                        {k: previous[k] for k in marks["standby"]["set"] if k in previous},
                        [k for k in marks["standby"]["set"] if k not in previous],
                    ),
                )
            raise
    verified = None
    if verify and not check_mode:
        verified = verify_switch(kube, pair, to, required_ready(pair, to, min_ready), verify_timeout, fence, waiter)
    published = None
    if publish:
        published = publish_active_color(
            kube, pair["app"], pair["namespace"], pair["names"]["active_color_config_map"], to, check_mode, moment
        )
    cleared = (
        apply_marks(kube, pair, dict(marks, standby=dict(marks["standby"], set={})), check_mode, fence)["cleared"] if marks["clear"] else []
    )
    return {
        "changed": bool(plan["changes"]) or standby["changed"] or bool(cleared) or bool(published and published["changed"]),
        "from_color": old,
        "to_color": to,
        "changes": plan["changes"],
        "guard": guarded,
        "switch": applied,
        "verify": verified,
        "active_color": published,
        "standby": standby["standby"] if moving or pair["colors"][old]["state"] else None,
        "cleared": cleared,
    }
