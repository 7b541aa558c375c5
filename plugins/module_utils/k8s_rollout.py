# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Roll a release out on the idle colour of an app on Kubernetes, and wait until it is ready.

:func:`plan_rollout` decides, from the discovered pair, what the idle Deployment
becomes: the new image in its container, the live colour's replicas (or the
ones given), optionally a smaller preparation size first, and its standby marks
cleared (a colour being rolled out is no standby to return to). It refuses the
live colour, and a rollout while production traffic reaches the idle colour
(a Service of the app selecting it, or selecting both colours): the new pods
would serve users before anything checked them.

:func:`wait_ready` waits until the rollout is complete (as ``kubectl rollout
status`` judges it: this generation observed, every replica updated, ready and
available, no old pod left) and every pod of the colour runs the image and is
Ready. It fails early, naming each failing pod and its reason: at once for a
crash loop, an image that cannot be pulled or a broken container config; after
``unhealthy_timeout`` seconds for a pod that stays Pending (unschedulable) or
whose readiness probe keeps failing.
"""

from __future__ import annotations

import re

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence as fences
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLORS, CutoverError, resolve_color, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import items
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import (
    APP_LABEL,
    SLOT_LABEL,
    STATE_ANNOTATIONS,
    deployment_view,
    describe_problem,
    failing,
    pod_image,
    pod_problem,
    pods_of,
    probe_failures,
    ready_count,
    rollout_state,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, Waiter, check_seconds, waiter_for

MAX_REPLICAS = 1000
MAX_WAIT_SECONDS = 86400
# [registry[:port]/]path[:tag][@sha256:digest]
IMAGE_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$")
COLOR_CHOICES = COLORS + ("idle",)


def validate_replicas(option, value, low=0):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_REPLICAS:
        raise CutoverError("%s must be a whole number from %d to %d, got %r" % (option, low, MAX_REPLICAS, value))


def validate_inputs(image=None, replicas=None, preparation_replicas=None, color="idle", timeout=None, unhealthy_timeout=None):
    """Bad input fails before anything is read, naming the option and what is allowed."""
    if image is not None and (not isinstance(image, str) or len(image) > 512 or not IMAGE_RE.match(image)):
        raise CutoverError("image %r is not a container image reference, like registry.example.com/shop:v2 (a tag or a digest)" % (image,))
    validate_replicas("replicas", replicas)
    validate_replicas("preparation_replicas", preparation_replicas, low=1)
    if replicas is not None and preparation_replicas is not None and preparation_replicas >= replicas:
        raise CutoverError("preparation_replicas (%d) must be smaller than replicas (%d)" % (preparation_replicas, replicas))
    if color not in COLOR_CHOICES:
        raise CutoverError("color must be one of %s, got %r" % (", ".join(COLOR_CHOICES), color))
    check_seconds("wait_timeout", timeout, MAX_WAIT_SECONDS)
    check_seconds("unhealthy_timeout", unhealthy_timeout, MAX_WAIT_SECONDS)


def choose_color(pair, color="idle"):
    """The colour to roll out: the idle one; the live colour is refused."""
    chosen = resolve_color(color, pair["live_color"], allowed=COLOR_CHOICES)
    if chosen == pair["live_color"]:
        raise CutoverError(
            "%s is the live colour of app %s: a release goes to the idle colour (%s), never to the one serving production"
            % (chosen, pair["app"], pair["idle_color"]),
            live_color=pair["live_color"],
        )
    return chosen


def production_to(pair, color):
    """The Services (not the preview) that would send production traffic to ``color``'s pods."""
    return sorted((set(pair["services"][color]) | set(pair["unslotted_services"])) - {pair["names"]["preview_service"]})


def deployment_patch(container, image=None, replicas=None, clear=()):
    """A strategic merge patch of a Deployment: its container's image (merged by name), replicas, annotations dropped."""
    patch = {}
    if clear:
        patch["metadata"] = {"annotations": dict.fromkeys(clear)}
    spec = {}
    if replicas is not None:
        spec["replicas"] = replicas
    if image is not None:
        spec["template"] = {"spec": {"containers": [{"name": container, "image": image}]}}
    if spec:
        patch["spec"] = spec
    return patch


def plan_rollout(pair, image=None, replicas=None, preparation_replicas=None, color="idle"):
    """What rolling out does, as data: ``{color, live_color, deployment, image, replicas, steps, clear, changed, before, after}``.

    ``steps`` are the patches in order, each with the replicas to wait for:
    with ``preparation_replicas`` (when the colour is not yet that large) the
    image at the preparation size first, then the full size.
    """
    validate_inputs(image, replicas, preparation_replicas, color)
    chosen = choose_color(pair, color)
    reaching = production_to(pair, chosen)
    if reaching:
        raise CutoverError(
            "production traffic reaches the %s colour of app %s through the Service(s) %s: rolling a release out there would "
            "serve users before anything checked it. Point them at one colour (slot=%s) first."
            % (chosen, pair["app"], ", ".join(reaching), pair["live_color"]),
            services=reaching,
        )
    view = pair["colors"][chosen]
    live = pair["colors"][pair["live_color"]]
    wanted = live["replicas"] if replicas is None else replicas
    if preparation_replicas is not None and preparation_replicas >= wanted:
        raise CutoverError(
            "preparation_replicas (%d) must be smaller than replicas (%d, %s)"
            % (preparation_replicas, wanted, "given" if replicas is not None else "the live colour's")
        )
    new_image = image or view["image"]
    clear = [key for key in STATE_ANNOTATIONS if key in view["annotations"]]
    steps = []
    image_changes = new_image != view["image"]
    if preparation_replicas is not None and view["replicas"] < preparation_replicas:
        steps.append(
            {"replicas": preparation_replicas, "patch": deployment_patch(view["container"], new_image, preparation_replicas, clear)}
        )
        clear = []
        image_changes = False
    if image_changes or view["replicas"] != wanted or clear:
        steps.append(
            {
                "replicas": wanted,
                "patch": deployment_patch(view["container"], new_image if image_changes else None, wanted, clear),
            }
        )
    before = {"image": view["image"], "replicas": view["replicas"], "annotations": view["annotations"]}
    after = {
        "image": new_image,
        "replicas": wanted,
        "annotations": {k: v for k, v in view["annotations"].items() if k not in STATE_ANNOTATIONS},
    }
    return {
        "color": chosen,
        "live_color": pair["live_color"],
        "namespace": pair["namespace"],
        "deployment": view["name"],
        "container": view["container"],
        "image": new_image,
        "replicas": wanted,
        "steps": steps,
        "changed": bool(steps),
        "before": before,
        "after": after,
    }


# -- waiting ------------------------------------------------------------------------------------------
def readiness(deployment, pods, replicas, image, container, now, probe_messages=None):
    """``(ready, why, problems)`` of a colour: its rollout complete and every pod Ready on ``image``."""
    view = deployment_view(deployment, container)
    complete, why = rollout_state(view, replicas)
    color = (view["pod_labels"] or {}).get(SLOT_LABEL)
    current = pods_of(pods, color)
    # Pods of an older image are on their way out (a rolling update); the new ones must become Ready.
    problems = [p for p in (pod_problem(pod, now, probe_messages, container) for pod in current if pod_image(pod, container) == image) if p]
    stale = [pod for pod in current if pod_image(pod, container) != image]
    ready = ready_count(pods, color, image, container)  # what the switch's guard counts too
    if complete and not stale and ready == replicas and not problems:
        return True, "%d of %d pods Ready on %s" % (ready, replicas, image), []
    if complete:
        why = "%d of %d pods Ready on %s%s" % (ready, replicas, image, ", %d on another image" % len(stale) if stale else "")
    return False, why, problems


def ready_condition(kube, namespace, deployment, replicas, image, container=None, unhealthy_timeout=120, now=utcnow):
    """The predicate of :func:`wait_ready`: a :class:`waits.Condition` and the state it saw (``looks``, ``why``, ``problems``)."""
    state = {"looks": 0, "why": "nothing read yet", "problems": []}

    def check():
        state["looks"] += 1
        obj = kube.call("get", "apps/deployments", namespace, deployment)
        labels = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        selector = "%s=%s,%s=%s" % (APP_LABEL, labels.get(APP_LABEL), SLOT_LABEL, labels.get(SLOT_LABEL))
        pods = items(kube.call("list", "pods", namespace, label_selector=selector))
        moment = now()
        ready, why, problems = readiness(obj, pods, replicas, image, container, moment)
        if not ready and any(p["reason"] == "NotReady" for p in problems):
            # Pods running but not Ready: the kubelet's probe failures say why.
            events = items(kube.call("list", "events", namespace, field_selector="involvedObject.kind=Pod,reason=Unhealthy"))
            ready, why, problems = readiness(obj, pods, replicas, image, container, moment, probe_failures(events))
        state["why"], state["problems"] = why, problems
        bad = failing(problems, unhealthy_timeout)
        if bad:
            raise CutoverError(
                "the rollout of %s/%s failed: %s" % (namespace, deployment, "; ".join(describe_problem(p) for p in bad)),
                pods=bad,
                deployment=deployment,
            )
        return ready

    def describe():
        text = state["why"]
        if state["problems"]:
            text += "; " + "; ".join(describe_problem(p) for p in state["problems"])
        return text

    what = "%s/%s to be rolled out with %d Ready pod(s)" % (namespace, deployment, replicas)
    return Condition(what, check, describe), state


def wait_ready(
    kube, namespace, deployment, replicas, image, container=None, timeout=600, unhealthy_timeout=120, fence=None, waiter=None, now=utcnow
):
    """Wait until the colour of ``deployment`` is rolled out and all its pods are Ready; returns ``{seconds, looks, message}``.

    Fails early (a :class:`CutoverError` with ``pods``: each failing pod and its
    reason) as :func:`k8s_pair.failing` decides, and at ``timeout`` naming what
    is not ready. Every look checks (and renews) the run's ``fence``; ``waiter``
    (a module's) gives the progress lines and the pace cap.
    """
    condition, state = ready_condition(kube, namespace, deployment, replicas, image, container, unhealthy_timeout, now)
    with fences.fenced(fence):
        waited = waiter_for(waiter, delay=0.5, max_delay=3.0).wait(condition, timeout)
    return {"seconds": waited.seconds, "looks": state["looks"], "message": state["why"]}


def apply_rollout(kube, plan, wait=True, timeout=600, unhealthy_timeout=120, fence=None, waiter=None):
    """Make the planned changes, waiting for each size; returns ``{steps: [...], wait: {...}}``."""
    clock = (waiter or Waiter()).clock
    started = clock()
    done = []
    result = {"steps": done}

    def ready(replicas, seconds):
        return wait_ready(
            kube,
            plan["namespace"],
            plan["deployment"],
            replicas,
            plan["image"],
            plan["container"],
            seconds,
            unhealthy_timeout,
            waiter=waiter,
        )

    with fences.fenced(fence):
        for index, step in enumerate(plan["steps"]):
            fences.guard("patching Deployment %s" % plan["deployment"])
            kube.call("patch", "apps/deployments", plan["namespace"], plan["deployment"], body=step["patch"], patch="strategic")
            done.append({"replicas": step["replicas"]})
            if wait or index < len(plan["steps"]) - 1:
                done[-1]["seconds"] = ready(step["replicas"], max(0.0, timeout - (clock() - started)))["seconds"]
        if wait and not plan["steps"]:
            result["wait"] = ready(plan["replicas"], timeout)
    result["seconds"] = round(clock() - started, 3)
    return result
