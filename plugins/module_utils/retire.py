# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Standby, teardown and restore of a colour.

After a switch the old colour is kept warm as a *standby*: its Auto Scaling
group is tagged ``cutover:state=standby`` and ``cutover:retire-after=<UTC
time>``. A scheduled *teardown* retires standbys whose time has passed: it
drains them, scales their group to zero (keeping the group, its maximum size
and its launch template for a fast restore) and tags them
``cutover:state=retired``. *Restore* brings a retired (or standby) colour back
to capacity for a rollback and clears those tags.

The live colour is never marked, drained, scaled down or retired; a standby is
never torn down before its retire-after time unless forced. Every decision is
made by a pure function over plain data first, then applied.
"""

from __future__ import annotations

import datetime
import re
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import assess, counts, group_version, target_key
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import (
    COLORS,
    TAG_RETIRE_AFTER,
    TAG_STATE,
    CutoverError,
    isoformat,
    parse_time,
    utcnow,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.drain import (
    describe_forwarder,
    drain,
    recheck_not_serving,
    refuse_if_serving,
    resolve_color,
    traffic_forwarders,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.health import (
    default_unhealthy_timeout,
    healthy_condition,
    refuse_blocking,
    summarize,
    timeout_error,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.rollout import in_service_condition
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import DEFAULT_TIMEOUT, WaitTimeout, check_seconds, waiter_for

STANDBY = "standby"
RETIRED = "retired"
STATE_TAGS = (TAG_STATE, TAG_RETIRE_AFTER)

DEFAULT_TTL = 86400  # a day, when neither ttl nor retire_after is given
MAX_TTL = 3650 * 86400
TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TTL_TERM = re.compile(r"(\d+)\s*([smhdw])")
_TTL_TEXT = re.compile(r"(?:\d+\s*[smhdw]\s*)+")


# -- TTL and retire-after ---------------------------------------------------------------


def parse_ttl(value):
    """Seconds from an int, a digit string, or a duration like ``30m``, ``2h``, ``1d``, ``1h30m``.

    ``None`` stays ``None``. Negative, non-integral and unreadable values are refused.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise CutoverError("ttl must be a number of seconds or a duration like 30m, 2h, 1d; got %r" % value)
    if isinstance(value, float):
        if not value.is_integer():
            raise CutoverError("ttl must be a whole number of seconds, got %r" % value)
        value = int(value)
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"[-+]?\d+", text):
            seconds = int(text)
        elif text.startswith("-") and _TTL_TEXT.fullmatch(text[1:].strip()):
            raise CutoverError("ttl must not be negative, got %r" % value)
        elif text and _TTL_TEXT.fullmatch(text):
            seconds = sum(int(number) * TTL_UNITS[unit] for number, unit in _TTL_TERM.findall(text))
        else:
            raise CutoverError(
                "ttl %r is not a number of seconds or a duration like 30m, 2h, 1d (units s, m, h, d, w)" % value,
            )
    else:
        raise CutoverError("ttl must be a number of seconds or a duration like 30m, 2h, 1d; got %r" % (value,))
    if seconds < 0:
        raise CutoverError("ttl must not be negative, got %r" % value)
    if seconds > MAX_TTL:
        raise CutoverError("ttl %r is longer than the maximum of %d days" % (value, MAX_TTL // 86400))
    return seconds


def compute_retire_after(now, ttl=None, retire_after=None, current_state=None, current_retire_after=None, reset=False):
    """``(retire_after, source)``: when a standby may be torn down, and where that came from.

    An explicit ``retire_after`` always wins (``explicit``). Otherwise an
    existing standby keeps its retire-after (``kept``), so a re-run does not
    push the TTL forward, unless ``reset``; else it is ``now + ttl`` (``ttl``;
    ``DEFAULT_TTL`` when no ttl is given).
    """
    if ttl is not None and retire_after is not None:
        raise CutoverError("ttl and retire_after are mutually exclusive; give one of them")
    if retire_after is not None:
        moment = retire_after if isinstance(retire_after, datetime.datetime) else parse_time(retire_after)
        return isoformat(moment), "explicit"
    if current_state == STANDBY and current_retire_after and not reset:
        try:
            parse_time(current_retire_after)
        except CutoverError:
            pass  # an unreadable tag is replaced
        else:
            return current_retire_after, "kept"
    seconds = DEFAULT_TTL if ttl is None else ttl
    return isoformat(now + datetime.timedelta(seconds=seconds)), "ttl"


def plan_standby(tags, now, ttl=None, retire_after=None, reset=False):
    """What marking a group standby changes: ``{retire_after, source, to_set, tags_before, tags_after}``."""
    value, source = compute_retire_after(
        now,
        ttl=ttl,
        retire_after=retire_after,
        current_state=tags.get(TAG_STATE),
        current_retire_after=tags.get(TAG_RETIRE_AFTER),
        reset=reset,
    )
    wanted = {TAG_STATE: STANDBY, TAG_RETIRE_AFTER: value}
    to_set = {key: val for key, val in wanted.items() if tags.get(key) != val}
    return {
        "retire_after": value,
        "source": source,
        "to_set": to_set,
        "tags_before": dict(tags),
        "tags_after": dict(tags, **wanted),
    }


def _asg_tags(name, tags):
    return [
        {"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": key, "Value": value, "PropagateAtLaunch": False}
        for key, value in sorted(tags.items())
    ]


def _delete_asg_tags(autoscaling, name, keys):
    autoscaling.delete_tags(Tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": key} for key in keys], aws_retry=True)


def _size(asg):
    return {"min_size": asg["min_size"], "max_size": asg["max_size"], "desired_capacity": asg["desired_capacity"]}


def mark_standby(autoscaling, pair, color, now=None, ttl=None, retire_after=None, reset=False, check_mode=False):
    """Tag ``color``'s Auto Scaling group standby with a retire-after time; refuse the live colour."""
    color = resolve_color(pair, color)
    ttl = parse_ttl(ttl)
    refuse_if_serving(pair, color, "mark standby")
    asg = pair.colors[color]["asg"]
    plan = plan_standby(asg["tags"], now or utcnow(), ttl=ttl, retire_after=retire_after, reset=reset)
    if plan["to_set"] and not check_mode:
        fence.guard("marking %s of %r standby" % (color, pair.service))
        autoscaling.create_or_update_tags(Tags=_asg_tags(asg["name"], plan["to_set"]), aws_retry=True)
    return {
        "changed": bool(plan["to_set"]),
        "color": color,
        "state": STANDBY,
        "asg_name": asg["name"],
        "retire_after": plan["retire_after"],
        "retire_after_source": plan["source"],
        "tags_before": plan["tags_before"],
        "tags_after": plan["tags_after"],
        "diff": {
            "before": {"asg": asg["name"], "tags": plan["tags_before"]},
            "after": {"asg": asg["name"], "tags": plan["tags_after"]},
        },
    }


def clear_marks(autoscaling, pair, color, check_mode=False):
    """Remove the standby/retired tags of ``color``'s group (it serves production now); returns the keys removed."""
    asg = pair.colors[color]["asg"]
    present = [key for key in STATE_TAGS if key in asg["tags"]]
    if present and not check_mode:
        _delete_asg_tags(autoscaling, asg["name"], present)
    return present


def after_switch(autoscaling, pair, from_color, live_color, standby_ttl=None, check_mode=False, now=None):
    """Bring the state tags in line with a full switch from ``from_color`` to ``live_color``.

    ``pair`` is the pair after the switch. The live colour loses any standby or
    retired tags (a switch back after a failed release leaves no stale retire-after
    on what serves production); with ``standby_ttl`` the colour that was live is
    marked standby for that long (the retire-after starts again). Returns
    ``{cleared, standby}`` (``standby`` as :func:`mark_standby` returns it, without
    its diff, or None).
    """
    cleared = clear_marks(autoscaling, pair, live_color, check_mode=check_mode)
    standby = None
    if standby_ttl is not None and from_color != live_color:
        standby = mark_standby(autoscaling, pair, from_color, now=now, ttl=standby_ttl, reset=True, check_mode=check_mode)
        standby.pop("diff")
    return {"cleared": cleared, "standby": standby}


# -- teardown ---------------------------------------------------------------------------


def teardown_candidate(pair, color):
    """The plain data :func:`select_teardown` decides on, for one colour of a pair."""
    asg = pair.colors[color]["asg"]
    live = None
    try:
        live = pair.live_color
    except CutoverError:
        pass
    return {
        "color": color,
        "state": asg["state"],
        "retire_after": asg["retire_after"],
        "live": color == live,
        "serving": traffic_forwarders(pair, color),
    }


def select_teardown(candidates, now, force=False):
    """Decide per colour: ``{"color", "action": "teardown"|"skip", "reason", "retire_after"}``.

    The live colour, and any colour with production traffic, is skipped even
    with ``force``; so is a colour without the standby tag and an already
    retired one. A standby before its retire-after time is skipped unless
    ``force``.
    """
    decisions = []
    for candidate in candidates:
        color = candidate["color"]
        state = candidate.get("state")
        retire_after = candidate.get("retire_after")

        def decide(action, reason, color=color, retire_after=retire_after):
            decisions.append({"color": color, "action": action, "reason": reason, "retire_after": retire_after})

        if candidate.get("live"):
            decide("skip", "%s is the live colour; it is never torn down, even with force" % color)
            continue
        if candidate.get("serving"):
            decide(
                "skip",
                "%s still receives production traffic through %s; it is never torn down, even with force"
                % (color, "; ".join(describe_forwarder(f) for f in candidate["serving"])),
            )
            continue
        if state is None:
            decide("skip", "%s has no %s tag: it is not a standby" % (color, TAG_STATE))
            continue
        if state == RETIRED:
            decide("skip", "%s is already retired" % color)
            continue
        if state != STANDBY:
            decide("skip", "%s has %s=%s, not %s" % (color, TAG_STATE, state, STANDBY))
            continue
        moment = None
        if retire_after:
            try:
                moment = parse_time(retire_after)
            except CutoverError:
                moment = None
        if moment is None:
            if force:
                decide("teardown", "forced: %s has no valid %s tag" % (color, TAG_RETIRE_AFTER))
            else:
                decide("skip", "%s has no valid %s tag (%r); pass force to tear it down" % (color, TAG_RETIRE_AFTER, retire_after))
            continue
        if moment > now:
            if force:
                decide("teardown", "forced before its retire-after time %s" % retire_after)
            else:
                decide("skip", "%s is a standby until %s (retire-after not reached; now %s)" % (color, retire_after, isoformat(now)))
            continue
        decide("teardown", "retire-after %s has passed" % retire_after)
    return decisions


def teardown_colors(pair, colors=None):
    """The colours to consider (``idle`` resolved, duplicates dropped), in pair order."""
    if not colors:
        return list(COLORS)
    wanted = set()
    for color in colors:
        wanted.add(resolve_color(pair, color))
    return [color for color in COLORS if color in wanted]


def plan_scale_to_zero(asg):
    """``UpdateAutoScalingGroup`` arguments that scale to zero keeping the maximum, or ``{}`` when already there."""
    update = {}
    if asg["min_size"] != 0:
        update["MinSize"] = 0
    if asg["desired_capacity"] != 0:
        update["DesiredCapacity"] = 0
    return update


def teardown(
    elbv2,
    autoscaling,
    pair,
    now=None,
    force=False,
    colors=None,
    wait_timeout=None,
    check_mode=False,
    progress=None,
    clock=time.monotonic,
    sleep=time.sleep,
    waiter=None,
):
    """Retire the standbys of a pair whose retire-after has passed: drain, scale to zero, tag retired.

    Returns ``{"changed", "now", "live_color", "by_color": {color: {...}}}``;
    each result has ``action`` (``torn_down``, ``would_tear_down`` in check
    mode, or ``skipped``) and ``reason``.
    """
    check_seconds("wait_timeout", wait_timeout)
    now = now or utcnow()
    considered = teardown_colors(pair, colors)
    decisions = select_teardown([teardown_candidate(pair, color) for color in considered], now, force=force)
    by_color = {}
    changed = False
    for decision in decisions:
        color = decision["color"]
        asg = pair.colors[color]["asg"]
        if decision["action"] == "skip":
            by_color[color] = {
                "action": "skipped",
                "reason": decision["reason"],
                "retire_after": decision["retire_after"],
                "changed": False,
            }
            continue
        # Right before acting: is the production side still what it was?
        recheck_not_serving(elbv2, pair, color, "tear down")
        drained = drain(
            elbv2,
            pair,
            color,
            timeout=wait_timeout,
            wait=True,
            check_mode=check_mode,
            progress=progress,
            clock=clock,
            sleep=sleep,
            waiter=waiter,
        )
        update = plan_scale_to_zero(asg)
        size_after = dict(_size(asg), min_size=0, desired_capacity=0)
        tags_after = dict(asg["tags"], **{TAG_STATE: RETIRED})
        retag = asg["tags"].get(TAG_STATE) != RETIRED
        if not check_mode:
            if update or retag:
                fence.guard("scaling %s of %r to zero" % (color, pair.service))  # after the drain: still this run's lock?
            if update:
                autoscaling.update_auto_scaling_group(AutoScalingGroupName=asg["name"], aws_retry=True, **update)
            if retag:
                autoscaling.create_or_update_tags(Tags=_asg_tags(asg["name"], {TAG_STATE: RETIRED}), aws_retry=True)
        color_changed = bool(drained["changed"] or update or retag)
        changed = changed or color_changed
        by_color[color] = {
            "action": "would_tear_down" if check_mode else "torn_down",
            "reason": decision["reason"],
            "retire_after": decision["retire_after"],
            "changed": color_changed,
            "asg_name": asg["name"],
            "launch_template": asg["launch_template"],
            "drained": drained["drained"],
            "already_draining": drained["already_draining"],
            "deregistration_delay": drained["deregistration_delay"],
            "waited": drained["waited"],
            "test_forwarders": drained["test_forwarders"],
            "warnings": drained["warnings"],
            "size_before": _size(asg),
            "size_after": size_after,
            "tags_before": dict(asg["tags"]),
            "tags_after": tags_after,
        }
    before = {}
    after = {}
    for color, result in by_color.items():
        if result["action"] == "skipped":
            continue
        targets = pair.colors[color]["targets"]
        before[color] = {
            "asg": result["asg_name"],
            "size": result["size_before"],
            "tags": result["tags_before"],
            "targets": [{"id": t["id"], "state": t["state"]} for t in targets],
        }
        after[color] = {"asg": result["asg_name"], "size": result["size_after"], "tags": result["tags_after"], "targets": []}
    return {
        "changed": changed,
        "now": isoformat(now),
        "live_color": pair.live_color,
        "by_color": by_color,
        "diff": {"before": before, "after": after},
    }


# -- restore ----------------------------------------------------------------------------


def plan_restore(asg, targets, capacity):
    """What restoring a group to ``capacity`` changes: the ASG update, tags to clear, instances to register.

    ``register`` lists the group's InService instances (on its launch-template
    version) whose target is draining or missing: they are registered again.
    ``ready`` says the colour can serve already (:func:`capacity.assess`: enough
    healthy instances of its own, nothing foreign registered, no size to change).
    ``refusal`` says why the group cannot be restored at all, or None.
    """
    update = {}
    if asg["min_size"] != capacity:
        update["MinSize"] = capacity
    if asg["desired_capacity"] != capacity:
        update["DesiredCapacity"] = capacity
    if 0 < asg["max_size"] < capacity:
        update["MaxSize"] = capacity
    assessment = assess(asg, targets, capacity)
    untag = [key for key in STATE_TAGS if key in asg["tags"]]
    return {
        "update": update,
        "untag": untag,
        "register": assessment["unregistered"],
        "foreign": [target_key(t) for t in assessment["foreign"]],
        "ready": not update and assessment["ready"],
        "refusal": cannot_restore(asg, capacity, assessment),
        "assessment": assessment,
        "size_before": _size(asg),
        "size_after": {
            "min_size": update.get("MinSize", asg["min_size"]),
            "max_size": update.get("MaxSize", asg["max_size"]),
            "desired_capacity": update.get("DesiredCapacity", asg["desired_capacity"]),
        },
        "tags_before": dict(asg["tags"]),
        "tags_after": {key: value for key, value in asg["tags"].items() if key not in STATE_TAGS},
    }


def cannot_restore(asg, capacity, assessment):
    """Why ``asg`` cannot be brought to ``capacity`` whatever we wait for, or None.

    A maximum size of 0 switches a group off on purpose (a lower maximum is
    raised); with its Launch process suspended a group that needs instances
    never launches them.
    """
    if asg["max_size"] == 0:
        return (
            "Auto Scaling group %s has a maximum size of 0, so it can run no instance; raise its maximum size "
            "(to at least %d) and roll back again" % (asg["name"], capacity)
        )
    missing = capacity - len(assessment["members"])
    if missing > 0 and "Launch" in (asg.get("suspended_processes") or []):
        return (
            "the Launch process of Auto Scaling group %s is suspended, so it cannot launch the %d instance(s) it lacks "
            "(%d of %d InService); resume it and roll back again" % (asg["name"], missing, len(assessment["members"]), capacity)
        )
    return None


def restore(
    elbv2,
    autoscaling,
    pair,
    color,
    capacity=None,
    wait_timeout=600,
    deregister_foreign=False,
    check_mode=False,
    progress=None,
    clock=time.monotonic,
    sleep=time.sleep,
    waiter=None,
):
    """Bring a retired or standby colour back to ``capacity`` for a rollback, healthy, with its state tags cleared.

    ``capacity`` defaults to the live colour's desired capacity; the group's
    minimum is set to it too (its maximum is raised only if below). Its InService
    instances whose targets are draining (a drain in flight) or gone are
    registered again. Refuses the live colour; fails before changing anything
    when the colour cannot be restored (:func:`cannot_restore`) or has targets
    that are not its instances (unless ``deregister_foreign``), and fails early,
    with the reasons, when its instances cannot launch or stay unhealthy.
    """
    wait_timeout = DEFAULT_TIMEOUT if wait_timeout is None else check_seconds("wait_timeout", wait_timeout)
    color = resolve_color(pair, color)
    live = pair.live_color
    if color == live:
        raise CutoverError("%s is already the live colour of %r; there is nothing to restore" % (color, pair.service), live_color=live)
    if capacity is None:
        capacity = pair.colors[live]["asg"]["desired_capacity"]
        if capacity < 1:
            raise CutoverError("the live colour %s has a desired capacity of %s; pass capacity to restore %s" % (live, capacity, color))
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise CutoverError("capacity must be a whole number of at least 1, got %r" % (capacity,))
    asg = pair.colors[color]["asg"]
    group = pair.colors[color]["target_group"]
    plan = plan_restore(asg, pair.colors[color]["targets"], capacity)
    label = "target group %s of %s" % (group["name"], color)
    if plan["refusal"]:
        raise CutoverError("cannot restore %s of %r: %s. Nothing was changed." % (color, pair.service, plan["refusal"]), color=color)
    # Foreign or stale targets cannot become capacity by waiting: refuse before scaling anything.
    refuse_blocking(dict(plan["assessment"], foreign=[]) if deregister_foreign else plan["assessment"], label, asg["name"])
    changed = bool(plan["update"] or plan["untag"] or plan["register"] or plan["foreign"])
    result = {
        "changed": changed,
        "color": color,
        "state": "restored",
        "asg_name": asg["name"],
        "capacity": capacity,
        "retire_after": None,
        "size_before": plan["size_before"],
        "size_after": plan["size_after"],
        "tags_before": plan["tags_before"],
        "tags_after": plan["tags_after"],
        "registered": plan["register"],
        "deregistered": plan["foreign"],
        "waited": {"in_service": 0, "healthy": 0},
        "health": counts(plan["assessment"], pair.colors[color]["targets"]),
        "ready": plan["ready"],
        "diff": {
            "before": {"asg": asg["name"], "size": plan["size_before"], "tags": plan["tags_before"]},
            "after": {"asg": asg["name"], "size": plan["size_after"], "tags": plan["tags_after"]},
        },
    }
    if check_mode or (plan["ready"] and not changed):
        return result
    since = utcnow()
    if plan["update"] or plan["register"] or plan["untag"]:
        fence.guard("restoring %s of %r" % (color, pair.service))
    if plan["update"]:
        autoscaling.update_auto_scaling_group(AutoScalingGroupName=asg["name"], aws_retry=True, **plan["update"])
    # One wait, two conditions in turn within wait_timeout: the instances InService, then their targets healthy.
    waiter = waiter_for(waiter, progress, clock, sleep)
    version = group_version(asg)
    in_service, _seen = in_service_condition(
        autoscaling,
        asg["name"],
        capacity,
        version,
        stale=[i["id"] for i in asg["instances"] if version is not None and str(i.get("launch_template_version")) != version],
        known=[i["id"] for i in asg["instances"]],
        since=since,
        clock=waiter.clock,
    )
    in_service.pace = {"delay": 2.0, "max_delay": 15.0}
    healthy, seen, done = healthy_condition(
        elbv2,
        autoscaling,
        group["arn"],
        asg["name"],
        capacity,
        default_unhealthy_timeout(group.get("health_check_interval"), group.get("healthy_threshold")),
        deregister_foreign=deregister_foreign,
        repair=True,
        progress=waiter.progress,
        name=group["name"],
        clock=waiter.clock,
    )
    healthy.pace = {"delay": 1.0, "max_delay": 5.0}
    try:
        instances, ready = waiter.wait_all([in_service, healthy], wait_timeout)
    except WaitTimeout as exc:
        raise timeout_error(exc, seen, done, capacity) from exc
    except CutoverError as exc:
        exc.details.update(done)
        raise
    summary = summarize(ready.result["asg"], ready.result["targets"], capacity)
    result["waited"] = {"in_service": instances.seconds, "healthy": ready.seconds}
    result["registered"] = done["registered_again"]
    result["deregistered"] = done["deregistered"]
    result["changed"] = bool(result["changed"] or done["registered_again"] or done["deregistered"])
    result["health"] = {key: summary[key] for key in ("registered", "healthy", "unhealthy", "by_state")}
    result["ready"] = True
    if plan["untag"]:
        _delete_asg_tags(autoscaling, asg["name"], plan["untag"])
    return result
