"""How the library calls AWS: amazon.aws's retries and error handlers everywhere, writes that take effect once."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.cutover.bluegreen.plugins.module_utils import aws, journal, lease, modules
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import ConditionFailed, from_item, to_item, write_conditionally
from botocore.exceptions import ClientError

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
TOKEN = "token-of-run-1"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(aws, "DELAY", 0.001)
    monkeypatch.setattr(aws, "MAX_DELAY", 0.002)


def client_error(code, operation, status=400):
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class Script:
    """What the next calls do: a list of ``None`` (succeed), a code (fail before applying) or ``(code, "after")``."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)

    def next(self, operation, apply):
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is None:
            apply()
            return
        code, when = (outcome, "before") if isinstance(outcome, str) else outcome
        if when == "after":
            apply()
        raise client_error(code, operation, 400 if "Throttl" in code else 500)


class FakeListeners:
    """One listener; modify_listener follows a script; describe_listeners reads it."""

    def __init__(self, script):
        self.script = script
        self.actions = "blue"
        self.calls = []

    def modify_listener(self, ListenerArn, DefaultActions, **_kwargs):
        self.calls.append("modify_listener")

        def apply():
            self.actions = DefaultActions

        self.script.next("ModifyListener", apply)
        return {"Listeners": [{"ListenerArn": ListenerArn}]}

    def describe_listeners(self, **_kwargs):
        self.calls.append("describe_listeners")
        return {"Listeners": [{"DefaultActions": self.actions}]}


def modify(client):
    def applied():
        return client.describe_listeners(aws_retry=True)["Listeners"][0]["DefaultActions"] == "green"

    return aws.write_once(client, "modify_listener", applied, ListenerArn="arn", DefaultActions="green")


@pytest.mark.parametrize(
    ("script", "calls", "result"),
    [
        # applied, its response lost: read back, found done, not sent again
        ([("InternalFailure", "after")], ["modify_listener", "describe_listeners"], None),
        # throttled: rejected before anything happened, sent again without a look
        (["Throttling", "Throttling"], ["modify_listener"] * 3, {"Listeners": [{"ListenerArn": "arn"}]}),
        # failed before applying: read back, not done, sent again
        (["InternalFailure"], ["modify_listener", "describe_listeners", "modify_listener"], {"Listeners": [{"ListenerArn": "arn"}]}),
        # the lost response of a retry after a throttle
        (["Throttling", ("ServiceUnavailable", "after")], ["modify_listener", "modify_listener", "describe_listeners"], None),
    ],
)
def test_a_write_takes_effect_once_whatever_fails(script, calls, result):
    fake = FakeListeners(Script(*script))
    client = RetryingBotoClientWrapper(fake, aws.retry_decorator("elbv2"))
    assert modify(client) == result
    assert fake.calls == calls and fake.actions == "green"


def test_a_write_that_keeps_failing_fails_naming_the_operation():
    fake = FakeListeners(Script(*["InternalFailure"] * aws.RETRIES))
    with pytest.raises(aws.ELBv2Error) as caught:
        modify(RetryingBotoClientWrapper(fake, aws.retry_decorator("elbv2")))
    assert caught.value.message == "Failed to modify listener"
    assert isinstance(caught.value.exception, ClientError) and aws.error_code(caught.value) == "InternalFailure"
    assert fake.calls.count("modify_listener") == aws.RETRIES and fake.actions == "blue"


def test_without_write_once_a_retried_write_applies_twice():
    """The negative control: the client's plain retry sends a write again after its response was lost."""
    fake = FakeListeners(Script(("InternalFailure", "after")))
    client = RetryingBotoClientWrapper(fake, aws.retry_decorator("elbv2"))
    client.modify_listener(ListenerArn="arn", DefaultActions="green", aws_retry=True)
    assert fake.calls == ["modify_listener", "modify_listener"]


def test_every_service_retries_its_throttling_and_server_errors():
    codes = {
        "elbv2": ["Throttling", "InternalFailure"],
        "autoscaling": ["Throttling", "InternalFailure"],
        "ec2": ["RequestLimitExceeded", "InternalError"],
        "cloudwatch": ["Throttling", "InternalServiceError"],
        "dynamodb": ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"],
        "ssm": ["ThrottlingException", "InternalServerError"],
    }
    for service, failures in codes.items():
        left = list(failures)
        calls = []

        def describe_things(left=left, calls=calls, **_kwargs):
            calls.append(1)
            if left:
                raise client_error(left.pop(0), "DescribeThings")
            return {"done": True}

        assert aws.retry_decorator(service)(describe_things)() == {"done": True}, service
        assert len(calls) == len(failures) + 1


def test_a_failed_call_is_the_services_error_naming_the_operation():
    def describe_target_health(**_kwargs):
        raise client_error("AccessDenied", "DescribeTargetHealth")

    for service, error in (("elbv2", aws.ELBv2Error), ("dynamodb", aws.DynamoDBError), ("ssm", aws.SSMError)):
        with pytest.raises(error) as caught:
            aws.retry_decorator(service)(describe_target_health)()
        assert isinstance(caught.value, AnsibleAWSError) and caught.value.message == "Failed to describe target health"
        assert "AccessDenied" in str(caught.value)


class FakePaginated:
    """A client whose paginator fails ``failures`` times before returning every page as one result."""

    class meta:  # boto3's attribute name
        class service_model:
            service_name = "autoscaling"

    def __init__(self, failures):
        self.failures = list(failures)
        self.pages = 0

    def get_paginator(self, name):
        fake = self

        class Pages:
            def build_full_result(self):
                fake.pages += 1
                if fake.failures:
                    raise client_error(fake.failures.pop(0), "DescribeAutoScalingGroups")
                return {"AutoScalingGroups": [{"AutoScalingGroupName": "shop-blue"}]}

        class Paginator:
            def paginate(self, **_kwargs):
                return Pages()

        return Paginator()


def test_paginated_calls_are_retried_and_fail_naming_the_operation():
    fake = FakePaginated(["Throttling", "InternalFailure"])
    assert aws.paginate(fake, "describe_auto_scaling_groups")["AutoScalingGroups"][0]["AutoScalingGroupName"] == "shop-blue"
    assert fake.pages == 3
    with pytest.raises(aws.AutoScalingError, match="Failed to describe auto scaling groups"):
        aws.paginate(FakePaginated(["ValidationError"]), "describe_auto_scaling_groups")


def test_botocore_does_not_retry_on_its_own():
    assert aws.botocore_config().retries == {"total_max_attempts": 1}


# -- DynamoDB: conditional writes recognise their own earlier attempt ------------------------------------
class FakeTable:
    """Items by sort key; put/delete honour attribute_not_exists and ``#n0 = :v0`` conditions and follow a script."""

    def __init__(self, script, items=None):
        self.script = script
        self.items = dict(items or {})
        self.calls = []

    def get_item(self, TableName, Key, ConsistentRead, **_kwargs):
        self.calls.append("GetItem")
        item = self.items.get(Key["sk"]["S"])
        return {"Item": to_item(item)} if item else {}

    def _condition(self, sort_key, condition, values, names):
        current = self.items.get(sort_key)
        if condition.startswith("attribute_not_exists"):
            return current is None
        return current is not None and current.get(names["#n0"]) == values[":v0"]["S"]

    def put_item(self, TableName, Item, ConditionExpression, ExpressionAttributeValues=None, ExpressionAttributeNames=None, **_kwargs):
        self.calls.append("PutItem")
        item = from_item(Item)
        if not self._condition(item["sk"], ConditionExpression, ExpressionAttributeValues or {}, ExpressionAttributeNames or {}):
            raise client_error("ConditionalCheckFailedException", "PutItem")
        self.script.next("PutItem", lambda: self.items.__setitem__(item["sk"], item))

    def delete_item(self, TableName, Key, ConditionExpression, ExpressionAttributeValues=None, ExpressionAttributeNames=None, **_kwargs):
        self.calls.append("DeleteItem")
        if not self._condition(Key["sk"]["S"], ConditionExpression, ExpressionAttributeValues or {}, ExpressionAttributeNames or {}):
            raise client_error("ConditionalCheckFailedException", "DeleteItem")
        self.script.next("DeleteItem", lambda: self.items.pop(Key["sk"]["S"]))


def table(script, items=None):
    fake = FakeTable(script, items)
    return fake, RetryingBotoClientWrapper(fake, aws.retry_decorator("dynamodb"))


def test_a_journal_entry_whose_response_was_lost_is_recognised_as_ours():
    fake, dynamodb = table(Script(("InternalServerError", "after")))
    started = journal.start(dynamodb, "cutover-shop", "shop", owner="run-1", now=NOW)
    assert started["changed"] and fake.calls == ["PutItem", "PutItem", "GetItem"]
    [(sort_key, item)] = fake.items.items()
    assert sort_key == journal.sort_key(started["deployment_id"]) and item == started["after"]


def test_a_lease_whose_response_was_lost_is_taken_once_and_released_once():
    fake, dynamodb = table(Script(("InternalServerError", "after"), ("InternalServerError", "after")))
    taken = lease.acquire(dynamodb, "cutover-shop", "shop", "run-1", TOKEN, 1800, now=NOW)
    assert (taken["changed"], taken["operation"], taken["previous"]) == (True, lease.ACQUIRE, None)
    assert fake.items[lease.LOCK_SORT_KEY]["owner"] == "run-1"
    released = lease.release(dynamodb, "cutover-shop", "shop", TOKEN, now=NOW)
    assert (released["changed"], released["operation"]) == (True, lease.RELEASE) and fake.items == {}
    assert fake.calls == ["GetItem", "PutItem", "PutItem", "GetItem", "GetItem", "DeleteItem", "DeleteItem", "GetItem"]


def test_a_condition_that_fails_against_another_writer_is_still_a_conflict():
    fake, dynamodb = table(Script())
    entry = journal.new_item("shop", "20260101T120000Z-1a2b3c4d", NOW, owner="run-1")
    fake.items[entry["sk"]] = dict(entry, owner="someone else")
    with pytest.raises(ConditionFailed) as caught:
        write_conditionally(
            dynamodb,
            "cutover-shop",
            "shop",
            entry["sk"],
            lambda: dynamodb.put_item(
                TableName="cutover-shop", Item=to_item(entry), ConditionExpression="attribute_not_exists(#n0)", aws_retry=True
            ),
            lambda stored: stored == entry,
        )
    assert caught.value.current["owner"] == "someone else"
    rival = {
        "pk": "service#shop",
        "sk": "lock",
        "owner": "run-2",
        "token": "token-of-run-2",
        "expires_at": int(NOW.timestamp()) + 600,
        "lease_seconds": 600,
    }
    fake.items[lease.LOCK_SORT_KEY] = rival
    with pytest.raises(CutoverError, match="locked by run-2"):
        lease.acquire(dynamodb, "cutover-shop", "shop", "run-1", TOKEN, 1800, now=NOW)
    assert fake.items[lease.LOCK_SORT_KEY] == rival


# -- failing a module ----------------------------------------------------------------------------
class FakeModule:
    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = ("fail_json", kwargs)
        raise SystemExit

    def fail_json_aws(self, exception, msg=None, **kwargs):
        self.failed = ("fail_json_aws", dict(kwargs, exception=exception, msg=msg))
        raise SystemExit

    def fail_json_aws_error(self, exception):
        self.failed = ("fail_json_aws_error", exception)
        raise SystemExit

    def exit_json(self, **kwargs):
        raise AssertionError("no exit expected")


def test_a_failure_keeps_its_details_and_names_the_operation():
    module = FakeModule()
    with pytest.raises(SystemExit):
        modules.run(module, lambda: (_ for _ in ()).throw(CutoverError("locked by run-2", holder="run-2")))
    assert module.failed == ("fail_json", {"msg": "locked by run-2", "holder": "run-2"})

    failed_call = aws.ELBv2Error(message="Failed to describe listeners", exception=client_error("AccessDenied", "DescribeListeners"))
    with pytest.raises(SystemExit):
        modules.run(module, lambda: (_ for _ in ()).throw(failed_call))
    assert module.failed == ("fail_json_aws_error", failed_call)

    with_details = aws.ELBv2Error(message="Failed to modify rule", exception=failed_call.exception, changes=["rule 10"])
    with pytest.raises(SystemExit):
        modules.run(module, lambda: (_ for _ in ()).throw(with_details))
    assert module.failed[0] == "fail_json_aws" and module.failed[1]["changes"] == ["rule 10"]
    assert module.failed[1]["msg"] == "Failed to modify rule"


def test_the_extra_codes_are_those_amazon_aws_does_not_know():
    assert AWSRetry.found("Throttling") and AWSRetry.found("RequestLimitExceeded") and AWSRetry.found("InternalFailure")
    assert not any(AWSRetry.found(code) for code in aws.EXTRA_RETRY_CODES)  # else the extension would be dead weight
    assert all(AWSRetry.found(code, aws.EXTRA_RETRY_CODES) for code in aws.EXTRA_RETRY_CODES)
