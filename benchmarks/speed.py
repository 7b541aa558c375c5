"""Benchmark: our release against the bare stock-module playbook, side by side on one sandbox, and fleets.

What it runs, on one sandbox and its ``shop`` pair, under one bounded loopback load (``--rate``
requests/s through the production listener during every measured run):

* ``--runs`` cycles of, in this order: the baseline deploy (``benchmarks/baseline/deploy.yml``: stock
  amazon.aws / community.aws modules), our ``playbooks/deploy.yml``, then both rollbacks to the warm
  standby our deploy left (ours, ``playbooks/rollback.yml``, and the stock ``benchmarks/baseline/rollback.yml``;
  which goes first alternates). Before each deploy the pair is put in the same state (the live colour at
  capacity, the idle colour at zero with an empty target group, the test listener on the idle colour, the
  rules on the live one); after each rollback production is put back, untimed.
* ``--fleet 1,5,20``: a second sandbox with that many pairs (``svc01``...), and for each size one run of
  ``playbooks/deploy.yml -e services=svc01,...`` with as many forks, each pair under its own small load.

The waits AWS imposes are the same for both playbooks and are read from the sandbox, not from the
playbooks' own timers (which include how late each noticed): the health wait is the time from the first
target of the new colour registered to the last one healthy (the sandbox's log), plus the instances' way to
InService (our record); the traffic proof must wait for the first complete metric period after the switch
and its publication lag (``ceil(switch / period) * period + period + lag - switch``); a bake (``--bake``)
until the end of its window (the analysis module's own ``window()``) and the lag. What it prints, per run and as medians:

* deploy wall time, those waits and the overhead (wall - waits) of each; the ratio ours / baseline
  (target <= 1.0), and the same ratio with the baseline's health wait taken from its own until-loop task;
* how late each playbook moved on after the last target was healthy;
* rollback end to end: from the command's start until the load sees every request on the restored colour,
  ours against the stock rollback's (and against the stock playbook's wall time; target <= 1.0), next to the
  figure our rollback record keeps (the command's start to the switch) and the module's own time;
* AWS API calls per run (the sandbox's counter), failed requests, the CPU ansible used;
* where our deploy's time goes: each task's median duration, grouped (module start-ups, the background
  rollout job, lock and journal, smoke test, small tasks, ansible-playbook's own start and end), and what one
  task costs here (a controller-side task, a module, an AWS module, our pair_info);
* for fleets: the wall time of one run releasing N services against one releasing one, and what the machine
  spent on it (ansible, the sandbox's API and data plane, HAProxy, the instances, the load).

    .venv/bin/python benchmarks/speed.py [--runs 3] [--rate 100] [--bake SECONDS] [--fleet 1,5,20] [--fleet-rate 5]

A benchmark, not a test: it prints numbers; the machine's load shows in them (run it on a quiet machine, or
say that it was not).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402

from sandbox import ACCESS_KEY, REGION, SECRET_KEY, server  # noqa: E402
from sandbox.dataplane.control import call, wait_settled  # noqa: E402
from sandbox.fleet import Pair, provision_pairs  # noqa: E402
from sandbox.load import LoadLoop, moved_at  # noqa: E402
from sandbox.playbooks import environment, link_collection  # noqa: E402

sys.path.insert(0, str(link_collection()))
from ansible_collections.cutover.bluegreen.plugins.module_utils.analysis import window as analysis_window  # noqa: E402
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import TAG_RETIRE_AFTER, TAG_STATE  # noqa: E402

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
OURS = {"deploy": REPO / "playbooks" / "deploy.yml", "rollback": REPO / "playbooks" / "rollback.yml"}
STOCK = {"deploy": REPO / "benchmarks" / "baseline" / "deploy.yml", "rollback": REPO / "benchmarks" / "baseline" / "rollback.yml"}
STOCK_HEALTH_TASK = "Wait until every target of the idle target group is healthy"
COLORS = ("blue", "green")
TICK = os.sysconf("SC_CLK_TCK")


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


# -- CPU of processes ------------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (with ``children``: of its reaped children too), from /proc."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / TICK


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class CpuMeter:
    """CPU spent between start and stop: ansible (this process's reaped children), the sandbox daemon (moto, the
    data plane), HAProxy (its master, workers and the workers it reaped), the instances (the rest of the sandbox's
    process group, and those the daemon reaped) and this process (the load loops)."""

    sandbox_pid: int
    spent: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        members = [pid for pid in server.group_members(self.sandbox_pid) if pid != self.sandbox_pid]
        haproxy = [pid for pid in members if _name(pid) == "haproxy"]
        return {
            "ansible": children.ru_utime + children.ru_stime,
            "sandbox API and data plane": process_cpu(self.sandbox_pid),
            "haproxy": sum(process_cpu(pid, children=True) for pid in haproxy),
            "instances": sum(process_cpu(pid) for pid in members if pid not in haproxy)
            + process_cpu(self.sandbox_pid, children=True)
            - process_cpu(self.sandbox_pid),
            "load loops (this process)": own.ru_utime + own.ru_stime,
        }

    @contextlib.contextmanager
    def measure(self) -> Iterator[CpuMeter]:
        before = self._read()
        yield self
        after = self._read()
        self.spent = {key: max(0.0, after[key] - before[key]) for key in before}


# -- ansible-playbook runs ----------------------------------------------------------------------------------------
@dataclass
class Task:
    name: str
    action: str
    seconds: float
    start: float
    end: float
    skipped: bool
    result: dict[str, Any]


@dataclass
class Run:
    code: int
    wall: float
    started: float  # time.time() right before the command was started
    ended: float
    document: dict[str, Any]
    output: str
    cpu: float = 0.0

    @property
    def tasks(self) -> list[Task]:
        found = []
        for play in self.document.get("plays", []):
            for task in play.get("tasks", []):
                result = task["hosts"].get("localhost", {})
                duration = task["task"].get("duration", {})
                if "start" not in duration or "end" not in duration:
                    continue
                start, end = epoch(duration["start"]), epoch(duration["end"])
                found.append(
                    Task(task["task"]["name"], result.get("action", ""), end - start, start, end, bool(result.get("skipped")), result)
                )
        return found

    def task(self, name: str) -> Task | None:
        """The first task whose name, without its role's prefix, starts with ``name``."""
        return next((t for t in self.tasks if t.name.split(" : ", 1)[-1].startswith(name)), None)

    def failure(self) -> str:
        messages = [f"{t.name}: {t.result.get('msg')}" for t in self.tasks if t.result.get("failed")]
        return " | ".join(messages) or self.output[-3000:]


class Command:
    """One ``ansible-playbook`` run, started now; ``finish()`` waits for it (runs may overlap)."""

    def __init__(self, playbook: Path, extra_vars: dict[str, Any], env: dict[str, str], args: list[str] | None = None):
        # open until finish(): the run goes on meanwhile
        self._out = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self._err = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.started = time.time()
        self._began = time.monotonic()
        self._cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.process = subprocess.Popen(
            [ANSIBLE_PLAYBOOK, str(playbook), *(args or []), "-e", json.dumps(extra_vars)],
            cwd=REPO,
            env=env,
            stdout=self._out,
            stderr=self._err,
            text=True,
        )

    def finish(self, timeout: float = 1200) -> Run:
        code = self.process.wait(timeout=timeout)
        wall = time.monotonic() - self._began
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._out.seek(0)
        self._err.seek(0)
        output, errors = self._out.read(), self._err.read()
        self._out.close()
        self._err.close()
        start = 0 if output.startswith("{") else output.find("\n{") + 1  # lines a pause prints come first
        try:
            document = json.loads(output[start:])
        except json.JSONDecodeError:
            document, output = {}, output + errors
        used = (cpu.ru_utime + cpu.ru_stime) - (self._cpu.ru_utime + self._cpu.ru_stime)  # exact when runs do not overlap
        return Run(code, wall, self.started, self.started + wall, document, output, used)


# -- the sandbox and its pairs ----------------------------------------------------------------------------------
RELEASES: dict[str, int] = defaultdict(lambda: 1)


def next_release(pair: Pair) -> dict[str, str]:
    """A version the pair does not run yet."""
    RELEASES[pair.service] += 1
    number = RELEASES[pair.service]
    return {"image_id": f"ami-0b5c0de{number:010d}", "user_data": f"version=v{number}", "version": f"v{number}"}


class Bench:
    def __init__(self, folder: Path):
        self.folder = folder
        self.sandbox = server.start(port=0, directory=folder)
        self.env = environment(self.sandbox)
        self.env.update({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
        session = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION)
        self.elbv2 = session.client("elbv2", endpoint_url=self.sandbox.endpoint)
        self.autoscaling = session.client("autoscaling", endpoint_url=self.sandbox.endpoint)
        self.pairs: dict[str, Pair] = {}

    @property
    def metric_period(self) -> int:
        return int(self.sandbox.metric_period)

    def proof_vars(self) -> dict[str, Any]:
        """The traffic proof (and a bake) at the sandbox's compressed metric period."""
        return {"deploy_metric_period": self.metric_period}

    def imposed_after_switch(self, switched_at: float, bake: int) -> float:
        """What the metrics make a release wait after its switch, at best: the first complete period after the
        switch (and, with a bake, its whole periods) plus the publication lag."""
        period, lag = self.metric_period, float(self.sandbox.metric_lag)
        first = math.ceil(switched_at / period) * period
        proof_end = first + period + lag
        # the bake judges the window the analysis module computes (whole periods from the one the switch fell in,
        # to the end of the one its last second falls in), once that window's last period is published
        bake_end = analysis_window(switched_at, bake, period)[1] + lag if bake else 0.0
        return max(proof_end, bake_end) - switched_at

    def stop(self) -> None:
        server.stop(self.folder)

    def provision(self, services: list[str], parallel: int = 2) -> None:
        """Provision each service's pair from infra/aws into this sandbox (sandbox.fleet)."""
        for (service, _region), pair in provision_pairs(self.folder, [(service, None) for service in services], parallel).items():
            self.pairs[service] = pair

    def live(self, pair: Pair) -> str:
        listener = self.elbv2.describe_listeners(ListenerArns=[pair.outputs["production_listener_arn"]])["Listeners"][0]
        target = listener["DefaultActions"][0].get("TargetGroupArn") or listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"][0]
        arn = target if isinstance(target, str) else target["TargetGroupArn"]
        return next(color for color, group in pair.outputs["target_group_arns"].items() if group == arn)

    def _forward(self, pair: Pair, color: str) -> list[dict[str, Any]]:
        return [{"Type": "forward", "TargetGroupArn": pair.outputs["target_group_arns"][color]}]

    def point_production(self, pair: Pair, color: str) -> None:
        """Production's default action to ``color`` (what the stock rollback changed), untimed."""
        self.elbv2.modify_listener(ListenerArn=pair.outputs["production_listener_arn"], DefaultActions=self._forward(pair, color))

    def settle(self, pairs: list[Pair], timeout: float = 120) -> None:
        """The same state before every deploy: the live colour at capacity and unmarked, the idle colour at zero
        with an empty target group, the test listener on the idle colour, the production rules on the live one."""
        idle_groups = {}
        for pair in pairs:
            live = self.live(pair)
            idle = other(live)
            self.autoscaling.update_auto_scaling_group(AutoScalingGroupName=pair.outputs["asg_names"][idle], MinSize=0, DesiredCapacity=0)
            self.elbv2.modify_listener(ListenerArn=pair.outputs["test_listener_arn"], DefaultActions=self._forward(pair, idle))
            for rule in pair.outputs.get("rule_arns") or []:
                self.elbv2.modify_rule(RuleArn=rule, Actions=self._forward(pair, live))
            # the stock playbooks know nothing of a standby mark: one they left on the live colour goes
            group = pair.outputs["asg_names"][live]
            tags = self.autoscaling.describe_tags(Filters=[{"Name": "auto-scaling-group", "Values": [group]}])["Tags"]
            stale = [t for t in tags if t["Key"] in (TAG_STATE, TAG_RETIRE_AFTER)]
            if stale:
                self.autoscaling.delete_tags(
                    Tags=[{"ResourceId": group, "ResourceType": "auto-scaling-group", "Key": t["Key"]} for t in stale]
                )
            idle_groups[pair.service] = (pair.outputs["asg_names"][idle], pair.outputs["target_group_arns"][idle])
        deadline = time.monotonic() + timeout
        for group, target_group in idle_groups.values():
            while True:
                [described] = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
                instances = described["Instances"]
                targets = self.elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
                if not instances and not targets:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{group} did not empty within {timeout} s: {len(instances)} instances, {len(targets)} targets")
                time.sleep(0.5)
        wait_settled(self.sandbox.endpoint, timeout=timeout)

    def api_calls(self, reset: bool = False) -> int:
        if reset:
            call(self.sandbox.endpoint, "api-calls", method="DELETE")
            return 0
        return int(call(self.sandbox.endpoint, "api-calls")["total"])

    def health_seen_by_sandbox(self, target_group: str, since: float) -> tuple[float, float] | None:
        """(first target registered, last target healthy) of a target group after ``since``, from the sandbox's log."""
        registered, healthy = [], []
        pattern = re.compile(
            r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO sandbox\.dataplane: target (\S+) of (\S+)( registered|: healthy)"
        )
        for line in Path(self.sandbox.log).read_text(errors="replace").splitlines():
            match = pattern.match(line)
            if not match or match.group(4) != target_group:
                continue
            moment = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000
            if moment < since:
                continue
            (healthy if match.group(5).endswith("healthy") else registered).append(moment)
        if not registered or not healthy:
            return None
        return min(registered), max(healthy)

    def command(self, playbook: Path, extra_vars: dict[str, Any], args: list[str] | None = None) -> Command:
        return Command(playbook, extra_vars, self.env, args)


# -- one measured run -----------------------------------------------------------------------------------------
@dataclass
class Measured:
    run: Run
    failed: int
    requests: int
    api_calls: int
    extra: dict[str, Any] = field(default_factory=dict)


def measured(bench: Bench, pair: Pair, playbook: Path, extra_vars: dict[str, Any], rate: float, after: float = 1.5) -> Measured:
    """Run a playbook under the load on the pair's production listener; count the requests that failed meanwhile."""
    bench.api_calls(reset=True)
    load = LoadLoop(pair.production_url, rate=rate, threads=8, max_seconds=900).start()
    try:
        time.sleep(1)
        run = bench.command(playbook, extra_vars).finish()
        calls = bench.api_calls()
        time.sleep(after)
    finally:
        samples = load.stop()
    during = [s for s in samples if s.started >= run.started]
    measured_run = Measured(run, sum(1 for s in during if s.failed), len(during), calls)
    measured_run.extra["samples"] = during
    return measured_run


def deploy_ours(bench: Bench, pair: Pair, rate: float, bake: int, records: Path) -> dict[str, Any]:
    live = bench.live(pair)
    folder = records / f"deploy-{time.time_ns()}"
    folder.mkdir()
    extra = {
        "service": pair.service,
        **next_release(pair),
        "deploy_smoke_test_url": pair.test_url,
        "deploy_record_dir": str(folder),
        "deploy_bake_seconds": bake,
        **bench.proof_vars(),
    }
    result = measured(bench, pair, OURS["deploy"], extra, rate)
    run = result.run
    if run.code:
        raise RuntimeError(f"our deploy failed: {run.failure()}")
    [record] = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    seen = bench.health_seen_by_sandbox(f"{pair.service}-{other(live)}", run.started)
    if seen is None:
        raise RuntimeError("the sandbox's log shows no target of the new colour registered and healthy")
    rollout = float(record.get("rollout_wait_seconds") or 0)
    waits = {
        "instances InService": rollout,
        "health checks": seen[1] - seen[0],
        "metrics after the switch": bench.imposed_after_switch(float(record["switched_at"]), bake),
    }
    # what the playbook itself waited, for comparison: its module's timers
    waited = {
        "rollout": rollout,
        "health": float(record.get("health_wait_seconds") or 0),
        "traffic proof": float(record.get("traffic_stop_seconds") or 0),
        "bake": sum(t.seconds for t in run.tasks if t.name.split(" : ", 1)[-1].startswith("Watch the bake")),
    }
    health_task = run.task("Wait for the instances")
    return {
        "wall": run.wall,
        "waits": waits,
        "wait": sum(waits.values()),
        "waited": waited,
        "overhead": run.wall - sum(waits.values()),
        "health_sandbox": seen[1] - seen[0],
        "moved_on_late": (health_task.end - seen[1]) if health_task else None,
        "switch": float(record.get("cutover_seconds") or 0),
        "api_calls": result.api_calls,
        "failed": result.failed,
        "requests": result.requests,
        "cpu": run.cpu,
        "run": run,
    }


def deploy_stock(bench: Bench, pair: Pair, rate: float) -> dict[str, Any]:
    live = bench.live(pair)
    release = next_release(pair)
    extra = {"service": pair.service, "image_id": release["image_id"], "user_data": release["user_data"]}
    result = measured(bench, pair, STOCK["deploy"], extra, rate)
    run = result.run
    if run.code:
        raise RuntimeError(f"the baseline deploy failed: {run.failure()}")
    health = run.task(STOCK_HEALTH_TASK)
    seen = bench.health_seen_by_sandbox(f"{pair.service}-{other(live)}", run.started)
    if seen is None:
        raise RuntimeError("the sandbox's log shows no target of the new colour registered and healthy")
    return {
        "wall": run.wall,
        "health_wait": health.seconds,
        "own": run.wall - (seen[1] - seen[0]),
        "own_by_task": run.wall - health.seconds,
        "health_sandbox": seen[1] - seen[0],
        "moved_on_late": health.end - seen[1],
        "api_calls": result.api_calls,
        "failed": result.failed,
        "requests": result.requests,
        "cpu": run.cpu,
        "run": run,
    }


def rollback(bench: Bench, pair: Pair, kind: str, rate: float, records: Path) -> dict[str, Any]:
    """Roll production back to the warm standby (ours or the stock playbook), then put it back, untimed."""
    live = bench.live(pair)
    folder = records / f"rollback-{time.time_ns()}"
    folder.mkdir()
    extra = {"service": pair.service}
    if kind == "ours":
        extra["rollback_record_dir"] = str(folder)
    result = measured(bench, pair, (OURS if kind == "ours" else STOCK)["rollback"], extra, rate, after=2.5)
    run = result.run
    if run.code:
        raise RuntimeError(f"the {kind} rollback failed: {run.failure()}")
    restored = moved_at(result.extra["samples"], run.started, live, other(live))
    figures = {
        "wall": run.wall,
        "end_to_end": (restored - run.started) if restored is not None else None,
        "failed": result.failed,
        "api_calls": result.api_calls,
        "run": run,
    }
    if kind == "ours":
        [record] = [json.loads(p.read_text()) for p in folder.glob("*.json")]
        figures["record_end_to_end"] = float(record["end_to_end_seconds"])
        figures["module"] = float(record["rollback_seconds"])
        # back to the state before: our own rollback again (it restores the standby marks too)
        back = bench.command(OURS["rollback"], {"service": pair.service, "to": live}).finish()
        if back.code:
            raise RuntimeError(f"rolling back the rollback failed: {back.failure()}")
    else:
        bench.point_production(pair, live)
    wait_settled(bench.sandbox.endpoint)
    return figures


# -- where the time goes ----------------------------------------------------------------------------------------
CONTROLLER_ACTIONS = {
    "ansible.builtin.set_fact",
    "set_fact",
    "ansible.builtin.assert",
    "assert",
    "ansible.builtin.debug",
    "debug",
    "ansible.builtin.include_tasks",
    "include_tasks",
    "ansible.builtin.fail",
    "fail",
    "ansible.builtin.set_stats",
    "set_stats",
    "ansible.builtin.validate_argument_spec",
    "validate_argument_spec",
    "cutover.bluegreen.validate_inputs",
    "cutover.bluegreen.run_identity",
    "cutover.bluegreen.record_file",
    "cutover.bluegreen.fleet_plan",
    "cutover.bluegreen.fleet_wave",
    "ansible.builtin.add_host",
    "add_host",
    "ansible.builtin.meta",
    "meta",
    "ansible.builtin.import_tasks",
}


def category(task: Task) -> str:
    name, action = task.name, task.action
    if task.skipped or action in CONTROLLER_ACTIONS or not action:
        return "small tasks on the controller (checks, facts, identity, record, summary, skipped)"
    if "async_status" in action or action.endswith("job_wait"):
        return "bake job and its polling" if "bake" in name.lower() else "rollout and health job: its polling"
    if action.endswith(".rollout"):
        return "rollout and health job: start in the background"
    if action.endswith((".journal", ".lock")):
        return "lock and journal (incl. the heartbeat's start)"
    if action.endswith(".pair_info"):
        return "pair discovery"
    if action.endswith((".switch", ".standby")):
        return "switch and standby marks"
    if action.endswith(".traffic"):
        return "traffic proof"
    if action.endswith(".analysis"):
        return "bake job and its polling"
    if action.endswith("uri"):
        return "smoke test"
    return f"other modules ({action})"


def breakdown(runs: list[dict[str, Any]]) -> None:
    """Median seconds of each task of our deploy and of each group of tasks, the waits taken out where they sit."""
    per_task: dict[str, list[float]] = defaultdict(list)
    per_group: dict[str, list[float]] = defaultdict(list)
    actions: dict[str, str] = {}
    for figures in runs:
        run: Run = figures["run"]
        groups: dict[str, float] = defaultdict(float)
        for task in run.tasks:
            per_task[task.name].append(task.seconds)
            short = task.action.replace("ansible.builtin.", "").replace("cutover.bluegreen.", "")
            actions[task.name] = "skipped" if task.skipped else short
            groups[category(task)] += task.seconds
        waits = figures["waits"]
        # the waits AWS imposes, taken out of the tasks that sit through them
        groups["rollout and health job: its polling"] -= waits["instances InService"] + waits["health checks"]
        groups["traffic proof"] -= waits["metrics after the switch"] - figures["waited"]["bake"]
        groups["bake job and its polling"] -= figures["waited"]["bake"]
        groups["ansible-playbook start-up and exit (outside every task)"] = run.wall - sum(t.seconds for t in run.tasks)
        for name, seconds in groups.items():
            per_group[name].append(seconds)
    print("\nwhere our deploy's own overhead goes (median s over the runs; the waits taken out of the tasks that wait):")
    for name, values in sorted(per_group.items(), key=lambda item: -median(item[1])):
        print(f"   {median(values):6.2f}  {name}")
    print("\nour deploy, task by task (median s; the waiting tasks include their waits):")
    for name, values in sorted(per_task.items(), key=lambda item: -median(item[1])):
        if median(values) >= 0.005:
            print(f"   {median(values):6.2f}  {name[:110]}  [{actions[name]}]")


def task_table(title: str, runs: list[dict[str, Any]]) -> None:
    """Median seconds of each task of some runs of one playbook, and of what happens outside every task."""
    per_task: dict[str, list[float]] = defaultdict(list)
    outside = []
    for figures in runs:
        run: Run = figures["run"]
        for task in run.tasks:
            per_task[task.name].append(task.seconds)
        outside.append(run.wall - sum(t.seconds for t in run.tasks))
    print(f"\n{title}, task by task (median s):")
    for name, values in sorted(per_task.items(), key=lambda item: -median(item[1])):
        print(f"   {median(values):6.2f}  {name[:110]}")
    print(f"   {median(outside):6.2f}  (ansible-playbook start-up and exit, outside every task)")


CALIBRATION = [
    {
        "name": "What one task costs",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [
            *({"name": f"controller-side task {i}", "ansible.builtin.set_fact": {"calibration": i}} for i in range(5)),
            *({"name": f"builtin module {i}", "ansible.builtin.ping": {}} for i in range(5)),
            *({"name": f"AWS module {i}", "amazon.aws.aws_az_info": {}} for i in range(5)),
            *({"name": f"pair_info {i}", "cutover.bluegreen.pair_info": {"service": "{{ service }}"}} for i in range(5)),
        ],
    }
]


def calibrate(bench: Bench, pair: Pair) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=REPO / ".tmp", delete=False) as handle:
        json.dump(CALIBRATION, handle)
    try:
        run = bench.command(Path(handle.name), {"service": pair.service}).finish()
    finally:
        os.unlink(handle.name)
    if run.code:
        raise RuntimeError(f"calibration failed: {run.failure()}")
    costs = {}
    for kind in ("controller-side task", "builtin module", "AWS module", "pair_info"):
        costs[kind] = median([t.seconds for t in run.tasks if t.name.startswith(kind)])
    cpu_per_task = run.cpu / len(run.tasks)
    print(
        "\nwhat one task costs here (median of 5 each): a controller-side task (set_fact) "
        f"{costs['controller-side task']:.3f} s, a module (ping) {costs['builtin module']:.2f} s, "
        f"an AWS module with one call (amazon.aws.aws_az_info) {costs['AWS module']:.2f} s, "
        f"our pair_info (start-up and discovery) {costs['pair_info']:.2f} s; "
        f"ansible-playbook's own start and exit {run.wall - sum(t.seconds for t in run.tasks):.2f} s; "
        f"CPU {run.cpu:.1f} s for the 20 tasks ({cpu_per_task:.2f} s a task on average)"
    )
    return costs


# -- the comparison -------------------------------------------------------------------------------------------
def compare(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        bench = Bench(Path(directory))
        try:
            bench.provision(["shop"])
            pair = bench.pairs["shop"]
            records = Path(directory) / "records"
            records.mkdir()
            period = bench.metric_period
            print(
                f"one sandbox, the shop pair (2 instances, health checks every 5 s, 2 to pass), {options.rate:.0f} requests/s "
                f"through production during each run; metric period {period} s; bake {options.bake or 'off'}"
            )
            calibrate(bench, pair)
            ours, stock, back = [], [], {"ours": [], "stock": []}
            for index in range(options.runs):
                bench.settle([pair])
                stock.append(deploy_stock(bench, pair, options.rate))
                bench.settle([pair])
                ours.append(deploy_ours(bench, pair, options.rate, options.bake, records))
                order = ("ours", "stock") if index % 2 == 0 else ("stock", "ours")
                for kind in order:
                    back[kind].append(rollback(bench, pair, kind, options.rate, records))
                o, s, r = ours[-1], stock[-1], back["ours"][-1]
                print(
                    f"cycle {index + 1}: baseline {s['wall']:.1f} s (health {s['health_sandbox']:.1f} s, own {s['own']:.1f} s, "
                    f"{s['api_calls']} API calls, {s['failed']} failed of {s['requests']}); ours {o['wall']:.1f} s "
                    f"(waits {o['wait']:.1f} s: " + ", ".join(f"{k} {v:.1f}" for k, v in o["waits"].items()) + f"; "
                    f"overhead {o['overhead']:.1f} s, {o['api_calls']} API calls, {o['failed']} failed of {o['requests']}); "
                    f"rollback ours {_fmt(r['end_to_end'])} s end to end (record {r['record_end_to_end']:.2f} s, "
                    f"module {r['module']:.2f} s), stock {_fmt(back['stock'][-1]['end_to_end'])} s",
                    flush=True,
                )
            report(options, ours, stock, back)
            breakdown(ours)
            task_table("the baseline deploy", stock)
            task_table("our rollback", back["ours"])
            task_table("the stock rollback", back["stock"])
        finally:
            bench.stop()


def _fmt(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def report(options: argparse.Namespace, ours: list[dict], stock: list[dict], back: dict[str, list[dict]]) -> None:
    def m(rows: list[dict], key: str) -> float:
        return median([r[key] for r in rows])

    wait_names = ours[0]["waits"].keys()
    ratio = m(ours, "overhead") / m(stock, "own")
    ratio_by_task = m(ours, "overhead") / m(stock, "own_by_task")
    rollback_ratio = m(back["ours"], "end_to_end") / m(back["stock"], "end_to_end")
    rollback_wall_ratio = m(back["ours"], "end_to_end") / m(back["stock"], "wall")
    print(f"\nmedians of {options.runs} runs each, interleaved (baseline, ours, baseline, ours, ...):")
    print(
        f"   baseline deploy: wall {m(stock, 'wall'):.2f} s, waits AWS imposes {m(stock, 'health_sandbox'):.2f} s "
        f"(health checks), own time {m(stock, 'own'):.2f} s; {m(stock, 'api_calls'):.0f} API calls, "
        f"{m(stock, 'failed'):.0f} failed requests, ansible CPU {m(stock, 'cpu'):.1f} s"
    )
    print(
        f"   our deploy:      wall {m(ours, 'wall'):.2f} s, waits AWS imposes {m(ours, 'wait'):.2f} s ("
        + ", ".join(f"{name} {median([r['waits'][name] for r in ours]):.2f}" for name in wait_names)
        + f"), own overhead {m(ours, 'overhead'):.2f} s; switch step {m(ours, 'switch'):.3f} s, "
        f"{m(ours, 'api_calls'):.0f} API calls, {m(ours, 'failed'):.0f} failed requests, ansible CPU {m(ours, 'cpu'):.1f} s"
    )
    print(
        "   what our playbook itself waited (its modules' timers): "
        + ", ".join(f"{name} {median([r['waited'][name] for r in ours]):.2f} s" for name in ours[0]["waited"])
    )
    print(f"   DEPLOY OVERHEAD RATIO, ours / the baseline's own time: {ratio:.2f} (target <= 1.0)")
    print(
        f"      (with the baseline's health wait as its own until-loop task took it, {m(stock, 'health_wait'):.2f} s: "
        f"own time {m(stock, 'own_by_task'):.2f} s, ratio {ratio_by_task:.2f})"
    )
    print(
        f"   moved on after the last target was healthy (the sandbox's log): baseline {m(stock, 'moved_on_late'):.2f} s later, "
        f"ours {m(ours, 'moved_on_late'):.2f} s later"
    )
    print(
        f"   rollback to the warm standby, end to end (the command's start to every request on the restored colour, "
        f"as the load saw it): ours {m(back['ours'], 'end_to_end'):.2f} s, stock {m(back['stock'], 'end_to_end'):.2f} s"
    )
    print(
        f"      our record: {m(back['ours'], 'record_end_to_end'):.2f} s from the command's start to the switch; the module "
        f"{m(back['ours'], 'module'):.2f} s lock to unlock; wall ours {m(back['ours'], 'wall'):.2f} s, "
        f"stock {m(back['stock'], 'wall'):.2f} s; "
        f"API calls ours {m(back['ours'], 'api_calls'):.0f}, stock {m(back['stock'], 'api_calls'):.0f}; "
        f"failed requests ours {m(back['ours'], 'failed'):.0f}, stock {m(back['stock'], 'failed'):.0f}"
    )
    print(
        f"   ROLLBACK RATIO, ours end to end / the stock rollback's end to end: {rollback_ratio:.2f}; "
        f"/ the stock playbook's wall time: {rollback_wall_ratio:.2f} (target <= 1.0)"
    )


# -- fleets -----------------------------------------------------------------------------------------------------
def fleet_run(bench: Bench, pairs: list[Pair], bake: int, records: Path) -> Command:
    """One ``playbooks/deploy.yml`` run releasing ``pairs`` (``-e services=...``), as many forks as services; each
    service's smoke-test URL is a host variable of an inventory, as a user keeps it. Started now."""
    hosts = {pair.service: {"deploy_smoke_test_url": pair.test_url} for pair in pairs}
    inventory = records / f"fleet-{len(pairs)}.yml"
    inventory.write_text(json.dumps({"all": {"children": {"fleet": {"hosts": hosts}}}}))
    numbers = {next_release(pair)["version"] for pair in pairs}  # one version for the fleet: the highest of theirs
    number = max(int(version[1:]) for version in numbers)
    for pair in pairs:
        RELEASES[pair.service] = number
    release = {"image_id": f"ami-0b5c0de{number:010d}", "user_data": f"version=v{number}", "version": f"v{number}"}
    extra = {"services": ",".join(hosts), **release, "deploy_bake_seconds": bake, "deploy_record_dir": str(records), **bench.proof_vars()}
    return bench.command(OURS["deploy"], extra, ["-i", str(inventory), "-f", str(len(pairs))])


def fleet(options: argparse.Namespace) -> None:
    sizes = sorted({int(size) for size in options.fleet.split(",")})
    with tempfile.TemporaryDirectory() as directory:
        bench = Bench(Path(directory))
        try:
            began = time.monotonic()
            services = [f"svc{index:02d}" for index in range(1, max(sizes) + 1)]
            bench.provision(services)
            print(f"\nfleet: {len(services)} pairs provisioned in one sandbox in {time.monotonic() - began:.0f} s")
            walls = {}
            for size in sizes:
                pairs = [bench.pairs[s] for s in services[:size]]
                bench.settle(pairs)
                records = Path(directory) / f"fleet-records-{size}"
                records.mkdir()
                loads = [LoadLoop(p.production_url, rate=options.fleet_rate, threads=2, max_seconds=1800).start() for p in pairs]
                meter = CpuMeter(bench.sandbox.pid)
                try:
                    time.sleep(1)
                    with meter.measure():
                        run = fleet_run(bench, pairs, options.bake, records).finish(timeout=1800)
                finally:
                    samples = [sample for load in loads for sample in load.stop()]
                if run.code:
                    raise RuntimeError(f"the fleet of {size} failed: {fleet_summary(run) or run.output[-3000:]}")
                walls[size] = run.wall
                each = [float(json.loads(path.read_text())["deployment_seconds"]) for path in records.glob("*.json")]
                total = sum(meter.spent.values())
                print(
                    f"   {size:2d} services in one run (-f {size}): wall {run.wall:.1f} s; each service's deployment "
                    f"{median(each):.1f} s median, {max(each):.1f} s max; {sum(s.failed for s in samples)} failed of {len(samples)} "
                    f"requests; CPU {total:.0f} s = " + ", ".join(f"{k} {v:.1f}" for k, v in meter.spent.items()) + f"; "
                    f"{total / size:.1f} CPU s a service, the {os.cpu_count()} cores {100 * total / (os.cpu_count() * run.wall):.0f}% busy",
                    flush=True,
                )
            one = walls[min(sizes)]
            print(
                f"   FLEET WALL-TIME RATIO to a run of {min(sizes)}: "
                + ", ".join(f"{size}: {walls[size] / one:.2f}" for size in sizes)
                + " (target for 20: <= 3.0)"
            )
        finally:
            bench.stop()


def fleet_summary(run: Run) -> list[str]:
    """The fleet summary's lines of a run."""
    for play in run.document.get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"].startswith("Fleet summary"):
                for result in task["hosts"].values():
                    if result.get("msg"):
                        return result["msg"]
    return []


def machine() -> str:
    """The CPU, its cores and the memory, from /proc."""
    try:
        model = next(
            line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = "unknown CPU"
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown memory"
    return f"{os.cpu_count()} cores ({model}), {memory}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="deploys of each kind, interleaved (0: fleets only)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s through production during each run")
    parser.add_argument("--bake", type=int, default=0, help="deploy_bake_seconds of our deploys (default 0: no bake)")
    parser.add_argument("--fleet", default="", help="fleet sizes to time, e.g. 1,5,20 (default: none)")
    parser.add_argument("--fleet-rate", type=float, default=5.0, help="requests/s through each pair's production in a fleet run")
    options = parser.parse_args()
    print(f"machine: {machine()}; load average {', '.join(f'{v:.2f}' for v in os.getloadavg())} at the start")
    if options.runs:
        compare(options)
    if options.fleet:
        fleet(options)
    print(f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
