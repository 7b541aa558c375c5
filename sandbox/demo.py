"""The main job on the sandbox: a blue-green release under load, a rollback and a teardown.

``python -m sandbox demo`` (what ``make demo`` runs) starts a clean sandbox,
provisions the ``shop`` pair from infra/aws, sends a bounded load of real HTTP
requests through the production listener, and runs the playbooks a user runs:
deploy v2 (blue -> green), roll back (green -> blue), and tear down the
expired standby (drain, scale to zero). It prints what each colour served in
each phase and how many requests failed, writes a timeline picture, and stops
the sandbox.
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
STANDBY_TTL = 8


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _task(name: str) -> None:
    print(f"   - {name}", flush=True)


def _phase(label: str, samples: list, since: float, until: float) -> dict:
    summary = summarize(samples, since, until)
    served = ", ".join(f"{color} {count}" for color, count in sorted(summary["by_color"].items())) or "nothing"
    print(f"   {label}: {summary['requests']} requests ({served}), {summary['failed']} failed", flush=True)
    return summary


def _records(directory: Path) -> tuple[dict, dict]:
    """The deploy's record and the rollback's, as their roles wrote them."""
    records = [json.loads(p.read_text()) for p in directory.glob("*.json")]
    deploy = next(r for r in records if r.get("kind") != "rollback")
    rollback = next(r for r in records if r.get("kind") == "rollback")
    return deploy, rollback


def main(port: int | None = None, directory: Path | None = None, rate: float = 100.0, picture: Path | None = None) -> int:
    folder = server.state_dir(directory)
    records = folder / "records"
    records.mkdir(parents=True, exist_ok=True)
    for old in records.glob("*.json"):
        old.unlink()
    began = time.monotonic()
    sandbox = server.start(port=port, directory=folder)
    try:
        print(f"sandbox up at {sandbox.endpoint} ({time.monotonic() - began:.1f} s)")
        outputs = provision(sandbox.endpoint)
        wait_settled(sandbox.endpoint)
        urls = listener_urls(folder)
        production, test = urls[outputs["production_listener_arn"]], urls[outputs["test_listener_arn"]]
        print(f"pair {outputs['service']} provisioned and serving ({time.monotonic() - began:.1f} s)")
        print(f"   production listener -> {production}   test listener -> {test}")

        events: list[tuple[float, str]] = []
        load = LoadLoop(production, rate=rate, threads=8, max_seconds=600).start()
        time.sleep(2)
        common = {"service": outputs["service"], "deploy_record_dir": str(records), "rollback_record_dir": str(records)}

        _step("deploy v2 to the idle colour, smoke-test it, switch, verify (playbooks/deploy.yml)")
        events.append((time.time(), "deploy starts"))
        code, output = run("deploy", sandbox, {**common, **NEW_RELEASE, "deploy_smoke_test_url": test, "deploy_verify_window": 3}, _task)
        if code:
            print(output)
            return code
        time.sleep(2)

        _step("roll back to blue (playbooks/rollback.yml)")
        rollback_started = time.time()
        events.append((rollback_started, "rollback starts"))
        code, output = run("rollback", sandbox, {**common, "rollback_standby_ttl": str(STANDBY_TTL)}, _task)
        if code:
            print(output)
            return code
        time.sleep(STANDBY_TTL)

        _step("tear down the expired standby: drain, then scale to zero (playbooks/teardown.yml)")
        events.append((time.time(), "teardown: drain"))
        code, output = run("teardown", sandbox, {"services": outputs["service"]}, _task)
        events.append((time.time(), "teardown done"))
        if code:
            print(output)
            return code
        time.sleep(2)
        samples = load.stop()

        deploy, rollback = _records(records)
        events += [(float(deploy["switched_at"]), "switch to green"), (float(rollback["switched_at"]), "switch back to blue")]
        _step("what the load saw")
        start, end = samples[0].started, samples[-1].started + 1
        totals = _phase("all", samples, start, end)
        _phase("before the switch", samples, start, float(deploy["switched_at"]))
        _phase("between the switch and the rollback", samples, float(deploy["switched_at"]), float(rollback["switched_at"]))
        _phase("after the rollback", samples, float(rollback["switched_at"]), end)
        first = mixed_window([s for s in samples if s.started < rollback_started], "blue", "green")
        second = mixed_window([s for s in samples if s.started >= rollback_started], "green", "blue")
        print(f"   rate {totals['rate']} requests/s; mixed-version window {first:.2f} s at the switch, {second:.2f} s at the rollback")
        restored = moved_at(samples, rollback_started, "green", "blue")
        seen = f"{restored - rollback_started:.2f} s" if restored is not None else "never"
        print(f"   every request answered by blue {seen} after the rollback command was started (as the load saw it)")
        print(
            f"   deploy {deploy['deployment_seconds']} s (cutover {deploy['cutover_seconds']} s); "
            f"rollback {rollback['end_to_end_seconds']} s end to end (from the command's start to the switch; "
            f"the rollback module {rollback['rollback_seconds']} s lock to unlock, its switch {rollback['cutover_seconds']} s)"
        )
        target = draw(
            samples,
            sorted(events),
            picture or folder / "timeline.png",
            f"shop: deploy v2, rollback, teardown under {rate:.0f} requests/s: {totals['failed']} failed of {totals['requests']}",
        )
        print(f"\ntimeline: {target}")
        return 1 if totals["failed"] else 0
    finally:
        server.stop(folder)
        print(f"sandbox stopped ({time.monotonic() - began:.1f} s in all)")
