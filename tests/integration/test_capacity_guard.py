"""What counts as a colour's capacity, end to end on the sandbox: foreign targets, a rollback during a drain,
instances on another launch-template version.

One pair for the whole file; the tests run in order, each from the state the
previous one left. A *foreign* instance (launched by hand, in no Auto Scaling
group, serving ``version=foreign``) is registered in a colour's target group;
the data plane serves its traffic like any other target's, so the load loop
sees every production request it answers.
"""

from __future__ import annotations

import time

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import forward_weights

from sandbox.dataplane.control import dataplane, listener_urls, wait_settled
from sandbox.load import LoadLoop, summarize

from .ansible_harness import run_module, run_playbook_file

RATE = 50
V2 = {"image_id": "ami-0b5c0de0000000002", "user_data": "version=v2", "version": "v2"}
V3 = {"image_id": "ami-0b5c0de0000000003", "user_data": "version=v3", "version": "v3"}
DRAIN_DELAY = 60  # AWS's default is 300 s; long enough here for the rollback to start while the drain is in flight


@pytest.fixture(scope="module")
def pair(provisioned, sandbox):
    outputs, aws = provisioned
    wait_settled(sandbox.endpoint)
    urls = listener_urls(sandbox.state_dir)

    class Pair:
        endpoint = sandbox.endpoint
        production = urls[outputs["production_listener_arn"]]
        test_url = urls[outputs["test_listener_arn"]]

        def __init__(self):
            self.outputs, self.aws = outputs, aws
            group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["shop-blue"])["AutoScalingGroups"][0]
            reservation = aws.ec2.run_instances(
                ImageId="ami-0b5c0de00000000ff",
                MinCount=1,
                MaxCount=1,
                InstanceType="t3.micro",
                SubnetId=group["VPCZoneIdentifier"].split(",")[0],
                UserData="version=foreign",
            )
            self.foreign = reservation["Instances"][0]["InstanceId"]

        def play(self, name, **extra):
            if name in ("deploy", "promote"):
                # the sandbox's metric period; the metric proof and the canary need requests: the tests send them
                extra = {
                    "deploy_smoke_test_url": self.test_url,
                    "deploy_metric_period": sandbox.metric_period,
                    "deploy_verify_timeout": 60,
                    "deploy_bake_seconds": 0,
                    "deploy_canary_min_requests": 10,
                    # not a test of the latency gate: room for a loaded machine (test_bake tests the gate)
                    "deploy_bake_latency_slack_ms": 500,
                    **extra,
                }
            return run_playbook_file(name, self.endpoint, **{"service": "shop", **extra})

        def live(self):
            listener = aws.elbv2.describe_listeners(ListenerArns=[outputs["production_listener_arn"]])["Listeners"][0]
            colors = {arn: color for color, arn in outputs["target_group_arns"].items()}
            return {colors[arn]: weight for arn, weight in forward_weights(listener["DefaultActions"]).items()}

        def targets(self, color):
            found = aws.elbv2.describe_target_health(TargetGroupArn=outputs["target_group_arns"][color])["TargetHealthDescriptions"]
            return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in found}

        def register_foreign(self, color):
            aws.elbv2.register_targets(TargetGroupArn=outputs["target_group_arns"][color], Targets=[{"Id": self.foreign}])

        def wait_target(self, color, instance, state, timeout=60):
            deadline = time.monotonic() + timeout
            while self.targets(color).get(instance) != state:
                assert time.monotonic() < deadline, f"{instance} never became {state} in {color}: {self.targets(color)}"
                time.sleep(0.5)

        def group(self, color):
            return aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[f"shop-{color}"])["AutoScalingGroups"][0]

        def lock(self):
            return aws.dynamodb.get_item(TableName="cutover-shop", Key={"pk": {"S": "service#shop"}, "sk": {"S": "lock"}}).get("Item")

        def served_after(self, seconds=3):
            """What production answers now, over a few seconds."""
            with LoadLoop(self.production, rate=RATE, threads=4, max_seconds=seconds) as load:
                time.sleep(seconds)
            return summarize(load.samples)

    return Pair()


def test_the_foreign_instance_is_served_by_the_data_plane_like_any_target(pair):
    pair.register_foreign("green")
    pair.wait_target("green", pair.foreign, "healthy")
    instances = dataplane(pair.endpoint)["instances"]
    assert instances[pair.foreign]["version"] == "foreign" and instances[pair.foreign]["auto_scaling_group"] == ""
    with LoadLoop(pair.test_url, rate=RATE, threads=4, max_seconds=3) as load:
        time.sleep(3)
    assert summarize(load.samples)["by_version"] == {"foreign": len(load.samples)}  # green's only target, through the test listener


def test_a_deploy_stops_before_the_switch_naming_a_foreign_target(pair):
    with LoadLoop(pair.production, rate=RATE, threads=4, max_seconds=240) as load:
        run = pair.play("deploy", **V2)
        time.sleep(2)
    summary = summarize(load.samples)
    assert summary["failed"] == 0 and summary["by_version"] == {"v1": summary["requests"]}, summary  # none answered by it
    assert not run.ok
    failure = run.failure()
    assert f"1 target(s) that are not instances of Auto Scaling group shop-green: {pair.foreign}:8080 healthy" in failure
    assert "production was not touched" in failure
    assert pair.live() == {"blue": 1} and pair.lock() is None


def test_a_deploy_with_deregister_foreign_goes_live_without_it(pair):
    with LoadLoop(pair.production, rate=RATE, threads=4, max_seconds=240) as load:
        run = pair.play("deploy", deploy_deregister_foreign="true", **V2)  # a string, as -e key=value gives it
        time.sleep(2)
    assert run.ok, run.failure()
    assert pair.live() == {"green": 1}
    health = run.result("Wait for the instances and their health checks")["health"]
    assert health["deregistered"] == [f"{pair.foreign}:8080"] and health["capacity"] == 2
    assert pair.foreign not in pair.targets("green") or pair.targets("green")[pair.foreign] == "draining"
    summary = summarize(load.samples)
    assert summary["failed"] == 0 and "foreign" not in summary["by_version"] and summary["by_version"].get("v2", 0) > 0, summary
    # each instance reports the launch-template version it was launched with, in both Auto Scaling calls
    for color, version in (("green", "2"), ("blue", "1")):
        group = pair.group(color)
        assert group["LaunchTemplate"]["Version"] == version
        assert {i["LaunchTemplate"]["Version"] for i in group["Instances"]} == {version}
        ids = [i["InstanceId"] for i in group["Instances"]]
        described = pair.aws.autoscaling.describe_auto_scaling_instances(InstanceIds=ids)["AutoScalingInstances"]
        assert {i["LaunchTemplate"]["Version"] for i in described} == {version}


def test_a_rollback_to_a_standby_with_a_foreign_target_is_refused_then_deregisters_it(pair):
    pair.register_foreign("blue")
    run = pair.play("rollback")
    assert not run.ok
    assert f"not instances of Auto Scaling group shop-blue: {pair.foreign}:8080" in run.failure()
    assert pair.live() == {"green": 1} and pair.lock() is None
    assert pair.group("blue")["DesiredCapacity"] == 2
    with LoadLoop(pair.production, rate=RATE, threads=4, max_seconds=120) as load:
        run = pair.play("rollback", rollback_deregister_foreign="true")
        time.sleep(3)
    assert run.ok, run.failure()
    assert pair.live() == {"blue": 1}
    result = run.result("Roll back to the previous colour")
    assert result["restored"]["deregistered"] == [f"{pair.foreign}:8080"]
    summary = summarize(load.samples)
    assert summary["failed"] == 0 and "foreign" not in summary["by_version"] and summary["by_version"].get("v1", 0) > 0, summary


def test_a_rollback_during_a_drain_registers_the_draining_instances_again(pair):
    """Green is the warm standby; its targets were just deregistered (still draining) when the rollback starts."""
    green_tg = pair.outputs["target_group_arns"]["green"]
    pair.aws.elbv2.modify_target_group_attributes(
        TargetGroupArn=green_tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(DRAIN_DELAY)}]
    )
    instances = sorted(i["InstanceId"] for i in pair.group("green")["Instances"])
    drained = run_module("cutover.bluegreen.drain", {"service": "shop", "color": "green", "wait": False}, pair.endpoint)
    assert not drained.get("failed") and sorted(drained["drained"]) == instances, drained
    assert set(pair.targets("green").values()) == {"draining"}
    timeout = 240
    began = time.monotonic()
    with LoadLoop(pair.production, rate=RATE, threads=4, max_seconds=timeout + 30) as load:
        run = pair.play("rollback", rollback_health_timeout=timeout)
        took = time.monotonic() - began
        time.sleep(2)
    assert run.ok, run.failure()
    assert pair.live() == {"green": 1}
    result = run.result("Roll back to the previous colour")
    assert sorted(result["restored"]["registered"]) == instances
    assert pair.targets("green") == dict.fromkeys(instances, "healthy")
    assert took < timeout / 2, took  # a generous bound: it never waited for the leaving targets
    summary = summarize(load.samples)
    assert summary["failed"] == 0 and summary["by_version"].get("v2", 0) > 0, summary
    pair.aws.elbv2.modify_target_group_attributes(
        TargetGroupArn=green_tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}]
    )


def test_a_rollback_that_cannot_restore_fails_at_once_with_the_reason(pair):
    """Blue retired by teardown, then switched off (maximum size 0): nothing can be registered; no waiting."""
    teardown = run_module("cutover.bluegreen.teardown", {"service": "shop", "force": True}, pair.endpoint)
    assert not teardown.get("failed") and teardown["by_color"]["blue"]["action"] == "torn_down", teardown
    pair.aws.autoscaling.update_auto_scaling_group(AutoScalingGroupName="shop-blue", MaxSize=0)
    began = time.monotonic()
    run = pair.play("rollback")  # the default health timeout: 600 s
    took = time.monotonic() - began
    assert not run.ok
    assert "cannot restore blue of 'shop': Auto Scaling group shop-blue has a maximum size of 0" in run.failure()
    assert took < 60, took
    group = pair.group("blue")
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 0, 0)
    assert pair.live() == {"green": 1} and pair.lock() is None
    pair.aws.autoscaling.update_auto_scaling_group(AutoScalingGroupName="shop-blue", MaxSize=4)


def test_a_promote_to_a_canary_colour_with_a_foreign_target_is_refused_and_switched_back(pair):
    with LoadLoop(pair.production, rate=RATE, threads=4, max_seconds=240):  # the canary's gates judge requests
        run = pair.play("deploy", phase="canary", deploy_canary_weight=20, deploy_canary_seconds=5, **V3)
        assert run.ok, run.failure()
        assert pair.live() == {"green": 80, "blue": 20}
        pair.register_foreign("blue")
        pair.wait_target("blue", pair.foreign, "healthy")
        run = pair.play("promote", deploy_canary_seconds=5)
    assert not run.ok
    failure = run.failure()
    assert f"{pair.foreign}:8080 healthy is not an instance of Auto Scaling group shop-blue" in failure
    assert "production was switched back to green" in failure
    assert pair.live() == {"green": 1} and pair.lock() is None
    summary = pair.served_after()
    assert summary["failed"] == 0 and summary["by_version"] == {"v2": summary["requests"]}, summary
    pair.aws.elbv2.deregister_targets(TargetGroupArn=pair.outputs["target_group_arns"]["blue"], Targets=[{"Id": pair.foreign}])


def test_a_rollout_replaces_instances_of_another_version_even_when_the_group_points_at_its_version(pair):
    """Blue runs v3 instances; its group is pointed back at version 1 without replacing them (by hand)."""
    template = pair.group("blue")["LaunchTemplate"]
    pair.aws.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName="shop-blue", LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"}
    )
    before = pair.group("blue")
    assert {i["LaunchTemplate"]["Version"] for i in before["Instances"]} == {template["Version"]} != {"1"}
    old = {i["InstanceId"] for i in before["Instances"]}
    # not capacity of version 1: the health wait says so at once, naming them
    waited = run_module("cutover.bluegreen.wait_healthy", {"service": "shop", "color": "blue", "timeout": 300}, pair.endpoint)
    assert waited.get("failed") and "on another launch-template version than 1" in waited["msg"], waited
    assert sorted(waited["stale_targets"]) == sorted(f"{i}:8080" for i in old)
    rolled = run_module(
        "cutover.bluegreen.rollout",
        {"service": "shop", "color": "blue", "image_id": "ami-0b5c0de0000000001", "user_data": "version=v1", "wait_healthy": True},
        pair.endpoint,
    )
    assert not rolled.get("failed"), rolled
    assert rolled["launch_template"]["version"] == 1 and [s["name"] for s in rolled["steps"]] == ["replace", "scale"]
    after = pair.group("blue")
    assert {i["LaunchTemplate"]["Version"] for i in after["Instances"]} == {"1"} and not old & {i["InstanceId"] for i in after["Instances"]}
    served = dataplane(pair.endpoint)["instances"]
    assert {served[i["InstanceId"]]["version"] for i in after["Instances"]} == {"v1"}
