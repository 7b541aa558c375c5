"""Benchmark: the main command's sandbox part (start, provision the pair, stop).

Prints the median and spread of several runs of ``python -m sandbox up`` and
checks that each run left no process behind. A benchmark, not a test: it
prints numbers and exits 0; read them against the target (under 60 s).

    .venv/bin/python benchmarks/sandbox_up.py [--runs 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    walls, starts, provisions = [], [], []
    for run in range(options.runs):
        with tempfile.TemporaryDirectory() as directory:
            began = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "sandbox", "--dir", directory, "up", "--port", "0"],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            )
            walls.append(time.monotonic() - began)
        up = re.search(r"sandbox up at http://127\.0\.0\.1:(\d+) \(([\d.]+) s\)", result.stdout)
        provisioned = re.search(r"provisioned \(([\d.]+) s\)", result.stdout)
        starts.append(float(up.group(2)))
        provisions.append(float(provisioned.group(1)) - starts[-1])
        leftover = subprocess.run(
            ["pgrep", "-f", f"sandbox.daemon --host 127.0.0.1 --port {up.group(1)}$"], capture_output=True, text=True, check=False
        )
        print(
            f"run {run + 1}: {walls[-1]:.1f} s wall, sandbox start {starts[-1]:.1f} s, provision {provisions[-1]:.1f} s"
            f"{', PROCESS LEFT: ' + leftover.stdout.strip() if leftover.stdout.strip() else ''}"
        )
    print(
        f"median of {options.runs}: up (start + provision + stop, interpreter start included) {statistics.median(walls):.1f} s "
        f"[min {min(walls):.1f}, max {max(walls):.1f}]; start {statistics.median(starts):.1f} s; "
        f"provision {statistics.median(provisions):.1f} s; target: < 60 s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
