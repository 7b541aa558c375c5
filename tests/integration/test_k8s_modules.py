"""The Kubernetes modules of the collection through real ansible-playbook runs against the Kubernetes sandbox.

One sandbox for the file, provisioned from infra/kubernetes (Pulumi.sandbox.yaml) the way a
user provisions it (``python -m sandbox provision --kubernetes``). Each module task costs a
second or two (the client's import), so each test runs several tasks in one playbook.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest
import yaml
from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_api, k8s_lease
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError

from sandbox import server as aws_server
from sandbox.k8s import control, server

from .ansible_harness import ANSIBLE_PLAYBOOK, ansible_env, json_document, run_playbook
from .conftest import cli
from .k8s_harness import connect, ready_addresses, wait_for

NS = "shop"
V1, V2 = "registry.local/shop:v1", "registry.local/shop:v2"
A, B = "run-alice-0001", "run-bob-00002"


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    """The Kubernetes sandbox with the app shop provisioned from infra/kubernetes: blue live at 2 pods, green at 0."""
    directory = tmp_path_factory.mktemp("k8s-modules")
    running = server.start(port=0, directory=directory)
    cli("--dir", str(directory), "provision", "--kubernetes", timeout=180)
    client = connect(running)
    wait_for("blue to serve", lambda: len(ready_addresses(client, "shop", NS)) == 2)
    yield client
    server.stop(directory)
    assert aws_server.group_members(running.pid) == []


def play(tasks):
    """Every task of ours, with the namespace given once for the action group; failures do not stop the play."""
    return {
        "hosts": "localhost",
        "gather_facts": False,
        "module_defaults": {"group/cutover.bluegreen.k8s": {"namespace": NS}},
        "tasks": [dict(task, ignore_errors=True) for task in tasks],
    }


def run(kube, tasks, extra=()):
    """Run the tasks in one playbook; their results by task name."""
    document = run_playbook([play(tasks)], "http://127.0.0.1:9", tuple(extra), KUBECONFIG=kube.sandbox.kubeconfig)
    return {task["task"]["name"]: task["hosts"]["localhost"] for task in document["plays"][0]["tasks"]}


def task(name, module, check=False, diff=False, register=None, **args):
    entry = {"name": name, f"cutover.bluegreen.{module}": {"app": "shop", **args}}
    if check:
        entry["check_mode"] = True
    if diff:
        entry["diff"] = True
    if register:
        entry["register"] = register
    return entry


def failed(result, *texts):
    assert result.get("failed"), result
    for text in texts:
        assert text in result["msg"], result["msg"]
    return result


def ok(result):
    assert not result.get("failed"), result.get("msg")
    return result


def selectors(kube):
    return {s.metadata.name: s.spec.selector for s in kube.core.list_namespaced_service(NS).items}


def endpoint_colors(kube, service):
    """The colour of every pod in the Service's EndpointSlices, and how many are ready."""
    pods = {p.metadata.name: p.metadata.labels.get("slot") for p in kube.core.list_namespaced_pod(NS).items}
    colors, ready = set(), 0
    for piece in kube.discovery.list_namespaced_endpoint_slice(NS, label_selector=f"kubernetes.io/service-name={service}").items:
        for endpoint in piece.endpoints or []:
            colors.add(pods.get(endpoint.target_ref.name, "gone"))
            ready += bool(endpoint.conditions.ready)
    return colors, ready


def deployment_state(kube, color):
    found = kube.apps.read_namespaced_deployment(f"shop-{color}", NS)
    annotations = {k: v for k, v in (found.metadata.annotations or {}).items() if k.startswith("cutover.bluegreen/")}
    return found.spec.replicas, found.spec.template.spec.containers[0].image, annotations


def journal(kube):
    found = kube.core.read_namespaced_config_map("shop-cutover-journal", NS)
    return {key: json.loads(value) for key, value in (found.data or {}).items()}


# -- lock and journal ----------------------------------------------------------------------------------------
def test_the_lock_journal_fencing_and_refusals(kube):
    opened = "{{ opened.deployment_id }}"
    results = run(
        kube,
        [
            task("info", "k8s_pair_info"),
            task("rollback to a colour that never served", "k8s_rollback", owner="alice", token=A),
            task("a token too short", "k8s_lock", owner="alice", token="short"),
            task("open in check mode", "k8s_journal", check=True, diff=True, state="started", lock="acquire", owner="alice", token=A),
            task(
                "open",
                "k8s_journal",
                register="opened",
                state="started",
                lock="acquire",
                owner="alice",
                token=A,
                purpose="deploy v2",
                record={"to_image": V2},
            ),
            task(
                "open again",
                "k8s_journal",
                state="started",
                deployment_id=opened,
                lock="acquire",
                owner="alice",
                token=A,
                purpose="deploy v2",
            ),
            task("step", "k8s_journal", state="step", deployment_id=opened, step="rollout", status="started"),
            task("bob is refused", "k8s_lock", owner="bob", token=B, purpose="deploy v3"),
            task("bob's takeover in check mode", "k8s_lock", check=True, diff=True, owner="bob", token=B, takeover=A),
            task("bob's rollout is fenced", "k8s_rollout", image=V2, lease={"token": B, "lease_seconds": 60}),
            task("bob takes over by name", "k8s_journal", state="started", lock="acquire", owner="bob", token=B, takeover="alice"),
            task(
                "alice cannot close any more",
                "k8s_journal",
                state="finished",
                deployment_id=opened,
                outcome="failed",
                lock="release",
                token=A,
            ),
            task("bob checks", "k8s_lock", state="checked", token=B),
            task("bob releases", "k8s_lock", state="released", token=B, diff=True),
            task("bob releases again", "k8s_lock", state="released", token=B),
        ],
    )
    info = ok(results["info"])
    assert (info["pair"]["live_color"], info["active_color"], info["lock"], info["deployments"]) == ("blue", "blue", None, [])
    assert info["pair"]["colors"]["blue"]["ready_pods"] == 2 and info["pair"]["services"] == {"blue": ["shop"], "green": []}
    failed(results["rollback to a colour that never served"], "nothing to roll back to for app shop: green", "Nothing was changed")
    failed(results["a token too short"], "token must name one run: 8 to 128")

    checked = ok(results["open in check mode"])
    assert checked["changed"] and checked["lock"]["owner"] == "alice" and checked["diff"]["after"]["outcome"] == "in_progress"
    opened_result = ok(results["open"])
    deployment_id = opened_result["deployment_id"]
    assert opened_result["changed"] and opened_result["lock"]["deployment_id"] == deployment_id
    assert not ok(results["open again"])["changed"]

    refused = failed(results["bob is refused"], "app shop is locked by alice (deploy v2) since ", "until", f"takeover={A}")
    assert refused["holder"] == "alice" and refused["lock"]["purpose"] == "deploy v2"
    checked_takeover = ok(results["bob's takeover in check mode"])
    assert checked_takeover["operation"] == "take_over_named" and checked_takeover["diff"]["before"]["owner"] == "alice"
    assert checked_takeover["diff"]["after"]["owner"] == "bob"
    failed(results["bob's rollout is fenced"], "lost the lock", "now held by alice", "patching Deployment shop-green")
    assert deployment_state(kube, "green")[:2] == (0, V1)  # fenced before its patch

    taken = ok(results["bob takes over by name"])
    assert taken["lock"]["owner"] == "bob" and taken["settled"]["action"] == "interrupt"
    failed(results["alice cannot close any more"], "lost the lock", "held by bob")
    assert ok(results["bob checks"])["lock"]["token"] == B
    released = ok(results["bob releases"])
    assert released["changed"] and released["diff"]["before"]["owner"] == "bob" and released["diff"]["after"] == {}
    assert not ok(results["bob releases again"])["changed"]

    entries = journal(kube)
    assert entries[deployment_id]["outcome"] == "interrupted"
    assert entries[deployment_id]["summary"].startswith("interrupted: its run alice stopped; bob took the lock from it by name")
    assert entries[deployment_id]["steps"]["rollout"]["status"] == "started"
    assert entries[taken["deployment_id"]]["record"]["took_over"]["owner"] == "alice"
    lease = kube.coordination.read_namespaced_lease("shop-cutover-lock", NS)
    assert lease.spec.holder_identity is None and lease.spec.lease_transitions == 1
    assert [t["reason"] for t in json.loads(lease.metadata.annotations["cutover.bluegreen/takeovers"])] == ["named"]


def test_two_concurrent_lock_holders_one_is_refused(kube, tmp_path):
    """Two runs start at once; the API server's resourceVersion check lets exactly one of them hold the Lease."""
    processes = []
    for owner, token in (("carol", "run-carol-003"), ("dave", "run-dave-0004")):
        path = tmp_path / f"{owner}.yml"
        path.write_text(yaml.safe_dump([play([task("lock", "k8s_lock", owner=owner, token=token, lease_seconds=30)])]))
        processes.append(
            subprocess.Popen(
                [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(path)],
                env=ansible_env("http://127.0.0.1:9", KUBECONFIG=kube.sandbox.kubeconfig),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outcomes = {}
    for owner, process in zip(("carol", "dave"), processes, strict=True):
        stdout, _ = process.communicate(timeout=120)
        outcomes[owner] = json_document(stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    winners = [owner for owner, result in outcomes.items() if not result.get("failed")]
    assert len(winners) == 1, outcomes
    (loser,) = set(outcomes) - set(winners)
    failed(outcomes[loser], f"app shop is locked by {winners[0]}")
    lease = kube.coordination.read_namespaced_lease("shop-cutover-lock", NS)
    assert lease.metadata.annotations["cutover.bluegreen/owner"] == winners[0]
    # the winner lets go (its own token only)
    token = "run-carol-003" if winners[0] == "carol" else "run-dave-0004"
    assert ok(run(kube, [task("release", "k8s_lock", state="released", token=token)])["release"])["changed"]


def test_a_run_that_lost_a_race_for_the_lease_reads_again_and_is_refused(kube):
    """The library against the sandbox's API server: another run writes the Lease between this run's read and its
    write, the API server refuses the stale update (409), and this run reads again and finds the lease taken."""
    api = k8s_api.Kube(kube.api)
    k8s_lease.acquire(api, "shop", NS, "setup", "run-setup-000", 30)  # the Lease exists and is free: a write is an update
    k8s_lease.release(api, "shop", NS, "run-setup-000")

    class Interleaved(k8s_api.Kube):
        raced = False

        def call(self, verb, *args, **kwargs):
            if verb in ("create", "update") and not self.raced:
                self.raced = True
                k8s_lease.acquire(api, "shop", NS, "frank", "run-frank-006", 30)  # the other run gets in first
            return super().call(verb, *args, **kwargs)

    loser = Interleaved(kube.api)
    with pytest.raises(CutoverError, match="app shop is locked by frank"):
        k8s_lease.acquire(loser, "shop", NS, "grace", "run-grace-007", 30)
    writes = [verb for verb, resource in loser.calls if resource == "coordination.k8s.io/leases" and verb in ("create", "update")]
    assert writes == ["update"]  # its one write, refused
    assert kube.coordination.read_namespaced_lease("shop-cutover-lock", NS).spec.holder_identity == "run-frank-006"
    assert k8s_lease.release(api, "shop", NS, "run-frank-006")["changed"]


# -- a release that must not go live -----------------------------------------------------------------------------
def test_a_release_whose_pods_fail_readiness_is_never_switched_to(kube):
    control.image(kube.endpoint, "registry.local/shop:sick", fail_health=True)
    control.image(kube.endpoint, "registry.local/shop:crash", crash=True)
    started = time.monotonic()
    results = run(
        kube,
        [
            task("sick release", "k8s_rollout", image="registry.local/shop:sick", unhealthy_timeout=3, wait_timeout=60),
            task("switch to it", "k8s_switch", to_color="green"),
            task("switch to it in check mode", "k8s_switch", check=True),
            task("crashing release", "k8s_rollout", image="registry.local/shop:crash", unhealthy_timeout=300, wait_timeout=120),
            task("switch to that", "k8s_switch"),
            task("back to zero", "k8s_rollout", image=V1, replicas=0),
        ],
    )
    elapsed = time.monotonic() - started
    sick = failed(results["sick release"], "the rollout of shop/shop-green failed", "ReadinessProbeFailed", "statuscode: 500")
    assert sick["pods"] and all(p["reason"] == "ReadinessProbeFailed" for p in sick["pods"])
    failed(results["switch to it"], "refusing to switch app shop to green: it has 0 Ready pod(s), 2 required", "Nothing was switched")
    failed(results["switch to it in check mode"], "refusing to switch app shop to green")
    crash = failed(results["crashing release"], "CrashLoopBackOff")
    assert all(p["fatal"] for p in crash["pods"])
    failed(results["switch to that"], "refusing to switch")
    assert elapsed < 150, "a crash loop fails at once, not after unhealthy_timeout (300 s)"
    ok(results["back to zero"])
    assert selectors(kube)["shop"] == {"app": "shop", "slot": "blue"}
    assert endpoint_colors(kube, "shop") == ({"blue"}, 2)
    assert deployment_state(kube, "blue") == (2, V1, {})
    assert kube.core.read_namespaced_config_map("shop-active-color", NS).data["color"] == "blue"


# -- a release, its switch, teardown and rollback -------------------------------------------------------------------
@pytest.fixture(scope="module")
def released(kube):
    """v2 rolled out on green and switched to, with a Service a user added that also selected blue."""
    internal = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "shop-internal"},
        "spec": {"selector": {"app": "shop", "slot": "blue"}, "ports": [{"name": "admin", "port": 8081, "targetPort": "http"}]},
    }
    other = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "cart"},
        "spec": {"selector": {"app": "cart", "slot": "blue"}, "ports": [{"port": 80}]},
    }
    kube.core.create_namespaced_service(NS, internal)
    kube.core.create_namespaced_service(NS, other)
    wait_for("the internal Service's endpoints", lambda: endpoint_colors(kube, "shop-internal") == ({"blue"}, 2))
    green_before = deployment_state(kube, "green")
    results = run(
        kube,
        [
            task("rollout in check mode", "k8s_rollout", check=True, diff=True, image=V2, preparation_replicas=1),
            task("rollout", "k8s_rollout", image=V2, preparation_replicas=1),
            task("rollout again", "k8s_rollout", image=V2, preparation_replicas=1),
            task("switch in check mode", "k8s_switch", check=True, diff=True, standby_ttl="30m"),
            task("switch", "k8s_switch", diff=True, standby_ttl="30m"),
            task("switch again", "k8s_switch", to_color="green", standby_ttl="30m"),
            task("info", "k8s_pair_info"),
            task("an image that is none", "k8s_rollout", image="Not An Image!"),
            task("negative replicas", "k8s_rollout", image=V2, replicas=-1),
            task("no ready pods required", "k8s_switch", min_ready=0),
            task("a colour that is none", "k8s_teardown", colors=["purple"], force=True),
            task("a ttl that is none", "k8s_switch", standby_ttl="soon"),
            task("an app name that is none", "k8s_switch", app="Shop_App"),
        ],
    )
    return results, green_before


def test_rollout_and_switch_check_mode_diff_and_idempotency(kube, released):
    results, green_before = released
    checked = ok(results["rollout in check mode"])
    assert checked["changed"] and checked["diff"] == {
        "before": {"image": V1, "replicas": 0, "annotations": {}},
        "after": {"image": V2, "replicas": 2, "annotations": {}},
    }
    assert green_before[:2] == (0, V1)
    rolled = ok(results["rollout"])
    assert rolled["before"] == checked["before"]  # the check-mode run changed nothing
    assert [step["replicas"] for step in rolled["rollout"]["steps"]] == [1, 2]
    again = ok(results["rollout again"])
    assert not again["changed"] and again["rollout"]["steps"] == []

    switch_check = ok(results["switch in check mode"])
    switched = ok(results["switch"])
    assert switch_check["changed"] and switch_check["switch"] is None and switch_check["verify"] is None
    assert switch_check["changes"] == switched["changes"]  # nothing moved in check mode
    assert switched["diff"]["before"] == {
        "shop": {"app": "shop", "slot": "blue"},
        "shop-internal": {"app": "shop", "slot": "blue"},
        "shop-preview": {"app": "shop", "slot": "green"},
    }
    assert [(c["service"], c["role"]) for c in switched["changes"]] == [
        ("shop", "live"),
        ("shop-internal", "production"),
        ("shop-preview", "preview"),
    ]
    assert switched["guard"] == {"ready": 2, "required": 2} and switched["verify"]["services"] == ["shop", "shop-internal"]
    assert switched["standby"]["color"] == "blue" and switched["active_color"]["after"] == "green"
    assert not ok(results["switch again"])["changed"]


def test_the_switch_moves_every_service_selecting_the_old_colour(kube, released):
    assert selectors(kube) == {
        "shop": {"app": "shop", "slot": "green"},
        "shop-internal": {"app": "shop", "slot": "green"},
        "shop-preview": {"app": "shop", "slot": "blue"},
        "cart": {"app": "cart", "slot": "blue"},
    }
    for service in ("shop", "shop-internal"):
        assert endpoint_colors(kube, service) == ({"green"}, 2)
    url = control.wait_service(kube.endpoint, NS, "shop-internal", endpoints=2)
    with urllib.request.urlopen(url + "/", timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["version"] == "v2" and answer["color"] == "green"
    replicas, image, annotations = deployment_state(kube, "blue")
    assert (replicas, image, annotations["cutover.bluegreen/state"]) == (2, V1, "standby")
    assert kube.core.read_namespaced_config_map("shop-active-color", NS).data["color"] == "green"
    info = ok(released[0]["info"])
    assert (info["pair"]["live_color"], info["pair"]["services"]["green"]) == ("green", ["shop", "shop-internal"])


def test_bad_input_is_refused_before_anything_changes(kube, released):
    results = released[0]
    failed(results["an image that is none"], "image 'Not An Image!' is not a container image reference")
    failed(results["negative replicas"], "replicas must be a whole number from 0 to 1000, got -1")
    failed(results["no ready pods required"], "min_ready must be a whole number from 1 to 1000, got 0")
    failed(results["a colour that is none"], "colors may name blue, green or idle, got 'purple'")
    failed(results["a ttl that is none"], "standby_ttl: ttl 'soon' is not a number of seconds")
    failed(results["an app name that is none"], "app 'Shop_App' is not a valid app name")
    assert deployment_state(kube, "green")[:2] == (2, V2) and deployment_state(kube, "blue")[0] == 2


def test_the_smoke_test_reaches_the_idle_colour_through_the_api_servers_proxy_and_changes_nothing(kube, released):
    before = selectors(kube), deployment_state(kube, "blue"), deployment_state(kube, "green")
    results = run(
        kube,
        [
            task("smoke test", "k8s_smoke_test", path="/", expect="v1"),
            task("smoke test in check mode", "k8s_smoke_test", check=True, diff=True, expect="blue"),
            task("smoke test of the live colour", "k8s_smoke_test", color="green"),
            task("a smoke test that never passes", "k8s_smoke_test", expect="v9", retries=1, delay=0),
            task("a status that is none", "k8s_smoke_test", status=[700]),
            task("heartbeat in check mode", "k8s_lock", check=True, state="held", token=A, controller={"pid": 1}),
        ],
    )
    smoke = ok(results["smoke test"])
    assert (smoke["status"], smoke["color"], smoke["service"], smoke["changed"]) == (200, "blue", "shop-preview", False)
    assert json.loads(smoke["content"])["version"] == "v1"  # blue, the standby the preview Service selects
    assert ok(results["smoke test in check mode"])["status"] == 200  # it only reads: the same in check mode
    failed(
        results["smoke test of the live colour"], "the preview Service shop/shop-preview selects blue, not green", "Nothing was requested"
    )
    failed(results["a smoke test that never passes"], "answered 200 without 'v9' in its body", "after 2 attempt(s)")
    failed(results["a status that is none"], "status must be a non-empty list of HTTP statuses from 100 to 599")
    held = ok(results["heartbeat in check mode"])
    assert held["held"] is None and not held["changed"]
    assert (selectors(kube), deployment_state(kube, "blue"), deployment_state(kube, "green")) == before


def test_teardown_never_touches_the_live_colour_and_rollback_brings_the_retired_one_back(kube, released):
    # What a switch killed between marking the old colour and moving traffic leaves: the live colour marked standby,
    # its retire-after time past. It is live all the same.
    expired = {"cutover.bluegreen/state": "standby", "cutover.bluegreen/retire-after": "2026-01-01T00:00:00Z"}
    kube.apps.patch_namespaced_deployment("shop-green", NS, {"metadata": {"annotations": expired}})
    results = run(
        kube,
        [
            task("teardown of the live colour", "k8s_teardown", colors=["green"], force=True),
            task("teardown before the TTL", "k8s_teardown"),
            task("teardown in check mode, forced", "k8s_teardown", check=True, diff=True, force=True),
            task("teardown, forced", "k8s_teardown", force=True),
            task("teardown again", "k8s_teardown", force=True),
            task("rollback in check mode", "k8s_rollback", check=True, diff=True, owner="erin", token="run-erin-0005"),
            task("rollback", "k8s_rollback", owner="erin", token="run-erin-0005", standby_ttl="1h"),
            task("rollback again", "k8s_rollback", owner="erin", token="run-erin-0005", to="blue"),
        ],
    )
    live_only = ok(results["teardown of the live colour"])
    assert not live_only["changed"] and live_only["decisions"][0]["reason"].startswith("green is the live colour; it is never torn down")
    early = ok(results["teardown before the TTL"])
    assert not early["changed"] and "blue is a standby until" in early["decisions"][0]["reason"]
    assert early["decisions"][1]["reason"] == "green is the live colour; it is never torn down, even with force"
    checked = ok(results["teardown in check mode, forced"])
    assert checked["changed"] and checked["diff"] == {
        "before": {"blue": {"replicas": 2, "state": "standby"}},
        "after": {"blue": {"replicas": 0, "state": "retired"}},
    }
    torn = ok(results["teardown, forced"])
    assert [t["color"] for t in torn["torn_down"]] == ["blue"] and torn["torn_down"][0]["pods_left"] == 0
    assert [d["action"] for d in torn["decisions"]] == ["teardown", "skip"]
    assert not ok(results["teardown again"])["changed"]

    rollback_check = ok(results["rollback in check mode"])
    assert rollback_check["changed"] and rollback_check["restored"] == {"color": "blue", "replicas": 2, "scaled": True}
    assert rollback_check["diff"] == {"before": {"live_color": "green"}, "after": {"live_color": "blue", "replicas": {"blue": 2}}}
    rolled_back = ok(results["rollback"])
    assert rolled_back["restored"]["scaled"] and rolled_back["to_color"] == "blue"
    assert rolled_back["switch"]["standby"]["color"] == "green"
    again = ok(results["rollback again"])
    assert not again["changed"] and again["message"] == "blue is already live; nothing to roll back"

    assert selectors(kube)["shop"] == selectors(kube)["shop-internal"] == {"app": "shop", "slot": "blue"}
    for service in ("shop", "shop-internal"):
        assert endpoint_colors(kube, service) == ({"blue"}, 2)
    assert deployment_state(kube, "blue") == (2, V1, {})
    marks = deployment_state(kube, "green")[2]
    assert marks["cutover.bluegreen/state"] == "standby"
    assert marks["cutover.bluegreen/retire-after"] == rolled_back["switch"]["standby"]["retire_after"] > "2026-01-01T00:00:00Z"  # a new TTL
    entry = journal(kube)[rolled_back["deployment_id"]]
    assert (entry["outcome"], entry["record"]["kind"], entry["record"]["to_color"]) == ("succeeded", "rollback", "blue")
    assert kube.coordination.read_namespaced_lease("shop-cutover-lock", NS).spec.holder_identity is None
