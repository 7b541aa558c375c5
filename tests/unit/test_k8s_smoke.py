"""The smoke test of a release on Kubernetes: which Service it asks, how it judges an answer, how often it asks."""

from __future__ import annotations

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_smoke
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import build_pair

from tests.unit.fake_clock import FakeClock
from tests.unit.k8s_objects import pair_objects


def pair(live="blue", preview="green"):
    deployments, services = pair_objects(live=live)
    for service in services:
        if service["metadata"]["name"] == "shop-preview":
            service["spec"]["selector"]["slot"] = preview
    return build_pair("shop", "shop", deployments, services)


class Answers:
    """The API server's proxy, answering from a list: ``{status, body}`` each, or an exception."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def call(self, verb, resource, namespace, name=None, subpath=None, raw=False, **_):
        self.calls.append((verb, resource, namespace, name, subpath, raw))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_it_asks_the_preview_service_through_the_api_servers_proxy_until_an_answer_passes():
    clock = FakeClock()
    kube = Answers(
        {"status": 503, "body": b"no endpoints"}, {"status": 200, "body": b'{"version": "v1"}'}, {"status": 200, "body": b"v2 ok"}
    )
    result = k8s_smoke.smoke_test(kube, pair(), path="/health", expect="v2", retries=5, delay=2, sleep=clock.sleep, clock=clock)
    assert (result["status"], result["attempts"], result["service"], result["color"]) == (200, 3, "shop-preview", "green")
    assert kube.calls[0] == ("get", "services/proxy", "shop", "shop-preview", "/health", True)
    assert clock.sleeps == [2, 2]


def test_it_fails_naming_the_last_answer_after_its_retries():
    clock = FakeClock()
    kube = Answers(*[{"status": 500, "body": b"boom"}] * 3)
    with pytest.raises(CutoverError) as failed:
        k8s_smoke.smoke_test(kube, pair(), statuses=[200, 204], retries=2, sleep=clock.sleep, clock=clock)
    assert failed.value.message == (
        "the smoke test of app shop failed: GET / through the Service shop/shop-preview (green) answered 500, wanted 200, 204: boom, "
        "after 3 attempt(s)"
    )
    assert failed.value.details["status"] == 500 and len(kube.calls) == 3


def test_a_preview_service_on_the_live_colour_is_refused_before_any_request():
    kube = Answers()
    with pytest.raises(CutoverError, match="selects blue, not green, the colour under test"):
        k8s_smoke.smoke_test(kube, pair(preview="blue"), sleep=lambda _s: None)
    assert kube.calls == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"path": "health"}, "path must start with /"),
        ({"statuses": [700]}, "status must be a non-empty list of HTTP statuses from 100 to 599"),
        ({"retries": -1}, "retries must be from 0 to 1000"),
        ({"color": "purple"}, "color must be one of blue, green, idle"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(CutoverError, match=message):
        k8s_smoke.validate_inputs(**options)
