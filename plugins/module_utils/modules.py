# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every cutover.bluegreen module shares: the pair options, clients with retries, error handling."""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_connection_info
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import THROTTLING_CODES, CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import discover

try:
    import boto3
    import botocore
    import botocore.config
except ImportError:
    pass  # AnsibleAWSModule reports a missing boto3 or botocore

USER_AGENT = "APN/1.0 Ansible cutover.bluegreen"
# One boto3 session per profile for all the clients of a module run: the clients then share the
# session's loaded endpoint and service data instead of each reading it again.
_SESSIONS = {}

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
    """A client whose calls with ``aws_retry=True`` retry throttling with jittered back-off.

    Connects as ``module.client`` of amazon.aws does (region, endpoint, credentials,
    profile and ``aws_config`` from the module's options), from one session per
    profile shared by the module's clients.
    """
    retry = AWSRetry.jittered_backoff(retries=10, delay=0.5, max_delay=10, catch_extra_error_codes=list(THROTTLING_CODES))
    region, endpoint_url, params = get_aws_connection_info(module)
    params = dict(params)
    profile = params.pop("profile_name", None)
    config = botocore.config.Config(user_agent=USER_AGENT)
    for key in ("config", "aws_config"):
        extra = params.pop(key, None)
        if extra:
            config = config.merge(extra if isinstance(extra, botocore.config.Config) else botocore.config.Config(**extra))
    try:
        session = _SESSIONS.get(profile)
        if session is None:
            session = _SESSIONS[profile] = boto3.session.Session(profile_name=profile)
        connection = session.client(service, config=config, region_name=region, endpoint_url=endpoint_url, **params)
    except botocore.exceptions.NoRegionError:
        module.fail_json(msg="cutover needs an AWS region: set region, AWS_REGION or a profile with one")
    except (ValueError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="could not connect to AWS")
    return RetryingBotoClientWrapper(connection, retry)


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
