# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Wait until a colour can serve: enough of its own instances healthy, nothing else in its target group.

:func:`capacity.assess` is the predicate (what counts as capacity is defined
there, once, for every step); :func:`wait_healthy` polls the colour's targets
and Auto Scaling group until it says ready. Targets in ``initial`` and the
group's instances still on their way in are waited on; ``draining`` targets
are leaving, so they are reported but neither counted nor waited on;
``unhealthy``, ``unused`` and ``unavailable`` targets of the group's instances
are waited on for at most ``unhealthy_timeout`` seconds each, after which the
wait fails naming every such target with its reason. A target that is not an
instance of the group (foreign), or an instance on another launch-template
version (stale), cannot become capacity by waiting: the wait fails at once
naming it, or, with ``deregister_foreign``, deregisters the foreign ones.
"""

from __future__ import annotations

import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import capacity
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import describe_target, target_key
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import summarize_asg, target_health
from ansible_collections.cutover.bluegreen.plugins.module_utils.rollout import describe_group
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, WaitTimeout, check_seconds, waiter_for

# Looks at the targets between two reads of the Auto Scaling group while nothing is decided.
GROUP_READ_EVERY = 3

# ALB defaults: a 30 s interval and 5 healthy checks in a row.
DEFAULT_INTERVAL = 30
DEFAULT_HEALTHY_THRESHOLD = 5


def look_pace(interval=None):
    """The most seconds between two looks at the targets of a group checked every ``interval`` seconds."""
    return min(5.0, max(0.5, interval / 5.0)) if interval else 5.0


def default_unhealthy_timeout(interval=None, healthy_threshold=None):
    """How long a target may stay unhealthy: long enough to turn healthy again, plus two intervals."""
    interval = interval or DEFAULT_INTERVAL
    threshold = healthy_threshold or DEFAULT_HEALTHY_THRESHOLD
    return max(30, interval * (threshold + 2))


def summarize(asg, targets, min_healthy, version=None):
    """What a wait returns about a colour: counts (healthy = capacity), readiness, problems, every target."""
    assessment = capacity.assess(asg, targets, min_healthy, version)
    summary = capacity.counts(assessment, targets)
    summary.update(
        {
            "min_healthy": min_healthy,
            "ready": assessment["ready"],
            "capacity": assessment["capacity"],
            "version": assessment["version"],
            "problems": assessment["problems"],
            "draining": assessment["draining"],
            "unused": assessment["unused"],
            "foreign": [target_key(t) for t in assessment["foreign"]],
            "stale": [target_key(t) for t in assessment["stale"]],
            "targets": targets,
        }
    )
    return summary


def _target_ref(target):
    ref = {"Id": target["id"]}
    if target.get("port") is not None:
        ref["Port"] = target["port"]
    return ref


def deregister(elbv2, target_group_arn, targets):
    """Deregister ``targets`` (each by id and port) from a target group; they drain for its deregistration delay."""
    if targets:
        elbv2.deregister_targets(TargetGroupArn=target_group_arn, Targets=[_target_ref(t) for t in targets], aws_retry=True)


def register(elbv2, target_group_arn, targets):
    """Register ``targets`` (``{"id", "port"}``; a draining one comes back, its drain cancelled)."""
    if targets:
        elbv2.register_targets(TargetGroupArn=target_group_arn, Targets=[_target_ref(t) for t in targets], aws_retry=True)


def refuse_blocking(assessment, label, asg_name):
    """Fail naming the targets that must not take the colour's traffic and will not go away by waiting."""
    blocking = capacity.blocking_targets(assessment)
    if not blocking:
        return
    parts = []
    if assessment["foreign"]:
        parts.append(
            "%d target(s) that are not instances of Auto Scaling group %s: %s"
            % (len(assessment["foreign"]), asg_name, ", ".join(describe_target(t) for t in assessment["foreign"]))
        )
    if assessment["stale"]:
        parts.append(
            "%d instance(s) on another launch-template version than %s: %s"
            % (len(assessment["stale"]), assessment["version"], ", ".join(describe_target(t) for t in assessment["stale"]))
        )
    advice = (
        "deregister them, or let cutover deregister the foreign ones (deregister_foreign=true; in the roles "
        "deploy_deregister_foreign or rollback_deregister_foreign)"
        if assessment["foreign"]
        else "replace them (a rollout of the colour does)"
    )
    raise CutoverError(
        "%s has %s; they would take its traffic and are never counted as its capacity: %s" % (label, "; and ".join(parts), advice),
        foreign_targets=[target_key(t) for t in assessment["foreign"]],
        stale_targets=[target_key(t) for t in assessment["stale"]],
    )


def validate_wait(min_healthy=None, timeout=None, unhealthy_timeout=None):
    """Bad wait options fail before anything is read."""
    capacity.validate_min_healthy(min_healthy)
    check_seconds("timeout", timeout)
    check_seconds("unhealthy_timeout", unhealthy_timeout)


def read_group(autoscaling, name):
    """The Auto Scaling group summary (``pair.summarize_asg``) as it is now."""
    return summarize_asg(describe_group(autoscaling, name))


def healthy_condition(
    elbv2,
    autoscaling,
    target_group_arn,
    asg_name,
    min_healthy,
    unhealthy_timeout,
    version=None,
    deregister_foreign=False,
    repair=False,
    progress=None,
    name=None,
    clock=time.monotonic,
):
    """The predicate of the health wait (see :func:`wait_healthy`): a :class:`waits.Condition` and what it saw and did.

    Returns ``(condition, seen, done)``: ``seen`` holds the last ``targets`` and
    ``asg`` read, ``done`` the targets ``deregistered`` and ``registered_again``.
    """
    label = "target group %s" % (name or target_group_arn)
    bad_since = {}
    seen = {"targets": [], "asg": None, "looks": 0, "read_at": 0}
    done = {"deregistered": [], "registered_again": []}

    def decisive(assessment):
        return bool(
            assessment["ready"] or capacity.blocking_targets(assessment) or assessment["failing"] or (repair and assessment["unregistered"])
        )

    def check():
        targets = target_health(elbv2, target_group_arn)
        seen["looks"] += 1
        fresh = seen["asg"] is None or seen["looks"] - seen["read_at"] >= GROUP_READ_EVERY
        if fresh:
            seen.update(asg=read_group(autoscaling, asg_name), read_at=seen["looks"])
        seen["targets"] = targets
        assessment = capacity.assess(seen["asg"], targets, min_healthy, version)
        if not fresh and decisive(assessment):  # decide on the group as it is now
            seen.update(asg=read_group(autoscaling, asg_name), read_at=seen["looks"])
            assessment = capacity.assess(seen["asg"], targets, min_healthy, version)
        asg = seen["asg"]
        if deregister_foreign and assessment["foreign"]:
            deregister(elbv2, target_group_arn, assessment["foreign"])
            done["deregistered"].extend(target_key(t) for t in assessment["foreign"])
            if progress:
                progress("%s: deregistered foreign target(s) %s" % (label, ", ".join(target_key(t) for t in assessment["foreign"])))
            return None
        refuse_blocking(assessment, label, asg_name)
        if repair and assessment["unregistered"]:
            leaving = {t["id"]: t for t in assessment["unregistered_targets"]}
            again = [leaving.get(member, {"id": member}) for member in assessment["unregistered"]]
            register(elbv2, target_group_arn, again)
            done["registered_again"].extend(assessment["unregistered"])
            if progress:
                progress("%s: registered %s again" % (label, ", ".join(assessment["unregistered"])))
            return None
        now = clock()
        bad = {target_key(t): t for t in assessment["failing"]}
        for key in list(bad_since):
            if key not in bad:
                del bad_since[key]
        for key in bad:
            bad_since.setdefault(key, now)
        stuck = [bad[key] for key in sorted(bad) if now - bad_since[key] >= unhealthy_timeout]
        if stuck:
            raise CutoverError(
                "%s: %d target(s) stayed unhealthy for %s s or longer: %s"
                % (label, len(stuck), unhealthy_timeout, "; ".join(describe_target(t) for t in stuck)),
                unhealthy_targets=stuck,
                targets=targets,
                health=capacity.counts(assessment, targets),
            )
        return {"targets": targets, "asg": asg} if assessment["ready"] else None  # truthy even with no targets (min_healthy 0)

    def describe():
        if seen["asg"] is None:
            return None
        return "; ".join(capacity.assess(seen["asg"], seen["targets"], min_healthy, version)["problems"])

    what = "every target of %s to be healthy (at least %d)" % (label, min_healthy)
    return Condition(what, check, describe), seen, done


def wait_healthy(
    elbv2,
    autoscaling,
    target_group_arn,
    asg_name,
    min_healthy=1,
    timeout=600,
    unhealthy_timeout=None,
    version=None,
    deregister_foreign=False,
    repair=False,
    progress=None,
    name=None,
    clock=None,
    sleep=None,
    delay=1.0,
    max_delay=5.0,
    waiter=None,
):
    """Poll the targets and the Auto Scaling group until :func:`capacity.assess` says ready.

    Returns ``(summary, waited_seconds)``; the summary is :func:`summarize`'s plus
    ``deregistered`` (foreign targets deregistered) and ``registered_again``
    (instances registered again). A look reads the targets first, then the group,
    so an instance the group launched and registered meanwhile is already its
    member.

    The group is read on the first look, before anything is decided (ready, a
    foreign, stale, missing or failing target) and every ``GROUP_READ_EVERY``
    looks in between; while only health checks are pending the targets suffice.

    A target that stays in a bad state (unhealthy, unused, unavailable) for
    ``unhealthy_timeout`` seconds ends the wait at once, naming every such target
    with its state, reason and description; so does a foreign or stale target
    (:func:`refuse_blocking`), unless ``deregister_foreign`` deregisters the
    foreign ones. With ``repair`` (a restore), InService instances of the group
    whose target is draining or missing are registered again instead of waited
    on. Running out of ``timeout`` fails with what is still missing.
    ``waiter`` (a module's, see :func:`waits.waiter_of`) runs the wait at this pace.
    """
    validate_wait(min_healthy, timeout, unhealthy_timeout)
    if unhealthy_timeout is None:
        unhealthy_timeout = default_unhealthy_timeout()
    waiter = waiter_for(waiter, progress, clock, sleep, delay=delay, max_delay=max_delay)
    condition, seen, done = healthy_condition(
        elbv2,
        autoscaling,
        target_group_arn,
        asg_name,
        min_healthy,
        unhealthy_timeout,
        version,
        deregister_foreign,
        repair,
        waiter.progress,
        name,
        waiter.clock,
    )
    try:
        result, waited, _looks = waiter.wait(condition, timeout)
    except WaitTimeout as exc:
        raise timeout_error(exc, seen, done, min_healthy, version) from exc
    except CutoverError as exc:
        exc.details.update(done)
        raise
    summary = summarize(result["asg"], result["targets"], min_healthy, version)
    summary.update(done)
    return summary, waited


def timeout_error(exc, seen, done, min_healthy, version=None):
    """The error a health wait that timed out raises: with the targets and counts last seen, and what it changed."""
    if seen["asg"] is None:
        counted = {"registered": len(seen["targets"]), "healthy": 0, "unhealthy": len(seen["targets"]), "by_state": {}}
    else:
        counted = capacity.counts(capacity.assess(seen["asg"], seen["targets"], min_healthy, version), seen["targets"])
    return WaitTimeout(exc.message, targets=seen["targets"], health=counted, **dict(exc.details, **done))


def color_health(
    elbv2,
    autoscaling,
    pair,
    color,
    min_healthy=None,
    timeout=600,
    unhealthy_timeout=None,
    version=None,
    deregister_foreign=False,
    check_mode=False,
    progress=None,
    waiter=None,
):
    """Wait until ``color`` can serve (:func:`wait_healthy`); what a module returns about it.

    ``min_healthy`` defaults to the colour's desired capacity (at least 1),
    ``unhealthy_timeout`` to what the group's health check needs to recover and
    ``version`` to the launch-template version the colour's group points at. In
    check mode nothing is waited on or deregistered: the colour as ``pair`` read
    it is judged as it is.
    """
    validate_wait(min_healthy, timeout, unhealthy_timeout)
    group = pair.colors[color]["target_group"]
    asg = pair.colors[color]["asg"]
    if min_healthy is None:
        min_healthy = max(1, asg["desired_capacity"])
    if unhealthy_timeout is None:
        unhealthy_timeout = default_unhealthy_timeout(group.get("health_check_interval"), group.get("healthy_threshold"))
    # Five looks per health-check interval (0.5 to 5 s apart): a target changes state only when it is checked,
    # and the last one to turn healthy is noticed a fifth of an interval late at most (two looks per interval
    # were up to 2.5 s late on a 5-second interval). One DescribeTargetHealth a look (the group every
    # GROUP_READ_EVERY looks): at most three calls a second, retried with jittered back-off when throttled.
    interval = group.get("health_check_interval")
    max_delay = look_pace(interval)
    if check_mode:
        summary, waited = summarize(asg, pair.colors[color]["targets"], min_healthy, version), 0.0
        summary.update(deregistered=[], registered_again=[])
    else:
        try:
            summary, waited = wait_healthy(
                elbv2,
                autoscaling,
                group["arn"],
                asg["name"],
                min_healthy=min_healthy,
                timeout=timeout,
                unhealthy_timeout=unhealthy_timeout,
                version=version,
                deregister_foreign=deregister_foreign,
                progress=progress,
                name=group["name"],
                max_delay=max_delay,
                waiter=waiter,
            )
        except CutoverError as exc:
            exc.details.update(color=color, target_group_arn=group["arn"], min_healthy=min_healthy)
            raise
    targets = summary.pop("targets")
    return dict(
        color=color,
        target_group_arn=group["arn"],
        asg_name=asg["name"],
        min_healthy=min_healthy,
        ready=summary.pop("ready"),
        capacity=summary.pop("capacity"),
        launch_template_version=summary.pop("version"),
        waited_seconds=waited,
        problems=summary.pop("problems"),
        draining=summary.pop("draining"),
        foreign=summary.pop("foreign"),
        stale=summary.pop("stale"),
        unused=summary.pop("unused"),
        deregistered=summary.pop("deregistered"),
        health={key: summary[key] for key in ("registered", "healthy", "unhealthy", "by_state")},
        targets=targets,
    )


def deregister_foreign(elbv2, pair, colors, check_mode=False):
    """Deregister the foreign targets of ``colors`` (targets that are not instances of the colour's group).

    Returns ``(pair, {color: [target keys]})``: a pair whose foreign targets read
    as ``draining`` (as they are once deregistered), and what was (in check mode:
    would be) deregistered.
    """
    found = {}
    colors_after = dict(pair.colors)
    for color in colors:
        info = pair.colors[color]
        foreign = capacity.assess(info["asg"], info["targets"], 0)["foreign"]
        if not foreign:
            continue
        if not check_mode:
            deregister(elbv2, info["target_group"]["arn"], foreign)
        found[color] = [target_key(t) for t in foreign]
        leaving = {target_key(t) for t in foreign}
        targets = [dict(t, state=capacity.DRAINING) if target_key(t) in leaving else t for t in info["targets"]]
        colors_after[color] = dict(info, targets=targets)
    if not found:
        return pair, found
    return type(pair)(pair.service, pair.load_balancer_arn, colors_after, pair.listeners, pair.forwarders), found
