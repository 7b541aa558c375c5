"""The instance process: its release from user data, its answers, its run-time controls; request counting."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from sandbox.dataplane import app, metrics


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_user_data_lines_make_the_release():
    assert app.release("ami-1", None) == {"version": "ami-1", "fail_health": False, "error_rate": 0.0, "delay_ms": 0, "health_delay_ms": 0}
    script = "#!/bin/bash\n# comment\nexport VERSION='v7'\nfail_health=yes\nerror-rate = 0.25\necho hello\ndelay_ms=20\n"
    assert app.release("ami-1", b64(script)) == {
        "version": "v7",
        "fail_health": True,
        "error_rate": 0.25,
        "delay_ms": 20,
        "health_delay_ms": 0,
    }
    assert app.release("ami-1", "version=plain")["version"] == "plain"  # not base64: read as text
    # a setting it cannot use is ignored: the instance still boots
    assert app.release("ami-1", b64("error_rate=7\ndelay_ms=soon"))["error_rate"] == 0.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"error_rate": 1.5}, "error_rate must be between 0 and 1"),
        ({"fail_health": "maybe"}, "fail_health must be true or false"),
        ({"delay_ms": -1}, "delay_ms must be between 0 and 600000"),
        ({"colour": "red"}, "unknown setting 'colour'"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(changes, message):
    instance = app.Instance({"instance_id": "i-1", "version": "v1"}, app.release("ami", None))
    with pytest.raises(ValueError, match=message):
        instance.update(changes)
    assert instance.settings == instance.release


@pytest.fixture
def running():
    sockets = [socket.socket() for _ in range(2)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
    process = subprocess.Popen(
        [
            *(sys.executable, "-I", "-S", app.__file__),
            *("--fd", str(sockets[0].fileno()), "--control-fd", str(sockets[1].fileno())),
            *("--instance-id", "i-1", "--image-id", "ami-1", "--color", "green", "--service", "shop", "--user-data", b64("version=v9")),
        ],
        pass_fds=[s.fileno() for s in sockets],
    )
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    yield ports, process
    process.kill()
    process.wait()


def call(port, path="/", body=None, headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_instance_serves_its_release_and_obeys_controls(running):
    (traffic, control), process = running
    status, body = call(traffic, "/api/orders")
    document = json.loads(body)
    assert status == 200 and (document["version"], document["color"], document["instance_id"], document["path"]) == (
        "v9",
        "green",
        "i-1",
        "/api/orders",
    )
    assert call(traffic, "/health") == (200, b"ok\n")
    began = time.monotonic()
    status, body = call(traffic, "/api/slow?seconds=0.4")
    assert status == 200 and json.loads(body)["slept"] == 0.4 and time.monotonic() - began >= 0.4
    # run-time controls: health, errors
    assert json.loads(call(control, "/", json.dumps({"fail_health": True, "error_rate": 1}).encode())[1])["settings"]["fail_health"]
    assert call(traffic, "/health")[0] == 500
    assert call(traffic, "/anything", headers={"User-Agent": "ELB-HealthChecker/2.0"})[0] == 500  # a check on any path
    assert [call(traffic, "/")[0] for _ in range(5)] == [500] * 5
    state = json.loads(call(control)[1])
    assert state["counters"]["errors_injected"] == 5 and state["counters"]["health_checks"] == 3
    assert call(control, "/", b'{"delay_ms": "x"}')[0] == 400
    reset = json.loads(call(control, "/", b'{"reset": true}')[1])["settings"]
    assert reset == {"fail_health": False, "error_rate": 0.0, "delay_ms": 0, "health_delay_ms": 0}
    assert call(traffic, "/")[0] == 200
    process.terminate()
    assert process.wait(5) == 0


def test_log_lines_count_into_per_second_buckets():
    assert metrics.parse("l_1 tg_b i-1_8080 200 3 4") == ("l_1", "tg_b", "i-1_8080", 200, 3)
    assert metrics.parse("garbage") is None and metrics.parse("a b c x 1") is None
    collector = metrics.Collector()
    try:
        collector.record("l_1 tg_b i-1_8080 200 3 4\n", 100)
        collector.record("l_1 tg_b i-1_8080 502 -1 4\n", 100)
        collector.record("l_1 sandbox_no_route <NOSRV> 503 -1 0\n", 101)
        done = collector.take(101)
        assert list(done) == [100] and collector.take(101) == {}
        counts = done[100]["l_1", "tg_b"]
        assert (counts.requests, counts.target["2XX"], counts.elb_5xx, counts.times) == (2, 1, 1, [0.003])
        assert list(collector.take(102)) == [101]
    finally:
        collector.sock.close()
