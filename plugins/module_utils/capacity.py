# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a colour's capacity is: the one reading every step uses.

The health wait after a rollout, the switch guard (deploy, promote, rollback)
and a rollback's restore all ask one question - how much of this colour can
serve its release, and is anything else in its target group? - and
:func:`assess` answers it from plain data: the colour's Auto Scaling group (as
``pair.summarize_asg`` reads it) and its target group's targets (as
``pair.target_health`` reads them).

* **Capacity** is the instances of the colour's own Auto Scaling group that are
  ``InService``, not marked unhealthy, run the wanted launch-template version
  (each instance's own version, by default the version the group points at)
  and whose target is ``healthy``. Nothing else counts.
* A target that is not an instance of the group (registered by hand, by another
  tool, or left from an earlier setup) is **foreign**. It never counts, and while
  it is registered the colour is not ready: it would take the colour's traffic.
* An ``InService`` instance of the group on another launch-template version is
  **stale**: it would serve the release it was launched with, so while its
  target is registered the colour is not ready either.
* An ``unused`` target blocks a switch (the load balancer cannot say it will
  ever route to it), reported by id.
* ``draining`` targets are leaving: reported, never counted, never waited on. A
  member whose target is draining or missing is **unregistered**: waited on
  after a rollout (the group registers it), registered again by a restore.
* Targets of the group's instances that are not ``InService`` yet (``Pending``)
  and member targets in ``initial`` are waited on; ``unhealthy``,
  ``unavailable`` and ``unused`` member targets are **failing**.
"""

from __future__ import annotations

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError

HEALTHY = "healthy"
DRAINING = "draining"
UNUSED = "unused"
WAITING_STATES = ("initial",)
FAILING_STATES = ("unhealthy", "unused", "unavailable", "unknown")
IN_SERVICE = "InService"
GONE_STATES = ("Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated", "Detaching", "Detached")


def is_healthy(target):
    """Whether a target passes its health checks: the load balancer says ``healthy`` (and routes to it)."""
    return target["state"] == HEALTHY


def target_key(target):
    return "%s:%s" % (target["id"], target["port"]) if target.get("port") is not None else target["id"]


def describe_target(target):
    """``i-0abc:8080 unhealthy (Target.ResponseCodeMismatch: Health checks failed with these codes: [502])``."""
    text = "%s %s" % (target_key(target), target["state"])
    why = ": ".join(part for part in (target.get("reason"), target.get("description")) if part)
    return "%s (%s)" % (text, why) if why else text


def group_version(asg):
    """The launch-template version the group points at, as text (``None`` without a launch template)."""
    version = ((asg or {}).get("launch_template") or {}).get("version")
    return None if version is None else str(version)


def validate_min_healthy(min_healthy, option="min_healthy"):
    """The one check of a required number of healthy instances: a whole number, 0 or more; None (not given) passes."""
    if min_healthy is not None and (isinstance(min_healthy, bool) or not isinstance(min_healthy, int) or min_healthy < 0):
        raise CutoverError("%s must be a whole number, 0 or more, got %r" % (option, min_healthy))
    return min_healthy


def required_capacity(asg, min_healthy=None):
    """How many healthy instances a colour needs: ``min_healthy``, else its desired capacity, never below 1."""
    validate_min_healthy(min_healthy)
    return max(1, asg["desired_capacity"] if min_healthy is None else min_healthy)


def assess(asg, targets, required, version=None):
    """A colour's capacity and everything in its target group that is not capacity.

    ``asg``: the group summary (``name``, ``instances`` with ``id``,
    ``lifecycle_state``, ``health_status``, ``launch_template_version``, and
    ``launch_template``); ``targets``: the target group's targets with their
    states; ``required``: healthy instances wanted (0 or more); ``version``: the
    launch-template version the instances must run (default: the group's).

    Returns a dict: ``capacity`` (members with a healthy target), ``required``,
    ``version``, ``members`` (ids), ``ready`` (at least ``required`` and every
    registered member target healthy, no member unregistered, nothing foreign,
    stale or unused registered), ``switchable`` (enough capacity and nothing
    foreign, stale or unused registered: what a switch needs), the lists
    ``foreign``, ``stale`` (targets), ``unused``, ``draining`` (target keys),
    ``waiting``, ``failing`` (targets), ``unregistered`` (member ids; with
    ``unregistered_targets``, the draining targets to register them again with),
    ``registered`` (targets not draining), and ``problems`` (one text each).
    """
    if isinstance(required, bool) or not isinstance(required, int) or required < 0:
        raise CutoverError("the capacity required must be a whole number, 0 or more, got %r" % (required,))
    wanted = group_version(asg) if version is None else str(version)
    instances = {instance["id"]: instance for instance in asg.get("instances") or []}

    def on_version(instance):
        return wanted is None or str(instance.get("launch_template_version")) == wanted

    in_service = [i for i in instances.values() if i["lifecycle_state"] == IN_SERVICE and i.get("health_status") != "Unhealthy"]
    members = sorted(instance["id"] for instance in in_service if on_version(instance))
    off_version = {instance["id"] for instance in in_service if not on_version(instance)}
    arriving = {i["id"] for i in instances.values() if i["id"] not in members and i["id"] not in off_version}
    arriving -= {i["id"] for i in instances.values() if i["lifecycle_state"] in GONE_STATES}

    registered = [t for t in targets if t["state"] != DRAINING]
    draining = [t for t in targets if t["state"] == DRAINING]
    foreign = [t for t in registered if t["id"] not in instances]
    stale = [t for t in registered if t["id"] in off_version]
    unused = [t for t in registered if t["state"] == UNUSED]
    member_targets = [t for t in registered if t["id"] in members]
    healthy_members = sorted({t["id"] for t in member_targets if is_healthy(t)})
    failing = [t for t in member_targets if t["state"] in FAILING_STATES]
    # The group's own instances on their way in (Pending, or initial checks) are waited on.
    waiting = [t for t in member_targets if t["state"] in WAITING_STATES]
    waiting += [t for t in registered if t["id"] in arriving]
    listed = {t["id"] for t in registered}
    unregistered = [member for member in members if member not in listed]
    unregistered_targets = [t for t in draining if t["id"] in unregistered]

    capacity = len(healthy_members)
    blocking = bool(foreign or stale or unused)
    switchable = capacity >= required and not blocking
    ready = switchable and not waiting and not failing and not unregistered

    problems = []
    for target in foreign:
        problems.append("%s is not an instance of Auto Scaling group %s" % (describe_target(target), asg["name"]))
    for target in stale:
        problems.append(
            "%s runs launch-template version %s, not %s"
            % (describe_target(target), instances[target["id"]].get("launch_template_version"), wanted)
        )
    for target in unused:
        if target not in foreign and target not in stale:
            problems.append(describe_target(target))
    for target in failing + waiting:
        if target not in unused:
            problems.append(describe_target(target))
    for member in unregistered:
        leaving = [t for t in unregistered_targets if t["id"] == member]
        problems.append(
            "%s is InService but %s" % (member, "draining, not registered" if leaving else "not registered in the target group")
        )
    for target in draining:
        if target["id"] not in unregistered:
            problems.append("%s - leaving the group, not counted" % describe_target(target))
    if len(member_targets) < required:
        problems.append("only %d target(s) registered, at least %d wanted" % (len(member_targets), required))
    elif capacity < required:
        problems.append("only %d healthy instance(s) of %s, at least %d wanted" % (capacity, asg["name"], required))

    return {
        "capacity": capacity,
        "required": required,
        "version": wanted,
        "members": members,
        "ready": ready,
        "switchable": switchable,
        "foreign": foreign,
        "stale": stale,
        "unused": [target_key(t) for t in unused],
        "draining": [target_key(t) for t in draining],
        "waiting": waiting,
        "failing": failing,
        "unregistered": unregistered,
        "unregistered_targets": unregistered_targets,
        "registered": registered,
        "problems": problems,
    }


def blocking_targets(assessment):
    """Targets that must not take the colour's traffic and will not go away by waiting: foreign and stale ones."""
    return assessment["foreign"] + assessment["stale"]


def counts(assessment, targets):
    """``{registered, healthy, unhealthy, by_state}`` as modules return them: healthy is the capacity."""
    by_state = {}
    for target in targets:
        by_state[target["state"]] = by_state.get(target["state"], 0) + 1
    registered = len(assessment["registered"])
    return {
        "registered": registered,
        "healthy": assessment["capacity"],
        "unhealthy": registered - assessment["capacity"],
        "by_state": by_state,
    }


# Matches doc fragment cutover.bluegreen.capacity.
ARGUMENT_SPEC = dict(deregister_foreign=dict(type="bool", default=False))
