"""python -m sandbox {start,stop,status,env,provision,up,urls,instance,demo}"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import server
from .dataplane.control import ControlError


def _outputs_file(directory: Path) -> Path:
    return directory / "outputs.json"


def _print_env(sandbox: server.Sandbox) -> None:
    for key, value in sandbox.environment().items():
        print(f"export {key}={value}")


def _require(directory: Path) -> server.Sandbox:
    sandbox = server.current(directory)
    if sandbox is None:
        raise server.SandboxError(f"no sandbox is running (state in {directory}); start one with: python -m sandbox start")
    return sandbox


def _print_urls(directory: Path) -> None:
    from .dataplane.control import read_state

    state = read_state(directory)
    listeners = state.get("listeners", {})
    for arn, listener in sorted(listeners.items(), key=lambda item: (item[1]["load_balancer_name"], item[1]["listener_port"])):
        print(f"{listener['load_balancer_name']} {listener['protocol']}:{listener['listener_port']} -> {listener['url']}  ({arn})")


def _settle(sandbox: server.Sandbox, directory: Path, outputs: dict) -> None:
    """Wait until the pair's targets passed their first health checks; show where the listeners are."""
    from .dataplane import control

    if not control.read_state(directory):
        return
    _, waited = control.wait_settled(sandbox.endpoint)
    print(f"data plane settled ({waited:.1f} s: health checks passed); listeners on loopback:")
    _print_urls(directory)
    url = control.listener_urls(directory).get(outputs.get("production_listener_arn", ""))
    if url:
        import urllib.request

        with urllib.request.urlopen(url + "/", timeout=5) as response:  # noqa: S310 - loopback http
            body = json.loads(response.read())
        print(f"GET {url}/ -> {response.status}: version {body.get('version')} ({body.get('color')}) from {body.get('instance_id')}")


def cmd_start(options: argparse.Namespace) -> int:
    began = time.monotonic()
    sandbox = server.start(port=options.port, directory=options.dir, metric_period=options.metric_period, metric_lag=options.metric_lag)
    print(f"sandbox up at {sandbox.endpoint} (pid {sandbox.pid}, {time.monotonic() - began:.1f} s); use it with:")
    _print_env(sandbox)
    print(
        f"# load-balancer metrics: {sandbox.metric_period}-second periods published {sandbox.metric_lag:g} s after they end "
        f"(AWS: 60 s, about a minute); give the playbooks -e deploy_metric_period={sandbox.metric_period}"
    )
    from .dataplane.control import read_state

    state = read_state(server.state_dir(options.dir))
    if state:
        print(f"# data plane: haproxy {state['haproxy']['version']}; listener URLs (after provisioning): python -m sandbox urls")
    return 0


def cmd_stop(options: argparse.Namespace) -> int:
    was_running = server.stop(options.dir)
    print("sandbox stopped" if was_running else "no sandbox was running")
    return 0


def cmd_status(options: argparse.Namespace) -> int:
    sandbox = server.current(options.dir)
    if sandbox is None:
        print("no sandbox is running")
        return 1
    print(f"sandbox running at {sandbox.endpoint} (pid {sandbox.pid})")
    return 0


def cmd_env(options: argparse.Namespace) -> int:
    _print_env(_require(server.state_dir(options.dir)))
    return 0


def _provision(directory: Path, stack: str, overrides: dict[str, str]) -> dict:
    from .provision import provision

    sandbox = _require(directory)
    outputs = provision(sandbox.endpoint, stack=stack, overrides=overrides)
    outputs["endpoint"] = sandbox.endpoint
    _outputs_file(directory).write_text(json.dumps(outputs, indent=2, sort_keys=True))
    return outputs


def cmd_provision(options: argparse.Namespace) -> int:
    directory = server.state_dir(options.dir)
    overrides = dict(item.split("=", 1) for item in options.config)
    began = time.monotonic()
    outputs = _provision(directory, options.stack, overrides)
    print(f"provisioned the {outputs['service']} pair in {time.monotonic() - began:.1f} s; outputs in {_outputs_file(directory)}")
    print(json.dumps(outputs, indent=2, sort_keys=True))
    if not options.no_wait:
        _settle(_require(directory), directory, outputs)
    return 0


def cmd_urls(options: argparse.Namespace) -> int:
    directory = server.state_dir(options.dir)
    _require(directory)
    _print_urls(directory)
    return 0


def cmd_instance(options: argparse.Namespace) -> int:
    from .dataplane import control

    sandbox = _require(server.state_dir(options.dir))
    settings = {
        key: value
        for key, value in (
            ("fail_health", options.fail_health),
            ("error_rate", options.error_rate),
            ("delay_ms", options.delay_ms),
            ("health_delay_ms", options.health_delay_ms),
        )
        if value is not None
    }
    if options.reset:
        settings["reset"] = True
    if options.kill or options.restart:
        result = control.instance(sandbox.endpoint, options.instance_id, "kill" if options.kill else "restart")
    elif settings:
        result = control.instance(sandbox.endpoint, options.instance_id, "settings", **settings)
    else:
        result = control.instance(sandbox.endpoint, options.instance_id)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def cmd_demo(options: argparse.Namespace) -> int:
    from . import demo

    return demo.main(port=options.port, directory=options.dir, rate=options.rate, metric_period=options.metric_period)


def cmd_up(options: argparse.Namespace) -> int:
    """Start a clean sandbox, provision the pair, print its outputs, and stop (unless --keep)."""
    directory = server.state_dir(options.dir)
    began = time.monotonic()
    sandbox = server.start(port=options.port, directory=directory, metric_period=options.metric_period, metric_lag=options.metric_lag)
    try:
        print(f"sandbox up at {sandbox.endpoint} ({time.monotonic() - began:.1f} s)")
        outputs = _provision(directory, options.stack, dict(item.split("=", 1) for item in options.config))
        print(f"pair {outputs['service']} provisioned ({time.monotonic() - began:.1f} s):")
        print(json.dumps(outputs, indent=2, sort_keys=True))
        _settle(sandbox, directory, outputs)
    finally:
        if not options.keep:
            server.stop(directory)
            print(f"sandbox stopped ({time.monotonic() - began:.1f} s in all)")
    if options.keep:
        print("sandbox left running (--keep); stop it with: python -m sandbox stop")
        _print_env(sandbox)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="The cutover local AWS sandbox.")
    parser.add_argument("--dir", default=os.environ.get("CUTOVER_SANDBOX_DIR"), help="state directory (default .sandbox)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, help_text in (
        ("start", cmd_start, "start a clean sandbox (stops a running one first)"),
        ("stop", cmd_stop, "stop the sandbox; no process is left behind"),
        ("status", cmd_status, "is a sandbox running?"),
        ("env", cmd_env, "print the environment variables that point AWS clients at the sandbox"),
        ("provision", cmd_provision, "create the blue-green pair in the running sandbox from infra/aws"),
        ("up", cmd_up, "start, provision, print the outputs, stop"),
        ("urls", cmd_urls, "print each load-balancer listener's loopback URL"),
        ("instance", cmd_instance, "show or change one instance's process: health, errors, latency, kill, restart"),
        ("demo", cmd_demo, "the main job: a release, a rollback and a teardown under load, with a timeline picture"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        if name == "demo":
            sub.add_argument("--rate", type=float, default=100.0, help="requests/s of the load (default 100)")
        if name in ("start", "up", "demo"):
            sub.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default 5055, 0 = any free port)")
            sub.add_argument("--metric-period", type=int, default=None, help="seconds per load-balancer metric period (default 5; AWS: 60)")
        if name in ("start", "up"):
            sub.add_argument(
                "--metric-lag", type=float, default=None, help="seconds after a period ends before it is published (default 3)"
            )
        if name in ("provision", "up"):
            sub.add_argument("--stack", default="sandbox", help="stack file infra/aws/Pulumi.<stack>.yaml (default sandbox)")
            sub.add_argument("--config", action="append", default=[], metavar="cutover:KEY=VALUE", help="override a config value")
        if name == "up":
            sub.add_argument("--keep", action="store_true", help="leave the sandbox running")
        if name == "provision":
            sub.add_argument("--no-wait", action="store_true", help="do not wait for the targets' first health checks")
        if name == "instance":
            sub.add_argument("instance_id")
            health = sub.add_mutually_exclusive_group()
            health.add_argument("--fail-health", dest="fail_health", action="store_const", const=True, help="its /health answers 500")
            health.add_argument("--pass-health", dest="fail_health", action="store_const", const=False, help="its /health answers 200")
            sub.add_argument("--error-rate", type=float, help="fraction of requests answered 500 (0..1)")
            sub.add_argument("--delay-ms", type=int, help="latency added to every request")
            sub.add_argument("--health-delay-ms", type=int, help="latency added to health checks (beyond the timeout: Target.Timeout)")
            sub.add_argument("--reset", action="store_true", help="back to its release's settings")
            action = sub.add_mutually_exclusive_group()
            action.add_argument("--kill", action="store_true", help="SIGKILL its process (negative control: not restarted)")
            action.add_argument("--restart", action="store_true", help="start a fresh process")
    options = parser.parse_args(argv)
    try:
        return options.handler(options)
    except (server.SandboxError, ControlError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # ConfigError is a ValueError: bad input, nothing was created
        print(f"sandbox: invalid configuration: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
