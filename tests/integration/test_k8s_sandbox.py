"""The Kubernetes sandbox: one command starts it, real clients speak to it, its pods and Services behave like a cluster's."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from sandbox import server as aws_server
from sandbox.k8s import control, server

from .ansible_harness import run_playbook
from .conftest import cli
from .k8s_harness import connect, deployment, ready_addresses, rolled_out, service, wait_for

PROGRAM = Path(__file__).resolve().parent / "k8s_program"


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    directory = tmp_path_factory.mktemp("k8s")
    running = server.start(port=0, directory=directory)
    yield connect(running)
    server.stop(directory)
    assert aws_server.group_members(running.pid) == []


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


# -- one command ---------------------------------------------------------------------------------------------
def test_start_writes_a_kubeconfig_every_start_is_clean_and_stop_leaves_no_process(tmp_path):
    started = cli("--dir", str(tmp_path), "start", "--kubernetes", "--port", "0")
    found = re.search(r"kubernetes sandbox up at (http://127\.0\.0\.1:(\d+))", started.stdout)
    assert found, started.stdout
    kubeconfig = tmp_path / "kubernetes" / "kubeconfig"
    assert f"export KUBECONFIG={kubeconfig}" in started.stdout
    assert cli("--dir", str(tmp_path), "env").stdout.strip() == f"export KUBECONFIG={kubeconfig}"
    assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == found.group(1)
    first = server.current(tmp_path)
    kube = connect(first)
    kube.core.create_namespaced_config_map("default", {"metadata": {"name": "left-over"}, "data": {"a": "1"}})
    kube.apps.create_namespaced_deployment("default", deployment("web", "blue", "registry/web:v1", replicas=1))
    wait_for("the pod to be ready", rolled_out(kube, "web"))
    assert len(aws_server.group_members(first.pid)) >= 3  # the daemon, HAProxy (master and worker), the pod

    cli("--dir", str(tmp_path), "start", "--kubernetes", "--port", "0")  # a second start stops the first and starts clean
    second = server.current(tmp_path)
    assert aws_server.group_members(first.pid) == []
    assert [c.metadata.name for c in connect(second).core.list_namespaced_config_map("default").items] == []
    assert cli("--dir", str(tmp_path), "status").stdout.startswith(f"kubernetes sandbox running at {second.endpoint}")

    stopped = cli("--dir", str(tmp_path), "stop")
    assert "kubernetes sandbox stopped" in stopped.stdout
    assert aws_server.group_members(second.pid) == []
    assert not _port_open(second.port)
    assert cli("--dir", str(tmp_path), "status", check=False).returncode == 1
    assert "no sandbox was running" in cli("--dir", str(tmp_path), "stop").stdout


def test_a_port_in_use_is_refused(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("--dir", str(tmp_path), "start", "--kubernetes", "--port", str(port), check=False)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


# -- the API -------------------------------------------------------------------------------------------------
def test_discovery_describes_groups_resources_and_subresources(kube):
    assert client.VersionApi(kube.api).get_code().major == "1"
    groups = {g.name: g.preferred_version.group_version for g in client.ApisApi(kube.api).get_api_versions().groups}
    assert {"apps": "apps/v1", "coordination.k8s.io": "coordination.k8s.io/v1", "policy": "policy/v1"}.items() <= groups.items()
    assert groups["discovery.k8s.io"] == "discovery.k8s.io/v1"
    apps = {r.name: r for r in kube.apps.get_api_resources().resources}
    assert apps["deployments/scale"].kind == "Scale" and apps["deployments/scale"].group == "autoscaling"
    assert "deployments/status" in apps and apps["deployments"].namespaced and "watch" in apps["deployments"].verbs
    core = {r.name for r in kube.core.get_api_resources().resources}
    assert {"pods", "pods/status", "pods/eviction", "services", "services/proxy", "endpoints", "configmaps", "namespaces"} <= core


def test_errors_are_status_objects_with_kubernetes_codes(kube):
    with pytest.raises(ApiException) as missing:
        kube.apps.read_namespaced_deployment("absent", "default")
    status = json.loads(missing.value.body)
    assert (missing.value.status, status["kind"], status["reason"]) == (404, "Status", "NotFound")
    assert status["message"] == 'deployments.apps "absent" not found'
    assert status["details"] == {"name": "absent", "group": "apps", "kind": "deployments"}
    with pytest.raises(ApiException) as invalid:
        kube.apps.create_namespaced_deployment("default", deployment("bad", "blue", "registry/shop:v1", replicas=-2))
    assert invalid.value.status == 422
    assert "spec.replicas: Invalid value: -2: must be greater than or equal to 0" in json.loads(invalid.value.body)["message"]
    with pytest.raises(ApiException) as no_namespace:
        kube.core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert no_namespace.value.status == 404 and json.loads(no_namespace.value.body)["message"] == 'namespaces "nowhere" not found'
    with pytest.raises(ApiException) as bad_selector:
        kube.core.list_namespaced_pod("default", field_selector="spec.image=x")
    assert bad_selector.value.status == 400 and "field label not supported: spec.image" in json.loads(bad_selector.value.body)["message"]


def test_a_stale_resource_version_is_refused_with_409(kube):
    lease = kube.coordination.create_namespaced_lease(
        "default", {"metadata": {"name": "shop-lock"}, "spec": {"holderIdentity": "nobody", "leaseDurationSeconds": 30}}
    )
    version = lease.metadata.resource_version
    lease.spec.holder_identity = "run-a"
    taken = kube.coordination.replace_namespaced_lease("shop-lock", "default", lease)
    assert taken.spec.holder_identity == "run-a" and taken.metadata.resource_version != version
    lease.spec.holder_identity = "run-b"  # run b read the same version: its update must lose
    with pytest.raises(ApiException) as stale:
        kube.coordination.replace_namespaced_lease("shop-lock", "default", lease)
    assert stale.value.status == 409 and json.loads(stale.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as stale_patch:
        kube.coordination.patch_namespaced_lease(
            "shop-lock", "default", {"metadata": {"resourceVersion": version}, "spec": {"holderIdentity": "run-b"}}
        )
    assert stale_patch.value.status == 409
    assert kube.coordination.read_namespaced_lease("shop-lock", "default").spec.holder_identity == "run-a"
    unchanged = kube.coordination.replace_namespaced_lease("shop-lock", "default", taken)
    assert unchanged.metadata.resource_version == taken.metadata.resource_version  # a write that changes nothing


def test_patches_selectors_dry_run_and_watch(kube):
    body = deployment("patchme", "blue", "registry/shop:v1", replicas=0)
    body["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "registry/proxy:1"})
    created = kube.apps.create_namespaced_deployment("default", body)
    assert created.metadata.generation == 1
    watcher = watch.Watch()
    events = watcher.stream(
        kube.apps.list_namespaced_deployment, "default", resource_version=created.metadata.resource_version, timeout_seconds=10
    )
    patched = kube.apps.patch_namespaced_deployment(  # the client sends a strategic merge patch: containers by name
        "patchme", "default", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry/shop:v2"}]}}}}
    )
    assert [(c.name, c.image) for c in patched.spec.template.spec.containers] == [
        ("web", "registry/shop:v2"),
        ("sidecar", "registry/proxy:1"),
    ]
    assert patched.metadata.generation == 2
    seen = next(
        e for e in events if e["type"] == "MODIFIED" and e["object"].metadata.generation == 2
    )  # after the controller's status writes
    assert seen["object"].spec.template.spec.containers[0].image == "registry/shop:v2"
    watcher.stop()
    kube.apps.patch_namespaced_deployment(
        "patchme", "default", [{"op": "replace", "path": "/metadata/labels", "value": {"app": "shop", "team": "checkout"}}]
    )
    assert [
        d.metadata.name for d in kube.apps.list_namespaced_deployment("default", label_selector="team in (checkout),app=shop").items
    ] == ["patchme"]
    assert kube.apps.list_namespaced_deployment("default", label_selector="team!=checkout,app=shop").items == []
    kube.core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    with pytest.raises(ApiException):
        kube.core.read_namespaced_config_map("dry", "default")
    kube.apps.delete_namespaced_deployment("patchme", "default")


def test_kubernetes_core_modules_create_patch_read_and_scale(kube):
    definition = deployment("core", "green", "registry/shop:v1", replicas=1)
    definition["metadata"]["namespace"] = "default"
    switch = {
        "kind": "Service",
        "name": "core",
        "namespace": "default",
        "state": "patched",
        "definition": {"spec": {"selector": {"slot": "green"}}},
    }
    kube.core.create_namespaced_service("default", service("core", {"app": "shop", "slot": "blue"}))
    tasks = [  # each module task costs seconds (it imports the client): few, but every module and mode
        {"name": "create", "kubernetes.core.k8s": {"definition": definition, "wait": True, "wait_sleep": 1, "wait_timeout": 60}},
        {"name": "create again", "kubernetes.core.k8s": {"definition": definition}},
        {"name": "switch in check mode", "kubernetes.core.k8s": switch, "check_mode": True},
        {"name": "switch", "kubernetes.core.k8s": switch},
        {
            "name": "scale",
            "kubernetes.core.k8s_scale": {"kind": "Deployment", "name": "core", "namespace": "default", "replicas": 3}
            | {"wait_sleep": 1, "wait_timeout": 60},
        },
        {
            "name": "pods",
            "kubernetes.core.k8s_info": {
                "kind": "Pod",
                "namespace": "default",
                "label_selectors": ["app=shop", "slot in (green)"],
                "field_selectors": ["status.phase=Running"],
            },
        },
    ]
    play = {"hosts": "localhost", "gather_facts": False, "tasks": [dict(task, ignore_errors=True) for task in tasks]}
    document = run_playbook([play], "http://127.0.0.1:9", KUBECONFIG=kube.sandbox.kubeconfig)
    results = {task["task"]["name"]: task["hosts"]["localhost"] for task in document["plays"][0]["tasks"]}
    assert not [name for name, result in results.items() if result.get("failed")], results
    assert results["create"]["changed"] and not results["create again"]["changed"]
    assert results["switch in check mode"]["changed"]
    assert results["switch in check mode"]["result"]["spec"]["selector"] == {"app": "shop", "slot": "green"}  # the server's dry run
    # the real switch still changes something: check mode left the Service as it was
    assert results["switch"]["changed"] and results["switch"]["result"]["spec"]["selector"] == {"app": "shop", "slot": "green"}
    assert results["scale"]["changed"] and results["scale"]["result"]["status"]["readyReplicas"] == 3
    pods = results["pods"]["resources"]
    assert len(pods) == 3 and {p["metadata"]["labels"]["slot"] for p in pods} == {"green"}
    assert ready_addresses(kube, "core") == sorted(p["status"]["podIP"] for p in pods)

    # a Deployment at 3 replicas runs 3 ready pods, and its Service answers from each of them
    url = control.wait_service(kube.endpoint, "default", "core", endpoints=3)
    answered = {_get(url + "/")["instance_id"] for _ in range(12)}
    assert answered == {p["metadata"]["name"] for p in pods}
    pids = {
        c["pid"]
        for name, pod in control.state(kube.endpoint)["pods"].items()
        if name.startswith("default/core-")
        for c in pod["containers"].values()
    }
    assert len(pids) == 3 and None not in pids


def test_a_pod_failing_readiness_leaves_the_endpoints(kube):
    kube.apps.create_namespaced_deployment("default", deployment("ready", "blue", "registry/ready:v1", replicas=2, app="ready"))
    kube.core.create_namespaced_service("default", service("ready", {"app": "ready"}))
    wait_for("two ready endpoints", lambda: len(ready_addresses(kube, "ready")) == 2)
    pods = kube.core.list_namespaced_pod("default", label_selector="app=ready").items
    sick, healthy = pods
    control.pod(kube.endpoint, "default", sick.metadata.name, "settings", fail_health=True)
    wait_for("the failing pod to leave the endpoints", lambda: ready_addresses(kube, "ready") == [healthy.status.pod_ip], timeout=20)
    endpoints = kube.core.read_namespaced_endpoints("ready", "default")
    assert [a.ip for s in endpoints.subsets for a in s.not_ready_addresses or []] == [sick.status.pod_ip]
    slices = kube.discovery.list_namespaced_endpoint_slice("default", label_selector="kubernetes.io/service-name=ready").items
    conditions = {e.addresses[0]: e.conditions.ready for e in slices[0].endpoints}
    assert conditions == {sick.status.pod_ip: False, healthy.status.pod_ip: True}
    pod = kube.core.read_namespaced_pod(sick.metadata.name, "default")
    assert pod.status.phase == "Running"
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready.status == "False" and ready.reason == "ContainersNotReady"
    events = kube.core.list_namespaced_event("default", field_selector=f"involvedObject.name={sick.metadata.name},reason=Unhealthy").items
    assert any("Readiness probe failed: HTTP probe failed with statuscode: 500" in e.message for e in events)
    url = control.wait_service(kube.endpoint, "default", "ready")
    wait_for(
        "the proxy to drop the failing pod",
        lambda: len(control.state(kube.endpoint)["services"]["default/ready"]["ports"]["80"]["endpoints"]) == 1,
    )
    assert {_get(url + "/")["instance_id"] for _ in range(6)} == {healthy.metadata.name}
    deployment_status = kube.apps.read_namespaced_deployment("ready", "default").status
    assert (deployment_status.ready_replicas, deployment_status.unavailable_replicas) == (1, 1)


def test_a_rolling_update_reports_progress_as_kubernetes_does(kube):
    kube.apps.create_namespaced_deployment("default", deployment("roll", "blue", "registry/roll:v1", replicas=2, app="roll", pre_stop=None))
    first = wait_for("the first rollout", rolled_out(kube, "roll"))
    assert first.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    kube.apps.patch_namespaced_deployment(
        "roll", "default", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry/roll:v2"}]}}}}
    )
    done = wait_for("the second rollout", rolled_out(kube, "roll"), timeout=60)
    assert done.status.observed_generation == 2 and done.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    progressing = next(c for c in done.status.conditions if c.type == "Progressing")
    assert progressing.status == "True" and progressing.reason == "NewReplicaSetAvailable"
    sets = {
        rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs
        for rs in kube.apps.list_namespaced_replica_set("default", label_selector="app=roll").items
    }
    assert sets["2"].spec.replicas == 2 and sets["1"].spec.replicas == 0
    assert sets["2"].metadata.name == f"roll-{sets['2'].metadata.labels['pod-template-hash']}"
    pods = wait_for(
        "the old pods to go",
        lambda: (
            [p for p in kube.core.list_namespaced_pod("default", label_selector="app=roll").items if p.metadata.deletion_timestamp is None]
            or None
        ),
    )
    wait_for(
        "only v2 pods",
        lambda: (
            {c.image for p in kube.core.list_namespaced_pod("default", label_selector="app=roll").items for c in p.spec.containers}
            == {"registry/roll:v2"}
        ),
    )
    assert all(p.metadata.owner_references[0].name == sets["2"].metadata.name for p in pods if p.spec.containers[0].image.endswith("v2"))
    scale = kube.apps.read_namespaced_deployment_scale("roll", "default")
    assert (scale.spec.replicas, scale.status.selector) == (2, "app=roll,slot=blue")


def test_failing_pods_show_kubernetes_reasons(kube):
    control.image(kube.endpoint, "registry/broken:missing", pull_error=True)
    kube.apps.create_namespaced_deployment(
        "default", deployment("crash", "blue", "registry/crash:v1", replicas=1, app="crash", env={"SANDBOX_CRASH": "true"})
    )
    kube.apps.create_namespaced_deployment("default", deployment("pull", "blue", "registry/broken:missing", replicas=1, app="pull"))
    kube.apps.create_namespaced_deployment(
        "default", deployment("big", "blue", "registry/big:v1", replicas=1, app="big", resources={"requests": {"cpu": "100"}})
    )

    def waiting(app: str) -> str | None:
        pods = kube.core.list_namespaced_pod("default", label_selector=f"app={app}").items
        statuses = pods[0].status.container_statuses if pods else None
        return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None

    wait_for("CrashLoopBackOff", lambda: waiting("crash") == "CrashLoopBackOff", timeout=20)
    crashed = kube.core.list_namespaced_pod("default", label_selector="app=crash").items[0].status.container_statuses[0]
    assert crashed.restart_count >= 1 and crashed.last_state.terminated.exit_code == 1
    wait_for("ImagePullBackOff", lambda: waiting("pull") == "ImagePullBackOff", timeout=20)
    pending = wait_for("an unschedulable pod", lambda: kube.core.list_namespaced_pod("default", label_selector="app=big").items)[0]
    scheduled = wait_for(
        "PodScheduled=False",
        lambda: next(
            (
                c
                for c in kube.core.read_namespaced_pod(pending.metadata.name, "default").status.conditions or []
                if c.type == "PodScheduled"
            ),
            None,
        ),
    )
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable") and "Insufficient cpu" in scheduled.message
    assert kube.core.read_namespaced_pod(pending.metadata.name, "default").status.phase == "Pending"
    available = next(c for c in kube.apps.read_namespaced_deployment("crash", "default").status.conditions if c.type == "Available")
    assert (available.status, available.reason) == ("False", "MinimumReplicasUnavailable")


def test_pulumi_kubernetes_objects_provision_into_the_sandbox(kube):
    result = cli("--dir", kube.sandbox.state_dir, "provision", "--kubernetes", "--program", str(PROGRAM), timeout=180)
    outputs = json.loads((Path(kube.sandbox.state_dir) / "kubernetes-outputs.json").read_text())
    assert outputs["namespace"] == "fixture" and outputs["available_replicas"] == 2, result.stdout
    assert re.fullmatch(r"web-blue-[a-z0-9]{8}", outputs["deployment"]) and outputs["deployment_id"] == f"fixture/{outputs['deployment']}"
    assert outputs["cluster_ip"].startswith("10.96.")
    assert len(ready_addresses(kube, "web", "fixture")) == 2
    assert ready_addresses(kube, "web-preview", "fixture") == []  # created without waiting for endpoints (skipAwait)
    budget = kube.policy.read_namespaced_pod_disruption_budget(outputs["budget"], "fixture").status
    assert (budget.expected_pods, budget.current_healthy, budget.desired_healthy, budget.disruptions_allowed) == (2, 2, 1, 1)
    url = control.wait_service(kube.endpoint, "fixture", "web", endpoints=2)
    assert _get(url + "/")["version"] == "v7"
    # the API server's service proxy reaches the same pods
    proxied = _get(f"{kube.endpoint}/api/v1/namespaces/fixture/services/web:http/proxy/")
    assert proxied["service"] == "web" and proxied["color"] == "blue"


def test_a_client_configured_from_the_environment_finds_it(kube):
    """What ``eval "$(python -m sandbox env)"`` gives a user: the default client loader finds the sandbox."""
    environment = cli("--dir", kube.sandbox.state_dir, "env").stdout
    variables = dict(line.removeprefix("export ").split("=", 1) for line in environment.splitlines())
    program = (
        "from kubernetes import client, config; config.load_kube_config(); "
        "print(sorted(n.metadata.name for n in client.CoreV1Api().list_namespace().items))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], env={**os.environ, **variables}, capture_output=True, text=True, timeout=60, check=True
    )
    assert "'default'" in result.stdout and "'kube-system'" in result.stdout
