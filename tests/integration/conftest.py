"""Integration fixtures: each module starts its own sandbox on a free loopback port."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest

from sandbox import ACCESS_KEY, REGION, SECRET_KEY, server
from tests.conftest import REPO


def cli(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sandbox ...`` the way a user does."""
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"sandbox {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


class Clients:
    def __init__(self, endpoint: str):
        session = boto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION)
        self.endpoint = endpoint
        for service in ("ec2", "elbv2", "autoscaling", "dynamodb", "ssm", "iam", "cloudwatch"):
            setattr(self, service, session.client(service, endpoint_url=endpoint))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A running sandbox with clean state; stopped (no process left) after the module."""
    directory = tmp_path_factory.mktemp("sandbox")
    running = server.start(port=0, directory=directory)
    yield running
    server.stop(directory)
    assert server.group_members(running.pid) == []


@pytest.fixture(scope="module")
def provisioned(sandbox):
    """The sandbox stack provisioned through the CLI; returns (outputs, clients)."""
    cli("--dir", sandbox.state_dir, "provision")
    outputs = json.loads((server.state_dir(sandbox.state_dir) / "outputs.json").read_text())
    return outputs, Clients(sandbox.endpoint)
