"""The main job on the sandbox: a blue-green release under load, a rollback, a teardown, and a bad release caught by the bake.

``python -m sandbox demo`` (what ``make demo`` runs) starts a clean sandbox,
provisions the ``shop`` pair from infra/aws, sends a bounded load of real HTTP
requests through the production listener, and runs the playbooks a user runs:
deploy v2 (blue -> green, proven from the load balancer's metrics and baked),
roll back (green -> blue), tear down the expired standby (drain, scale to zero),
then deploy v3, a release that answers 5% of its requests with errors: it passes
its smoke test, takes production, fails its bake and is switched back to blue by
itself. It prints what each colour served in each phase, how many requests failed
(none but v3's), the time from the switch to the detection and to the restore,
writes a timeline picture with the switches, the detection and the automatic
switch-back marked, and stops the sandbox.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import server
from .dataplane.control import listener_urls, wait_settled
from .load import LoadLoop, mixed_window, moved_at, summarize
from .playbooks import run
from .provision import provision
from .timeline import draw

NEW_RELEASE = {"image_id": "ami-0b5c0de0000000002", "user_data": "version=v2", "version": "v2"}
BAD_RELEASE = {"image_id": "ami-0b5c0de0000000003", "user_data": "version=v3\nerror_rate=0.05", "version": "v3"}
STANDBY_TTL = 8
BAKE_SECONDS = 15


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _task(name: str) -> None:
    print(f"   - {name}", flush=True)


def _phase(label: str, samples: list, since: float, until: float) -> dict:
    summary = summarize(samples, since, until)
    served = ", ".join(f"{color} {count}" for color, count in sorted(summary["by_color"].items())) or "nothing"
    print(f"   {label}: {summary['requests']} requests ({served}), {summary['failed']} failed", flush=True)
    return summary


def _records(directory: Path) -> tuple[dict, dict, dict]:
    """The good deploy's record, the rollback's and the bad deploy's, as their roles wrote them."""
    records = [json.loads(p.read_text()) for p in directory.glob("*.json")]
    deploys = sorted((r for r in records if r.get("kind") != "rollback"), key=lambda r: r["started_at"])
    rollback = next(r for r in records if r.get("kind") == "rollback")
    return deploys[0], rollback, deploys[-1]


def main(
    port: int | None = None,
    directory: Path | None = None,
    rate: float = 100.0,
    picture: Path | None = None,
    metric_period: int | None = None,
) -> int:
    folder = server.state_dir(directory)
    records = folder / "records"
    records.mkdir(parents=True, exist_ok=True)
    for old in records.glob("*.json"):
        old.unlink()
    began = time.monotonic()
    sandbox = server.start(port=port, directory=folder, metric_period=metric_period)
    try:
        print(f"sandbox up at {sandbox.endpoint} ({time.monotonic() - began:.1f} s)")
        print(f"   load-balancer metrics: {sandbox.metric_period}-second periods, published {sandbox.metric_lag:g} s after they end")
        outputs = provision(sandbox.endpoint)
        wait_settled(sandbox.endpoint)
        urls = listener_urls(folder)
        production, test = urls[outputs["production_listener_arn"]], urls[outputs["test_listener_arn"]]
        print(f"pair {outputs['service']} provisioned and serving ({time.monotonic() - began:.1f} s)")
        print(f"   production listener -> {production}   test listener -> {test}")

        events: list[tuple[float, str, str]] = []
        load = LoadLoop(production, rate=rate, threads=8, max_seconds=900).start()
        time.sleep(2)
        common = {"service": outputs["service"], "deploy_record_dir": str(records), "rollback_record_dir": str(records)}
        deploy_vars = {
            **common,
            "deploy_smoke_test_url": test,
            "deploy_metric_period": sandbox.metric_period,
            "deploy_bake_seconds": BAKE_SECONDS,
            "deploy_verify_timeout": 60,
            # the sandbox's instances share this machine's CPU: a busy machine adds tens of milliseconds to a p99
            # that AWS would not; the bad release below is caught by its errors
            "deploy_bake_latency_slack_ms": 250,
        }

        _step("deploy v2 to the idle colour, smoke-test it, switch, prove it from the metrics, bake it (playbooks/deploy.yml)")
        events.append((time.time(), "deploy v2 starts", "#444444"))
        code, output = run("deploy", sandbox, {**deploy_vars, **NEW_RELEASE}, _task)
        if code:
            print(output)
            return code
        time.sleep(2)

        _step("roll back to blue (playbooks/rollback.yml)")
        rollback_started = time.time()
        events.append((rollback_started, "rollback starts", "#444444"))
        code, output = run("rollback", sandbox, {**common, "rollback_standby_ttl": str(STANDBY_TTL)}, _task)
        if code:
            print(output)
            return code
        time.sleep(STANDBY_TTL)

        _step("tear down the expired standby: drain, then scale to zero (playbooks/teardown.yml)")
        events.append((time.time(), "teardown: drain", "#444444"))
        code, output = run("teardown", sandbox, {"services": outputs["service"]}, _task)
        events.append((time.time(), "teardown done", "#444444"))
        if code:
            print(output)
            return code
        time.sleep(2)

        _step("deploy v3, which answers 5% of its requests with errors: the bake catches it and switches back by itself")
        bad_started = time.time()
        events.append((bad_started, "deploy v3 starts", "#444444"))
        code, output = run("deploy", sandbox, {**deploy_vars, **BAD_RELEASE}, _task)
        if code == 0:
            print(output)
            print("v3 passed its bake: the demo expected the bake to catch it")
            return 1
        time.sleep(3)
        samples = load.stop()

        deploy, rollback, bad = _records(records)
        if bad["outcome"] != "rolled_back":
            print(output)
            return 1
        events += [
            (float(deploy["switched_at"]), "switch to green (v2)", "#444444"),
            (float(rollback["switched_at"]), "switch back to blue", "#444444"),
            (float(bad["switched_at"]), "switch to green (v3)", "#444444"),
            (float(bad["switched_at"]) + float(bad["detect_seconds"]), "bake detects v3's 5XX", "#d62728"),
            (float(bad["rolled_back_at"]), "automatic switch-back to blue", "#9467bd"),
        ]
        _step("what the load saw")
        start, end = samples[0].started, samples[-1].started + 1
        totals = _phase("all", samples, start, end)
        _phase("before the switch", samples, start, float(deploy["switched_at"]))
        _phase("between the switch and the rollback", samples, float(deploy["switched_at"]), float(rollback["switched_at"]))
        _phase("after the rollback, until v3", samples, float(rollback["switched_at"]), float(bad["switched_at"]))
        _phase("v3 live, until the automatic switch-back", samples, float(bad["switched_at"]), float(bad["rolled_back_at"]))
        _phase("after the automatic switch-back", samples, float(bad["rolled_back_at"]), end)
        failed = [s for s in samples if s.failed]
        expected = [s for s in failed if s.version == "v3" and s.status == 500]
        unexpected = len(failed) - len(expected)
        first = mixed_window([s for s in samples if s.started < rollback_started], "blue", "green")
        second = mixed_window([s for s in samples if rollback_started <= s.started < bad_started], "green", "blue")
        print(f"   rate {totals['rate']} requests/s; mixed-version window {first:.2f} s at the switch, {second:.2f} s at the rollback")
        restored = moved_at([s for s in samples if s.started < bad_started], rollback_started, "green", "blue")
        seen = f"{restored - rollback_started:.2f} s" if restored is not None else "never"
        print(f"   every request answered by blue {seen} after the rollback command was started (as the load saw it)")
        print(
            f"   deploy {deploy['deployment_seconds']} s (cutover {deploy['cutover_seconds']} s; {deploy['analysis']['bake']['summary']}); "
            f"rollback {rollback['end_to_end_seconds']} s end to end (from the command's start to the switch; "
            f"the rollback module {rollback['rollback_seconds']} s lock to unlock, its switch {rollback['cutover_seconds']} s)"
        )
        print(f"   v3: {bad['analysis']['failed']['summary']}")
        print(
            f"   v3: failure detected {bad['detect_seconds']} s after the switch, production restored {bad['restore_seconds']} s "
            f"after it; {len(expected)} requests answered 500 by v3 meanwhile, {unexpected} other failed requests"
        )
        target = draw(
            samples,
            sorted(events),
            picture or folder / "timeline.png",
            f"shop under {rate:.0f} requests/s: v2, rollback, teardown, v3 caught by the bake; "
            f"{unexpected} failed of {totals['requests']} but v3's {len(expected)} errors",
        )
        print(f"\ntimeline: {target}")
        return 1 if unexpected else 0
    finally:
        server.stop(folder)
        print(f"sandbox stopped ({time.monotonic() - began:.1f} s in all)")
