"""The playbooks on Kubernetes (``-e platform=kubernetes``): real ``ansible-playbook`` runs against the Kubernetes sandbox.

One sandbox for the file, provisioned from infra/kubernetes the way a user provisions it (``python -m sandbox
provision --kubernetes``: the app shop in namespace shop, blue live at v1 with 2 pods, green at 0). The tests run
in order, each from the state the one before left: bad input and a rollback with nothing to return to (nothing
read or changed), a check run, two deploys at once (one refused; the winner's heartbeat keeps its lease while it
is stopped), a release whose pods fail readiness (never switched to), a release with every Kubernetes variable as
a string and its re-run (nothing changed), a release killed with ``kill -9`` at its switch and run again
(converges), then rollback, teardown and a late rollback that scales the retired colour back up.

Every extra var goes as a plain ``-e key=value`` string; test_inputs.py counts the runs below (RUNS) among those
that give every variable of every role so.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox import server as aws_server
from sandbox.k8s import control, server

from .ansible_harness import BackgroundRun, key_value_args, run_playbook_file
from .conftest import cli
from .k8s_harness import connect, ready_addresses, wait_for

NS = "shop"
V1, V2, V3, V4 = (f"registry.local/shop:v{n}" for n in range(1, 5))
SICK = "registry.local/shop:sick"
CHECK = "Check every input before anything is read or changed"
NOWHERE = "http://127.0.0.1:9"  # no AWS endpoint: nothing of these runs may call AWS

# The runs of this file whose variables test_inputs.py counts (every Kubernetes variable, as strings).
DEPLOY_RUN = {
    "platform": "kubernetes",
    "service": "shop",
    "namespace": NS,
    "image": V3,
    "version": "v3",
    "deploy_capacity": 2,
    "deploy_preparation_capacity": 1,
    "deploy_unhealthy_timeout": 60,
    "deploy_rollout_timeout": 120,
    "deploy_health_timeout": 60,
    "deploy_smoke_test": True,
    "deploy_smoke_test_path": "/",
    "deploy_smoke_test_status": [200, 204],
    "deploy_smoke_test_expect": "v3",
    "deploy_smoke_test_retries": 5,
    "deploy_standby_ttl": "1h",
    "deploy_owner": "release-train-k8s",
    "deploy_lease_seconds": 30,
    "deploy_force": False,
}
DEPLOY_ROLE_RUN = {"service": "shop", "deploy_service": "shop", "deploy_platform": "kubernetes", "deploy_namespace": NS, "deploy_image": V3}
PROMOTE_RUN = {"service": "shop", "platform": "kubernetes", "namespace": NS}
ROLLBACK_RUN = {
    "platform": "kubernetes",
    "service": "shop",
    "namespace": NS,
    "to": "previous",
    "rollback_standby_ttl": "3",
    "rollback_health_timeout": 120,
    "rollback_owner": "on-call-k8s",
    "rollback_lease_seconds": 30,
}
ROLLBACK_ROLE_RUN = {
    "service": "shop",
    "rollback_service": "shop",
    "rollback_platform": "kubernetes",
    "rollback_namespace": NS,
    "rollback_to": "previous",
    "rollback_capacity": 2,
}
TEARDOWN_RUN = {"services": "shop", "platform": "kubernetes", "namespace": NS, "teardown_wait_timeout": 120}
TEARDOWN_ROLE_RUN = {"services": "shop", "teardown_services": "shop", "teardown_platform": "kubernetes", "teardown_namespace": NS}
STATUS_RUN = {"service": "shop", "platform": "kubernetes", "namespace": NS}
STATUS_ROLE_RUN = {"service": "shop", "status_service": "shop", "status_platform": "kubernetes", "status_namespace": NS}
RUNS = {
    "deploy": [DEPLOY_RUN, DEPLOY_ROLE_RUN],
    "promote": [PROMOTE_RUN],
    "rollback": [ROLLBACK_RUN, ROLLBACK_ROLE_RUN],
    "teardown": [TEARDOWN_RUN, TEARDOWN_ROLE_RUN],
    "status": [STATUS_RUN, STATUS_ROLE_RUN],
}


class App:
    """The app shop in the sandbox, the playbooks run against it, and what a test reads of it."""

    def __init__(self, kube: Any, directory: Path):
        self.kube = kube
        self.endpoint = kube.sandbox.endpoint
        self.env = {"KUBECONFIG": kube.sandbox.kubeconfig}
        self.runs = directory / "runs"
        self.runs.mkdir()
        self.started: list[BackgroundRun] = []

    def play(self, name: str, *options: str, env: dict[str, str] | None = None, **extra: Any):
        """Run playbooks/<name>.yml with every extra var as a separate ``-e key=value`` string."""
        return run_playbook_file(name, NOWHERE, strings=True, env={**self.env, **(env or {})}, options=options, **extra)

    def start(self, name: str, **extra: Any) -> BackgroundRun:
        run = BackgroundRun(name, NOWHERE, self.runs, *(arg for arg in key_value_args(extra) if arg != "-e"), env=self.env)
        self.started.append(run)
        return run

    # -- what the tests read ------------------------------------------------------------------------------
    def selectors(self) -> dict[str, dict[str, str]]:
        return {s.metadata.name: s.spec.selector for s in self.kube.core.list_namespaced_service(NS).items}

    def live(self) -> str:
        return self.selectors()["shop"]["slot"]

    def deployment(self, color: str) -> tuple[int, str, dict[str, str]]:
        found = self.kube.apps.read_namespaced_deployment(f"shop-{color}", NS)
        marks = {k: v for k, v in (found.metadata.annotations or {}).items() if k.startswith("cutover.bluegreen/")}
        return found.spec.replicas, found.spec.template.spec.containers[0].image, marks

    def lease(self) -> dict[str, Any]:
        lease = self.kube.coordination.read_namespaced_lease("shop-cutover-lock", NS)
        annotations = lease.metadata.annotations or {}
        return {
            "token": lease.spec.holder_identity,
            "owner": annotations.get("cutover.bluegreen/owner"),
            "purpose": annotations.get("cutover.bluegreen/purpose"),
            "deployment_id": annotations.get("cutover.bluegreen/deployment-id"),
            "acquired": lease.spec.acquire_time,
            "renewed": lease.spec.renew_time,
            "seconds": lease.spec.lease_duration_seconds,
        }

    def lease_or_none(self) -> dict[str, Any] | None:
        try:
            lease = self.lease()
        except Exception:  # noqa: BLE001 - no Lease yet
            return None
        return lease if lease["token"] else None

    def journal(self) -> dict[str, dict[str, Any]]:
        try:
            found = self.kube.core.read_namespaced_config_map("shop-cutover-journal", NS)
        except Exception:  # noqa: BLE001 - no journal yet
            return {}
        return {key: json.loads(value) for key, value in (found.data or {}).items()}

    def published(self) -> str:
        return self.kube.core.read_namespaced_config_map("shop-active-color", NS).data["color"]

    def snapshot(self) -> dict[str, Any]:
        """What a release, a rollback or a teardown may change, in a form that compares."""
        maps = {m.metadata.name: m.data for m in self.kube.core.list_namespaced_config_map(NS).items}
        leases = {
            item.metadata.name: (item.spec.holder_identity, item.metadata.resource_version)
            for item in self.kube.coordination.list_namespaced_lease(NS).items
        }
        return {
            "selectors": self.selectors(),
            "deployments": {color: self.deployment(color) for color in ("blue", "green")},
            "config_maps": maps,
            "leases": leases,
        }

    def refused(self, name: str, **extra: Any):
        """Run a playbook that must be refused by its input check: no request reached the API, nothing changed."""
        before = self.snapshot()
        control.api_requests(self.endpoint, reset=True)
        run = self.play(name, **extra)
        requests = control.api_requests(self.endpoint)
        assert not run.ok, f"{name} was not refused"
        assert requests["total"] == 0, f"requests to the API before the refusal: {requests['requests']}"
        assert self.snapshot() == before
        return run


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    directory = tmp_path_factory.mktemp("k8s-playbooks")
    running = server.start(port=0, directory=directory)
    cli("--dir", str(directory), "provision", "--kubernetes", timeout=180)
    kube = connect(running)
    wait_for("blue to serve", lambda: len(ready_addresses(kube, "shop", NS)) == 2)
    found = App(kube, directory)
    yield found
    for run in found.started:  # a test that failed half way leaves nothing running
        if run.process.poll() is None:
            run.kill()
    deadline = time.monotonic() + 30
    while any(run.survivors() for run in found.started) and time.monotonic() < deadline:
        time.sleep(0.5)
    for run in found.started:
        for pid in run.survivors():
            os.kill(pid, signal.SIGKILL)
    server.stop(directory)
    assert aws_server.group_members(running.pid) == []


def problems(run) -> list[str]:
    return run.result(CHECK)["problems"]


# -- nothing is read or changed ------------------------------------------------------------------------------------
def test_bad_input_is_refused_before_any_request_naming_each_field(app):
    run = app.refused(
        "deploy",
        platform="kubernetes",
        service="shop",
        namespace="Shop_NS",
        image="Registry/Shop:V2",
        deploy_canary_weight=10,
        deploy_image_id="ami-0123456789abcdef0",
    )
    assert sorted(problems(run)) == [
        "deploy_canary_weight=10 with deploy_platform=kubernetes: no canary on kubernetes: a Service cannot weigh two colours, "
        "and the canary's gates read AWS load-balancer metrics; release with deploy_phase=full",
        "deploy_image=Registry/Shop:V2: allowed a container image such as registry.example.com/shop:v2 (a tag or a digest), "
        "at most 512 characters",
        "deploy_image_id=ami-0123456789abcdef0 with deploy_platform=kubernetes: only the aws platform reads it; "
        "a release on kubernetes sets deploy_image (-e image=registry/app:tag)",
        "deploy_namespace=Shop_NS: allowed a namespace name, 1 to 63 characters of a-z, 0-9 and - (not first or last); "
        "not given: the service's name",
    ]
    assert "deploy: 4 bad inputs, nothing was read or changed" in run.failure()
    run = app.refused("deploy", platform="kubernetes", service="shop")
    assert problems(run) == ["no new version given with deploy_platform=kubernetes: set deploy_image (-e image=registry/app:tag)"]
    run = app.refused("deploy", platform="gcp", service="shop", image=V2)  # Ansible's own argument validation
    assert "deploy_platform" in run.failure() and "gcp" in run.failure()
    run = app.refused("promote", **PROMOTE_RUN)
    assert problems(run) == [
        "deploy_phase=promote with deploy_platform=kubernetes: no canary on kubernetes: a Service cannot weigh two colours, "
        "and the canary's gates read AWS load-balancer metrics; release with deploy_phase=full"
    ]
    run = app.refused("rollback", platform="kubernetes", service="2shop", rollback_table_name="cutover-shop")
    assert sorted(problems(run)) == [
        "rollback_service=2shop: allowed 1 to 40 characters of a-z, 0-9 and -, a letter first and no - last",
        "rollback_table_name=cutover-shop with rollback_platform=kubernetes: only the aws platform reads it "
        "(on kubernetes the lock is a Lease, the journal a ConfigMap)",
    ]
    run = app.refused("teardown", platform="kubernetes", services="shop,shop", namespace="-shop")
    assert sorted(p.split("=", 1)[0] for p in problems(run)) == ["teardown_namespace", "teardown_services"]
    run = app.refused("status", service="shop", namespace=NS)  # a namespace is Kubernetes': refused on aws
    assert problems(run) == ["status_namespace=shop with status_platform=aws: only the kubernetes platform reads it"]


def test_a_rollback_to_a_colour_that_never_served_is_refused_and_changes_nothing(app):
    before = app.snapshot()
    run = app.play("rollback", **{k: v for k, v in ROLLBACK_RUN.items() if k != "rollback_standby_ttl"})
    assert not run.ok
    assert "nothing to roll back to for app shop: green (shop-green, 0 replicas, image registry.local/shop:v1)" in run.failure()
    assert "Nothing was changed" in run.failure()
    assert app.snapshot() == before and app.journal() == {}


def test_a_check_run_says_what_the_release_would_do_and_changes_nothing(app):
    before = app.snapshot()
    run = app.play("deploy", "--check", "--diff", platform="kubernetes", service="shop", image=V2, version="v2")
    assert run.ok, run.failure()
    rollout = run.result("Roll out the new version on green")
    assert rollout["changed"] and rollout["after"]["image"] == V2 and rollout["after"]["replicas"] == 2
    switch = run.result("Switch every Service selecting the old colour")
    assert [(c["service"], c["after"]["slot"]) for c in switch["changes"]] == [("shop", "green"), ("shop-preview", "blue")]
    assert run.result("Summary")["msg"][0] == "shop: succeeded — green is live with v2"
    assert app.snapshot() == before and app.journal() == {}


# -- the lock ---------------------------------------------------------------------------------------------------
def test_two_deploys_at_once_one_is_refused_and_the_winners_heartbeat_keeps_its_lease(app):
    release = {"platform": "kubernetes", "service": "shop", "image": V2, "version": "v2", "deploy_lease_seconds": 10}
    release.update(deploy_capacity=2, deploy_preparation_capacity=1)
    first, second = app.start("deploy", **release), app.start("deploy", **release)
    taken = wait_for("one of the two deploys to take the lock", app.lease_or_none, timeout=120)
    winner, loser = (first, second) if taken["owner"].endswith(f" pid {first.pid}") else (second, first)
    assert taken["owner"].endswith(f" pid {winner.pid}") and taken["owner"].startswith("ansible-playbook ")
    # once its heartbeat renewed the lease, the winner is stopped: only its heartbeat (a job of its own) runs on
    held = wait_for(
        "the heartbeat's first renewal", lambda: (lease := app.lease_or_none()) and lease["renewed"] > lease["acquired"] and lease
    )
    winner.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        refused = loser.finish()
        assert not refused.ok
        message = refused.failure()
        assert f"app shop is locked by {held['owner']} (deploy v2 to green) since " in message
        assert f"run again with takeover={held['token']}" in message
        assert list(app.journal()) == [held["deployment_id"]]  # the loser opened no entry
        time.sleep(max(0.0, stopped + 13 - time.monotonic()))  # longer than the lease (10 s)
        lease = app.lease()
        assert lease["token"] == held["token"] and lease["renewed"] > held["renewed"]  # renewed while stopped
        age = time.time() - lease["renewed"].timestamp()
        assert age < lease["seconds"], f"the lease was last renewed {age:.1f} s ago"
    finally:
        winner.signal(signal.SIGCONT)
    done = winner.finish()
    assert done.ok, done.failure()
    rollout = done.result("Wait for the rollout and every pod to be Ready")
    assert [step["replicas"] for step in rollout["rollout"]["steps"]] == [1, 2]  # preparation_capacity, then capacity
    assert app.live() == "green" and app.deployment("green")[:2] == (2, V2) and app.published() == "green"
    replicas, image, marks = app.deployment("blue")
    assert (replicas, image, marks["cutover.bluegreen/state"]) == (2, V1, "standby")
    entry = app.journal()[held["deployment_id"]]
    assert entry["outcome"] == "succeeded" and entry["record"]["to_version"] == {"label": "v2", "image": V2}
    assert app.lease_or_none() is None


# -- a release that must not go live -------------------------------------------------------------------------------
def test_a_release_whose_pods_fail_readiness_is_never_switched_to(app):
    control.image(app.endpoint, SICK, fail_health=True)
    seen: set[str] = set()
    watching = threading.Event()

    def watch() -> None:
        while not watching.wait(0.2):
            seen.add(app.live())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = app.play("deploy", platform="kubernetes", service="shop", image=SICK, deploy_unhealthy_timeout=3)
    finally:
        watching.set()
        watcher.join(5)
    assert not run.ok
    failure = run.failure()
    assert "the rollout of shop/shop-blue failed: shop-blue-" in failure and "ReadinessProbeFailed" in failure
    assert "statuscode: 500" in failure and "production was not touched" in failure
    assert seen == {"green"} and app.live() == "green" and app.published() == "green"
    assert run.result("Wait for the rollout and every pod to be Ready")["failed"]
    assert app.deployment("blue")[1] == SICK  # the idle colour runs it, serving nobody
    newest = max(app.journal().values(), key=lambda e: e["started_at"])
    assert newest["outcome"] == "failed" and "ReadinessProbeFailed" in newest["summary"]
    assert app.lease_or_none() is None


# -- a release with every variable as a string -------------------------------------------------------------------
def test_a_release_takes_every_variable_as_a_string_and_a_rerun_changes_nothing(app, tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    run = app.play("deploy", **DEPLOY_RUN, deploy_record_dir=str(records))
    assert run.ok, run.failure()
    checked = run.result(CHECK)
    typed = {name: checked[name] for name in ("deploy_platform", "deploy_namespace", "deploy_image", "deploy_unhealthy_timeout")}
    assert typed == {"deploy_platform": "kubernetes", "deploy_namespace": NS, "deploy_image": V3, "deploy_unhealthy_timeout": 60}
    assert checked["deploy_smoke_test_status"] == [200, 204] and checked["deploy_capacity"] == 2
    rollout = run.result("Wait for the rollout and every pod to be Ready")
    assert [step["replicas"] for step in rollout["rollout"]["steps"]] == [2]  # blue has 2 (sick) pods: no preparation
    # watched by job_wait, which prints the rollout job's progress lines as it writes them
    done = r"^\S+: \S+/shop-blue to be rolled out with 2 Ready pod\(s\): done after [\d.]+ s \(\d+ looks\)$"
    assert re.search(done, run.printed, re.M), run.printed
    smoke = run.result("Smoke-test through the preview Service")
    assert smoke["status"] == 200 and json.loads(smoke["content"])["version"] == "v3" and smoke["color"] == "blue"
    assert app.live() == "blue" and app.deployment("blue")[:2] == (2, V3) and app.published() == "blue"
    replicas, image, marks = app.deployment("green")
    assert (replicas, image, marks["cutover.bluegreen/state"]) == (2, V2, "standby")
    retire_after = datetime.datetime.fromisoformat(marks["cutover.bluegreen/retire-after"].replace("Z", "+00:00")).timestamp()
    assert 3500 < retire_after - time.time() <= 3600  # standby_ttl 1h
    [record] = (json.loads(path.read_text()) for path in records.glob("shop-*.json"))
    assert (record["outcome"], record["platform"], record["namespace"], record["owner"]) == (
        "succeeded",
        "kubernetes",
        NS,
        "release-train-k8s",
    )
    entry = app.journal()[record["deployment_id"]]
    assert entry["owner"] == "release-train-k8s" and entry["record"]["durations"]["cutover_seconds"] is not None

    before = app.snapshot()
    again = app.play("deploy", **DEPLOY_ROLE_RUN)  # the role's own names; the same version
    assert not again.ok
    assert f"shop already runs this version on its live colour blue (image {V3}); nothing was changed" in again.failure()
    assert again.result(CHECK)["deploy_image"] == V3
    assert app.snapshot() == before


def test_status_reads_the_pair_with_the_kubeconfig_given_as_an_extra_var(app):
    run = app.play("status", env={"KUBECONFIG": "/nonexistent/kubeconfig"}, cutover_k8s_kubeconfig=app.env["KUBECONFIG"], **STATUS_RUN)
    assert run.ok, run.failure()
    assert run.result("Show the live colour")["msg"].startswith("shop: blue is live (Service shop); published active colour blue")
    colors = [item["msg"] for item in run.result("Show each colour")["results"]]
    assert colors[0].startswith("blue (live): Deployment shop-blue, 2/2 pods Ready, image registry.local/shop:v3")
    assert colors[1].startswith("green: Deployment shop-green, 2/2 pods Ready, image registry.local/shop:v2, standby until ")
    run = app.play("status", **STATUS_ROLE_RUN, status_deployments=2)
    assert run.ok and len(run.result("Show the recent deployments")["results"]) == 2


# -- a crash --------------------------------------------------------------------------------------------------
def test_killed_at_the_switch_a_rerun_with_the_takeover_converges(app):
    release = {"platform": "kubernetes", "service": "shop", "image": V4, "version": "v4"}
    run = app.start("deploy", **release, deploy_lease_seconds=10)
    deadline = time.monotonic() + 180
    while app.live() != "green":  # kill -9 the run's whole process group as soon as the live Service moved
        assert run.process.poll() is None, run.output.read_text()[-2000:]
        assert time.monotonic() < deadline, "the deploy did not switch"
        time.sleep(0.05)
    killed = run.kill()
    dead = app.lease()
    entry = app.journal()[dead["deployment_id"]]
    assert entry["outcome"] == "in_progress" and entry["record"]["switch_started_at"] <= killed
    wait_for("every process of the killed run to stop", lambda: not run.survivors(), timeout=30)
    held = [job for job in run.jobs() if job.get("operation") == "held"]
    assert [job["held"]["stopped"] for job in held] == ["controller_gone"]

    rerun = app.play("deploy", **release, takeover=dead["token"])
    assert rerun.ok, rerun.failure()
    assert "already runs this version" not in rerun.messages()
    assert rerun.result("Roll out the new version").get("skipped")  # done before the kill: resumed after the switch
    assert app.selectors() == {"shop": {"app": "shop", "slot": "green"}, "shop-preview": {"app": "shop", "slot": "blue"}}
    assert app.published() == "green" and app.deployment("green")[:2] == (2, V4)
    assert app.deployment("blue")[2]["cutover.bluegreen/state"] == "standby"
    entry = app.journal()[dead["deployment_id"]]
    assert (entry["outcome"], entry["summary"]) == ("succeeded", "green is live with v4")
    # taken by name, or after the 10 s lease ran out while the re-run started (a loaded machine): resumed either way
    assert entry["record"]["took_over"]["reason"] in ("named", "expired") and entry["record"]["resumed"][0]["from"] == dead["owner"]
    assert app.lease_or_none() is None


# -- rollback, teardown, late rollback ---------------------------------------------------------------------------------
def test_rollback_teardown_and_a_late_rollback_that_scales_the_retired_colour_up(app):
    run = app.play("rollback", **ROLLBACK_RUN)
    assert run.ok, run.failure()
    assert run.result(CHECK)["rollback_platform"] == "kubernetes" and run.result(CHECK)["rollback_namespace"] == NS
    assert app.live() == "blue" and app.published() == "blue"
    assert app.deployment("green")[2]["cutover.bluegreen/state"] == "standby"
    entry = next(e for e in app.journal().values() if e["record"].get("kind") == "rollback")
    assert (entry["owner"], entry["outcome"]) == ("on-call-k8s", "succeeded")
    early = app.play("teardown", **TEARDOWN_RUN)  # before green's 3 s are over, or just after: a schedule's run
    assert early.ok, early.failure()
    time.sleep(3)

    run = app.play("teardown", **TEARDOWN_RUN)
    assert run.ok, run.failure()
    replicas, image, marks = app.deployment("green")
    assert (replicas, image, marks["cutover.bluegreen/state"], marks["cutover.bluegreen/replicas-before-teardown"]) == (
        0,
        V4,
        "retired",
        "2",
    )
    assert app.live() == "blue" and app.deployment("blue")[0] == 2
    wait_for("green's pods to stop", lambda: not app.kube.core.list_namespaced_pod(NS, label_selector="slot=green").items, timeout=60)
    again = app.play("teardown", **TEARDOWN_ROLE_RUN)  # nothing due: no lock taken, nothing changed
    assert again.ok and again.document["stats"]["localhost"]["changed"] == 0
    assert again.result(CHECK)["teardown_platform"] == "kubernetes"

    late = app.play("rollback", **ROLLBACK_ROLE_RUN)
    assert late.ok, late.failure()
    assert "shop: green is live again; blue is the standby until " in late.result("Summary")["msg"][0]
    assert app.live() == "green" and app.deployment("green")[:2] == (2, V4) and app.published() == "green"
    assert len(ready_addresses(app.kube, "shop", NS)) == 2
    assert app.lease_or_none() is None
