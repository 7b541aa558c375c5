"""The deployer policy lists every AWS action the collection calls, and nothing more.

Every AWS call in plugins/ passes ``aws_retry`` (or goes through a paginator,
``aws.paginate`` or ``aws.write_once``, which name the operation as a string
after the client); the client's variable name says which service it is. The
actions found that way must be exactly the policy's, so a new call without a
policy change, or a policy entry nothing uses, fails here.
"""

from __future__ import annotations

import ast
import re

from bluegreen_pair.policy import ALL_ACTIONS
from tests.conftest import REPO

SERVICES = {
    "elbv2": "elasticloadbalancing",
    "autoscaling": "autoscaling",
    "ec2": "ec2",
    "dynamodb": "dynamodb",
    "ssm": "ssm",
    "cloudwatch": "cloudwatch",
}
# Not called directly, but required by UpdateAutoScalingGroup with a launch template.
IMPLIED = {"ec2:RunInstances", "ec2:CreateTags"}
NOT_AN_ACTION = {"get_paginator", "can_paginate", "get_waiter", "paginate"}
# Helpers called as helper(client, "operation", ...).
CALLING_HELPERS = {"paginate", "write_once", "paginated_query_with_retries"}


def camel(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def client_service(node: ast.expr) -> str | None:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    if name is None:
        return None
    for key, service in SERVICES.items():
        if key in name.lower():
            return service
    return None


def called_actions() -> tuple[set[str], list[str]]:
    actions: set[str] = set()
    unknown: list[str] = []
    for path in sorted((REPO / "plugins").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            helper = node.func.id if isinstance(node.func, ast.Name) else None
            if helper in CALLING_HELPERS and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                service = client_service(node.args[0])
                if service is None:
                    unknown.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
                else:
                    actions.add(f"{service}:{camel(node.args[1].value)}")
                continue
            if not isinstance(node.func, ast.Attribute):
                continue
            method = node.func.attr
            retried = any(k.arg == "aws_retry" for k in node.keywords)
            paginated = method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant)
            if not (retried or paginated):
                continue
            service = client_service(node.func.value)
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if service is None:
                unknown.append(f"{where}: {ast.unparse(node.func)}")
                continue
            if paginated:
                actions.add(f"{service}:{camel(node.args[0].value)}")
            elif method not in NOT_AN_ACTION:
                actions.add(f"{service}:{camel(method)}")
    return actions, unknown


def test_every_call_is_in_the_policy_and_every_policy_action_is_called():
    actions, unknown = called_actions()
    assert not unknown, f"AWS calls on clients whose service cannot be told from the name: {unknown}"
    assert actions, "no AWS calls found: the scan is broken"
    missing = sorted(actions - ALL_ACTIONS)
    unused = sorted(ALL_ACTIONS - actions - IMPLIED)
    assert not missing, f"the collection calls actions the deployer policy does not allow: {missing}"
    assert not unused, f"the deployer policy allows actions the collection never calls: {unused}"


def test_scan_sees_a_known_call():
    actions, _ = called_actions()
    assert "elasticloadbalancing:DescribeTargetHealth" in actions
    assert "autoscaling:DescribeAutoScalingGroups" in actions  # aws.paginate(autoscaling, ...)
    assert "elasticloadbalancing:ModifyRule" in actions  # aws.write_once(elbv2, ...)
    assert re.match(r"^[a-z0-9]+:[A-Z][A-Za-z0-9]+$", sorted(actions)[0])
