# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Move production traffic between the colours of a pair.

The switch is computed first, as data, from a discovered :class:`Pair`
(:func:`plan_switch`): one change per forwarder (a listener's default action or
a rule) whose forward action has to change. Every forwarder of the production
side that forwards into the pair moves to the wanted colour, or to a weighted
split of both colours (a canary); target groups outside the pair and actions
other than ``forward`` are kept as they are. On a full switch the test listener
is pointed at the colour that becomes idle.

:func:`guard_switch` refuses a switch that would send traffic to a colour with
too few healthy targets (or no instances at all) unless forced.
:func:`apply_switch` changes the production forwarders first (listener default
actions, then rules), the test listener last, and puts every change back if any
call fails, so that nothing is left half switched. :func:`verify_switch` reads
the forwarders back. :func:`switch` does all of that in order.

Every client call passes ``aws_retry=True`` (retries of throttling when the
client is amazon.aws's ``RetryingBotoClientWrapper``; see ``pair.plain_client``);
listeners and rules are modified through ``aws.write_once``, so that a retried
modification never applies twice.
"""

from __future__ import annotations

import copy
import time
from fractions import Fraction

from ansible_collections.cutover.bluegreen.plugins.module_utils import capacity, fence, health
from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import call_errors, write_once
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import describe_target, target_key
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLORS, CutoverError, other_color
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import Pair, forward_groups, forward_weights
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, WaitTimeout, waiter_for

MAX_WEIGHT = 999  # what an ALB forward action accepts per target group
TO_COLOR_CHOICES = COLORS + ("idle",)


# -- input ------------------------------------------------------------------------------------
def validate_weights(weights):
    """``{"blue": int, "green": int}`` from what the caller gave, or a CutoverError naming the problem."""
    if not isinstance(weights, dict) or not weights:
        raise CutoverError("weights must be a mapping of both colours to integers, e.g. {blue: 90, green: 10}; got %r" % (weights,))
    unknown = sorted(str(color) for color in weights if color not in COLORS)
    if unknown:
        raise CutoverError("weights may only name the colours of the pair (%s); unknown: %s" % (", ".join(COLORS), ", ".join(unknown)))
    missing = [color for color in COLORS if weights.get(color) is None]
    if missing:
        raise CutoverError("weights must give a weight for both colours, e.g. {blue: 90, green: 10}; missing: %s" % ", ".join(missing))
    checked = {}
    for color in COLORS:
        value = weights[color]
        if isinstance(value, bool) or not isinstance(value, int):
            raise CutoverError("weight of %s must be an integer from 0 to %d, got %r" % (color, MAX_WEIGHT, value))
        if not 0 <= value <= MAX_WEIGHT:
            raise CutoverError("weight of %s must be from 0 to %d (what a load balancer accepts), got %d" % (color, MAX_WEIGHT, value))
        checked[color] = value
    if sum(checked.values()) == 0:
        raise CutoverError(
            "weights %s send traffic to neither colour; at least one weight must be above 0"
            % ", ".join("%s=%d" % (color, checked[color]) for color in COLORS)
        )
    return checked


def validate_to_color(to_color):
    if to_color not in TO_COLOR_CHOICES:
        raise CutoverError("to_color must be one of %s, got %r" % (", ".join(TO_COLOR_CHOICES), to_color))
    return to_color


def resolve_color(pair, to_color):
    """The colour ``to_color`` names now: ``idle`` is the colour that is idle when this is called (refused while split)."""
    return pair.resolve(to_color, option="to_color", allowed=TO_COLOR_CHOICES)


# -- reading forward actions (pair.forward_groups reads them) ---------------------------------
def _shares(weights):
    """Each target group's share of the traffic (zero weights left out): equal shares = same traffic."""
    total = sum(weights.values())
    if not total:
        return {}
    return {key: Fraction(weight, total) for key, weight in weights.items() if weight > 0}


def _nonzero(weights):
    return {key: weight for key, weight in weights.items() if weight > 0}


def color_weights(pair, actions):
    """``{color: weight}`` of actions, target groups outside the pair left out."""
    return pair.color_weights({"weights": forward_weights(actions)})


def color_shares(pair, actions):
    """``{color: share of all the traffic of these actions}``, other target groups counted in the total."""
    shares = {}
    for arn, share in _shares(forward_weights(actions)).items():
        color = pair.color_of(arn)
        if color:
            shares[color] = shares.get(color, 0) + share
    return shares


def weights_text(weights, others=None):
    """``green`` or ``blue 90, green 10`` (+ other target groups), for messages and diffs."""
    colors = {color: weight for color, weight in (weights or {}).items() if weight > 0}
    others = {arn: weight for arn, weight in (others or {}).items() if weight > 0}
    if len(colors) == 1 and not others:
        return next(iter(colors))
    parts = ["%s %d" % (color, colors[color]) for color in COLORS if color in colors]
    parts += ["%s %d" % (_name_of(arn), others[arn]) for arn in sorted(others)]
    return ", ".join(parts) if parts else "no target group of the pair"


def _name_of(target_group_arn):
    # arn:aws:elasticloadbalancing:region:account:targetgroup/<name>/<id>
    parts = target_group_arn.split("/")
    return parts[1] if len(parts) > 2 else target_group_arn


def forwarder_text(pair, actions):
    weights = forward_weights(actions)
    others = {arn: weight for arn, weight in weights.items() if pair.color_of(arn) is None}
    return weights_text(color_weights(pair, actions), others)


def forwarder_label(pair, forwarder):
    """``production listener :80 default action`` or ``production listener :80 rule 10``."""
    listener = next((item for item in pair.listeners if item["arn"] == forwarder["listener_arn"]), {})
    role = listener.get("role") or forwarder.get("role")
    name = "%s listener" % role if role else "listener"
    if listener.get("port") is not None:
        name += " :%s" % listener["port"]
    if forwarder["kind"] == "listener":
        return name + " default action"
    return name + " rule %s" % forwarder.get("priority")


def describe_forwarders(pair):
    """``{label: colours and weights}`` of every forwarder into the pair (for diffs)."""
    return {forwarder_label(pair, f): forwarder_text(pair, f["actions"]) for f in pair.forwarders if pair.color_weights(f)}


# -- planning ---------------------------------------------------------------------------------
def _forward_action(original, groups):
    """A forward action like ``original`` (order, stickiness) that forwards to ``groups``."""
    action = {key: copy.deepcopy(value) for key, value in original.items() if key not in ("TargetGroupArn", "ForwardConfig")}
    stickiness = (original.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig")
    if len(groups) == 1 and not (stickiness or {}).get("Enabled"):
        action["TargetGroupArn"] = groups[0][0]
    else:
        config = {"TargetGroups": [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in groups]}
        if stickiness:
            config["TargetGroupStickinessConfig"] = copy.deepcopy(stickiness)
        action["ForwardConfig"] = config
    return action


def retarget(pair, actions, to_color=None, weights=None):
    """``actions`` with the pair's part of the forward action moved to ``to_color`` or split by ``weights``.

    Target groups outside the pair keep their place and weight; other actions
    (authentication, ...) are kept as they are. On a full switch the colour gets
    the weight the pair had, so the share of other target groups is unchanged.
    """
    pair_arns = {color: pair.colors[color]["target_group"]["arn"] for color in COLORS}
    in_pair = set(pair_arns.values())
    result = []
    for action in actions or []:
        groups = forward_groups([action])
        if not any(arn in in_pair for arn, _weight in groups):
            result.append(copy.deepcopy(action))
            continue
        if weights is None:
            pair_total = sum(weight for arn, weight in groups if arn in in_pair)
            if pair_total == 0:  # sends nothing into the pair: nothing to move
                result.append(copy.deepcopy(action))
                continue
            replacement = [(pair_arns[to_color], pair_total)]
        else:
            replacement = [(pair_arns[color], weights[color]) for color in COLORS]
        rebuilt = []
        for arn, weight in groups:
            if arn not in in_pair:
                rebuilt.append((arn, weight))
            elif replacement:
                rebuilt.extend(replacement)
                replacement = None
        result.append(_forward_action(action, rebuilt))
    return result


def _order_key(change):
    """Production before test; listener default actions before rules; rules by priority."""
    priority = change.get("priority")
    number = int(priority) if str(priority).isdigit() else -1
    return (change.get("role") == "test", change["kind"] != "listener", number)


def _plan_forwarder(pair, forwarder, to_color, weights):
    after = retarget(pair, forwarder["actions"], to_color=to_color, weights=weights)
    before_weights = forward_weights(forwarder["actions"])
    after_weights = forward_weights(after)
    if weights is None:
        unchanged = _shares(before_weights) == _shares(after_weights)  # traffic already where it should be
    else:
        unchanged = _nonzero(before_weights) == _nonzero(after_weights)
    if unchanged:
        return None
    listener = next((item for item in pair.listeners if item["arn"] == forwarder["listener_arn"]), {})
    return {
        "arn": forwarder["arn"],
        "kind": forwarder["kind"],
        "role": forwarder["role"],
        "listener_arn": forwarder["listener_arn"],
        "listener_port": listener.get("port"),
        "priority": forwarder["priority"],
        "label": forwarder_label(pair, forwarder),
        "before": copy.deepcopy(forwarder["actions"]),
        "after": after,
        "before_weights": color_weights(pair, forwarder["actions"]),
        "after_weights": color_weights(pair, after),
        "before_text": forwarder_text(pair, forwarder["actions"]),
        "after_text": forwarder_text(pair, after),
    }


def plan_switch(pair, to_color, weights=None, swap_test_listener=True):
    """The changes that move production traffic to ``to_color`` (or split it by ``weights``).

    One change per forwarder whose forward action has to change, production
    listener default actions first, then rules, test listener last. With
    ``weights`` (``{"blue": 90, "green": 10}``) ``to_color`` is not used and the
    test listener is left alone. Forwarders already as wanted give no change.
    """
    if weights is not None:
        weights = validate_weights(weights)
        to_color = None
    elif to_color not in COLORS:
        raise CutoverError("to_color must be blue or green to plan a switch, got %r" % (to_color,))
    changes = []
    for forwarder in pair.production_forwarders():
        change = _plan_forwarder(pair, forwarder, to_color, weights)
        if change:
            changes.append(change)
    if weights is None and swap_test_listener:
        idle = other_color(to_color)
        for forwarder in pair.forwarders:
            if forwarder["role"] == "test" and pair.color_weights(forwarder):
                change = _plan_forwarder(pair, forwarder, idle, None)
                if change:
                    changes.append(change)
    return sorted(changes, key=_order_key)


# -- the guard --------------------------------------------------------------------------------
def receiving_colors(pair, changes):
    """Colours whose share of production traffic grows through ``changes``."""
    gaining = set()
    for change in changes:
        if change["role"] == "test":
            continue
        before = color_shares(pair, change["before"])
        after = color_shares(pair, change["after"])
        gaining.update(color for color, share in after.items() if share > before.get(color, 0))
    return [color for color in COLORS if color in gaining]


def check_color(pair, color, min_healthy=None):
    """Whether ``color`` may receive traffic (:func:`capacity.assess`): counts, the required number and every problem.

    It may when at least the required number of its own Auto Scaling group's
    instances are InService on the group's launch-template version with a healthy
    target, and nothing else - a foreign, stale or unused target - is registered
    in its target group (draining targets are leaving and do not count).
    """
    info = pair.colors[color]
    group = info["target_group"]
    asg = info["asg"]
    required = capacity.required_capacity(asg, min_healthy)  # an empty or wholly unhealthy group never takes traffic unforced
    assessment = capacity.assess(asg, info["targets"], required)
    registered = assessment["registered"]
    unhealthy = [target for target in info["targets"] if not capacity.is_healthy(target)]  # draining ones included
    problems = []
    if asg["desired_capacity"] == 0 or asg["in_service"] == 0:
        problems.append(
            "Auto Scaling group %s has desired capacity %d and %d instances InService"
            % (asg["name"], asg["desired_capacity"], asg["in_service"])
        )
    if not registered:
        problem = "target group %s has no registered targets (0 healthy, %d required)" % (group["name"], required)
        if unhealthy:  # all of them draining: leaving the group, not counted
            problem += "; leaving: %s" % ", ".join(describe_target(target) for target in unhealthy)
        problems.append(problem)
    elif assessment["capacity"] < required:
        problem = "target group %s has %d healthy targets, %d required" % (group["name"], assessment["capacity"], required)
        if unhealthy:
            problem += "; not healthy: %s" % ", ".join(describe_target(target) for target in unhealthy)
        problems.append(problem)
    for target in assessment["foreign"]:
        problems.append("%s is not an instance of Auto Scaling group %s" % (describe_target(target), asg["name"]))
    for target in assessment["stale"]:
        problems.append("%s runs another launch-template version than %s" % (describe_target(target), assessment["version"]))
    for key in assessment["unused"]:
        problems.append("target %s of %s is unused" % (key, group["name"]))
    return {
        "color": color,
        "target_group": group["name"],
        "asg": asg["name"],
        "desired_capacity": asg["desired_capacity"],
        "in_service": asg["in_service"],
        "registered": len(registered),
        "healthy": assessment["capacity"],
        "required": required,
        "unhealthy_targets": unhealthy,
        "foreign_targets": [target_key(t) for t in assessment["foreign"]],
        "stale_targets": [target_key(t) for t in assessment["stale"]],
        "unused_targets": assessment["unused"],
        "draining_targets": assessment["draining"],
        "problems": problems,
    }


def guard_switch(pair, changes, min_healthy=None, force=False):
    """Refuse changes that would send traffic to a colour that cannot take it, unless ``force``.

    A colour receiving more traffic needs at least ``min_healthy`` healthy
    instances of its own (default: its Auto Scaling group's desired capacity),
    never fewer than one, and no foreign, stale or unused target registered
    (:func:`check_color`).
    """
    capacity.validate_min_healthy(min_healthy)
    checks = {color: check_color(pair, color, min_healthy) for color in receiving_colors(pair, changes)}
    problems = [problem for check in checks.values() for problem in check["problems"]]
    guard = {"checked": checks, "forced": bool(problems) and bool(force), "warnings": problems if force else []}
    if problems and not force:
        colors = " and ".join(checks[color]["color"] for color in checks if checks[color]["problems"])
        foreign = any(check["foreign_targets"] for check in checks.values())
        raise CutoverError(
            "refusing to move traffic of %s to %s: %s; %s, or pass force=true to switch anyway"
            % (
                pair.service,
                colors,
                "; ".join(problems),
                "deregister the targets that are not its instances (deregister_foreign=true does)"
                if foreign
                else "bring it up and wait until its targets are healthy (cutover.bluegreen.rollout, cutover.bluegreen.wait_healthy)",
            ),
            guard=guard,
        )
    return guard


# -- applying ---------------------------------------------------------------------------------
def _modify_args(actions):
    """Actions as ModifyListener/ModifyRule take them (what Describe* returned, made writable)."""
    writable = copy.deepcopy(actions)
    for action in writable:
        oidc = action.get("AuthenticateOidcConfig")
        if oidc is not None and not oidc.get("ClientSecret"):
            oidc["UseExistingClientSecret"] = True  # Describe* never returns the secret
    return writable


def _modify(elbv2, change, actions):
    """Make one forwarder forward as ``actions`` say, modifying it once.

    A retry after a failure that may have come after the change (a lost
    response) first reads the forwarder back: if it already forwards as wanted,
    it is not modified again.
    """

    def applied():
        return not _mismatches([dict(change, after=actions)], read_actions(elbv2, [change]))

    if change["kind"] == "listener":
        write_once(elbv2, "modify_listener", applied, ListenerArn=change["arn"], DefaultActions=_modify_args(actions))
    else:
        write_once(elbv2, "modify_rule", applied, RuleArn=change["arn"], Actions=_modify_args(actions))


def _roll_back(elbv2, applied):
    """Restore ``before`` of every applied change, last first: ``(restored, [(change, error)])``."""
    restored, failed = [], []
    for change in reversed(applied):
        try:
            _modify(elbv2, change, change["before"])
        except call_errors() as exc:
            failed.append((change, exc))
        else:
            restored.append(change)
    return restored, failed


def apply_switch(elbv2, changes):
    """Make the changes, production first, test listener last; all or nothing.

    If a call fails (after the client's retries), every change already made is
    put back and a CutoverError says what failed and that it was rolled back.
    Returns the changes in the order they were made.
    """
    ordered = sorted(changes, key=_order_key)
    applied = []
    for change in ordered:
        try:
            _modify(elbv2, change, change["after"])
        except call_errors() as exc:
            restored, failed = _roll_back(elbv2, applied)
            message = "switch failed at %s (%s): %s" % (change["label"], change["arn"], exc)
            if failed:
                message += "; rolling back failed for %s, so %s still forward%s as switched: fix by hand or re-run the switch" % (
                    "; ".join("%s: %s" % (item["label"], error) for item, error in failed),
                    ", ".join(item["label"] for item, _error in failed),
                    "s" if len(failed) == 1 else "",
                )
            elif restored:
                message += "; rolled back the %d change%s already made (%s): traffic forwards as before the switch" % (
                    len(restored),
                    "" if len(restored) == 1 else "s",
                    ", ".join(item["label"] for item in restored),
                )
            else:
                message += "; nothing had been changed yet"
            raise CutoverError(
                message,
                failed_change=change["label"],
                error=str(exc),
                rolled_back=[item["label"] for item in restored],
                rollback_failed=[{"change": item["label"], "error": str(error)} for item, error in failed],
            ) from exc
        applied.append(change)
    return applied


def read_actions(elbv2, changes):
    """``{arn: actions}`` as AWS has them now: one DescribeListeners call, one DescribeRules call per listener."""
    found = {}
    listener_arns = [change["arn"] for change in changes if change["kind"] == "listener"]
    if listener_arns:
        for listener in elbv2.describe_listeners(ListenerArns=listener_arns, aws_retry=True)["Listeners"]:
            found[listener["ListenerArn"]] = listener.get("DefaultActions") or []
    rules = {}
    for change in changes:
        if change["kind"] == "rule":
            rules.setdefault(change["listener_arn"], []).append(change["arn"])
    for rule_arns in rules.values():
        for rule in elbv2.describe_rules(RuleArns=rule_arns, aws_retry=True)["Rules"]:
            found[rule["RuleArn"]] = rule.get("Actions") or []
    return found


def _mismatches(changes, found):
    wrong = []
    for change in changes:
        if change["arn"] not in found:
            wrong.append("%s (%s) is gone" % (change["label"], change["arn"]))
            continue
        now = forward_weights(found[change["arn"]])
        if _shares(now) != _shares(forward_weights(change["after"])):
            wrong.append("%s forwards to %s, expected %s" % (change["label"], _arn_text(now), _arn_text(forward_weights(change["after"]))))
    return wrong


def _arn_text(weights):
    return ", ".join("%s %d" % (_name_of(arn), weight) for arn, weight in sorted(weights.items())) or "nothing"


def verify_switch(elbv2, changes, timeout=30.0, delay=0.5, progress=None, sleep=time.sleep, waiter=None):
    """Read the forwarders back until each has its ``after`` weights; CutoverError naming each one that does not.

    Returns ``{"verified": n, "waited": seconds}``.
    """
    if not changes:
        return {"verified": 0, "waited": 0.0}
    state = {"wrong": []}

    def check():
        state["wrong"] = _mismatches(changes, read_actions(elbv2, changes))
        return not state["wrong"]

    waiter = waiter_for(waiter, progress, sleep=sleep, delay=delay, max_delay=5.0)
    condition = Condition("the switched listeners and rules to read back as switched", check, lambda: "; ".join(state["wrong"]))
    try:
        waited = waiter.wait(condition, timeout).seconds
    except WaitTimeout as exc:
        raise CutoverError("the switch did not take effect: %s" % "; ".join(state["wrong"]), mismatches=state["wrong"]) from exc
    return {"verified": len(changes), "waited": waited}


# -- the whole switch -------------------------------------------------------------------------
def pair_after(pair, changes):
    """The pair as it is once ``changes`` are made (no AWS call)."""
    by_arn = {change["arn"]: change for change in changes}
    forwarders = []
    for forwarder in pair.forwarders:
        forwarder = dict(forwarder)
        change = by_arn.get(forwarder["arn"])
        if change:
            forwarder["actions"] = copy.deepcopy(change["after"])
            forwarder["weights"] = forward_weights(change["after"])
        forwarders.append(forwarder)
    return Pair(pair.service, pair.load_balancer_arn, pair.colors, pair.listeners, forwarders)


def switch(
    elbv2,
    pair,
    to_color=None,
    weights=None,
    min_healthy=None,
    force=False,
    swap_test_listener=True,
    verify=True,
    check_mode=False,
    verify_timeout=30.0,
    deregister_foreign=False,
    progress=None,
    clock=time.monotonic,
    waiter=None,
):
    """Plan, guard, apply and verify a switch; returns a result dict (``pair`` is the :class:`Pair` after).

    ``to_color`` is blue, green or idle (the colour idle now); ``weights`` a
    canary split instead. With ``deregister_foreign``, targets of a colour about
    to receive traffic that are not instances of its Auto Scaling group are
    deregistered before the guard (``deregistered``). In check mode nothing is
    written and the result is the plan.
    """
    if (to_color is None) == (weights is None):
        raise CutoverError("give either to_color or weights")
    if weights is not None:
        weights = validate_weights(weights)
    else:
        validate_to_color(to_color)
    capacity.validate_min_healthy(min_healthy)

    from_color = pair.live_color
    target = None if weights is not None else resolve_color(pair, to_color)
    changes = plan_switch(pair, target, weights=weights, swap_test_listener=swap_test_listener)
    deregistered = {}
    if deregister_foreign:
        pair, deregistered = health.deregister_foreign(elbv2, pair, receiving_colors(pair, changes), check_mode=check_mode)
    guard = guard_switch(pair, changes, min_healthy=min_healthy, force=force)

    apply_seconds = verify_seconds = 0.0
    verified = False
    switched_at = None
    if changes and not check_mode:
        fence.guard("switching production of %s" % pair.service)  # only a run that still holds the lock switches
        started = clock()
        apply_switch(elbv2, changes)
        applied = clock()
        switched_at = round(time.time(), 3)
        apply_seconds = applied - started
        if verify:
            verify_switch(elbv2, changes, timeout=verify_timeout, progress=progress, waiter=waiter)
            verified = True
            verify_seconds = clock() - applied

    after = pair_after(pair, changes)
    return {
        "changed": bool(changes),
        "from_color": from_color,
        "to_color": target,
        "live_color": after.live_color,
        "split": after.split,
        "weights": after.production_weights,
        "changes": changes,
        "guard": guard,
        "deregistered": deregistered,
        "verified": verified,
        "apply_seconds": round(apply_seconds, 3),
        "verify_seconds": round(verify_seconds, 3),
        "switch_seconds": round(apply_seconds + verify_seconds, 3),
        "switched_at": switched_at,
        "pair": after,
        "pair_before": pair,
    }
