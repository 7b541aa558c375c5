"""Benchmark: a release and a rollback on the sandbox, under load.

For each run: a clean sandbox, the shop pair, a bounded load on the production
listener (loopback), then ``playbooks/deploy.yml`` (blue -> green, v2) and
``playbooks/rollback.yml`` (back to the warm blue). Prints, per run and as
medians: the deploy's wall time and its own overhead (wall time minus the
waits for instances, health and the old colour's traffic to stop), the switch
step (apply and read back), the rollback's wall time, the AWS API calls the
deploy made, and under load: failed requests and the mixed-version window.

Targets: rollback to a warm standby <= 5 s end to end; deploy overhead <= 15 s;
<= 80 AWS API calls for a deploy of a 2-instance pair; 0 failed requests.

    .venv/bin/python benchmarks/release.py [--runs 3] [--rate 200]

A benchmark, not a test: it prints numbers; the machine's load shows in them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import server  # noqa: E402
from sandbox.dataplane.control import call, listener_urls, wait_settled  # noqa: E402
from sandbox.load import LoadLoop, mixed_window, summarize  # noqa: E402
from sandbox.playbooks import run  # noqa: E402


def one_run(rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        sandbox = server.start(port=0, directory=folder)
        try:
            code, output = _provision(folder)
            wait_settled(sandbox.endpoint)
            outputs = json.loads((folder / "outputs.json").read_text())
            urls = listener_urls(folder)
            records = folder / "records"
            records.mkdir()
            load = LoadLoop(urls[outputs["production_listener_arn"]], rate=rate, threads=8, max_seconds=300).start()
            time.sleep(1)
            call(sandbox.endpoint, "api-calls", method="DELETE")
            began = time.monotonic()
            code, output = run(
                "deploy",
                sandbox,
                {
                    "service": "shop",
                    "image_id": "ami-0b5c0de0000000002",
                    "user_data": "version=v2",
                    "deploy_smoke_test_url": urls[outputs["test_listener_arn"]],
                    "deploy_record_dir": str(records),
                    "deploy_metric_period": sandbox.metric_period,
                    "deploy_bake_seconds": 0,  # a bake is waiting by design; the benchmark measures the release itself
                },
            )
            deploy_wall = time.monotonic() - began
            if code:
                raise RuntimeError(output)
            calls = call(sandbox.endpoint, "api-calls")
            deploy_samples = list(load.samples)
            began = time.monotonic()
            code, output = run("rollback", sandbox, {"service": "shop", "rollback_record_dir": str(records)})
            rollback_wall = time.monotonic() - began
            if code:
                raise RuntimeError(output)
            time.sleep(1)
            samples = load.stop()
        finally:
            server.stop(folder)
        deploy = next(json.loads(p.read_text()) for p in records.glob("*.json") if "deployment_seconds" in p.read_text())
        waits = sum(float(deploy.get(key) or 0) for key in ("rollout_wait_seconds", "health_wait_seconds", "traffic_stop_seconds"))
        return {
            "deploy_wall": deploy_wall,
            "deploy_overhead": deploy_wall - waits,
            "deploy_waits": waits,
            "switch": float(deploy["cutover_seconds"]),
            "rollback_wall": rollback_wall,
            "api_calls": calls["total"],
            "failed": summarize(samples)["failed"],
            "requests": len(samples),
            "mixed_window": mixed_window(deploy_samples, "blue", "green"),
            "_calls": calls["calls"],
        }


def _provision(folder: Path) -> tuple[int, str]:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--dir", str(folder), "provision"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return result.returncode, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of the load during the release")
    options = parser.parse_args()
    results = []
    for index in range(options.runs):
        result = one_run(options.rate)
        results.append(result)
        print(
            f"run {index + 1}: deploy {result['deploy_wall']:.1f} s (overhead {result['deploy_overhead']:.1f} s, waits "
            f"{result['deploy_waits']:.1f} s), switch {result['switch']:.3f} s, rollback {result['rollback_wall']:.1f} s, "
            f"{result['api_calls']} API calls, {result['failed']} failed of {result['requests']} requests, "
            f"mixed-version window {result['mixed_window']:.2f} s",
            flush=True,
        )
    print(f"API calls of the last deploy: {json.dumps(results[-1]['_calls'])}")

    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    print(
        f"median of {options.runs}: deploy {median('deploy_wall'):.1f} s, deploy overhead {median('deploy_overhead'):.1f} s "
        f"(target <= 15), switch step {median('switch'):.3f} s, rollback {median('rollback_wall'):.1f} s (target <= 5), "
        f"API calls per deploy {median('api_calls'):.0f} (target <= 80), failed requests {median('failed'):.0f} (target 0), "
        f"mixed-version window {median('mixed_window'):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
