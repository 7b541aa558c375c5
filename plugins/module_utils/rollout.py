# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Roll out the idle colour: a launch-template version, then capacity, then InService.

Plans are computed from data by pure functions and applied afterwards:

* :func:`plan_launch_template` decides which launch-template version the colour
  should run. The new version is based on the *live* colour's version (what
  production runs now) with only the given values changed, so a release that
  names just an image keeps the user data production runs, whatever stale
  version the idle colour was left on. An existing version that already has the
  given values (the live one, the one the idle colour uses, or the newest) is
  reused instead of creating another.
* :func:`plan_asg` decides the Auto Scaling group updates: instances launched
  from another version are replaced first (the colour is idle, so it is scaled
  to zero), then an optional smaller preparation capacity, then the full
  capacity. Processes that would fight the deploy are suspended around the
  updates and exactly those that were not suspended before are resumed.
* :func:`apply_rollout` makes the calls and waits, with :func:`wait_in_service`,
  until the group has the capacity InService on the version.

Only the idle colour is ever rolled out: :func:`choose_color` refuses the live
one (what the production listener forwards to).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils import fence
from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import call_errors
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import (
    COLORS,
    TAG_RETIRE_AFTER,
    TAG_STATE,
    CutoverError,
    utcnow,
)
from ansible_collections.cutover.bluegreen.plugins.module_utils.lease_rules import LostLock
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, WaitTimeout, check_seconds, waiter_for

# Launch-template data keys a rollout may change, with the option that sets each.
MANAGED_KEYS = {"ImageId": "image_id", "InstanceType": "instance_type", "UserData": "user_data"}

# Processes that would fight a deploy: rebalancing or alarm/schedule-driven scaling
# would undo the capacity we set, and replacing instances that are still starting
# would churn the group while it scales.
DEFAULT_SUSPEND_PROCESSES = ("AZRebalance", "AlarmNotification", "ScheduledActions", "ReplaceUnhealthy")
SUSPENDABLE_PROCESSES = DEFAULT_SUSPEND_PROCESSES + ("HealthCheck", "InstanceRefresh")
# Suspending these would stop the rollout itself: no launches, no terminations, no registration.
UNSUSPENDABLE_PROCESSES = ("Launch", "Terminate", "AddToLoadBalancer")

IMAGE_ID = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")

IN_SERVICE = "InService"
GONE_STATES = ("Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated", "Detaching", "Detached")

# How often (seconds) the scaling activities are read while a wait makes no progress.
ACTIVITY_CHECK_EVERY = 30.0


# --- input ------------------------------------------------------------------------------
def validate_inputs(
    image_id=None,
    instance_type=None,
    capacity=None,
    preparation_capacity=None,
    wait_timeout=0,
    suspend_processes=DEFAULT_SUSPEND_PROCESSES,
):
    """Raise :class:`CutoverError` naming the first bad input; call before anything changes."""
    if image_id is not None and not IMAGE_ID.match(image_id):
        raise CutoverError("image_id %r is not an AMI id (ami- followed by 8 or 17 lowercase hex digits)" % image_id)
    if instance_type is not None and not INSTANCE_TYPE.match(instance_type):
        raise CutoverError("instance_type %r is not an EC2 instance type such as t3.micro" % instance_type)
    for name, value in (("capacity", capacity), ("preparation_capacity", preparation_capacity)):
        if value is not None and value < 0:
            raise CutoverError("%s must not be negative, got %s" % (name, value))
    check_seconds("wait_timeout", wait_timeout)
    if preparation_capacity is not None and capacity is not None and preparation_capacity >= capacity:
        raise CutoverError(
            "preparation_capacity (%s) must be smaller than capacity (%s): it is the capacity to reach first"
            % (preparation_capacity, capacity)
        )
    for process in suspend_processes or ():
        if process in UNSUSPENDABLE_PROCESSES:
            raise CutoverError("suspend_processes must not include %s: the rollout needs it to scale the group" % process)
        if process not in SUSPENDABLE_PROCESSES:
            raise CutoverError(
                "suspend_processes: unknown scaling process %r; choose from %s" % (process, ", ".join(SUSPENDABLE_PROCESSES))
            )


def choose_color(pair, color="idle"):
    """The colour to roll out, resolved once at the start (:meth:`pair.Pair.resolve`); never the live one."""
    live = pair.live_color
    color = pair.resolve(color or "idle", allowed=COLORS + ("idle",))
    if color == live:
        raise CutoverError(
            "refusing to roll out %s: it is the live colour of %r (the production listener forwards to it); only the idle colour (%s) "
            "may be rolled out" % (color, pair.service, pair.idle_color),
            live_color=live,
        )
    target, other = pair.colors[color], pair.colors[live]
    if target["asg"]["name"] == other["asg"]["name"] or target["target_group"]["arn"] == other["target_group"]["arn"]:
        raise CutoverError(
            "refusing to roll out %s: it shares its Auto Scaling group or target group with the live colour %s" % (color, live),
            live_color=live,
        )
    return color


# --- launch template ----------------------------------------------------------------------
def encode_user_data(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_user_data(encoded):
    """Launch-template user data (base64) as text; ``None`` stays ``None``."""
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return encoded


def wanted_values(image_id=None, instance_type=None, user_data=None):
    """``{data key: plain value}`` of the values given (``None`` means keep)."""
    given = {"ImageId": image_id, "InstanceType": instance_type, "UserData": user_data}
    return {key: value for key, value in given.items() if value is not None}


def _plain(data, key):
    value = (data or {}).get(key)
    return decode_user_data(value) if key == "UserData" else value


def resolve_version(spec, versions):
    """The version dict that ``spec`` (a number, ``$Latest`` or ``$Default``) names among ``versions``."""
    spec = str(spec) if spec is not None else "$Default"
    if not versions:
        return None
    if spec == "$Latest":
        return max(versions, key=lambda v: int(v["VersionNumber"]))
    if spec == "$Default":
        for version in versions:
            if version.get("DefaultVersion"):
                return version
        return None
    for version in versions:
        if str(version["VersionNumber"]) == spec:
            return version
    return None


def version_specs(idle_template, live_template):
    """The versions to read in one DescribeLaunchTemplateVersions call."""
    specs = [str(idle_template["version"] or "$Default")]
    if live_template.get("id") == idle_template["id"]:
        specs.append(str(live_template["version"] or "$Default"))
    specs.append("$Latest")
    return list(dict.fromkeys(specs))


def read_versions(ec2, template_id, specs):
    response = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=list(specs), aws_retry=True)
    unique = {}
    for version in response["LaunchTemplateVersions"]:
        unique[int(version["VersionNumber"])] = version
    return [unique[number] for number in sorted(unique)]


def plan_launch_template(idle_template, live_template, versions, image_id=None, instance_type=None, user_data=None):
    """Which version the rolled-out colour runs, and whether it must be created.

    ``idle_template``/``live_template``: ``{id, name, version}`` of each colour's
    group; ``versions``: the DescribeLaunchTemplateVersions records of the idle
    template that :func:`version_specs` names. Returns a dict with ``create``
    (bool), ``version`` (number, ``None`` until created), ``base_version``,
    ``current_version`` (the idle colour's, resolved), ``data`` (the changed keys
    to send, user data base64-encoded) and ``changes`` (``{option: {before, after}}``
    against the base, user data as text).
    """
    if not idle_template.get("id"):
        raise CutoverError("the Auto Scaling group does not use a launch template; cutover rolls out launch-template versions only")
    current = resolve_version(idle_template.get("version"), versions)
    if current is None:
        raise CutoverError(
            "launch template %s has no version %s (the one the group uses)"
            % (idle_template.get("name") or idle_template["id"], idle_template.get("version"))
        )
    same_template = live_template.get("id") == idle_template["id"]
    base = resolve_version(live_template.get("version"), versions) if same_template else None
    base = base or current
    latest = resolve_version("$Latest", versions)
    wanted = wanted_values(image_id, instance_type, user_data)

    def matches(version):
        data = version.get("LaunchTemplateData") or {}
        return all(_plain(data, key) == value for key, value in wanted.items())

    base_data = base.get("LaunchTemplateData") or {}
    changes = {
        MANAGED_KEYS[key]: {"before": _plain(base_data, key), "after": value}
        for key, value in wanted.items()
        if _plain(base_data, key) != value
    }
    plan = {
        "template_id": idle_template["id"],
        "template_name": idle_template.get("name") or current.get("LaunchTemplateName"),
        "base_version": int(base["VersionNumber"]),
        "current_version": int(current["VersionNumber"]),
        "latest_version": int(latest["VersionNumber"]),
        "changes": changes,
        "values": {MANAGED_KEYS[key]: value for key, value in wanted.items()},
        "current_values": {MANAGED_KEYS[key]: _plain(current.get("LaunchTemplateData"), key) for key in wanted},
    }
    for reason, candidate in (("live", base), ("current", current), ("latest", latest)):
        if matches(candidate):
            plan.update(create=False, version=int(candidate["VersionNumber"]), reused=reason, data={})
            return plan
    data = {
        key: encode_user_data(value) if key == "UserData" else value for key, value in wanted.items() if _plain(base_data, key) != value
    }
    plan.update(create=True, version=None, reused=None, data=data)
    return plan


def client_token(plan, description=None):
    """The idempotency token of the version :func:`create_version` makes: the same for the same request.

    A retry of a request whose response was lost then gets the version its
    first attempt created instead of a second one (AWS keeps the token's
    result), so a release makes one version however often its call is retried.
    """
    request = json.dumps([plan["template_id"], plan["base_version"], plan["data"], description], sort_keys=True)
    return hashlib.sha256(request.encode("utf-8")).hexdigest()  # 64 characters; AWS takes up to 128


def create_version(ec2, plan, description=None):
    """Create the planned version (only the changed keys, on top of the base); returns its number."""
    extra = {"VersionDescription": description} if description else {}
    created = ec2.create_launch_template_version(
        LaunchTemplateId=plan["template_id"],
        SourceVersion=str(plan["base_version"]),
        LaunchTemplateData=plan["data"],
        ClientToken=client_token(plan, description),
        aws_retry=True,
        **extra,
    )["LaunchTemplateVersion"]
    return int(created["VersionNumber"])


# --- Auto Scaling group -------------------------------------------------------------------------
def _active(instance):
    return instance["lifecycle_state"] not in GONE_STATES


def asg_view(asg):
    """The part of a group summary a rollout changes."""
    return {
        "name": asg["name"],
        "launch_template_version": asg["launch_template"]["version"],
        "min_size": asg["min_size"],
        "max_size": asg["max_size"],
        "desired_capacity": asg["desired_capacity"],
    }


def plan_asg(asg, version, capacity, preparation_capacity=None, suspend_processes=DEFAULT_SUSPEND_PROCESSES):
    """The updates that bring group summary ``asg`` to ``capacity`` instances of ``version``.

    Instances whose own launch-template version is another one are ``stale``
    (replaced first). Returns ``{steps, suspend, stale, before, after, changed}``;
    each step is ``{name, update (UpdateAutoScalingGroup arguments, may be empty),
    wait_for}`` with ``name`` one of ``replace`` (scale to zero to get rid of
    instances of another version), ``prepare`` and ``scale``.
    """
    version = str(version)
    if capacity < 0:
        raise CutoverError("capacity must not be negative, got %s" % capacity)
    if preparation_capacity is not None and not 0 <= preparation_capacity < capacity:
        raise CutoverError("preparation_capacity (%s) must be at least 0 and smaller than capacity (%s)" % (preparation_capacity, capacity))
    active = [instance for instance in asg["instances"] if _active(instance)]
    # Each instance's own launch-template version decides, not the group's: a group pointed at the
    # version may still run instances launched from an earlier one.
    stale = sorted(instance["id"] for instance in active if str(instance.get("launch_template_version")) != version)
    template_id = asg["launch_template"]["id"]
    max_size = max(asg["max_size"], capacity)

    state = asg_view(asg)
    steps = []

    def step(name, min_size, desired, max_size_, point, wait_for):
        update = {}
        if point and str(state["launch_template_version"]) != version:
            update["LaunchTemplate"] = {"LaunchTemplateId": template_id, "Version": version}
            state["launch_template_version"] = version
        for key, field, value in (
            ("MinSize", "min_size", min_size),
            ("MaxSize", "max_size", max_size_),
            ("DesiredCapacity", "desired_capacity", desired),
        ):
            if state[field] != value:
                update[key] = value
                state[field] = value
        steps.append({"name": name, "update": update, "wait_for": wait_for})

    if stale:
        step("replace", 0, 0, state["max_size"], False, 0)
    on_version = str(state["launch_template_version"]) == version
    at_capacity = on_version and state["min_size"] == capacity and state["desired_capacity"] == capacity and state["max_size"] >= capacity
    if preparation_capacity is not None and not at_capacity and not (on_version and state["desired_capacity"] >= preparation_capacity):
        step("prepare", preparation_capacity, preparation_capacity, max_size, True, preparation_capacity)
    step("scale", capacity, capacity, max_size, True, capacity)

    changed = any(s["update"] for s in steps)
    suspended = set(asg.get("suspended_processes") or [])
    grows = shrinks = False
    desired = asg["desired_capacity"]
    for s in steps:
        wanted = s["update"].get("DesiredCapacity", desired)
        grows, shrinks, desired = grows or wanted > desired, shrinks or wanted < desired, wanted
    if grows and "Launch" in suspended:
        raise CutoverError(
            "the Launch process of Auto Scaling group %s is suspended, so it cannot scale out; resume it first" % asg["name"]
        )
    if shrinks and "Terminate" in suspended:
        raise CutoverError(
            "the Terminate process of Auto Scaling group %s is suspended, so it cannot scale in; resume it first" % asg["name"]
        )
    return {
        "steps": steps,
        "suspend": [p for p in suspend_processes or () if p not in suspended] if changed else [],
        "stale": stale,
        "before": asg_view(asg),
        "after": dict(state),
        "changed": changed,
    }


def describe_group(autoscaling, name):
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name], aws_retry=True)["AutoScalingGroups"]
    if not groups:
        raise CutoverError("Auto Scaling group %s does not exist" % name)
    return groups[0]


def failed_activities(autoscaling, name, since):
    """Failed or cancelled scaling activities of the group since ``since`` (newest first)."""
    activities = autoscaling.describe_scaling_activities(AutoScalingGroupName=name, MaxRecords=20, aws_retry=True)["Activities"]
    failed = []
    for activity in activities:
        started = activity.get("StartTime")
        if since is not None and started is not None and started < since:
            continue
        if activity.get("StatusCode") in ("Failed", "Cancelled"):
            failed.append({"status": activity["StatusCode"], "message": activity.get("StatusMessage") or activity.get("Description")})
    return failed


def _describe_instances(instances):
    return (
        ", ".join(
            "%s %s/%s v%s" % (i["InstanceId"], i["LifecycleState"], i.get("HealthStatus"), (i.get("LaunchTemplate") or {}).get("Version"))
            for i in instances
        )
        or "no instances"
    )


def in_service_condition(autoscaling, name, capacity, version, stale=(), known=(), failure_limit=2, since=None, clock=time.monotonic):
    """The predicate of :func:`wait_in_service`: group ``name`` has ``capacity`` InService, healthy instances of ``version``.

    Returns ``(condition, seen)``; ``seen["group"]`` is the group as last read.
    """
    version = None if version is None else str(version)
    stale, known = set(stale), set(known)
    failures = {}
    seen = {"group": None, "activity_check": None}

    def fail(message, **details):
        try:
            activities = failed_activities(autoscaling, name, since)
        except call_errors():
            activities = []  # only context for the message
        if activities:
            message += "; recent failed scaling activities: %s" % "; ".join(a["message"] or a["status"] for a in activities[:3])
        raise CutoverError(message, instances=details.get("instances"), failed_activities=activities)

    def check():
        group = describe_group(autoscaling, name)
        seen["group"] = group
        instances = group.get("Instances") or []
        for instance in instances:
            if instance["InstanceId"] in known or instance["InstanceId"] in stale:
                continue
            if instance["LifecycleState"] in GONE_STATES or instance.get("HealthStatus") == "Unhealthy":
                failures[instance["InstanceId"]] = "%s/%s" % (instance["LifecycleState"], instance.get("HealthStatus"))
        if len(failures) >= failure_limit:
            fail(
                "instances of Auto Scaling group %s keep failing while it scales to %s: %s"
                % (name, capacity, ", ".join("%s %s" % item for item in sorted(failures.items()))),
                instances=[{"id": k, "state": v} for k, v in sorted(failures.items())],
            )
        active = [i for i in instances if i["LifecycleState"] not in GONE_STATES]
        good = [
            i
            for i in active
            if i["LifecycleState"] == IN_SERVICE
            and i.get("HealthStatus", "Healthy") == "Healthy"
            and i["InstanceId"] not in stale
            and (version is None or str((i.get("LaunchTemplate") or {}).get("Version")) == version)
        ]
        if len(good) >= capacity and len(active) <= capacity:
            return group
        now = clock()
        if seen["activity_check"] is None:
            seen["activity_check"] = now
        elif now - seen["activity_check"] >= ACTIVITY_CHECK_EVERY:
            seen["activity_check"] = now
            activities = failed_activities(autoscaling, name, since)
            if len(activities) >= failure_limit:
                raise CutoverError(
                    "Auto Scaling group %s cannot launch instances: %s"
                    % (name, "; ".join(a["message"] or a["status"] for a in activities[:3])),
                    failed_activities=activities,
                )
        return None

    def describe():
        group = seen["group"]
        if group is None:
            return None
        return "group at version %s, desired %s: %s" % (
            (group.get("LaunchTemplate") or {}).get("Version"),
            group.get("DesiredCapacity"),
            _describe_instances(group.get("Instances") or []),
        )

    what = "Auto Scaling group %s to have %s instance(s) InService%s" % (
        name,
        capacity,
        "" if version is None else " on launch-template version %s" % version,
    )
    return Condition(what, check, describe), seen


def wait_in_service(
    autoscaling,
    name,
    capacity,
    version,
    timeout,
    stale=(),
    known=(),
    progress=None,
    failure_limit=2,
    since=None,
    clock=None,
    sleep=None,
    delay=2.0,
    max_delay=15.0,
    waiter=None,
):
    """Wait until group ``name`` has ``capacity`` InService, healthy instances of ``version`` and no more.

    Each instance counts only when its own launch-template version is
    ``version`` (``None``: any), whatever the group points at; ``stale``
    instances (of another version, there before the wait) never count. Instances
    not in ``known`` (launched during the wait) that go to Terminating or
    Unhealthy are failures; ``failure_limit`` of them, or as many failed scaling
    activities, end the wait early with their reasons. Returns ``(group,
    waited_seconds)``.
    """
    waiter = waiter_for(waiter, progress, clock, sleep, delay=delay, max_delay=max_delay)
    condition, _seen = in_service_condition(autoscaling, name, capacity, version, stale, known, failure_limit, since, waiter.clock)
    waited = waiter.wait(condition, timeout)
    return waited.result, waited.seconds


def replaced_condition(autoscaling, name, stale):
    """The predicate of :func:`wait_replaced`: none of ``stale`` is Pending or InService any more."""
    stale = set(stale)
    seen = {}

    def check():
        group = describe_group(autoscaling, name)
        left = [i for i in group.get("Instances") or [] if i["InstanceId"] in stale and i["LifecycleState"] not in GONE_STATES]
        seen["left"] = left
        return group if not left else None

    return Condition(
        "the instances of another version in Auto Scaling group %s to terminate" % name,
        check,
        lambda: _describe_instances(seen.get("left") or []),
    )


def wait_replaced(autoscaling, name, stale, timeout, progress=None, clock=None, sleep=None, delay=2.0, max_delay=15.0, waiter=None):
    """Wait until none of ``stale`` is Pending or InService any more (they are terminating or gone)."""
    waited = waiter_for(waiter, progress, clock, sleep, delay=delay, max_delay=max_delay).wait(
        replaced_condition(autoscaling, name, stale), timeout
    )
    return waited.result, waited.seconds


# --- the whole rollout ------------------------------------------------------------------------------
def plan_rollout(
    ec2,
    pair,
    color="idle",
    image_id=None,
    instance_type=None,
    user_data=None,
    capacity=None,
    preparation_capacity=None,
    suspend_processes=DEFAULT_SUSPEND_PROCESSES,
):
    """Read what is needed (one DescribeLaunchTemplateVersions call) and plan everything; changes nothing."""
    validate_inputs(image_id, instance_type, capacity, preparation_capacity, 0, suspend_processes)
    color = choose_color(pair, color)
    live = pair.live_color
    asg = pair.colors[color]["asg"]
    live_asg = pair.colors[live]["asg"]
    if capacity is None:
        capacity = live_asg["desired_capacity"]
    if preparation_capacity is not None and preparation_capacity >= capacity:
        raise CutoverError(
            "preparation_capacity (%s) must be smaller than capacity (%s, the live colour's desired capacity)"
            % (preparation_capacity, capacity)
        )
    idle_template, live_template = asg["launch_template"], live_asg["launch_template"]
    if not idle_template.get("id"):
        raise CutoverError(
            "Auto Scaling group %s does not use a launch template; cutover rolls out launch-template versions only" % asg["name"]
        )
    versions = read_versions(ec2, idle_template["id"], version_specs(idle_template, live_template))
    template = plan_launch_template(idle_template, live_template, versions, image_id, instance_type, user_data)
    # A version still to be created gets the next number; plan with a placeholder.
    version = template["version"] if template["version"] is not None else template["latest_version"] + 1
    group = plan_asg(asg, version, capacity, preparation_capacity, suspend_processes)
    clear_tags = sorted(tag for tag in (TAG_STATE, TAG_RETIRE_AFTER) if tag in (asg.get("tags") or {}))
    return {
        "color": color,
        "live_color": live,
        "capacity": capacity,
        "preparation_capacity": preparation_capacity,
        "asg": asg,
        "template": template,
        "group": group,
        "clear_tags": clear_tags,
        "changed": template["create"] or group["changed"] or bool(clear_tags),
    }


def apply_rollout(ec2, autoscaling, plan, wait=True, wait_timeout=600, progress=None, clock=None, sleep=None, waiter=None):
    """Make the planned changes and wait; processes suspended here are resumed whatever happens."""
    check_seconds("wait_timeout", wait_timeout)
    tick = clock or time.monotonic
    started = tick()
    since = utcnow()
    timings = {}
    name = plan["asg"]["name"]
    template = plan["template"]
    version = template["version"]
    mark = tick()
    if plan["changed"]:
        fence.guard("rolling out %s" % name)  # a run that lost its lock changes nothing
    if template["create"]:
        version = create_version(ec2, template, description="cutover %s %s" % (plan["color"], name))
        template["version"] = version
    timings["launch_template"] = round(tick() - mark, 3)
    version = str(version)
    group_plan = plan["group"]
    known = {instance["id"] for instance in plan["asg"]["instances"]}
    waited = 0.0
    group = None

    def remaining():
        return max(0.0, wait_timeout - (tick() - started))

    suspended = []
    lost = False
    try:
        if group_plan["suspend"]:
            autoscaling.suspend_processes(AutoScalingGroupName=name, ScalingProcesses=group_plan["suspend"], aws_retry=True)
            suspended = list(group_plan["suspend"])
        for index, step in enumerate(group_plan["steps"]):
            mark = tick()
            update = dict(step["update"])
            if "LaunchTemplate" in update:
                update["LaunchTemplate"] = {"LaunchTemplateId": template["template_id"], "Version": version}
            if update:
                if index:
                    fence.guard("the %s step of %s" % (step["name"], name))  # after a wait: still this run's lock?
                autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, aws_retry=True, **update)
            if step["name"] == "replace":
                group, seconds = wait_replaced(autoscaling, name, group_plan["stale"], remaining(), progress, clock, sleep, waiter=waiter)
            elif wait or step["name"] == "prepare":
                group, seconds = wait_in_service(
                    autoscaling,
                    name,
                    step["wait_for"],
                    version,
                    remaining(),
                    stale=group_plan["stale"],
                    known=known,
                    progress=progress,
                    since=since,
                    clock=clock,
                    sleep=sleep,
                    waiter=waiter,
                )
            else:
                seconds = 0.0
            waited += seconds
            timings[step["name"]] = round(tick() - mark, 3)
    except WaitTimeout as exc:
        raise CutoverError(exc.message, launch_template_version=int(version), **exc.details) from exc
    except LostLock:
        lost = True
        raise
    finally:
        # Resuming what this rollout suspended puts its own change back; a run whose lock another run
        # took leaves even that to the lock's holder.
        if suspended and (not lost or fence.may_clean_up()):
            autoscaling.resume_processes(AutoScalingGroupName=name, ScalingProcesses=suspended, aws_retry=True)
    if plan["clear_tags"]:  # right after the last look of the wait, which checked the lock
        autoscaling.delete_tags(
            Tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": key} for key in plan["clear_tags"]], aws_retry=True
        )
    if group is None or suspended or plan["clear_tags"]:
        group = describe_group(autoscaling, name)  # as it is now: processes resumed, tags gone
    timings["total"] = round(tick() - started, 3)
    return {"group": group, "version": int(version), "suspended": suspended, "waited_seconds": round(waited, 3), "timings": timings}
