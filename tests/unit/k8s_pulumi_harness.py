"""Run the infra/kubernetes program under pulumi.runtime.set_mocks and record what it registers.

Public Pulumi APIs only: the config reaches the program the way the CLI hands it over (the
``PULUMI_CONFIG`` environment variable, read through ``pulumi.Config`` and
``pulumi.runtime.get_config_env``), every run starts from ``pulumi.runtime.reset_options``, and
the options of each resource are seen by a stack transform registered with
``pulumi.runtime.register_resource_transform``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

PROGRAM = Path(__file__).resolve().parents[2] / "infra" / "kubernetes"

BASE_CONFIG = {"cutover-k8s:app": "shop", "cutover-k8s:image": "registry.example.com/shop:v1"}


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    ignore_changes: list[str] | None = None
    parent_type: str | None = None
    depends_on: list[str] = field(default_factory=list)


@dataclass
class Run:
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str) -> Registered:
        found = [r for r in self.of_type(type_token) if r.name == name]
        assert len(found) == 1, f"{type_token} {name}: {[r.name for r in self.of_type(type_token)]}"
        return found[0]

    @property
    def kubernetes(self) -> list[Registered]:
        return [r for r in self.resources if r.type.startswith("kubernetes:")]


class RecordingMocks(pulumi.runtime.Mocks):
    """Each object comes back as the API server would echo it: its inputs, with a name and a cluster IP."""

    def __init__(self, run: Run):
        self.run = run
        self.transforms: list[Any] = []

    def register_transform(self, transform: Any) -> None:
        self.transforms.append(transform)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        for registered in self.run.resources:
            if registered.name == args.name and registered.type == args.typ:
                registered.inputs = dict(args.inputs)
        outputs = dict(args.inputs)
        if args.typ == "kubernetes:core/v1:Service":
            outputs["spec"] = {**outputs.get("spec", {}), "clusterIP": "10.96.0.10"}
        metadata = outputs.get("metadata") or {}
        return f"{metadata.get('namespace', '')}/{metadata.get('name', args.name)}".lstrip("/"), outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise NotImplementedError(args.token)


class TransformingMonitor(MockMonitor):
    """The mock monitor, plus the part of the engine these tests look through.

    The mock monitor records stack transforms but does not run them (see ``Mocks.register_transform``);
    the engine runs each one before it registers a resource, handing it the resource's options. This
    does the same with the options of the registration request, so a transform sees what the program
    asked for; the parent's type and the dependencies are told by their URNs.
    """

    def __init__(self, mocks: RecordingMocks):
        super().__init__(mocks)
        self.recording = mocks
        self.seen: dict[tuple[str, str], tuple[str | None, list[str]]] = {}

    def RegisterResource(self, request):
        if request.type != "pulumi:pulumi:Stack":
            parent = request.parent.split("::")[2].split("$")[-1] if request.parent else None
            self.seen[(request.type, request.name)] = (parent, [urn.rsplit("::", 1)[-1] for urn in request.dependencies])
            options = pulumi.ResourceOptions(ignore_changes=list(request.ignoreChanges) or None)
            for transform in self.recording.transforms:
                transform(pulumi.ResourceTransformArgs(request.custom, request.type, request.name, {}, options))
        return super().RegisterResource(request)


@contextlib.contextmanager
def stack_config(config: dict[str, Any]):
    """The stack's config as the CLI hands it to a program: ``PULUMI_CONFIG``, structured values as JSON."""
    saved = os.environ.get("PULUMI_CONFIG")
    pulumi.runtime.set_all_config({})  # nothing set explicitly shadows it
    os.environ["PULUMI_CONFIG"] = json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PULUMI_CONFIG", None)
        else:
            os.environ["PULUMI_CONFIG"] = saved


def run_program(config: dict[str, Any] | None = None, replace: bool = False) -> Run:
    """Run infra/kubernetes/__main__.py once with the given ``cutover-k8s:*`` config; raise what it raises."""
    run = Run()
    # A program that raised leaves Pulumi's event loop closed; every run starts with a loop of its own.
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = RecordingMocks(run)
    monitor = TransformingMonitor(mocks)
    pulumi.runtime.reset_options(project="cutover-k8s", stack="unit", preview=False)
    pulumi.runtime.set_mocks(mocks, project="cutover-k8s", stack="unit", preview=False, monitor=monitor)
    merged = dict(config or {}) if replace else {**BASE_CONFIG, **(config or {})}

    def record(args: pulumi.ResourceTransformArgs) -> None:
        run.resources.append(
            Registered(
                type=args.type_,
                name=args.name,
                inputs={},
                ignore_changes=list(args.opts.ignore_changes) if args.opts.ignore_changes else None,
            )
        )

    exports: dict[str, Any] = {}
    real_export = pulumi.export
    pulumi.export = exports.__setitem__

    @pulumi.runtime.test
    def program():
        pulumi.runtime.register_resource_transform(record)
        runpy.run_path(str(PROGRAM / "__main__.py"), run_name="__main__")
        return pulumi.Output.from_input(exports).apply(run.outputs.update)

    try:
        with stack_config(merged):
            program()
    finally:
        pulumi.export = real_export
    for resource in run.resources:
        resource.parent_type, resource.depends_on = monitor.seen.get((resource.type, resource.name), (None, []))
    return run
