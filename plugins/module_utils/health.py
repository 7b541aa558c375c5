# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Wait until a target group is healthy: every target, not just the first.

:func:`evaluate` is the pure predicate: ready when every registered target is
``healthy`` and at least ``min_healthy`` are registered. Targets in ``initial``
are waited on; ``draining`` targets are leaving the group, so they are reported
but neither counted nor waited on; ``unhealthy``, ``unused`` and ``unavailable``
targets are waited on for at most ``unhealthy_timeout`` seconds each, after
which :func:`wait_healthy` fails naming every such target with its reason.
"""

from __future__ import annotations

import time

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import summarize_targets, target_health
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import WaitTimeout, poll

HEALTHY = "healthy"
WAITING_STATES = ("initial",)
LEAVING_STATES = ("draining",)
# States a target may pass through briefly but should not stay in.
BAD_STATES = ("unhealthy", "unused", "unavailable", "unknown")

# ALB defaults: a 30 s interval and 5 healthy checks in a row.
DEFAULT_INTERVAL = 30
DEFAULT_HEALTHY_THRESHOLD = 5


def default_unhealthy_timeout(interval=None, healthy_threshold=None):
    """How long a target may stay unhealthy: long enough to turn healthy again, plus two intervals."""
    interval = interval or DEFAULT_INTERVAL
    threshold = healthy_threshold or DEFAULT_HEALTHY_THRESHOLD
    return max(30, interval * (threshold + 2))


def target_key(target):
    return "%s:%s" % (target["id"], target["port"]) if target.get("port") is not None else target["id"]


def describe_target(target):
    """``i-0abc:8080 unhealthy (Target.ResponseCodeMismatch: Health checks failed with these codes: [502])``."""
    text = "%s %s" % (target_key(target), target["state"])
    why = ": ".join(part for part in (target.get("reason"), target.get("description")) if part)
    return "%s (%s)" % (text, why) if why else text


def evaluate(targets, min_healthy):
    """``(ready, problems)`` for a target group's targets (as :func:`pair.target_health` lists them).

    Ready when at least ``min_healthy`` targets are registered (draining ones do
    not count) and every one of them is healthy. ``problems`` describes each
    target that is not healthy, draining ones included, and a shortfall.
    """
    if min_healthy < 0:
        raise CutoverError("min_healthy must not be negative, got %s" % min_healthy)
    counted = [t for t in targets if t["state"] not in LEAVING_STATES]
    healthy = [t for t in counted if t["state"] == HEALTHY]
    problems = []
    for target in targets:
        if target["state"] == HEALTHY:
            continue
        text = describe_target(target)
        if target["state"] in LEAVING_STATES:
            text += " - leaving the group, not counted"
        problems.append(text)
    if len(counted) < min_healthy:
        problems.append("only %d target(s) registered, at least %d wanted" % (len(counted), min_healthy))
    ready = len(healthy) >= min_healthy and len(healthy) == len(counted)
    return ready, problems


def summarize(targets, min_healthy):
    ready, problems = evaluate(targets, min_healthy)
    summary = summarize_targets(targets)
    summary.update(
        {
            "min_healthy": min_healthy,
            "ready": ready,
            "problems": problems,
            "draining": [target_key(t) for t in targets if t["state"] in LEAVING_STATES],
            "unused": [target_key(t) for t in targets if t["state"] == "unused"],
            "targets": targets,
        }
    )
    return summary


def validate_wait(min_healthy=None, timeout=None, unhealthy_timeout=None):
    """Bad wait options fail before anything is read."""
    for option, value in (("min_healthy", min_healthy), ("timeout", timeout), ("unhealthy_timeout", unhealthy_timeout)):
        if value is not None and value < 0:
            raise CutoverError("%s must not be negative, got %s" % (option, value))


def wait_healthy(
    elbv2,
    target_group_arn,
    min_healthy=1,
    timeout=600,
    unhealthy_timeout=None,
    progress=None,
    name=None,
    clock=None,
    sleep=None,
    delay=1.0,
    max_delay=5.0,
):
    """Poll DescribeTargetHealth until :func:`evaluate` says ready; returns ``(summary, waited_seconds)``.

    A target that stays in a bad state (unhealthy, unused, unavailable) for
    ``unhealthy_timeout`` seconds ends the wait at once, naming every such target
    with its state, reason and description. Running out of ``timeout`` fails with
    what is still missing.
    """
    validate_wait(min_healthy, timeout, unhealthy_timeout)
    if unhealthy_timeout is None:
        unhealthy_timeout = default_unhealthy_timeout()
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    label = "target group %s" % (name or target_group_arn)
    bad_since = {}
    seen = {"targets": []}

    def check():
        targets = target_health(elbv2, target_group_arn)
        seen["targets"] = targets
        now = clock()
        bad = {target_key(t): t for t in targets if t["state"] in BAD_STATES}
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
                health=summarize_targets(targets),
            )
        ready, _problems = evaluate(targets, min_healthy)
        return {"targets": targets} if ready else None  # truthy even with no targets (min_healthy 0)

    def describe():
        _ready, problems = evaluate(seen["targets"], min_healthy)
        return "; ".join(problems)

    try:
        result, waited = poll(
            check,
            timeout,
            "every target of %s to be healthy (at least %d)" % (label, min_healthy),
            delay=delay,
            max_delay=max_delay,
            progress=progress,
            describe=describe,
            clock=clock,
            sleep=sleep,
        )
    except WaitTimeout as exc:
        raise WaitTimeout(exc.message, targets=seen["targets"], health=summarize_targets(seen["targets"]), **exc.details) from exc
    return summarize(result["targets"], min_healthy), waited


def color_health(elbv2, pair, color, min_healthy=None, timeout=600, unhealthy_timeout=None, check_mode=False, progress=None):
    """Wait until every target of ``color``'s target group is healthy; what a module returns about it.

    ``min_healthy`` defaults to the colour's desired capacity (at least 1) and
    ``unhealthy_timeout`` to what the group's health check needs to recover. In
    check mode nothing is waited on: the targets ``pair`` was read with are
    judged as they are.
    """
    validate_wait(min_healthy, timeout, unhealthy_timeout)
    group = pair.colors[color]["target_group"]
    if min_healthy is None:
        min_healthy = max(1, pair.colors[color]["asg"]["desired_capacity"])
    if unhealthy_timeout is None:
        unhealthy_timeout = default_unhealthy_timeout(group.get("health_check_interval"), group.get("healthy_threshold"))
    if check_mode:
        summary, waited = summarize(pair.colors[color]["targets"], min_healthy), 0.0
    else:
        try:
            summary, waited = wait_healthy(
                elbv2,
                group["arn"],
                min_healthy=min_healthy,
                timeout=timeout,
                unhealthy_timeout=unhealthy_timeout,
                progress=progress,
                name=group["name"],
            )
        except CutoverError as exc:
            exc.details.update(color=color, target_group_arn=group["arn"], min_healthy=min_healthy)
            raise
    targets = summary.pop("targets")
    return dict(
        color=color,
        target_group_arn=group["arn"],
        min_healthy=min_healthy,
        ready=summary.pop("ready"),
        waited_seconds=waited,
        problems=summary.pop("problems"),
        draining=summary.pop("draining"),
        health={key: summary[key] for key in ("registered", "healthy", "unhealthy", "by_state")},
        targets=targets,
    )
