"""Start, find and stop the sandbox process; its state lives in one JSON file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from . import ACCESS_KEY, DEFAULT_PORT, METRIC_LAG, METRIC_PERIOD, REGION, SECRET_KEY

REPO = Path(__file__).resolve().parent.parent


class SandboxError(RuntimeError):
    """The sandbox could not be started, found or stopped."""


@dataclass(frozen=True)
class Sandbox:
    pid: int
    host: str
    port: int
    state_dir: str
    log: str
    metric_period: int = METRIC_PERIOD  # seconds per AWS/ApplicationELB period here (AWS: 60)
    metric_lag: float = METRIC_LAG  # seconds after a period ends before its datapoints appear

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """What boto3, Ansible (amazon.aws reads AWS_URL) and the Pulumi mocks need."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }


def state_dir(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get("CUTOVER_SANDBOX_DIR") or REPO / ".sandbox")


def _state_file(directory: Path) -> Path:
    return directory / "sandbox.json"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (ours, not yet reaped) is not alive.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1) as response:  # noqa: S310 - http only
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def current(directory: str | os.PathLike[str] | None = None) -> Sandbox | None:
    """The running sandbox recorded in the state directory, if its process is alive."""
    path = _state_file(state_dir(directory))
    try:
        sandbox = Sandbox(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return sandbox if _alive(sandbox.pid) else None


def start(
    port: int | None = None,
    host: str = "127.0.0.1",
    directory: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    faults: dict | None = None,
    metric_period: int | None = None,
    metric_lag: float | None = None,
) -> Sandbox:
    """Start a sandbox with clean state (a running one is stopped first) and wait until it answers.

    ``faults`` (``{"seed": 7, "rules": [...]}``, see :mod:`sandbox.faults`) are in force from the first call.
    ``metric_period`` and ``metric_lag`` are the time constants of the load balancer's metrics
    (default ``CUTOVER_SANDBOX_METRIC_PERIOD`` / ``CUTOVER_SANDBOX_METRIC_LAG``, else the
    sandbox's compressed 5 s and 3 s; AWS's are 60 s and about a minute).
    """
    if faults:
        from .faults import Faults

        Faults().configure(faults.get("rules"), faults.get("seed"))  # bad rules fail here, before anything starts
    folder = state_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if current(folder) is not None:
        stop(folder)
    if port is None:
        port = int(os.environ.get("CUTOVER_SANDBOX_PORT", DEFAULT_PORT))
    if port == 0:
        port = free_port(host)
    period = int(metric_period if metric_period is not None else os.environ.get("CUTOVER_SANDBOX_METRIC_PERIOD") or METRIC_PERIOD)
    lag = float(metric_lag if metric_lag is not None else os.environ.get("CUTOVER_SANDBOX_METRIC_LAG") or METRIC_LAG)
    if period < 1 or lag < 0:
        raise SandboxError(f"the metric period must be at least 1 s and the lag 0 s or more; got {period} s and {lag} s")
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            raise SandboxError(f"port {port} on {host} is already in use; choose another with --port or CUTOVER_SANDBOX_PORT")
    _require_haproxy()
    log = folder / "sandbox.log"
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "sandbox.daemon", "--host", host, "--port", str(port), "--state-dir", str(folder)),
                *("--metric-period", str(period), "--metric-lag", str(lag)),
            ]
            + (["--faults", json.dumps(faults)] if faults else []),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sandbox = Sandbox(pid=process.pid, host=host, port=port, state_dir=str(folder), log=str(log), metric_period=period, metric_lag=lag)
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not _answers(sandbox.endpoint):
        if process.poll() is not None:
            raise SandboxError(f"the sandbox exited with code {process.returncode}:\n{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            _terminate(process.pid)
            raise SandboxError(f"the sandbox did not answer on {sandbox.endpoint} within {timeout:.0f} s; log: {log}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    _state_file(folder).write_text(json.dumps(asdict(sandbox), indent=2))
    return sandbox


def _require_haproxy() -> None:
    """The data plane needs HAProxy: say how to get it before starting anything."""
    from . import dataplane

    if dataplane.enabled():
        from .dataplane.haproxy import HAProxyError, find_binary

        try:
            find_binary()
        except HAProxyError as exc:
            raise SandboxError(f"{exc} (or set {dataplane.ENABLE_VARIABLE}=0 for the AWS API alone)") from None


def _terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the sandbox's process group, then SIGKILL what is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _alive(pid) and not _group_alive(pid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_alive(pid) for pid in group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """Processes of a process group (from /proc), so tests can prove none is left."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop(directory: str | os.PathLike[str] | None = None) -> bool:
    """Stop the recorded sandbox and its whole process group. Returns whether one was running."""
    folder = state_dir(directory)
    state = _state_file(folder)
    sandbox = current(folder)
    if sandbox is not None:
        _terminate(sandbox.pid)
        if _group_alive(sandbox.pid):
            raise SandboxError(f"sandbox process group {sandbox.pid} survived SIGKILL")
    state.unlink(missing_ok=True)
    return sandbox is not None
