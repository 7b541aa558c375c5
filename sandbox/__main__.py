"""python -m sandbox {start,stop,status,env,provision,up,urls,instance,pod,image,faults,demo}"""

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


def _kubernetes():
    from .k8s import server as k8s_server

    return k8s_server


def _fault_rule(options: argparse.Namespace, prefix: str = "") -> dict:
    """One fault rule from the options (``--rate`` ... or, for start, ``--fault-rate`` ...)."""

    def get(name: str):
        return getattr(options, prefix + name)

    rule = {"rate": get("rate"), "error": get("error"), "when": "after" if get("after") else "before", "writes": get("writes")}
    if get("times") is not None:
        rule["times"] = get("times")
    if get("service"):
        rule["service"] = get("service")
    if get("operation"):
        rule["operation"] = get("operation")
    return rule


def _require_rate(options: argparse.Namespace, prefix: str = "") -> None:
    """Rule options without a rate would be silently ignored: refuse them."""
    flag = "--" + prefix.replace("_", "-")
    given = [
        flag + name
        for name in ("service", "operation", "after", "writes", "times")
        if getattr(options, prefix + name) not in (None, False, [])
    ]
    if getattr(options, prefix + "error") != "throttling":
        given.append(flag + "error")
    if given and getattr(options, prefix + "rate") is None:
        raise ValueError(f"{', '.join(given)} belong to a fault rule: give its {flag}rate (0..1) too")


def _add_fault_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    flag = "--" + prefix.replace("_", "-")
    parser.add_argument(flag + "rate", dest=prefix + "rate", type=float, help="share of matching calls that fail (0..1)")
    parser.add_argument(
        flag + "service",
        dest=prefix + "service",
        action="append",
        metavar="SERVICE",
        help="only this service (elbv2, autoscaling, ec2, cloudwatch, dynamodb, ssm); repeatable; default every service",
    )
    parser.add_argument(
        flag + "operation",
        dest=prefix + "operation",
        action="append",
        metavar="OPERATION",
        help="only this API operation, e.g. DescribeListeners; repeatable; default every operation",
    )
    parser.add_argument(
        flag + "error",
        dest=prefix + "error",
        choices=["throttling", "500"],
        default="throttling",
        help="the service's throttling error (default) or a 500 server error",
    )
    parser.add_argument(
        flag + "after", dest=prefix + "after", action="store_true", help="with --error 500: apply the request, then lose its response"
    )
    parser.add_argument(flag + "writes", dest=prefix + "writes", action="store_true", help="only operations that change something")
    parser.add_argument(flag + "times", dest=prefix + "times", type=int, default=None, help="end the rule after it failed this many calls")
    parser.add_argument(flag + "seed", dest=prefix + "seed", type=int, default=None, help="seed of the random streams (default 0)")


def cmd_start(options: argparse.Namespace) -> int:
    began = time.monotonic()
    if options.kubernetes:
        if options.metric_period is not None or options.metric_lag is not None:
            raise ValueError("--metric-period and --metric-lag are the AWS sandbox's load-balancer metrics: not with --kubernetes")
        k8s = _kubernetes().start(port=options.port, directory=options.dir)
        print(f"kubernetes sandbox up at {k8s.endpoint} (pid {k8s.pid}, {time.monotonic() - began:.1f} s); use it with:")
        for key, value in k8s.environment().items():
            print(f"export {key}={value}")
        print("# Services' loopback URLs: python -m sandbox urls")
        return 0
    _require_rate(options, "fault_")
    faults = None
    if options.fault_rate is not None:
        faults = {"rules": [_fault_rule(options, "fault_")], "seed": options.fault_seed or 0}
    sandbox = server.start(
        port=options.port, directory=options.dir, faults=faults, metric_period=options.metric_period, metric_lag=options.metric_lag
    )
    print(f"sandbox up at {sandbox.endpoint} (pid {sandbox.pid}, {time.monotonic() - began:.1f} s); use it with:")
    if faults:
        print(f"# fault injection on: {json.dumps(faults)} (python -m sandbox faults --off to stop it)")
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
    kubernetes_was_running = _kubernetes().stop(options.dir)
    if was_running:
        print("sandbox stopped")
    if kubernetes_was_running:
        print("kubernetes sandbox stopped")
    if not was_running and not kubernetes_was_running:
        print("no sandbox was running")
    return 0


def cmd_status(options: argparse.Namespace) -> int:
    sandbox = server.current(options.dir)
    k8s = _kubernetes().current(options.dir)
    if sandbox is None and k8s is None:
        print("no sandbox is running")
        return 1
    if sandbox is not None:
        print(f"sandbox running at {sandbox.endpoint} (pid {sandbox.pid})")
    if k8s is not None:
        print(f"kubernetes sandbox running at {k8s.endpoint} (pid {k8s.pid}), kubeconfig {k8s.kubeconfig}")
    return 0


def cmd_env(options: argparse.Namespace) -> int:
    directory = server.state_dir(options.dir)
    k8s = _kubernetes().current(directory)
    if k8s is not None:
        for key, value in k8s.environment().items():
            print(f"export {key}={value}")
        if server.current(directory) is None:
            return 0
    _print_env(_require(directory))
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
    if options.kubernetes:
        from .k8s import provision as k8s_provision

        k8s = _require_kubernetes(directory)
        program = Path(options.program) if options.program else k8s_provision.PROGRAM
        began = time.monotonic()
        overrides = dict(item.split("=", 1) for item in options.config)
        outputs = k8s_provision.provision(k8s.kubeconfig, program, stack=options.stack, overrides=overrides)
        (directory / "kubernetes-outputs.json").write_text(json.dumps(outputs, indent=2, sort_keys=True))
        print(f"provisioned {program} into the Kubernetes sandbox in {time.monotonic() - began:.1f} s")
        print(json.dumps(outputs, indent=2, sort_keys=True))
        return 0
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
    if _kubernetes().current(directory) is not None:
        from .k8s.control import service_urls

        for service, ports in sorted(service_urls(directory).items()):
            for port, url in sorted(ports.items(), key=lambda item: int(item[0])):
                print(f"service {service}:{port} -> {url}")
        if server.current(directory) is None:
            return 0
    _require(directory)
    _print_urls(directory)
    return 0


def _require_kubernetes(directory: Path):
    k8s = _kubernetes().current(directory)
    if k8s is None:
        raise server.SandboxError(
            f"no Kubernetes sandbox is running (state in {directory}); start one with: python -m sandbox start --kubernetes"
        )
    return k8s


def _settings(options: argparse.Namespace, names: tuple[str, ...]) -> dict:
    settings = {name: getattr(options, name) for name in names if getattr(options, name, None) is not None}
    if getattr(options, "reset", False):
        settings["reset"] = True
    return settings


def cmd_pod(options: argparse.Namespace) -> int:
    from .k8s import control as k8s_control

    k8s = _require_kubernetes(server.state_dir(options.dir))
    namespace, _, name = options.pod.rpartition("/")
    namespace = namespace or options.namespace
    settings = _settings(options, ("fail_health", "error_rate", "delay_ms", "health_delay_ms"))
    if options.kill:
        result = k8s_control.pod(k8s.endpoint, namespace, name, "kill", options.container)
    elif settings:
        result = k8s_control.pod(k8s.endpoint, namespace, name, "settings", options.container, **settings)
    else:
        result = k8s_control.pod(k8s.endpoint, namespace, name, "show", options.container)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def cmd_image(options: argparse.Namespace) -> int:
    from .k8s import control as k8s_control

    k8s = _require_kubernetes(server.state_dir(options.dir))
    settings = _settings(options, ("fail_health", "error_rate", "delay_ms", "health_delay_ms", "crash", "pull_error", "version"))
    print(json.dumps(k8s_control.image(k8s.endpoint, options.image, **settings), indent=2, sort_keys=True))
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


def cmd_faults(options: argparse.Namespace) -> int:
    """Show, set, extend (--add) or end (--off) fault injection in the running sandbox."""
    from .dataplane import control

    if not options.off:
        _require_rate(options)
    sandbox = _require(server.state_dir(options.dir))
    if options.off:
        result = control.call(sandbox.endpoint, "faults", method="DELETE")
    elif options.rate is not None:
        body = {"rules": [_fault_rule(options)], "add": options.add}
        if options.seed is not None:
            body["seed"] = options.seed
        result = control.call(sandbox.endpoint, "faults", body)
    else:
        result = control.call(sandbox.endpoint, "faults")
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def cmd_demo(options: argparse.Namespace) -> int:
    if options.kubernetes:
        if options.metric_period is not None:
            raise ValueError("--metric-period is the AWS sandbox's load-balancer metrics: not with --kubernetes")
        from .k8s import demo as k8s_demo

        return k8s_demo.main(port=options.port, directory=options.dir, rate=options.rate)
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
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="The cutover local sandboxes: AWS, and Kubernetes (--kubernetes)."
    )
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
        ("pod", cmd_pod, "Kubernetes sandbox: show or change one pod's process: health, errors, latency, kill"),
        ("image", cmd_image, "Kubernetes sandbox: what pods of an image do (fail health, errors, latency, crash, pull error)"),
        ("faults", cmd_faults, "answer a share of AWS API calls with throttling or a 500, seeded (no options: show)"),
        ("demo", cmd_demo, "the main job: a release, a rollback and a teardown under load, with a timeline picture"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        if name == "demo":
            sub.add_argument("--rate", type=float, default=100.0, help="requests/s of the load (default 100)")
        if name in ("start", "up", "demo"):
            sub.add_argument(
                "--port", type=int, default=None, help="port on 127.0.0.1 (default 5055, 5056 with --kubernetes; 0 = any free port)"
            )
        if name in ("start", "provision", "demo"):
            sub.add_argument("--kubernetes", action="store_true", help="the Kubernetes sandbox (an API, pods, Services) instead of AWS")
        if name == "provision":
            sub.add_argument("--program", default=None, help="with --kubernetes: the Pulumi program directory (default infra/kubernetes)")
        if name == "start":
            _add_fault_options(sub, "fault_")
        if name == "faults":
            _add_fault_options(sub)
            sub.add_argument("--add", action="store_true", help="add this rule to the rules in force instead of replacing them")
            sub.add_argument("--off", action="store_true", help="no more faults")
        if name in ("start", "up", "demo"):
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
        if name in ("pod", "image"):
            if name == "pod":
                sub.add_argument("pod", metavar="[NAMESPACE/]POD")
                sub.add_argument("-n", "--namespace", default="default")
                sub.add_argument("-c", "--container", default=None)
                sub.add_argument(
                    "--kill", action="store_true", help="SIGKILL the container's process (the kubelet restarts it after a back-off)"
                )
            else:
                sub.add_argument("image", metavar="IMAGE")
                sub.add_argument("--crash", action="store_const", const=True, help="its containers exit at start (CrashLoopBackOff)")
                sub.add_argument(
                    "--pull-error", dest="pull_error", action="store_const", const=True, help="it cannot be pulled (ImagePullBackOff)"
                )
                sub.add_argument("--version", help="the version its pods report (default: the tag)")
            health = sub.add_mutually_exclusive_group()
            health.add_argument("--fail-health", dest="fail_health", action="store_const", const=True, help="probes get 500")
            health.add_argument("--pass-health", dest="fail_health", action="store_const", const=False, help="probes get 200")
            sub.add_argument("--error-rate", type=float, help="fraction of requests answered 500 (0..1)")
            sub.add_argument("--delay-ms", type=int, help="latency added to every request")
            sub.add_argument("--health-delay-ms", type=int, help="latency added to probes")
            sub.add_argument("--reset", action="store_true", help="back to the defaults")
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
