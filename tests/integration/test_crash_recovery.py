"""Two runs at once, and runs killed with ``kill -9`` of their whole process group, on one sandbox pair.

Each run is started as a user starts ``ansible-playbook``, in a process group of its own, and killed
as a whole; Ansible's workers and async jobs live in sessions of their own and survive that, as they
do in real life. The tests run in order, each from the state the previous one left, and a monitor
checks the invariants all along: the live colour is never drained or scaled down, and production
never forwards to a colour with fewer than its healthy targets.

Slow by nature (each case is a release); most cases shorten the lease to 10 s through the role
variables, one keeps the default (60 s) and shows that a new run proceeds within 90 s of the kill.
A bounded load through the production listener runs for the whole file: a release proves from the
load balancer's metrics that the old colour's traffic stopped, and a canary is gated on them.
"""

from __future__ import annotations

import datetime
import os
import signal
import threading
import time

import pytest
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import parse_time
from ansible_collections.cutover.bluegreen.plugins.module_utils.pair import forward_weights
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import from_item

from sandbox.dataplane.control import listener_urls, wait_settled
from sandbox.load import LoadLoop

from .ansible_harness import BackgroundRun

LOCK_KEY = {"pk": {"S": "service#shop"}, "sk": {"S": "lock"}}
CAPACITY = 2


def version(number, extra=""):
    return {"image_id": f"ami-0b5c0de{number:010d}", "user_data": f"version=v{number}{extra}", "version": f"v{number}"}


def wait_until(predicate, timeout, what, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Monitor(threading.Thread):
    """Samples the pair every half second; records every moment an invariant did not hold."""

    def __init__(self, pair):
        super().__init__(daemon=True)
        self.pair = pair
        self.stopped = threading.Event()
        self.violations = []
        self.samples = 0

    def run(self):
        while not self.stopped.wait(0.5):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a failed read is no violation; the next sample reads again
                self.pair.errors.append(repr(exc))

    def sample(self):
        weights = self.pair.live()
        if len(weights) != 1:
            return  # split: no single live colour
        (live,) = weights
        asg = self.pair.asg(live)
        targets = self.pair.targets(live)
        if self.pair.live() != weights:
            return  # switched while sampling
        self.samples += 1
        healthy = [t for t in targets if t == "healthy"]
        if asg["DesiredCapacity"] < CAPACITY or "draining" in targets or len(healthy) < CAPACITY:
            self.violations.append((time.strftime("%H:%M:%S"), live, asg["DesiredCapacity"], targets))


@pytest.fixture(scope="module")
def pair(provisioned, sandbox, tmp_path_factory):
    outputs, aws = provisioned
    wait_settled(sandbox.endpoint)
    urls = listener_urls(sandbox.state_dir)
    runs = tmp_path_factory.mktemp("runs")
    load = LoadLoop(urls[outputs["production_listener_arn"]], rate=40, threads=4, max_seconds=2400).start()

    class Pair:
        endpoint = sandbox.endpoint
        test_url = urls[outputs["test_listener_arn"]]
        errors = []

        started = []

        def start(self, name, *raw, **extra):
            run = BackgroundRun(name, self.endpoint, runs, *raw, **self.defaults(name, extra))
            self.started.append(run)
            return run

        def play(self, name, *raw, **extra):
            return self.start(name, *raw, **extra).finish()

        def defaults(self, name, extra):
            if name in ("deploy", "promote"):
                # the sandbox's metric period; the bake has its own tests (test_bake.py) and one case here
                extra = {
                    "deploy_metric_period": sandbox.metric_period,
                    "deploy_verify_timeout": 60,
                    "deploy_bake_seconds": 0,
                    "deploy_canary_min_requests": 10,
                    # latency on a loaded test machine is the machine's; test_bake.py tests the latency gates
                    "deploy_bake_latency_slack_ms": 500,
                    **extra,
                }
            if name == "deploy":
                extra = {"deploy_smoke_test_url": self.test_url, **extra}
            if name == "teardown":
                return {"services": "shop", **extra}
            return {"service": "shop", **extra}

        def live(self, listener="production"):
            """The colours a listener (production or test) forwards to, with their weights."""
            arn = outputs[f"{listener}_listener_arn"]
            listener = aws.elbv2.describe_listeners(ListenerArns=[arn])["Listeners"][0]
            colors = {arn: color for color, arn in outputs["target_group_arns"].items()}
            return {colors[arn]: weight for arn, weight in forward_weights(listener["DefaultActions"]).items() if weight}

        def asg(self, color):
            name = outputs["asg_names"][color]
            group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
            group["TagMap"] = {t["Key"]: t["Value"] for t in group["Tags"]}
            return group

        def targets(self, color):
            found = aws.elbv2.describe_target_health(TargetGroupArn=outputs["target_group_arns"][color])["TargetHealthDescriptions"]
            return [t["TargetHealth"]["State"] for t in found]

        def lock(self):
            item = aws.dynamodb.get_item(TableName="cutover-shop", Key=LOCK_KEY, ConsistentRead=True).get("Item")
            return from_item(item) if item else None

        def entry(self, deployment_id):
            key = {"pk": {"S": "service#shop"}, "sk": {"S": f"deploy#{deployment_id}"}}
            return from_item(aws.dynamodb.get_item(TableName="cutover-shop", Key=key, ConsistentRead=True)["Item"])

        def entries(self):
            items = aws.dynamodb.query(
                TableName="cutover-shop",
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": "service#shop"}, ":prefix": {"S": "deploy#"}},
            )["Items"]
            return {item["deployment_id"]: item for item in map(from_item, items)}

        def published(self):
            return aws.ssm.get_parameter(Name="/cutover/shop/active-color")["Parameter"]["Value"]

        def template_versions(self):
            return len(aws.ec2.describe_launch_template_versions(LaunchTemplateId=outputs["launch_template_id"])["LaunchTemplateVersions"])

        def tag(self, color, **tags):
            aws.autoscaling.create_or_update_tags(
                Tags=[
                    {
                        "ResourceId": outputs["asg_names"][color],
                        "ResourceType": "auto-scaling-group",
                        "Key": k,
                        "Value": v,
                        "PropagateAtLaunch": False,
                    }
                    for k, v in tags.items()
                ]
            )

    found = Pair()
    found.monitor = Monitor(found)
    found.monitor.start()
    yield found
    found.monitor.stopped.set()
    found.monitor.join(5)
    load.stop()
    for run in found.started:  # a test that failed half way leaves nothing running
        if run.process.poll() is None:
            run.kill()
    deadline = time.monotonic() + 30
    while any(run.survivors() for run in found.started) and time.monotonic() < deadline:
        time.sleep(0.5)  # what a killed run left running stops by itself within seconds
    for run in found.started:
        for pid in run.survivors():
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def invariants(pair):
    """Every test ends with no invariant broken meanwhile (and the monitor really looked)."""
    before = pair.monitor.samples
    yield
    wait_until(lambda: pair.monitor.samples > before, 30, "the monitor to look at the pair")
    assert pair.monitor.violations == [], pair.monitor.violations


def kill_when(run, predicate, what, timeout=120):
    """Kill the run's process group as soon as ``predicate()`` holds; returns the time of the kill."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            raise AssertionError(f"{run.name} ended before {what}: {run.output.read_text()[-2000:]}")
        if predicate():
            return run.kill()
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def gone(run, timeout=30):
    """Every process of a killed run (workers, background jobs, the heartbeat) stops on its own."""
    wait_until(lambda: not run.survivors(), timeout, f"the processes of the killed {run.name} to stop")


def jobs_by_kind(run):
    """The killed run's background jobs: ``held`` (the heartbeat) and the others (rollout and health wait)."""
    results = [job for job in run.jobs() if job.get("finished", 1) and "started" not in job]
    held = [job for job in results if job.get("operation") == "held"]
    return held, [job for job in results if job.get("operation") != "held"]


@pytest.mark.parametrize(
    ("name", "option", "message"),
    [
        (
            "deploy",
            "deploy_lease_seconds=5",
            "deploy: 1 bad input, nothing was read or changed:\n- deploy_lease_seconds=5: allowed 10 to 86400",
        ),
        (
            "rollback",
            "rollback_lease_seconds=100000",
            "rollback: 1 bad input, nothing was read or changed:\n- rollback_lease_seconds=100000: allowed 10 to 86400",
        ),
        ("teardown", "teardown_owner=" + "x" * 300, "- teardown_owner=" + "x" * 57 + "...: allowed at most 256 characters"),
    ],
)
def test_bad_lock_options_are_refused_before_anything_changes(pair, name, option, message):
    versions, entries = pair.template_versions(), pair.entries()
    extra = version(2) if name == "deploy" else {}
    refused = pair.play(name, option, **extra)
    assert not refused.ok and message in refused.failure()
    assert pair.template_versions() == versions and pair.entries() == entries and pair.lock() is None


def test_two_deploys_at_once_only_one_proceeds_and_a_teardown_from_the_same_machine_is_refused(pair):
    # An empty green marked as a standby past its time, so that the teardown has work due and asks for the lock.
    pair.tag("green", **{"cutover:state": "standby", "cutover:retire-after": "2020-01-01T00:00:00Z"})
    versions, entries = pair.template_versions(), pair.entries()
    holders = []
    watching = threading.Event()

    def watch():
        while not watching.wait(0.1):
            token = (pair.lock() or {}).get("token")
            if not holders or holders[-1] != token:
                holders.append(token)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    first, second = pair.start("deploy", **version(2)), pair.start("deploy", **version(2))
    held = wait_until(pair.lock, 120, "one of the two deploys to take the lock")
    winner, loser = (first, second) if held["owner"].endswith(f" pid {first.pid}") else (second, first)
    assert held["owner"].endswith(f" pid {winner.pid}") and held["owner"].startswith("ansible-playbook ")
    winner.signal(signal.SIGSTOP)  # hold the winner right after it took the lock, before its rollout
    try:
        refused = loser.finish()
        assert not refused.ok
        message = refused.failure()
        assert f"service shop is locked by {held['owner']} (deploy v2 to green) since {held['acquired_at']}, until " in message
        assert f"run again with -e takeover={held['token']}" in message
        assert pair.template_versions() == versions and pair.asg("green")["DesiredCapacity"] == 0
        assert set(pair.entries()) - set(entries) == {held["deployment_id"]}  # the loser opened no entry

        teardown = pair.play("teardown")
        assert not teardown.ok
        assert f"service shop is locked by {held['owner']} (deploy v2 to green)" in teardown.failure()
        assert pair.lock()["token"] == held["token"]
    finally:
        winner.signal(signal.SIGCONT)
    done = winner.finish()
    watching.set()
    watcher.join(5)
    assert done.ok, done.failure()
    assert pair.live() == {"green": 1}
    assert pair.entry(held["deployment_id"])["outcome"] == "succeeded"
    assert [token for token in holders if token] == [held["token"]]  # the lease was never released or taken by another run
    assert holders[-1] is None


def test_killed_during_the_rollout_the_same_deploy_resumes_without_any_option_within_90_s(pair):
    """At the default lease (60 s): nobody has to do anything but run the same command again."""
    before = pair.asg("blue")
    run = pair.start("deploy", **version(3))
    killed = kill_when(
        run,
        lambda: (lambda g: g["DesiredCapacity"] != before["DesiredCapacity"] or g["LaunchTemplate"] != before["LaunchTemplate"])(
            pair.asg("blue")
        ),
        "the rollout to change blue's Auto Scaling group",
    )
    dead = pair.lock()
    assert dead["owner"].endswith(f" pid {run.pid}") and dead["lease_seconds"] == 60

    # at once, the same command is refused: the dead run's lease is live, and the refusal says how to take it
    refused = pair.play("deploy", **version(3))
    assert not refused.ok
    assert f"service shop is locked by {dead['owner']} (deploy v3 to blue)" in refused.failure()
    assert f"-e takeover={dead['token']}" in refused.failure()

    gone(run)
    held, others = jobs_by_kind(run)
    assert [job["held"]["stopped"] for job in held] == ["controller_gone"]
    (rollout,) = others
    assert rollout["failed"] and rollout["lost_lock"]
    assert rollout["msg"].startswith(f"lost the lock: the controller (pid {run.pid}) is gone")
    renewed = pair.lock()["renewed_at"]

    expired = wait_until(lambda: (lambda lock: lock and lock["expires_at"] <= time.time() and lock)(pair.lock()), 90, "the lease to expire")
    assert expired["renewed_at"] == renewed  # nobody renewed it after the kill
    assert expired["expires_at"] - killed <= 61

    resumed = pair.play("deploy", **version(3))
    assert resumed.ok, resumed.failure()
    assert pair.live() == {"blue": 1} and pair.asg("green")["TagMap"]["cutover:state"] == "standby"
    entry = pair.entry(dead["deployment_id"])
    assert entry["outcome"] == "succeeded" and entry["owner"] != dead["owner"]
    (again,) = entry["record"]["resumed"]
    assert again["from"] == dead["owner"]
    assert parse_time(again["at"]).timestamp() - killed <= 90  # the new run proceeded within 90 s of the kill
    assert pair.lock() is None


def test_killed_during_the_health_wait_another_release_closes_its_entry_as_interrupted(pair):
    run = pair.start("deploy", "deploy_lease_seconds=10", **version(4))  # as a string: -e key=value
    kill_when(run, lambda: "initial" in pair.targets("green"), "the new targets of green to be checked")
    dead = pair.lock()
    gone(run)
    _held, (rollout,) = jobs_by_kind(run)
    assert rollout["lost_lock"] and rollout["msg"].startswith(f"lost the lock: the controller (pid {run.pid}) is gone")
    assert "stopped before waiting for" in rollout["msg"]

    wait_until(lambda: pair.lock()["expires_at"] <= time.time(), 30, "the dead run's 10 s lease to expire")
    other = pair.play("deploy", **version(5), deploy_lease_seconds=10)
    assert other.ok, other.failure()
    assert pair.live() == {"green": 1}
    newest = max(pair.entries().values(), key=lambda e: e["started_at"])
    interrupted = pair.entry(dead["deployment_id"])
    assert interrupted["outcome"] == "interrupted"
    assert interrupted["summary"].startswith(f"interrupted: its run {dead['owner']} stopped; ")
    assert "took the lock over after its lease expired at" in interrupted["summary"]
    assert interrupted["record"]["interrupted_by"]["deployment_id"] == newest["deployment_id"]
    assert newest["outcome"] == "succeeded" and newest["record"]["took_over"]["deployment_id"] == dead["deployment_id"]


def test_killed_right_after_the_switch_a_rerun_with_takeover_verifies_bakes_marks_the_standby_and_closes(pair):
    # a lease long enough to be live still when the re-run reaches the lock on a busy machine: taken over by name
    run = pair.start("deploy", **version(6), deploy_lease_seconds=60)
    # the switch moves production first and the test listener last: killed once both are moved
    killed = kill_when(
        run,
        lambda: pair.live() == {"blue": 1} and pair.live("test") == {"green": 1},
        "production to be switched to blue and the test listener to green",
    )
    dead = pair.lock()
    entry = pair.entry(dead["deployment_id"])
    assert entry["outcome"] == "in_progress"
    switch_began = entry["record"]["switch_started_at"]  # noted as the switch began, before the kill
    assert switch_began <= killed

    # the same command, with the takeover option given as a string (-e key=value), proceeds at once, and bakes
    v6 = version(6)
    rerun = pair.play(
        "deploy",
        f"takeover={dead['token']}",
        f"image_id={v6['image_id']}",
        f"user_data={v6['user_data']}",
        "deploy_bake_seconds=10",
        version="v6",
    )
    assert rerun.ok, rerun.failure()
    assert "already runs this version" not in rerun.messages()
    assert rerun.result("Roll out the new version").get("skipped")  # done before the kill: not redone
    # no listener or rule is changed again (what the dead run did not finish after them, publishing the live
    # colour, the re-run does)
    assert rerun.result("Switch every production listener")["changes"] == []
    assert rerun.result("Verify that the old colour no longer receives requests")["evidence"]["verdict"] == "passed"
    # the bake judges blue from the switch of the dead run on, against green just before it
    bake = rerun.result("Watch the bake")
    assert bake["verdict"] == "passed" and bake["since"] == pytest.approx(switch_began, abs=0.01)
    assert bake["baseline"]["requests"] >= 10 and bake["new"]["requests"] >= 10
    assert parse_time(bake["baseline_window"]["end"]).timestamp() <= switch_began
    entry = pair.entry(dead["deployment_id"])
    assert entry["outcome"] == "succeeded" and entry["record"]["took_over"]["reason"] == "named"
    assert entry["summary"] == "blue is live with v6"
    assert pair.live() == {"blue": 1}
    green = pair.asg("green")
    assert green["TagMap"]["cutover:state"] == "standby" and green["DesiredCapacity"] == CAPACITY
    assert pair.published() == "blue"
    gone(run)


def test_killed_right_after_the_switch_an_incident_rollback_takes_over_at_once(pair):
    run = pair.start("deploy", **version(7))
    # the switch step moves the listeners, reads them back, then marks the old colour standby (what a rollback
    # restores): killed once that step is done
    killed = kill_when(
        run,
        lambda: pair.live() == {"green": 1} and pair.asg("blue")["TagMap"].get("cutover:state") == "standby",
        "production to be switched to green and blue marked standby",
    )
    dead = pair.lock()
    rollback = pair.play("rollback", f"takeover={dead['token']}", rollback_standby_ttl="1")
    assert rollback.ok, rollback.failure()
    assert time.time() < dead["expires_at"]  # done before the dead run's lease would have expired
    assert pair.live() == {"blue": 1}
    interrupted = pair.entry(dead["deployment_id"])
    assert interrupted["outcome"] == "interrupted"
    assert "took the lock from it by name for rollback to blue" in interrupted["summary"]
    rolled = pair.entry(interrupted["record"]["interrupted_by"]["deployment_id"])
    assert rolled["record"]["kind"] == "rollback" and rolled["outcome"] == "succeeded"
    assert rolled["record"]["took_over"] == {
        "owner": dead["owner"],
        "purpose": "deploy v7 to green",
        "deployment_id": dead["deployment_id"],
        "reason": "named",
        "at": rolled["record"]["took_over"]["at"],
    }
    gone(run)
    held, _ = jobs_by_kind(run)
    # the heartbeat stopped either at the death of its controller or at the takeover, whichever it saw first
    assert held[0]["held"]["stopped"] in ("controller_gone", "not_held")
    assert parse_time(rolled["started_at"]).timestamp() - killed < 60


def test_killed_during_a_teardowns_drain_the_orphan_never_scales_down_and_a_takeover_finishes(pair):
    # the rollback before kept green warm for a second: its retire-after is due now, or in a moment
    due = parse_time(pair.asg("green")["TagMap"]["cutover:retire-after"])
    wait_until(lambda: due <= datetime.datetime.now(datetime.UTC), 5, "green's retire-after to pass")
    run = pair.start("teardown", teardown_lease_seconds=10)
    killed = kill_when(run, lambda: "draining" in pair.targets("green"), "green's targets to drain")
    dead = pair.lock()
    gone(run)  # the teardown module, left waiting for the drain in its worker, stopped too
    wait_until(lambda: not pair.targets("green"), 30, "the drain to end")  # the deregistration delay (5 s)
    time.sleep(max(0.0, killed + 12 - time.time()))
    green = pair.asg("green")
    assert green["DesiredCapacity"] == CAPACITY and green["TagMap"]["cutover:state"] == "standby"  # never scaled down
    held, _ = jobs_by_kind(run)
    assert [job["held"]["stopped"] for job in held] == ["controller_gone"]

    finished = pair.play("teardown", takeover=dead["owner"])
    assert finished.ok, finished.failure()
    green = pair.asg("green")
    assert (green["DesiredCapacity"], green["TagMap"]["cutover:state"]) == (0, "retired")
    assert pair.live() == {"blue": 1} and pair.lock() is None


def test_a_live_run_whose_lock_is_taken_stops_and_changes_nothing_more(pair):
    """Fencing without a death: the run and its background job go on living, and still stop."""
    broken = pair.start("deploy", **version(8, "\nfail_health=true"), deploy_lease_seconds=10)
    wait_until(lambda: pair.targets("green"), 120, "the broken release's targets to be registered")
    held = wait_until(lambda: (lambda lock: lock and lock["renewed_at"] != lock["acquired_at"] and lock)(pair.lock()), 30, "a renewal")
    assert held["owner"].endswith(f" pid {broken.pid}")  # renewed every 2.5 s while the run lives
    taking = pair.start("deploy", **version(9), deploy_lease_seconds=10, deploy_takeover=held["token"])
    lost = broken.finish()
    assert not lost.ok
    assert "deploy lost_lock" in lost.failure() and "lost the lock: the lock of service shop is now held by" in lost.failure()
    assert "it took the lock from this run at" in lost.failure() and ", by name" in lost.failure()
    assert lost.result("Switch production back").get("skipped")  # a run that lost its lock changes nothing more
    assert lost.result("Close the journal entry").get("skipped")
    done = taking.finish()
    assert done.ok, done.failure()
    assert pair.live() == {"green": 1}
    entry = pair.entry(held["deployment_id"])
    assert entry["outcome"] == "interrupted" and entry["record"]["interrupted_by"]["reason"] == "named"
    gone(broken)
    _held, (rollout,) = jobs_by_kind(broken)
    assert rollout["lost_lock"] and "by name" in rollout["msg"]


def test_a_promote_killed_after_its_switch_is_resumed_by_promoting_again(pair):
    canary = pair.play("deploy", **version(10), phase="canary", deploy_canary_weight=20, deploy_canary_seconds=5)
    assert canary.ok, canary.failure()
    assert pair.live() == {"green": 80, "blue": 20} and pair.lock() is None
    waiting = max(pair.entries().values(), key=lambda e: e["started_at"])
    assert waiting["outcome"] == "in_progress" and waiting["record"]["phase"] == "canary"

    run = pair.start("promote", deploy_canary_seconds=5, deploy_lease_seconds=10)
    kill_when(run, lambda: pair.live() == {"blue": 1}, "the promote to switch everything to blue")
    dead = pair.lock()
    assert dead["deployment_id"] == waiting["deployment_id"]
    promoted = pair.play("promote", f"takeover={dead['token']}")
    assert promoted.ok, promoted.failure()
    assert promoted.result("Canary in steps, each gated against the old colour").get("skipped")  # switched before the kill
    entry = pair.entry(waiting["deployment_id"])
    assert (entry["outcome"], entry["record"]["phase"], entry["summary"]) == ("succeeded", "promote", "blue is live with v10")
    assert pair.live() == {"blue": 1} and pair.asg("green")["TagMap"]["cutover:state"] == "standby"
    gone(run)
