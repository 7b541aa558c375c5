"""Routing as HAProxy maps: ALB conditions as regexes, stable rule slots, weighted splits; checked in a real HAProxy."""

from __future__ import annotations

import collections
import re
import urllib.error
import urllib.request

import pytest

from sandbox.dataplane import haproxy
from sandbox.dataplane.model import Action, Condition, HealthCheck, Listener, Rule, TargetGroup

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
BLUE = f"{ARN}:targetgroup/shop-blue/00000000000000b1"
GREEN = f"{ARN}:targetgroup/shop-green/00000000000000a2"


def key(path="/", host="shop.example.com", method="GET"):
    return f"{host}|{method}|{path}"


def matches(conditions, **request):
    regex = haproxy.condition_regex(conditions)
    return regex is not None and re.match(regex, key(**request)) is not None


def test_path_patterns_are_case_sensitive_wildcards_over_the_whole_path():
    api = [Condition("path-pattern", ("/api/*",))]
    assert matches(api, path="/api/orders") and matches(api, path="/api/")
    assert not matches(api, path="/api") and not matches(api, path="/API/orders") and not matches(api, path="/v1/api/x")
    one = [Condition("path-pattern", ("/img/?.png", "/exact"))]
    assert matches(one, path="/img/a.png") and matches(one, path="/exact")
    assert not matches(one, path="/img/ab.png") and not matches(one, path="/img/aXpng") and not matches(one, path="/exact/")
    dots = [Condition("path-pattern", ("/a.b+c(d)[e]$",))]
    assert matches(dots, path="/a.b+c(d)[e]$") and not matches(dots, path="/aXb+c(d)[e]$")


def test_host_is_case_insensitive_and_conditions_combine_with_and():
    rule = [
        Condition("host-header", ("*.Example.com",)),
        Condition("http-request-method", ("POST", "PUT")),
        Condition("path-pattern", ("/api/*",)),
    ]
    assert matches(rule, host="shop.example.com", method="POST", path="/api/x")
    assert not matches(rule, host="shop.example.com", method="GET", path="/api/x")
    assert not matches(rule, host="example.org", method="PUT", path="/api/x")
    assert not matches(rule, host="shop.example.com", method="PUT", path="/x")


def test_conditions_the_sandbox_cannot_evaluate_never_match():
    assert haproxy.condition_regex([Condition("query-string", ("a=b",))]) is None
    assert haproxy.condition_regex([Condition("path-pattern", ("/a",)), Condition("path-pattern", ("/b",))]) is None
    assert haproxy.condition_regex([Condition("path-pattern", ())]) is None
    assert haproxy.condition_regex([]) == r"^[^|]*\|[^|]*\|.*$"  # no condition: everything


def test_rule_slots_are_stable_while_rules_come_and_go():
    slots = haproxy.assign_slots({}, ["r1", "r2"])
    assert slots == {"r1": 1, "r2": 2}
    later = haproxy.assign_slots(slots, ["r2", "r3"])
    assert later == {"r2": 2, "r3": 1}  # r2 keeps its slot, r3 takes the free one
    assert haproxy.assign_slots(later, ["r4", "r2", "r3"]) == {"r2": 2, "r3": 1, "r4": 3}


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([("a", 1)], [(0, 9999, "a")]),
        ([("a", 1), ("b", 1)], [(0, 4999, "a"), (5000, 9999, "b")]),
        ([("a", 0), ("b", 5)], [(0, 9999, "b")]),
        ([("a", 1), ("b", 999)], [(0, 9, "a"), (10, 9999, "b")]),
        ([("a", 0), ("b", 0)], []),
        ([("a", 1), ("b", 1), ("c", 1)], [(0, 3332, "a"), (3333, 6666, "b"), (6667, 9999, "c")]),
    ],
)
def test_weights_split_the_buckets(weights, expected):
    assert haproxy.split(weights) == expected


def listener(default, *rules):
    return Listener(
        arn=f"{ARN}:listener/app/shop-alb/1/00000000000000f1",
        load_balancer_arn="lb",
        protocol="HTTP",
        port=80,
        default=default,
        rules=rules,
    )


def test_maps_follow_priority_order_and_forward_weights():
    api = Rule("rule-api", 10, (Condition("path-pattern", ("/api/*",)),), Action("forward", ((GREEN, 1),)))
    first = Rule("rule-first", 5, (Condition("path-pattern", ("/api/v2/*",)),), Action("fixed-response", status=418, body="teapot"))
    odd = Rule("rule-odd", 1, (Condition("query-string", ("a=b",)),), Action("forward", ((GREEN, 1),)))
    item = listener(Action("forward", ((BLUE, 1), (GREEN, 3))), first, api, odd)
    slots = haproxy.assign_slots({}, [r.arn for r in item.rules])
    rules = haproxy.rules_map(item, slots)
    assert [slot for _, slot in rules] == [slots["rule-first"] * 10000, slots["rule-api"] * 10000]  # priority order, odd left out
    backends = {BLUE: "tg_b1", GREEN: "tg_a2"}
    actions = dict(haproxy.actions_map(item, slots, backends))
    assert actions["0:2499"] == "tg_b1" and actions["2500:9999"] == "tg_a2"
    teapot = slots["rule-first"] * 10000
    assert actions[f"{teapot}:{teapot + 9999}"].startswith("fx_")
    # a target group that no longer exists leaves its share unrouted
    gone = dict(haproxy.actions_map(listener(Action("forward", (("arn:gone", 1),))), {}, backends))
    assert gone == {"0:9999": haproxy.NO_ROUTE_BACKEND}


# -- in a real HAProxy -------------------------------------------------------------------------------
@pytest.fixture
def proxy(tmp_path):
    """HAProxy with one listener whose actions are fixed responses, so routing shows in the body."""
    paths = haproxy.Paths(tmp_path)
    process = haproxy.Process(haproxy.find_binary(), paths)
    yield paths, process
    process.stop()


def fixed(body):
    return Action("fixed-response", status=200, content_type="text/plain", body=body)


def fetch(port, path="/", host=None, method="GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"


def serve(paths, process, item, port, reload=False):
    slots = haproxy.assign_slots({}, [r.arn for r in item.rules])
    for path, lines in (
        (paths.rules_map(item), haproxy.rules_map(item, slots)),
        (paths.actions_map(item), haproxy.actions_map(item, slots, {})),
    ):
        with open(path, "w") as out:
            out.write(haproxy.map_text(lines))
    layout = haproxy.layout_for([item], [], {item.arn: port}, paths)
    config = haproxy.render_config(layout, paths, log_port=9)
    return process.reload(config) if reload else process.start(config)


def test_haproxy_routes_by_the_maps_and_swaps_them_at_run_time(proxy):
    from sandbox.dataplane.controller import free_port

    paths, process = proxy
    port = free_port()
    item = listener(
        fixed("default"),
        Rule("r-api", 10, (Condition("path-pattern", ("/api/*",)),), fixed("api")),
        Rule("r-host", 20, (Condition("host-header", ("admin.*",)), Condition("http-request-method", ("POST",))), fixed("admin-post")),
    )
    first_worker = serve(paths, process, item, port)
    assert fetch(port, "/") == "default" and fetch(port, "/api/x") == "api" and fetch(port, "/API/x") == "default"
    assert fetch(port, "/x", host="ADMIN.shop.test", method="POST") == "admin-post"
    assert fetch(port, "/x", host="admin.shop.test") == "default"
    # a weighted forward to two answers, swapped in at run time: no reload
    weighted = listener(Action("forward", (("a", 1), ("b", 1))))
    backends = {"a": haproxy.action_backend(fixed("api")), "b": haproxy.action_backend(fixed("default"))}
    process.runtime.replace_map(paths.actions_map(item), haproxy.map_text(haproxy.actions_map(weighted, {}, backends)))
    process.runtime.replace_map(paths.rules_map(item), "")
    seen = collections.Counter(fetch(port, "/api/x") for _ in range(200))
    assert set(seen) == {"api", "default"} and min(seen.values()) > 60, seen
    assert process.worker_pid() == first_worker
    # a new listener needs a reload; the old worker hands over
    second = free_port()
    other = Listener(f"{ARN}:listener/app/shop-alb/1/00000000000000f2", "lb", "HTTP", 9000, fixed("nine-thousand"))
    slots = {}
    for entry in (other,):
        with open(paths.rules_map(entry), "w") as out:
            out.write("")
        with open(paths.actions_map(entry), "w") as out:
            out.write(haproxy.map_text(haproxy.actions_map(entry, slots, {})))
    layout = haproxy.layout_for([item, other], [], {item.arn: port, other.arn: second}, paths)
    assert process.reload(haproxy.render_config(layout, paths, log_port=9)) != first_worker
    assert fetch(second, "/") == "nine-thousand" and fetch(port, "/api/x") == "api"  # the file map: rules again


def test_a_refused_configuration_keeps_the_running_one(proxy):
    from sandbox.dataplane.controller import free_port

    paths, process = proxy
    port = free_port()
    worker = serve(paths, process, listener(fixed("up")), port)
    with pytest.raises(haproxy.HAProxyError, match="refused the new configuration"):
        process.reload("global\n  this-is-not-a-keyword\n")
    assert process.worker_pid() == worker and fetch(port) == "up"


def test_render_config_carries_health_checks_and_servers(tmp_path):
    paths = haproxy.Paths(tmp_path)
    group = TargetGroup(BLUE, "shop-blue", HealthCheck(path="/health", interval=5, timeout=2, healthy=2, unhealthy=3, matcher="200-202"))
    layout = haproxy.layout_for([], [group], {}, paths)
    server = haproxy.Server(group.backend, "i-1_8080", "127.0.0.1", 4000)
    config = haproxy.render_config(layout, paths, log_port=9, servers=[server])
    assert "option httpchk GET /health" in config
    assert "http-check expect rstatus ^(200|201|202)$" in config
    assert "timeout check 2s" in config and "retries 0" in config
    assert "server i-1_8080 127.0.0.1:4000 check inter 5s rise 2 fall 3" in config
    disabled = haproxy.layout_for([], [TargetGroup(GREEN, "g", HealthCheck(enabled=False))], {}, paths)
    assert "httpchk" not in haproxy.render_config(disabled, paths, log_port=9)


def test_a_missing_haproxy_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("CUTOVER_HAPROXY", str(tmp_path / "nope"))
    with pytest.raises(haproxy.HAProxyError, match="apt-get install haproxy"):
        haproxy.find_binary()
    monkeypatch.delenv("CUTOVER_HAPROXY")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(haproxy, "SEARCH_PATH", (str(tmp_path),))
    with pytest.raises(haproxy.HAProxyError, match=r"haproxy was not found; .*make setup"):
        haproxy.find_binary()
