# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""How cutover calls AWS: amazon.aws's retry decorator and error handlers, on every call.

Every call the library makes goes through one of these:

* a client method called with ``aws_retry=True`` on a client that
  :func:`retry_decorator` wraps (what ``module.client(service,
  retry_decorator=...)`` of amazon.aws builds; see ``modules.client``);
* :func:`paginate`, amazon.aws's ``paginated_query_with_retries`` (a paginator
  bypasses the client's wrapper, so it gets the same decorator itself);
* :func:`write_once`, for a write that must take effect once although its
  response may be lost.

The decorator of each operation is ``AWSRetry.jittered_backoff`` (throttling
and transient server errors, with jittered exponential back-off) inside the
service's error handler (amazon.aws's ``AWSErrorHandler``): a call that still
fails raises the service's :class:`AWSCallError`, an ``AnsibleAWSError`` whose
message names the operation ("Failed to describe listeners") and whose
``exception`` is botocore's error. Modules report it with
``fail_json_aws_error``.

botocore's own retries are switched off (:func:`botocore_config`): they would
repeat a write whose first attempt was applied but whose response was lost (a
500 after the change), silently and without a chance to look first. With one
retry layer, ours, such a write is looked at before it is repeated
(:func:`write_once`), and conditional DynamoDB writes recognise their own
earlier attempt (``table.write_conditionally``). Connection errors (no
response at all) are therefore not retried; they fail the call, naming it.
"""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

try:
    import botocore
    import botocore.config
except ImportError:
    pass  # the modules report a missing botocore

RETRIES = 10  # attempts in all; at a 30 % throttling rate all ten fail once in about 170 000 calls
DELAY = 0.5  # seconds before the first retry (at most: jittered), doubling up to MAX_DELAY
MAX_DELAY = 10

# AWSRetry already retries RequestLimitExceeded (EC2's throttling), Throttling (ELBv2, Auto Scaling,
# CloudWatch), TooManyRequestsException, InternalFailure (the query APIs' 500), InternalError (EC2's 500),
# ServiceUnavailable and Unavailable. These are the codes it does not know that the services cutover uses
# answer when they throttle or fail for a moment (botocore's service models name them).
EXTRA_RETRY_CODES = (
    "ThrottlingException",  # SSM; DynamoDB's rate limits beyond an item's
    "ProvisionedThroughputExceededException",  # DynamoDB's item operations
    "InternalServerError",  # DynamoDB's and SSM's 500
    "InternalServiceError",  # CloudWatch's 500 (InternalServiceFault)
)
# A request AWS throttled was rejected before anything happened: it need not be looked at before it is
# sent again. Any other failure of a write (a 500, a 503) may come after the change was made.
NOT_APPLIED_CODES = (
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TooManyRequestsException",
)


class AWSCallError(AnsibleAWSError):
    """An AWS call failed after its retries; ``message`` names the operation, ``exception`` is botocore's error."""


class ELBv2Error(AWSCallError):
    pass


class AutoScalingError(AWSCallError):
    pass


class EC2Error(AWSCallError):
    pass


class CloudWatchError(AWSCallError):
    pass


class DynamoDBError(AWSCallError):
    pass


class SSMError(AWSCallError):
    pass


# One handler per service, in amazon.aws's style. amazon.aws keeps handlers like these only for some
# services, and in modules it marks private (_autoscaling, _elbv2) that may change between its releases;
# ours derive from its public AWSErrorHandler.
def _handler(error):
    """amazon.aws's ``AWSErrorHandler`` raising ``error``: ``ELBv2ErrorHandler`` for :class:`ELBv2Error`, ..."""
    return type(error.__name__ + "Handler", (AWSErrorHandler,), {"_CUSTOM_EXCEPTION": error})


AWSCallErrorHandler = _handler(AWSCallError)
HANDLERS = {
    service: _handler(error)
    for service, error in (
        ("elbv2", ELBv2Error),
        ("autoscaling", AutoScalingError),
        ("ec2", EC2Error),
        ("cloudwatch", CloudWatchError),
        ("dynamodb", DynamoDBError),
        ("ssm", SSMError),
    )
}


def call_errors():
    """What a failed call raises: :class:`AWSCallError` through our clients, botocore's errors through bare ones."""
    return (AWSCallError, botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


def error_code(exc):
    """The AWS error code of a failed call (botocore's ClientError, or an AnsibleAWSError around one), else None."""
    inner = exc.exception if isinstance(exc, AnsibleAWSError) else exc
    response = getattr(inner, "response", None) or {}
    return response.get("Error", {}).get("Code")


def botocore_config():
    """The botocore configuration of cutover's clients: no retries of botocore's own (see the module docstring)."""
    return botocore.config.Config(retries={"total_max_attempts": 1})


def describe(operation):
    """``describe_target_health`` -> ``describe target health`` (the error handler says "Failed to ...")."""
    return operation.replace("_", " ")


def operation_decorator(service, operation):
    """Retries and the service's error handler for one operation (the outermost decorator is the handler)."""
    handler = HANDLERS.get(service, AWSCallErrorHandler)
    retry = AWSRetry.jittered_backoff(retries=RETRIES, delay=DELAY, max_delay=MAX_DELAY, catch_extra_error_codes=list(EXTRA_RETRY_CODES))

    def decorate(func):
        return handler.common_error_handler(describe(operation))(retry(func))

    return decorate


def retry_decorator(service):
    """The ``retry_decorator`` for ``module.client(service, ...)``: each method gets its operation's decorator."""

    def decorate(func):
        return operation_decorator(service, func.__name__)(func)

    return decorate


def service_of(client):
    """boto3's name of a client's service (``elbv2``...), or None for a stand-in without ``meta``."""
    try:
        return client.meta.service_model.service_name
    except AttributeError:
        return None


def paginate(client, operation, **params):
    """Every page of ``operation`` as one result (``build_full_result``), retried as a whole like any call."""
    return paginated_query_with_retries(client, operation, retry_decorator=operation_decorator(service_of(client), operation), **params)


def write_once(client, operation, applied, **params):
    """Call the write ``operation`` so that it takes effect once; returns its response (None if found applied).

    It is retried like any call, except that after an attempt that failed in a
    way that may have come after the change (anything but throttling), the next
    attempt first asks ``applied()`` (a read of what the write changes): when
    the change is there, the lost response was the only failure and nothing is
    sent again.
    """
    method = getattr(client, operation)
    state = {"uncertain": False}

    def attempt():
        if state["uncertain"] and applied():
            return None
        try:
            return method(aws_retry=False, **params)  # one request: the retries are this function's
        except botocore.exceptions.ClientError as exc:
            state["uncertain"] = error_code(exc) not in NOT_APPLIED_CODES
            raise

    attempt.__name__ = operation
    # The decorator the client was built with (a test may give its own), else this operation's.
    decorate = getattr(client, "retry", None) or operation_decorator(service_of(client), operation)
    return decorate(attempt)()
