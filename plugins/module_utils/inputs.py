# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The allowed values of every role variable, checked in one step before a role reads or changes anything.

How it works
    The first task of every role is ``cutover.bluegreen.validate_inputs`` (plugins/action/validate_inputs.py,
    an action that runs on the controller: no module start, no AWS call). It reads the role's
    ``meta/argument_specs.yml`` for what an argument spec can say (type, choices, elements, required,
    default), converts every variable of the role to its type the way a module converts its options (so
    ``-e deploy_health_timeout=300``, which arrives as the string ``"300"``, becomes the integer 300, and
    ``-e deploy_smoke_test_status=200,204`` the list ``[200, 204]``), then applies RULES (one line per
    variable: ranges and formats) and COMBINATIONS (rules over several variables) below. Every bad input of
    the run is reported at once, one line each, naming the variable and what is allowed; nothing has been
    read from or written to AWS at that point.

Adding a variable (one line here, one entry in the spec)
    1. Document it in the role's ``meta/argument_specs.yml`` with its type (and choices, elements).
    2. Add its line to RULES, e.g. ``"deploy_bake_seconds": at_least(1),``; use ``TYPE_ONLY`` when the spec's
       type and choices say everything. Every option of every role must have a line (a unit test checks it).
    3. When the rule has an ``allowed`` text, end the option's description in the spec with
       ``Allowed: <that text>.`` (the unit test compares them, so the documentation and the check agree).
       A rule may also ``read`` a value into the form the role uses (canary steps as ``{weight, seconds}``
       integers, hook files as absolute paths); the role then uses that form, not the variable.
    4. A rule that involves several variables goes to COMBINATIONS, as a condition and a message (OneOf when
       one of several variables must be given).

Using the checked values in a role
    The task registers its result as ``<role>_inputs`` (``deploy_inputs``, ``rollback_inputs``, ...), which
    holds every variable of the role, typed. Wherever a task computes with a value (arithmetic, comparisons,
    membership, loops) it reads it from there, e.g. ``deploy_inputs.deploy_health_timeout``, because the
    variable itself is still the string an ``-e`` gave: extra vars outrank anything a task can set. Module
    options may take the variable itself, since a module converts its own options. A list or a mapping may
    also come as JSON text (``-e 'deploy_canary_steps=[{"weight": 5, "seconds": 120}]'``); an empty text is
    an empty list or mapping.

Everything here is pure Python over plain values, so the unit tests need neither Ansible nor AWS.
"""

from __future__ import annotations

import difflib
import json
import os
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.cutover.bluegreen.plugins.module_utils.analysis import MAX_ALARMS, PERCENTILE
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.journal import ID_PATTERN, MAX_RECENT
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import DNS_1035, DNS_1123_LABEL, MAX_APP_LENGTH
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_rollout import IMAGE_RE, MAX_REPLICAS
from ansible_collections.cutover.bluegreen.plugins.module_utils.lease import RUN_LEASE_SECONDS
from ansible_collections.cutover.bluegreen.plugins.module_utils.lease_rules import MAX_OWNER_LENGTH
from ansible_collections.cutover.bluegreen.plugins.module_utils.retire import MAX_TTL, parse_ttl
from ansible_collections.cutover.bluegreen.plugins.module_utils.rollout import IMAGE_ID, INSTANCE_TYPE

PLATFORMS = ("aws", "kubernetes")  # the first is the default

# The pair's names are built from the service ("<service>-green" is at most 32 characters, an ALB's limit):
# the same rule as the Pulumi program's (infra/aws/bluegreen_pair/config.py SERVICE_RE; a unit test compares).
SERVICE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,24}[a-z0-9])?$")
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")  # DynamoDB's rule for table names
URL = re.compile(r"^https?://[^/\s?#]+(?:/\S*)?$")
USER_DATA_BYTES = 16384  # EC2 takes at most 16 KB of user data, before base64


class Rule:
    """What one variable allows: ``allowed`` says it (in messages and in the spec), ``test`` checks a typed value.

    ``read`` (optional) turns the typed value into the form the role uses, given the run's ``context``
    (``playbook_dir``); it raises ValueError, TypeError or CutoverError for a value it cannot read. The
    text of a CutoverError from ``read`` says what is wrong within the value (which step, which hook) and
    follows the allowed text in the message. A value that is not given (``None``) is not tested: whether a variable is
    required is the spec's to say.
    """

    def __init__(self, allowed, test, read=None):
        self.allowed = allowed
        self.test = test
        self.read = read

    def examine(self, value, context=None):
        """``(value as the role uses it, None)`` when ``value`` is allowed, else ``(value, what is allowed)``."""
        if value is None:
            return None, None
        if self.read is not None:
            try:
                value = self.read(value, context or {})
            except CutoverError as exc:
                return value, "%s (%s)" % (self.allowed, exc)
            except (TypeError, ValueError):
                return value, self.allowed
        try:
            fine = self.test(value)
        except (CutoverError, TypeError, ValueError):
            fine = False
        return value, (None if fine else self.allowed)

    def problem(self, value, context=None):
        """``None`` when ``value`` is allowed, else what is allowed."""
        return self.examine(value, context)[1]


class ByPlatform(Rule):
    """A rule that differs by platform: ``rules`` maps each platform to its rule, ``context["platform"]`` picks one.

    ``allowed`` (what the spec states) names each platform's range; a message names only the run's platform's.
    """

    def __init__(self, rules):
        self.rules = dict(rules)
        super().__init__("; ".join("on %s %s" % (platform, rule.allowed) for platform, rule in self.rules.items()), lambda value: True)

    def examine(self, value, context=None):
        platform = (context or {}).get("platform") or PLATFORMS[0]
        return self.rules[platform].examine(value, context)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(low, note=""):
    return Rule("%s or more%s" % (low, note), lambda value: _number(value) and value >= low)


def between(low, high, note="", after=False):
    """``low`` to ``high``; ``note`` follows ``low`` (``0 (no canary) to 99``), or the range with ``after``."""
    text = "%s to %s%s" % (low, high, note) if after else "%s%s to %s" % (low, note, high)
    return Rule(text, lambda value: _number(value) and low <= value <= high)


def matches(pattern, allowed):
    return Rule(allowed, lambda value: isinstance(value, str) and pattern.match(value) is not None)


def at_most_bytes(size):
    return Rule("at most %d bytes" % size, lambda value: len(str(value).encode("utf-8")) <= size)


def each(rule, what):
    """A non-empty list whose every element ``rule`` allows."""
    return Rule(
        "a non-empty list of %s (comma-separated with -e)" % what,
        lambda values: isinstance(values, list) and bool(values) and all(rule.problem(v) is None for v in values),
    )


def _unique(values):
    return len(set(values)) == len(values)


def _writable_directory(path):
    return path == "" or (os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK))


def _whole(value):
    """An integer from an int, a whole float or a text of digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.match(r"^\s*\d+\s*$", value):
        return int(value)
    return None


MAX_CANARY_STEPS = 20
CANARY_STEP_WEIGHT = (1, 99)
CANARY_STEP_SECONDS = (1, 86400)
_STEP_TEXT = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def read_canary_steps(value, context=None):
    """``[{"weight": int, "seconds": int}, ...]`` from a list of mappings or of ``weight:seconds`` texts.

    Each weight 1 to 99, above the step before; each step 1 to 86400 seconds; at most 20 steps.
    """
    del context
    if not isinstance(value, list):
        raise TypeError("not a list")
    value = [item for item in value if not (isinstance(item, str) and not item.strip())]
    if len(value) > MAX_CANARY_STEPS:
        raise CutoverError("%d steps" % len(value))
    steps = []
    for number, item in enumerate(value, 1):
        weight = seconds = None
        if isinstance(item, dict) and set(item) == {"weight", "seconds"}:
            weight, seconds = _whole(item["weight"]), _whole(item["seconds"])
        elif isinstance(item, str) and _STEP_TEXT.match(item):
            weight, seconds = (int(part) for part in _STEP_TEXT.match(item).groups())
        if weight is None or seconds is None or not CANARY_STEP_WEIGHT[0] <= weight <= CANARY_STEP_WEIGHT[1]:
            raise CutoverError("step %d, %s, has no weight from 1 to 99 and seconds" % (number, _item(item)))
        if not CANARY_STEP_SECONDS[0] <= seconds <= CANARY_STEP_SECONDS[1]:
            raise CutoverError("step %d, %s, lasts %d seconds" % (number, _item(item), seconds))
        if steps and weight <= steps[-1]["weight"]:
            raise CutoverError(
                "step %d, %s, does not rise above step %d's weight %d" % (number, show(item), number - 1, steps[-1]["weight"])
            )
        steps.append({"weight": weight, "seconds": seconds})
    return steps


def read_alarms(value, context=None):
    """The alarm names, each stripped; empty names (``-e deploy_alarms=``) dropped."""
    del context
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise TypeError("not a list of names")
    names = [name.strip() for name in value if name.strip()]
    if len(names) > MAX_ALARMS:
        raise CutoverError("%d names" % len(names))
    too_long = [name for name in names if len(name) > 255]
    if too_long:
        raise CutoverError("%s is longer" % show(too_long[0]))
    return names


def hooks(points):
    """The rule of a hooks variable: ``{point: task file}`` read as ``{point: absolute path of a file that exists}``.

    A relative path is relative to the playbook's directory (``playbook_dir``), where ``include_tasks`` of a
    role's task would not look for it; every problem of the mapping is named at once.
    """

    def read(value, context=None):
        if not isinstance(value, dict):
            raise TypeError("not a mapping")
        base = (context or {}).get("playbook_dir") or os.getcwd()
        found, wrong = {}, []
        for point, path in value.items():
            if point not in points:
                wrong.append("%s is not a hook point" % show(point))
            elif not isinstance(path, str) or not path.strip():
                wrong.append("%s names no task file" % point)
            else:
                full = os.path.normpath(os.path.join(base, os.path.expanduser(path.strip())))
                if os.path.isfile(full):
                    found[point] = full
                else:
                    wrong.append("%s: %s is not a file" % (point, full))
        if wrong:
            raise CutoverError("; ".join(wrong))
        return found

    return Rule(
        "a mapping of %s to a task file that exists, absolute or relative to the playbook's directory "
        "(point=path,... with -e)" % ("the hook points %s" % ", ".join(points) if len(points) > 1 else "the hook point %s" % points[0]),
        lambda value: True,
        read,
    )


TYPE_ONLY = Rule(None, lambda value: True)  # the spec's type, choices and elements say everything
PERCENT = Rule("0 to 100 (100 lets every rate pass)", lambda value: _number(value) and 0 <= value <= 100)
DEPLOY_HOOK_POINTS = ("before_rollout", "before_switch", "after_switch", "after_bake")
TEARDOWN_HOOK_POINTS = ("after_retire",)
# The lock's variables (owner, lease, takeover) are checked here and again by run_identity, which makes the
# run's identity from them (plugins/action/run_identity.py), with lease.validate's limits.
OWNER = Rule("at most %d characters" % MAX_OWNER_LENGTH, lambda value: 0 < len(value.strip()) <= MAX_OWNER_LENGTH)
LEASE = between(*RUN_LEASE_SECONDS)
TAKEOVER = Rule("the token or the owner of the run that holds the lock, as a refusal prints it", lambda value: bool(value.strip()))
AWS_SERVICE = matches(SERVICE_NAME, "1 to 26 characters of a-z, 0-9 and - (not first or last)")
# An app on Kubernetes names its Deployments <app>-blue and <app>-green (k8s_pair.validate_app's rule).
K8S_APP = Rule(
    "1 to %d characters of a-z, 0-9 and -, a letter first and no - last" % MAX_APP_LENGTH,
    lambda value: len(value) <= MAX_APP_LENGTH and DNS_1035.match(value) is not None,
)
SERVICE = ByPlatform({"aws": AWS_SERVICE, "kubernetes": K8S_APP})
SERVICES = ByPlatform(
    {
        platform: Rule(
            "a non-empty list of %s, each named once (comma-separated with -e)" % names,
            lambda values, rule=rule: bool(values) and _unique(values) and all(rule.problem(value) is None for value in values),
        )
        for platform, names, rule in (
            ("aws", "service names", AWS_SERVICE),
            ("kubernetes", "app names of 1 to %d characters of a-z, 0-9 and -, a letter first and no - last" % MAX_APP_LENGTH, K8S_APP),
        )
    }
)
NAMESPACE = Rule(
    "a namespace name, 1 to 63 characters of a-z, 0-9 and - (not first or last); not given: the service's name",
    lambda value: len(value) <= 63 and DNS_1123_LABEL.match(value) is not None,
)
IMAGE = Rule(
    "a container image such as registry.example.com/shop:v2 (a tag or a digest), at most 512 characters",
    lambda value: len(value) <= 512 and IMAGE_RE.match(value) is not None,
)
TABLE = matches(TABLE_NAME, "3 to 255 characters of A-Z, a-z, 0-9, _, . and -")
TTL = Rule(
    "seconds, or a duration such as 90m, 2h, 1d or 1h30m (units s, m, h, d, w), up to %d days" % (MAX_TTL // 86400),
    lambda value: parse_ttl(value) is not None,  # the switch's own reading of a TTL
)
RECORD_DIR = Rule("empty (no record), or an existing directory on the controller that the run may write to", _writable_directory)
TIMEOUT = at_least(0)
# What the Kubernetes modules allow (k8s_rollout, k8s_rollback, k8s_teardown), checked here so that a run refuses it
# before it takes the lock.
CAPACITY = ByPlatform({"aws": at_least(1), "kubernetes": between(1, MAX_REPLICAS)})
K8S_WAIT = 86400
K8S_TEARDOWN_WAIT = 3600

# One line per variable of every role (the roles' meta/argument_specs.yml document each with its type).
RULES = {
    # deploy
    "deploy_service": SERVICE,
    "deploy_platform": TYPE_ONLY,
    "deploy_namespace": NAMESPACE,
    "deploy_image": IMAGE,
    "deploy_phase": TYPE_ONLY,
    "deploy_deployment_id": matches(ID_PATTERN, "a deployment id such as 20260101T120000Z-1a2b3c4d (<UTC start time>-<suffix>)"),
    "deploy_image_id": matches(IMAGE_ID, "an AMI id, ami- and 8 or 17 lowercase hex digits"),
    "deploy_user_data": at_most_bytes(USER_DATA_BYTES),
    "deploy_instance_type": matches(INSTANCE_TYPE, "an EC2 instance type such as t3.micro"),
    "deploy_version_label": Rule("at most 128 characters", lambda value: len(value) <= 128),
    "deploy_force": TYPE_ONLY,
    "deploy_capacity": CAPACITY,
    "deploy_preparation_capacity": CAPACITY,
    "deploy_owner": OWNER,
    "deploy_lease_seconds": LEASE,
    "deploy_takeover": TAKEOVER,
    "deploy_table_name": TABLE,
    "deploy_rollout_timeout": TIMEOUT,
    "deploy_health_timeout": TIMEOUT,
    "deploy_unhealthy_timeout": between(0, 86400),
    "deploy_smoke_test": TYPE_ONLY,
    "deploy_smoke_test_url": matches(URL, "an http:// or https:// URL"),
    "deploy_smoke_test_path": Rule("a path starting with /", lambda value: value.startswith("/") and not re.search(r"\s", value)),
    "deploy_smoke_test_status": each(between(100, 599), "HTTP statuses from 100 to 599"),
    "deploy_smoke_test_expect": TYPE_ONLY,
    "deploy_smoke_test_retries": at_least(0),
    "deploy_canary_weight": between(0, 99, " (no canary)"),
    "deploy_canary_seconds": between(1, 86400),
    "deploy_canary_steps": Rule(
        "at most %d steps, each a weight from 1 to 99 above the step before and 1 to 86400 seconds: "
        "{weight, seconds} mappings, JSON text or weight:seconds pairs (5:120,25:120 with -e)" % MAX_CANARY_STEPS,
        lambda steps: isinstance(steps, list),
        read_canary_steps,
    ),
    "deploy_canary_max_5xx": at_least(0),
    "deploy_canary_min_requests": at_least(1, " (fewer is not enough data: a gate never passes on no data)"),
    "deploy_metric_period": between(1, 3600, " (AWS publishes AWS/ApplicationELB in 60-second periods)", after=True),
    "deploy_verify_traffic": TYPE_ONLY,
    "deploy_verify_timeout": between(1, 86400),
    "deploy_bake_seconds": between(0, 86400, " (no bake)"),
    "deploy_bake_min_requests": at_least(1, " (fewer is not enough data: a gate never passes on no data)"),
    "deploy_bake_max_5xx_percent": PERCENT,
    "deploy_bake_max_elb_5xx_percent": PERCENT,
    "deploy_bake_max_5xx_increase": Rule("0 to 100 percentage points (100 lets every rise pass)", lambda v: _number(v) and 0 <= v <= 100),
    "deploy_bake_latency_percentile": matches(PERCENTILE, "a percentile such as p50, p90, p99 or p99.9"),
    "deploy_bake_max_latency_ms": at_least(0, " (0 or not given: no absolute latency gate)"),
    "deploy_bake_max_latency_ratio": Rule("0 (no relative latency gate), or 1 or more", lambda v: _number(v) and (v == 0 or v >= 1)),
    "deploy_bake_latency_slack_ms": at_least(0),
    "deploy_alarms": Rule(
        "at most %d CloudWatch alarm names of 1 to 255 characters (comma-separated with -e)" % MAX_ALARMS,
        lambda names: isinstance(names, list),
        read_alarms,
    ),
    "deploy_hooks": hooks(DEPLOY_HOOK_POINTS),
    "deploy_standby_ttl": TTL,
    "deploy_record_dir": RECORD_DIR,
    "deploy_deregister_foreign": TYPE_ONLY,
    # rollback
    "rollback_service": SERVICE,
    "rollback_platform": TYPE_ONLY,
    "rollback_namespace": NAMESPACE,
    "rollback_to": TYPE_ONLY,
    "rollback_capacity": CAPACITY,
    "rollback_health_timeout": ByPlatform({"aws": TIMEOUT, "kubernetes": between(0, K8S_WAIT)}),
    "rollback_standby_ttl": TTL,
    "rollback_owner": OWNER,
    "rollback_lease_seconds": LEASE,
    "rollback_takeover": TAKEOVER,
    "rollback_table_name": TABLE,
    "rollback_record_dir": RECORD_DIR,
    "rollback_deregister_foreign": TYPE_ONLY,
    # teardown
    "teardown_services": SERVICES,
    "teardown_platform": TYPE_ONLY,
    "teardown_namespace": NAMESPACE,
    "teardown_force": TYPE_ONLY,
    "teardown_wait_timeout": ByPlatform({"aws": TIMEOUT, "kubernetes": between(0, K8S_TEARDOWN_WAIT)}),
    "teardown_owner": OWNER,
    "teardown_lease_seconds": LEASE,
    "teardown_takeover": TAKEOVER,
    "teardown_hooks": hooks(TEARDOWN_HOOK_POINTS),
    # status
    "status_service": SERVICE,
    "status_platform": TYPE_ONLY,
    "status_namespace": NAMESPACE,
    "status_deployments": between(0, MAX_RECENT),
}


class Combination:
    """A rule over several variables: ``condition(*their values)`` must hold, else ``message`` (formatted with them).

    It applies to a role whose spec has all ``names``, and only when each of them passed its own rule.
    """

    def __init__(self, names, condition, message):
        self.names = tuple(names)
        self.condition = condition
        self.message = message

    def problem(self, values):
        if not self.condition(*(values.get(name) for name in self.names)):
            return self.message.format(**{name: show(values.get(name)) for name in self.names})
        return None


class OneOf(Combination):
    """At least one of ``names`` must be given (not null, not empty), unless the variable ``unless[0]`` is ``unless[1]``;
    with ``only``, only when the variable ``only[0]`` is ``only[1]`` (a rule of one platform)."""

    def __init__(self, names, message, unless=None, only=None):
        self.choices, self.unless, self.only = tuple(names), unless, only
        names = self.choices + tuple(pair[0] for pair in (unless, only) if pair)
        super().__init__(names, self.holds, message)

    def holds(self, *values):
        given = {name: values[index] for index, name in enumerate(self.names)}
        if self.unless and given[self.unless[0]] == self.unless[1]:
            return True
        if self.only and given[self.only[0]] != self.only[1]:
            return True
        return any(given[name] not in (None, "") for name in self.choices)


def _given(value, neutral=()):
    """Whether a variable was set to something that changes what a run does (not empty, not its neutral value)."""
    return value not in (None, "", [], {}) and value not in neutral


class OnlyOn(Combination):
    """A variable only one platform reads: set (to other than its ``neutral`` values) on another, it is refused."""

    def __init__(self, platform_variable, name, platform, why, neutral=()):
        super().__init__(
            (platform_variable, name),
            lambda chosen, value: chosen == platform or not _given(value, neutral),
            "%s={%s} with %s={%s}: %s" % (name, name, platform_variable, platform_variable, why),
        )


AWS_ONLY = "only the aws platform reads it"
K8S_RELEASE = "a release on kubernetes sets deploy_image (-e image=registry/app:tag)"
# A canary needs a weighted split of production, which Services cannot give (they balance connections over the pods
# they select); the canary's gates read the load balancer's metrics.
NO_K8S_CANARY = (
    "no canary on kubernetes: a Service cannot weigh two colours, and the canary's gates read AWS load-balancer "
    "metrics; release with deploy_phase=full"
)

COMBINATIONS = (
    Combination(
        ("deploy_phase", "deploy_canary_weight", "deploy_canary_steps"),
        lambda phase, weight, steps: phase != "canary" or 1 <= weight <= 99 or bool(steps),
        "deploy_canary_weight={deploy_canary_weight} with deploy_phase=canary: "
        "phase canary needs deploy_canary_weight between 1 and 99 (the percent of production for the new version) "
        "or deploy_canary_steps",
    ),
    OneOf(
        ("deploy_image_id", "deploy_user_data", "deploy_instance_type"),
        "no new version given with deploy_phase={deploy_phase}: set deploy_image_id, deploy_user_data or deploy_instance_type",
        unless=("deploy_phase", "promote"),
        only=("deploy_platform", "aws"),
    ),
    OneOf(
        ("deploy_image",),
        "no new version given with deploy_platform={deploy_platform}: set deploy_image (-e image=registry/app:tag)",
        unless=("deploy_phase", "promote"),
        only=("deploy_platform", "kubernetes"),
    ),
    Combination(
        ("deploy_platform", "deploy_rollout_timeout", "deploy_health_timeout"),
        lambda platform, rollout, health: platform != "kubernetes" or rollout + health <= K8S_WAIT,
        "deploy_rollout_timeout={deploy_rollout_timeout} and deploy_health_timeout={deploy_health_timeout} with "
        "deploy_platform=kubernetes: one wait covers both there, at most %d seconds in all" % K8S_WAIT,
    ),
    Combination(
        ("deploy_preparation_capacity", "deploy_capacity"),
        lambda preparation, capacity: preparation is None or capacity is None or preparation < capacity,
        "deploy_preparation_capacity={deploy_preparation_capacity} with deploy_capacity={deploy_capacity}: "
        "the preparation capacity must be smaller than the capacity (it is reached first)",
    ),
    # What one platform reads is refused on the other, naming it.
    OnlyOn("deploy_platform", "deploy_image_id", "aws", "%s; %s" % (AWS_ONLY, K8S_RELEASE)),
    OnlyOn("deploy_platform", "deploy_user_data", "aws", "%s; %s" % (AWS_ONLY, K8S_RELEASE)),
    OnlyOn("deploy_platform", "deploy_instance_type", "aws", "%s; %s" % (AWS_ONLY, K8S_RELEASE)),
    OnlyOn("deploy_platform", "deploy_table_name", "aws", AWS_ONLY + " (on kubernetes the lock is a Lease, the journal a ConfigMap)"),
    OnlyOn("deploy_platform", "deploy_deregister_foreign", "aws", AWS_ONLY + " (targets of a target group)", neutral=(False,)),
    OnlyOn("deploy_platform", "deploy_phase", "aws", NO_K8S_CANARY, neutral=("full",)),
    OnlyOn("deploy_platform", "deploy_canary_weight", "aws", NO_K8S_CANARY, neutral=(0,)),
    OnlyOn("deploy_platform", "deploy_canary_steps", "aws", NO_K8S_CANARY),
    OnlyOn("deploy_platform", "deploy_alarms", "aws", AWS_ONLY + " (CloudWatch alarms judge the bake on AWS)"),
    OnlyOn("deploy_platform", "deploy_image", "kubernetes", "only the kubernetes platform reads it; on aws give deploy_image_id"),
    OnlyOn("deploy_platform", "deploy_namespace", "kubernetes", "only the kubernetes platform reads it"),
    OnlyOn("rollback_platform", "rollback_table_name", "aws", AWS_ONLY + " (on kubernetes the lock is a Lease, the journal a ConfigMap)"),
    OnlyOn("rollback_platform", "rollback_deregister_foreign", "aws", AWS_ONLY + " (targets of a target group)", neutral=(False,)),
    OnlyOn("rollback_platform", "rollback_namespace", "kubernetes", "only the kubernetes platform reads it"),
    OnlyOn("teardown_platform", "teardown_namespace", "kubernetes", "only the kubernetes platform reads it"),
    OnlyOn("status_platform", "status_namespace", "kubernetes", "only the kubernetes platform reads it"),
)


def show(value, limit=60):
    """A value as a message shows it: short, and lists as they are written with -e."""
    if value is None:
        return "(not given)"
    if isinstance(value, dict):
        text = ",".join("%s=%s" % (key, _item(item)) for key, item in value.items())
    elif isinstance(value, list):
        text = ",".join(_item(item) for item in value)
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str):
        text = json.dumps(value) if (value == "" or re.search(r"\s", value)) else value
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _item(value):
    """An element of a list or a mapping in a message: a mapping or list inside as compact JSON."""
    return json.dumps(value, separators=(",", ":"), default=str) if isinstance(value, (dict, list)) else str(value)


def type_text(spec):
    """What an argument spec's option allows by its type and choices, for a message."""
    if spec.get("choices"):
        return "one of " + ", ".join(str(choice) for choice in spec["choices"])
    kind = spec.get("type", "str")
    if kind == "list":
        element = spec.get("elements", "str")
        return "a list of %s (comma-separated with -e)" % {"int": "integers", "str": "texts", "bool": "booleans"}.get(element, element)
    return {
        "int": "an integer",
        "float": "a number",
        "bool": "true or false (also yes/no, on/off, 1/0)",
        "str": "a text",
        "path": "a path",
        "dict": "a mapping (as JSON with -e)",
    }.get(kind, kind)


def rule_problems(values, names, rules=None, combinations=COMBINATIONS, already_bad=(), context=None):
    """The messages of every rule and combination that ``values`` (typed) break, one per bad input.

    ``names`` are the role's variables; ``already_bad`` those that failed their type, which are not tested again.
    A rule that reads its value (canary steps, hooks) puts the value it read into ``values``, for the
    combinations and for the role; ``context`` (``playbook_dir``) is what those readings need.
    """
    rules = RULES if rules is None else rules
    problems, bad = [], set(already_bad)
    for name in names:
        if name in bad:
            continue
        rule = rules.get(name)
        if rule is None:
            continue
        value, allowed = rule.examine(values.get(name), context)
        if allowed is not None:
            problems.append("%s=%s: allowed %s" % (name, show(values.get(name)), allowed))
            bad.add(name)
        elif name in values:
            values[name] = value
    for combination in combinations:
        if all(name in names for name in combination.names) and not bad.intersection(combination.names):
            message = combination.problem(values)
            if message is not None:
                problems.append(message)
    return problems


def convert(options, raw, platform=None):
    """``(typed, problems, bad)``: each variable converted to its spec's type, one message per variable that is not.

    ``options`` is the ``options`` mapping of a role's entry point in ``meta/argument_specs.yml``; ``raw`` the
    variables' values as Ansible holds them (strings when they came from ``-e key=value``). ``None`` means not
    given: the spec's default applies. Each variable is converted by itself with ansible-core's own
    ArgumentSpecValidator (what a module does with its options), so every message names its variable.
    """
    typed, problems, bad = {}, [], []
    for name, spec in options.items():
        given = {name: text_form(spec, raw[name])} if raw.get(name) is not None else {}
        result = ArgumentSpecValidator({name: dict(spec)}).validate(given)
        if result.error_messages:
            if name in given:
                problems.append("%s=%s: allowed %s" % (name, show(raw[name]), allowed_text(spec, RULES.get(name), platform)))
            else:
                problems.append("%s: required, not given; allowed %s" % (name, allowed_text(spec, RULES.get(name), platform)))
            bad.append(name)
            typed[name] = raw.get(name)
        else:
            typed[name] = result.validated_parameters.get(name)
    return typed, problems, bad


def text_form(spec, value):
    """A list or a mapping given as text: JSON text is read as JSON, an empty text is empty; others as they are.

    ansible-core reads a text for a list by splitting it at commas and one for a mapping as ``key=value``
    pairs (or JSON); JSON text of a list of mappings (canary steps) would be split into pieces.
    """
    kind = spec.get("type")
    if kind not in ("list", "dict") or not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return [] if kind == "list" else {}
    if text[0] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return value  # the type check names it
    return value


def allowed_text(spec, rule=None, platform=None):
    """The type (or choices) and the range, e.g. ``an integer, 0 or more``; a list rule says both at once.

    A rule that differs by platform says the ``platform``'s range when it is known.
    """
    if isinstance(rule, ByPlatform) and platform in rule.rules:
        rule = rule.rules[platform]
    if rule is not None and rule.allowed:
        return rule.allowed if spec.get("type") == "list" else "%s, %s" % (type_text(spec), rule.allowed)
    return type_text(spec)


def check(options, raw, context=None):
    """``(typed, problems)`` for one role: types first (each bad variable once), then RULES and COMBINATIONS.

    ``typed`` holds each variable as the role uses it (converted to its type, and read by its rule);
    ``context`` holds what a rule's reading needs (``playbook_dir``, the base of relative hook files).
    """
    # A rule that differs by platform (ByPlatform) reads the role's <role>_platform variable, aws when it has none
    # (or when it is itself bad, which its own message says).
    platform = next((raw.get(name) for name in options if name.endswith("_platform")), None)
    platform = platform if platform in PLATFORMS else PLATFORMS[0]
    typed, problems, bad = convert(options, raw, platform)
    context = dict(context or {}, platform=platform)
    problems.extend(rule_problems(typed, list(options), already_bad=bad, context=context))
    return typed, problems


def unknown_variables(role, given, options):
    """The messages for the names in ``given`` (the run's extra vars) that look like the role's (``<role>_...``) but
    are none of its ``options``: a misspelt variable would otherwise be ignored, and one of the role's own working
    variables overridden (extra vars win over everything the role sets)."""
    problems = []
    for name in sorted(name for name in given if name.startswith(role + "_") and name not in options):
        close = difflib.get_close_matches(name, list(options), n=1)
        hint = "; did you mean %s?" % close[0] if close else "; see the role's variables (meta/argument_specs.yml)"
        problems.append("%s: not a variable of the %s role%s" % (name, role, hint))
    return problems


def failure_message(role, problems):
    """One message for all the bad inputs of a run."""
    return "%s: %d bad input%s, nothing was read or changed:\n%s" % (
        role,
        len(problems),
        "" if len(problems) == 1 else "s",
        "\n".join("- " + problem for problem in problems),
    )
