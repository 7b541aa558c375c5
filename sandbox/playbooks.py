"""Run this checkout's playbooks against the sandbox, the way a user runs them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .server import REPO, Sandbox

COLLECTIONS = REPO / ".tmp" / "collections-link"
_TASK = re.compile(r"^TASK \[(?:[\w.]+ : )?(.*?)\] \*+$")
_RAN = re.compile(r"^(ok|changed|failed|fatal): \[")


def link_collection() -> Path:
    """Make ``ansible.cfg``'s collections path hold this checkout as cutover.bluegreen (what ``make setup`` does)."""
    link = COLLECTIONS / "ansible_collections" / "cutover" / "bluegreen"
    if not link.is_symlink():
        if link.exists():
            raise RuntimeError(f"{link} exists and is not a link to the checkout")
        link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            link.symlink_to(os.path.relpath(REPO, link.parent), target_is_directory=True)
    return COLLECTIONS


def environment(sandbox: Sandbox) -> dict[str, str]:
    env = dict(os.environ)
    env.update(sandbox.environment())
    env["ANSIBLE_COLLECTIONS_PATH"] = str(link_collection())
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env["ANSIBLE_HOME"] = str(REPO / ".tmp" / "ansible-home")
    return env


def run(name: str, sandbox: Sandbox, extra_vars: dict[str, Any], on_task: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Run ``playbooks/<name>.yml``; call ``on_task`` with each task that ran (not skipped); return (code, output)."""
    command = [str(Path(sys.executable).parent / "ansible-playbook"), str(REPO / "playbooks" / f"{name}.yml"), "-e", json.dumps(extra_vars)]
    process = subprocess.Popen(
        command, cwd=REPO, env=environment(sandbox), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines = []
    task = None
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        match = _TASK.match(line.rstrip())
        if match:
            task = match.group(1)
        elif task and _RAN.match(line) and on_task:
            on_task(task)
            task = None
    return process.wait(), "".join(lines)
