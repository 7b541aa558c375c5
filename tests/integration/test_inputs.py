"""The inputs of every playbook: each variable works as a string from ``-e key=value``; bad input is refused first.

Every variable a user may set with ``-e`` (every option of every role's meta/argument_specs.yml and the short
names the playbooks map) is given here as a plain ``-e key=value`` string in a real run of playbooks/*.yml,
and the role's check step must hand it on typed (and, where it is cheap to see, with its effect). Bad input in
any playbook is refused before the first AWS call: the sandbox counts no API call, and a snapshot of the pair
(listener and rule actions, Auto Scaling groups, launch-template versions, lock and journal items, the
active-colour parameter) is the same before and after.

The Kubernetes variables (platform, namespace, image, ...) are given as strings in the runs of
test_k8s_playbooks.py, against the Kubernetes sandbox, which the last test counts too.

One pair for the whole file; the refusals come first, then one release after another. A bounded load through
the production listener runs for the whole file: the canary's gates and the metric proof after a switch judge
the load balancer's metrics, which need requests (it makes no AWS API call, so the refusals still count none).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import jinja2
import jinja2.meta
import pytest
import yaml
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import forward_weights
from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import dimension_value

from sandbox.dataplane.control import call, listener_urls, wait_settled
from sandbox.load import LoadLoop
from tests.conftest import REPO
from tests.unit.test_awx_definitions import flat_tasks, role_entry

from .ansible_harness import run_playbook_file
from .test_k8s_playbooks import RUNS as K8S_RUNS

CHECK = "Check every input before anything is read or changed"
V2 = "ami-0b5c0de0000000002"
ALARM = "shop-green-target-5xx"


# -- what the playbooks accept -----------------------------------------------------------------------------
def spec_options(role: str) -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


ROLES = {"deploy": "deploy", "promote": "deploy", "rollback": "rollback", "teardown": "teardown", "status": "status"}
PLAY_LEVEL = {"cutover_aws_region", "cutover_aws_endpoint_url", "cutover_aws_profile", "ansible_playbook_python", "cutover_service"}


def short_names(playbook: str) -> dict[str, str]:
    """The extra vars a playbook maps onto its role's variables: {short name: role variable}."""
    path = REPO / "playbooks" / f"{playbook}.yml"
    parser = jinja2.Environment()
    names = {}
    for play in yaml.safe_load(path.read_text()):
        entry = role_entry(play, flat_tasks([*play.get("pre_tasks", []), *play.get("tasks", [])], path.parent))
        for variable, template in (entry or {}).items():
            if variable == "role" or not isinstance(template, str):
                continue
            tree = parser.parse(template)
            # an extra var named like a Jinja global (namespace) shadows it: it is not "undeclared", and counts all the same
            shadowing = {node.name for node in tree.find_all(jinja2.nodes.Name)} & set(parser.globals)
            found = jinja2.meta.find_undeclared_variables(tree) | shadowing
            for name in found - PLAY_LEVEL:
                names[name] = variable
            if "cutover_service" in found:  # the fleet plan's host variable: what -e service names
                names["service"] = variable
    return names


def role_variable(playbook: str, name: str) -> str:
    return short_names(playbook).get(name, name)


# -- the pair and its snapshot ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair(provisioned, sandbox, tmp_path_factory):
    outputs, aws = provisioned
    wait_settled(sandbox.endpoint)
    urls = listener_urls(sandbox.state_dir)
    # an alarm that deploy_alarms names (it must exist); it watches green's 5XX, which stay at none
    aws.cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Dimensions=[
            {"Name": "TargetGroup", "Value": dimension_value(outputs["target_group_arns"]["green"])},
            {"Name": "LoadBalancer", "Value": dimension_value(outputs["load_balancer_arn"])},
        ],
        Statistic="Sum",
        Period=sandbox.metric_period,
        EvaluationPeriods=1,
        Threshold=5,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    hooks = tmp_path_factory.mktemp("hooks")
    for point in ("before_rollout", "after_bake", "after_retire"):
        (hooks / f"{point}.yml").write_text(
            f"- name: Note the {point} hook\n"
            f"  ansible.builtin.copy:\n"
            f"    dest: {hooks}/{point}.ran\n"
            '    content: "{{ (deploy_release | default(teardown_release)) | to_json }}"\n'
            '    mode: "0644"\n'
        )
    load = LoadLoop(urls[outputs["production_listener_arn"]], rate=40, threads=4, max_seconds=1800).start()

    class Pair:
        endpoint = sandbox.endpoint
        test_url = urls[outputs["test_listener_arn"]]
        records = tmp_path_factory.mktemp("records")
        hook_dir = hooks
        metric_period = sandbox.metric_period

        def __init__(self):
            self.outputs, self.aws = outputs, aws

        def play(self, name: str, **extra: Any):
            """Run playbooks/<name>.yml with every extra var as a separate ``-e key=value`` string."""
            return run_playbook_file(name, self.endpoint, strings=True, **extra)

        def live(self) -> dict[str, int]:
            listener = aws.elbv2.describe_listeners(ListenerArns=[outputs["production_listener_arn"]])["Listeners"][0]
            colors = {arn: color for color, arn in outputs["target_group_arns"].items()}
            return {colors[arn]: weight for arn, weight in forward_weights(listener["DefaultActions"]).items()}

        def asg(self, color: str) -> dict[str, Any]:
            name = outputs["asg_names"][color]
            group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
            group["TagMap"] = {t["Key"]: t["Value"] for t in group["Tags"]}
            return group

        def journal(self) -> list[dict[str, Any]]:
            return aws.dynamodb.query(
                TableName=outputs["table_name"],
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": "service#shop"}, ":prefix": {"S": "deploy#"}},
                ScanIndexForward=False,
            )["Items"]

        def template_version(self, number: int) -> dict[str, Any]:
            return aws.ec2.describe_launch_template_versions(LaunchTemplateId=outputs["launch_template_id"], Versions=[str(number)])[
                "LaunchTemplateVersions"
            ][0]

        def snapshot(self) -> dict[str, Any]:
            """What a release, a rollback or a teardown may change, in a form that compares."""
            elbv2, autoscaling = aws.elbv2, aws.autoscaling
            listeners = elbv2.describe_listeners(LoadBalancerArn=outputs["load_balancer_arn"])["Listeners"]
            groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=list(outputs["asg_names"].values()))
            templates = aws.ec2.describe_launch_template_versions(LaunchTemplateId=outputs["launch_template_id"])
            return {
                "listeners": {item["ListenerArn"]: item["DefaultActions"] for item in listeners},
                "rules": {
                    rule["RuleArn"]: rule["Actions"]
                    for item in listeners
                    for rule in elbv2.describe_rules(ListenerArn=item["ListenerArn"])["Rules"]
                },
                "groups": {
                    group["AutoScalingGroupName"]: {
                        "sizes": (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]),
                        "launch_template": group.get("LaunchTemplate"),
                        "tags": sorted((tag["Key"], tag["Value"]) for tag in group["Tags"]),
                        "suspended": sorted(process["ProcessName"] for process in group.get("SuspendedProcesses", [])),
                    }
                    for group in groups["AutoScalingGroups"]
                },
                "template_versions": sorted(version["VersionNumber"] for version in templates["LaunchTemplateVersions"]),
                "table": sorted(
                    (json.dumps(item, sort_keys=True) for item in aws.dynamodb.scan(TableName=outputs["table_name"])["Items"]),
                ),
                "parameter": aws.ssm.get_parameter(Name=outputs["active_color_parameter"])["Parameter"]["Value"],
            }

        def refused(self, playbook: str, **extra: Any):
            """Run a playbook that must be refused; assert that it made no AWS call and changed nothing."""
            before = self.snapshot()
            call(self.endpoint, "api-calls", method="DELETE")
            run = self.play(playbook, **extra)
            calls = call(self.endpoint, "api-calls")
            assert not run.ok, f"{playbook} was not refused"
            assert calls["total"] == 0, f"AWS calls before the refusal: {calls['calls']}"
            assert self.snapshot() == before
            return run

    yield Pair()
    load.stop()


def problems(run) -> list[str]:
    """The check step's problems, one per bad input."""
    return run.result(CHECK)["problems"]


def assert_typed(run, playbook: str, given: dict[str, Any]) -> None:
    """The check step handed on every variable given as a string with its spec's type."""
    checked = run.result(CHECK)
    for name, value in given.items():
        variable = role_variable(playbook, name)
        if variable != name and variable in given:
            continue  # the role's own name, given too, outranks the playbook's short name
        expected = TYPED.get(name, value)
        assert checked[variable] == expected and type(checked[variable]) is type(expected), (name, checked[variable])


# Where the typed value is not the value itself (the playbook maps it, or the check reads it).
TYPED = {
    "services": ["shop"],
    "deploy_canary_steps": [{"weight": 10, "seconds": 5}, {"weight": 20, "seconds": 5}],
    "deploy_alarms": [ALARM],
}


# -- refusals: nothing is read or changed -----------------------------------------------------------------------
def test_a_negative_verify_timeout_is_refused_before_the_rollout(pair):
    run = pair.refused("deploy", service="shop", image_id=V2, deploy_verify_timeout=-1)
    assert problems(run) == ["deploy_verify_timeout=-1: allowed 1 to 86400"]
    assert "deploy: 1 bad input, nothing was read or changed" in run.failure()


def test_a_canary_weight_of_150_and_a_negative_capacity_are_refused_together_before_the_lock(pair):
    run = pair.refused("deploy", service="shop", image_id=V2, phase="full", deploy_canary_weight=150, deploy_capacity=-2)
    assert sorted(problems(run)) == ["deploy_canary_weight=150: allowed 0 (no canary) to 99", "deploy_capacity=-2: allowed 1 or more"]
    assert pair.journal() == []


def test_every_bad_deploy_input_is_named_at_once(pair):
    bad = {
        "deploy_phase": "bogus",  # an extra var outranks the playbook's role parameter: the check sees what the tasks see
        "deploy_smoke_test_status": [200, 700],
        "deploy_standby_ttl": "1x",
        "deploy_record_dir": "/nonexistent/records",
        "deploy_image_id": "ami-XYZ",
        "deploy_instance_type": "large",
        "deploy_smoke_test_url": "ftp://example.com",
        "deploy_smoke_test_path": "health",
        "deploy_table_name": "ab",
        "deploy_rollout_timeout": -5,
        "deploy_health_timeout": -1,
        "deploy_smoke_test_retries": -1,
        "deploy_canary_seconds": 0,
        "deploy_canary_max_5xx": -1,
        "deploy_canary_min_requests": -1,
        "deploy_canary_steps": "50:10,20:10",
        "deploy_metric_period": 0,
        "deploy_bake_seconds": -1,
        "deploy_bake_min_requests": 0,
        "deploy_bake_max_5xx_percent": 120,
        "deploy_bake_max_elb_5xx_percent": -1,
        "deploy_bake_max_5xx_increase": 101,
        "deploy_bake_latency_percentile": "99th",
        "deploy_bake_max_latency_ms": -1,
        "deploy_bake_max_latency_ratio": 0.5,
        "deploy_bake_latency_slack_ms": -1,
        "deploy_alarms": "x" * 256,
        "deploy_hooks": "before_switch=/nonexistent/hook.yml",
        "deploy_preparation_capacity": 0,
        "deploy_version_label": "v" * 129,
        "deploy_deployment_id": "latest",
    }
    run = pair.refused("deploy", service="shop", **bad)
    found = problems(run)
    assert sorted(problem.split("=", 1)[0] for problem in found) == sorted(bad)
    assert "deploy_phase=bogus: allowed one of full, canary, promote" in found
    assert "deploy_smoke_test_status=200,700: allowed a non-empty list of HTTP statuses from 100 to 599 (comma-separated with -e)" in found
    assert any(problem.startswith("deploy_standby_ttl=1x: allowed seconds, or a duration such as 90m, 2h, 1d") for problem in found)
    assert any(problem.endswith("(step 2, 20:10, does not rise above step 1's weight 50)") for problem in found)
    assert any(problem.endswith("(before_switch: /nonexistent/hook.yml is not a file)") for problem in found)
    assert "deploy_metric_period=0: allowed 1 to 3600 (AWS publishes AWS/ApplicationELB in 60-second periods)" in found
    assert "deploy_bake_latency_percentile=99th: allowed a percentile such as p50, p90, p99 or p99.9" in found
    assert f"deploy: {len(bad)} bad inputs, nothing was read or changed" in run.failure()


def test_combinations_of_deploy_inputs_are_refused(pair):
    run = pair.refused("deploy", service="shop", image_id=V2, phase="canary", deploy_capacity=2, deploy_preparation_capacity=2)
    assert sorted(problems(run)) == [
        "deploy_canary_weight=0 with deploy_phase=canary: phase canary needs deploy_canary_weight between 1 and 99 "
        "(the percent of production for the new version) or deploy_canary_steps",
        "deploy_preparation_capacity=2 with deploy_capacity=2: "
        "the preparation capacity must be smaller than the capacity (it is reached first)",
    ]
    run = pair.refused("deploy", service="shop")
    assert problems(run) == ["no new version given with deploy_phase=full: set deploy_image_id, deploy_user_data or deploy_instance_type"]


def test_a_value_of_the_wrong_type_is_refused_naming_it(pair):
    run = pair.refused("deploy", service="shop", image_id=V2, deploy_health_timeout="soon")
    assert "deploy_health_timeout" in run.failure() and "int" in run.failure()
    run = pair.refused("teardown", services="shop", force="maybe")
    assert "teardown_force" in run.failure() and "maybe" in run.failure()


def test_a_misspelt_or_internal_role_variable_is_refused_naming_the_one_meant(pair):
    # misspelt: it would be ignored; internal: it would override what the role computes (extra vars win)
    run = pair.refused("deploy", service="shop", image_id=V2, deploy_bake_second="10", deploy_rollout_limit="5")
    assert problems(run) == [
        "deploy_bake_second: not a variable of the deploy role; did you mean deploy_bake_seconds?",
        "deploy_rollout_limit: not a variable of the deploy role; did you mean deploy_rollout_timeout?",
    ]
    run = pair.refused("teardown", services="shop", teardown_forse="true")
    assert problems(run) == ["teardown_forse: not a variable of the teardown role; did you mean teardown_force?"]
    # another role's variables are that role's business: a rollback variable given to a deploy is not refused here
    assert not any("rollback_to" in problem for problem in problems(pair.refused("deploy", service="shop", rollback_to="blue")))


def test_bad_promote_rollback_teardown_and_status_inputs_are_refused(pair):
    run = pair.refused("promote", service="shop", deployment_id="latest", deploy_canary_seconds=0, deploy_verify_timeout=-1)
    assert sorted(problems(run)) == [
        "deploy_canary_seconds=0: allowed 1 to 86400",
        "deploy_deployment_id=latest: allowed a deployment id such as 20260101T120000Z-1a2b3c4d (<UTC start time>-<suffix>)",
        "deploy_verify_timeout=-1: allowed 1 to 86400",
    ]
    run = pair.refused(
        "rollback",
        service="Shop_1",
        rollback_capacity=0,
        rollback_health_timeout=-5,
        rollback_standby_ttl="forever",
        rollback_table_name="x",
        rollback_record_dir="/nonexistent/records",
    )
    assert sorted(problem.split("=", 1)[0] for problem in problems(run)) == [
        "rollback_capacity",
        "rollback_health_timeout",
        "rollback_record_dir",
        "rollback_service",
        "rollback_standby_ttl",
        "rollback_table_name",
    ]
    assert "rollback_service=Shop_1: allowed 1 to 26 characters of a-z, 0-9 and - (not first or last)" in problems(run)
    run = pair.refused("teardown", services="shop,shop", teardown_wait_timeout=-1, teardown_hooks="after_retire=/nonexistent/contract.yml")
    assert sorted(problems(run)) == [
        "teardown_hooks=after_retire=/nonexistent/contract.yml: allowed a mapping of the hook point after_retire to a task file that "
        "exists, absolute or relative to the playbook's directory (point=path,... with -e) "
        "(after_retire: /nonexistent/contract.yml is not a file)",
        "teardown_services=shop,shop: allowed a non-empty list of service names, each named once (comma-separated with -e)",
        "teardown_wait_timeout=-1: allowed 0 or more",
    ]
    run = pair.refused("status", service="shop", status_deployments=500)
    assert problems(run) == ["status_deployments=500: allowed 0 to 100"]


# -- every variable as a string, in real releases -----------------------------------------------------------------
CANARY_RUN = {
    "service": "shop",
    "phase": "canary",
    "image_id": V2,
    "user_data": "version=v2",
    "instance_type": "t3.small",
    "version": "v2",
    "deploy_canary_weight": 5,  # the steps replace it
    "deploy_canary_seconds": 1,
    "deploy_canary_steps": "10:5,20:5",
    "deploy_canary_max_5xx": 0,
    "deploy_canary_min_requests": 5,
    "deploy_bake_latency_slack_ms": 500.0,  # the canary's latency gate, with room for a loaded machine
    "deploy_metric_period": 5,  # the sandbox's
    "deploy_alarms": ALARM,
    "deploy_capacity": 3,
    "deploy_preparation_capacity": 1,
    "deploy_force": False,
    "deploy_owner": "release-train-1",
    "deploy_lease_seconds": 900,
    "deploy_table_name": "cutover-shop",
    "deploy_rollout_timeout": 300,
    "deploy_health_timeout": 300,
    "deploy_smoke_test": True,
    "deploy_smoke_test_path": "/",
    "deploy_smoke_test_status": [200, 204],
    "deploy_smoke_test_expect": "v2",
    "deploy_smoke_test_retries": 5,
    "deploy_deregister_foreign": False,
    "takeover": "a-run-that-holds-nothing",
}


def test_a_canary_release_takes_every_deploy_variable_as_a_string(pair):
    records = pair.records / "canary"
    records.mkdir()
    hook = pair.hook_dir / "before_rollout.yml"
    given = {
        **CANARY_RUN,
        "deploy_smoke_test_url": pair.test_url,
        "deploy_record_dir": str(records),
        "deploy_hooks": f"before_rollout={hook}",
    }
    TYPED["deploy_hooks"] = {"before_rollout": str(hook)}
    run = pair.play("deploy", **given)
    assert run.ok, run.failure()
    assert_typed(run, "deploy", given)
    assert pair.live() == {"blue": 80, "green": 20}  # phase, the last step's weight
    steps = [
        (step["weight"], step["verdict"]) for step in json.loads(next(records.glob("shop-*.json")).read_text())["analysis"]["canary_steps"]
    ]
    assert steps == [(10, "passed"), (20, "passed")]  # canary_steps, each gated (min_requests, alarms)
    gates = run.result("Watch the canary step")["gates"]
    assert {"alarm", "target_5xx_count"} <= {gate["gate"] for gate in gates}  # alarms, max_5xx
    assert json.loads((pair.hook_dir / "before_rollout.ran").read_text())["hook"] == "before_rollout"  # hooks
    green = pair.asg("green")
    assert green["DesiredCapacity"] == 3  # capacity
    rollout = run.result("Wait for the instances and their health checks")
    assert rollout["preparation_capacity"] == 1 and rollout["capacity"] == 3
    version = pair.template_version(int(green["LaunchTemplate"]["Version"]))["LaunchTemplateData"]
    assert (version["ImageId"], version["InstanceType"]) == (V2, "t3.small")  # image_id, instance_type
    smoke = run.result("Smoke-test through the test listener")
    assert smoke["status"] == 200 and smoke["url"] == pair.test_url + "/" and "v2" in smoke["content"]
    entry = pair.journal()[0]
    assert entry["owner"]["S"] == "release-train-1" and entry["record"]["M"]["to_version"]["M"]["label"]["S"] == "v2"
    [record] = records.glob("shop-*.json")
    assert json.loads(record.read_text())["outcome"] == "canary"


PROMOTE_RUN = {
    "service": "shop",
    "deploy_canary_seconds": 2,
    "deploy_canary_min_requests": 5,
    "deploy_metric_period": 5,
    "deploy_verify_traffic": True,
    "deploy_verify_timeout": 120,
    "deploy_bake_seconds": 6,
    "deploy_bake_min_requests": 5,
    "deploy_bake_max_5xx_percent": 2.5,
    "deploy_bake_max_elb_5xx_percent": 2.5,
    "deploy_bake_max_5xx_increase": 2.0,
    "deploy_bake_latency_percentile": "p90",
    "deploy_bake_max_latency_ms": 5000.0,
    "deploy_bake_max_latency_ratio": 3.0,
    "deploy_bake_latency_slack_ms": 50.0,
    "deploy_standby_ttl": "2h",
    "deploy_table_name": "cutover-shop",
    "takeover": "a-run-that-holds-nothing",
}


def test_a_promotion_takes_its_variables_as_strings(pair):
    canary = pair.journal()[0]["deployment_id"]["S"]
    records = pair.records / "promote"
    records.mkdir()
    hook = pair.hook_dir / "after_bake.yml"
    given = {**PROMOTE_RUN, "deployment_id": canary, "deploy_record_dir": str(records), "deploy_hooks": f"after_bake={hook}"}
    TYPED["deploy_hooks"] = {"after_bake": str(hook)}
    run = pair.play("promote", **given)
    assert run.ok, run.failure()
    assert_typed(run, "promote", given)
    assert pair.live() == {"green": 1}
    assert run.result("Verify that the old colour no longer receives requests").get("skipped") is not True  # verify_traffic
    bake = run.result("Watch the bake")
    assert bake["verdict"] == "passed" and bake["window"]  # bake_seconds and the gates' limits
    limits = {(gate["gate"], gate["kind"]): gate["limit"] for gate in bake["gates"]}
    assert limits[("requests", "minimum")] == 5 and limits[("target_5xx_rate", "absolute")] == 2.5
    assert limits[("elb_5xx_rate", "absolute")] == 2.5 and limits[("latency_p90", "absolute")] == 5000
    assert json.loads((pair.hook_dir / "after_bake.ran").read_text())["bake"]["verdict"] == "passed"
    retire_after = datetime.datetime.fromisoformat(pair.asg("blue")["TagMap"]["cutover:retire-after"].replace("Z", "+00:00"))
    hours = (retire_after - datetime.datetime.now(datetime.UTC)).total_seconds() / 3600
    assert 1.9 < hours <= 2.0  # standby_ttl
    [record] = records.glob(f"shop-{canary}.json")  # deployment_id, record_dir
    assert json.loads(record.read_text())["outcome"] == "succeeded"


TEARDOWN_RUN = {
    "services": "shop",
    "force": True,
    "teardown_hooks": "after_retire=AFTER_RETIRE",
    "teardown_wait_timeout": 60,
    "teardown_owner": "cron",
    "teardown_lease_seconds": 600,
    "takeover": "a-run-that-holds-nothing",
}
TEARDOWN_ROLE_RUN = {"services": "shop", "teardown_services": ["shop"], "teardown_force": False, "teardown_takeover": "nobody"}


def test_a_teardown_takes_its_variables_as_strings(pair):
    hook = pair.hook_dir / "after_retire.yml"
    given = {**TEARDOWN_RUN, "teardown_hooks": f"after_retire={hook}"}
    TYPED["teardown_hooks"] = {"after_retire": str(hook)}
    run = pair.play("teardown", **given)
    assert run.ok, run.failure()
    assert_typed(run, "teardown", given)
    assert json.loads((pair.hook_dir / "after_retire.ran").read_text())["retired"] == ["blue"]  # hooks
    blue = pair.asg("blue")
    assert (blue["DesiredCapacity"], blue["TagMap"]["cutover:state"]) == (0, "retired")  # force: before its TTL
    # the role's own names override the playbook's mapping: nothing is due without force
    run = pair.play("teardown", **TEARDOWN_ROLE_RUN)
    assert run.ok, run.failure()
    assert_typed(run, "teardown", {"teardown_services": ["shop"], "teardown_force": False})
    assert run.document["stats"]["localhost"]["changed"] == 0


ROLLBACK_RUN = {
    "service": "shop",
    "to": "previous",
    "rollback_capacity": 1,
    "rollback_health_timeout": 120,
    "rollback_standby_ttl": "90m",
    "rollback_owner": "on-call",
    "rollback_lease_seconds": 600,
    "rollback_table_name": "cutover-shop",
    "rollback_deregister_foreign": False,
    "takeover": "a-run-that-holds-nothing",
}

ROLLBACK_ROLE_RUN = {"service": "shop", "to": "previous", "rollback_service": "shop", "rollback_to": "blue", "rollback_takeover": "nobody"}


def test_a_rollback_takes_its_variables_as_strings(pair):
    records = pair.records / "rollback"
    records.mkdir()
    given = {**ROLLBACK_RUN, "rollback_record_dir": str(records)}
    run = pair.play("rollback", **given)
    assert run.ok, run.failure()
    assert_typed(run, "rollback", given)
    assert pair.live() == {"blue": 1}
    assert pair.asg("blue")["DesiredCapacity"] == 1  # capacity of the restored colour
    retire_after = datetime.datetime.fromisoformat(pair.asg("green")["TagMap"]["cutover:retire-after"].replace("Z", "+00:00"))
    minutes = (retire_after - datetime.datetime.now(datetime.UTC)).total_seconds() / 60
    assert 88 < minutes <= 90  # standby_ttl
    entry = next(item for item in pair.journal() if item["record"]["M"]["kind"]["S"] == "rollback")
    assert entry["owner"]["S"] == "on-call"
    [record] = records.glob("shop-*.json")
    assert json.loads(record.read_text())["kind"] == "rollback"
    # the role's own names override the playbook's mapping: naming the live colour changes nothing
    run = pair.play("rollback", **ROLLBACK_ROLE_RUN)
    assert run.ok and "blue is already live; nothing to roll back" in run.messages()
    assert_typed(run, "rollback", ROLLBACK_ROLE_RUN)
    assert pair.live() == {"blue": 1}


ROLE_NAMES_RUN = {
    "service": "shop",
    "deploy_service": "shop",
    "deploy_phase": "full",
    "deploy_image_id": "ami-0b5c0de0000000001",
    "deploy_user_data": "version=v1",
    "deploy_instance_type": "t3.micro",
    "deploy_version_label": "v1",
    "deploy_deployment_id": "20260101T120000Z-1a2b3c4d",
    "deploy_takeover": "nobody",
}


def test_status_and_the_role_names_of_the_short_variables_take_strings(pair):
    run = pair.play("status", service="shop", status_service="shop", status_deployments=1)
    assert run.ok, run.failure()
    assert_typed(run, "status", {"status_service": "shop", "status_deployments": 1})
    assert len(run.result("Show the recent deployments")["results"]) == 1  # of two in the journal
    # The deploy role's own names of what the playbook maps (image_id, ...), as strings: blue, live again, runs
    # exactly this version (the stack's first), so the pair check refuses the release once the inputs passed theirs.
    run = pair.play("deploy", **ROLE_NAMES_RUN)
    assert not run.ok and "shop already runs this version on its live colour blue (image ami-0b5c0de0000000001" in run.failure()
    assert_typed(run, "deploy", ROLE_NAMES_RUN)


def test_every_variable_a_user_may_set_is_given_as_a_string_above():
    runs = {
        "deploy": [CANARY_RUN, ROLE_NAMES_RUN, {"deploy_smoke_test_url", "deploy_record_dir", "deploy_hooks"}],
        "promote": [PROMOTE_RUN, {"deployment_id", "deploy_record_dir", "deploy_hooks"}],
        "rollback": [ROLLBACK_RUN, ROLLBACK_ROLE_RUN, {"rollback_record_dir"}],
        "teardown": [TEARDOWN_RUN, TEARDOWN_ROLE_RUN],
        "status": [{"service", "status_service", "status_deployments"}],
    }
    given = {playbook: set().union(*(set(run) for run in items)) for playbook, items in runs.items()}
    for playbook, items in K8S_RUNS.items():  # -e platform=kubernetes, in test_k8s_playbooks.py
        given[playbook] |= set().union(*(set(run) for run in items))
    for playbook in ROLES:
        assert set(short_names(playbook)) <= given[playbook], (playbook, set(short_names(playbook)) - given[playbook])
    for role in set(ROLES.values()):
        covered = set().union(*(given[playbook] for playbook in ROLES if ROLES[playbook] == role))
        assert set(spec_options(role)) <= covered, (role, set(spec_options(role)) - covered)
