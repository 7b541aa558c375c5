"""cutover.bluegreen.rollback: one call, lock to unlock, with the same refusals as the single steps."""

from __future__ import annotations

from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import forward_weights

from .ansible_harness import run_module

ROLLBACK = "cutover.bluegreen.rollback"


def live(outputs, aws):
    listener = aws.elbv2.describe_listeners(ListenerArns=[outputs["production_listener_arn"]])["Listeners"][0]
    colors = {arn: color for color, arn in outputs["target_group_arns"].items()}
    return [colors[arn] for arn in forward_weights(listener["DefaultActions"])]


def tags(aws, name):
    group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return {t["Key"]: t["Value"] for t in group["Tags"]}, group["DesiredCapacity"]


def lock_item(aws):
    return aws.dynamodb.get_item(TableName="cutover-shop", Key={"pk": {"S": "service#shop"}, "sk": {"S": "lock"}}).get("Item")


def test_rollback_module(provisioned, sandbox):
    outputs, aws = provisioned
    endpoint = sandbox.endpoint
    args = {"service": "shop", "owner": "tester", "token": "tester-0000000001"}

    # green never served production: nothing to roll back to, nothing changed
    result = run_module(ROLLBACK, args, endpoint)
    assert result.get("failed") and "nothing to roll back to for shop: green is not a standby or retired colour" in result["msg"]
    assert live(outputs, aws) == ["blue"] and lock_item(aws) is None

    # make green a warm standby that served before: scale it up, then mark it standby
    aws.autoscaling.update_auto_scaling_group(AutoScalingGroupName="shop-green", MinSize=2, DesiredCapacity=2)
    standby = run_module("cutover.bluegreen.standby", {"service": "shop", "color": "green", "ttl": "1h"}, endpoint)
    assert standby["changed"], standby

    # bad input fails before anything changes
    for bad, message in (
        ({"standby_ttl": "soon"}, "soon"),
        ({"wait_timeout": -1}, "wait_timeout must be zero or more seconds"),
        ({"to": "red"}, "value of to must be one of"),
        ({"capacity": 0}, "capacity must be at least 1"),
    ):
        result = run_module(ROLLBACK, {**args, **bad}, endpoint)
        assert result.get("failed") and message in result["msg"], (bad, result.get("msg"))
    assert live(outputs, aws) == ["blue"]

    # check mode: reports, changes nothing, takes no lock
    result = run_module(ROLLBACK, args, endpoint, check=True)
    assert not result.get("failed"), result
    assert result["changed"] and (result["from_color"], result["to_color"]) == ("blue", "green")
    assert live(outputs, aws) == ["blue"] and lock_item(aws) is None
    assert tags(aws, "shop-blue")[0].get("cutover:state") is None

    # a lock held by another run refuses the rollback and changes nothing
    deploy_42 = {"service": "shop", "owner": "deploy-42", "token": "deploy-42-00000001"}
    held = run_module("cutover.bluegreen.lock", {**deploy_42, "state": "acquired"}, endpoint)
    assert held["changed"]
    result = run_module(ROLLBACK, args, endpoint)
    assert result.get("failed") and "deploy-42" in result["msg"]
    assert live(outputs, aws) == ["blue"]
    run_module("cutover.bluegreen.lock", {**deploy_42, "state": "released"}, endpoint)

    # the real run: green live, blue the standby, journal entry, lock released
    result = run_module(ROLLBACK, args, endpoint)
    assert not result.get("failed"), result
    assert result["changed"] and result["to_color"] == "green" and result["switch"]["verified"]
    assert live(outputs, aws) == ["green"]
    blue_tags, _ = tags(aws, "shop-blue")
    assert blue_tags["cutover:state"] == "standby" and result["standby"]["retire_after"] == blue_tags["cutover:retire-after"]
    assert lock_item(aws) is None
    assert "cutover:state" not in tags(aws, "shop-green")[0]  # live now: no longer a standby
    assert aws.ssm.get_parameter(Name="/cutover/shop/active-color")["Parameter"]["Value"] == "green"
    info = run_module("cutover.bluegreen.pair_info", {"service": "shop"}, endpoint)
    assert info["deployments"][0]["outcome"] == "succeeded" and info["deployments"][0]["deployment_id"] == result["deployment_id"]

    # naming the live colour changes nothing
    result = run_module(ROLLBACK, {**args, "to": "green"}, endpoint)
    assert not result.get("failed") and result["changed"] is False and "green is already live" in result["message"]

    # a retired colour is scaled back up and healthy before the switch
    teardown = run_module("cutover.bluegreen.teardown", {"service": "shop", "force": True}, endpoint)
    assert not teardown.get("failed"), teardown
    retired_tags, retired_size = tags(aws, "shop-blue")
    assert (retired_tags["cutover:state"], retired_size) == ("retired", 0)
    result = run_module(ROLLBACK, args, endpoint)
    assert not result.get("failed"), result
    assert result["restored"]["capacity"] == 2 and result["restored"]["health"]["healthy"] == 2
    assert live(outputs, aws) == ["blue"] and tags(aws, "shop-blue")[1] == 2
    assert "cutover:state" not in tags(aws, "shop-blue")[0]
