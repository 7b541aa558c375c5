"""The smoke test at a URL: real requests to an HTTP server on loopback, judged answer by answer."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import smoke
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError

from tests.unit.fake_clock import FakeClock


@pytest.fixture
def server():
    """Answers from a list, one per request: ``(status, body)``; the paths asked are kept."""
    answers, paths = [], []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            paths.append(self.path)
            status, body = answers.pop(0)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answers, paths
    httpd.shutdown()
    httpd.server_close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_asks_until_an_answer_has_a_wanted_status_and_the_text_expected(server):
    url, answers, paths = server
    answers.extend([(503, b"warming up"), (200, b"v1"), (200, b"shop v2 ok")])
    clock, lines = FakeClock(), []
    result = smoke.smoke_test_url(url + "/health", expect="v2", retries=5, delay=2, sleep=clock.sleep, clock=clock, progress=lines.append)
    assert (result["status"], result["content"], result["attempts"], result["url"]) == (200, "shop v2 ok", 3, url + "/health")
    assert paths == ["/health"] * 3 and clock.sleeps == [2, 2]
    # progress lines of the one waiter (not a line per retry of an until loop): here the last one
    assert lines == [f"GET {url}/health to pass: done after 4.0 s (3 looks)"]


def test_it_fails_naming_the_last_answer_after_its_retries(server):
    url, answers, _ = server
    answers.extend([(500, b"boom")] * 3)
    clock = FakeClock()
    with pytest.raises(CutoverError) as failed:
        smoke.smoke_test_url(url + "/", statuses=[200, 204], retries=2, sleep=clock.sleep, clock=clock)
    assert failed.value.message == f"the smoke test failed: GET {url}/ answered 500, wanted 200, 204: boom, after 3 attempt(s)"
    assert (failed.value.details["status"], failed.value.details["content"], failed.value.details["attempts"]) == (500, "boom", 3)


def test_no_answer_is_a_failing_look_too():
    clock = FakeClock()
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(CutoverError) as failed:
        smoke.smoke_test_url(url, retries=1, sleep=clock.sleep, clock=clock)
    assert failed.value.message.startswith(f"the smoke test failed: GET {url} got no answer (")
    assert failed.value.details["status"] is None and failed.value.details["attempts"] == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "shop.example.com/health"}, "url must start with http:// or https://"),
        ({"timeout": 0}, "timeout must be more than 0 and at most 300 seconds"),
        ({"statuses": [99]}, "status must be a non-empty list of HTTP statuses from 100 to 599"),
        ({"retries": 1001}, "retries must be from 0 to 1000"),
        ({"delay": -1}, "delay must be from 0 to 300 seconds"),
    ],
)
def test_bad_options_are_named_before_any_request(options, message):
    asked = []
    with pytest.raises(CutoverError, match=message):
        smoke.smoke_test_url(**{"url": "http://127.0.0.1:9/", **options}, opener=lambda *a, **k: asked.append(a))
    assert asked == []
