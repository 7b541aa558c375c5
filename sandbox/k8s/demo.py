"""The main job on the Kubernetes sandbox: a release, a rollback and a teardown under load, with long requests in flight.

``python -m sandbox demo --kubernetes`` (what ``make demo-k8s`` runs) starts a
clean Kubernetes sandbox, provisions the app ``shop`` from infra/kubernetes (blue
live at v1), sends a bounded load of real HTTP requests through the live Service
``shop`` (a new connection per request: a Service balances connections), and runs
the playbooks a user runs with ``-e platform=kubernetes``: deploy v2 (green rolled
out, every pod Ready, smoke-tested through the preview Service, every Service
selecting blue switched to green and verified from its endpoints, blue kept warm),
roll back (green -> blue, green kept warm for a few seconds), tear down the expired
standby (its pods drained from the endpoints, the Deployment scaled to zero). Long
requests are started on the live colour right before the switch and right before
the rollback; they must finish on the colour they started on. It prints each step
as it runs, what each colour served in each phase and the failed requests (none),
writes the timeline picture and stops the sandbox. The helpers are the AWS demo's
(sandbox/demo.py).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

from .. import server as aws_server
from ..demo import _phase, _records, _step, _task
from ..load import LoadLoop, mixed_window, summarize
from ..playbooks import run
from ..timeline import draw
from . import control, server
from .provision import provision

APP = "shop"
NEW_IMAGE = "registry.local/shop:v2"
STANDBY_TTL = 6
LONG_SECONDS = (8, 16)  # before the switch (blue stays warm); before the rollback (green is torn down meanwhile)


class LongRequests:
    """A few slow requests through the live Service, each remembering its status, the colour that answered and when."""

    def __init__(self, url: str, seconds: float, count: int = 3):
        self.answers: list[tuple[int, str, float]] = []
        self.threads = [threading.Thread(target=self._one, args=(url, seconds), daemon=True) for _ in range(count)]
        self.started = time.time()
        for thread in self.threads:
            thread.start()

    def _one(self, url: str, seconds: float) -> None:
        try:
            with urllib.request.urlopen(f"{url}/slow?seconds={seconds}", timeout=seconds + 30) as response:  # noqa: S310 - loopback
                self.answers.append((response.status, json.loads(response.read()).get("color"), time.time()))
        except OSError as exc:
            self.answers.append((0, f"{type(exc).__name__}: {exc}", time.time()))

    def wait(self) -> list[tuple[int, str, float]]:
        for thread in self.threads:
            thread.join(timeout=60)
        return self.answers


def _long(label: str, requests: LongRequests, color: str) -> int:
    """Print how the long requests ended; return how many did not finish with 200 from ``color``."""
    answers = requests.wait()
    good = [a for a in answers if a[0] == 200 and a[1] == color]
    ends = ", ".join(f"{a[2] - requests.started:.1f} s" for a in sorted(answers, key=lambda a: a[2]))
    print(f"   {label}: {len(good)} of {len(answers)} answered 200 by {color} (after {ends})", flush=True)
    return len(answers) - len(good) + (len(requests.threads) - len(answers))


def main(port: int | None = None, directory: Path | None = None, rate: float = 100.0, picture: Path | None = None) -> int:
    folder = aws_server.state_dir(directory)
    records = folder / "records-k8s"
    records.mkdir(parents=True, exist_ok=True)
    for old in records.glob("*.json"):
        old.unlink()
    began = time.monotonic()
    sandbox = server.start(port=port, directory=folder)
    try:
        print(f"kubernetes sandbox up at {sandbox.endpoint} ({time.monotonic() - began:.1f} s)")
        outputs = provision(sandbox.kubeconfig)
        namespace = outputs.get("namespace", APP)
        url = control.wait_service(sandbox.endpoint, namespace, APP, endpoints=2)
        print(f"app {APP} provisioned from infra/kubernetes in namespace {namespace}, blue serving ({time.monotonic() - began:.1f} s)")
        print(f"   live Service {namespace}/{APP} -> {url}")

        events: list[tuple[float, str, str]] = []
        long_ones: dict[str, LongRequests] = {}
        load = LoadLoop(url, rate=rate, threads=8, max_seconds=600, keep_alive=False).start()
        time.sleep(2)
        common = {"platform": "kubernetes", "service": APP, "namespace": namespace}

        def on_deploy_task(name: str) -> None:
            _task(name)
            if name.startswith("Note in the journal entry when the switch begins"):  # the switch is next
                long_ones["switch"] = LongRequests(url, LONG_SECONDS[0])

        def on_rollback_task(name: str) -> None:
            _task(name)
            if name.startswith("Make this run's identity"):  # the rollback module is next
                long_ones["rollback"] = LongRequests(url, LONG_SECONDS[1])

        _step("deploy v2 to the idle colour, wait until every pod is Ready, smoke-test it, switch every Service (playbooks/deploy.yml)")
        events.append((time.time(), "deploy v2 starts", "#444444"))
        release = {**common, "image": NEW_IMAGE, "version": "v2", "deploy_record_dir": str(records)}
        code, output = run("deploy", sandbox, release, on_deploy_task)
        if code:
            print(output)
            return code
        time.sleep(2)

        _step(f"roll back to blue, green kept warm for {STANDBY_TTL} s (playbooks/rollback.yml)")
        rollback_started = time.time()
        events.append((rollback_started, "rollback starts", "#444444"))
        extra = {**common, "rollback_standby_ttl": str(STANDBY_TTL), "rollback_record_dir": str(records)}
        code, output = run("rollback", sandbox, extra, on_rollback_task)
        if code:
            print(output)
            return code
        time.sleep(STANDBY_TTL)

        _step("tear down the expired standby: its pods leave the endpoints, then its Deployment goes to zero (playbooks/teardown.yml)")
        teardown_started = time.time()
        events.append((teardown_started, "teardown starts", "#444444"))
        teardown = {"platform": "kubernetes", "services": APP, "namespace": namespace}
        code, output = run("teardown", sandbox, teardown, _task)
        teardown_done = time.time()
        events.append((teardown_done, "green scaled to 0", "#444444"))
        if code:
            print(output)
            return code
        time.sleep(2)
        samples = load.stop()

        deploy, rollback, _ = _records(records)
        switched, back = float(deploy["switched_at"]), float(rollback["switched_at"])
        events += [(switched, "switch to green (v2)", "#444444"), (back, "switch back to blue", "#444444")]
        _step("what the load saw")
        start, end = samples[0].started, samples[-1].started + 1
        totals = _phase("all", samples, start, end)
        _phase("before the switch", samples, start, switched)
        _phase("between the switch and the rollback", samples, switched, back)
        _phase("after the rollback, until the teardown", samples, back, teardown_started)
        _phase("during the teardown", samples, teardown_started, teardown_done)
        _phase("after the teardown", samples, teardown_done, end)
        broken = _long("long requests started on blue before the switch", long_ones["switch"], "blue")
        broken += _long("long requests started on green before the rollback", long_ones["rollback"], "green")
        first = mixed_window([s for s in samples if s.started < rollback_started], "blue", "green")
        second = mixed_window([s for s in samples if s.started >= rollback_started], "green", "blue")
        print(f"   rate {totals['rate']} requests/s; mixed-version window {first:.2f} s at the switch, {second:.2f} s at the rollback")
        print(
            f"   deploy {deploy['deployment_seconds']} s (switch {deploy['cutover_seconds']} s, endpoints verified after "
            f"{deploy['traffic_stop_seconds']} s); rollback {rollback['rollback_seconds']} s (switch {rollback['cutover_seconds']} s)"
        )
        failed = summarize(samples)["failed"]
        target = draw(
            samples,
            sorted(events),
            picture or folder / "timeline-k8s.png",
            f"{APP} on Kubernetes under {rate:.0f} requests/s: v2, rollback, teardown; {failed} failed of {totals['requests']}",
        )
        print(f"\ntimeline: {target}")
        return 1 if failed or broken else 0
    finally:
        server.stop(folder)
        print(f"kubernetes sandbox stopped ({time.monotonic() - began:.1f} s in all)")
