"""Provision a blue-green pair in the sandbox from the one Pulumi program in infra/aws.

Where the ``pulumi`` CLI is installed, ``pulumi up -s sandbox`` in infra/aws does
this. Where it is not (it cannot be installed offline), the same program runs
under Pulumi's mock runtime and :class:`sandbox.mocks.SandboxMocks` creates each
resource in the sandbox: one definition of the topology, two ways to apply it.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import yaml

from .mocks import SandboxMocks
from .server import REPO

PROGRAM = REPO / "infra" / "aws"
PROJECT = "cutover"


def stack_config(stack: str = "sandbox", overrides: Mapping[str, Any] | None = None, program: Path = PROGRAM) -> dict[str, str]:
    """The stack file's config, the way the CLI hands it to a program (structured values as JSON)."""
    document = yaml.safe_load((program / f"Pulumi.{stack}.yaml").read_text()) or {}
    config = dict(document.get("config") or {})
    config.update(overrides or {})
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items() if value is not None}


def provision(
    endpoint: str,
    stack: str = "sandbox",
    overrides: Mapping[str, Any] | None = None,
    program: Path = PROGRAM,
) -> dict[str, Any]:
    """Run the program once against the sandbox at ``endpoint``; return the stack outputs.

    Runs once per process (Pulumi's runtime state is global): the CLI runs it in
    its own process.
    """
    config = stack_config(stack, overrides, program)
    mocks = SandboxMocks(endpoint, region=config.get("aws:region", "us-east-1"))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    # The config reaches the program as the CLI hands it over (PULUMI_CONFIG), so the program reads
    # it the same way in both paths: pulumi.Config for values, get_config_env for the keys set.
    pulumi.runtime.set_all_config({})
    saved_config = os.environ.get("PULUMI_CONFIG")
    os.environ["PULUMI_CONFIG"] = json.dumps(config)

    exports: dict[str, Any] = {}
    result: dict[str, Any] = {}
    real_export = pulumi.export
    pulumi.export = exports.__setitem__  # type: ignore[assignment]
    sys.path.insert(0, str(program))
    try:

        @pulumi.runtime.test
        def run() -> pulumi.Output[Any]:
            runpy.run_path(str(program / "__main__.py"), run_name="__main__")
            return pulumi.Output.from_input(exports).apply(result.update)

        run()
    finally:
        pulumi.export = real_export
        sys.path.remove(str(program))
        if saved_config is None:
            os.environ.pop("PULUMI_CONFIG", None)
        else:
            os.environ["PULUMI_CONFIG"] = saved_config
    return result
