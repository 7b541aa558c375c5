"""The sandbox process: moto's AWS API server on loopback, stopped by SIGTERM.

Started detached by :mod:`sandbox.server`; not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.daemon")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args(argv)
    if not options.host.startswith("127.") and options.host != "localhost":
        parser.error("the sandbox listens on loopback only (127.0.0.0/8)")

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=options.host, port=options.port, verbose=False)
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.start()
    print(f"sandbox listening on http://{options.host}:{options.port}", flush=True)
    stop.wait()
    server.stop()
    print("sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
