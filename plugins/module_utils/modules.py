# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every cutover.bluegreen module shares: the pair options, clients, failing with the operation named."""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.cutover.bluegreen.plugins.module_utils import fence, waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import botocore_config, retry_decorator
from ansible_collections.cutover.bluegreen.plugins.module_utils.capacity import validate_min_healthy
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import discover

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing boto3 or botocore

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
    """An AnsibleAWSModule with the pair options plus the module's own, the shared ones checked (:func:`check_options`)."""
    spec = dict(PAIR_ARGUMENT_SPEC)
    spec.update(argument_spec or {})
    module = AnsibleAWSModule(argument_spec=spec, **kwargs)
    check_options(module)
    return module


def check_options(module, limits=None):
    """The options modules share, checked once for every module, before anything is read: the wait options
    (:func:`waits.validate`, ``limits`` the most seconds per option) and ``min_healthy``."""
    try:
        waits.validate(module.params, limits)
        validate_min_healthy(module.params.get("min_healthy"))
    except CutoverError as exc:
        module.fail_json(msg=exc.message)


def client(module, service):
    """amazon.aws's ``module.client`` with cutover's retry decorator and error handler (see ``aws``).

    Every call made with ``aws_retry=True`` is retried with jittered back-off on
    throttling and transient server errors, and fails as the service's
    ``AnsibleAWSError`` naming the operation. botocore's own retries are off; a
    user's ``aws_config`` still overrides that.

    Each client has a boto3 session of its own, as amazon.aws makes them (its
    ``_boto3_conn`` makes a new session per client and takes none from
    outside). What made that costly is the service's data each new session
    read and parsed again; where the module runs in the controller's worker,
    the sessions share that data, read once per controller (see
    ``plugin_utils/botocore_data``), and a client is made in about 5 ms.
    """
    return module.client(service, retry_decorator=retry_decorator(service), config=botocore_config())


def fenced(module):
    """The block under the fence the module's ``lease`` option describes (see :mod:`fence`; none without the option)."""
    return fence.fenced(fence.of_module(module, lambda: client(module, "dynamodb")))


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


def reported(module, result):
    """``result`` as the module returns it: its ``warnings`` warned, its ``diff`` kept in diff mode only."""
    diff = result.pop("diff", None)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    if module._diff and diff is not None:
        result["diff"] = diff
    return result


def fail_json_aws_error(module, exc):
    """``module.fail_json_aws_error(exc)``, keeping what the error carries in ``kwargs``.

    amazon.aws's drops ``exc.kwargs``, which ``AnsibleAWSError`` keeps "for
    module.fail_json": ours are the details users act on (the lock holder, the
    unhealthy targets...), so they are passed on.
    """
    if not exc.kwargs:
        module.fail_json_aws_error(exc)
    if exc.exception is not None:
        module.fail_json_aws(exc.exception, msg=exc.message, **exc.kwargs)
    module.fail_json(msg=exc.message, **exc.kwargs)


def run(module, operation):
    """Run ``operation()`` and exit the module with its result dict; a failure fails the module naming its cause."""
    try:
        result = operation()
    except AnsibleAWSError as exc:  # a CutoverError, or a call that failed (named by its error handler)
        fail_json_aws_error(module, exc)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:  # a call made around the clients
        module.fail_json_aws(exc, msg="Failed to call %s" % (getattr(exc, "operation_name", None) or "AWS"))
    module.exit_json(**result)
