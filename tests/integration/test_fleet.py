"""Fleet releases end to end: several pairs in one sandbox, released by one run of the playbooks users run.

One sandbox for the file with four pairs - svc01, svc02 and svc03 in us-east-1 and svc01 in eu-west-1 - each
under a bounded load through its production listener for the whole file (every deploy proves from the metrics
that the old colour's traffic stopped, which needs requests; no request may fail). Each service's own settings
(its smoke-test URL on loopback, a smoke test that must fail) are host variables of an inventory, as a user keeps
them. The tests run in order, each from the state the one before left. Every extra var is given as
``-e key=value``, so that each arrives as a string. The bake has its own tests; here it is off.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import ansible_runner
import boto3
import pytest
import yaml
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import forward_weights

from sandbox import ACCESS_KEY, SECRET_KEY
from sandbox.fleet import provision_pairs
from sandbox.load import LoadLoop
from tests.conftest import COLLECTIONS, REPO
from tests.unit.test_awx_definitions import load_definitions, templates_by_name

from .ansible_harness import run_playbook_file

US, EU = "us-east-1", "eu-west-1"
SERVICES = ("svc01", "svc02", "svc03")
PAIRS = [(service, US) for service in SERVICES] + [("svc01", EU)]
PROJECT_IGNORE = shutil.ignore_patterns(".git", ".venv", ".tmp", ".sandbox", ".ansible", "__pycache__", ".pytest_cache", ".ruff_cache")


def release(number: int) -> dict[str, str]:
    return {"image_id": f"ami-0f1ee7000000{number:05d}", "user_data": f"version=v{number}", "version": f"v{number}"}


class Fleet:
    def __init__(self, sandbox, pairs, directory: Path):
        self.sandbox, self.pairs, self.directory = sandbox, pairs, directory
        self.records = directory / "records"
        self.records.mkdir()
        self.clients: dict[tuple[str, str], Any] = {}

    def client(self, name: str, region: str):
        if (name, region) not in self.clients:
            session = boto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=region)
            self.clients[(name, region)] = session.client(name, endpoint_url=self.sandbox.endpoint)
        return self.clients[(name, region)]

    def inventory(self, name: str, groups: dict[str, dict[str, dict[str, Any]]]) -> Path:
        """An inventory of services: ``{group: {host: host variables}}``; a host named like a service gets its smoke-test URL."""
        document: dict[str, Any] = {"all": {"children": {}}}
        for group, hosts in groups.items():
            members = {}
            for host, variables in hosts.items():
                service = variables.get("service", host)
                region = variables.get("cutover_aws_region", US)
                members[host] = {"deploy_smoke_test_url": self.pairs[(service, region)].test_url, **variables}
            document["all"]["children"][group] = {"hosts": members}
        path = self.directory / f"{name}.yml"
        path.write_text(yaml.safe_dump(document))
        return path

    def play(self, playbook: str, inventory: Path | None = None, forks: int = 5, **extra: Any):
        if playbook == "deploy":
            extra = {
                "deploy_record_dir": str(self.records),
                "deploy_metric_period": self.sandbox.metric_period,
                "deploy_verify_timeout": 60,
                "deploy_bake_seconds": 0,
                **extra,
            }
        cli = ("-f", str(forks), *(("-i", str(inventory)) if inventory else ()))
        return run_playbook_file(playbook, self.sandbox.endpoint, timeout=900, strings=True, options=cli, **extra)

    def live(self, service: str, region: str = US) -> str:
        outputs = self.pairs[(service, region)].outputs
        listener = self.client("elbv2", region).describe_listeners(ListenerArns=[outputs["production_listener_arn"]])["Listeners"][0]
        colors = {arn: color for color, arn in outputs["target_group_arns"].items()}
        [arn] = forward_weights(listener["DefaultActions"])
        return colors[arn]

    def journal(self, service: str, region: str = US) -> list[dict[str, Any]]:
        table = self.pairs[(service, region)].outputs["table_name"]
        return self.client("dynamodb", region).query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"service#{service}"}, ":prefix": {"S": "deploy#"}},
            ScanIndexForward=False,
        )["Items"]

    def lock(self, service: str, region: str = US) -> dict[str, Any] | None:
        table = self.pairs[(service, region)].outputs["table_name"]
        key = {"pk": {"S": f"service#{service}"}, "sk": {"S": "lock"}}
        return self.client("dynamodb", region).get_item(TableName=table, Key=key).get("Item")

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The deployment record the role wrote for a journal entry, with its end (``finished_at``)."""
        [path] = self.records.glob(f"*-{entry['deployment_id']['S']}.json")
        found = json.loads(path.read_text())
        found["finished_at"] = float(found["started_at"]) + float(found["deployment_seconds"])
        return found

    def state(self) -> dict[tuple[str, str], tuple[str, int]]:
        """Each pair's live colour and number of journal entries."""
        return {key: (self.live(*key), len(self.journal(*key))) for key in self.pairs}


@pytest.fixture(scope="module")
def fleet(sandbox, tmp_path_factory):
    pairs = provision_pairs(sandbox.state_dir, PAIRS)
    loads = [LoadLoop(pair.production_url, rate=8, threads=2, max_seconds=1800).start() for pair in pairs.values()]
    found = Fleet(sandbox, pairs, tmp_path_factory.mktemp("fleet"))
    try:
        yield found
    finally:
        samples = [sample for load in loads for sample in load.stop()]
    failed = [sample for sample in samples if sample.failed]
    assert samples and not failed, f"{len(failed)} of {len(samples)} requests failed: {failed[:5]}"


def failures(run) -> dict[str, str]:
    """What failed, per service host (for assertion messages)."""
    return {host: result.get("msg") for host, result in run.per_host("Fail the service").items() if result.get("failed")} or {
        "plan": run.failure()
    }


def summary(run) -> list[str]:
    [result] = [result for result in run.per_host("Fleet summary").values() if not result.get("skipped")]
    return result["msg"]


def outcome(entry: dict[str, Any]) -> str:
    return entry["outcome"]["S"]


def test_bad_inputs_are_refused_at_once_before_any_service_is_read_or_changed(fleet):
    before = fleet.state()
    run = fleet.play("deploy", services="svc01,Bad_Name,svc01", waves="0,1", max_fail_percentage="150", regions="mars", **release(2))
    assert not run.ok
    message = run.result("plan the services, regions and waves")["msg"]
    assert message.startswith("fleet: 4 bad inputs, nothing was read or changed:")
    [services] = [line for line in message.splitlines() if line.startswith("- services=svc01,Bad_Name,svc01: allowed a service name")]
    assert services.endswith("not allowed: Bad_Name")
    assert "- waves=0,1: allowed wave sizes" in message and "- max_fail_percentage=150: allowed a whole number from 0" in message
    assert "- regions=mars: allowed region names" in message
    # nothing ran for any service
    assert [play["play"]["name"] for play in run.document["plays"]] == ["Plan the release"]
    run = fleet.play("rollback", service_group="nosuch")
    assert not run.ok and "service_group=nosuch: allowed the name of an inventory group whose hosts are services" in run.failure()
    inventory = fleet.inventory("limited", {"web": {service: {} for service in SERVICES}})
    limited = ("-i", str(inventory), "--limit", "localhost,svc01")
    run = run_playbook_file("status", fleet.sandbox.endpoint, options=limited, service_group="web")
    assert not run.ok and "fleet: --limit localhost,svc01: not with a fleet" in run.failure()
    assert fleet.state() == before


def test_a_fleet_of_three_releases_each_service_in_parallel_with_its_own_lock_journal_and_record(fleet):
    inventory = fleet.inventory("three", {"web": {service: {} for service in SERVICES}})
    before = {service: fleet.live(service) for service in SERVICES}
    run = fleet.play("deploy", inventory, services=",".join(SERVICES), **release(2))
    assert run.ok, failures(run)
    entries = {}
    for service in SERVICES:
        assert fleet.live(service) != before[service]
        [entry] = fleet.journal(service)
        assert outcome(entry) == "succeeded" and fleet.lock(service) is None
        entries[service] = entry
    lines = summary(run)
    assert lines == [
        f"{service}: succeeded - {fleet.live(service)} is live with v2 (deployment {entries[service]['deployment_id']['S']})"
        for service in SERVICES
    ] + ["fleet of 3: 3 succeeded"]
    # each service's own record, and the releases ran side by side (up to the forks), not one after the other
    records = {json.loads(path.read_text())["service"] for path in fleet.records.glob("*.json")}
    assert records == set(SERVICES)
    runs = [fleet.record(entry) for entry in entries.values()]
    assert max(float(r["started_at"]) for r in runs) < min(r["finished_at"] for r in runs)
    # the rollout's progress: one line per step, not a line per look at a background job
    assert all(result["finished"] and result["health"]["waited_seconds"] > 0 for result in run.per_host("Wait for the instances").values())


def test_status_and_rollback_of_the_fleet(fleet):
    live = {service: fleet.live(service) for service in SERVICES}
    run = fleet.play("status", services=",".join(SERVICES))
    assert run.ok
    assert summary(run) == [f"{service}: ok - {live[service]} is live, lock free" for service in SERVICES] + ["fleet of 3: 3 ok"]
    run = fleet.play("rollback", services=",".join(SERVICES))
    assert run.ok
    lines = summary(run)
    for service, line in zip(SERVICES, lines, strict=False):
        assert fleet.live(service) != live[service]
        assert line.startswith(f"{service}: succeeded - {fleet.live(service)} is live again; {live[service]} is the standby until ")
        assert line.endswith(" s end to end)")
    assert lines[-1] == "fleet of 3: 3 succeeded"


def test_a_failed_wave_stops_the_waves_after_it(fleet):
    # svc01's new version does not answer what its smoke test expects: it fails before its switch
    inventory = fleet.inventory(
        "failing-first",
        {"web": {"svc01": {"deploy_smoke_test_expect": "never-served", "deploy_smoke_test_retries": 1}, "svc02": {}, "svc03": {}}},
    )
    before = fleet.state()
    run = fleet.play("deploy", inventory, services=",".join(SERVICES), waves="1,100%", max_fail_percentage="0", **release(3))
    assert not run.ok
    assert fleet.state()[("svc01", US)] == (before[("svc01", US)][0], before[("svc01", US)][1] + 1)
    assert outcome(fleet.journal("svc01")[0]) == "failed" and fleet.lock("svc01") is None
    # the second wave never started: no task ran for its services, their pairs are as they were
    assert set(run.per_host("Read the pair of")) == {"svc01"}
    assert {key: value for key, value in fleet.state().items() if key[0] != "svc01"} == {k: v for k, v in before.items() if k[0] != "svc01"}
    lines = summary(run)
    assert lines[0].startswith("svc01 (wave 1): failed - Smoke-test through the test listener")
    stopped = "the fleet stopped: wave 1 failed: 1 of 1 service (max_fail_percentage 0)"
    assert lines[1:] == [
        f"svc02 (wave 2): not started - {stopped}",
        f"svc03 (wave 2): not started - {stopped}",
        f"fleet of 3: 2 not started, 1 failed; stopped: {stopped.removeprefix('the fleet stopped: ')}",
    ]


def test_regions_run_one_after_the_other_and_one_that_did_not_succeed_stops_the_next(fleet):
    # eu-west-1 first: its service is done before the us-east-1 one starts
    inventory = fleet.inventory(
        "regional",
        {
            "regional": {
                "svc01-eu": {"service": "svc01", "cutover_aws_region": EU},
                "svc02-us": {"service": "svc02", "cutover_aws_region": US},
            },
            "failing": {
                "svc02-us2": {
                    "service": "svc02",
                    "cutover_aws_region": US,
                    "deploy_smoke_test_expect": "never-served",
                    "deploy_smoke_test_retries": 1,
                },
                "svc03-us": {"service": "svc03", "cutover_aws_region": US},
                "svc01-eu2": {"service": "svc01", "cutover_aws_region": EU},
            },
        },
    )
    run = fleet.play("deploy", inventory, service_group="regional", regions=f"{EU},{US}", **release(4))
    assert run.ok, failures(run)
    eu, us = fleet.journal("svc01", EU)[0], fleet.journal("svc02", US)[0]
    assert outcome(eu) == outcome(us) == "succeeded"
    assert fleet.record(eu)["finished_at"] < float(fleet.record(us)["started_at"])
    assert summary(run)[:2] == [
        f"svc01 ({EU}): succeeded - {fleet.live('svc01', EU)} is live with v4 (deployment {eu['deployment_id']['S']})",
        f"svc02 ({US}): succeeded - {fleet.live('svc02', US)} is live with v4 (deployment {us['deployment_id']['S']})",
    ]

    # us-east-1 first, one of its two services failing: within max_fail_percentage, but the region did not succeed
    before = fleet.state()
    run = fleet.play("deploy", inventory, service_group="failing", regions=f"{US},{EU}", max_fail_percentage="50", **release(5))
    assert not run.ok
    assert outcome(fleet.journal("svc02", US)[0]) == "failed" and outcome(fleet.journal("svc03", US)[0]) == "succeeded"
    assert fleet.state()[("svc01", EU)] == before[("svc01", EU)]  # eu-west-1 never started
    lines = summary(run)
    assert lines[0].startswith(f"svc02 ({US}): failed - ") and lines[1].startswith(f"svc03 ({US}): succeeded - ")
    assert lines[2] == (
        f"svc01 ({EU}): not started - the fleet stopped: region {US} did not succeed (svc02-us2 failed); "
        "the next region starts only after every service of a region succeeded"
    )


def test_the_awx_fleet_template_releases_each_slice_of_the_service_group(fleet, tmp_path):
    """The controller's job slicing: the template's inventory hosts, sorted by name, dealt to the slices, each slice a
    job of its own started at once, with the template's extra vars and the survey's defaults and answers."""
    found = load_definitions()
    template = templates_by_name(found)["cutover-fleet-deploy"]
    group = template["extra_vars"]["service_group"]
    assert group == found["cutover_awx_fleet_group"] and template["inventory"] == "fleet"
    hosts = sorted(SERVICES)
    count = min(template["job_slice_count"], len(hosts), 2)  # two slices of three services: one slice runs two
    slices = [hosts[index::count] for index in range(count)]
    survey = {question["variable"]: question.get("default") for question in found["surveys"][template["survey"]]["spec"]}
    extravars = {
        **template["extra_vars"],
        "cutover_aws_region": found["cutover_awx_aws_region"],
        **{variable: value for variable, value in survey.items() if value not in (None, "")},
        **release(6),
        "waves": "1,100%",
        "deploy_metric_period": fleet.sandbox.metric_period,
        "deploy_verify_timeout": 60,
        "deploy_bake_seconds": 0,
    }
    project = tmp_path / "project"
    shutil.copytree(REPO, project, ignore=PROJECT_IGNORE, symlinks=True)

    def job(index: int):
        members = {
            host: {"ansible_connection": "local", "deploy_smoke_test_url": fleet.pairs[(host, US)].test_url} for host in slices[index]
        }
        private = tmp_path / f"slice-{index + 1}"
        private.mkdir()
        return ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(project),
            playbook=template["playbook"],
            inventory={"all": {"children": {group: {"hosts": members}}}},
            extravars={**extravars, "awx_job_id": 5100 + index, "awx_job_slice_number": index + 1, "awx_job_slice_count": count},
            forks=template["forks"],
            envvars={
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_ENDPOINT_URL": fleet.sandbox.endpoint,
                "AWS_URL": fleet.sandbox.endpoint,
                "AWS_REGION": US,
                "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
                "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
                "ANSIBLE_NOCOLOR": "1",
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            },
            timeout=template["timeout"],
            quiet=True,
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        jobs = list(pool.map(job, range(count)))
    for index, runner in enumerate(jobs):
        assert runner.status == "successful", runner.stdout.read()[-6000:]
        [lines] = [
            event["event_data"]["res"]["msg"]
            for event in runner.events
            if event["event"] == "runner_on_ok" and event["event_data"].get("task") == "Fleet summary, one line per service"
        ]
        assert [line.split(":")[0].split(" ")[0] for line in lines[:-1]] == slices[index]
        assert lines[-1] == f"fleet of {len(slices[index])}: {len(slices[index])} succeeded"
    for service in SERVICES:
        entry = fleet.journal(service)[0]
        assert outcome(entry) == "succeeded" and entry["owner"]["S"].startswith("awx-job-51")
