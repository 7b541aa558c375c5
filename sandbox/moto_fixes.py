"""Where moto's behaviour differs from AWS in ways cutover depends on, the sandbox behaves like AWS.

Installed in the sandbox process before its server starts:

- ``CreateLaunchTemplateVersion`` honours ``SourceVersion`` (the new version
  holds the source's data under the keys sent) and stores ``UserData`` the way
  ``CreateLaunchTemplate`` does, so instances can launch from it.
- ``CreateLaunchTemplateVersion`` honours ``ClientToken``: a request repeated
  with the same token (a retry whose first response was lost) returns the
  version the first one created instead of creating another; the same token
  with other parameters fails with ``IdempotentParameterMismatch``, as in AWS.
- Each Auto Scaling instance reports the launch template it was launched
  with (``DescribeAutoScalingGroups`` and ``DescribeAutoScalingInstances``:
  ``Instances[].LaunchTemplate``), the group's specification at that moment,
  as AWS does; moto reports the template's default version for every instance,
  so a group pointed at a new version would seem to run it at once. An
  instance attached to a group, not launched by it, reports none.
- DynamoDB writes are atomic: moto checks a write's condition and then writes
  without holding a lock, so two conditional writes could both succeed; AWS
  never lets that happen, and the deployment lock relies on it.
- ``DisableMetricsCollection`` is answered (moto implements only its
  ``Enable`` half): without ``Metrics`` it disables every group metric, with
  them only those. amazon.aws's ``autoscaling_group`` calls it on every update
  of a group whose metrics collection is off.
"""

from __future__ import annotations

import copy
import functools
import json
import threading

_INSTALLED = False


def _launch_template_versions() -> None:
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.utils import parse_user_data

    original = LaunchTemplates.create_launch_template_version

    @functools.wraps(original)
    def create_launch_template_version(self):
        name = self._get_param("LaunchTemplateName")
        template_id = self._get_param("LaunchTemplateId")
        template = self.ec2_backend.get_launch_template(template_id) if template_id else self.ec2_backend.get_launch_template_by_name(name)
        data = self._get_param("LaunchTemplateData", {}) or {}
        source = self._get_param("SourceVersion")
        if source:
            merged = copy.deepcopy(template.get_version(source).data)
            merged.update(data)
            data = merged
        if data.get("UserData") is not None:
            data["UserData"] = parse_user_data(str(data["UserData"]))
        self.querystring = {key: value for key, value in self.querystring.items() if not key.startswith("LaunchTemplateData")}
        self._fixed_template_data = data
        return original(self)

    original_get_param = LaunchTemplates._get_param

    def _get_param(self, name, if_none=None):
        if name == "LaunchTemplateData" and hasattr(self, "_fixed_template_data"):
            return self._fixed_template_data
        return original_get_param(self, name, if_none)

    LaunchTemplates.create_launch_template_version = create_launch_template_version
    LaunchTemplates._get_param = _get_param


def _launch_template_client_tokens() -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses.launch_templates import LaunchTemplates

    original = LaunchTemplates.create_launch_template_version
    lock = threading.Lock()

    @functools.wraps(original)
    def create_launch_template_version(self):
        token = self._get_param("ClientToken")
        if not token:
            return original(self)
        name = self._get_param("LaunchTemplateName")
        template_id = self._get_param("LaunchTemplateId")
        template = self.ec2_backend.get_launch_template(template_id) if template_id else self.ec2_backend.get_launch_template_by_name(name)
        request = json.dumps({key: value for key, value in self.querystring.items() if key != "ClientToken"}, sort_keys=True, default=str)
        with lock:
            tokens = template.__dict__.setdefault("_cutover_client_tokens", {})
            known = tokens.get(token)
            if known is not None and known[0] != request:
                raise EC2ClientError(
                    "IdempotentParameterMismatch",
                    f"The client token {token} was already used with different parameters for launch template {template.id}.",
                )
            create = template.create_version
            created = []
            if known is not None:
                template.create_version = lambda data, description: template.get_version(known[1])
            else:
                template.create_version = lambda data, description: created.append(create(data, description)) or created[-1]
            try:
                result = original(self)
            finally:
                del template.create_version  # back to the class's method
            if created:
                tokens[token] = (request, created[0].number)
            return result

    LaunchTemplates.create_launch_template_version = create_launch_template_version


def _instance_launch_templates() -> None:
    from moto.autoscaling.models import FakeAutoScalingGroup, InstanceState

    original = FakeAutoScalingGroup.replace_autoscaling_group_instances

    @functools.wraps(original)
    def replace_autoscaling_group_instances(self, count_needed, propagated_tags):
        before = {id(state) for state in self.instance_states}
        original(self, count_needed, propagated_tags)
        launched_with = None
        if self.ec2_launch_template is not None:
            launched_with = dict(self.launch_template, Version=str(self.provided_launch_template_version or "$Default"))
        for state in self.instance_states:
            if id(state) not in before:
                state.launched_with = launched_with

    def launch_template(self):
        spec = getattr(self, "launched_with", None)
        return dict(spec) if spec else None

    FakeAutoScalingGroup.replace_autoscaling_group_instances = replace_autoscaling_group_instances
    InstanceState.launch_template = property(launch_template)


def _atomic_dynamodb_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def serialized(method):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            with lock:
                return method(*args, **kwargs)

        return wrapper

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name)))


def _disable_metrics_collection() -> None:
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import EmptyResult

    def disable_metrics_collection(self):
        name = self._get_param("AutoScalingGroupName")
        group = self.autoscaling_backend.autoscaling_groups.get(name)
        if group is None:
            raise ValidationError(f"Group {name} not found")
        metrics = self._get_param("Metrics")
        group.metrics = [metric for metric in group.metrics if metrics and metric not in metrics]
        return EmptyResult()

    AutoScalingResponse.disable_metrics_collection = disable_metrics_collection


def install() -> None:
    """Install every fix once (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    _launch_template_versions()
    _launch_template_client_tokens()
    _instance_launch_templates()
    _atomic_dynamodb_writes()
    _disable_metrics_collection()
    _INSTALLED = True
