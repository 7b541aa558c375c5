"""Every module of the collection renders with ansible-doc and is in its action group (aws, or k8s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import COLLECTIONS, REPO

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
# Controller-side actions that make no AWS call: documented like modules, outside the aws group.
CONTROLLER_ACTIONS = ["fleet_plan", "fleet_wave", "job_wait", "record_file", "run_identity", "validate_inputs"]
K8S_MODULES = [module for module in MODULES if module.startswith("k8s_")]
# Modules for either platform, in neither group: they talk HTTP to a release, not to AWS or Kubernetes.
PLATFORM_NEUTRAL = ["smoke_test"]
AWS_MODULES = [module for module in MODULES if module not in CONTROLLER_ACTIONS + K8S_MODULES + PLATFORM_NEUTRAL]


def test_every_module_is_in_the_aws_action_group():
    group = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["action_groups"]["aws"]
    assert sorted(item for item in group if isinstance(item, str)) == AWS_MODULES
    k8s = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["action_groups"]["k8s"]
    assert sorted(item for item in k8s if isinstance(item, str)) == K8S_MODULES
    assert {"metadata": {"extend_group": ["kubernetes.core.k8s"]}} in k8s
    for action in CONTROLLER_ACTIONS:  # each is backed by an action plugin that runs on the controller
        assert (REPO / "plugins" / "action" / f"{action}.py").is_file()


def ansible_doc(module):
    """What ``ansible-doc --json`` says of the module (fragments merged), as a user's ansible-doc renders it."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "--json", f"cutover.bluegreen.{module}"],
        env={"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "PATH": "/usr/bin:/bin", "HOME": str(REPO / ".tmp")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[f"cutover.bluegreen.{module}"]


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    doc = ansible_doc(module)
    assert doc["doc"]["module"] == module
    assert doc["doc"]["short_description"] and doc["examples"] and doc["return"] is not None
    if module in AWS_MODULES:
        assert "service" in doc["doc"]["options"]  # every AWS module acts on one service's pair
    if module in K8S_MODULES:  # every Kubernetes module acts on one app, connected by kubernetes.core's options
        assert doc["doc"]["options"]["app"]["aliases"] == ["service"] and "kubeconfig" in doc["doc"]["options"]


def test_controller_actions_share_their_attributes_and_say_where_they_differ():
    def attributes(module):
        return {name: attribute["support"] for name, attribute in ansible_doc(module)["doc"]["attributes"].items()}

    # the fragment's diff_mode (none) and the module's own check_mode
    assert attributes("fleet_plan") == {"action": "full", "check_mode": "full", "diff_mode": "none", "platform": "full"}
    # a module's own attribute wins over the fragment's
    assert attributes("record_file")["diff_mode"] == "full"
    assert attributes("job_wait")["check_mode"] == "none"
