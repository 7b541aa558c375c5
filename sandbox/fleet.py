"""Several pairs in one sandbox: a fleet of services, in one or more regions, for fleet releases.

Each pair is the one Pulumi program of infra/aws with its own ``cutover:service`` (and ``aws:region``), provisioned
the way ``python -m sandbox provision`` does it. Pulumi's mock runtime holds its state per process, so every
pair is provisioned by a process of its own, ``parallel`` at a time, each in a state directory of its own that
points at the running sandbox. The deployer policy is named after the region too when the pair is not in the
sandbox's region: IAM names are per account, as on AWS.

    from sandbox.fleet import provision_pairs
    pairs = provision_pairs(state_dir, [("svc01", None), ("svc02", None), ("svc01", "eu-west-1")])
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import REGION, server
from .dataplane.control import listener_urls, wait_settled


@dataclass
class Pair:
    service: str
    region: str
    outputs: dict[str, Any]
    production_url: str = ""
    test_url: str = ""


def provision_pairs(
    state_dir: str | Path, pairs: list[tuple[str, str | None]], parallel: int = 2, timeout: float = 300
) -> dict[tuple[str, str], Pair]:
    """Provision ``(service, region or None)`` pairs into the sandbox running with state in ``state_dir``; wait until
    every target passed its first health checks; return them keyed by ``(service, region)`` with their listener URLs."""
    folder = server.state_dir(state_dir)
    pending = list(pairs)
    running: list[tuple[tuple[str, str], Path, subprocess.Popen]] = []
    found: dict[tuple[str, str], Pair] = {}
    try:
        while pending or running:
            while pending and len(running) < parallel:
                service, region = pending.pop(0)
                region = region or REGION
                own = folder / "pairs" / f"{service}-{region}"
                shutil.rmtree(own, ignore_errors=True)
                own.mkdir(parents=True)
                (own / "sandbox.json").write_text((folder / "sandbox.json").read_text())
                command = [
                    sys.executable,
                    "-m",
                    "sandbox",
                    "--dir",
                    str(own),
                    "provision",
                    "--no-wait",
                    "--config",
                    f"cutover:service={service}",
                ]
                if region != REGION:
                    command += [
                        "--config",
                        f"aws:region={region}",
                        "--config",
                        f"cutover:deployer_policy_name=cutover-{service}-deployer-{region}",
                    ]
                process = subprocess.Popen(command, cwd=server.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                running.append(((service, region), own, process))
            key, own, process = running.pop(0)
            if process.wait(timeout=timeout):
                raise RuntimeError(f"provisioning {key[0]} in {key[1]} failed: {process.stderr.read().decode()[-3000:]}")
            process.stderr.close()
            found[key] = Pair(key[0], key[1], json.loads((own / "outputs.json").read_text()))
    finally:
        for _, _, process in running:
            process.kill()
            process.wait()
    sandbox = server.current(folder)
    if sandbox is None:
        raise RuntimeError(f"no sandbox is running with state in {folder}")
    wait_settled(sandbox.endpoint, timeout=timeout)
    urls = listener_urls(folder)
    for pair in found.values():
        pair.production_url = urls[pair.outputs["production_listener_arn"]]
        pair.test_url = urls[pair.outputs["test_listener_arn"]]
    return found
