# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Rollback as one operation: lock, restore if retired, switch back, keep the other colour warm, journal, unlock.

The rollback holds the lock itself, in one module process: it renews its lease
on the looks of its restore wait, stops when its controller dies or another run
takes its lock (:mod:`fence`), and can take the lock at once from a run named
by ``takeover`` (an incident rollback while a killed run's lease is live).

A rollback is the command run when production is hurting, so it is one call
(one process, one set of clients) rather than a chain of tasks: the lock is
always released, and every step is the same library code the single-purpose
modules use, with the same refusals (never to an unhealthy colour, never to a
colour that did not serve production before).
"""

from __future__ import annotations

import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import journal, lease, locking
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLORS, CutoverError, other_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.fence import Fence, fenced
from ansible_collections.cutover.bluegreen.plugins.module_utils.parameter import publish_active_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import after_switch, restore
from ansible_collections.cutover.bluegreen.plugins.module_utils.switch import switch

RETURNABLE = ("standby", "retired")


def open_canary(dynamodb, table, service, look_back=10):
    """The newest deployment a canary run left open (in progress, phase canary), or None."""
    for item in journal.recent(dynamodb, table, service, look_back):
        if item.get("outcome") == journal.IN_PROGRESS and (item.get("record") or {}).get("phase") == "canary":
            return item
    return None


def choose_target(pair, to, canary=None):
    """The colour to return to: ``previous`` is the colour not live now; refuses one that never served production.

    While production is split (a canary waits for promotion), rolling back means
    ending the canary: every request goes back to the colour that served before
    it (``canary``'s from colour, else the colour with the most traffic).
    """
    if to not in COLORS + ("previous",):
        raise CutoverError("to must be previous, blue or green, got %r" % (to,))
    live = pair.live_color
    if pair.split:
        before = ((canary or {}).get("record") or {}).get("from_color") or live
        if to not in ("previous", before):
            raise CutoverError(
                "production traffic of %s is split and %s is the canary: a rollback returns all traffic to %s; "
                "to send everything to %s, promote the canary. Nothing was changed." % (pair.service, to, before, to),
                live_color=live,
                color=to,
            )
        return live, before
    target = pair.idle_color if to == "previous" else to
    if target == live:
        return live, target
    asg = pair.colors[target]["asg"]
    if asg["state"] not in RETURNABLE:
        raise CutoverError(
            "nothing to roll back to for %s: %s is not a standby or retired colour (state %s, %d instances in service); "
            "only a colour that a release left behind can be rolled back to. Nothing was changed."
            % (pair.service, target, asg["state"] or "none", asg["in_service"]),
            live_color=live,
            color=target,
        )
    return live, target


def rollback(
    clients,
    discover,
    service,
    owner,
    token,
    table,
    to="previous",
    lease_seconds=60,
    takeover=None,
    controller=None,
    standby_ttl="1d",
    capacity=None,
    wait_timeout=600,
    parameter_name=None,
    deregister_foreign=False,
    check_mode=False,
    progress=None,
    clock=time.monotonic,
    waiter=None,
):
    """Roll ``service`` back; ``clients`` has elbv2, autoscaling, dynamodb and ssm; ``discover()`` reads the pair.

    The run ``token`` (``owner`` for people) holds the lock throughout and
    renews it on the looks of its waits while its ``controller`` lives;
    ``takeover`` takes a live lock from the run it names. A run that loses its
    lock stops before its next change and leaves the journal to the new holder.
    Returns ``{changed, from_color, to_color, restored, switch, standby, deployment_id, seconds, took_over}``.
    """
    lease.validate(owner, token, lease_seconds, takeover)
    started = clock()
    dynamodb = clients["dynamodb"]
    pair = discover()
    canary = open_canary(dynamodb, table, service) if pair.split else None
    live, target = choose_target(pair, to, canary)
    result = dict(
        changed=False,
        from_color=other_color(target),
        to_color=target,
        restored=None,
        switch=None,
        standby=None,
        deployment_id=None,
        canary=None,
        took_over=None,
    )
    if target == live and not pair.split:
        result.update(from_color=live, message="%s is already live; nothing to roll back" % target, seconds=round(clock() - started, 3))
        return result

    lock, entries = lease.Table(dynamodb, table, service), journal.Journal(dynamodb, table, service)
    entry, _locked, settled = locking.open_entry(
        lock,
        entries,
        owner,
        token,
        lease_seconds,
        purpose="rollback to %s" % target,
        takeover=takeover,
        record={"kind": "rollback", "from_color": other_color(target), "to_color": target, "canary": canary and canary["deployment_id"]},
        check_mode=check_mode,
    )
    result["deployment_id"] = entry["deployment_id"]
    if settled is not None:
        settled.pop("entry", None)
        result["took_over"] = settled
        # The run whose lock this is may have changed the pair since it was read: read it again.
        pair = discover()
        canary = open_canary(dynamodb, table, service) if pair.split else canary
        live, target = choose_target(pair, to, canary)
    result.update(from_color=other_color(target), to_color=target)
    outcome = "failed"
    lost = False
    fence_ = None if check_mode else Fence(dynamodb, table, service, token, controller=controller, renews=True, lease_seconds=lease_seconds)
    try:
        with fenced(fence_):
            options = dict(
                standby_ttl=standby_ttl,
                capacity=capacity,
                wait_timeout=wait_timeout,
                parameter_name=parameter_name,
                deregister_foreign=deregister_foreign,
                waiter=waiter,
            )
            _roll_back(
                clients, discover, table, pair, live, target, canary, entry["deployment_id"], result, check_mode, progress, **options
            )
        outcome = "succeeded"
    except lease.LostLock:
        lost = True
        raise
    except CutoverError as exc:
        result["message"] = exc.message
        raise
    finally:
        result["seconds"] = round(clock() - started, 3)
        if not lost:  # a run that lost its lock leaves the journal and the lock to their new holder
            locking.give_back(
                lock,
                token,
                lambda: _close_journal(dynamodb, table, service, entry["deployment_id"], outcome, result, check_mode, progress),
                check_mode=check_mode,
            )
    return result


def _roll_back(clients, discover, table, pair, live, target, canary, deployment_id, result, check_mode, progress, **options):
    """The rollback's changes, under the lock: restore ``target`` if needed, switch to it, mark the other colour standby."""
    service = pair.service
    away = other_color(target)
    # A retired colour is scaled back up; any colour gets its targets registered and healthy and
    # its standby marks cleared (it is about to be live) before a single request is sent to it.
    if target != live:  # the colour with the most traffic needs no restoring
        restored = restore(
            clients["elbv2"],
            clients["autoscaling"],
            pair,
            target,
            capacity=options["capacity"],
            wait_timeout=options["wait_timeout"],
            deregister_foreign=options["deregister_foreign"],
            check_mode=check_mode,
            progress=progress,
            waiter=options["waiter"],
        )
        restored.pop("diff", None)
        result["restored"] = restored
        if restored["changed"] and not check_mode:
            pair = discover()  # its size, targets and tags are new now
    # In check mode nothing is restored or waited on, so a colour a real run would first bring
    # up and wait for cannot pass the switch's health guard yet: the guard is the real run's.
    waits = check_mode and result["restored"] is not None and not result["restored"]["ready"]
    switched = switch(
        clients["elbv2"],
        pair,
        to_color=target,
        force=waits,
        check_mode=check_mode,
        deregister_foreign=options["deregister_foreign"],
        progress=progress,
        waiter=options["waiter"],
    )
    if options["parameter_name"]:
        publish_active_color(clients["ssm"], options["parameter_name"], target, check_mode=check_mode)
    marks = after_switch(clients["autoscaling"], switched["pair"], away, target, standby_ttl=options["standby_ttl"], check_mode=check_mode)
    standby = marks["standby"]
    result.update(
        changed=True,
        switch={k: switched[k] for k in ("changes", "switch_seconds", "switched_at", "verified", "deregistered")},
        standby=standby,
        message="%s is live again; %s is the standby until %s" % (target, away, standby["retire_after"]),
    )
    if canary:
        result["canary"] = canary["deployment_id"]
        result["message"] = "the canary %s on %s was ended: %s" % (canary["deployment_id"], away, result["message"])
        journal.finish(
            clients["dynamodb"],
            table,
            service,
            canary["deployment_id"],
            "rolled_back",
            summary="ended by rollback %s: %s serves all of production again" % (deployment_id, target),
            check_mode=check_mode,
        )


def _close_journal(dynamodb, table, service, deployment_id, outcome, result, check_mode, progress):
    durations = {"rollback_seconds": result["seconds"]}
    if result["switch"]:
        durations["cutover_seconds"] = result["switch"]["switch_seconds"]
    if result["restored"] and result["restored"]["size_before"] != result["restored"]["size_after"]:
        durations["restore_seconds"] = round(sum(result["restored"]["waited"].values()), 3)
    try:
        return journal.finish(
            dynamodb,
            table,
            service,
            deployment_id,
            outcome,
            summary=(result.get("message") or "rollback %s" % outcome)[:900],
            record={"durations": durations},
            check_mode=check_mode,
        )
    except CutoverError as exc:
        if outcome == "succeeded":
            raise
        if progress:  # the rollback's own failure is what the caller must see
            progress("the journal entry %s could not be closed: %s" % (deployment_id, exc.message))
        return None
