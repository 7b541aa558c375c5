# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every cutover.bluegreen module shares: the pair options, clients with retries, error handling."""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import THROTTLING_CODES, CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import discover

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

_COLOR_DICT = dict(type="dict", options=dict(blue=dict(type="str"), green=dict(type="str")))

# Matches doc fragment cutover.bluegreen.pair.
PAIR_ARGUMENT_SPEC = dict(
    service=dict(type="str", required=True),
    target_group_arns=_COLOR_DICT,
    asg_names=_COLOR_DICT,
    production_listener_arn=dict(type="str"),
    test_listener_arn=dict(type="str"),
)


def pair_module(argument_spec=None, **kwargs):
    """An AnsibleAWSModule with the pair options plus the module's own."""
    spec = dict(PAIR_ARGUMENT_SPEC)
    spec.update(argument_spec or {})
    return AnsibleAWSModule(argument_spec=spec, **kwargs)


def client(module, service):
    """A client whose calls with ``aws_retry=True`` retry throttling with jittered back-off."""
    retry = AWSRetry.jittered_backoff(retries=10, delay=0.5, max_delay=10, catch_extra_error_codes=list(THROTTLING_CODES))
    return module.client(service, retry_decorator=retry)


def discover_pair(module, elbv2=None, autoscaling=None, rules=True, health=True):
    """The pair named by the module's options (see :func:`pair.discover` for ``rules`` and ``health``)."""
    params = module.params
    return discover(
        elbv2 or client(module, "elbv2"),
        autoscaling or client(module, "autoscaling"),
        params["service"],
        target_group_arns=params.get("target_group_arns"),
        asg_names=params.get("asg_names"),
        production_listener_arn=params.get("production_listener_arn"),
        test_listener_arn=params.get("test_listener_arn"),
        rules=rules,
        health=health,
    )


def run(module, operation):
    """Run ``operation()`` and exit the module with its result dict; turn errors into clear failures."""
    try:
        result = operation()
    except CutoverError as exc:
        module.fail_json(msg=exc.message, **exc.details)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="AWS call failed")
    module.exit_json(**result)
