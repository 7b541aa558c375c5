# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Rollback of an app on Kubernetes as one operation: lock, scale back up, wait Ready, switch back, journal, unlock.

A rollback is what is run when production hurts, so it is one module call: the
lock is always released, and every step is the library code the single-purpose
modules use, with the same refusals — never to a colour that never served
production (it must carry the standby or retired mark a switch or a teardown
left), never to one with fewer Ready pods than required.
"""

from __future__ import annotations

import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence as fences
from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_journal, k8s_lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLORS, CutoverError, other_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_retire import RETURNABLE, plan_restore
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_rollout import wait_ready
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_switch import switch

TO_CHOICES = ("previous",) + COLORS


def choose_target(pair, to="previous"):
    """``(live, target)``: ``previous`` is the colour not live now; a colour that never served production is refused."""
    if to not in TO_CHOICES:
        raise CutoverError("to must be one of %s, got %r" % (", ".join(TO_CHOICES), to))
    live = pair["live_color"]
    target = pair["idle_color"] if to == "previous" else to
    if target == live:
        return live, target
    view = pair["colors"][target]
    if view["state"] not in RETURNABLE:
        raise CutoverError(
            "nothing to roll back to for app %s: %s (%s, %d replicas, image %s) is not a standby or retired colour; only a "
            "colour that served production before a switch can be rolled back to. Nothing was changed."
            % (pair["app"], target, view["name"], view["replicas"], view["image"]),
            live_color=live,
            color=target,
        )
    return live, target


def rollback(
    kube,
    discover,
    app,
    namespace,
    owner,
    token,
    to="previous",
    takeover=None,
    lease_seconds=60,
    standby_ttl="1d",
    replicas=None,
    wait_timeout=600,
    unhealthy_timeout=120,
    verify_timeout=60,
    check_mode=False,
    progress=None,
    controller=None,
    clock=time.monotonic,
    waiter=None,
):
    """Roll ``app`` back; ``discover()`` reads the pair.

    With ``controller`` (the run's ``ansible-playbook`` process), the waits and changes stop once it is gone.

    Returns ``{changed, from_color, to_color, restored, switch, deployment_id, seconds}``.
    """
    started = clock()
    k8s_lease.validate(owner, token, lease_seconds, takeover)
    pair = discover()
    live, target = choose_target(pair, to)
    away = other_color(target)
    result = dict(changed=False, from_color=away, to_color=target, restored=None, switch=None, deployment_id=None)
    if target == live:
        result.update(from_color=live, message="%s is already live; nothing to roll back" % target, seconds=round(clock() - started, 3))
        return result

    entry, locked, settled = k8s_journal.open_under_lock(
        kube,
        app,
        namespace,
        owner,
        token,
        lease_seconds,
        purpose="rollback to %s" % target,
        takeover=takeover,
        record={"kind": "rollback", "from_color": away, "to_color": target, "to_image": pair["colors"][target]["image"]},
        check_mode=check_mode,
    )
    result.update(deployment_id=entry["deployment_id"], lock=locked["lock"], settled=settled)
    fence = None if check_mode else k8s_lease.Fence(kube, app, namespace, token, lease_seconds, controller=controller, clock=clock)
    outcome = "failed"
    try:
        with fences.fenced(fence):
            options = dict(
                replicas=replicas,
                standby_ttl=standby_ttl,
                wait_timeout=wait_timeout,
                unhealthy_timeout=unhealthy_timeout,
                verify_timeout=verify_timeout,
            )
            _roll_back(kube, discover, pair, target, away, result, check_mode, waiter, **options)
        outcome = "succeeded"
    except CutoverError as exc:
        result["message"] = exc.message
        raise
    finally:
        result["seconds"] = round(clock() - started, 3)
        _close(kube, app, namespace, token, entry["deployment_id"], outcome, result, check_mode, progress)
    return result


def _roll_back(kube, discover, pair, target, away, result, check_mode, waiter, **options):
    """The rollback's changes, under the lock: scale ``target`` back up and wait Ready, switch to it, the other colour standby."""
    namespace = pair["namespace"]
    restore = plan_restore(pair, target, options["replicas"])
    result["restored"] = {"color": target, "replicas": restore["replicas"], "scaled": restore["patch"] is not None}
    if restore["patch"] and not check_mode:
        fences.guard("scaling %s up" % restore["deployment"])
        kube.call("patch", "apps/deployments", namespace, restore["deployment"], body=restore["patch"])
    if not check_mode:
        waited = wait_ready(
            kube,
            namespace,
            restore["deployment"],
            restore["replicas"],
            restore["image"],
            restore["container"],
            options["wait_timeout"],
            options["unhealthy_timeout"],
            waiter=waiter,
        )
        result["restored"]["wait_seconds"] = waited["seconds"]
        pair = discover()  # its size and pods are new now
    # In check mode a colour a real run must first bring up cannot pass the guard yet: the guard is the real run's.
    switched = switch(
        kube,
        pair,
        to_color=target,
        min_ready=restore["replicas"] if restore["replicas"] else None,
        verify_timeout=options["verify_timeout"],
        standby_ttl=options["standby_ttl"],
        guard=not (check_mode and restore["patch"]),
        check_mode=check_mode,
        waiter=waiter,
    )
    result.update(
        changed=True,
        switch={k: switched[k] for k in ("changes", "switch", "verify", "active_color", "standby", "cleared")},
        message="%s is live again; %s is the standby until %s" % (target, away, (switched["standby"] or {}).get("retire_after")),
    )


def _close(kube, app, namespace, token, deployment_id, outcome, result, check_mode, progress):
    """Close the rollback's journal entry and release the lock; a failure to do so fails only a rollback that succeeded."""

    def close():
        record = {"restored": result["restored"], "seconds": result["seconds"]}
        return k8s_journal.finish(kube, app, namespace, deployment_id, outcome, result.get("message"), record, check_mode=check_mode)

    try:
        k8s_journal.close_under_lock(kube, app, namespace, token, close, check_mode=check_mode)
    except CutoverError as exc:
        if outcome == "succeeded":
            raise
        if progress:
            progress("closing the journal entry %s failed: %s" % (deployment_id, exc.message))
