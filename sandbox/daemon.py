"""The sandbox process: moto's AWS API server on loopback and the data plane, stopped by SIGTERM.

Started detached (its own process group) by :mod:`sandbox.server`; not meant to
be run by hand. The data plane (:mod:`sandbox.dataplane`: HAProxy and one process
per instance) runs in this process and its children, all in this process group,
and is stopped with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from . import METRIC_LAG, METRIC_PERIOD


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.daemon")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", default=".sandbox", help="where the data plane writes dataplane.json and its files")
    parser.add_argument("--faults", default=None, help='fault injection from the start: {"seed": 7, "rules": [...]} (see sandbox.faults)')
    parser.add_argument("--metric-period", type=int, default=METRIC_PERIOD, help="seconds per AWS/ApplicationELB period (AWS: 60)")
    parser.add_argument("--metric-lag", type=float, default=METRIC_LAG, help="seconds after a period ends before it is published")
    options = parser.parse_args(argv)
    if not options.host.startswith("127.") and options.host != "localhost":
        parser.error("the sandbox listens on loopback only (127.0.0.0/8)")
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from .faults import FaultError, Faults

    faults = Faults()
    if options.faults:
        try:
            document = json.loads(options.faults)
            if not isinstance(document, dict):
                raise FaultError("--faults must be a JSON object")
            faults.configure(document.get("rules"), document.get("seed"))
        except (ValueError, FaultError) as exc:
            parser.error(f"--faults: {exc}")

    from . import moto_fixes

    moto_fixes.install()

    from .dataplane import cloudwatch

    try:
        cloudwatch.install(cloudwatch.Settings(period=options.metric_period, lag=options.metric_lag))
    except ValueError as exc:
        parser.error(str(exc))

    from . import dataplane

    binary = None
    if dataplane.enabled():
        from .dataplane.haproxy import HAProxyError, find_binary

        try:
            binary = find_binary()
        except HAProxyError as exc:
            print(f"sandbox: {exc}", file=sys.stderr, flush=True)
            return 3

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    stop = threading.Event()
    running: list = []

    def _stop(signum: int, _frame: object) -> None:
        stop.set()
        for controller in running:
            controller.halt()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    app = DomainDispatcherApplication(create_backend_app)
    controller = None
    try:
        if binary is not None:
            from .dataplane import patches
            from .dataplane.controller import Controller

            registry = patches.Registry()
            patches.install(registry)
            controller = Controller(
                Path(options.state_dir), control_url=f"http://{options.host}:{options.port}/_sandbox", binary=binary, registry=registry
            )
            controller.start()
            running.append(controller)
            app = controller.wsgi(app)
        from .api_calls import action_of, counting
        from .faults import faulting

        app = counting(faulting(app, faults, action_of))
        server = make_server(options.host, options.port, app, threaded=True, request_handler=MotoRequestHandler)
        thread = threading.Thread(target=server.serve_forever, name="aws-api", daemon=True)
        thread.start()
        print(f"sandbox listening on http://{options.host}:{options.port}", flush=True)
        stop.wait()
        server.shutdown()
        thread.join(timeout=5)
    finally:
        if controller is not None:
            controller.stop()
    print("sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
