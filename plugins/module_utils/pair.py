# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Find a blue-green pair and read its state.

Everything is found from the service name alone, through the ``cutover:service``
and ``cutover:color`` tags; explicit target-group ARNs and ASG names may
override. The live colour is what the production listener forwards to: AWS
decides it, nothing stored elsewhere does.

Discovery takes the same few calls however many other target groups and
Auto Scaling groups the account holds: Auto Scaling finds the service's groups
by tag (a filter AWS applies), the groups name the target groups they are
attached to, and those name their load balancer. Nothing lists every target
group of the region.

The clients are boto3 clients, optionally wrapped by amazon.aws's
``RetryingBotoClientWrapper`` (``module.client(..., retry_decorator=...)``):
every call passes ``aws_retry=True``, which :func:`plain_client` accepts too;
paginated calls go through ``aws.paginate``.
"""

from __future__ import annotations

import base64

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import call_errors, paginate
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import assess, counts
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import (
    COLOR_NAMES,
    COLORS,
    TAG_COLOR,
    TAG_LISTENER,
    TAG_RETIRE_AFTER,
    TAG_SERVICE,
    TAG_STATE,
    CutoverError,
    other_color,
    resolve_color,
)


class plain_client:
    """Wrap a bare boto3 client so that library calls with ``aws_retry=True`` work on it."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        method = getattr(self.client, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            kwargs.pop("aws_retry", None)
            return method(*args, **kwargs)

        return call


def forward_groups(actions):
    """``[(target_group_arn, weight)]`` of the forward actions among ``actions``, in their order: the one reading of forward actions.

    A forward action names its target groups in ``ForwardConfig`` (weighted, 1
    when no weight is given) or, in its short form, in ``TargetGroupArn``;
    actions of other types (authenticate, redirect, fixed-response) forward nothing.
    """
    groups = []
    for action in actions or []:
        if action.get("Type") != "forward":
            continue
        weighted = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
        if weighted:
            groups.extend((group["TargetGroupArn"], int(group.get("Weight", 1))) for group in weighted)
        elif action.get("TargetGroupArn"):
            groups.append((action["TargetGroupArn"], 1))
    return groups


def forward_weights(actions):
    """``{target_group_arn: weight}`` of a listener's or rule's forward action (empty if it does not forward)."""
    return dict(forward_groups(actions))


def forwarder(listener, kind, arn, priority, actions):
    """A forwarder: a listener's default action (``kind`` listener) or a rule, with its actions and their weights."""
    return {
        "arn": arn,
        "kind": kind,
        "listener_arn": listener["arn"],
        "role": listener["role"],
        "priority": priority,
        "actions": actions or [],
        "weights": forward_weights(actions),
    }


def read_forwarders(elbv2, listeners, into=None, rules=True, rules_of_test=True):
    """Every forwarder of ``listeners`` (``{arn, role, default_actions}``): default actions, and with ``rules`` each rule
    (not the default one) that forwards into ``into`` (target-group ARNs; None: any). ``rules_of_test=False`` skips the
    test listener's rules."""
    found = []
    for listener in listeners:
        found.append(forwarder(listener, "listener", listener["arn"], "default", listener["default_actions"]))
        if not rules or (listener["role"] == "test" and not rules_of_test):
            continue
        for rule in paginate(elbv2, "describe_rules", ListenerArn=listener["arn"])["Rules"]:
            if rule.get("IsDefault"):
                continue
            entry = forwarder(listener, "rule", rule["RuleArn"], rule.get("Priority"), rule.get("Actions"))
            if into is None or set(entry["weights"]) & set(into):
                found.append(entry)
    return found


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def elb_tags(elbv2, arns):
    """``{arn: {tag: value}}`` for ELBv2 resources (DescribeTags takes 20 at a time)."""
    found = {}
    for chunk in _chunks(list(arns), 20):
        for description in elbv2.describe_tags(ResourceArns=chunk, aws_retry=True)["TagDescriptions"]:
            found[description["ResourceArn"]] = boto3_tag_list_to_ansible_dict(description.get("Tags"))
    return found


def _listeners(elbv2, load_balancer_arn):
    return paginate(elbv2, "describe_listeners", LoadBalancerArn=load_balancer_arn)["Listeners"]


def target_health(elbv2, target_group_arn):
    """Every target of a group with its state and reason (not just the first)."""
    descriptions = elbv2.describe_target_health(TargetGroupArn=target_group_arn, aws_retry=True)["TargetHealthDescriptions"]
    targets = []
    for description in descriptions:
        health = description.get("TargetHealth") or {}
        targets.append(
            {
                "id": description["Target"]["Id"],
                "port": description["Target"].get("Port"),
                "state": health.get("State", "unknown"),
                "reason": health.get("Reason"),
                "description": health.get("Description"),
            }
        )
    return sorted(targets, key=lambda target: (target["id"], target["port"] or 0))


def attached_target_groups(group):
    """ARNs of the target groups an Auto Scaling group is attached to (``TargetGroupARNs`` and traffic sources)."""
    arns = list(group.get("TargetGroupARNs") or [])
    for source in group.get("TrafficSources") or []:
        identifier = source.get("Identifier") or ""
        if source.get("Type") in (None, "elbv2") and ":targetgroup/" in identifier:
            arns.append(identifier)
    return list(dict.fromkeys(arns))


def _read_target_groups(elbv2, service, explicit, asgs):
    """The target groups to choose the pair's from: the explicit ones, or those the colours' groups are attached to."""
    if explicit:
        missing = [color for color in COLORS if not explicit.get(color)]
        if missing:
            raise CutoverError("target_group_arns must name both colours; missing: %s" % ", ".join(missing))
        arns = [explicit[color] for color in COLORS]
    else:
        arns = list(dict.fromkeys(arn for color in COLORS for arn in attached_target_groups(asgs[color])))
        if not arns:
            raise CutoverError(
                "no target groups tagged %s=%s were found: neither Auto Scaling group of the service (%s) is attached to a target "
                "group; attach each to its colour's target group, or pass target_group_arns"
                % (TAG_SERVICE, service, ", ".join(asgs[color]["AutoScalingGroupName"] for color in COLORS))
            )
    try:
        return paginate(elbv2, "describe_target_groups", TargetGroupArns=arns)["TargetGroups"]
    except call_errors() as exc:  # TargetGroupNotFound, ValidationError (a malformed ARN)
        raise CutoverError("target groups %s could not be read: %s" % (", ".join(arns), exc)) from exc


def _pair_target_groups(service, groups, tags, explicit, asgs):
    """``{color: target_group}``: the explicit groups checked against their tags, or each colour's group tagged so."""
    found = {}
    if explicit:
        for group in groups:
            group_tags = tags.get(group["TargetGroupArn"], {})
            if group_tags.get(TAG_SERVICE) != service:
                raise CutoverError(
                    "target group %s belongs to service %r, not %r (tag %s)"
                    % (group["TargetGroupName"], group_tags.get(TAG_SERVICE), service, TAG_SERVICE)
                )
            color = [c for c in COLORS if explicit[c] == group["TargetGroupArn"]][0]
            if group_tags.get(TAG_COLOR) not in (None, color):
                raise CutoverError(
                    "target group %s is tagged %s=%s but was given as the %s one"
                    % (group["TargetGroupName"], TAG_COLOR, group_tags.get(TAG_COLOR), color)
                )
            found[color] = dict(group, Tags=group_tags)
        return found
    by_arn = {group["TargetGroupArn"]: group for group in groups}
    for color in COLORS:
        asg = asgs[color]["AutoScalingGroupName"]
        for arn in attached_target_groups(asgs[color]):
            group, group_tags = by_arn[arn], tags.get(arn, {})
            if group_tags.get(TAG_SERVICE) != service:
                continue  # attached to another load balancer of the group, not the pair's
            tagged = group_tags.get(TAG_COLOR)
            if tagged not in COLORS:
                raise CutoverError(
                    "target group %s of service %r has %s=%r; expected blue or green"
                    % (group["TargetGroupName"], service, TAG_COLOR, tagged)
                )
            if tagged != color:
                raise CutoverError(
                    "target group %s is tagged %s=%s but attached to the %s Auto Scaling group %s"
                    % (group["TargetGroupName"], TAG_COLOR, tagged, color, asg)
                )
            if color in found:
                raise CutoverError(
                    "service %r has two %s target groups: %s and %s"
                    % (service, color, found[color]["TargetGroupName"], group["TargetGroupName"])
                )
            found[color] = dict(group, Tags=group_tags)
    if not found:
        raise CutoverError(
            "no target groups tagged %s=%s were found attached to its Auto Scaling groups (%s); is the stack provisioned?"
            % (TAG_SERVICE, service, ", ".join(asgs[color]["AutoScalingGroupName"] for color in COLORS))
        )
    missing = [color for color in COLORS if color not in found]
    if missing:
        raise CutoverError(
            "service %r has no %s target group (tag %s) attached to its %s Auto Scaling group"
            % (service, " or ".join(missing), TAG_COLOR, " or ".join(missing))
        )
    return found


def _find_asgs(autoscaling, service, explicit, explicit_target_groups=False):
    if explicit:
        missing = [color for color in COLORS if not explicit.get(color)]
        if missing:
            raise CutoverError("asg_names must name both colours; missing: %s" % ", ".join(missing))
        groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[explicit[color] for color in COLORS], aws_retry=True)[
            "AutoScalingGroups"
        ]
        by_name = {group["AutoScalingGroupName"]: group for group in groups}
        found = {}
        for color in COLORS:
            group = by_name.get(explicit[color])
            if group is None:
                raise CutoverError("Auto Scaling group %s (%s) does not exist" % (explicit[color], color))
            tags = boto3_tag_list_to_ansible_dict(group.get("Tags"))
            if tags.get(TAG_SERVICE) != service:
                raise CutoverError(
                    "Auto Scaling group %s belongs to service %r, not %r" % (group["AutoScalingGroupName"], tags.get(TAG_SERVICE), service)
                )
            found[color] = group
        return found
    # AWS filters by tag before it pages: one call whatever else the account holds.
    groups = paginate(autoscaling, "describe_auto_scaling_groups", Filters=[{"Name": "tag:%s" % TAG_SERVICE, "Values": [service]}])[
        "AutoScalingGroups"
    ]
    if not groups and not explicit_target_groups:
        raise CutoverError(
            "no target groups tagged %s=%s were found: cutover finds them through the service's Auto Scaling groups, and none is "
            "tagged so; is the service name right and its stack provisioned?" % (TAG_SERVICE, service)
        )
    found = {}
    for group in groups:
        color = boto3_tag_list_to_ansible_dict(group.get("Tags")).get(TAG_COLOR)
        if color not in COLORS:
            raise CutoverError(
                "Auto Scaling group %s of service %r has %s=%r; expected blue or green"
                % (group["AutoScalingGroupName"], service, TAG_COLOR, color)
            )
        if color in found:
            raise CutoverError(
                "service %r has two %s Auto Scaling groups: %s and %s"
                % (service, color, found[color]["AutoScalingGroupName"], group["AutoScalingGroupName"])
            )
        found[color] = group
    missing = [color for color in COLORS if color not in found]
    if missing:
        raise CutoverError("service %r has no %s Auto Scaling group (tag %s)" % (service, " or ".join(missing), TAG_COLOR))
    return found


def summarize_asg(group):
    tags = boto3_tag_list_to_ansible_dict(group.get("Tags"))
    template = group.get("LaunchTemplate") or (group.get("MixedInstancesPolicy") or {}).get("LaunchTemplate", {}).get(
        "LaunchTemplateSpecification", {}
    )
    return {
        "name": group["AutoScalingGroupName"],
        "arn": group.get("AutoScalingGroupARN"),
        "min_size": group["MinSize"],
        "max_size": group["MaxSize"],
        "desired_capacity": group["DesiredCapacity"],
        "launch_template": {
            "id": template.get("LaunchTemplateId"),
            "name": template.get("LaunchTemplateName"),
            "version": template.get("Version"),
        },
        "instances": [
            {
                "id": instance["InstanceId"],
                "lifecycle_state": instance["LifecycleState"],
                "health_status": instance.get("HealthStatus"),
                "launch_template_version": (instance.get("LaunchTemplate") or {}).get("Version"),
            }
            for instance in sorted(group.get("Instances") or [], key=lambda i: i["InstanceId"])
        ],
        "in_service": len([i for i in group.get("Instances") or [] if i["LifecycleState"] == "InService"]),
        "suspended_processes": sorted(p["ProcessName"] for p in group.get("SuspendedProcesses") or []),
        "state": tags.get(TAG_STATE),
        "retire_after": tags.get(TAG_RETIRE_AFTER),
        "tags": tags,
    }


class Pair:
    """A discovered pair: plain data, plus the helpers the steps need."""

    def __init__(self, service, load_balancer_arn, colors, listeners, forwarders):
        self.service = service
        self.load_balancer_arn = load_balancer_arn
        self.colors = colors  # color -> {"target_group": {...}, "asg": {...}, "targets": [...], "health": {...}}
        self.listeners = listeners  # [{"arn", "port", "protocol", "role"}]
        self.forwarders = forwarders  # [{"arn", "kind", "listener_arn", "role", "priority", "actions", "weights"}]

    # -- roles ---------------------------------------------------------------------
    def listener(self, role):
        for listener in self.listeners:
            if listener["role"] == role:
                return listener
        return None

    def color_of(self, target_group_arn):
        for color in COLORS:
            if self.colors[color]["target_group"]["arn"] == target_group_arn:
                return color
        return None

    def color_weights(self, forwarder):
        """``{color: weight}`` of a forwarder, ignoring target groups outside the pair."""
        weights = {}
        for arn, weight in forwarder["weights"].items():
            color = self.color_of(arn)
            if color:
                weights[color] = weights.get(color, 0) + weight
        return weights

    @property
    def production(self):
        return self.listener("production")

    @property
    def test(self):
        return self.listener("test")

    @property
    def production_weights(self):
        for forwarder in self.forwarders:
            if forwarder["kind"] == "listener" and forwarder["role"] == "production":
                return self.color_weights(forwarder)
        return {}

    @property
    def live_color(self):
        """The colour the production listener sends (the most) traffic to."""
        weights = {color: weight for color, weight in self.production_weights.items() if weight > 0}
        if not weights:
            raise CutoverError(
                "the production listener of %r forwards to neither colour's target group; cannot tell which colour is live" % self.service
            )
        return max(sorted(weights), key=lambda color: weights[color])

    @property
    def idle_color(self):
        return other_color(self.live_color)

    def resolve(self, color, option="color", allowed=COLOR_NAMES):
        """The colour ``color`` names now (:func:`common.resolve_color`): ``live``, ``idle`` (refused while split) or itself."""
        split = None
        if color == "idle" and self.split:
            split = ", ".join("%s %d" % (c, w) for c, w in sorted(self.production_weights.items()) if w > 0)
        return resolve_color(color, lambda: self.live_color, option=option, allowed=allowed, service=self.service, split=split)

    @property
    def split(self):
        """True while production traffic is divided between both colours (a canary phase)."""
        return len([w for w in self.production_weights.values() if w > 0]) > 1

    def production_forwarders(self):
        """Every listener default action and rule of the production listener(s) that forwards into the pair."""
        return [f for f in self.forwarders if f["role"] != "test" and self.color_weights(f)]

    def to_dict(self):
        live = None
        try:
            live = self.live_color
        except CutoverError:
            pass
        return {
            "service": self.service,
            "load_balancer_arn": self.load_balancer_arn,
            "live_color": live,
            "idle_color": other_color(live) if live else None,
            "split": self.split,
            "production_weights": self.production_weights,
            "production_listener_arn": (self.production or {}).get("arn"),
            "test_listener_arn": (self.test or {}).get("arn"),
            "listeners": self.listeners,
            "forwarders": [{k: v for k, v in f.items() if k != "actions"} for f in self.forwarders],
            "colors": self.colors,
        }


def discover(
    elbv2,
    autoscaling,
    service,
    target_group_arns=None,
    asg_names=None,
    production_listener_arn=None,
    test_listener_arn=None,
    rules=True,
    health=True,
):
    """Read the whole pair: target groups, ASGs, listeners, rules and every target's health.

    A step that needs neither the listener rules (``rules=False``: only the listeners'
    default actions are read) nor the targets' health (``health=False``: ``targets`` is
    empty and ``health`` None) skips those calls.
    """
    if not service:
        raise CutoverError("a service name is required")
    asgs = _find_asgs(autoscaling, service, asg_names, explicit_target_groups=bool(target_group_arns))
    candidates = _read_target_groups(elbv2, service, target_group_arns, asgs)
    # Usually every candidate is on the pair's load balancer: its listeners' tags are then read with the groups'.
    candidate_balancers = {arn for group in candidates for arn in group.get("LoadBalancerArns") or []}
    raw_listeners = _listeners(elbv2, next(iter(candidate_balancers))) if len(candidate_balancers) == 1 else None
    tags = elb_tags(
        elbv2, [group["TargetGroupArn"] for group in candidates] + [listener["ListenerArn"] for listener in raw_listeners or []]
    )
    groups = _pair_target_groups(service, candidates, tags, target_group_arns, asgs)

    load_balancers = set()
    for group in groups.values():
        load_balancers.update(group.get("LoadBalancerArns") or [])
    if len(load_balancers) > 1:
        raise CutoverError(
            "the target groups of %r are attached to more than one load balancer: %s" % (service, ", ".join(sorted(load_balancers)))
        )
    if not load_balancers:
        raise CutoverError("neither target group of %r is attached to a load balancer listener" % service)
    load_balancer_arn = load_balancers.pop()

    if raw_listeners is None or load_balancer_arn not in candidate_balancers:
        raw_listeners = _listeners(elbv2, load_balancer_arn)
        tags.update(elb_tags(elbv2, [listener["ListenerArn"] for listener in raw_listeners]))
    listener_tags = tags
    pair_arns = {group["TargetGroupArn"] for group in groups.values()}

    listeners = []
    for listener in raw_listeners:
        arn = listener["ListenerArn"]
        role = listener_tags.get(arn, {}).get(TAG_LISTENER)
        if arn == production_listener_arn:
            role = "production"
        elif arn == test_listener_arn:
            role = "test"
        elif role not in ("production", "test"):
            role = None
        listeners.append({"arn": arn, "port": listener.get("Port"), "protocol": listener.get("Protocol"), "role": role, "raw": listener})
    for explicit, role in ((production_listener_arn, "production"), (test_listener_arn, "test")):
        if explicit and explicit not in [listener["arn"] for listener in listeners]:
            raise CutoverError("%s listener %s is not a listener of load balancer %s" % (role, explicit, load_balancer_arn))
    roles = [listener["role"] for listener in listeners]
    if roles.count("production") > 1 or roles.count("test") > 1:
        raise CutoverError("load balancer %s has more than one listener tagged %s=production or =test" % (load_balancer_arn, TAG_LISTENER))
    if "production" not in roles:
        # Untagged stacks: the listener that forwards into the pair and is not the test listener.
        candidates = [
            listener
            for listener in listeners
            if listener["role"] is None and set(forward_weights(listener["raw"]["DefaultActions"])) & pair_arns
        ]
        if len(candidates) != 1:
            raise CutoverError(
                "cannot tell the production listener of %r: tag it %s=production or pass production_listener_arn" % (service, TAG_LISTENER)
            )
        candidates[0]["role"] = "production"

    for listener in listeners:
        listener["default_actions"] = listener.pop("raw").get("DefaultActions") or []
    forwarders = read_forwarders(elbv2, listeners, into=pair_arns, rules=rules)
    for listener in listeners:
        del listener["default_actions"]

    colors = {}
    for color in COLORS:
        group = groups[color]
        targets = target_health(elbv2, group["TargetGroupArn"]) if health else []
        asg = summarize_asg(asgs[color])
        colors[color] = {
            "target_group": {
                "arn": group["TargetGroupArn"],
                "name": group["TargetGroupName"],
                "port": group.get("Port"),
                "health_check_path": group.get("HealthCheckPath"),
                "health_check_interval": group.get("HealthCheckIntervalSeconds"),
                "healthy_threshold": group.get("HealthyThresholdCount"),
            },
            "asg": asg,
            "targets": targets,
            # healthy: the colour's capacity, its own instances only (capacity.py); draining targets are not registered
            "health": counts(assess(asg, targets, 0), targets) if health else None,
        }
    return Pair(service, load_balancer_arn, colors, listeners, forwarders)


def running_versions(ec2, pair):
    """What each colour runs: ``{color: {launch_template_version, image_id, instance_type, user_data}}``.

    One DescribeLaunchTemplateVersions call for both colours (they share the pair's template).
    """
    wanted = {}
    for color in COLORS:
        template = pair.colors[color]["asg"]["launch_template"]
        if template.get("id") and template.get("version"):
            wanted.setdefault(template["id"], {})[color] = str(template["version"])
    versions = dict.fromkeys(COLORS)
    for template_id, by_color in wanted.items():
        response = ec2.describe_launch_template_versions(
            LaunchTemplateId=template_id, Versions=sorted(set(by_color.values())), aws_retry=True
        )
        found = {}
        for version in response.get("LaunchTemplateVersions", []):
            data = version.get("LaunchTemplateData") or {}
            view = {
                "launch_template_version": version["VersionNumber"],
                "image_id": data.get("ImageId"),
                "instance_type": data.get("InstanceType"),
                "user_data": base64.b64decode(data["UserData"]).decode("utf-8", "replace") if data.get("UserData") else None,
            }
            found[str(version["VersionNumber"])] = view
            if version.get("DefaultVersion"):
                found["$Default"] = view
        latest = max(found.values(), key=lambda v: v["launch_template_version"]) if found else None
        for color, spec in by_color.items():
            versions[color] = found.get(spec) or (latest if spec == "$Latest" else None)
    return versions


def load_balancer_address(elbv2, pair):
    """The load balancer's DNS name and the test and production listener ports (one call)."""
    balancer = elbv2.describe_load_balancers(LoadBalancerArns=[pair.load_balancer_arn], aws_retry=True)["LoadBalancers"][0]
    return {
        "load_balancer_dns_name": balancer.get("DNSName"),
        "production_listener_port": (pair.production or {}).get("port"),
        "test_listener_port": (pair.test or {}).get("port"),
    }
