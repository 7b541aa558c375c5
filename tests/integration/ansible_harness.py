"""Run collection modules the way users do: real ansible-playbook runs against the sandbox."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import COLLECTIONS, REPO

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def ansible_env(endpoint: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AWS_URL": endpoint,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_HOME": str(REPO / ".tmp" / "ansible-home"),
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    env.update(extra)
    return env


def printed_before(stdout: str) -> str:
    """What ansible-playbook printed before the json callback's document."""
    return "" if stdout.startswith("{") else stdout[: stdout.find("\n{") + 1]


def json_document(stdout: str) -> dict[str, Any]:
    """The json callback's document; lines printed before it (``Pausing for 1 seconds`` of a pause) are skipped."""
    start = stdout.find("\n{") + 1 if not stdout.startswith("{") else 0
    return json.loads(stdout[start:])


def run_playbook(plays: list[dict[str, Any]], endpoint: str, extra_args: tuple[str, ...] = (), **env: str) -> dict[str, Any]:
    """Run plays; return the json callback's document (plays, tasks, stats)."""
    with tempfile.NamedTemporaryFile("w", prefix="cutover-test-", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(plays, handle, sort_keys=False)
        path = handle.name
    try:
        result = subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", path, *extra_args],
            env=ansible_env(endpoint, **env),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        os.unlink(path)
    try:
        return json_document(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"ansible-playbook printed no JSON ({result.returncode}):\n{result.stdout}\n{result.stderr}") from exc


def run_module(module: str, args: dict[str, Any], endpoint: str, check: bool = False, diff: bool = False, **env: str) -> dict[str, Any]:
    """Run one module task on localhost; return its result (``failed`` set when it failed)."""
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": module, module: args, "ignore_errors": True}],
    }
    extra = tuple(flag for flag, wanted in (("--check", check), ("--diff", diff)) if wanted)
    document = run_playbook([play], endpoint, extra, **env)
    return document["plays"][0]["tasks"][0]["hosts"]["localhost"]


class PlaybookRun:
    """The outcome of one ``ansible-playbook playbooks/<name>.yml`` run (json callback)."""

    def __init__(self, returncode: int, document: dict[str, Any], stderr: str, printed: str = ""):
        self.returncode = returncode
        self.document = document
        self.stderr = stderr
        self.printed = printed  # what was printed before the json callback's document (progress lines)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tasks(self) -> list[tuple[str, dict[str, Any]]]:
        return [(task["task"]["name"], task["hosts"].get("localhost", {})) for play in self.document["plays"] for task in play["tasks"]]

    def result(self, name_part: str) -> dict[str, Any]:
        """The result of the last task whose name contains ``name_part``."""
        found = [result for name, result in self.tasks() if name_part in name]
        if not found:
            raise AssertionError(f"no task named like {name_part!r}: {[name for name, _ in self.tasks()]}")
        return found[-1]

    def failure(self) -> str:
        return " | ".join(str(result.get("msg")) for _, result in self.tasks() if result.get("failed") and not result.get("ignore_errors"))

    def per_host(self, name_part: str) -> dict[str, dict[str, Any]]:
        """``{host: result}`` of the tasks whose name contains ``name_part`` (each host's last), for fleets."""
        found: dict[str, dict[str, Any]] = {}
        for play in self.document["plays"]:
            for task in play["tasks"]:
                if name_part in task["task"]["name"]:
                    found.update(task["hosts"])
        return found

    def messages(self) -> str:
        return "\n".join(str(result.get("msg", "")) for _, result in self.tasks())


def as_string(value: Any) -> str:
    """A value as a user types it after ``-e key=``: lists comma-separated, booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(as_string(item) for item in value)
    return str(value)


def key_value_args(extra_vars: dict[str, Any]) -> list[str]:
    """One ``-e key=value`` per variable, the way a shell hands them over: every value arrives as a string."""
    args = []
    for key, value in extra_vars.items():
        text = as_string(value)
        # key=value parsing splits on blanks and strips quotes: such values need JSON (or shell-level quoting)
        if re.search(r"[\s'\"\\]", text):
            raise ValueError(f"-e {key}=... cannot carry {text!r} as plain key=value; pass it as JSON")
        args += ["-e", f"{key}={text}"]
    return args


def run_playbook_file(
    name: str,
    endpoint: str,
    timeout: float = 600,
    strings: bool = False,
    env: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
    **extra_vars: Any,
) -> PlaybookRun:
    """Run ``playbooks/<name>.yml`` as a user does, with ``-e`` extra vars.

    By default the extra vars are one JSON document (typed values, as AWX passes them); with ``strings=True``
    each is a separate ``-e key=value``, as typed at a shell, so that every value arrives as a string.
    ``env`` adds to the environment (``KUBECONFIG``), ``options`` to the command line (``--check``).
    """
    extra = key_value_args(extra_vars) if strings else ["-e", json.dumps(extra_vars)]
    result = subprocess.run(
        [ANSIBLE_PLAYBOOK, str(REPO / "playbooks" / f"{name}.yml"), *options, *extra],
        env=ansible_env(endpoint, **(env or {})),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        document = json_document(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"ansible-playbook printed no JSON ({result.returncode}):\n{result.stdout}\n{result.stderr}") from exc
    return PlaybookRun(result.returncode, document, result.stderr, printed_before(result.stdout))


class BackgroundRun:
    """``ansible-playbook playbooks/<name>.yml`` started the way a user starts it, in a session of its own.

    Its process group can be killed as a whole (``kill``), as a terminal or a job controller does; every
    process the run starts (workers, modules, async jobs) carries ``CUTOVER_TEST_RUN=<marker>`` in its
    environment, so ``survivors`` finds those that outlive the kill. Its async jobs write to ``async_dir``.
    """

    def __init__(self, name: str, endpoint: str, directory: Path, *raw: str, env: dict[str, str] | None = None, **extra_vars: Any):
        self.name = name
        self.marker = os.urandom(8).hex()
        self.async_dir = directory / f"async-{self.marker}"
        self.async_dir.mkdir(parents=True)
        self.output = directory / f"{name}-{self.marker}.json"
        command = [ANSIBLE_PLAYBOOK, str(REPO / "playbooks" / f"{name}.yml"), "-e", json.dumps(extra_vars)]
        for pair in raw:  # -e key=value, as strings
            command += ["-e", pair]
        environ = ansible_env(endpoint, ANSIBLE_ASYNC_DIR=str(self.async_dir), CUTOVER_TEST_RUN=self.marker, **(env or {}))
        with open(self.output, "w") as stdout:
            self.process = subprocess.Popen(command, env=environ, cwd=REPO, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.process.pid

    def finish(self, timeout: float = 600) -> PlaybookRun:
        returncode = self.process.wait(timeout)
        text = self.output.read_text()
        try:
            document = json_document(text)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"ansible-playbook printed no JSON ({returncode}):\n{text}") from exc
        return PlaybookRun(returncode, document, "")

    def signal(self, number: int) -> None:
        os.killpg(self.pid, number)

    def kill(self) -> float:
        """SIGKILL to the run's whole process group; returns when (time.time()) it was killed."""
        os.killpg(self.pid, signal.SIGKILL)
        killed = time.time()
        self.process.wait(30)
        return killed

    def survivors(self) -> list[int]:
        """Processes of this run still alive (zombies excepted)."""
        found = []
        needle = f"CUTOVER_TEST_RUN={self.marker}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if needle not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):
                found.append(int(entry.name))
        return found

    def jobs(self) -> list[dict[str, Any]]:
        """The results of this run's async jobs (finished or not)."""
        results = []
        for path in sorted(self.async_dir.iterdir()):
            try:
                results.append(json.loads(path.read_text()))
            except ValueError:
                continue
        return results
