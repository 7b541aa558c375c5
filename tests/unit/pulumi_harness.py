"""Run the infra/aws program under pulumi.runtime.set_mocks and record what it registers.

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

PROGRAM = Path(__file__).resolve().parents[2] / "infra" / "aws"

BASE_CONFIG = {"aws:region": "us-east-1", "cutover:service": "shop", "cutover:image_id": "ami-0123456789abcdef0"}


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    ignore_changes: list[str] | None = None
    delete_before_replace: bool = False
    parent_type: str | None = None


@dataclass
class Run:
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    invokes: list[str] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str) -> Registered:
        found = [r for r in self.of_type(type_token) if r.name == name]
        assert len(found) == 1, f"{type_token} {name}: {[r.name for r in self.of_type(type_token)]}"
        return found[0]

    @property
    def aws(self) -> list[Registered]:
        return [r for r in self.resources if r.type.startswith("aws:")]


class RecordingMocks(pulumi.runtime.Mocks):
    """Fake ids and ARNs derived from the logical name, like a provider would return."""

    def __init__(self, run: Run):
        self.run = run
        self.transforms: list[Any] = []

    def register_transform(self, transform: Any) -> None:
        self.transforms.append(transform)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        for registered in self.run.resources:
            if registered.name == args.name and registered.type == args.typ:
                registered.inputs = dict(args.inputs)
        outputs = {
            **args.inputs,
            "arn": f"arn:aws:mock:us-east-1:123456789012:{args.typ.split(':')[-1].lower()}/{args.name}",
            "dnsName": f"{args.name}.elb.example",
            "latestVersion": 1,
        }
        if "name" not in outputs:
            outputs["name"] = args.name
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.run.invokes.append(args.token)
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": ["us-east-1b", "us-east-1a", "us-east-1c"], "zoneIds": ["z2", "z1", "z3"], "id": "us-east-1"}
        raise NotImplementedError(args.token)


class TransformingMonitor(MockMonitor):
    """The mock monitor, plus the part of the engine these tests look through.

    The mock monitor records stack transforms but does not run them (see ``Mocks.register_transform``);
    the engine runs each one before it registers a resource, handing it the resource's options. This
    does the same with the options of the registration request, so a transform sees what the program
    asked for. The parent is told by its type (the last type in the parent's URN), which the engine
    hands over as a URN.
    """

    def __init__(self, mocks: RecordingMocks):
        super().__init__(mocks)
        self.recording = mocks
        self.parent_types: dict[tuple[str, str], str | None] = {}

    def RegisterResource(self, request):
        if request.type != "pulumi:pulumi:Stack":
            self.parent_types[(request.type, request.name)] = request.parent.split("::")[2].split("$")[-1] if request.parent else None
            options = pulumi.ResourceOptions(
                ignore_changes=list(request.ignoreChanges) or None,
                delete_before_replace=request.deleteBeforeReplace if request.deleteBeforeReplaceDefined else None,
            )
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
    """Run infra/aws/__main__.py once with the given ``cutover:*`` config; raise what it raises."""
    run = Run()
    # Pulumi's mock runtime creates futures on the current event loop; a test that ran asyncio.run() before
    # leaves the main thread with none, so each program run gets a fresh one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = RecordingMocks(run)
    monitor = TransformingMonitor(mocks)
    pulumi.runtime.reset_options(project="cutover", stack="unit", preview=False)
    pulumi.runtime.set_mocks(mocks, project="cutover", stack="unit", preview=False, monitor=monitor)
    merged = dict(config or {}) if replace else {**BASE_CONFIG, **(config or {})}

    def record(args: pulumi.ResourceTransformArgs) -> None:
        run.resources.append(
            Registered(
                type=args.type_,
                name=args.name,
                inputs={},
                ignore_changes=list(args.opts.ignore_changes) if args.opts.ignore_changes else None,
                delete_before_replace=bool(args.opts.delete_before_replace),
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
        resource.parent_type = monitor.parent_types.get((resource.type, resource.name))
    return run
