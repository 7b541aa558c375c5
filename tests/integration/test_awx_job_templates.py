"""The AWX job templates, run the way the controller runs them, against the sandbox.

A job is what the controller hands ansible-runner: a private data directory with a
copy of the project (this repository), the template's playbook, an inventory with
localhost, the extra vars composed from the template's extra vars, the survey's
defaults and answers, launch-time variables and the controller's own ``awx_*``
variables, and an environment with the AWS credential. The AWS endpoint points at
the sandbox, and the collection comes from ANSIBLE_COLLECTIONS_PATH (in the
execution environment it is installed under /usr/share/ansible/collections).

One pair for the whole file; the tests run in order, each from the state the
previous one left: status, deploy, rollback, the scheduled and a forced teardown,
then the release workflow, denied and approved.
"""

from __future__ import annotations

import http.server
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ansible_runner
import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import forward_weights
from dateutil.rrule import rrulestr

from sandbox.dataplane.control import listener_urls, wait_settled
from sandbox.load import LoadLoop
from tests.conftest import COLLECTIONS, REPO
from tests.unit.test_awx_definitions import answer_problems, load_definitions, survey_spec_problems, templates_by_name

VENV_BIN = str(Path(sys.executable).parent)
JOB_IDS = itertools.count(4101)
V2 = {"image_id": "ami-0a5c0de0000000002", "user_data": "version=v2", "version": "v2"}
V3 = {"image_id": "ami-0a5c0de0000000003", "user_data": "version=v3", "version": "v3"}
V4 = {"image_id": "ami-0a5c0de0000000004", "user_data": "version=v4", "version": "v4"}
PROJECT_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".tmp", ".sandbox", ".ansible", "__pycache__", ".pytest_cache", ".ruff_cache", "*.tar.gz", "*.pyc"
)


@dataclass
class Job:
    """A finished job: its id, the variables it ran with and ansible-runner's result."""

    id: int
    template: str
    extravars: dict[str, Any]
    runner: Any

    @property
    def status(self) -> str:
        return self.runner.status

    def output(self) -> str:
        return self.runner.stdout.read()

    def results(self, task_prefix: str) -> list[dict[str, Any]]:
        """Results of the tasks whose name starts with the prefix (job events, as the controller stores them)."""
        return [
            event["event_data"]["res"]
            for event in self.runner.events
            if event["event"] == "runner_on_ok" and event["event_data"].get("task", "").startswith(task_prefix)
        ]

    def message(self, task_prefix: str) -> Any:
        [result] = self.results(task_prefix)
        return result["msg"]

    @property
    def artifacts(self) -> dict[str, Any]:
        """What the job handed on with set_stats (the controller passes it to the workflow's later nodes)."""
        [stats] = [event for event in self.runner.events if event["event"] == "playbook_on_stats"]
        return stats["event_data"].get("artifact_data") or {}


class Controller:
    """Launches the job templates and the workflow of extensions/awx with ansible-runner."""

    def __init__(self, outputs, aws, endpoint: str, state_dir, work: Path, metric_period: int = 60):
        self.outputs, self.aws, self.endpoint, self.work, self.metric_period = outputs, aws, endpoint, work, metric_period
        self.found = load_definitions()
        self.templates = templates_by_name(self.found)
        urls = listener_urls(state_dir)
        self.test_url = urls[outputs["test_listener_arn"]]
        self.production_url = urls[outputs["production_listener_arn"]]

    # -- the controller's side -------------------------------------------------------------------
    def questions(self, survey: str) -> dict[str, dict[str, Any]]:
        return {question["variable"]: question for question in self.found["surveys"][survey]["spec"]}

    def answered(self, survey: str, answers: dict[str, Any]) -> dict[str, Any]:
        """Survey defaults, then the answers; refused the way the controller refuses a launch."""
        questions = self.questions(survey)
        for variable, value in answers.items():
            if variable in questions:
                assert answer_problems(questions[variable], value) == [], (variable, value)
        values = {variable: question["default"] for variable, question in questions.items() if question.get("default") not in (None, "")}
        values.update(answers)
        missing = [variable for variable, question in questions.items() if question["required"] and variable not in values]
        assert missing == [], f"the controller refuses the launch: {missing} unanswered"
        return values

    def launch(
        self,
        name: str,
        answers: dict[str, Any],
        extra: dict[str, Any] | None = None,
        workflow_vars: dict[str, Any] | None = None,
        launch_type: str = "manual",
    ) -> Job:
        template = self.templates[name]
        questions = self.questions(template["survey"])
        prompted = dict(extra or {})
        prompted.update({variable: value for variable, value in answers.items() if variable not in questions})
        assert not prompted or template["ask_variables_on_launch"], f"{name} does not take extra vars: {sorted(prompted)}"
        job_id = next(JOB_IDS)
        # precedence: template extra vars < survey defaults < answers and prompts < the workflow's variables
        extravars = {**template.get("extra_vars", {}), "cutover_aws_region": self.found["cutover_awx_aws_region"]}
        extravars.update(self.answered(template["survey"], {**answers, **(workflow_vars or {})}))
        extravars.update(prompted)
        extravars.update(workflow_vars or {})
        extravars.update(
            {
                "awx_job_id": job_id,
                "awx_job_template_name": name,
                "awx_job_launch_type": launch_type,
                "awx_user_name": "release-engineer",
                "tower_job_id": job_id,
                "tower_job_template_name": name,
            }
        )
        private = self.work / f"job_{job_id}"
        shutil.copytree(REPO, private / "project", ignore=PROJECT_IGNORE, symlinks=True)
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(private / "project"),
            playbook=template["playbook"],
            inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}},
            extravars=extravars,
            envvars=self.environment(),
            ident=str(job_id),
            timeout=template["timeout"],
            quiet=True,
        )
        return Job(job_id, name, extravars, runner)

    def environment(self) -> dict[str, str]:
        return {
            # the "Amazon Web Services" credential, as the controller injects it
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            # the sandbox
            "AWS_URL": self.endpoint,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            # the collection, where the execution environment has it
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_HOME": str(self.work / "ansible-home"),
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
            # ansible-playbook and the Python it runs modules with: this virtualenv's
            "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")]),
        }

    def run_workflow(self, name: str, answers: dict[str, Any], extra: dict[str, Any], approve: bool) -> dict[str, Job | str]:
        """Run the workflow's nodes the way the controller walks them; the approval is decided by ``approve``."""
        [workflow] = [w for w in self.found["cutover_awx_workflows"] if w["name"] == name]
        variables = self.answered(workflow["survey"], answers)
        assert workflow["ask_variables_on_launch"]
        variables.update(extra)
        nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
        children = {child["identifier"] for node in nodes.values() for links in node.get("related", {}).values() for child in links}
        queue = [identifier for identifier in nodes if identifier not in children]
        ran: dict[str, Job | str] = {}
        while queue:
            identifier = queue.pop(0)
            node = nodes[identifier]
            unified = node["unified_job_template"]
            if unified["type"] == "workflow_approval":
                ran[identifier] = "approved" if approve else "denied"
                succeeded = approve
            else:
                job = self.launch(unified["name"], node.get("extra_data", {}), workflow_vars=variables, launch_type="workflow")
                ran[identifier] = job
                succeeded = job.status == "successful"
                variables.update(job.artifacts)  # artifacts reach the nodes that run after the job
            related = node.get("related", {})
            queue += [link["identifier"] for link in related.get("success_nodes" if succeeded else "failure_nodes", [])]
            queue += [link["identifier"] for link in related.get("always_nodes", [])]
        return ran

    # -- what AWS says ---------------------------------------------------------------------------
    def colors(self) -> dict[str, str]:
        return {arn: color for color, arn in self.outputs["target_group_arns"].items()}

    def live(self) -> dict[str, int]:
        listener = self.aws.elbv2.describe_listeners(ListenerArns=[self.outputs["production_listener_arn"]])["Listeners"][0]
        return {self.colors()[arn]: weight for arn, weight in forward_weights(listener["DefaultActions"]).items()}

    def rule_targets(self) -> list[str]:
        rule = self.aws.elbv2.describe_rules(RuleArns=self.outputs["rule_arns"])["Rules"][0]
        return [self.colors()[arn] for arn in forward_weights(rule["Actions"])]

    def asg(self, color: str) -> dict[str, Any]:
        name = self.outputs["asg_names"][color]
        group = self.aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        group["TagMap"] = {tag["Key"]: tag["Value"] for tag in group["Tags"]}
        group["InService"] = sum(instance["LifecycleState"] == "InService" for instance in group["Instances"])
        return group

    def lock(self) -> dict[str, Any] | None:
        key = {"pk": {"S": "service#shop"}, "sk": {"S": "lock"}}
        return self.aws.dynamodb.get_item(TableName=self.outputs["table_name"], Key=key).get("Item")

    def journal(self) -> list[dict[str, Any]]:
        return self.aws.dynamodb.query(
            TableName=self.outputs["table_name"],
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": "service#shop"}, ":prefix": {"S": "deploy#"}},
            ScanIndexForward=False,
        )["Items"]

    def production_body(self) -> str:
        with urllib.request.urlopen(self.production_url, timeout=5) as response:
            return response.read().decode()

    def smoke_test(self, version: str) -> dict[str, Any]:
        """Launch-time extra vars of a deploy here: the test listener's loopback URL, the version it must serve."""
        return {
            "deploy_smoke_test_url": self.test_url,
            "deploy_smoke_test_expect": version,
            "deploy_metric_period": self.metric_period,
            "deploy_verify_timeout": 60,
            "deploy_bake_seconds": 0,
            "deploy_canary_min_requests": 10,
            # not a test of the latency gate: room for a loaded machine (test_bake tests the gate)
            "deploy_bake_latency_slack_ms": 500,
        }


@pytest.fixture(scope="module")
def controller(provisioned, sandbox, tmp_path_factory):
    """The controller, with a bounded load through production: a deploy proves from the metrics that traffic moved."""
    outputs, aws = provisioned
    wait_settled(sandbox.endpoint)
    found = Controller(outputs, aws, sandbox.endpoint, sandbox.state_dir, tmp_path_factory.mktemp("controller"), sandbox.metric_period)
    with LoadLoop(found.production_url, rate=40, threads=4, max_seconds=1800):
        yield found


def succeeded(job: Job) -> bool:
    assert job.status == "successful", f"{job.template} job {job.id}: {job.status}\n{job.output()[-6000:]}"
    assert job.runner.rc == 0
    return True


# -- the job templates, one after the other ----------------------------------------------------------
def test_status_shows_blue_live_and_changes_nothing(controller):
    before = controller.aws.ec2.describe_launch_template_versions(LaunchTemplateId=controller.outputs["launch_template_id"])
    job = controller.launch("cutover-status", {"service": "shop"})
    assert succeeded(job)
    assert job.extravars["status_deployments"] == 5  # the survey's default
    assert job.message("Show the live colour of shop").startswith("shop: blue is live")
    assert "lock free" in job.message("Show the live colour of shop")
    [colors] = job.results("Show each colour of shop")
    shown = [item["msg"] for item in colors["results"]]
    assert shown[0].startswith("blue (live): 2/2 in service") and shown[1].startswith("green: 0/0 in service")
    after = controller.aws.ec2.describe_launch_template_versions(LaunchTemplateId=controller.outputs["launch_template_id"])
    assert len(after["LaunchTemplateVersions"]) == len(before["LaunchTemplateVersions"])
    assert controller.live() == {"blue": 1} and controller.lock() is None


def test_a_survey_answer_the_role_refuses_fails_before_anything_changes(controller):
    # the controller takes any text for the service; the role refuses an unknown one by name
    job = controller.launch("cutover-deploy", {"service": "nosuch", **V2}, controller.smoke_test("v2"))
    assert job.status == "failed"
    assert "no target groups tagged cutover:service=nosuch" in job.output()
    assert controller.live() == {"blue": 1} and controller.asg("green")["DesiredCapacity"] == 0


def test_promote_with_no_canary_waiting_fails_clearly_and_changes_nothing(controller):
    journal = len(controller.journal())
    job = controller.launch("cutover-promote", {"service": "shop"})
    assert job.status == "failed"
    assert "nothing to promote for shop: no canary is waiting in the journal" in job.output()
    assert controller.live() == {"blue": 1} and len(controller.journal()) == journal and controller.lock() is None


def test_deploy_releases_green_through_the_test_listener(controller):
    job = controller.launch("cutover-deploy", {"service": "shop", **V2}, controller.smoke_test("v2"))
    assert succeeded(job)
    # the survey's defaults reached the role: no canary, the role's standby TTL
    assert (job.extravars["deploy_canary_weight"], job.extravars["deploy_standby_ttl"]) == (0, "1d")
    assert controller.live() == {"green": 1} and controller.rule_targets() == ["green"]
    blue, green = controller.asg("blue"), controller.asg("green")
    assert (green["DesiredCapacity"], green["InService"]) == (2, 2) and "cutover:state" not in green["TagMap"]
    assert (blue["DesiredCapacity"], blue["TagMap"]["cutover:state"]) == (2, "standby")
    assert "cutover:retire-after" in blue["TagMap"]
    assert "v2" in controller.production_body()
    summary = job.message("Summary")
    assert summary[0] == "shop: succeeded — green is live with v2"
    # the controller's job id names the lock owner in the journal
    entry = controller.journal()[0]
    assert entry["owner"]["S"] == f"awx-job-{job.id}" and entry["outcome"]["S"] == "succeeded"
    assert controller.lock() is None


def test_rollback_returns_production_to_blue(controller):
    job = controller.launch("cutover-rollback", {"service": "shop"})
    assert succeeded(job)
    assert job.extravars["to"] == "previous"
    assert controller.live() == {"blue": 1} and controller.rule_targets() == ["blue"]
    green = controller.asg("green")
    assert (green["DesiredCapacity"], green["TagMap"]["cutover:state"]) == (2, "standby")
    assert controller.asg("blue")["DesiredCapacity"] == 2
    summary = job.message("Summary")
    assert summary[0].startswith("shop: ") and "blue is live again" in summary[0]
    assert controller.journal()[0]["owner"]["S"] == f"awx-job-{job.id}"
    assert controller.lock() is None


def test_the_scheduled_teardown_keeps_a_standby_within_its_ttl(controller):
    [schedule] = controller.found["cutover_awx_schedules"]
    job = controller.launch(schedule["unified_job_template"], schedule["extra_data"], launch_type="scheduled")
    assert succeeded(job)
    assert job.extravars["force"] == "false"
    green = controller.asg("green")
    assert (green["DesiredCapacity"], green["TagMap"]["cutover:state"]) == (2, "standby")
    assert job.message("Summary for shop").startswith("shop: ")
    assert controller.live() == {"blue": 1}


def test_a_forced_teardown_retires_the_standby_and_never_the_live_colour(controller):
    job = controller.launch("cutover-teardown", {"services": "shop", "force": "true"})
    assert succeeded(job)
    green, blue = controller.asg("green"), controller.asg("blue")
    assert (green["DesiredCapacity"], green["TagMap"]["cutover:state"]) == (0, "retired")
    assert (blue["DesiredCapacity"], blue["InService"]) == (2, 2) and blue["TagMap"].get("cutover:state") != "retired"
    assert controller.live() == {"blue": 1}
    assert job.message("Summary for shop").startswith("shop: ")
    assert controller.lock() is None


# -- the release workflow ----------------------------------------------------------------------------
def test_a_denied_release_ends_the_canary(controller):
    journal_before = len(controller.journal())
    ran = controller.run_workflow(
        "cutover-release",
        {"service": "shop", **V3, "deploy_canary_seconds": 8},
        controller.smoke_test("v3"),
        approve=False,
    )
    assert list(ran) == ["canary", "approve", "roll-back"]
    canary, rollback = ran["canary"], ran["roll-back"]
    assert succeeded(canary) and succeeded(rollback)
    # the canary job stopped with the workflow's share of production on green, and handed its id on
    assert canary.extravars["deploy_canary_weight"] == 10 and canary.extravars["phase"] == "canary"
    [split] = canary.results("Canary step, send its share of production")
    assert split["changed"]
    assert canary.message("Summary")[0].startswith("shop: canary — green takes 10% of production with v3")
    assert not canary.results("Switch every production listener")
    deployment_id = canary.artifacts["deploy_deployment_id"]
    assert rollback.extravars["deploy_deployment_id"] == deployment_id
    # the denial sent everything back to blue; green is the standby; both entries are closed
    assert rollback.extravars["to"] == "previous" and rollback.extravars["service"] == "shop"
    assert controller.live() == {"blue": 1} and controller.rule_targets() == ["blue"]
    green = controller.asg("green")
    assert (green["DesiredCapacity"], green["TagMap"]["cutover:state"]) == (2, "standby")
    assert "v3" not in controller.production_body()
    entries = {entry["deployment_id"]["S"]: entry for entry in controller.journal()}
    assert len(entries) == journal_before + 2  # the canary's deployment and the rollback
    assert entries[deployment_id]["outcome"]["S"] == "rolled_back"
    assert controller.lock() is None


def test_an_approved_release_promotes_the_canary(controller):
    ran = controller.run_workflow(
        "cutover-release",
        {"service": "shop", **V4, "deploy_canary_seconds": 8},
        controller.smoke_test("v4"),
        approve=True,
    )
    assert list(ran) == ["canary", "approve", "promote"]
    canary, promote = ran["canary"], ran["promote"]
    assert succeeded(canary) and succeeded(promote)
    deployment_id = canary.artifacts["deploy_deployment_id"]
    assert promote.extravars["deploy_deployment_id"] == deployment_id
    # the promote job gated the canary again, then moved everything to green
    [gate] = promote.results("Watch the canary step")
    assert gate["verdict"] == "passed"
    assert controller.live() == {"green": 1} and controller.rule_targets() == ["green"]
    assert "v4" in controller.production_body()
    assert promote.message("Summary")[0] == "shop: succeeded — green is live with v4"
    blue = controller.asg("blue")
    assert (blue["DesiredCapacity"], blue["TagMap"]["cutover:state"]) == (2, "standby")
    [entry] = [entry for entry in controller.journal() if entry["deployment_id"]["S"] == deployment_id]
    assert entry["outcome"]["S"] == "succeeded"
    assert controller.lock() is None


# -- registering it all with a controller ------------------------------------------------------------
COLLECTION_TYPES = {
    "organizations": "organization",
    "credential_types": "credential_type",
    "credentials": "credential",
    "execution_environments": "execution_environment",
    "projects": "project",
    "project_updates": "project_update",
    "inventories": "inventory",
    "hosts": "host",
    "groups": "group",
    "job_templates": "job_template",
    "workflow_job_templates": "workflow_job_template",
    "workflow_job_template_nodes": "workflow_job_template_node",
    "workflow_approval_templates": "workflow_approval_template",
    "schedules": "schedule",
}
SUB_LISTS = {
    "groups": ("hosts", "children"),
    "job_templates": ("credentials", "labels", "instance_groups"),
    "workflow_job_template_nodes": ("success_nodes", "failure_nodes", "always_nodes", "credentials", "labels", "instance_groups"),
    "workflow_job_templates": ("labels",),
}
UNIFIED = ("job_templates", "workflow_job_templates", "projects", "workflow_approval_templates")


class FakeControllerAPI:
    """The part of the controller's REST API (/api/v2) that awx.awx's modules use to register objects.

    Objects are stored as posted, with id, url, type and related links; list views filter on
    query parameters. What the controller validates on the way in is validated here too: a
    template's playbook must be one the project's checkout holds, a survey must pass the
    controller's survey rules, a schedule's rrule must parse.
    """

    def __init__(self, playbooks: list[str]):
        self.playbooks = playbooks
        self.objects: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in COLLECTION_TYPES}
        self.associations: dict[tuple[str, int, str], list[int]] = {}
        self.surveys: dict[tuple[str, int], dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []
        self.ids = itertools.count(1)
        self.add("organizations", {"name": "Default"})
        self.add("credential_types", {"name": "Amazon Web Services", "kind": "cloud"})

    def add(self, collection: str, fields: dict[str, Any]) -> dict[str, Any]:
        item_id = next(self.ids)
        url = f"/api/v2/{collection}/{item_id}/"
        related = {name: f"{url}{name}/" for name in SUB_LISTS.get(collection, ())}
        if collection in ("job_templates", "workflow_job_templates"):
            related["survey_spec"] = f"{url}survey_spec/"
        item = {**fields, "id": item_id, "url": url, "type": COLLECTION_TYPES[collection], "related": related, "summary_fields": {}}
        if collection == "projects":  # the checkout is synced at once
            update = self.add("project_updates", {"name": fields.get("name"), "status": "successful", "failed": False, "finished": True})
            item.update(scm_revision="0123abcd", summary_fields={"current_update": {"id": update["id"]}}, playbooks=self.playbooks)
        self.objects[collection][item_id] = item
        return item

    def unified(self) -> list[dict[str, Any]]:
        return [item for collection in UNIFIED for item in self.objects[collection].values()]

    def problems(self, collection: str, fields: dict[str, Any], existing: dict[str, Any] | None = None) -> dict[str, Any] | None:
        merged = {**(existing or {}), **fields}
        if collection == "job_templates":
            project = self.objects["projects"].get(merged.get("project"))
            if project is None or merged.get("playbook") not in project["playbooks"]:
                return {"playbook": ["Playbook not found for project."]}
        if collection == "schedules":
            try:
                rrulestr(merged["rrule"].replace(" RRULE:", "\nRRULE:"))
            except (KeyError, ValueError) as error:
                return {"rrule": [f"Invalid rrule: {error}"]}
        return None

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")[2:]  # after api/v2
        if method != "GET":
            self.writes.append((method, path))
        collection = parts[0]
        if collection == "unified_job_templates":
            return 200, self.listing(self.unified(), query)
        if collection not in self.objects:
            return 404, {"detail": "Not found."}
        if len(parts) == 1:
            if method == "GET":
                return 200, self.listing(list(self.objects[collection].values()), query)
            if problems := self.problems(collection, body):
                return 400, problems
            return 201, self.add(collection, body)
        item = self.objects[collection].get(int(parts[1]))
        if item is None:
            return 404, {"detail": "Not found."}
        if len(parts) == 2:
            if method == "PATCH":
                if problems := self.problems(collection, body, item):
                    return 400, problems
                item.update(body)
            return 200, item
        sub = parts[2]
        if sub == "survey_spec":
            if method == "GET":
                return 200, self.surveys.get((collection, item["id"]), {})
            problems = survey_spec_problems(body)
            if problems:
                return 400, {"error": "; ".join(problems)}
            self.surveys[(collection, item["id"])] = body
            return 200, {}
        if sub == "create_approval_template":
            approval = self.add("workflow_approval_templates", body)
            item.update(unified_job_template=approval["id"])
            item["related"]["unified_job_template"] = approval["url"]
            return 201, approval
        key = (collection, item["id"], sub)
        linked = self.associations.setdefault(key, [])
        if method == "GET":
            return 200, self.listing([{"id": linked_id} for linked_id in linked], {})
        if body.get("disassociate"):
            linked.remove(body["id"])
        elif body["id"] not in linked:
            linked.append(body["id"])
        return 204, None

    @staticmethod
    def listing(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        filters = {key: value for key, value in query.items() if key not in ("page_size", "order_by", "page")}
        plain = {key: value for key, value in filters.items() if not key.startswith("or__")}
        either = {key[4:]: value for key, value in filters.items() if key.startswith("or__")}
        found = [
            item
            for item in items
            if all(str(item.get(key)) == value for key, value in plain.items())
            and (not either or any(str(item.get(key)) == value for key, value in either.items()))
        ]
        return {"count": len(found), "next": None, "previous": None, "results": found}

    def named(self, collection: str, name: str) -> dict[str, Any]:
        [item] = [item for item in self.objects[collection].values() if item.get("name") == name]
        return item


@pytest.fixture
def fake_controller():
    """A fake controller API on a loopback port: (api, url)."""
    playbooks = sorted(f"playbooks/{path.name}" for path in (REPO / "playbooks").glob("*.yml"))
    api = FakeControllerAPI(playbooks)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def respond(self):
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else {}
            if self.headers.get("Authorization") != "Bearer cutover-test-token":
                status, answer = 401, {"detail": "Authentication credentials were not provided."}
            else:
                status, answer = api.handle(self.command, url.path, dict(parse_qsl(url.query)), body)
            data = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-API-Product-Name", "AWX")
            self.send_header("X-API-Product-Version", "24.6.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = respond

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def register(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CONTROLLER_HOST": url,
        "CONTROLLER_OAUTH_TOKEN": "cutover-test-token",
        "CONTROLLER_VERIFY_SSL": "false",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(
        [str(Path(VENV_BIN) / "ansible-playbook"), str(REPO / "extensions" / "awx" / "register.yml"), *extra],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


SETTINGS = (
    "-e",
    "cutover_awx_scm_url=https://git.internal.test/platform/cutover.git",
    "-e",
    "cutover_awx_execution_environment_image=registry.internal.test/cutover/cutover-ee:0.1.0",
)
CREDENTIAL = ("-e", "cutover_awx_aws_access_key_id=AKIAEXAMPLE", "-e", "cutover_awx_aws_secret_access_key=secret")


def task_results(run: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    document = json.loads(run.stdout)
    return {task["task"]["name"]: task["hosts"]["localhost"] for task in document["plays"][0]["tasks"]}


def test_register_creates_everything_the_definitions_describe_and_a_second_run_changes_nothing(fake_controller):
    api, url = fake_controller
    found = load_definitions()
    fleet = [{"name": "shop"}, {"name": "shop-eu", "variables": {"service": "shop", "cutover_aws_region": "eu-west-1"}}]
    first = task_results(register(url, *SETTINGS, *CREDENTIAL, "-e", json.dumps({"cutover_awx_fleet_services": fleet})))
    assert first["Register the job templates with their surveys"]["changed"]
    assert first["Register the workflows with their nodes and surveys"]["changed"]

    project = api.named("projects", "cutover")
    ee = api.named("execution_environments", "cutover-ee")
    assert (project["scm_url"], project["scm_branch"], project["default_environment"]) == (
        "https://git.internal.test/platform/cutover.git",
        "main",
        ee["id"],
    )
    assert ee["image"] == "registry.internal.test/cutover/cutover-ee:0.1.0"
    inventory = api.named("inventories", "cutover-controller")
    [host] = [host for host in api.objects["hosts"].values() if host["inventory"] == inventory["id"]]
    assert (host["name"], json.loads(host["variables"])) == ("localhost", {"ansible_connection": "local"})
    # the fleet inventory: a host per service, in the group the fleet template names, each run on the controller node
    fleet_inventory = api.named("inventories", found["cutover_awx_fleet_inventory"])
    services = {host["name"]: host for host in api.objects["hosts"].values() if host["inventory"] == fleet_inventory["id"]}
    assert {name: json.loads(host["variables"]) for name, host in services.items()} == {
        "shop": {"ansible_connection": "local"},
        "shop-eu": {"ansible_connection": "local", "service": "shop", "cutover_aws_region": "eu-west-1"},
    }
    group = api.named("groups", found["cutover_awx_fleet_group"])
    assert group["inventory"] == fleet_inventory["id"]
    assert sorted(api.associations[("groups", group["id"], "hosts")]) == sorted(host["id"] for host in services.values())
    credential = api.named("credentials", "cutover-aws-deployer")
    assert credential["inputs"] == {"username": "AKIAEXAMPLE", "password": "secret"}

    for template in found["cutover_awx_job_templates"]:
        stored = api.named("job_templates", template["name"])
        wanted_inventory = fleet_inventory if template.get("inventory") == "fleet" else inventory
        assert (stored["playbook"], stored["project"], stored["inventory"]) == (template["playbook"], project["id"], wanted_inventory["id"])
        assert (stored["execution_environment"], stored["timeout"]) == (ee["id"], template["timeout"])
        assert stored["ask_variables_on_launch"] == template["ask_variables_on_launch"]
        assert stored["allow_simultaneous"] == template["allow_simultaneous"] and stored["survey_enabled"]
        assert (stored["job_slice_count"], stored["forks"]) == (template.get("job_slice_count", 1), template.get("forks", 0))
        assert json.loads(stored["extra_vars"]) == {**template.get("extra_vars", {}), "cutover_aws_region": "us-east-1"}
        assert api.surveys[("job_templates", stored["id"])] == found["surveys"][template["survey"]]
        assert api.associations[("job_templates", stored["id"], "credentials")] == [credential["id"]]

    [definition] = found["cutover_awx_workflows"]
    workflow = api.named("workflow_job_templates", "cutover-release")
    assert api.surveys[("workflow_job_templates", workflow["id"])] == found["surveys"]["release"]
    assert (workflow["allow_simultaneous"], workflow["ask_variables_on_launch"]) == (False, True)
    nodes = {node["identifier"]: node for node in api.objects["workflow_job_template_nodes"].values()}
    assert set(nodes) == {"canary", "approve", "promote", "roll-back"}
    assert all(node["workflow_job_template"] == workflow["id"] for node in nodes.values())

    def links(identifier: str, kind: str) -> list[str]:
        linked = api.associations.get(("workflow_job_template_nodes", nodes[identifier]["id"], kind), [])
        return sorted(node["identifier"] for node in nodes.values() if node["id"] in linked)

    assert links("canary", "success_nodes") == ["approve"] and links("canary", "failure_nodes") == []
    assert (links("approve", "success_nodes"), links("approve", "failure_nodes")) == (["promote"], ["roll-back"])
    assert nodes["canary"]["unified_job_template"] == api.named("job_templates", "cutover-deploy")["id"]
    assert nodes["canary"]["extra_data"] == {"phase": "canary"}
    assert nodes["promote"]["unified_job_template"] == api.named("job_templates", "cutover-promote")["id"]
    assert nodes["roll-back"]["unified_job_template"] == api.named("job_templates", "cutover-rollback")["id"]
    assert nodes["roll-back"]["extra_data"] == {"to": "previous"}
    approval = api.objects["workflow_approval_templates"][nodes["approve"]["unified_job_template"]]
    wanted = next(node for node in definition["workflow_nodes"] if node["identifier"] == "approve")["unified_job_template"]
    assert (approval["name"], approval["timeout"]) == (wanted["name"], wanted["timeout"])

    [schedule] = api.objects["schedules"].values()
    [wanted] = found["cutover_awx_schedules"]
    assert (schedule["name"], schedule["rrule"], schedule["enabled"]) == (wanted["name"], wanted["rrule"], True)
    assert schedule["unified_job_template"] == api.named("job_templates", "cutover-teardown")["id"]
    assert schedule["extra_data"] == {"services": "shop", "force": "false"}

    sliced = api.named("job_templates", "cutover-fleet-deploy")
    assert sliced["job_slice_count"] > 1 and json.loads(sliced["extra_vars"])["service_group"] == group["name"]

    writes = len(api.writes)
    second = task_results(register(url, *SETTINGS, *CREDENTIAL, "-e", json.dumps({"cutover_awx_fleet_services": fleet})))
    assert [name for name, result in second.items() if result.get("changed")] == []
    assert api.writes[writes:] == []


def test_register_attaches_the_kubernetes_credential_too_when_one_is_named(fake_controller):
    """One set of templates serves both platforms: a job on Kubernetes gets the bearer-token credential beside the AWS one."""
    api, url = fake_controller
    kind = api.add("credential_types", {"name": "OpenShift or Kubernetes API Bearer Token", "kind": "kubernetes"})
    kubernetes = api.add("credentials", {"name": "cutover-k8s-deployer", "credential_type": kind["id"], "organization": 1})
    task_results(register(url, *SETTINGS, *CREDENTIAL, "-e", "cutover_awx_k8s_credential=cutover-k8s-deployer"))
    aws = api.named("credentials", "cutover-aws-deployer")
    for template in load_definitions()["cutover_awx_job_templates"]:
        stored = api.named("job_templates", template["name"])
        assert sorted(api.associations[("job_templates", stored["id"], "credentials")]) == sorted([aws["id"], kubernetes["id"]])


def test_register_refuses_the_placeholder_repository_and_touches_nothing(fake_controller):
    api, url = fake_controller
    run = register(url)
    assert run.returncode != 0
    assert "set cutover_awx_scm_url to the repository the controller clones" in run.stdout
    assert api.writes == []
