"""The Kubernetes sandbox process: the API, the controllers, the kubelet and HAProxy, stopped by SIGTERM.

Started detached (its own process group) by :mod:`sandbox.k8s.server`; not meant to
be run by hand. Pods and HAProxy are its children, in its process group.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path


async def serve(host: str, port: int, state_dir: Path, propagation: float | None) -> None:
    from aiohttp import web

    from ..dataplane.haproxy import find_binary
    from .api import Api
    from .cluster import Cluster

    cluster = Cluster(state_dir, find_binary(), propagation)
    cluster.bootstrap(host, port)
    api = Api(cluster.store, cluster, f"{host}:{port}")
    runner = web.AppRunner(api.app(cluster.routes), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cluster.start()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        print(f"kubernetes sandbox listening on http://{host}:{port}", flush=True)
        await stop.wait()
    finally:
        cluster.stop()
        await runner.cleanup()
    print("kubernetes sandbox stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.k8s.daemon")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--propagation", type=float, default=None, help="seconds before an endpoint change reaches the service proxy")
    options = parser.parse_args(argv)
    if not options.host.startswith("127.") and options.host != "localhost":
        parser.error("the sandbox listens on loopback only (127.0.0.0/8)")
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    asyncio.run(serve(options.host, options.port, Path(options.state_dir), options.propagation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
