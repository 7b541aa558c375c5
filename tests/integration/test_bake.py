"""Catching a bad release after the switch, end to end on the sandbox under load: hooks, the bake, alarms, canary steps.

One sandbox and pair for the whole file, with a bounded load through the production
listener (loopback only) running from the first test to the last; the tests run in
order, each release starting from where the previous one left the pair, the way
releases follow each other. The sandbox publishes the load balancer's metrics in
5-second periods, 3 seconds late (AWS: 60 s, about a minute); the playbooks get
``deploy_metric_period=5``. Every figure asserted comes from real requests.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import forward_weights
from ansible_collections.cutover.bluegreen.plugins.module_utils.traffic import dimension_value

from sandbox.dataplane.control import instance, listener_urls, wait_settled
from sandbox.load import LoadLoop
from tests.conftest import REPO

from .ansible_harness import ANSIBLE_PLAYBOOK, PlaybookRun, ansible_env, json_document, printed_before, run_playbook_file

RATE = 50
HOOKS = REPO / "extensions" / "hooks"
# The record's request counts against the load loop's own: they differ only by requests at a period's edge
# (the loop stamps when it sent, the load balancer counts when it answered) and the smoke test's.
TOLERANCE = 0.03


def epoch(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def pair(provisioned, sandbox, tmp_path_factory):
    outputs, aws = provisioned
    wait_settled(sandbox.endpoint)
    urls = listener_urls(sandbox.state_dir)
    work = tmp_path_factory.mktemp("bake")
    (work / "records").mkdir()
    database = work / "shop.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        db.execute("INSERT INTO orders (total) VALUES (12.5), (3.99)")
    load = LoadLoop(urls[outputs["production_listener_arn"]], rate=RATE, threads=4, max_seconds=1500).start()

    class Pair:
        endpoint = sandbox.endpoint
        test_url = urls[outputs["test_listener_arn"]]
        period = sandbox.metric_period
        migrate = ["python3", str(HOOKS / "migrate.py"), "--db", str(database), "--migrations", str(HOOKS / "migrations" / "shop")]

        def __init__(self):
            self.outputs, self.aws, self.work, self.load, self.database = outputs, aws, work, load, database

        def common(self):
            return {
                "service": "shop",
                "deploy_smoke_test_url": self.test_url,
                "deploy_record_dir": str(self.work / "records"),
                "deploy_metric_period": self.period,
                "deploy_bake_seconds": 10,
                "deploy_verify_timeout": 60,
            }

        def deploy(self, **extra):
            return run_playbook_file("deploy", self.endpoint, **{**self.common(), **extra})

        def live(self):
            listener = aws.elbv2.describe_listeners(ListenerArns=[outputs["production_listener_arn"]])["Listeners"][0]
            colors = {arn: color for color, arn in outputs["target_group_arns"].items()}
            return {colors[arn]: weight for arn, weight in forward_weights(listener["DefaultActions"]).items()}

        def record(self, deployment_id=None):
            records = [json.loads(p.read_text()) for p in (self.work / "records").glob("shop-*.json")]
            if deployment_id:
                return next(r for r in records if r["deployment_id"] == deployment_id)
            return max(records, key=lambda r: r["started_at"])

        def journal_record(self, deployment_id):
            item = aws.dynamodb.get_item(
                TableName="cutover-shop", Key={"pk": {"S": "service#shop"}, "sk": {"S": f"deploy#{deployment_id}"}}, ConsistentRead=True
            )["Item"]
            return item

        def samples(self, since, until=None):
            return [s for s in list(self.load.samples) if s.started >= since and (until is None or s.started < until)]

        def samples_after(self, moment, timeout=15):
            """The load's answered requests sent after `moment`, waiting (bounded) until there are some: a run may end
            a moment after the instant a test asks about."""
            deadline = time.time() + timeout
            while True:
                late = [s for s in list(self.load.samples) if s.started > moment]
                if late or time.time() > deadline:
                    return late
                time.sleep(0.2)

        def instances(self, color):
            group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[outputs["asg_names"][color]])["AutoScalingGroups"][
                0
            ]
            return [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"]

    yield Pair()
    load.stop()


def hook_file(pair, name, body):
    path = pair.work / name
    path.write_text(body)
    return str(path)


def columns(database):
    with sqlite3.connect(database) as db:
        return [row[1] for row in db.execute("PRAGMA table_info(orders)")]


def run_with_strings(pair, *pairs, playbook="deploy", common=True, **json_vars):
    """``ansible-playbook playbooks/<playbook>.yml -e key=value ...``: every value a string, as a shell gives it."""
    arguments = [ANSIBLE_PLAYBOOK, str(REPO / "playbooks" / f"{playbook}.yml")]
    for key, value in {**({k: str(v) for k, v in pair.common().items()} if common else {}), **dict(pairs)}.items():
        arguments += ["-e", f"{key}={value}"]
    if json_vars:
        arguments += ["-e", json.dumps(json_vars)]
    result = subprocess.run(arguments, env=ansible_env(pair.endpoint), cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    return PlaybookRun(result.returncode, json_document(result.stdout), result.stderr, printed_before(result.stdout))


def test_bad_settings_are_refused_before_anything_changes(pair):
    versions = pair.aws.ec2.describe_launch_template_versions(LaunchTemplateId=pair.outputs["launch_template_id"])["LaunchTemplateVersions"]
    release = (("image_id", "ami-0b5c0de0000000002"), ("user_data", "version=v2"))
    steps = "allowed at most 20 steps, each a weight from 1 to 99 above the step before and 1 to 86400 seconds"
    hooks = "allowed a mapping of the hook points before_rollout, before_switch, after_switch, after_bake to a task file that exists"
    for setting, messages in (
        (
            ("deploy_canary_steps", "50:10,20:10"),
            [f"deploy_canary_steps=50:10,20:10: {steps}", "(step 2, 20:10, does not rise above step 1's weight 50)"],
        ),
        (("deploy_canary_steps", "50"), [f"deploy_canary_steps=50: {steps}", "(step 1, 50, has no weight from 1 to 99 and seconds)"]),
        (("deploy_bake_max_5xx_percent", "120"), ["deploy_bake_max_5xx_percent=120.0: allowed 0 to 100 (100 lets every rate pass)"]),
        (("deploy_bake_latency_percentile", "99th"), ["deploy_bake_latency_percentile=99th: allowed a percentile such as p50, p90, p99"]),
        (
            ("deploy_metric_period", "0"),
            ["deploy_metric_period=0: allowed 1 to 3600 (AWS publishes AWS/ApplicationELB in 60-second periods)"],
        ),
        (
            ("deploy_hooks", "before_switch=/nonexistent/hook.yml"),
            [f"deploy_hooks=before_switch=/nonexistent/hook.yml: {hooks}", "(before_switch: /nonexistent/hook.yml is not a file)"],
        ),
        (("deploy_hooks", f"after_everything={HOOKS / 'expand.yml'}"), [hooks, "(after_everything is not a hook point)"]),
        (("deploy_alarms", "no-such-alarm"), ["deploy_alarms: no CloudWatch alarm named no-such-alarm", "nothing was changed"]),
    ):
        run = run_with_strings(pair, *release, setting)
        assert not run.ok and all(message in run.failure() for message in messages), (setting, run.failure())
        if setting[0] != "deploy_alarms":  # the input check, before anything is read: the alarms' need AWS
            assert "deploy: 1 bad input, nothing was read or changed" in run.failure(), run.failure()
    after = pair.aws.ec2.describe_launch_template_versions(LaunchTemplateId=pair.outputs["launch_template_id"])["LaunchTemplateVersions"]
    assert len(after) == len(versions) and pair.live() == {"blue": 1} and pair.instances("green") == []


def test_a_failing_before_switch_hook_leaves_production_untouched(pair):
    hook = hook_file(
        pair,
        "integration.yml",
        "- name: Integration tests against the new colour\n"
        "  ansible.builtin.fail:\n"
        "    msg: 'checkout failed against {{ deploy_release.test_url }} on {{ deploy_release.to_color }}'\n",
    )
    began = time.time()
    run = run_with_strings(
        pair,
        ("image_id", "ami-0b5c0de0000000002"),
        ("user_data", "version=v2"),
        ("version", "v2"),
        ("deploy_hooks", f"before_switch={hook}"),
    )
    assert not run.ok
    failure = run.failure()
    assert "the before_switch hook" in failure and f"checkout failed against {pair.test_url} on green" in failure
    assert "production was not touched" in failure
    assert pair.live() == {"blue": 1}
    samples = pair.samples(began)
    assert samples and all(not s.failed and s.color == "blue" for s in samples), {s.error or s.status for s in samples if s.failed}
    record = pair.record()
    assert record["outcome"] == "failed" and record["switched_at"] is None
    [hook_result] = record["hooks"]
    assert (hook_result["point"], hook_result["status"], hook_result["file"]) == ("before_switch", "failed", hook)
    assert "checkout failed" in hook_result["error"]
    journal = pair.journal_record(record["deployment_id"])
    assert journal["outcome"]["S"] == "failed"
    assert journal["record"]["M"]["hooks"]["L"][0]["M"]["status"]["S"] == "failed"


def test_a_healthy_release_passes_every_gate_and_its_figures_match_the_load(pair):
    recorder = hook_file(
        pair,
        "record_hook.yml",
        f"""- name: Note the hook and the release's facts
  ansible.builtin.lineinfile:
    path: {pair.work / "hooks.jsonl"}
    line: "{{{{ deploy_release | to_json }}}}"
    create: true
    mode: "0644"
- name: Expand the schema before the rollout
  ansible.builtin.include_tasks: {HOOKS / "expand.yml"}
  when: deploy_release.hook == 'before_rollout'
""",
    )
    alarm = "shop-green-target-5xx"
    pair.aws.cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Dimensions=[
            {"Name": "TargetGroup", "Value": dimension_value(pair.outputs["target_group_arns"]["green"])},
            {"Name": "LoadBalancer", "Value": dimension_value(pair.outputs["load_balancer_arn"])},
        ],
        Statistic="Sum",
        Period=pair.period,
        EvaluationPeriods=1,
        Threshold=5,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    hooks = dict.fromkeys(("before_rollout", "before_switch", "after_switch", "after_bake"), recorder)
    run = pair.deploy(
        image_id="ami-0b5c0de0000000003",
        user_data="version=v3",
        version="v3",
        deploy_hooks=hooks,
        deploy_alarms=[alarm],
        deploy_standby_ttl="1",
        migrate_command=pair.migrate,
        # a healthy release on a busy machine: room for noise (the slow canary below shows the gate catching 250 ms)
        deploy_bake_latency_slack_ms=100,
    )
    assert run.ok, run.failure()
    assert pair.live() == {"green": 1}
    # the waits are watched by job_wait, which prints the rollout's and the bake's progress lines as their jobs
    # write them
    assert re.search(r"^\S+: the window of green to be judged: done after [\d.]+ s \(\d+ looks\)$", run.printed, re.M), run.printed
    assert re.search(r"^\S+: green: 2 of 2 target\(s\) healthy \(at least 2 wanted\) after [\d.]+ s$", run.printed, re.M), run.printed
    # the hooks ran in order, each given the release's facts; the expand migration ran before the rollout
    seen = [json.loads(line) for line in (pair.work / "hooks.jsonl").read_text().splitlines()]
    assert [h["hook"] for h in seen] == ["before_rollout", "before_switch", "after_switch", "after_bake"]
    record = pair.record()
    assert {(h["service"], h["from_color"], h["to_color"], h["version"], h["deployment_id"], h["test_url"]) for h in seen} == {
        ("shop", "blue", "green", "v3", record["deployment_id"], pair.test_url)
    }
    assert seen[0]["switched_at"] is None and seen[2]["switched_at"] == record["switched_at"]
    assert seen[3]["bake"]["verdict"] == "passed"
    assert columns(pair.database) == ["id", "total", "total_cents"]  # expanded: v2's column is still there
    assert [(h["point"], h["status"]) for h in record["hooks"]] == [(p, "ok") for p in hooks]

    # every gate passed, each with its figures
    bake = record["analysis"]["bake"]
    assert bake["verdict"] == "passed" and record["outcome"] == "succeeded"
    verdicts = {(g["gate"], g["kind"]): g["verdict"] for g in bake["gates"]}
    assert verdicts == {
        ("requests", "minimum"): "passed",
        ("target_5xx_rate", "absolute"): "passed",
        ("target_5xx_rate", "relative"): "passed",
        ("elb_5xx_rate", "absolute"): "passed",
        ("elb_5xx_rate", "relative"): "passed",
        ("latency_p99", "relative"): "passed",
        ("alarm", "alarm"): "passed",
    }
    assert bake["alarms"][alarm]["state"] in ("OK", "INSUFFICIENT_DATA")
    # the figures are the load's: what the loop saw green and blue serve in the same periods
    window, before = bake["window"], bake["baseline_window"]
    green = [s for s in pair.samples(epoch(window["start"]), epoch(window["end"])) if s.color == "green"]
    blue = [s for s in pair.samples(epoch(before["start"]), epoch(before["end"])) if s.color == "blue"]
    assert abs(bake["new"]["requests"] - len(green)) <= max(3, TOLERANCE * len(green)), (bake["new"], len(green))
    assert abs(bake["baseline"]["requests"] - len(blue)) <= max(3, TOLERANCE * len(blue)), (bake["baseline"], len(blue))
    assert bake["new"]["target_5xx"] == 0 and not [s for s in green if s.failed]
    latencies = sorted(s.latency * 1000 for s in green)
    assert bake["new"]["latency_ms"] <= latencies[-1] + 5  # the load balancer's p99 is within what the loop measured
    stopped = record["analysis"]["traffic_stopped"]
    assert stopped["verdict"] == "passed" and stopped["old_requests"] == 0
    start = epoch(stopped["period_start"])
    assert start >= record["switched_at"]
    served = [s.color for s in pair.samples(start + 0.5, start + pair.period - 0.5)]
    assert served and set(served) == {"green"}  # the loop agrees: that period went to green alone
    assert not [s for s in pair.samples(record["started_at"]) if s.failed]
    summary = run.result("Summary")["msg"]
    assert any(line.startswith("green passed every gate:") for line in summary)


def test_teardown_runs_the_contract_hook_once_the_old_colour_is_retired(pair):
    run = run_playbook_file(
        "teardown",
        pair.endpoint,
        services="shop",
        teardown_hooks={"after_retire": str(HOOKS / "contract.yml")},
        migrate_command=pair.migrate,
    )
    assert run.ok, run.failure()
    assert pair.instances("blue") == []
    assert columns(pair.database) == ["id", "total_cents"]  # contracted: nothing runs v2 any more
    with sqlite3.connect(pair.database) as db:
        assert [row[0] for row in db.execute("SELECT total_cents FROM orders ORDER BY id")] == [1250, 399]


def test_an_alarm_on_the_new_colours_5xx_rolls_back(pair):
    alarm = "shop-blue-target-5xx"
    pair.aws.cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Dimensions=[
            {"Name": "TargetGroup", "Value": dimension_value(pair.outputs["target_group_arns"]["blue"])},
            {"Name": "LoadBalancer", "Value": dimension_value(pair.outputs["load_balancer_arn"])},
        ],
        Statistic="Sum",
        Period=pair.period,
        EvaluationPeriods=2,
        DatapointsToAlarm=1,
        Threshold=4,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    assert pair.aws.cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"] in ("INSUFFICIENT_DATA", "OK")
    # the gates on 5XX rates are off: only the alarm can catch this release
    run = run_with_strings(
        pair,
        ("image_id", "ami-0b5c0de0000000004"),
        ("version", "v4"),
        ("deploy_alarms", alarm),
        ("deploy_bake_max_5xx_percent", "100"),
        ("deploy_bake_max_5xx_increase", "100"),
        ("deploy_bake_seconds", "20"),
        user_data="version=v4\nerror_rate=0.1",  # a line break: JSON
    )
    assert not run.ok
    assert f"alarm {alarm} is ALARM: Threshold Crossed" in run.failure() and "production was switched back to green" in run.failure()
    assert pair.live() == {"green": 1}
    record = pair.record()
    assert record["outcome"] == "rolled_back"
    assert [g["verdict"] for g in record["analysis"]["failed"]["gates"] if g["gate"] == "alarm"] == ["failed"]
    assert {g["verdict"] for g in record["analysis"]["failed"]["gates"] if g["gate"] == "target_5xx_rate"} == {"passed"}
    # the datapoints that crossed the threshold are v4's: periods that ended after the switch (the reason also lists
    # the other datapoints evaluated, e.g. a smoke-test request v4 answered 500 before the switch)
    reason = record["analysis"]["failed"]["alarms"][alarm]["reason"]
    crossing = [
        datetime.strptime(moment, "%d/%m/%y %H:%M:%S").replace(tzinfo=UTC).timestamp()
        for value, moment in re.findall(r"([\d.]+) \((\d\d/\d\d/\d\d [\d:]{8})\)", reason)
        if float(value) >= 4
    ]
    assert crossing and all(moment + pair.period > record["switched_at"] for moment in crossing), reason


def test_a_release_that_answers_5_percent_errors_is_switched_back_by_the_bake(pair):
    began = time.time()
    run = pair.deploy(image_id="ami-0b5c0de0000000005", user_data="version=v5\nerror_rate=0.05", version="v5")
    assert not run.ok
    failure = run.failure()
    assert "deploy rolled_back" in failure and "production was switched back to green" in failure
    assert "target 5XX rate" in failure and "(at most 1.00%)" in failure
    assert pair.live() == {"green": 1}
    record = pair.record()
    assert record["outcome"] == "rolled_back" and record["switched_at"] is not None
    failed = record["analysis"]["failed"]
    gate = next(g for g in failed["gates"] if g["gate"] == "target_5xx_rate" and g["kind"] == "absolute")
    assert gate["verdict"] == "failed" and 2.0 < gate["new"] < 10.0 and gate["limit"] == 1.0
    assert failed["baseline"]["target_5xx_percent"] == 0.0
    assert 0 < record["detect_seconds"] <= record["restore_seconds"] < 60
    assert record["rolled_back_at"] - record["switched_at"] == pytest.approx(record["restore_seconds"], abs=0.1)
    # the load saw the bad requests, and nothing else failed: only v5's 500s, only while v5 was live
    samples = pair.samples(began)
    bad = [s for s in samples if s.failed]
    assert bad and {(s.status, s.version) for s in bad} == {(500, "v5")}
    assert all(record["switched_at"] - 1 <= s.started <= record["rolled_back_at"] + 1 for s in bad)
    late = pair.samples_after(record["rolled_back_at"] + 1)
    assert late and {s.color for s in late} == {"green"}
    detected, restored = record["detect_seconds"], record["restore_seconds"]
    print(f"v5: {len(bad)} bad requests of {len(samples)}; detected after {detected} s, restored after {restored} s")


def test_a_multi_step_canary_stops_at_the_step_whose_gate_fails_when_the_version_turns_slow(pair):
    # the first step passes; when the second begins, v6 turns slow (its instances' delay_ms, as a release's user
    # data sets it): that step fails its latency gate and all traffic goes back to green
    slowed = []

    def slow_down_at_the_second_step():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not slowed:
            if pair.live().get("blue") == 50:
                for instance_id in pair.instances("blue"):
                    instance(pair.endpoint, instance_id, "settings", delay_ms=250)
                slowed.append(time.time())
            time.sleep(0.2)

    watcher = threading.Thread(target=slow_down_at_the_second_step, daemon=True)
    watcher.start()
    run = run_with_strings(
        pair,
        ("image_id", "ami-0b5c0de0000000006"),
        ("user_data", "version=v6"),
        ("version", "v6"),
        ("deploy_canary_steps", "20:10,50:10"),
        ("deploy_canary_min_requests", "30"),
        ("deploy_bake_latency_percentile", "p90"),
    )
    watcher.join(timeout=10)
    assert slowed, "the canary never reached its second step"
    assert not run.ok
    failure = run.failure()
    assert "canary step" in failure and "blue at 50%" in failure and "p90 latency" in failure
    assert "production was switched back to green" in failure
    assert pair.live() == {"green": 1}
    record = pair.record()
    assert record["outcome"] == "rolled_back" and record["switched_at"] is None  # never switched in full
    [first] = record["analysis"]["canary_steps"]
    assert (first["step"], first["weight"], first["verdict"]) == (1, 20, "passed")
    assert first["new"]["requests"] >= 30 and first["baseline"]["requests"] > first["new"]["requests"]
    failed = record["analysis"]["failed"]
    latency = next(g for g in failed["gates"] if g["gate"] == "latency_p90" and g["kind"] == "relative")
    assert latency["verdict"] == "failed" and latency["new"] >= 250 and latency["baseline"] < 100


def test_status_shows_each_gates_figures_and_the_time_to_detect(pair):
    run = run_playbook_file("status", pair.endpoint, service="shop")
    assert run.ok, run.failure()
    shown = [line for result in run.result("Show the gates")["results"] for line in result["msg"]]
    text = "\n".join(shown)
    assert "bake: green passed every gate" in text
    assert "failure detected" in text and "production restored" in text
    assert "target 5XX rate 0.00% of" in text and "-> passed" in text
    assert "(at most 1.00%) -> failed" in text
