"""The sandbox starts clean, answers AWS API calls on loopback, and stops leaving nothing behind."""

from __future__ import annotations

import re
import socket

from sandbox import server

from .conftest import Clients, cli


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_start_prints_endpoint_and_stop_leaves_no_process(tmp_path):
    started = cli("--dir", str(tmp_path), "start", "--port", "0")
    endpoint = re.search(r"sandbox up at (http://127\.0\.0\.1:(\d+))", started.stdout)
    assert endpoint, started.stdout
    assert f"export AWS_URL={endpoint.group(1)}" in started.stdout
    assert f"export AWS_ENDPOINT_URL={endpoint.group(1)}" in started.stdout
    running = server.current(tmp_path)
    assert running is not None and running.endpoint == endpoint.group(1)

    # a real AWS API answers there
    zones = Clients(running.endpoint).ec2.describe_availability_zones()["AvailabilityZones"]
    assert len(zones) >= 2
    assert cli("--dir", str(tmp_path), "status").stdout.startswith(f"sandbox running at {running.endpoint}")

    stopped = cli("--dir", str(tmp_path), "stop")
    assert "sandbox stopped" in stopped.stdout
    assert server.group_members(running.pid) == []
    assert not _port_open(running.port)
    assert server.current(tmp_path) is None
    assert cli("--dir", str(tmp_path), "status", check=False).returncode == 1
    assert "no sandbox was running" in cli("--dir", str(tmp_path), "stop").stdout


def test_every_start_is_clean(tmp_path):
    first = server.start(port=0, directory=tmp_path)
    try:
        Clients(first.endpoint).ec2.create_vpc(CidrBlock="10.9.0.0/16")
        assert any(v["CidrBlock"] == "10.9.0.0/16" for v in Clients(first.endpoint).ec2.describe_vpcs()["Vpcs"])
        second = server.start(port=0, directory=tmp_path)  # restarts: the first one is stopped
        assert server.group_members(first.pid) == []
        assert not any(v["CidrBlock"] == "10.9.0.0/16" for v in Clients(second.endpoint).ec2.describe_vpcs()["Vpcs"])
    finally:
        server.stop(tmp_path)


def test_port_in_use_is_refused(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("--dir", str(tmp_path), "start", "--port", str(port), check=False)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert server.current(tmp_path) is None


def test_up_provisions_prints_outputs_and_stops(tmp_path):
    result = cli("--dir", str(tmp_path), "up", "--port", "0", timeout=180)
    assert "pair shop provisioned" in result.stdout
    assert '"production_listener_arn": "arn:aws:elasticloadbalancing:' in result.stdout
    assert "sandbox stopped" in result.stdout
    assert server.current(tmp_path) is None


def test_provision_without_a_sandbox_says_so(tmp_path):
    result = cli("--dir", str(tmp_path), "provision", check=False)
    assert result.returncode == 1
    assert "no sandbox is running" in result.stderr
