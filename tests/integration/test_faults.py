"""A busy AWS: the sandbox throttles and fails calls on purpose, and deploy, rollback and teardown still do their job.

One sandbox for the file. The first tests check the fault injector itself (each
service's own errors, seeded streams, the controls); the last runs the
playbooks with a third of the calls of every service throttled and with writes
whose responses get lost, and checks that no write took effect twice.
"""

from __future__ import annotations

import json

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from sandbox import ACCESS_KEY, REGION, SECRET_KEY, server
from sandbox.dataplane.control import call, listener_urls, wait_settled
from sandbox.load import LoadLoop

from .ansible_harness import run_module, run_playbook_file
from .conftest import cli

SERVICES = ("elbv2", "autoscaling", "ec2", "cloudwatch", "dynamodb", "ssm")
SIGNING = {"elbv2": "elasticloadbalancing", "cloudwatch": "monitoring"}


def bare(sandbox, service):
    """A client without botocore's retries: each call is one request."""
    session = boto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION)
    return session.client(service, endpoint_url=sandbox.endpoint, config=botocore.config.Config(retries={"total_max_attempts": 1}))


def faults(sandbox, *rules, seed=7):
    return call(sandbox.endpoint, "faults", {"rules": list(rules), "seed": seed})


def faults_off(sandbox):
    return call(sandbox.endpoint, "faults", method="DELETE")


def one_call(sandbox, service):
    """A harmless read of each service, as the collection makes it."""
    client = bare(sandbox, service)
    return {
        "elbv2": lambda: client.describe_target_groups(),
        "autoscaling": lambda: client.describe_auto_scaling_groups(),
        "ec2": lambda: client.describe_launch_templates(),
        "cloudwatch": lambda: client.list_metrics(Namespace="AWS/ApplicationELB"),
        "dynamodb": lambda: client.get_item(TableName="none", Key={"pk": {"S": "x"}}),
        "ssm": lambda: client.get_parameter(Name="/none"),
    }[service]


def error_of(operation):
    try:
        operation()
    except ClientError as exc:
        return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]
    return None


def test_each_service_throttles_and_fails_with_its_own_error(sandbox):
    expected = {
        "throttling": {
            "elbv2": ("Throttling", 400),
            "autoscaling": ("Throttling", 400),
            "ec2": ("RequestLimitExceeded", 503),
            "cloudwatch": ("Throttling", 400),
            "dynamodb": ("ProvisionedThroughputExceededException", 400),
            "ssm": ("ThrottlingException", 400),
        },
        "500": {
            "elbv2": ("InternalFailure", 500),
            "autoscaling": ("InternalFailure", 500),
            "ec2": ("InternalError", 500),
            "cloudwatch": ("InternalServiceError", 500),
            "dynamodb": ("InternalServerError", 500),
            "ssm": ("InternalServerError", 500),
        },
    }
    try:
        for error, codes in expected.items():
            faults(sandbox, {"rate": 1.0, "error": error})
            assert {service: error_of(one_call(sandbox, service)) for service in SERVICES} == codes
        # DynamoDB throttles its control plane with another code than its item operations
        faults(sandbox, {"rate": 1.0, "service": "dynamodb"})
        assert error_of(bare(sandbox, "dynamodb").list_tables) == ("ThrottlingException", 400)
    finally:
        faults_off(sandbox)
    assert error_of(one_call(sandbox, "elbv2")) is None


def pattern(sandbox, operation, calls=40):
    return "".join("x" if error_of(operation) else "." for _ in range(calls))


def test_faults_are_seeded_per_operation_and_scoped(sandbox):
    elbv2 = bare(sandbox, "elbv2")
    try:
        rule = {"rate": 0.3, "service": "elbv2", "operation": "DescribeTargetGroups"}
        faults(sandbox, rule, seed=7)
        first = pattern(sandbox, elbv2.describe_target_groups)
        faults(sandbox, rule, seed=7)
        # the same seed gives the same fates, whatever other calls run in between
        again = ""
        for _ in range(40):
            elbv2.describe_load_balancers()
            again += "x" if error_of(elbv2.describe_target_groups) else "."
        assert again == first and 5 <= first.count("x") <= 20, first
        faults(sandbox, rule, seed=8)
        assert pattern(sandbox, elbv2.describe_target_groups) != first
        # other operations and services are left alone
        assert error_of(elbv2.describe_load_balancers) is None and error_of(one_call(sandbox, "autoscaling")) is None
        shown = call(sandbox.endpoint, "faults")
        assert shown["seed"] == 8 and shown["injected"]["elasticloadbalancing:DescribeTargetGroups"]["throttling"] >= 1
        # writes only: reads pass, writes fail
        faults(sandbox, {"rate": 1.0, "service": "ssm", "writes": True})
        ssm = bare(sandbox, "ssm")
        assert error_of(lambda: ssm.put_parameter(Name="/faults/x", Value="1", Type="String", Overwrite=True)) == (
            "ThrottlingException",
            400,
        )
        assert error_of(lambda: ssm.get_parameter(Name="/faults/x")) == ("ParameterNotFound", 400)
    finally:
        faults_off(sandbox)


def test_a_500_comes_before_or_after_the_request_is_applied(sandbox):
    ssm = bare(sandbox, "ssm")
    write = {"rate": 1.0, "service": "ssm", "operation": "PutParameter", "error": "500"}
    try:
        call(sandbox.endpoint, "api-calls", method="DELETE")
        faults(sandbox, dict(write, when="before"))
        assert error_of(lambda: ssm.put_parameter(Name="/faults/before", Value="1", Type="String")) == ("InternalServerError", 500)
        faults(sandbox, dict(write, when="after"))
        assert error_of(lambda: ssm.put_parameter(Name="/faults/after", Value="1", Type="String")) == ("InternalServerError", 500)
        faults_off(sandbox)
        assert error_of(lambda: ssm.get_parameter(Name="/faults/before")) == ("ParameterNotFound", 400)
        assert ssm.get_parameter(Name="/faults/after")["Parameter"]["Value"] == "1"  # applied, its response lost
        counted = call(sandbox.endpoint, "api-calls")
        assert counted["calls"]["ssm:PutParameter"] == 2 and counted["applied"]["ssm:PutParameter"] == 1
    finally:
        faults_off(sandbox)


def test_the_command_line_sets_shows_and_ends_faults(sandbox):
    directory = ("--dir", sandbox.state_dir)
    try:
        shown = cli(*directory, "faults", "--rate", "0.3", "--service", "elbv2", "--operation", "DescribeListeners", "--seed", "7")
        document = json.loads(shown.stdout)
        assert document["seed"] == 7
        assert document["rules"] == [
            {
                "rate": 0.3,
                "service": ["elasticloadbalancing"],
                "operation": ["DescribeListeners"],
                "error": "throttling",
                "when": "before",
                "writes": False,
                "times": None,
            }
        ]
        added = json.loads(cli(*directory, "faults", "--rate", "0.1", "--error", "500", "--after", "--writes", "--add").stdout)
        assert [rule["when"] for rule in added["rules"]] == ["before", "after"] and added["seed"] == 7
        assert json.loads(cli(*directory, "faults").stdout)["rules"] == added["rules"]
        refused = cli(*directory, "faults", "--rate", "1.5", check=False)
        assert refused.returncode == 1 and "rate must be a number from 0 to 1, got 1.5" in refused.stderr
        refused = cli(*directory, "faults", "--rate", "0.5", "--service", "s3", check=False)
        assert refused.returncode == 1 and "service 's3' is not one of" in refused.stderr
        refused = cli(*directory, "faults", "--rate", "0.5", "--after", check=False)
        assert refused.returncode == 1 and "when=after" in refused.stderr
        refused = cli(*directory, "faults", "--service", "elbv2", "--writes", check=False)
        assert refused.returncode == 2 and "--service, --writes belong to a fault rule: give its --rate (0..1) too" in refused.stderr
        assert json.loads(cli(*directory, "faults").stdout)["rules"] == added["rules"]  # a refused change changes nothing
    finally:
        assert json.loads(cli(*directory, "faults", "--off").stdout)["rules"] == []


def test_faults_from_the_start(tmp_path):
    started = cli("--dir", str(tmp_path), "start", "--port", "0", "--fault-rate", "1", "--fault-service", "ec2", "--fault-seed", "3")
    try:
        assert "fault injection on" in started.stdout
        shown = json.loads(cli("--dir", str(tmp_path), "faults").stdout)
        assert shown["seed"] == 3 and shown["rules"][0]["service"] == ["ec2"] and shown["rules"][0]["rate"] == 1.0
    finally:
        cli("--dir", str(tmp_path), "stop")
    refused = cli("--dir", str(tmp_path), "start", "--port", "0", "--fault-rate", "2", check=False)
    assert refused.returncode == 2 and "rate must be a number from 0 to 1, got 2.0" in refused.stderr
    refused = cli("--dir", str(tmp_path), "start", "--port", "0", "--fault-service", "ec2", check=False)
    assert refused.returncode == 2 and "--fault-service belong to a fault rule: give its --fault-rate (0..1) too" in refused.stderr
    assert server.current(tmp_path) is None  # nothing was started


def test_a_launch_template_version_request_repeated_with_its_token_creates_one_version(sandbox):
    ec2 = bare(sandbox, "ec2")
    template = ec2.create_launch_template(LaunchTemplateName="faults-token", LaunchTemplateData={"ImageId": "ami-0b5c0de0000000001"})
    template_id = template["LaunchTemplate"]["LaunchTemplateId"]
    request = {"LaunchTemplateId": template_id, "SourceVersion": "1", "LaunchTemplateData": {"ImageId": "ami-0b5c0de0000000002"}}
    try:
        faults(sandbox, {"rate": 1.0, "service": "ec2", "operation": "CreateLaunchTemplateVersion", "error": "500", "when": "after"})
        assert error_of(lambda: ec2.create_launch_template_version(ClientToken="release-2", **request)) == ("InternalError", 500)
        faults_off(sandbox)
        again = ec2.create_launch_template_version(ClientToken="release-2", **request)["LaunchTemplateVersion"]
        assert again["VersionNumber"] == 2 and again["LaunchTemplateData"]["ImageId"] == "ami-0b5c0de0000000002"
        versions = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)["LaunchTemplateVersions"]
        assert sorted(v["VersionNumber"] for v in versions) == [1, 2]
        other = dict(request, LaunchTemplateData={"ImageId": "ami-0b5c0de0000000003"})
        assert error_of(lambda: ec2.create_launch_template_version(ClientToken="release-2", **other)) == (
            "IdempotentParameterMismatch",
            400,
        )
        assert ec2.create_launch_template_version(**other)["LaunchTemplateVersion"]["VersionNumber"] == 3  # no token: a new one
    finally:
        faults_off(sandbox)
        ec2.delete_launch_template(LaunchTemplateId=template_id)


def test_a_rule_can_end_after_a_number_of_faults(sandbox):
    elbv2 = bare(sandbox, "elbv2")
    try:
        faults(sandbox, {"rate": 1.0, "service": "elbv2", "times": 2})
        assert pattern(sandbox, elbv2.describe_target_groups, calls=5) == "xx..."
    finally:
        faults_off(sandbox)


TOKEN = "faults-test-run-0001"  # the run's token: only the run that holds the lock renews or releases it


def test_lock_and_journal_writes_whose_responses_were_lost_take_effect_once(provisioned, sandbox):
    """The next PutItem or DeleteItem is applied and its response lost: the retry meets our own write."""
    _outputs, aws = provisioned
    lost_once = {"rate": 1.0, "service": "dynamodb", "error": "500", "when": "after", "times": 1}
    owner = {"service": "shop", "owner": "faults-test"}
    entries = []
    try:
        faults(sandbox, dict(lost_once, operation="PutItem"))
        taken = run_module("cutover.bluegreen.lock", dict(owner, token=TOKEN, lease_seconds=60), sandbox.endpoint)
        assert not taken.get("failed"), taken.get("msg")
        assert (taken["changed"], taken["operation"], taken["lock"]["owner"]) == (True, "acquire", "faults-test")
        assert call(sandbox.endpoint, "faults")["injected"] == {"dynamodb:PutItem": {"500-after": 1}}

        faults(sandbox, dict(lost_once, operation="PutItem"))
        started = run_module("cutover.bluegreen.journal", dict(owner, state="started"), sandbox.endpoint)
        assert not started.get("failed"), started.get("msg")
        assert call(sandbox.endpoint, "faults")["injected"] == {"dynamodb:PutItem": {"500-after": 1}}
        entries = aws.dynamodb.query(
            TableName="cutover-shop",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": "service#shop"}, ":prefix": {"S": "deploy#"}},
        )["Items"]
        assert [entry["deployment_id"]["S"] for entry in entries] == [started["deployment_id"]]

        faults(sandbox, dict(lost_once, operation="DeleteItem"))
        released = run_module("cutover.bluegreen.lock", dict(owner, token=TOKEN, state="released"), sandbox.endpoint)
        assert not released.get("failed"), released.get("msg")
        assert (released["changed"], released["operation"]) == (True, "release")
        assert call(sandbox.endpoint, "faults")["injected"] == {"dynamodb:DeleteItem": {"500-after": 1}}
    finally:
        faults_off(sandbox)
        for entry in entries:
            aws.dynamodb.delete_item(TableName="cutover-shop", Key={"pk": entry["pk"], "sk": entry["sk"]})
    assert "Item" not in aws.dynamodb.get_item(TableName="cutover-shop", Key={"pk": {"S": "service#shop"}, "sk": {"S": "lock"}})


# -- the playbooks on a busy AWS ------------------------------------------------------------------
BUSY = (
    {"rate": 0.3, "error": "throttling"},  # every service, every operation
    {"rate": 0.3, "error": "500", "when": "after", "writes": True},  # the change is made, its response lost
)
# A seed whose streams throttle the first call of CloudWatch, SSM and EC2 (a deploy makes few) and lose the response of the first
# CreateLaunchTemplateVersion, ModifyListener and PutItem: every kind of fault meets the calls that matter.
SEED = 9122


@pytest.fixture(scope="module")
def busy_pair(provisioned, sandbox):
    outputs, aws = provisioned
    wait_settled(sandbox.endpoint)
    urls = listener_urls(sandbox.state_dir)

    class BusyPair:
        endpoint = sandbox.endpoint

        def __init__(self):
            self.outputs, self.aws = outputs, aws

        def play(self, name, **extra):
            """Run a playbook with the faults on; return (run, faults injected, API calls)."""
            if name == "deploy":
                # the sandbox's metric period; the metric proof after the switch judges the load's requests
                extra = {
                    "deploy_smoke_test_url": urls[outputs["test_listener_arn"]],
                    "deploy_metric_period": sandbox.metric_period,
                    "deploy_verify_timeout": 90,
                    "deploy_bake_seconds": 0,
                    **extra,
                }
            call(sandbox.endpoint, "api-calls", method="DELETE")
            faults(sandbox, *BUSY, seed=SEED)
            try:
                with LoadLoop(urls[outputs["production_listener_arn"]], rate=40, threads=4, max_seconds=600):
                    run = run_playbook_file(name, sandbox.endpoint, **{"service" if name != "teardown" else "services": "shop", **extra})
                injected = call(sandbox.endpoint, "faults")["injected"]
            finally:
                faults_off(sandbox)
            return run, injected, call(sandbox.endpoint, "api-calls")

        def live(self):
            listener = aws.elbv2.describe_listeners(ListenerArns=[outputs["production_listener_arn"]])["Listeners"][0]
            colors = {arn: color for color, arn in outputs["target_group_arns"].items()}
            return sorted(colors[action["TargetGroupArn"]] for action in listener["DefaultActions"])

        def versions(self):
            template = outputs["launch_template_id"]
            return len(aws.ec2.describe_launch_template_versions(LaunchTemplateId=template)["LaunchTemplateVersions"])

        def asg(self, color):
            name = outputs["asg_names"][color]
            group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
            return group["DesiredCapacity"], {tag["Key"]: tag["Value"] for tag in group["Tags"]}.get("cutover:state")

    return BusyPair()


def kinds(injected):
    """``{service: {fault kinds}}`` of what was injected."""
    found = {}
    for action, counts in injected.items():
        found.setdefault(action.split(":")[0], set()).update(counts)
    return found


def assert_modified_once(changes, calls):
    """Each listener and rule the switch changed was modified once: the applied calls equal the changes."""
    listeners = len([change for change in changes if change["kind"] == "listener"])
    rules = len([change for change in changes if change["kind"] == "rule"])
    assert listeners and rules, changes
    applied = calls["applied"]
    assert applied.get("elasticloadbalancing:ModifyListener", 0) == listeners, calls
    assert applied.get("elasticloadbalancing:ModifyRule", 0) == rules, calls


def test_deploy_rollback_and_teardown_succeed_on_a_busy_aws_and_no_write_applies_twice(busy_pair):
    versions = busy_pair.versions()
    run, injected, calls = busy_pair.play(
        "deploy", image_id="ami-0b5c0de0000000002", user_data="version=v2", version="v2", deploy_standby_ttl="1"
    )
    assert run.ok, run.failure()
    assert busy_pair.live() == ["green"]
    # every service was throttled, and writes of each kind lost their responses
    assert {service: "throttling" in found for service, found in kinds(injected).items()} == dict.fromkeys(
        ("elasticloadbalancing", "autoscaling", "ec2", "monitoring", "dynamodb", "ssm"), True
    ), injected
    lost = {action for action, counts in injected.items() if "500-after" in counts}
    assert {"ec2:CreateLaunchTemplateVersion", "elasticloadbalancing:ModifyListener", "dynamodb:PutItem"} <= lost, injected
    assert busy_pair.versions() == versions + 1  # one launch-template version for the release
    assert_modified_once(run.result("Switch every production listener")["changes"], calls)
    assert run.result("Close the journal entry")["deployment"]["outcome"] == "succeeded"

    run, injected, calls = busy_pair.play("rollback", rollback_standby_ttl="1")
    assert run.ok, run.failure()
    assert busy_pair.live() == ["blue"] and injected
    assert_modified_once(run.result("Roll back to the previous colour")["switch"]["changes"], calls)

    run, injected, calls = busy_pair.play("teardown")
    assert run.ok, run.failure()
    assert busy_pair.asg("green") == (0, "retired") and busy_pair.live() == ["blue"] and injected
    assert busy_pair.versions() == versions + 1
