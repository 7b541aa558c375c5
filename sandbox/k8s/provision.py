"""Provision a Pulumi Kubernetes program into the Kubernetes sandbox, under Pulumi's mock runtime.

The same way :mod:`sandbox.provision` provisions infra/aws: the program's
``__main__.py`` runs under ``pulumi.runtime.set_mocks`` with the stack file's
config, and :class:`sandbox.k8s.mocks.KubernetesMocks` creates each object in the
sandbox through the ``kubernetes`` client. Once per process (Pulumi's runtime
state is global): ``python -m sandbox provision --kubernetes`` runs it in its own.
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

from ..provision import stack_config
from ..server import REPO
from .mocks import AWAIT_TIMEOUT, KubernetesMocks

PROGRAM = REPO / "infra" / "kubernetes"
PROJECT = "cutover"


def provision(
    kubeconfig: str,
    program: Path = PROGRAM,
    stack: str = "sandbox",
    overrides: Mapping[str, Any] | None = None,
    await_timeout: float = AWAIT_TIMEOUT,
) -> dict[str, Any]:
    """Run the program once against the sandbox the kubeconfig points at; return the stack outputs."""
    program = Path(program)
    if not (program / "__main__.py").is_file():
        raise ValueError(f"no Pulumi program at {program} (its __main__.py is missing)")
    config = stack_config(stack, overrides, program)
    project = (yaml.safe_load((program / "Pulumi.yaml").read_text()) or {}).get("name", PROJECT)
    mocks = KubernetesMocks(kubeconfig, await_timeout=await_timeout)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False)
    # The config reaches the program as the CLI hands it over (PULUMI_CONFIG), so the program reads it
    # the same way in both paths: pulumi.Config for values, get_config_env for the keys the stack sets.
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
