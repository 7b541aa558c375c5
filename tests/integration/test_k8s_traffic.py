"""Services of the Kubernetes sandbox carry real traffic: a selector switch under load loses nothing, and losses are seen.

The load loop (sandbox/load.py) sends ~200 requests/s through a Service's loopback
port, a new connection per request (a Service balances connections, as kube-proxy
does), and counts every failure. The negative controls show that the same loop
sees a pod killed without termination and a pod that stops without a preStop
hook while its endpoint is still routed.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from sandbox import server as aws_server
from sandbox import timeline
from sandbox.k8s import control, server
from sandbox.load import LoadLoop, summarize

from .k8s_harness import connect, deployment, ready_addresses, rolled_out, service, wait_for

RATE = 200


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """Blue (v1) and green (v2), 3 ready pods each, the Service ``shop`` selecting blue."""
    directory = tmp_path_factory.mktemp("k8s-traffic")
    running = server.start(port=0, directory=directory)
    kube = connect(running)
    for slot, version in (("blue", "v1"), ("green", "v2")):
        kube.apps.create_namespaced_deployment("default", deployment(f"shop-{slot}", slot, f"registry/shop:{version}", replicas=3))
    kube.core.create_namespaced_service("default", service("shop", {"app": "shop", "slot": "blue"}))
    for slot in ("blue", "green"):
        wait_for(f"shop-{slot} to roll out", rolled_out(kube, f"shop-{slot}"))
    url = control.wait_service(running.endpoint, "default", "shop", endpoints=3)
    yield kube, url
    server.stop(directory)
    assert aws_server.group_members(running.pid) == []


def _long_request(url: str, seconds: float, answers: list) -> threading.Thread:
    def run() -> None:
        try:
            with urllib.request.urlopen(f"{url}/slow?seconds={seconds}", timeout=seconds + 20) as response:
                answers.append((response.status, json.loads(response.read())["color"]))
        except OSError as exc:
            answers.append((0, f"{type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_selector_patch_under_load_loses_no_request_and_long_requests_on_the_old_pods_complete(shop, tmp_path):
    kube, url = shop
    long_answers: list = []
    with LoadLoop(url, rate=RATE, threads=8, max_seconds=60, keep_alive=False) as load:
        time.sleep(2)
        long_ones = [_long_request(url, 8, long_answers) for _ in range(3)]  # they outlast the preStop sleep: SIGTERM finds them in flight
        time.sleep(0.5)
        switched = time.time()
        kube.core.patch_namespaced_service("shop", "default", {"spec": {"selector": {"slot": "green"}}})
        wait_for(
            "the endpoints to be green's",
            lambda: (
                ready_addresses(kube, "shop")
                == sorted(p.status.pod_ip for p in kube.core.list_namespaced_pod("default", label_selector="slot=green").items)
            ),
        )
        time.sleep(2.5)
        retired = time.time()  # blue scaled to zero while the long requests are still on its pods
        kube.apps.patch_namespaced_deployment_scale("shop-blue", "default", {"spec": {"replicas": 0}})
        for thread in long_ones:
            thread.join()
        time.sleep(1)
    samples = load.samples
    total = summarize(samples)
    assert total["failed"] == 0, total
    assert total["requests"] > 6 * RATE and total["rate"] > 0.8 * RATE
    before = summarize(samples, until=switched)
    assert before["by_color"] == {"blue": before["requests"]}
    after = summarize(samples, since=switched + 1.5)  # kube-proxy's sync: about a second
    assert after["by_color"] == {"green": after["requests"]} and after["requests"] > 3 * RATE
    assert long_answers == [(200, "blue")] * 3  # started on blue, finished on blue after the switch and the scale-down
    wait_for("blue's pods to be gone", lambda: not kube.core.list_namespaced_pod("default", label_selector="slot=blue").items, timeout=30)
    picture = timeline.draw(samples, [(switched, "selector -> green"), (retired, "blue to 0")], tmp_path / "k8s.png", "selector switch")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_negative_control_a_pod_killed_without_termination_is_seen_as_failures(shop):
    kube, url = shop
    serving = kube.core.list_namespaced_pod(
        "default", label_selector=f"slot={kube.core.read_namespaced_service('shop', 'default').spec.selector['slot']}"
    )
    victim = serving.items[0]
    with LoadLoop(url, rate=RATE, threads=8, max_seconds=30, keep_alive=False) as load:
        time.sleep(1.5)
        killed = time.time()
        control.pod(kube.endpoint, "default", victim.metadata.name, "kill")
        time.sleep(3)
    lost = summarize(load.samples, since=killed)
    assert lost["failed"] > 0, lost
    # none failed that had ended before the kill (one in flight at the kill may fail by it)
    assert [s for s in load.samples if s.failed and s.started + s.latency < killed] == []
    pod = wait_for(
        "the kubelet to see the exit",
        lambda: (p := kube.core.read_namespaced_pod(victim.metadata.name, "default")).status.container_statuses[0].restart_count and p,
    )
    assert pod.status.container_statuses[0].last_state.terminated.exit_code == 137


def test_negative_control_a_pod_without_a_pre_stop_hook_loses_requests_when_it_stops(shop):
    """Endpoints take about a second to reach the proxy, as on a real cluster: an app that stops at once drops requests."""
    kube, _ = shop
    kube.apps.create_namespaced_deployment(
        "default", deployment("plain", "blue", "registry/plain:v1", replicas=2, app="plain", pre_stop=None)
    )
    kube.core.create_namespaced_service("default", service("plain", {"app": "plain"}))
    wait_for("plain to roll out", rolled_out(kube, "plain"))
    url = control.wait_service(kube.endpoint, "default", "plain", endpoints=2)
    with LoadLoop(url, rate=RATE, threads=8, max_seconds=30, keep_alive=False) as load:
        time.sleep(1.5)
        scaled = time.time()
        kube.apps.patch_namespaced_deployment_scale("plain", "default", {"spec": {"replicas": 1}})
        time.sleep(3)
    lost = summarize(load.samples, since=scaled)
    assert lost["failed"] > 0, lost
    assert summarize(load.samples, until=scaled)["failed"] == 0
