"""No request is lost on Kubernetes: a release, a rollback and a teardown under load through the live Service.

``python -m sandbox demo --kubernetes`` (what ``make demo-k8s`` runs) sends 200 requests/s through the live
Service (a new connection per request, as clients of a Service do), runs the playbooks with ``-e
platform=kubernetes``, starts long requests on the live colour right before the switch and right before the
rollback, and prints what each phase served and lost. The negative control shows that the same load loop
counts the requests that a cutover made without the collection (a selector patched to a colour with no Ready
pod) loses.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from sandbox import server as aws_server
from sandbox.k8s import control, server
from sandbox.load import LoadLoop, summarize
from tests.conftest import REPO

from .conftest import cli
from .k8s_harness import connect, ready_addresses, wait_for

RATE = 200
NS = "shop"


def test_the_demo_loses_no_request_in_the_release_the_rollback_and_the_teardown(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--dir", str(tmp_path), "demo", "--kubernetes", "--port", "0", "--rate", str(RATE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    totals = re.search(r"all: (\d+) requests \(blue (\d+), green (\d+)\), (\d+) failed", out)
    assert totals, out
    requests, blue, green, failed = map(int, totals.groups())
    assert requests > 20 * RATE and blue > 0 and green > 0 and failed == 0
    phases = {}
    for phase in (
        "before the switch",
        "between the switch and the rollback",
        "after the rollback, until the teardown",
        "during the teardown",
        "after the teardown",
    ):
        found = re.search(rf"   {phase}: (\d+) requests \((.*?)\), (\d+) failed", out)
        assert found and int(found.group(1)) > 0 and found.group(3) == "0", (phase, out)
        phases[phase] = found.group(2)
    assert phases["before the switch"].startswith("blue ") and "green" not in phases["before the switch"]
    assert "green" in phases["between the switch and the rollback"]
    assert "green" not in phases["during the teardown"]  # green's pods left the endpoints before it was scaled down
    assert "long requests started on blue before the switch: 3 of 3 answered 200 by blue" in out
    assert "long requests started on green before the rollback: 3 of 3 answered 200 by green" in out
    picture = tmp_path / "timeline-k8s.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000
    assert "kubernetes sandbox stopped" in out


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = tmp_path_factory.mktemp("k8s-zero-downtime")
    running = server.start(port=0, directory=directory)
    cli("--dir", str(directory), "provision", "--kubernetes", timeout=180)
    kube = connect(running)
    wait_for("blue to serve", lambda: len(ready_addresses(kube, "shop", NS)) == 2)
    yield kube, control.wait_service(running.endpoint, NS, "shop", endpoints=2)
    server.stop(directory)
    assert aws_server.group_members(running.pid) == []


def test_negative_control_a_selector_patched_to_a_colour_without_ready_pods_loses_requests(served):
    kube, url = served
    with LoadLoop(url, rate=RATE, threads=8, max_seconds=30, keep_alive=False) as load:
        time.sleep(1.5)
        patched = time.time()
        kube.core.patch_namespaced_service("shop", NS, {"spec": {"selector": {"slot": "green"}}})  # green has no pod
        time.sleep(3)
        kube.core.patch_namespaced_service("shop", NS, {"spec": {"selector": {"slot": "blue"}}})
        time.sleep(2.5)
    before = summarize(load.samples, until=patched)
    lost = summarize(load.samples, since=patched)
    assert before["failed"] == 0 and before["requests"] > RATE
    assert lost["failed"] > 0, lost
