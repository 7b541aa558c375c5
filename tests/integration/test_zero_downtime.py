"""No request is lost: releases, rollbacks and teardowns under a bounded load on loopback.

The load loop (sandbox/load.py) sends ~200 requests/s through the production
listener's loopback URL and counts every failure; the negative control shows
it does count them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from sandbox.dataplane.control import instance, listener_urls, wait_settled
from sandbox.load import LoadLoop, summarize
from tests.conftest import REPO

from .ansible_harness import run_module, run_playbook_file

RATE = 200


def test_demo_release_rollback_teardown_and_a_bad_release_caught_by_the_bake(tmp_path):
    """`python -m sandbox demo` (what `make demo` runs), at 200 requests/s: no request lost but the bad release's own errors."""
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--dir", str(tmp_path), "demo", "--port", "0", "--rate", str(RATE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    totals = re.search(r"all: (\d+) requests \(blue (\d+), green (\d+)\), (\d+) failed", result.stdout)
    assert totals, result.stdout
    requests, blue, green, _failed = map(int, totals.groups())
    assert requests > 20 * RATE and blue > 0 and green > 0
    between = re.search(r"between the switch and the rollback: \d+ requests \((.*?)\), 0 failed", result.stdout)
    assert between and "green" in between.group(1)
    assert re.search(r"after the rollback, until v3: \d+ requests \(blue \d+.*?\), 0 failed", result.stdout), result.stdout
    assert re.search(r"after the automatic switch-back: \d+ requests \(blue \d+\), 0 failed", result.stdout), result.stdout
    line = (
        r"v3: failure detected ([\d.]+) s after the switch, production restored ([\d.]+) s after it; "
        r"(\d+) requests answered 500 by v3 meanwhile, (\d+) other failed requests"
    )
    bad = re.search(line, result.stdout)
    assert bad, result.stdout
    detected, restored, errors, others = float(bad.group(1)), float(bad.group(2)), int(bad.group(3)), int(bad.group(4))
    assert 0 < detected <= restored and errors > 0 and others == 0
    assert "v3: failed: target 5XX rate" in result.stdout
    assert re.search(r"deploy [\d.]+ s \(cutover [\d.]+ s; green passed every gate", result.stdout)
    picture = tmp_path / "timeline.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000
    assert "sandbox stopped" in result.stdout


@pytest.fixture(scope="module")
def served(provisioned, sandbox):
    outputs, aws = provisioned
    wait_settled(sandbox.endpoint)
    urls = listener_urls(sandbox.state_dir)
    return outputs, aws, urls[outputs["production_listener_arn"]], urls[outputs["test_listener_arn"]]


def live_targets(aws, outputs, color):
    descriptions = aws.elbv2.describe_target_health(TargetGroupArn=outputs["target_group_arns"][color])["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in descriptions}


def test_a_release_that_fails_its_health_checks_is_never_switched_to(served, sandbox):
    _, _, production, test = served
    with LoadLoop(production, rate=RATE, threads=8, max_seconds=240) as load:
        run = run_playbook_file(
            "deploy",
            sandbox.endpoint,
            service="shop",
            image_id="ami-0b5c0de0000000004",
            user_data="version=v4\nfail_health=true",
            deploy_smoke_test_url=test,
            deploy_health_timeout=90,
        )
    samples = load.samples
    assert not run.ok
    assert "production was not touched" in run.failure()
    reason = r"i-[0-9a-f]+:8080 unhealthy \(Target\.ResponseCodeMismatch: Health checks failed with these codes: \[500\]\)"
    assert re.search(reason, run.failure()), run.failure()
    summary = summarize(samples)
    assert summary["failed"] == 0 and summary["by_color"] == {"blue": summary["requests"]}
    assert summary["requests"] > 5 * RATE


def test_long_requests_that_started_on_blue_finish_during_its_drain(served, sandbox):
    outputs, aws, production, _ = served
    # green becomes live (a plain rollout and switch), while slow requests are in flight on blue
    result = run_module(
        "cutover.bluegreen.rollout", {"service": "shop", "color": "green", "image_id": "ami-0b5c0de0000000005"}, sandbox.endpoint
    )
    assert not result.get("failed"), result
    result = run_module("cutover.bluegreen.wait_healthy", {"service": "shop", "color": "green", "timeout": 120}, sandbox.endpoint)
    assert not result.get("failed"), result
    answers: list[tuple[int, str]] = []

    def slow() -> None:
        with urllib.request.urlopen(production + "/slow?seconds=6", timeout=30) as response:
            answers.append((response.status, response.read().decode()))

    requests = [threading.Thread(target=slow) for _ in range(4)]
    for request in requests:
        request.start()
    time.sleep(1)  # they reached blue
    with LoadLoop(production, rate=RATE, threads=8, max_seconds=60) as load:
        result = run_module("cutover.bluegreen.switch", {"service": "shop", "to_color": "green"}, sandbox.endpoint)
        assert not result.get("failed"), result
        result = run_module("cutover.bluegreen.drain", {"service": "shop", "color": "blue"}, sandbox.endpoint)
        assert not result.get("failed"), result
        for request in requests:
            request.join(timeout=30)
    assert len(answers) == 4 and all(status == 200 and '"color": "blue"' in body for status, body in answers), answers
    assert sorted(result["drained"]) == sorted(
        i["InstanceId"]
        for i in aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["shop-blue"])["AutoScalingGroups"][0]["Instances"]
    )
    assert live_targets(aws, outputs, "blue") == {}
    assert summarize(load.samples)["failed"] == 0


def test_negative_control_killing_an_instance_without_draining_is_counted(served, sandbox):
    outputs, aws, production, _ = served
    victims = [i for i, state in live_targets(aws, outputs, "green").items() if state == "healthy"]
    assert len(victims) == 2
    with LoadLoop(production, rate=RATE, threads=8, max_seconds=8) as load:
        time.sleep(1)
        instance(sandbox.endpoint, victims[0], "kill")
        time.sleep(5)
    summary = summarize(load.samples)
    assert summary["failed"] > 0, summary
