# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Drain a colour: deregister every target of its target group and wait until they are gone.

A colour may be drained only when no production forwarder (the production
listener's default action or any of its rules, or any other listener that is
not the test listener) sends it traffic with a weight above zero: the live
colour is never drained. The test listener may still point at the colour; that
is allowed and reported.

The wait honours the group's deregistration delay (in-flight requests finish):
targets in state ``draining`` are still there; the default timeout is the delay
plus a margin.
"""

from __future__ import annotations

import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence
from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import paginate
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLORS, CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.health import deregister
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import Pair, target_health
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import read_forwarders as pair_forwarders
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, check_seconds, waiter_for

DEREGISTRATION_DELAY = "deregistration_delay.timeout_seconds"
DEFAULT_DEREGISTRATION_DELAY = 300  # what AWS uses when the attribute is not set
DRAIN_MARGIN = 60  # seconds on top of the deregistration delay
DRAINING = "draining"


def resolve_color(pair, color):
    """``blue``/``green`` as given, ``idle`` as the pair's idle colour (:meth:`pair.Pair.resolve`); anything else is refused."""
    return pair.resolve(color, allowed=COLORS + ("idle",))


def _forwarder_summary(forwarder, weight):
    return {
        "arn": forwarder["arn"],
        "kind": forwarder["kind"],
        "listener_arn": forwarder["listener_arn"],
        "role": forwarder["role"],
        "priority": forwarder["priority"],
        "weight": weight,
    }


def forwarders_to(pair, color, forwarders=None, test=False):
    """The forwarders (the pair's, or ``forwarders``) of the production side (``test``: of the test listener) that send
    ``color`` traffic (weight > 0)."""
    found = []
    for forwarder in pair.forwarders if forwarders is None else forwarders:
        if (forwarder["role"] == "test") != test:
            continue
        weight = pair.color_weights(forwarder).get(color, 0)
        if weight > 0:
            found.append(_forwarder_summary(forwarder, weight))
    return found


def traffic_forwarders(pair, color):
    """Every non-test forwarder that sends ``color`` traffic (weight > 0)."""
    return forwarders_to(pair, color)


def forwarders_on_test_listener(pair, color):
    """Test-listener forwarders that send ``color`` traffic (allowed while draining; reported)."""
    return forwarders_to(pair, color, test=True)


def describe_forwarder(forwarder):
    if forwarder["kind"] == "listener":
        return "listener %s (default action, weight %s)" % (forwarder["arn"], forwarder["weight"])
    return "rule %s (priority %s, weight %s)" % (forwarder["arn"], forwarder["priority"], forwarder["weight"])


def _live_or_none(pair):
    try:
        return pair.live_color
    except CutoverError:
        return None


def refuse_if_serving(pair, color, action):
    """Raise when ``color`` is live or any production forwarder still sends it traffic."""
    forwarders = traffic_forwarders(pair, color)
    live = _live_or_none(pair)
    if color == live or forwarders:
        what = "the live colour" if color == live else "still in service"
        raise CutoverError(
            "refusing to %s %s of %r: it is %s; production traffic still goes to it through %s"
            % (action, color, pair.service, what, "; ".join(describe_forwarder(f) for f in forwarders) or "the production listener"),
            color=color,
            live_color=live,
            forwarders=forwarders,
        )


def read_forwarders(elbv2, pair):
    """Re-read, right now, the listeners and rules of the pair's load balancer (``pair.forwarders`` shape).

    The test listener's rules are not read (it never carries production traffic).
    """
    roles = {listener["arn"]: listener["role"] for listener in pair.listeners}
    listeners = [
        {"arn": listener["ListenerArn"], "role": roles.get(listener["ListenerArn"]), "default_actions": listener.get("DefaultActions")}
        for listener in paginate(elbv2, "describe_listeners", LoadBalancerArn=pair.load_balancer_arn)["Listeners"]
    ]
    return pair_forwarders(elbv2, listeners, rules_of_test=False)


def recheck_not_serving(elbv2, pair, color, action):
    """Re-read the production side now; refuse if the live colour changed or ``color`` gets traffic.

    Returns the live colour as just read.
    """
    now = Pair(pair.service, pair.load_balancer_arn, pair.colors, pair.listeners, read_forwarders(elbv2, pair))
    live_now = _live_or_none(now)
    live_before = pair.live_color
    if live_now != live_before:
        raise CutoverError(
            "refusing to %s %s of %r: the live colour changed from %s to %s since the pair was read"
            % (action, color, pair.service, live_before, live_now),
            live_color_before=live_before,
            live_color_now=live_now,
        )
    serving = forwarders_to(now, color)
    if color == live_now or serving:
        raise CutoverError(
            "refusing to %s %s of %r: production traffic goes to it through %s"
            % (action, color, pair.service, "; ".join(describe_forwarder(f) for f in serving) or "the production listener"),
            color=color,
            live_color=live_now,
            forwarders=serving,
        )
    return live_now


def deregistration_delay(elbv2, target_group_arn):
    """The group's ``deregistration_delay.timeout_seconds`` (AWS's default 300 when unset)."""
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=target_group_arn, aws_retry=True)["Attributes"]
    for attribute in attributes:
        if attribute["Key"] == DEREGISTRATION_DELAY:
            try:
                return int(attribute["Value"])
            except (TypeError, ValueError):
                break
    return DEFAULT_DEREGISTRATION_DELAY


def plan_drain(targets):
    """Split a group's targets into those to deregister and those already draining."""
    deregister = [t for t in targets if t["state"] != DRAINING]
    draining = [t for t in targets if t["state"] == DRAINING]
    return {"deregister": deregister, "draining": draining}


def _describe_targets(targets):
    return ", ".join("%s (%s)" % (t["id"], t["state"]) for t in targets)


def drained_condition(elbv2, target_group_arn, target_ids):
    """The predicate of the drain: none of ``target_ids`` is listed by DescribeTargetHealth any more (``draining`` still is).

    botocore has this wait as the ELBv2 waiter ``target_deregistered``; ours must
    differ on three points. botocore counts a target in state ``unused`` as
    deregistered, but a registered target of a group that no listener uses is
    ``unused`` too (``Target.NotInUse``), and the drained colour's group may be
    one; ours waits until the targets are gone from the group. Each look of ours
    first checks that the run still holds its lock (:mod:`fence`), so a drain of
    a run that lost it stops before the scale-down that follows. And ours reports
    progress and runs to a deadline (the deregistration delay plus a margin), not
    to a number of attempts.
    """
    watched = set(target_ids)
    last = {"remaining": []}

    def check():
        remaining = [t for t in target_health(elbv2, target_group_arn) if t["id"] in watched]
        last["remaining"] = remaining
        return not remaining

    def describe():
        remaining = last["remaining"]
        return "%d target(s) still registered: %s" % (len(remaining), _describe_targets(remaining))

    return Condition("targets of %s to drain" % target_group_arn.split(":")[-1], check, describe)


def wait_drained(elbv2, target_group_arn, target_ids, timeout, progress=None, clock=time.monotonic, sleep=time.sleep, waiter=None):
    """Wait until none of ``target_ids`` is listed by describe_target_health (``draining`` still counts).

    Returns the seconds waited.
    """
    waiter = waiter_for(waiter, progress, clock, sleep, delay=1.0, max_delay=15.0)
    return waiter.wait(drained_condition(elbv2, target_group_arn, target_ids), timeout).seconds


def drain(
    elbv2, pair, color, timeout=None, wait=True, check_mode=False, progress=None, clock=time.monotonic, sleep=time.sleep, waiter=None
):
    """Deregister every target of ``color``'s target group and (with ``wait``) wait until they are gone.

    Refuses the live colour, and any colour a production forwarder still sends
    traffic to. Idempotent: a group with nothing registered is left alone
    (``changed`` false). Returns a result dict (``drained`` target ids,
    ``waited`` seconds, ``test_forwarders`` that still point at the colour, ...).
    """
    check_seconds("timeout", timeout)
    refuse_if_serving(pair, color, "drain")
    group = pair.colors[color]["target_group"]
    targets = pair.colors[color]["targets"]
    plan = plan_drain(targets)
    result = {
        "color": color,
        "target_group_arn": group["arn"],
        "target_group_name": group["name"],
        "drained": [t["id"] for t in plan["deregister"]],
        "already_draining": [t["id"] for t in plan["draining"]],
        "test_forwarders": forwarders_on_test_listener(pair, color),
        "deregistration_delay": None,
        "waited": 0,
        "changed": bool(plan["deregister"]),
        "warnings": [],
        "diff": {
            "before": {"target_group": group["name"], "targets": [{"id": t["id"], "state": t["state"]} for t in targets]},
            "after": {"target_group": group["name"], "targets": []},
        },
    }
    if result["test_forwarders"]:
        result["warnings"].append(
            "the test listener still forwards to %s (%s); its requests will fail once the targets are gone"
            % (color, "; ".join(describe_forwarder(f) for f in result["test_forwarders"]))
        )
    if not targets:
        return result
    delay = deregistration_delay(elbv2, group["arn"])
    result["deregistration_delay"] = delay
    if timeout is None:
        timeout = delay + DRAIN_MARGIN
    elif wait and timeout < delay:
        result["warnings"].append(
            "timeout %s s is shorter than the deregistration delay of %s (%s s); in-flight requests may still be running"
            % (timeout, group["name"], delay)
        )
    if check_mode:
        return result
    if plan["deregister"]:
        fence.guard("draining %s of %r" % (color, pair.service))  # only a run that still holds the lock drains
        deregister(elbv2, group["arn"], plan["deregister"])
    if wait:
        result["waited"] = wait_drained(
            elbv2, group["arn"], [t["id"] for t in targets], timeout, progress=progress, clock=clock, sleep=sleep, waiter=waiter
        )
    return result
