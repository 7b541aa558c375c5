"""Pulumi.yaml's ``config`` section, generated from the dataclasses that hold every default.

    cd infra/kubernetes && ../../.venv/bin/python -m bluegreen_app.schema          # rewrite Pulumi.yaml
    cd infra/kubernetes && ../../.venv/bin/python -m bluegreen_app.schema --check  # exit 1 if it is stale

The CLI applies these defaults before the program runs and checks each value's type;
:func:`bluegreen_app.config.parse_config` applies the same defaults itself under the mock runtime.
A unit test keeps the file equal to what this module renders, so the two cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from .config import config_schema

PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
MARKER = "# The config schema below is generated from bluegreen_app/config.py"


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key, as yamllint wants them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def render(current: str) -> str:
    """``current`` (the text of Pulumi.yaml) with its config section replaced by the generated one."""
    head = current.split(MARKER, 1)[0].split("\nconfig:", 1)[0].rstrip("\n")
    body = yaml.dump({"config": config_schema()}, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return f"{head}\n{MARKER}\n# (the dataclasses hold every default): edit them, then run python -m bluegreen_app.schema.\n{body}"


def main(argv: list[str]) -> int:
    current = PROJECT_FILE.read_text()
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{PROJECT_FILE} is stale: run python -m bluegreen_app.schema in infra/kubernetes", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        PROJECT_FILE.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
