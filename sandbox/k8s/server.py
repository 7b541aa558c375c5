"""Start, find and stop the Kubernetes sandbox; write its kubeconfig.

Its state lives beside the AWS sandbox's, in the same state directory:
``kubernetes.json`` (pid, address, kubeconfig path) and ``kubernetes/`` (the
kubeconfig, the log, pod logs, HAProxy's files, ``services.json``), emptied at
every start.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from .. import server as aws_server
from ..server import REPO, SandboxError
from . import CONTEXT, DEFAULT_PORT, TOKEN

STATE_FILE = "kubernetes.json"
SUBDIRECTORY = "kubernetes"


@dataclass(frozen=True)
class KubeSandbox:
    pid: int
    host: str
    port: int
    state_dir: str
    log: str
    kubeconfig: str

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """KUBECONFIG: what the ``kubernetes`` client, kubernetes.core and the Pulumi mocks read."""
        return {"KUBECONFIG": self.kubeconfig}


def kubeconfig_document(endpoint: str, namespace: str = "default") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CONTEXT, "cluster": {"server": endpoint}}],
        "users": [{"name": CONTEXT, "user": {"token": TOKEN}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
    }


def _state_file(directory: Path) -> Path:
    return directory / STATE_FILE


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/readyz", timeout=1) as response:  # noqa: S310 - loopback http
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def current(directory: str | os.PathLike[str] | None = None) -> KubeSandbox | None:
    """The running Kubernetes sandbox recorded in the state directory, if its process is alive."""
    path = _state_file(aws_server.state_dir(directory))
    try:
        sandbox = KubeSandbox(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return sandbox if aws_server._alive(sandbox.pid) else None


def start(
    port: int | None = None,
    host: str = "127.0.0.1",
    directory: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    propagation: float | None = None,
) -> KubeSandbox:
    """Start a clean Kubernetes sandbox (a running one is stopped first) and wait until it answers."""
    folder = aws_server.state_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if current(folder) is not None:
        stop(folder)
    if port is None:
        port = int(os.environ.get("CUTOVER_K8S_SANDBOX_PORT", DEFAULT_PORT))
    if port == 0:
        port = aws_server.free_port(host)
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            raise SandboxError(f"port {port} on {host} is already in use; choose another with --port or CUTOVER_K8S_SANDBOX_PORT")
    from ..dataplane.haproxy import HAProxyError, find_binary

    try:
        find_binary()  # Services are HAProxy frontends: say how to get it before starting anything
    except HAProxyError as exc:
        raise SandboxError(str(exc)) from None
    runtime = folder / SUBDIRECTORY
    shutil.rmtree(runtime, ignore_errors=True)
    runtime.mkdir(parents=True)
    kubeconfig = runtime / "kubeconfig"
    endpoint = f"http://{host}:{port}"
    kubeconfig.write_text(yaml.safe_dump(kubeconfig_document(endpoint), sort_keys=False))
    kubeconfig.chmod(0o600)
    log = runtime / "sandbox.log"
    command = [sys.executable, "-m", "sandbox.k8s.daemon", "--host", host, "--port", str(port), "--state-dir", str(runtime)]
    if propagation is not None:
        command += ["--propagation", str(propagation)]
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    sandbox = KubeSandbox(pid=process.pid, host=host, port=port, state_dir=str(folder), log=str(log), kubeconfig=str(kubeconfig))
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not _answers(endpoint):
        if process.poll() is not None:
            raise SandboxError(f"the Kubernetes sandbox exited with code {process.returncode}:\n{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            aws_server._terminate(process.pid)
            raise SandboxError(f"the Kubernetes sandbox did not answer on {endpoint} within {timeout:.0f} s; log: {log}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    _state_file(folder).write_text(json.dumps(asdict(sandbox), indent=2))
    return sandbox


def stop(directory: str | os.PathLike[str] | None = None) -> bool:
    """Stop the recorded Kubernetes sandbox and its whole process group. Returns whether one was running."""
    folder = aws_server.state_dir(directory)
    sandbox = current(folder)
    if sandbox is not None:
        aws_server._terminate(sandbox.pid)
        if aws_server._group_alive(sandbox.pid):
            raise SandboxError(f"Kubernetes sandbox process group {sandbox.pid} survived SIGKILL")
    _state_file(folder).unlink(missing_ok=True)
    return sandbox is not None
