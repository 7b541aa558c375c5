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
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import forward_weights, target_health
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import poll

DEREGISTRATION_DELAY = "deregistration_delay.timeout_seconds"
DEFAULT_DEREGISTRATION_DELAY = 300  # what AWS uses when the attribute is not set
DRAIN_MARGIN = 60  # seconds on top of the deregistration delay
DRAINING = "draining"


def resolve_color(pair, color):
    """``blue``/``green`` as given, ``idle`` as the pair's idle colour; anything else is refused."""
    if color == "idle":
        return pair.idle_color
    if color not in COLORS:
        raise CutoverError("colour %r is not one of %s or idle" % (color, ", ".join(COLORS)))
    return color


def _forwarder_summary(forwarder, weight):
    return {
        "arn": forwarder["arn"],
        "kind": forwarder["kind"],
        "listener_arn": forwarder["listener_arn"],
        "role": forwarder["role"],
        "priority": forwarder["priority"],
        "weight": weight,
    }


def traffic_forwarders(pair, color):
    """Every non-test forwarder that sends ``color`` traffic (weight > 0)."""
    found = []
    for forwarder in pair.production_forwarders():
        weight = pair.color_weights(forwarder).get(color, 0)
        if weight > 0:
            found.append(_forwarder_summary(forwarder, weight))
    return found


def forwarders_on_test_listener(pair, color):
    """Test-listener forwarders that send ``color`` traffic (allowed while draining; reported)."""
    found = []
    for forwarder in pair.forwarders:
        if forwarder["role"] != "test":
            continue
        weight = pair.color_weights(forwarder).get(color, 0)
        if weight > 0:
            found.append(_forwarder_summary(forwarder, weight))
    return found


def describe_forwarder(forwarder):
    if forwarder["kind"] == "listener":
        return "listener %s (default action, weight %s)" % (forwarder["arn"], forwarder["weight"])
    return "rule %s (priority %s, weight %s)" % (forwarder["arn"], forwarder["priority"], forwarder["weight"])


def refuse_if_serving(pair, color, action):
    """Raise when ``color`` is live or any production forwarder still sends it traffic."""
    forwarders = traffic_forwarders(pair, color)
    live = None
    try:
        live = pair.live_color
    except CutoverError:
        pass
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
    """Re-read, right now, the listeners and rules of the pair's load balancer (``pair.forwarders`` shape, weights only).

    The test listener's rules are not read (it never carries production traffic).
    """
    roles = {listener["arn"]: listener["role"] for listener in pair.listeners}
    listeners = paginate(elbv2, "describe_listeners", LoadBalancerArn=pair.load_balancer_arn)["Listeners"]
    forwarders = []
    for listener in listeners:
        arn = listener["ListenerArn"]
        role = roles.get(arn)
        forwarders.append(
            {
                "arn": arn,
                "kind": "listener",
                "listener_arn": arn,
                "role": role,
                "priority": "default",
                "weights": forward_weights(listener.get("DefaultActions")),
            }
        )
        if role == "test":
            continue
        for rule in elbv2.describe_rules(ListenerArn=arn, aws_retry=True)["Rules"]:
            if rule.get("IsDefault"):
                continue
            forwarders.append(
                {
                    "arn": rule["RuleArn"],
                    "kind": "rule",
                    "listener_arn": arn,
                    "role": role,
                    "priority": rule.get("Priority"),
                    "weights": forward_weights(rule.get("Actions")),
                }
            )
    return forwarders


def recheck_not_serving(elbv2, pair, color, action):
    """Re-read the production side now; refuse if the live colour changed or ``color`` gets traffic.

    Returns the live colour as just read.
    """
    fresh = read_forwarders(elbv2, pair)
    production = [f for f in fresh if f["kind"] == "listener" and f["role"] == "production"]
    weights = pair.color_weights(production[0]) if production else {}
    weights = {c: w for c, w in weights.items() if w > 0}
    live_now = max(sorted(weights), key=lambda c: weights[c]) if weights else None
    live_before = pair.live_color
    if live_now != live_before:
        raise CutoverError(
            "refusing to %s %s of %r: the live colour changed from %s to %s since the pair was read"
            % (action, color, pair.service, live_before, live_now),
            live_color_before=live_before,
            live_color_now=live_now,
        )
    serving = []
    for forwarder in fresh:
        if forwarder["role"] == "test":
            continue
        weight = pair.color_weights(forwarder).get(color, 0)
        if weight > 0:
            serving.append(_forwarder_summary(forwarder, weight))
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


def wait_drained(elbv2, target_group_arn, target_ids, timeout, progress=None, clock=time.monotonic, sleep=time.sleep):
    """Wait until none of ``target_ids`` is listed by describe_target_health (``draining`` still counts).

    Returns the seconds waited.
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

    _result, waited = poll(
        check,
        timeout,
        "targets of %s to drain" % target_group_arn.split(":")[-1],
        delay=1.0,
        max_delay=15.0,
        progress=progress,
        describe=describe,
        clock=clock,
        sleep=sleep,
    )
    return waited


def _target_key(target):
    key = {"Id": target["id"]}
    if target.get("port") is not None:
        key["Port"] = target["port"]
    return key


def drain(elbv2, pair, color, timeout=None, wait=True, check_mode=False, progress=None, clock=time.monotonic, sleep=time.sleep):
    """Deregister every target of ``color``'s target group and (with ``wait``) wait until they are gone.

    Refuses the live colour, and any colour a production forwarder still sends
    traffic to. Idempotent: a group with nothing registered is left alone
    (``changed`` false). Returns a result dict (``drained`` target ids,
    ``waited`` seconds, ``test_forwarders`` that still point at the colour, ...).
    """
    if timeout is not None and timeout < 0:
        raise CutoverError("timeout must not be negative, got %s" % timeout)
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
        elbv2.deregister_targets(TargetGroupArn=group["arn"], Targets=[_target_key(t) for t in plan["deregister"]], aws_retry=True)
    if wait:
        result["waited"] = wait_drained(
            elbv2, group["arn"], [t["id"] for t in targets], timeout, progress=progress, clock=clock, sleep=sleep
        )
    return result
