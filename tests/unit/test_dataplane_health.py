"""Target health as ALB reports it: from HAProxy's check results, and through the patched moto API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sandbox.dataplane import patches
from sandbox.dataplane.controller import failure_reason, target_health
from sandbox.dataplane.patches import Health, Registry


def row(status, check_status="L7OK", check_code="200"):
    return {"status": status, "check_status": check_status, "check_code": check_code}


@pytest.mark.parametrize(
    ("stat", "age", "ever_up", "expected"),
    [
        (None, 0, False, ("initial", "Elb.RegistrationInProgress")),
        (row("DOWN", "INI", ""), 1, False, ("initial", "Elb.InitialHealthChecking")),
        (row("DOWN 1/2", "L7OK"), 6, False, ("initial", "Elb.InitialHealthChecking")),
        (row("UP"), 11, False, ("healthy", None)),
        (row("UP 1/2", "L7STS", "500"), 30, True, ("healthy", None)),  # one failure is not unhealthy yet
        (row("DOWN", "L7STS", "500"), 4, False, ("initial", "Elb.InitialHealthChecking")),  # too early to tell
        (row("DOWN", "L7STS", "500"), 10, False, ("unhealthy", "Target.ResponseCodeMismatch")),
        (row("DOWN", "L4TOUT", ""), 10, False, ("unhealthy", "Target.Timeout")),
        (row("DOWN", "L7TOUT", ""), 30, True, ("unhealthy", "Target.Timeout")),
        (row("DOWN", "L4CON", ""), 30, True, ("unhealthy", "Target.FailedHealthChecks")),
        (row("DOWN", "* L4CON", ""), 30, True, ("unhealthy", "Target.FailedHealthChecks")),
        (row("MAINT"), 30, True, ("unused", "Target.InvalidState")),
    ],
)
def test_haproxy_check_results_become_alb_target_health(stat, age, ever_up, expected):
    health = target_health(stat, interval=5, unhealthy=2, age=age, ever_up=ever_up, last_failure=None)
    assert (health.state, health.reason) == expected


def test_a_recovering_target_keeps_its_last_failure_until_it_is_up():
    last = failure_reason("L7STS", "503")
    assert last.description == "Health checks failed with these codes: [503]"
    recovering = target_health(row("DOWN 1/2", "L7OK"), interval=5, unhealthy=2, age=60, ever_up=True, last_failure=last)
    assert recovering == last


def test_registry_drains_and_cancels():
    now = [100.0]
    registry = Registry(clock=lambda: now[0])
    woken = []
    registry.on_change(lambda: woken.append(1))
    record = registry.begin_drain("tg", "i-1", 8080, delay=5)
    assert record.deadline == 105.0 and registry.begin_drain("tg", "i-1", 8080, delay=50) is record  # idempotent
    assert registry.draining("tg", "i-1") is record and registry.draining("tg", "i-1", 9090) is None
    assert registry.draining_targets("tg") == [("i-1", 8080)]
    registry.cancel_drain("tg", "i-1")
    assert registry.draining("tg", "i-1") is None
    registry.note_terminated(["i-2"])
    assert registry.take_terminated() == {"i-2"} and registry.take_terminated() == set()
    registry.changed()
    assert woken == [1]


# -- moto, patched -------------------------------------------------------------------------------------
@pytest.fixture
def aws():
    registry = Registry()
    with mock_aws():
        patches.install(registry)
        try:
            session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
            clients = {name: session.client(name) for name in ("ec2", "elbv2", "autoscaling", "cloudwatch")}
            yield registry, clients
        finally:
            patches.uninstall()


def pair(clients):
    ec2, elbv2 = clients["ec2"], clients["elbv2"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{zone}")["Subnet"]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    group = elbv2.create_target_group(Name="blue", Protocol="HTTP", Port=8080, VpcId=vpc, HealthCheckPath="/health")["TargetGroups"][0]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=group["TargetGroupArn"], Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "7"}]
    )
    instances = ec2.run_instances(ImageId="ami-12345678", MinCount=2, MaxCount=2, SubnetId=subnets[0])["Instances"]
    return vpc, subnets, group["TargetGroupArn"], [i["InstanceId"] for i in instances]


def states(elbv2, arn, **kwargs):
    described = elbv2.describe_target_health(TargetGroupArn=arn, **kwargs)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: (d["TargetHealth"]["State"], d["TargetHealth"].get("Reason")) for d in described}


def test_target_health_comes_from_the_data_plane(aws):
    registry, clients = aws
    elbv2 = clients["elbv2"]
    _vpc, _subnets, arn, (one, two) = pair(clients)
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": one}, {"Id": two}])
    # no listener forwards to the group yet
    assert states(elbv2, arn) == {one: ("unused", "Target.NotInUse"), two: ("unused", "Target.NotInUse")}
    registry.publish({(arn, one, 8080): Health("healthy")}, attached={arn})
    assert states(elbv2, arn) == {one: ("healthy", None), two: ("initial", "Elb.RegistrationInProgress")}
    clients["ec2"].stop_instances(InstanceIds=[two])
    assert states(elbv2, arn)[two] == ("unused", "Target.InvalidState")


def test_deregistration_drains_for_the_delay(aws):
    registry, clients = aws
    elbv2 = clients["elbv2"]
    _vpc, _subnets, arn, (one, two) = pair(clients)
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": one}, {"Id": two}])
    # a target that is not registered: success and nothing changes, as in AWS
    elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "i-0000000000000dead"}])
    assert registry.deregistrations() == []
    elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": one}])
    elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": one}])  # again, while it drains: still one drain
    (record,) = registry.deregistrations()
    assert (record.target_id, record.port, record.deadline - record.started) == (one, 8080, 7.0)
    assert states(elbv2, arn)[one] == ("draining", "Target.DeregistrationInProgress")  # still listed
    described = elbv2.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": one}])["TargetHealthDescriptions"][0]
    assert described["TargetHealth"]["Description"] == "Target deregistration is in progress"
    with pytest.raises(ClientError, match="TargetGroupNotFound"):
        elbv2.deregister_targets(TargetGroupArn=arn.replace("blue", "gone"), Targets=[{"Id": one}])
    registry.finish_drain(record.key)
    assert one not in states(elbv2, arn)
    assert states(elbv2, arn, Targets=[{"Id": one}])[one] == ("unused", "Target.NotRegistered")
    # registering again cancels a drain in progress
    elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": two}])
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": two}])
    assert registry.deregistrations() == [] and states(elbv2, arn)[two][0] != "draining"


def test_terminating_an_instance_drains_its_targets_and_stops_it_at_once(aws):
    registry, clients = aws
    elbv2 = clients["elbv2"]
    _vpc, _subnets, arn, (one, two) = pair(clients)
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": one}, {"Id": two}])
    clients["ec2"].terminate_instances(InstanceIds=[one])
    assert states(elbv2, arn)[one] == ("draining", "Target.DeregistrationInProgress")
    assert registry.take_terminated() == {one}


def test_metric_statistics_of_custom_metrics_match_dimensions_exactly(aws):
    cloudwatch = aws[1]["cloudwatch"]
    now = datetime.now(UTC).replace(microsecond=0)
    both = [{"Name": "Service", "Value": "shop"}, {"Name": "Colour", "Value": "blue"}]
    cloudwatch.put_metric_data(
        Namespace="Shop",
        MetricData=[
            {"MetricName": "Orders", "Dimensions": both, "Value": 3.0, "Timestamp": now - timedelta(seconds=5)},
            {"MetricName": "Orders", "Dimensions": both[:1], "Value": 10.0, "Timestamp": now - timedelta(seconds=5)},
        ],
    )

    def total(dims):
        points = cloudwatch.get_metric_statistics(
            Namespace="Shop",
            MetricName="Orders",
            Dimensions=dims,
            StartTime=now - timedelta(minutes=1),
            EndTime=now + timedelta(seconds=1),
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        return [p["Sum"] for p in points]

    assert total(both[:1]) == [10.0]  # the service's own series, not its colours' added in
    assert total(list(reversed(both))) == [3.0]  # in any order
