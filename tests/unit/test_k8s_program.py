"""The infra/kubernetes program under Pulumi's mock runtime, and its configuration."""

from __future__ import annotations

import json

import pytest
import yaml

from bluegreen_app import (
    RELEASE_OWNED,
    TYPE,
    BlueGreenAppArgs,
    ConfigError,
    ReadinessProbe,
    defaults,
    parse_config,
    read_stack_config,
    strip_namespace,
)
from bluegreen_app.config import DESCRIPTIONS, KNOWN_KEYS, REQUIRED_KEYS
from tests.conftest import REPO
from tests.unit.k8s_pulumi_harness import PROGRAM, run_program

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
BASE = {"app": "shop", "image": "registry.example.com/shop:v1"}


@pytest.fixture(scope="module")
def app():
    return run_program(
        {
            "cutover-k8s:replicas": 3,
            "cutover-k8s:readiness_period": 2,
            "cutover-k8s:readiness_failure_threshold": 4,
            "cutover-k8s:termination_grace_seconds": 20,
            "cutover-k8s:pre_stop_seconds": 4,
            "cutover-k8s:env": {"MODE": "prod"},
            "cutover-k8s:labels": {"team": "payments"},
            "cutover-k8s:deployer_groups": ["release-managers"],
        }
    )


def container(run, color):
    return run.one(DEPLOYMENT, f"shop-{color}").inputs["spec"]["template"]["spec"]["containers"][0]


def test_two_deployments_labelled_by_app_and_slot(app):
    for color, replicas in (("blue", 3), ("green", 0)):
        deployment = app.one(DEPLOYMENT, f"shop-{color}").inputs
        assert deployment["metadata"]["name"] == f"shop-{color}" and deployment["metadata"]["namespace"] == "shop"
        assert deployment["spec"]["replicas"] == replicas
        assert deployment["spec"]["selector"] == {"matchLabels": {"app": "shop", "slot": color}}
        assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "shop", "slot": color, "team": "payments"}
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 20
        assert container(app, color)["image"] == "registry.example.com/shop:v1"


def test_readiness_probe_prestop_resources_and_env_come_from_config(app):
    spec = container(app, "blue")
    assert spec["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": "http"},
        "initialDelaySeconds": 0,
        "periodSeconds": 2,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 4,
    }
    assert spec["lifecycle"] == {"preStop": {"sleep": {"seconds": 4}}}
    assert spec["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert spec["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    assert spec["env"] == [{"name": "MODE", "value": "prod"}]


def test_live_service_selects_blue_and_preview_selects_green(app):
    live = app.one(SERVICE, "shop-live").inputs
    preview = app.one(SERVICE, "shop-preview").inputs
    assert live["metadata"]["name"] == "shop" and live["spec"]["selector"] == {"app": "shop", "slot": "blue"}
    assert live["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert preview["metadata"]["name"] == "shop-preview" and preview["spec"]["selector"] == {"app": "shop", "slot": "green"}
    # Pulumi would wait for endpoints the idle colour cannot have yet; the live Service waits for blue's pods.
    assert preview["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    assert "annotations" not in live["metadata"]
    assert "shop-blue" in app.one(SERVICE, "shop-live").depends_on


def test_a_pod_disruption_budget_per_colour_and_the_active_colour(app):
    for color in ("blue", "green"):
        budget = app.one(PDB, f"shop-{color}").inputs
        assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "shop", "slot": color}}}
    active = app.one(CONFIG_MAP, "shop-active-color").inputs
    assert active["metadata"]["name"] == "shop-active-color" and active["data"] == {"color": "blue"}


def test_the_deployer_is_bound_to_its_role(app):
    binding = app.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "shop-deployer").inputs
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "shop-deployer"}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "shop-deployer", "namespace": "shop"},
        {"kind": "Group", "name": "release-managers", "apiGroup": "rbac.authorization.k8s.io"},
    ]
    assert app.one("kubernetes:core/v1:ServiceAccount", "shop-deployer").inputs["metadata"]["name"] == "shop-deployer"


def test_ignore_changes_is_exactly_what_releases_own(app):
    for resource in app.kubernetes:
        assert resource.ignore_changes == RELEASE_OWNED.get(resource.type), resource.type
    assert RELEASE_OWNED == {
        DEPLOYMENT: ["spec.replicas", "spec.template.spec.containers[*].image"],
        SERVICE: ["spec.selector"],
        CONFIG_MAP: ["data"],
    }
    assert {r.type for r in app.kubernetes} >= set(RELEASE_OWNED)


def test_every_child_belongs_to_the_component(app):
    assert [r.name for r in app.resources if r.type == TYPE] == ["shop"]
    assert all(r.parent_type == TYPE for r in app.kubernetes)


def test_outputs_name_what_the_collection_finds(app):
    assert app.outputs["namespace"] == "shop"
    assert app.outputs["deployments"] == {"blue": "shop-blue", "green": "shop-green"}
    assert (app.outputs["service"], app.outputs["preview_service"]) == ("shop", "shop-preview")
    assert (app.outputs["lease"], app.outputs["journal_config_map"]) == ("shop-cutover-lock", "shop-cutover-journal")
    assert app.outputs["cluster_ip"] == "10.96.0.10"


def test_an_existing_namespace_is_used_not_created():
    run = run_program({"cutover-k8s:namespace": "apps", "cutover-k8s:create_namespace": False, "cutover-k8s:replicas": 0})
    assert run.of_type("kubernetes:core/v1:Namespace") == []
    assert {r.inputs["metadata"]["namespace"] for r in run.kubernetes} == {"apps"}
    assert run.one(DEPLOYMENT, "shop-blue").inputs["spec"]["replicas"] == 0
    # no pod will be ready behind the live Service either: Pulumi must not wait for one
    assert run.one(SERVICE, "shop-live").inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    namespace = run_program()
    assert namespace.one("kubernetes:core/v1:Namespace", "shop-namespace").inputs["metadata"]["name"] == "shop"


def test_pre_stop_as_exec_and_none():
    exec_run = run_program({"cutover-k8s:pre_stop_mode": "exec", "cutover-k8s:pre_stop_seconds": 3})
    assert container(exec_run, "blue")["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "3"]}}}
    none = run_program({"cutover-k8s:pre_stop_seconds": 0})
    assert "lifecycle" not in container(none, "blue")


def test_bad_config_fails_before_any_resource():
    with pytest.raises(ConfigError, match=r"cutover-k8s:replicas = -1 is out of range"):
        run_program({"cutover-k8s:replicas": -1})


# -- configuration ------------------------------------------------------------------------------------
def parse(**overrides):
    return parse_config({**BASE, **overrides})


def test_defaults():
    args = parse()
    assert args == BlueGreenAppArgs(app="shop", image=BASE["image"])
    assert (args.replicas, args.effective_namespace, args.readiness, args.pre_stop_seconds) == (2, "shop", ReadinessProbe(), 5)
    assert args.effective_service_account == "shop-deployer"


def test_values_arrive_as_strings_from_the_cli():
    args = parse(replicas="4", create_namespace="false", env='{"A": "1"}', deployer_users="alice,bob", readiness_period="3")
    assert (args.replicas, args.create_namespace, dict(args.env), args.deployer_users) == (4, False, {"A": "1"}, ("alice", "bob"))
    assert args.readiness.period == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": "blue"}, r"unknown configuration key\(s\): cutover-k8s:colour"),
        ({"replicas": -1}, r"cutover-k8s:replicas = -1 is out of range: allowed 0 to 1000 pods"),
        ({"replicas": "two"}, r"cutover-k8s:replicas = 'two' is not an integer"),
        ({"readiness_period": 0}, r"cutover-k8s:readiness_period = 0 is out of range: allowed 1 to 3600 seconds"),
        ({"readiness_timeout": 0}, r"cutover-k8s:readiness_timeout = 0 is out of range"),
        ({"readiness_failure_threshold": 0}, r"cutover-k8s:readiness_failure_threshold = 0 is out of range"),
        ({"readiness_success_threshold": 0}, r"cutover-k8s:readiness_success_threshold = 0 is out of range"),
        ({"readiness_initial_delay": -1}, r"cutover-k8s:readiness_initial_delay = -1 is out of range"),
        ({"readiness_path": "health"}, r"cutover-k8s:readiness_path = 'health' must be an HTTP path"),
        ({"termination_grace_seconds": 5, "pre_stop_seconds": 5}, r"cutover-k8s:pre_stop_seconds = 5 must be less than"),
        ({"app": "Shop"}, r"cutover-k8s:app = 'Shop' is not a valid app name"),
        ({"app": "1shop"}, r"cutover-k8s:app = '1shop' is not a valid app name"),
        ({"app": "shop-"}, r"cutover-k8s:app = 'shop-' is not a valid app name"),
        ({"app": "a" * 41}, r"use 1 to 40 lowercase"),
        ({"app": ""}, r"cutover-k8s:app is required"),
        ({"image": "Not An Image"}, r"cutover-k8s:image = 'Not An Image' is not a container image reference"),
        ({"namespace": "Bad_NS"}, r"cutover-k8s:namespace = 'Bad_NS' is not a valid namespace name"),
        ({"service_type": "ExternalName"}, r"cutover-k8s:service_type = 'ExternalName' is not one of ClusterIP, NodePort, LoadBalancer"),
        ({"pre_stop_mode": "wait"}, r"cutover-k8s:pre_stop_mode = 'wait' is not one of sleep, exec"),
        ({"cpu_request": "lots"}, r"cutover-k8s:cpu_request = 'lots' is not a Kubernetes quantity"),
        ({"labels": {"slot": "x"}}, r"cutover-k8s:labels may not set 'slot'"),
        ({"labels": {"bad key!": "x"}}, r"cutover-k8s:labels has an invalid label"),
        ({"env": {"1A": "x"}}, r"cutover-k8s:env has an invalid variable name '1A'"),
        ({"create_namespace": "maybe"}, r"cutover-k8s:create_namespace = 'maybe' must be true or false"),
        ({"pdb_max_unavailable": 1001}, r"cutover-k8s:pdb_max_unavailable = 1001 is out of range"),
    ],
)
def test_bad_input_names_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse(**overrides)


def test_every_key_has_a_description_and_the_defaults_are_the_dataclass_defaults():
    assert set(DESCRIPTIONS) == KNOWN_KEYS
    values = defaults()
    assert set(values) == KNOWN_KEYS - set(REQUIRED_KEYS)
    assert values["replicas"] == BlueGreenAppArgs.replicas and values["readiness_period"] == ReadinessProbe.period
    assert values["deployer_users"] == [] and values["env"] == {}


def test_pulumi_yaml_is_generated_from_the_dataclasses():
    """Pulumi.yaml's config schema is what bluegreen_app.schema renders: change a default, and this fails."""
    from bluegreen_app.schema import PROJECT_FILE, render

    text = PROJECT_FILE.read_text()
    assert render(text) == text, "Pulumi.yaml is stale: run python -m bluegreen_app.schema in infra/kubernetes"
    schema = yaml.safe_load(text)["config"]
    assert {key for key, entry in schema.items() if "default" not in entry} == set(REQUIRED_KEYS)
    assert schema["replicas"] == {"type": "integer", "default": 2, "description": DESCRIPTIONS["replicas"]}


def test_the_cli_and_the_mock_runtime_see_the_same_configuration():
    """With the CLI (Pulumi.yaml's defaults filled in, as strings) or without (the sandbox's mock run), one result."""
    schema = yaml.safe_load((PROGRAM / "Pulumi.yaml").read_text())["config"]
    cli = {key: entry["default"] for key, entry in schema.items() if "default" in entry}
    cli.update(BASE)
    as_strings = {key: value if isinstance(value, str) else json.dumps(value) for key, value in cli.items()}
    assert parse_config(as_strings) == parse_config(BASE)


def test_the_sandbox_stack_sets_only_known_keys():
    stack = yaml.safe_load((REPO / "infra" / "kubernetes" / "Pulumi.sandbox.yaml").read_text())["config"]
    assert set(strip_namespace(stack)) <= KNOWN_KEYS
    assert parse_config(strip_namespace(stack)).app == "shop"


def test_read_stack_config_refuses_unknown_keys_of_our_namespace():
    given = {"app": "shop", "image": BASE["image"], "replicas": "3"}
    raw = read_stack_config(given.get, ["cutover-k8s:app", "cutover-k8s:replica", "kubernetes:context"])
    assert raw == {**given, "replica": ""}
    with pytest.raises(ConfigError, match=r"unknown configuration key\(s\): cutover-k8s:replica"):
        parse_config(raw)
