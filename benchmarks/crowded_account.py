"""Benchmark: AWS API calls per deploy in an empty account and in a crowded one.

For each account: a clean sandbox, the shop pair, and for the crowded one 500
target groups and 200 Auto Scaling groups that belong to nobody cutover knows
(tagged as other services, so a discovery by listing and filtering would have
to read them all); then ``playbooks/deploy.yml`` (blue -> green, v2). Prints the
calls each deploy made, by action, and the difference.

Target: <= 80 AWS API calls per deploy, and no more in the crowded account than
in the empty one.

    .venv/bin/python benchmarks/crowded_account.py [--target-groups 500] [--asgs 200]

A benchmark, not a test: it prints numbers (tests/integration/test_pair_info.py
asserts that discovery makes as many calls in a crowded account).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402

from sandbox import ACCESS_KEY, REGION, SECRET_KEY, server  # noqa: E402
from sandbox.dataplane.control import call, listener_urls, wait_settled  # noqa: E402
from sandbox.load import LoadLoop  # noqa: E402
from sandbox.playbooks import run  # noqa: E402


def crowd(endpoint: str, outputs: dict, target_groups: int, asgs: int) -> float:
    """Create unrelated target groups and (empty) Auto Scaling groups; returns the seconds it took."""
    began = time.monotonic()
    session = boto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION)
    elbv2 = session.client("elbv2", endpoint_url=endpoint)
    autoscaling = session.client("autoscaling", endpoint_url=endpoint)
    ec2 = session.client("ec2", endpoint_url=endpoint)
    for index in range(target_groups):
        elbv2.create_target_group(
            Name=f"other-{index}",
            Protocol="HTTP",
            Port=8080,
            VpcId=outputs["vpc_id"],
            Tags=[{"Key": "cutover:service", "Value": f"other-{index % 50}"}, {"Key": "cutover:color", "Value": "blue"}],
        )
    template = ec2.create_launch_template(LaunchTemplateName="other", LaunchTemplateData={"ImageId": "ami-0b5c0de0000000009"})
    for index in range(asgs):
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=f"other-{index}",
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            VPCZoneIdentifier=",".join(outputs["subnet_ids"]),
            Tags=[{"Key": "cutover:service", "Value": f"other-{index % 50}", "PropagateAtLaunch": False}],
        )
    return time.monotonic() - began


def deploy_calls(target_groups: int, asgs: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        sandbox = server.start(port=0, directory=folder)
        try:
            subprocess.run([sys.executable, "-m", "sandbox", "--dir", str(folder), "provision"], cwd=REPO, capture_output=True, check=True)
            wait_settled(sandbox.endpoint)
            outputs = json.loads((folder / "outputs.json").read_text())
            crowding = crowd(sandbox.endpoint, outputs, target_groups, asgs) if target_groups or asgs else 0.0
            urls = listener_urls(folder)
            call(sandbox.endpoint, "api-calls", method="DELETE")
            began = time.monotonic()
            # the metric proof after the switch needs requests: a bounded load through production meanwhile
            with LoadLoop(urls[outputs["production_listener_arn"]], rate=20, threads=2, max_seconds=600):
                code, output = run(
                    "deploy",
                    sandbox,
                    {
                        "service": "shop",
                        "image_id": "ami-0b5c0de0000000002",
                        "user_data": "version=v2",
                        "deploy_smoke_test_url": urls[outputs["test_listener_arn"]],
                        "deploy_metric_period": sandbox.metric_period,
                        "deploy_bake_seconds": 0,  # a bake waits by design; this counts the release's own calls
                    },
                )
            wall = time.monotonic() - began
            if code:
                raise RuntimeError(output)
            calls = call(sandbox.endpoint, "api-calls")
        finally:
            server.stop(folder)
    return {"total": calls["total"], "calls": calls["calls"], "wall": wall, "crowding": crowding}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target-groups", type=int, default=500)
    parser.add_argument("--asgs", type=int, default=200)
    options = parser.parse_args()
    empty = deploy_calls(0, 0)
    print(f"empty account: {empty['total']} API calls per deploy ({empty['wall']:.1f} s)", flush=True)
    crowded = deploy_calls(options.target_groups, options.asgs)
    print(
        f"crowded account ({options.target_groups} unrelated target groups, {options.asgs} unrelated Auto Scaling groups, "
        f"made in {crowded['crowding']:.0f} s): {crowded['total']} API calls per deploy ({crowded['wall']:.1f} s)"
    )
    actions = sorted(set(empty["calls"]) | set(crowded["calls"]))
    print(f"{'action':55} {'empty':>6} {'crowded':>8}")
    for action in actions:
        print(f"{action:55} {empty['calls'].get(action, 0):>6} {crowded['calls'].get(action, 0):>8}")
    print(
        f"API calls per deploy: {empty['total']} empty, {crowded['total']} crowded (target <= 80, and no more than empty); "
        f"difference {crowded['total'] - empty['total']:+d}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
