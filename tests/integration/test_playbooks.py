"""The playbooks users run, end to end on the sandbox: deploy, rollback, teardown, status.

One pair for the whole file; the tests run in order and each starts from the
state the previous one left, the way releases follow each other. A bounded load
through the production listener runs for the whole file: a deploy proves from the
load balancer's metrics that the old colour's traffic stopped, which needs requests.
The bake has its own tests (test_bake.py); here it is off.
"""

from __future__ import annotations

import datetime
import json
import time

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import forward_weights

from sandbox.dataplane.control import instance, listener_urls, wait_settled
from sandbox.load import LoadLoop

from .ansible_harness import run_module, run_playbook_file

V2 = {"image_id": "ami-0b5c0de0000000002", "user_data": "version=v2", "version": "v2"}
V3 = {"image_id": "ami-0b5c0de0000000003", "user_data": "version=v3", "version": "v3"}
V4 = {"image_id": "ami-0b5c0de0000000004", "user_data": "version=v4", "version": "v4"}
V5 = {"image_id": "ami-0b5c0de0000000005", "user_data": "version=v5", "version": "v5"}
V6 = {"image_id": "ami-0b5c0de0000000006", "user_data": "version=v6", "version": "v6"}
CANARY = {"phase": "canary", "deploy_canary_weight": 20, "deploy_canary_seconds": 5, "deploy_canary_min_requests": 20}


@pytest.fixture(scope="module")
def pair(provisioned, sandbox, tmp_path_factory):
    outputs, aws = provisioned
    wait_settled(sandbox.endpoint)
    urls = listener_urls(sandbox.state_dir)
    records = tmp_path_factory.mktemp("records")
    load = LoadLoop(urls[outputs["production_listener_arn"]], rate=40, threads=4, max_seconds=1800).start()

    class Pair:
        endpoint = sandbox.endpoint
        test_url = urls[outputs["test_listener_arn"]]
        production_url = urls[outputs["production_listener_arn"]]

        def __init__(self):
            self.outputs, self.aws, self.records = outputs, aws, records

        def play(self, name, **extra):
            if name in ("deploy", "promote"):
                extra = {
                    "deploy_smoke_test_url": self.test_url,
                    "deploy_record_dir": str(self.records),
                    "deploy_metric_period": sandbox.metric_period,
                    "deploy_verify_timeout": 60,
                    "deploy_bake_seconds": 0,
                    # the canary tests here are not about latency; the machine's load is not the release's
                    "deploy_bake_latency_slack_ms": 500,
                    **extra,
                }
            return run_playbook_file(name, self.endpoint, **{"service": "shop", **extra})

        def live(self):
            listener = aws.elbv2.describe_listeners(ListenerArns=[outputs["production_listener_arn"]])["Listeners"][0]
            weights = forward_weights(listener["DefaultActions"])
            colors = {arn: color for color, arn in outputs["target_group_arns"].items()}
            return {colors[arn]: weight for arn, weight in weights.items()}

        def rule_target(self):
            rule = aws.elbv2.describe_rules(RuleArns=outputs["rule_arns"])["Rules"][0]
            colors = {arn: color for color, arn in outputs["target_group_arns"].items()}
            return [colors[arn] for arn in forward_weights(rule["Actions"])]

        def asg(self, color):
            group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[outputs["asg_names"][color]])["AutoScalingGroups"][
                0
            ]
            group["TagMap"] = {t["Key"]: t["Value"] for t in group["Tags"]}
            return group

        def lock(self):
            return aws.dynamodb.get_item(TableName="cutover-shop", Key={"pk": {"S": "service#shop"}, "sk": {"S": "lock"}}).get("Item")

        def journal(self):
            items = aws.dynamodb.query(
                TableName="cutover-shop",
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": "service#shop"}, ":prefix": {"S": "deploy#"}},
                ScanIndexForward=False,
            )["Items"]
            return items

        def instances(self, color):
            group = self.asg(color)
            return [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]

        def template_versions(self):
            return len(aws.ec2.describe_launch_template_versions(LaunchTemplateId=outputs["launch_template_id"])["LaunchTemplateVersions"])

    yield Pair()
    load.stop()


def outcome(item):
    return item["outcome"]["S"]


def test_bad_extra_vars_are_refused_before_anything_changes(pair):
    versions = pair.template_versions()
    run = pair.play("deploy", **{"service": ""})
    assert not run.ok and "usage: ansible-playbook playbooks/deploy.yml -e service=<name>" in run.failure()
    run = run_playbook_file("deploy", pair.endpoint, service="shop")
    assert not run.ok and "no new version given with deploy_phase=full: set deploy_image_id, deploy_user_data or" in run.failure()
    run = pair.play("deploy", image_id="ami-0b5c0de0000000002", deploy_canary_weight="lots")
    assert not run.ok and "deploy_canary_weight" in run.failure()
    run = pair.play("deploy", service="nosuch", image_id="ami-0b5c0de0000000002")
    assert not run.ok and "no target groups tagged cutover:service=nosuch" in run.failure()
    assert pair.live() == {"blue": 1} and pair.template_versions() == versions
    assert pair.lock() is None and pair.journal() == []


def test_deploy_switches_everything_to_green_and_keeps_blue_warm(pair):
    run = pair.play("deploy", **V2)
    assert run.ok, run.failure()
    assert pair.live() == {"green": 1}
    assert pair.rule_target() == ["green"]
    blue, green = pair.asg("blue"), pair.asg("green")
    assert blue["DesiredCapacity"] == 2 and blue["TagMap"]["cutover:state"] == "standby"
    assert "cutover:retire-after" in blue["TagMap"]
    assert green["DesiredCapacity"] == 2 and "cutover:state" not in green["TagMap"]
    assert pair.lock() is None
    [entry] = pair.journal()
    assert outcome(entry) == "succeeded"
    [record_file] = list(pair.records.glob("shop-*.json"))
    record = json.loads(record_file.read_text())
    assert record["outcome"] == "succeeded" and (record["from_color"], record["to_color"]) == ("blue", "green")
    assert record["deployment_seconds"] > 0 and record["cutover_seconds"] is not None
    assert record["detect_seconds"] is None and record["rollback_seconds"] is None
    summary = run.result("Summary")["msg"]
    assert summary[0] == "shop: succeeded — green is live with v2"
    assert "cutover" in summary[1] and "deployment" in summary[1]
    # the new version really serves production
    import urllib.request

    with urllib.request.urlopen(pair.production_url, timeout=5) as response:
        assert "v2" in response.read().decode()


def test_deploying_the_live_version_again_changes_nothing(pair):
    versions, journal = pair.template_versions(), len(pair.journal())
    run = pair.play("deploy", **V2)
    assert not run.ok
    assert "shop already runs this version on its live colour green" in run.failure()
    assert "nothing was changed" in run.failure()
    assert pair.live() == {"green": 1} and pair.template_versions() == versions
    assert len(pair.journal()) == journal and pair.lock() is None


def test_a_locked_service_is_refused_naming_the_holder(pair):
    expires = int(datetime.datetime.now(datetime.UTC).timestamp()) + 600
    pair.aws.dynamodb.put_item(
        TableName="cutover-shop",
        Item={
            "pk": {"S": "service#shop"},
            "sk": {"S": "lock"},
            "owner": {"S": "release-train-7"},
            "expires_at": {"N": str(expires)},
            "acquired_at": {"N": str(expires - 600)},
            "lease_seconds": {"N": "600"},
        },
    )
    try:
        versions = pair.template_versions()
        run = pair.play("deploy", **V3)
        assert not run.ok
        assert "release-train-7" in run.failure()
        assert datetime.datetime.fromtimestamp(expires, datetime.UTC).strftime("%Y-%m-%dT%H:%M") in run.failure()
        assert pair.template_versions() == versions and pair.live() == {"green": 1}
        assert pair.lock()["owner"]["S"] == "release-train-7"
    finally:
        pair.aws.dynamodb.delete_item(TableName="cutover-shop", Key={"pk": {"S": "service#shop"}, "sk": {"S": "lock"}})


def task_started(run, name_part):
    """When the first task whose name contains ``name_part`` started (the json callback's time), in epoch seconds."""
    task = next(t["task"] for play in run.document["plays"] for t in play["tasks"] if name_part in t["task"]["name"])
    return datetime.datetime.fromisoformat(task["duration"]["start"].replace("Z", "+00:00")).timestamp()


def test_rollback_returns_to_blue_at_once(pair):
    launched = time.time()
    run = pair.play("rollback", rollback_record_dir=str(pair.records))
    assert run.ok, run.failure()
    assert pair.live() == {"blue": 1} and pair.rule_target() == ["blue"]
    assert pair.asg("green")["TagMap"]["cutover:state"] == "standby"
    assert pair.lock() is None
    assert run.result("Summary")["msg"][0].startswith("shop: blue is live again; green is the standby until ")
    # "end to end" is from the command's start (the ansible-playbook process's, before its first task) to the switch,
    # the module's own time only a part of it
    [record] = [r for r in (json.loads(p.read_text()) for p in pair.records.glob("shop-*.json")) if r.get("kind") == "rollback"]
    assert launched - 0.05 <= record["command_started_at"] < task_started(run, "Check the extra vars") - 0.2
    assert record["end_to_end_seconds"] == pytest.approx(record["switched_at"] - record["command_started_at"], abs=0.002)
    assert record["end_to_end_seconds"] > record["switched_at"] - task_started(run, "Roll back to the previous colour")
    assert f"rollback {record['end_to_end_seconds']} s end to end" in run.result("Summary")["msg"][1]
    [entry] = [item for item in pair.journal() if item["record"]["M"]["kind"]["S"] == "rollback"]
    assert outcome(entry) == "succeeded"
    # naming the live colour changes nothing
    run = pair.play("rollback", to="blue")
    assert run.ok and "blue is already live; nothing to roll back" in run.messages()
    assert pair.live() == {"blue": 1}


def test_a_failure_before_the_switch_leaves_production_untouched(pair):
    # green is the standby now; the release goes there and fails its smoke test
    run = pair.play("deploy", **V3, deploy_smoke_test_expect="this text is never served", deploy_smoke_test_retries=2)
    assert not run.ok
    assert "deploy failed: Smoke-test" in run.failure() and "production was not touched" in run.failure()
    assert pair.live() == {"blue": 1} and pair.rule_target() == ["blue"]
    assert pair.lock() is None
    assert outcome(pair.journal()[0]) == "failed"


def test_nothing_to_roll_back_to_is_said_clearly(pair):
    # green now holds the failed, never released v3: it is no standby
    run = pair.play("rollback")
    assert not run.ok
    assert "nothing to roll back to for shop: green is not a standby or retired colour" in run.failure()
    assert "Nothing was changed" in run.failure()
    assert pair.live() == {"blue": 1} and pair.lock() is None


def test_a_failure_after_the_switch_switches_back(pair, tmp_path):
    # a check after the switch (an after_switch hook) fails: the deploy switches back at once
    hook = tmp_path / "after_switch.yml"
    hook.write_text("- name: Check the orders after the switch\n  ansible.builtin.fail:\n    msg: no order went through\n")
    run = pair.play("deploy", **V3, deploy_hooks={"after_switch": str(hook)})
    assert not run.ok
    assert "deploy rolled_back" in run.failure() and "production was switched back to blue" in run.failure()
    assert "the after_switch hook" in run.failure() and "no order went through" in run.failure()
    assert pair.live() == {"blue": 1} and pair.rule_target() == ["blue"]
    assert pair.lock() is None
    assert outcome(pair.journal()[0]) == "rolled_back"
    record = json.loads(max(pair.records.glob("shop-*.json"), key=lambda p: p.stat().st_mtime).read_text())
    assert record["outcome"] == "rolled_back"
    assert record["detect_seconds"] is not None and record["rollback_seconds"] is not None
    assert record["restore_seconds"] >= record["detect_seconds"]
    assert record["analysis"]["traffic_stopped"]["verdict"] == "passed"  # the switch itself had worked


def test_teardown_retires_the_expired_standby_and_rollback_restores_it(pair):
    run = pair.play("deploy", **V3, deploy_standby_ttl="1")
    assert run.ok, run.failure()
    assert pair.live() == {"green": 1}
    run = run_playbook_file("teardown", pair.endpoint, services="shop")
    assert run.ok, run.failure()
    blue = pair.asg("blue")
    assert (blue["DesiredCapacity"], blue["TagMap"]["cutover:state"]) == (0, "retired")
    assert pair.asg("green")["DesiredCapacity"] == 2 and pair.live() == {"green": 1}
    # a second teardown changes nothing
    run = run_playbook_file("teardown", pair.endpoint, services="shop")
    assert run.ok and run.document["stats"]["localhost"]["changed"] == 0
    # check mode of a rollback to the retired colour: a real run would scale it up and wait, so the
    # switch's health guard does not refuse it; nothing changes
    checked = run_module(
        "cutover.bluegreen.rollback", {"service": "shop", "owner": "check-run", "token": "check-run-00000001"}, pair.endpoint, check=True
    )
    assert not checked.get("failed"), checked.get("msg")
    assert checked["changed"] and checked["to_color"] == "blue" and checked["restored"]["ready"] is False
    assert pair.asg("blue")["DesiredCapacity"] == 0 and pair.live() == {"green": 1} and pair.lock() is None
    # rollback to the retired colour scales it back up, waits for health, then switches
    run = pair.play("rollback")
    assert run.ok, run.failure()
    assert pair.live() == {"blue": 1} and pair.asg("blue")["DesiredCapacity"] == 2


def test_status_shows_the_pair(pair):
    run = pair.play("status")
    assert run.ok, run.failure()
    assert run.result("Show the live colour")["msg"].startswith("shop: blue is live")
    shown = [r["msg"] for r in run.result("Show each colour")["results"]]
    assert shown[0].startswith("blue (live): 2/2 in service")
    assert shown[1].startswith("green:") and "standby until" in shown[1]


def newest_record(pair):
    return json.loads(max(pair.records.glob("shop-*.json"), key=lambda p: p.stat().st_mtime).read_text())


def test_the_canary_phase_needs_a_share_of_traffic(pair):
    versions, journal = pair.template_versions(), len(pair.journal())
    run = pair.play("deploy", **V4, phase="canary")
    assert not run.ok
    assert "phase canary needs deploy_canary_weight between 1 and 99" in run.failure()
    assert pair.template_versions() == versions and len(pair.journal()) == journal
    assert pair.live() == {"blue": 1} and pair.lock() is None


def test_promote_with_no_canary_waiting_is_refused(pair):
    run = pair.play("promote")
    assert not run.ok
    assert "nothing to promote for shop: no canary is waiting in the journal" in run.failure()
    assert pair.live() == {"blue": 1} and pair.lock() is None


def test_a_canary_run_stops_split_and_the_promote_run_finishes_the_release(pair):
    run = pair.play("deploy", **V4, **CANARY)
    assert run.ok, run.failure()
    assert pair.live() == {"blue": 80, "green": 20}
    assert pair.lock() is None  # released while the approval waits: a rollback can always take it
    entry = pair.journal()[0]
    deployment_id = entry["deployment_id"]["S"]
    assert outcome(entry) == "in_progress" and entry["steps"]["M"]["canary"]["M"]["status"]["S"] == "finished"
    assert entry["record"]["M"]["phase"]["S"] == "canary"
    record = newest_record(pair)
    assert (record["outcome"], record["phase"], record["deployment_id"]) == ("canary", "canary", deployment_id)
    assert record["cutover_seconds"] is None
    assert run.result("Summary")["msg"][0].startswith("shop: canary — green takes 20% of production with v4")
    assert "cutover:state" not in pair.asg("blue")["TagMap"]  # blue is still live

    # while the canary waits, another release is refused before anything changes
    versions, journal = pair.template_versions(), len(pair.journal())
    run = pair.play("deploy", **V5)
    assert not run.ok
    assert "production traffic of shop is split" in run.failure() and "nothing was changed" in run.failure()
    assert pair.template_versions() == versions and len(pair.journal()) == journal
    assert pair.live() == {"blue": 80, "green": 20}

    run = pair.play("promote")
    assert run.ok, run.failure()
    assert pair.live() == {"green": 1} and pair.rule_target() == ["green"]
    assert run.result("Watch the canary step")["verdict"] == "passed"
    blue = pair.asg("blue")
    assert blue["TagMap"]["cutover:state"] == "standby" and blue["DesiredCapacity"] == 2
    entry = pair.journal()[0]
    assert entry["deployment_id"]["S"] == deployment_id and outcome(entry) == "succeeded"
    assert entry["record"]["M"]["phase"]["S"] == "promote"
    record = newest_record(pair)
    assert (record["outcome"], record["phase"], record["deployment_id"]) == ("succeeded", "promote", deployment_id)
    assert record["cutover_seconds"] is not None
    assert run.result("Summary")["msg"][0] == "shop: succeeded — green is live with v4"
    assert pair.lock() is None

    # the canary is promoted: a second promote has nothing to do
    run = pair.play("promote")
    assert not run.ok and "nothing to promote for shop" in run.failure()
    assert pair.live() == {"green": 1}


def test_a_rollback_ends_a_waiting_canary(pair):
    run = pair.play("deploy", **V5, **CANARY)
    assert run.ok, run.failure()
    assert pair.live() == {"green": 80, "blue": 20}
    canary_id = pair.journal()[0]["deployment_id"]["S"]
    # rolling "back" to the canary's colour would promote it without its gate
    run = pair.play("rollback", to="blue")
    assert not run.ok
    assert "blue is the canary" in run.failure() and "Nothing was changed" in run.failure()
    assert pair.live() == {"green": 80, "blue": 20}
    run = pair.play("rollback")
    assert run.ok, run.failure()
    assert pair.live() == {"green": 1} and pair.rule_target() == ["green"]
    assert pair.asg("blue")["TagMap"]["cutover:state"] == "standby"
    assert "cutover:state" not in pair.asg("green")["TagMap"]
    entries = {item["deployment_id"]["S"]: item for item in pair.journal()}
    assert outcome(entries[canary_id]) == "rolled_back"
    assert f"the canary {canary_id} on blue was ended" in run.result("Summary")["msg"][0]
    assert pair.lock() is None


def test_a_canary_that_fails_its_gate_at_promotion_is_ended(pair):
    run = pair.play("deploy", **V6, **CANARY)
    assert run.ok, run.failure()
    assert pair.live() == {"green": 80, "blue": 20}
    for instance_id in pair.instances("blue"):  # the canary started failing while it waited
        instance(pair.endpoint, instance_id, "settings", error_rate=0.3)
    run = pair.play("promote", deploy_canary_min_requests=20)
    assert not run.ok
    assert "deploy rolled_back" in run.failure() and "production was switched back to green" in run.failure()
    assert "5XX" in run.failure()
    assert pair.live() == {"green": 1} and pair.rule_target() == ["green"]
    assert "cutover:state" not in pair.asg("green")["TagMap"]
    assert outcome(pair.journal()[0]) == "rolled_back"
    assert pair.lock() is None
