"""Run the infra/aws program under pulumi.runtime.set_mocks and record what it registers."""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings as pulumi_settings

PROGRAM = Path(__file__).resolve().parents[2] / "infra" / "aws"

BASE_CONFIG = {"cutover:service": "shop", "cutover:image_id": "ami-0123456789abcdef0"}


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    ignore_changes: list[str] | None = None
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


def run_program(config: dict[str, Any] | None = None, replace: bool = False) -> Run:
    """Run infra/aws/__main__.py once with the given ``cutover:*`` config; raise what it raises."""
    run = Run()
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(RecordingMocks(run), project="cutover", stack="unit", preview=False)
    merged = dict(config or {}) if replace else {**BASE_CONFIG, **(config or {})}
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in merged.items()})

    def record(args: pulumi.ResourceTransformationArgs):
        parent = args.opts.parent if args.opts else None
        run.resources.append(
            Registered(
                type=args.type_,
                name=args.name,
                inputs={},
                ignore_changes=list(args.opts.ignore_changes) if args.opts and args.opts.ignore_changes else None,
                parent_type=getattr(parent, "_type", None) if parent is not None else None,
            )
        )
        return None

    pulumi.runtime.register_stack_transformation(record)
    exports: dict[str, Any] = {}
    real_export = pulumi.export
    pulumi.export = exports.__setitem__

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(PROGRAM / "__main__.py"), run_name="__main__")
        return pulumi.Output.from_input(exports).apply(run.outputs.update)

    try:
        program()
    finally:
        pulumi.export = real_export
    return run
