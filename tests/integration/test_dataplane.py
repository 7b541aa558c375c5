"""The sandbox's data plane: real requests through the load balancer, with ALB's semantics.

One sandbox and pair for the whole module (blue live at 2, green at 0); each test
sets up what it needs. Traffic goes to 127.0.0.1 only; every load loop is bounded
in requests and time.
"""

from __future__ import annotations

import base64
import collections
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import poll

from sandbox import server
from sandbox.dataplane import control
from tests.conftest import REPO

from .conftest import cli


# -- helpers ---------------------------------------------------------------------------------------
class Load:
    """A bounded load loop: ``threads`` keep-alive clients, about ``rate`` requests/s in all, for ``seconds``."""

    def __init__(self, url: str, rate: float = 200, seconds: float = 5.0, threads: int = 4, path: str = "/"):
        self.url, self.rate, self.seconds, self.threads, self.path = urlsplit(url), rate, seconds, threads, path
        self.limit = int(rate * seconds * 1.2) + threads
        self.served: collections.Counter[str] = collections.Counter()  # colour -> requests
        self.instances: collections.Counter[str] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()  # "HTTP 503", "ConnectionResetError", ...
        self.timeline: list[tuple[float, str]] = []
        self.slowest = 0.0  # the longest a served request took, from its sending to its answer's end (s)
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self.elapsed = 0.0

    @property
    def total(self) -> int:
        return sum(self.served.values()) + sum(self.failures.values())

    @property
    def achieved(self) -> float:
        return self.total / self.elapsed if self.elapsed else 0.0

    def _worker(self, began: float) -> None:
        interval = self.threads / self.rate
        next_at = time.monotonic()
        connection = None
        while time.monotonic() - began < self.seconds and self.total < self.limit:
            outcome, instance = None, None
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=5)
                sent = time.monotonic()
                connection.request("GET", self.path)
                response = connection.getresponse()
                body = response.read()
                if response.status == 200:
                    document = json.loads(body)
                    outcome, instance = document["color"], document["instance_id"]
                else:
                    self._fail(f"HTTP {response.status}")
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException, ValueError) as error:
                self._fail(type(error).__name__)
                if connection is not None:
                    connection.close()
                connection = None
            if outcome is not None:
                with self._lock:
                    self.served[outcome] += 1
                    self.instances[instance] += 1
                    self.timeline.append((time.monotonic() - began, outcome))
                    self.slowest = max(self.slowest, time.monotonic() - sent)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        if connection is not None:
            connection.close()

    def _fail(self, what: str) -> None:
        with self._lock:
            self.failures[what] += 1

    def start(self) -> Load:
        self._began = time.monotonic()
        self._workers = [threading.Thread(target=self._worker, args=(self._began,), daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def now(self) -> float:
        """Seconds since the load started, on its timeline's clock."""
        return time.monotonic() - self._began

    def join(self) -> Load:
        for worker in self._workers:
            worker.join(self.seconds + 30)
        self.elapsed = time.monotonic() - self._began
        return self

    def report(self) -> str:
        rate = f"{self.total} requests in {self.elapsed:.1f} s ({self.achieved:.0f}/s)"
        return f"{rate}: served {dict(self.served)}, failed {dict(self.failures)}"


def get(url: str, timeout: float = 10) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {"body": error.read().decode(errors="replace")}


def health(aws, group_arn):
    described = aws.elbv2.describe_target_health(TargetGroupArn=group_arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: (d["TargetHealth"]["State"], d["TargetHealth"].get("Reason")) for d in described}


def forward(aws, listener_arn, *weighted):
    """Point a listener's default action at target groups: ``(arn, weight)`` pairs or one ARN."""
    if len(weighted) == 1 and isinstance(weighted[0], str):
        action = {"Type": "forward", "TargetGroupArn": weighted[0]}
    else:
        action = {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": a, "Weight": w} for a, w in weighted]}}
    aws.elbv2.modify_listener(ListenerArn=listener_arn, DefaultActions=[action])


def wait_for(check, timeout, what, describe=None):
    return poll(check, timeout, what, delay=0.2, max_delay=1.0, describe=describe)


def ensure_healthy(aws, outputs, color, count, timeout=40):
    """The colour's group at ``count`` instances, all of them healthy targets."""
    group, arn = outputs["asg_names"][color], outputs["target_group_arns"][color]
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=count)

    def ready():
        states = health(aws, arn)
        return len(states) == count and all(state == "healthy" for state, _ in states.values()) and states

    return wait_for(ready, timeout, f"{count} healthy {color} targets", lambda: health(aws, arn))[0]


def release(aws, outputs, color, user_data):
    """Roll a launch-template version with this user data onto the colour's group (instances launched later use it)."""
    version = aws.ec2.create_launch_template_version(
        LaunchTemplateId=outputs["launch_template_id"],
        SourceVersion="1",
        LaunchTemplateData={"UserData": base64.b64encode(user_data.encode()).decode()},
    )["LaunchTemplateVersion"]
    aws.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=outputs["asg_names"][color],
        LaunchTemplate={"LaunchTemplateId": outputs["launch_template_id"], "Version": str(version["VersionNumber"])},
    )
    return version


def metric(aws, name, minutes=10, period=60, stat="Sum", **dimensions):
    now = datetime.now(UTC)
    points = aws.cloudwatch.get_metric_statistics(
        Namespace="AWS/ApplicationELB",
        MetricName=name,
        Dimensions=[{"Name": key, "Value": value} for key, value in dimensions.items()],
        StartTime=now - timedelta(minutes=minutes),
        EndTime=now + timedelta(seconds=5),
        Period=period,
        Statistics=[stat],
    )["Datapoints"]
    return sorted(points, key=lambda p: p["Timestamp"])


def dims(outputs, color=None):
    found = {"LoadBalancer": outputs["load_balancer_arn"].split(":loadbalancer/", 1)[1]}
    if color:
        found["TargetGroup"] = outputs["target_group_arns"][color].split(":", 5)[5]
    return found


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plane(provisioned, sandbox):
    """(outputs, aws, urls) once the provisioned pair's targets passed their first checks."""
    outputs, aws = provisioned
    import boto3

    aws.cloudwatch = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1").client(
        "cloudwatch", endpoint_url=sandbox.endpoint
    )
    control.wait_settled(sandbox.endpoint, timeout=60)
    urls = control.listener_urls(sandbox.state_dir)
    return outputs, aws, {"production": urls[outputs["production_listener_arn"]], "test": urls[outputs["test_listener_arn"]]}


@pytest.fixture
def blue_live(plane):
    """Production (default action and the /api/* rule) forwards to blue, which has 2 healthy targets."""
    outputs, aws, _urls = plane
    blue = outputs["target_group_arns"]["blue"]
    forward(aws, outputs["production_listener_arn"], blue)
    for rule in outputs["rule_arns"]:
        aws.elbv2.modify_rule(RuleArn=rule, Actions=[{"Type": "forward", "TargetGroupArn": blue}])
    ensure_healthy(aws, outputs, "blue", 2)
    return plane


# -- tests --------------------------------------------------------------------------------------------
def test_listeners_have_loopback_urls_in_the_state_file(plane, sandbox):
    outputs, _aws, urls = plane
    state = control.read_state(sandbox.state_dir)
    assert set(state["listeners"]) == {outputs["production_listener_arn"], outputs["test_listener_arn"]}
    production = state["listeners"][outputs["production_listener_arn"]]
    assert (production["listener_port"], production["load_balancer_name"]) == (80, "shop-alb")
    assert production["url"] == urls["production"] and urls["production"].startswith("http://127.0.0.1:")
    assert state["haproxy"]["version"].startswith("2.")
    printed = cli("--dir", sandbox.state_dir, "urls").stdout
    assert f"shop-alb HTTP:80 -> {urls['production']}" in printed
    assert f"shop-alb HTTP:9000 -> {urls['test']}" in printed


def test_production_reaches_both_blue_instances_and_the_rule_routes_too(blue_live):
    outputs, aws, urls = blue_live
    blue_ids = set(health(aws, outputs["target_group_arns"]["blue"]))
    seen = collections.Counter()
    for path in ["/"] * 6 + ["/api/orders"] * 6:
        status, body = get(urls["production"] + path)
        assert status == 200, body
        assert (body["color"], body["version"], body["service"], body["path"]) == ("blue", "v1", "shop", path)
        seen[(path, body["instance_id"])] += 1
    assert {instance for _, instance in seen} == blue_ids  # round robin over both targets
    assert {instance for path, instance in seen if path == "/api/orders"} == blue_ids
    # the test listener forwards to green, which has no instance: ALB answers 503
    assert get(urls["test"] + "/")[0] == 503


def test_cloudwatch_counts_requests_per_target_group_per_period_after_a_lag(blue_live, sandbox):
    outputs, aws, urls = blue_live
    period, lag = sandbox.metric_period, sandbox.metric_lag
    # start on a period's boundary: a datapoint covers its whole period, and the one in progress may hold a request
    # sent before this test (the previous test's request to the test listener counts for green)
    time.sleep(period - time.time() % period + 0.05)
    began = datetime.fromtimestamp(time.time() // period * period, UTC)
    started = time.time()
    load = Load(urls["production"], rate=100, seconds=2.0, threads=2).start().join()
    assert load.failures == {} and load.served["blue"] == load.total >= 160, load.report()
    # when the last answer came (not when the load's threads were joined: on a busy machine that may be a period later)
    answered = started + max(at for at, _color in load.timeline)

    def counted():
        blue = sum(p["Sum"] for p in metric(aws, "RequestCount", period=period, **dims(outputs, "blue")))
        return blue >= load.total and blue

    blue_total, _ = wait_for(counted, 3 * period + lag, "blue's RequestCount to include the load")
    # published only once the load's last period ended and the lag passed
    last_period_end = (int(answered) // period + 1) * period
    assert time.time() >= last_period_end + lag - 0.5
    points = metric(aws, "RequestCount", period=period, **dims(outputs, "blue"))
    assert all(p["Timestamp"].timestamp() % period == 0 for p in points)  # aligned to the clock
    lb_total = sum(p["Sum"] for p in metric(aws, "RequestCount", period=period, **dims(outputs)))
    assert lb_total >= blue_total  # the load balancer's series is its own, not a sum of subsets
    # green is attached (the test listener) and got nothing meanwhile: no datapoint at all, as on AWS
    green = [p for p in metric(aws, "RequestCount", period=period, **dims(outputs, "green")) if p["Timestamp"] >= began]
    assert green == []
    assert metric(aws, "HTTPCode_Target_5XX_Count", period=period, **dims(outputs, "blue")) == []  # no 5XX: no datapoint either
    assert sum(p["Sum"] for p in metric(aws, "HTTPCode_Target_2XX_Count", **dims(outputs, "blue"))) >= load.total
    # the percentiles of the real response times
    now = datetime.now(UTC)
    times = aws.cloudwatch.get_metric_statistics(
        Namespace="AWS/ApplicationELB",
        MetricName="TargetResponseTime",
        Dimensions=[{"Name": k, "Value": v} for k, v in dims(outputs, "blue").items()],
        StartTime=began,
        EndTime=now,
        Period=600,
        ExtendedStatistics=["p50", "p99"],
    )["Datapoints"]
    # HAProxy times a response in whole milliseconds (%Tr), so a fast one counts 0.0 s; none took longer than the
    # load saw it take
    assert len(times) == 1, times
    p50, p99 = times[0]["ExtendedStatistics"]["p50"], times[0]["ExtendedStatistics"]["p99"]
    assert 0 <= p50 <= p99 <= load.slowest + 0.001, (p50, p99, load.slowest)
    # both of blue's hosts counted healthy (at their best in the period: a health check that times out on a busy
    # machine counts a host unhealthy for a moment, as on AWS)
    healthy = metric(aws, "HealthyHostCount", period=period, stat="Maximum", **dims(outputs, "blue"))
    assert healthy and healthy[-1]["Maximum"] == 2.0


def test_scaled_out_targets_go_initial_then_healthy_and_serve_their_release(blue_live, sandbox):
    outputs, aws, urls = blue_live
    green_arn = outputs["target_group_arns"]["green"]
    release(aws, outputs, "green", "version=v2")
    began = time.monotonic()
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=outputs["asg_names"]["green"], DesiredCapacity=2)
    first = health(aws, green_arn)
    assert len(first) == 2 and {state for state, _ in first.values()} == {"initial"}, first
    assert {reason for _, reason in first.values()} <= {"Elb.RegistrationInProgress", "Elb.InitialHealthChecking"}
    assert get(urls["test"] + "/")[0] == 503  # an initial target gets no traffic
    states, _ = wait_for(
        lambda: (s := health(aws, green_arn)) and all(state == "healthy" for state, _ in s.values()) and s, 30, "green healthy"
    )
    took = time.monotonic() - began
    # two passing checks 5 s apart (the stack's interval and healthy threshold), not at once
    assert 4 < took < 25, took
    served = {get(urls["test"] + "/")[1]["instance_id"] for _ in range(6)}
    assert served == set(states)
    status, body = get(urls["test"] + "/")
    assert (status, body["color"], body["version"]) == (200, "green", "v2")
    assert get(urls["production"] + "/")[1]["color"] == "blue"  # production untouched
    instances = control.dataplane(sandbox.endpoint)["instances"]
    assert {instances[i]["version"] for i in states} == {"v2"}


def test_a_listener_switch_routes_within_a_second_and_weights_split(blue_live):
    outputs, aws, urls = blue_live
    ensure_healthy(aws, outputs, "green", 2)
    arns = outputs["target_group_arns"]
    began = time.monotonic()
    forward(aws, outputs["production_listener_arn"], arns["green"])
    poll(lambda: get(urls["production"] + "/")[1].get("color") == "green", 3, "production to serve green", delay=0.005, factor=1)
    converged = time.monotonic() - began
    print(f"listener switch converged in {converged * 1000:.0f} ms")
    assert converged < 1.5
    assert {get(urls["production"] + "/")[1]["color"] for _ in range(10)} == {"green"}
    # the rule still forwards to blue: rules and the default action route independently
    assert {get(urls["production"] + "/api/x")[1]["color"] for _ in range(4)} == {"blue"}
    forward(aws, outputs["production_listener_arn"], (arns["blue"], 1), (arns["green"], 1))
    wait_for(lambda: get(urls["production"] + "/")[1].get("color") == "blue", 3, "production to serve blue too")
    colors = collections.Counter(get(urls["production"] + "/")[1]["color"] for _ in range(200))
    assert colors["blue"] + colors["green"] == 200 and min(colors.values()) >= 60, colors
    forward(aws, outputs["production_listener_arn"], (arns["blue"], 0), (arns["green"], 5))
    wait_for(lambda: {get(urls["production"] + "/")[1]["color"] for _ in range(20)} == {"green"}, 3, "a zero weight to take nothing")


def test_switch_under_load_fails_no_request_and_the_old_colour_falls_to_zero(blue_live, sandbox):
    outputs, aws, urls = blue_live
    ensure_healthy(aws, outputs, "green", 2)
    load = Load(urls["production"], rate=200, seconds=12.0, threads=4).start()  # a whole metric period after the switch
    time.sleep(1.5)
    switched_at = datetime.now(UTC)
    forward(aws, outputs["production_listener_arn"], outputs["target_group_arns"]["green"])
    for rule in outputs["rule_arns"]:
        aws.elbv2.modify_rule(RuleArn=rule, Actions=[{"Type": "forward", "TargetGroupArn": outputs["target_group_arns"]["green"]}])
    switched = load.now()  # when the last call returned: on a busy machine that may be well after the sleep
    load.join()
    print(load.report())
    assert load.failures == {}, load.report()
    assert load.total >= 1000, load.report()
    assert load.served["blue"] > 100 and load.served["green"] > 100, load.report()
    late = [color for at, color in load.timeline if at > switched + 1.0]  # a second after the switch
    assert late and set(late) == {"green"}

    def proven():
        period = sandbox.metric_period
        after = switched_at.timestamp() // period * period + period  # the first whole period after the switch
        blue = {
            p["Timestamp"].timestamp(): p["Sum"] for p in metric(aws, "RequestCount", minutes=2, period=period, **dims(outputs, "blue"))
        }
        green = {
            p["Timestamp"].timestamp(): p["Sum"] for p in metric(aws, "RequestCount", minutes=2, period=period, **dims(outputs, "green"))
        }
        judged = [moment for moment in green if moment >= after and green[moment] > 0]
        return judged and (judged, blue)

    (judged, blue), _ = wait_for(proven, 30, "a whole period after the switch in which green served")
    assert all(moment not in blue for moment in judged)  # blue has no datapoint at all in those periods


def test_failing_health_checks_make_targets_unhealthy_with_a_reason_and_take_no_traffic(blue_live, sandbox):
    outputs, aws, urls = blue_live
    ensure_healthy(aws, outputs, "green", 2)
    green_arn = outputs["target_group_arns"]["green"]
    before = set(health(aws, green_arn))
    # a run-time flip of one green instance, while green scales out with a release that fails its checks
    flipped = sorted(before)[0]
    control.instance(sandbox.endpoint, flipped, "settings", fail_health=True)
    release(aws, outputs, "green", "version=v3\nfail_health=true")
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=outputs["asg_names"]["green"], DesiredCapacity=4)
    bad = set(health(aws, green_arn)) - before
    assert len(bad) == 2
    failing = bad | {flipped}

    def unhealthy():
        states = health(aws, green_arn)
        return all(states[i][0] == "unhealthy" for i in failing) and states

    states, _ = wait_for(unhealthy, 30, "the failing targets to be unhealthy", lambda: health(aws, green_arn))
    for instance in failing:
        assert states[instance] == ("unhealthy", "Target.ResponseCodeMismatch"), states
    described = aws.elbv2.describe_target_health(TargetGroupArn=green_arn, Targets=[{"Id": flipped}])["TargetHealthDescriptions"][0]
    assert described["TargetHealth"]["Description"] == "Health checks failed with these codes: [500]"
    (healthy_one,) = [i for i, (state, _) in states.items() if state == "healthy"]
    instances = control.dataplane(sandbox.endpoint)["instances"]
    assert {instances[i]["version"] for i in bad} == {"v3"}
    # traffic reaches only the healthy target
    forward(aws, outputs["test_listener_arn"], green_arn)
    served_before = {i: control.instance(sandbox.endpoint, i)["counters"]["requests"] for i in failing}
    assert {served_before[i] for i in bad} == {0}
    load = Load(urls["test"], rate=100, seconds=1.0, threads=2).start().join()
    assert load.failures == {} and set(load.instances) == {healthy_one}, load.report()
    assert {i: control.instance(sandbox.endpoint, i)["counters"]["requests"] for i in failing} == served_before
    # the flip back heals it: its checks pass again
    control.instance(sandbox.endpoint, flipped, "settings", reset=True)
    wait_for(lambda: health(aws, green_arn)[flipped][0] == "healthy", 30, "the flipped target to recover")
    # leave green empty, with a good release for the next scale-out
    release(aws, outputs, "green", "version=v2")
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=outputs["asg_names"]["green"], DesiredCapacity=0)


def test_deregistration_drains_in_flight_requests_then_the_target_leaves(blue_live, sandbox):
    outputs, aws, urls = blue_live
    blue_arn = outputs["target_group_arns"]["blue"]
    result = {}

    def slow():
        began = time.monotonic()
        result["response"] = get(urls["production"] + "/slow?seconds=3")
        result["took"] = time.monotonic() - began

    request = threading.Thread(target=slow)
    request.start()
    busy, _ = wait_for(
        lambda: [i for i in health(aws, blue_arn) if control.instance(sandbox.endpoint, i)["counters"]["in_flight"]],
        3,
        "the slow request to reach a blue instance",
    )
    (target,) = busy
    began = time.monotonic()
    aws.elbv2.deregister_targets(TargetGroupArn=blue_arn, Targets=[{"Id": target}])
    assert health(aws, blue_arn)[target] == ("draining", "Target.DeregistrationInProgress")
    # no new request reaches the draining target
    during = {get(urls["production"] + "/")[1]["instance_id"] for _ in range(10)}
    assert target not in during
    request.join(10)
    status, body = result["response"]
    assert (status, body["instance_id"], body["slept"]) == (200, target, 3.0)
    assert health(aws, blue_arn)[target][0] == "draining"  # shown until the delay (5 s) is over, like ALB
    wait_for(lambda: target not in health(aws, blue_arn), 10, "the deregistered target to leave")
    assert 4.5 <= time.monotonic() - began < 9
    unused = aws.elbv2.describe_target_health(TargetGroupArn=blue_arn, Targets=[{"Id": target}])["TargetHealthDescriptions"][0]
    assert unused["TargetHealth"]["State"] == "unused"
    aws.elbv2.register_targets(TargetGroupArn=blue_arn, Targets=[{"Id": target}])
    assert health(aws, blue_arn)[target][0] == "initial"


def test_scale_in_drains_the_instance_before_its_process_stops(blue_live, sandbox):
    outputs, aws, urls = blue_live
    ensure_healthy(aws, outputs, "green", 2)
    green_arn = outputs["target_group_arns"]["green"]
    forward(aws, outputs["test_listener_arn"], green_arn)
    instances = control.dataplane(sandbox.endpoint)["instances"]
    pids = {i: instances[i]["pid"] for i in health(aws, green_arn)}
    results = []
    requests = [threading.Thread(target=lambda: results.append(get(urls["test"] + "/slow?seconds=2"))) for _ in range(4)]
    for thread in requests:
        thread.start()
    wait_for(lambda: all(control.instance(sandbox.endpoint, i)["counters"]["in_flight"] for i in pids), 3, "both green instances busy")
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=outputs["asg_names"]["green"], DesiredCapacity=1)
    (kept,) = [
        i["InstanceId"]
        for i in aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["shop-green"])["AutoScalingGroups"][0]["Instances"]
    ]
    (gone,) = set(pids) - {kept}
    wait_for(lambda: health(aws, green_arn).get(gone, ("",))[0] == "draining", 2, "the scaled-in target to drain")
    assert os.path.exists(f"/proc/{pids[gone]}")  # still serving its in-flight requests
    for thread in requests:
        thread.join(10)
    assert [status for status, _ in results] == [200] * 4
    wait_for(lambda: not os.path.exists(f"/proc/{pids[gone]}"), 5, "the scaled-in instance's process to stop")
    wait_for(lambda: gone not in health(aws, green_arn), 10, "the scaled-in target to leave")
    assert health(aws, green_arn) == {kept: ("healthy", None)}


def test_killing_an_instance_during_load_is_caught_by_the_load_loop(blue_live, sandbox):
    """Negative control: the load loop can fail, so its zero above means something."""
    outputs, aws, urls = blue_live
    blue_arn = outputs["target_group_arns"]["blue"]
    victim = sorted(health(aws, blue_arn))[0]
    load = Load(urls["production"], rate=200, seconds=3.0, threads=4).start()
    time.sleep(1.0)
    killed = control.instance(sandbox.endpoint, victim, "kill")
    assert killed["killed"] > 0
    load.join()
    print(load.report())
    assert sum(load.failures.values()) > 10, load.report()
    assert load.served["blue"] > 0
    wait_for(lambda: health(aws, blue_arn)[victim] == ("unhealthy", "Target.FailedHealthChecks"), 20, "the killed target unhealthy")
    control.instance(sandbox.endpoint, victim, "restart")
    wait_for(lambda: health(aws, blue_arn)[victim][0] == "healthy", 30, "the restarted target healthy")


def test_control_refuses_unknown_instances_and_settings(plane, sandbox):
    with pytest.raises(control.ControlError, match="404 no instance process for i-nope"):
        control.instance(sandbox.endpoint, "i-nope")
    some = next(iter(control.dataplane(sandbox.endpoint)["instances"]))
    with pytest.raises(control.ControlError, match="unknown setting 'bogus'"):
        control.instance(sandbox.endpoint, some, "settings", bogus=1)
    with pytest.raises(control.ControlError, match="error_rate must be between 0 and 1"):
        control.instance(sandbox.endpoint, some, "settings", error_rate=2)


def test_start_without_haproxy_says_how_to_install_it(tmp_path):
    environment = {**os.environ, "CUTOVER_HAPROXY": str(tmp_path / "no-haproxy")}
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--dir", str(tmp_path), "start", "--port", "0"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "sudo apt-get install haproxy" in result.stderr and "CUTOVER_SANDBOX_DATAPLANE=0" in result.stderr
    assert server.current(tmp_path) is None and not (tmp_path / "sandbox.log").exists()  # nothing was started


def test_stop_leaves_no_process(plane, sandbox):
    """Last: stops the module's sandbox and proves nothing of it is left."""
    state = control.dataplane(sandbox.endpoint)
    haproxy_pid = state["haproxy"]["pid"]
    workers = subprocess.run(["pgrep", "-P", str(haproxy_pid)], capture_output=True, text=True).stdout.split()
    pids = {sandbox.pid, haproxy_pid, *map(int, workers), *(i["pid"] for i in state["instances"].values())}
    assert len(pids) >= 5 and len(state["instances"]) >= 2
    assert set(pids) <= set(server.group_members(sandbox.pid))  # every process is in the daemon's group
    ports = [listener["port"] for listener in state["listeners"].values()]
    began = time.monotonic()
    assert "sandbox stopped" in cli("--dir", sandbox.state_dir, "stop").stdout
    print(f"stopped in {time.monotonic() - began:.1f} s")
    assert server.group_members(sandbox.pid) == []
    assert subprocess.run(["pgrep", "-g", str(sandbox.pid)], capture_output=True).returncode == 1
    assert [pid for pid in pids if os.path.exists(f"/proc/{pid}")] == []
    for port in ports:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
