"""The input checks of the roles (plugins/module_utils/inputs.py) and their agreement with the roles' specs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from ansible_collections.cutover.bluegreen.plugins.module_utils.inputs import (
    COMBINATIONS,
    RULES,
    SERVICE_NAME,
    TYPE_ONLY,
    ByPlatform,
    check,
    failure_message,
    show,
    unknown_variables,
)

from bluegreen_pair.config import SERVICE_RE
from tests.conftest import REPO

ROLES = ("deploy", "rollback", "teardown", "status")


def options(role: str) -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


def defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def description(spec: dict[str, Any]) -> str:
    text = spec.get("description", "")
    return " ".join(text) if isinstance(text, list) else text


# -- the table and the specs agree --------------------------------------------------------------------------------
def test_every_variable_of_every_role_has_its_line_in_the_table_and_no_line_is_stale():
    variables = {name for role in ROLES for name in options(role)}
    assert set(RULES) == variables


@pytest.mark.parametrize("role", ROLES)
def test_each_spec_states_the_range_its_check_applies(role):
    for name, spec in options(role).items():
        allowed = RULES[name].allowed
        if allowed:
            assert f"Allowed: {allowed}." in description(spec), name
        else:
            assert "Allowed:" not in description(spec), name
        if RULES[name] is TYPE_ONLY:  # the spec's type must then say it all
            assert spec.get("type") in ("bool", "str") or spec.get("choices"), name


@pytest.mark.parametrize("role", ROLES)
def test_the_defaults_pass_the_checks(role):
    """A role run with only its required variables is not refused by its own defaults."""
    raw = {name: value for name, value in defaults(role).items() if not (isinstance(value, str) and "{{" in value)}
    raw.update({name: "shop" if spec.get("type") == "str" else ["shop"] for name, spec in options(role).items() if spec.get("required")})
    if role == "deploy":
        raw["deploy_image_id"] = "ami-0123456789abcdef0"
    typed, problems = check(options(role), raw)
    assert problems == []
    for name, spec in options(role).items():  # the spec's default and the role's default agree
        if "default" in spec:
            assert typed[name] == spec["default"] == defaults(role)[name], name


def test_the_service_name_rule_is_the_pulumi_programs():
    assert SERVICE_NAME.pattern == SERVICE_RE.pattern


# -- strings from -e are typed ------------------------------------------------------------------------------------
def deploy(**raw: Any) -> tuple[dict[str, Any], list[str]]:
    return check(options("deploy"), {"deploy_service": "shop", "deploy_image_id": "ami-0123456789abcdef0", **raw})


def test_strings_from_the_command_line_become_the_specs_types():
    typed, problems = deploy(
        deploy_health_timeout="300",
        deploy_smoke_test_status="200,204",
        deploy_force="yes",
        deploy_smoke_test="false",
        deploy_canary_weight="10",
        deploy_standby_ttl="2h",
    )
    assert problems == []
    assert typed["deploy_health_timeout"] == 300 and typed["deploy_rollout_timeout"] == 600  # given, default
    assert typed["deploy_smoke_test_status"] == [200, 204]
    assert typed["deploy_force"] is True and typed["deploy_smoke_test"] is False
    assert typed["deploy_canary_weight"] == 10 and typed["deploy_standby_ttl"] == "2h"
    assert typed["deploy_capacity"] is None  # not given, no default


def test_null_means_not_given_and_takes_the_default():
    typed, problems = deploy(deploy_health_timeout=None, deploy_capacity=None)
    assert problems == [] and typed["deploy_health_timeout"] == 600 and typed["deploy_capacity"] is None


def test_a_value_that_is_not_of_the_type_is_named_with_the_type_and_the_range():
    _typed, problems = deploy(deploy_health_timeout="soon", deploy_force="maybe", deploy_smoke_test_status="200,ok", deploy_capacity="")
    assert problems == [
        "deploy_force=maybe: allowed true or false (also yes/no, on/off, 1/0)",
        'deploy_capacity="": allowed an integer, 1 or more',
        "deploy_health_timeout=soon: allowed an integer, 0 or more",
        "deploy_smoke_test_status=200,ok: allowed a non-empty list of HTTP statuses from 100 to 599 (comma-separated with -e)",
    ]


def test_a_missing_required_variable_is_named():
    _typed, problems = check(options("status"), {})
    assert problems == ["status_service: required, not given; allowed a text, 1 to 26 characters of a-z, 0-9 and - (not first or last)"]


# -- ranges, formats, combinations ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("deploy_service", ["shop", "a", "web-2", "x" * 26], ["Shop", "-shop", "shop-", "x" * 27, "sh op", ""]),
        ("deploy_deployment_id", ["20260101T120000Z-1a2b3c4d"], ["latest", "2026-01-01-1a2b"]),
        ("deploy_image_id", ["ami-0123abcd", "ami-0123456789abcdef0"], ["ami-XYZ", "ami-0123abc", "image"]),
        ("deploy_user_data", ["", "version=v2", "é" * 8192], ["é" * 8193]),
        ("deploy_instance_type", ["t3.micro", "m5.2xlarge", "u-6tb1.metal"], ["large", "T3.micro"]),
        ("deploy_version_label", ["v2", "v" * 128], ["v" * 129]),
        ("deploy_capacity", [1, 40], [0, -2]),
        ("deploy_preparation_capacity", [1], [0]),
        ("deploy_table_name", ["cutover-shop", "abc"], ["ab", "cutover shop", "x" * 256]),
        ("deploy_rollout_timeout", [0, 600], [-1]),
        ("deploy_health_timeout", [0], [-1]),
        ("deploy_smoke_test_url", ["http://127.0.0.1:9000", "https://shop.example.com/base"], ["ftp://x", "127.0.0.1:9000", "http://"]),
        ("deploy_smoke_test_path", ["/", "/health?deep=1"], ["health", "/a b"]),
        ("deploy_smoke_test_status", [[200], [200, 204, 599, 100]], [[], [99], [600], [200, 700]]),
        ("deploy_smoke_test_retries", [0, 10], [-1]),
        ("deploy_canary_weight", [0, 1, 99], [-1, 100, 150]),
        ("deploy_canary_seconds", [1, 3600, 86400], [0, 86401]),
        ("deploy_canary_max_5xx", [0, 5], [-1]),
        ("deploy_canary_min_requests", [1, 50], [0, -1]),
        ("deploy_metric_period", [1, 5, 60, 3600], [0, -60, 3601]),
        ("deploy_verify_timeout", [1, 300, 86400], [0, -1, 86401]),
        ("deploy_bake_seconds", [0, 180, 86400], [-1, 86401]),
        ("deploy_bake_min_requests", [1, 50], [0, -5]),
        ("deploy_bake_max_5xx_percent", [0, 1.0, 2.5, 100], [-0.1, 100.5, 120]),
        ("deploy_bake_max_elb_5xx_percent", [0, 100], [-1, 101]),
        ("deploy_bake_max_5xx_increase", [0, 1.0, 100], [-1, 101]),
        ("deploy_bake_latency_percentile", ["p50", "p90", "p99", "p99.9", "p99.99"], ["99th", "p100", "p", "P99", "p99.1234", ""]),
        ("deploy_bake_max_latency_ms", [0, 250.5], [-1]),
        ("deploy_bake_max_latency_ratio", [0, 1, 1.25, 3], [0.5, 0.99, -1]),
        ("deploy_bake_latency_slack_ms", [0, 20], [-0.5]),
        ("deploy_standby_ttl", ["1d", "2h", "90m", "1h30m", "3600", "0", 60], ["1x", "-1h", "forever", "3651d", "1.5h"]),
        ("rollback_capacity", [1], [0]),
        ("rollback_health_timeout", [0], [-5]),
        ("rollback_standby_ttl", ["90m"], ["soon"]),
        ("teardown_services", [["shop"], ["shop", "cart"]], [[], ["shop", "shop"], ["Bad_Name"], ["x" * 27]]),
        ("deploy_namespace", ["shop", "team-a", "1a", "x" * 63], ["Shop", "-shop", "shop-", "x" * 64, "a_b", ""]),
        (
            "deploy_image",
            ["registry.example.com/shop:v2", "shop", "localhost:5000/a/b:1.0", "r/s@sha256:" + "a" * 64],
            ["Not An Image!", "shop:", ""],
        ),
        ("deploy_unhealthy_timeout", [0, 120, 86400], [-1, 86401]),
        ("teardown_wait_timeout", [0, 60], [-1]),
        ("status_deployments", [0, 100], [-1, 101]),
    ],
)
def test_each_rule_allows_its_range_and_nothing_else(name, good, bad):
    rule = RULES[name]
    allowed = rule.rules["aws"].allowed if isinstance(rule, ByPlatform) else rule.allowed  # the default platform's
    for value in good:
        assert rule.problem(value) is None, value
    for value in bad:
        assert rule.problem(value) == allowed, value
    assert rule.problem(None) is None  # not given: the spec decides whether that is allowed


def test_an_app_on_kubernetes_may_be_longer_but_starts_with_a_letter():
    on_k8s = {"platform": "kubernetes"}
    for name in ("deploy_service", "rollback_service", "status_service"):
        rule = RULES[name]
        assert rule.problem("x" * 40, on_k8s) is None and rule.problem("web-2", on_k8s) is None
        assert rule.problem("x" * 41, on_k8s) == rule.problem("2web", on_k8s) == rule.rules["kubernetes"].allowed
        assert rule.problem("2web") is None and rule.problem("x" * 40) == rule.rules["aws"].allowed  # aws's own rule
    assert RULES["teardown_services"].problem(["shop", "2cart"], on_k8s).startswith("a non-empty list of app names of 1 to 40")
    typed, problems = check(options("deploy"), {"deploy_service": "x" * 30, "deploy_platform": "kubernetes", "deploy_image": "r/x:1"})
    assert problems == [] and typed["deploy_service"] == "x" * 30
    _typed, problems = check(options("status"), {"status_platform": "kubernetes"})
    assert problems == [
        "status_service: required, not given; allowed a text, 1 to 40 characters of a-z, 0-9 and -, a letter first and no - last"
    ]


def test_the_record_directory_must_exist_and_be_writable(tmp_path):
    rule = RULES["deploy_record_dir"]
    assert rule.problem("") is None and rule.problem(str(tmp_path)) is None
    assert rule.problem(str(tmp_path / "missing")) == rule.allowed
    (tmp_path / "file").write_text("")
    assert rule.problem(str(tmp_path / "file")) == rule.allowed
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not __import__("os").access(locked, __import__("os").W_OK):  # root may write anywhere
        assert rule.problem(str(locked)) == rule.allowed


def test_every_bad_input_is_reported_at_once_each_naming_its_variable():
    _typed, problems = deploy(deploy_verify_timeout="-1", deploy_canary_weight="150", deploy_phase="full", deploy_capacity="-2")
    assert problems == [
        "deploy_capacity=-2: allowed 1 or more",
        "deploy_canary_weight=150: allowed 0 (no canary) to 99",
        "deploy_verify_timeout=-1: allowed 1 to 86400",
    ]
    message = failure_message("deploy", problems)
    assert message.splitlines()[0] == "deploy: 3 bad inputs, nothing was read or changed:"
    assert message.splitlines()[1:] == ["- " + problem for problem in problems]


def test_combinations():
    canary = (
        "phase canary needs deploy_canary_weight between 1 and 99 (the percent of production for the new version) or deploy_canary_steps"
    )
    assert deploy(deploy_phase="canary")[1] == ["deploy_canary_weight=0 with deploy_phase=canary: " + canary]
    assert deploy(deploy_phase="canary", deploy_canary_weight="10")[1] == []
    assert deploy(deploy_phase="canary", deploy_canary_steps="5:10,20:10")[1] == []  # steps instead of a weight
    assert deploy(deploy_phase="canary", deploy_canary_steps="")[1] == ["deploy_canary_weight=0 with deploy_phase=canary: " + canary]
    assert deploy(deploy_phase="full", deploy_canary_weight="0")[1] == []
    # a weight out of range is named once, by its own rule, not again by the combination
    assert deploy(deploy_phase="canary", deploy_canary_weight="100")[1] == ["deploy_canary_weight=100: allowed 0 (no canary) to 99"]
    no_version = ["no new version given with deploy_phase=full: set deploy_image_id, deploy_user_data or deploy_instance_type"]
    assert check(options("deploy"), {"deploy_service": "shop"})[1] == no_version
    assert check(options("deploy"), {"deploy_service": "shop", "deploy_user_data": ""})[1] == no_version  # empty is not given
    assert check(options("deploy"), {"deploy_service": "shop", "deploy_user_data": "version=v2"})[1] == []
    assert check(options("deploy"), {"deploy_service": "shop", "deploy_phase": "promote"})[1] == []
    assert deploy(deploy_capacity="3", deploy_preparation_capacity="1")[1] == []
    assert deploy(deploy_preparation_capacity="1")[1] == []  # the capacity is the live colour's: the rollout compares
    assert deploy(deploy_capacity="2", deploy_preparation_capacity="2")[1] == [
        "deploy_preparation_capacity=2 with deploy_capacity=2: "
        "the preparation capacity must be smaller than the capacity (it is reached first)"
    ]
    for combination in COMBINATIONS:
        assert all(name in RULES for name in combination.names)


def kubernetes(role: str, **raw: Any) -> list[str]:
    service = {"teardown": {"teardown_services": "shop"}}.get(role, {f"{role}_service": "shop"})
    return check(options(role), {**service, f"{role}_platform": "kubernetes", **raw})[1]


def test_what_one_platform_reads_is_refused_on_the_other_naming_it():
    image = {"deploy_image": "registry.example.com/shop:v2"}
    assert kubernetes("deploy", **image, deploy_namespace="shop", deploy_unhealthy_timeout="30") == []
    assert kubernetes("deploy") == ["no new version given with deploy_platform=kubernetes: set deploy_image (-e image=registry/app:tag)"]
    refused = kubernetes(
        "deploy",
        **image,
        deploy_image_id="ami-0123456789abcdef0",
        deploy_user_data="version=v2",
        deploy_table_name="cutover-shop",
        deploy_phase="canary",
        deploy_canary_weight="10",
        deploy_canary_steps="5:10",
        deploy_alarms="shop-5xx",
        deploy_deregister_foreign="true",
    )
    assert sorted(problem.split("=", 1)[0] for problem in refused) == [
        "deploy_alarms",
        "deploy_canary_steps",
        "deploy_canary_weight",
        "deploy_deregister_foreign",
        "deploy_image_id",
        "deploy_phase",
        "deploy_table_name",
        "deploy_user_data",
    ]
    assert (
        "deploy_image_id=ami-0123456789abcdef0 with deploy_platform=kubernetes: only the aws platform reads it; "
        "a release on kubernetes sets deploy_image (-e image=registry/app:tag)"
    ) in refused
    assert any(
        p.startswith("deploy_phase=canary with deploy_platform=kubernetes: no canary on kubernetes: a Service cannot weigh")
        for p in refused
    )
    assert kubernetes("deploy", deploy_phase="promote") == [
        "deploy_phase=promote with deploy_platform=kubernetes: no canary on kubernetes: a Service cannot weigh two colours, and "
        "the canary's gates read AWS load-balancer metrics; release with deploy_phase=full"
    ]
    # the neutral values of what only aws reads pass: the defaults, an empty list
    assert kubernetes("deploy", **image, deploy_canary_weight="0", deploy_alarms="", deploy_deregister_foreign="false") == []
    assert deploy(deploy_image="registry.example.com/shop:v2", deploy_namespace="shop")[1] == [
        "deploy_image=registry.example.com/shop:v2 with deploy_platform=aws: "
        "only the kubernetes platform reads it; on aws give deploy_image_id",
        "deploy_namespace=shop with deploy_platform=aws: only the kubernetes platform reads it",
    ]
    assert kubernetes("rollback", rollback_table_name="cutover-shop", rollback_deregister_foreign="yes", rollback_namespace="shop") == [
        "rollback_table_name=cutover-shop with rollback_platform=kubernetes: only the aws platform reads it "
        "(on kubernetes the lock is a Lease, the journal a ConfigMap)",
        "rollback_deregister_foreign=true with rollback_platform=kubernetes: only the aws platform reads it (targets of a target group)",
    ]
    assert kubernetes("teardown", teardown_namespace="Shop") == [
        "teardown_namespace=Shop: allowed a namespace name, 1 to 63 characters of a-z, 0-9 and - (not first or last); "
        "not given: the service's name"
    ]
    assert check(options("status"), {"status_service": "shop", "status_namespace": "shop"})[1] == [
        "status_namespace=shop with status_platform=aws: only the kubernetes platform reads it"
    ]
    assert kubernetes("status", status_platform="gcp")[0].startswith("status_platform=gcp: allowed one of aws, kubernetes")


def test_values_are_shown_as_they_are_typed_and_short():
    assert show([200, 204]) == "200,204" and show(True) == "true" and show(None) == "(not given)"
    assert show("") == '""' and show("a b") == '"a b"' and show(-1) == "-1"
    assert show({"before_switch": "/h.yml", "after_bake": "b.yml"}) == "before_switch=/h.yml,after_bake=b.yml"
    assert show([{"weight": 5, "seconds": 60}, "25:60"]) == '{"weight":5,"seconds":60},25:60'
    assert len(show("x" * 500)) == 60 and show("x" * 500).endswith("...")


def test_the_check_reads_nothing_but_the_table_and_the_spec():
    """No AWS client, no module: the check is plain Python over values (cheap on the controller)."""
    source = (REPO / "plugins" / "module_utils" / "inputs.py").read_text()
    assert not re.search(r"^\s*import boto|client\(", source, re.M)


# -- values read into the form the role uses: canary steps, alarms, hooks ------------------------------------------
STEPS = [{"weight": 5, "seconds": 120}, {"weight": 25, "seconds": 120}, {"weight": 50, "seconds": 60}]


@pytest.mark.parametrize(
    "given",
    [
        STEPS,  # YAML or JSON extra vars
        "5:120,25:120,50:60",  # -e deploy_canary_steps=5:120,25:120,50:60
        " 5 : 120, 25:120 ,50:60 ",
        '[{"weight": 5, "seconds": 120}, {"weight": 25, "seconds": 120}, {"weight": 50, "seconds": 60}]',  # JSON text with -e
        [{"weight": "5", "seconds": "120"}, "25:120", {"weight": 50.0, "seconds": 60}],  # mixed, numbers as text
    ],
)
def test_canary_steps_are_read_into_whole_numbers_whatever_their_form(given):
    typed, problems = deploy(deploy_canary_steps=given)
    assert problems == [] and typed["deploy_canary_steps"] == STEPS
    assert all(type(step["weight"]) is int and type(step["seconds"]) is int for step in typed["deploy_canary_steps"])


def test_no_canary_steps_is_an_empty_list():
    for given in ([], "", "  "):
        typed, problems = deploy(deploy_canary_steps=given)
        assert problems == [] and typed["deploy_canary_steps"] == []


@pytest.mark.parametrize(
    ("given", "detail"),
    [
        ("50:10,20:10", "step 2, 20:10, does not rise above step 1's weight 50"),
        ("20:10,20:10", "step 2, 20:10, does not rise above step 1's weight 20"),
        ("50", "step 1, 50, has no weight from 1 to 99 and seconds"),
        ("0:10", "step 1, 0:10, has no weight from 1 to 99 and seconds"),
        ("100:10", "step 1, 100:10, has no weight from 1 to 99 and seconds"),
        ("5:0", "step 1, 5:0, lasts 0 seconds"),
        ("5:86401", "step 1, 5:86401, lasts 86401 seconds"),
        ([{"weight": 5}], 'step 1, {"weight":5}, has no weight from 1 to 99 and seconds'),
        (
            [{"weight": 5, "seconds": 10, "pause": 1}],
            'step 1, {"weight":5,"seconds":10,"pause":1}, has no weight from 1 to 99 and seconds',
        ),
        ([{"weight": 5.5, "seconds": 10}], 'step 1, {"weight":5.5,"seconds":10}, has no weight from 1 to 99 and seconds'),
        ([{"weight": True, "seconds": 10}], 'step 1, {"weight":true,"seconds":10}, has no weight from 1 to 99 and seconds'),
        (",".join(f"{w}:1" for w in range(1, 22)), "21 steps"),
    ],
)
def test_bad_canary_steps_are_named_step_by_step(given, detail):
    _typed, problems = deploy(deploy_canary_steps=given)
    [problem] = problems
    assert problem.startswith("deploy_canary_steps=") and problem.endswith(f": allowed {RULES['deploy_canary_steps'].allowed} ({detail})")


def test_twenty_rising_steps_are_allowed():
    typed, problems = deploy(deploy_canary_steps=",".join(f"{w}:1" for w in range(1, 21)))
    assert problems == [] and len(typed["deploy_canary_steps"]) == 20


def test_alarm_names_are_stripped_and_limited():
    typed, problems = deploy(deploy_alarms=" shop-green-5xx , shop p99,")
    assert problems == [] and typed["deploy_alarms"] == ["shop-green-5xx", "shop p99"]
    assert deploy(deploy_alarms="")[0]["deploy_alarms"] == []
    allowed = RULES["deploy_alarms"].allowed
    assert deploy(deploy_alarms=["x" * 256])[1] == [f"deploy_alarms={'x' * 57}...: allowed {allowed} ({'x' * 57}... is longer)"]
    assert deploy(deploy_alarms=[f"a{i}" for i in range(101)])[1][0].endswith(f"allowed {allowed} (101 names)")
    assert deploy(deploy_alarms=[f"a{i}" for i in range(100)])[1] == []


def test_hook_files_are_made_absolute_from_the_playbooks_directory(tmp_path):
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "expand.yml").write_text("[]\n")
    (tmp_path / "contract.yml").write_text("[]\n")
    context = {"playbook_dir": str(tmp_path)}
    given = {"deploy_service": "shop", "deploy_image_id": "ami-0123456789abcdef0"}
    typed, problems = check(options("deploy"), {**given, "deploy_hooks": "before_rollout=hooks/expand.yml"}, context)
    assert problems == [] and typed["deploy_hooks"] == {"before_rollout": str(tmp_path / "hooks" / "expand.yml")}
    text = json.dumps({"after_bake": str(tmp_path / "contract.yml"), "before_switch": "./hooks/../contract.yml"})
    typed, problems = check(options("deploy"), {**given, "deploy_hooks": text}, context)
    assert problems == [] and typed["deploy_hooks"] == dict.fromkeys(("after_bake", "before_switch"), str(tmp_path / "contract.yml"))
    typed, problems = check(options("teardown"), {"teardown_services": "shop", "teardown_hooks": "after_retire=contract.yml"}, context)
    assert problems == [] and typed["teardown_hooks"] == {"after_retire": str(tmp_path / "contract.yml")}


def test_bad_hooks_are_named_at_once(tmp_path):
    (tmp_path / "expand.yml").write_text("[]\n")
    context = {"playbook_dir": str(tmp_path)}
    given = {"deploy_service": "shop", "deploy_image_id": "ami-0123456789abcdef0"}
    hooks = {"before_switch": "/nonexistent/hook.yml", "after_everything": "expand.yml", "after_bake": "", "before_rollout": "expand.yml"}
    [problem] = check(options("deploy"), {**given, "deploy_hooks": hooks}, context)[1]
    allowed = RULES["deploy_hooks"].allowed
    assert "before_rollout, before_switch, after_switch, after_bake" in allowed
    assert problem.endswith(
        f": allowed {allowed} (before_switch: /nonexistent/hook.yml is not a file; after_everything is not a hook point; "
        "after_bake names no task file)"
    )
    assert problem.startswith("deploy_hooks=")
    [problem] = check(options("teardown"), {"teardown_services": "shop", "teardown_hooks": "before_switch=expand.yml"}, context)[1]
    assert problem.endswith("(before_switch is not a hook point)") and "the hook point after_retire" in problem
    [problem] = check(options("deploy"), {**given, "deploy_hooks": "before_switch=" + str(tmp_path)}, context)[1]
    assert f"before_switch: {tmp_path} is not a file" in problem  # a directory is no task file


def test_lists_and_mappings_may_come_as_json_text():
    typed, problems = deploy(deploy_smoke_test_status="[200, 204]", deploy_alarms='["a", "b"]')
    assert problems == [] and typed["deploy_smoke_test_status"] == [200, 204] and typed["deploy_alarms"] == ["a", "b"]
    _typed, problems = deploy(deploy_canary_steps="[{not json")
    assert len(problems) == 1 and problems[0].startswith("deploy_canary_steps=")


def test_what_the_kubernetes_modules_allow_is_refused_before_the_lock():
    image = {"deploy_image": "registry.example.com/shop:v2"}
    assert kubernetes("deploy", **image, deploy_capacity="1000", deploy_preparation_capacity="999") == []
    assert kubernetes("deploy", **image, deploy_capacity="1001") == ["deploy_capacity=1001: allowed 1 to 1000"]
    assert deploy(deploy_capacity="1001")[1] == []  # an Auto Scaling group may be larger
    assert kubernetes("deploy", **image, deploy_rollout_timeout="50000", deploy_health_timeout="40000") == [
        "deploy_rollout_timeout=50000 and deploy_health_timeout=40000 with deploy_platform=kubernetes: "
        "one wait covers both there, at most 86400 seconds in all"
    ]
    assert kubernetes("rollback", rollback_capacity="2000", rollback_health_timeout="90000") == [
        "rollback_capacity=2000: allowed 1 to 1000",
        "rollback_health_timeout=90000: allowed 0 to 86400",
    ]
    assert kubernetes("teardown", teardown_wait_timeout="3601") == ["teardown_wait_timeout=3601: allowed 0 to 3600"]


def test_extra_vars_that_look_like_the_roles_but_are_not_its_variables_are_named():
    options = {"deploy_bake_seconds": {}, "deploy_rollout_timeout": {}}
    given = {"deploy_bake_second": "10", "deploy_zzz": "1", "deploy_bake_seconds": "5", "service": "shop", "rollback_to": "blue"}
    assert unknown_variables("deploy", given, options) == [
        "deploy_bake_second: not a variable of the deploy role; did you mean deploy_bake_seconds?",
        "deploy_zzz: not a variable of the deploy role; see the role's variables (meta/argument_specs.yml)",
    ]
    assert unknown_variables("deploy", {"deploy_bake_seconds": 1}, options) == []
