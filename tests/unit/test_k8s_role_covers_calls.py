"""The deployer Role of infra/kubernetes grants every Kubernetes API call the collection makes, and nothing more.

Every request of the collection goes through ``Kube.call("<verb>", "<resource>", ...)``
with both as literal strings; the (API group, resource, verb) triples found that way
must be exactly the Role's, so a new call without a rule, or a rule nothing uses,
fails here. The objects the Role names (the lock, the journal, the active colour,
the two Deployments) must be the ones the collection names.
"""

from __future__ import annotations

import ast

from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import RESOURCES, VERBS
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import names

from bluegreen_app import BlueGreenAppArgs, deployer_rules, granted
from tests.conftest import REPO
from tests.unit.k8s_pulumi_harness import run_program

ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"


def called() -> tuple[set[tuple[str, str, str]], list[str]]:
    """(group, resource, verb) of every ``.call("<verb>", "<resource>", ...)`` (and ``.get_or_none("<resource>", ...)``)
    in plugins/, and the calls it cannot read."""
    found: set[tuple[str, str, str]] = set()
    unreadable: list[str] = []
    for path in sorted((REPO / "plugins").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        # Kube.get_or_none("<resource>", ...) is a get; its own call, with the resource its caller names, is
        # read at each caller
        inside = {
            line
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef) and fn.name == "get_or_none"
            for line in range(fn.lineno, fn.end_lineno + 1)
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("call", "get_or_none")):
                continue
            if node.lineno in inside:
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            args = node.args
            if node.func.attr == "get_or_none":
                args = [ast.Constant("get"), *args]
            if not args or not isinstance(args[0], ast.Constant) or args[0].value not in VERBS:
                if path.name.startswith("k8s_"):
                    unreadable.append(f"{where}: {ast.unparse(node)[:80]}")
                continue
            if len(args) < 2 or not isinstance(args[1], ast.Constant) or args[1].value not in RESOURCES:
                unreadable.append(f"{where}: {ast.unparse(node)[:80]}")
                continue
            group, _, plural = RESOURCES[args[1].value]
            found.add((group, plural, args[0].value))
    return found, unreadable


def test_the_role_grants_exactly_the_calls_the_collection_makes():
    calls, unreadable = called()
    assert not unreadable, f"Kubernetes calls whose verb or resource is not a literal the scan can read: {unreadable}"
    assert len(calls) > 10, f"too few calls found: the scan is broken ({sorted(calls)})"
    args = BlueGreenAppArgs(app="shop", image="registry.example.com/shop:v1")
    rules = deployer_rules(
        [args.deployment_name(c) for c in ("blue", "green")],
        [args.active_color_config_map, args.journal_config_map],
        args.lease_name,
        args.preview_service_name,
    )
    allowed = granted(rules)
    assert sorted(calls - allowed) == [], "the collection makes calls the deployer Role does not grant"
    assert sorted(allowed - calls) == [], "the deployer Role grants what the collection never calls"


def test_the_scan_sees_known_calls():
    calls, _ = called()
    assert ("", "services", "patch") in calls
    assert ("coordination.k8s.io", "leases", "update") in calls
    assert ("discovery.k8s.io", "endpointslices", "list") in calls
    assert ("", "services/proxy", "get") in calls  # the smoke test
    assert ("coordination.k8s.io", "leases", "get") in calls  # by get_or_none


def test_the_objects_the_role_names_are_the_ones_the_collection_uses():
    args = BlueGreenAppArgs(app="shop", image="registry.example.com/shop:v1")
    collection = names("shop")
    assert (args.lease_name, args.journal_config_map, args.active_color_config_map) == (
        collection["lease"],
        collection["journal_config_map"],
        collection["active_color_config_map"],
    )
    assert [args.deployment_name(c) for c in ("blue", "green")] == [collection["deployments"][c] for c in ("blue", "green")]
    assert (args.service_name, args.preview_service_name) == (collection["live_service"], collection["preview_service"])


def test_the_program_renders_the_rules_into_its_role():
    run = run_program()
    role = run.one(ROLE, "shop-deployer").inputs
    assert role["metadata"] == {"name": "shop-deployer", "namespace": "shop", "labels": {"app": "shop"}}
    rendered = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert rendered == granted(
        deployer_rules(["shop-blue", "shop-green"], ["shop-active-color", "shop-cutover-journal"], "shop-cutover-lock", "shop-preview")
    )
    named = {tuple(rule["resources"]): rule["resourceNames"] for rule in role["rules"] if "resourceNames" in rule}
    assert named == {
        ("deployments",): ["shop-blue", "shop-green"],
        ("configmaps",): ["shop-active-color", "shop-cutover-journal"],
        ("leases",): ["shop-cutover-lock"],
        ("services/proxy",): ["shop-preview"],
    }
    assert not any("*" in value for rule in role["rules"] for key in ("verbs", "resources", "apiGroups") for value in rule[key])
