"""The molecule scenarios of the roles (extensions/molecule), run the way CI runs them.

Each scenario starts its own sandbox in a private state directory (create), releases, rolls
back or tears down through the roles (prepare, converge), converges again to prove that
nothing is left to change (idempotence), checks the pair and the traffic (verify) and stops
the sandbox (destroy). A scenario passes only if every one of those steps ran and succeeded
and no process of its sandbox is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
SCENARIO_ROOT = REPO / "extensions" / "molecule"
SCENARIOS = sorted(path.parent.name for path in SCENARIO_ROOT.glob("*/molecule.yml"))
TIMEOUT = 900
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MARKER = "CUTOVER_MOLECULE_RUN"


def processes_of_run(marker: str, state: Path) -> dict[int, str]:
    """Processes started by one molecule run (they inherit its marker variable) or naming its sandbox's state directory."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # dead, only waiting for its parent
            environ = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if f"{MARKER}={marker}".encode() in environ or str(state) in command:
            found[int(entry.name)] = command
    return found


def run_molecule(scenario: str, ephemeral: Path, marker: str) -> tuple[int, str]:
    """``molecule test -s <scenario>`` with the venv's molecule, from the repo root; (return code, output)."""
    env = dict(os.environ)
    for variable in ("MOLECULE_GLOB", "ANSIBLE_CONFIG", "ANSIBLE_INVENTORY"):
        env.pop(variable, None)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        MOLECULE_EPHEMERAL_DIRECTORY=str(ephemeral),
        ANSIBLE_HOME=str(REPO / ".tmp" / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        NO_COLOR="1",
        **{MARKER: marker},
    )
    process = subprocess.Popen(
        [str(BIN / "molecule"), "test", "-s", scenario],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        output += f"\nmolecule test -s {scenario} did not finish within {TIMEOUT} s"
    return process.returncode, ANSI.sub("", output)


def stop_left_behind(marker: str, state: Path) -> None:
    """Stop the sandbox of a failed run, then whatever else that run started, by process id."""
    subprocess.run([sys.executable, "-m", "sandbox", "--dir", str(state), "stop"], cwd=REPO, capture_output=True, timeout=60, check=False)
    for pid in processes_of_run(marker, state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_every_scenario_is_tested():
    assert SCENARIOS == ["deploy", "rollback", "teardown"]


def test_processes_of_a_run_are_found(tmp_path):
    marker = uuid.uuid4().hex
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, MARKER: marker})
    try:
        assert list(processes_of_run(marker, tmp_path / "sandbox")) == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert processes_of_run(marker, tmp_path / "sandbox") == {}


@pytest.mark.sandbox
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario):
    # a short path: the sandbox's load balancer keeps a unix socket in its state directory
    ephemeral = Path(tempfile.mkdtemp(prefix=f"cutover-molecule-{scenario}-"))
    state = ephemeral / "sandbox"
    try:
        marker = uuid.uuid4().hex
        returncode, output = run_molecule(scenario, ephemeral, marker)
        left_behind = processes_of_run(marker, state)
        if left_behind:  # fail below, but leave nothing running
            stop_left_behind(marker, state)
    finally:
        shutil.rmtree(ephemeral, ignore_errors=True)
    assert returncode == 0, f"molecule test -s {scenario} failed ({returncode}):\n{output[-8000:]}"
    steps = {"create", "converge", "idempotence", "verify", "destroy"}
    if (SCENARIO_ROOT / scenario / "prepare.yml").exists():
        steps.add("prepare")
    succeeded = set(re.findall(rf"^{scenario} (?:➜|>) (\w+): Executed: Successful", output, re.MULTILINE))
    assert steps <= succeeded, f"steps that did not run and succeed: {sorted(steps - succeeded)}\n{output[-8000:]}"
    assert left_behind == {}, "processes of the run were left behind:\n" + "\n".join(f"{pid}: {cmd}" for pid, cmd in left_behind.items())
