"""The collection declares what its Kubernetes modules need, and the execution environment installs it."""

from __future__ import annotations

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.conftest import REPO
from tests.unit.test_awx_definitions import EE, bundled_version, pins


def test_galaxy_and_the_execution_environment_bring_kubernetes_core():
    bundled = Version(bundled_version("kubernetes", "core"))  # the version the tests run with
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert bundled in SpecifierSet(galaxy["dependencies"]["kubernetes.core"])
    definition = yaml.safe_load((EE / "execution-environment.yml").read_text())
    collections = {entry["name"]: entry for entry in yaml.safe_load((EE / definition["dependencies"]["galaxy"]).read_text())["collections"]}
    assert bundled in SpecifierSet(collections["kubernetes.core"]["version"])


def test_the_execution_environment_has_the_kubernetes_client_the_tests_use():
    definition = yaml.safe_load((EE / "execution-environment.yml").read_text())
    python = pins(EE / definition["dependencies"]["python"])
    assert python["kubernetes"] == pins(REPO / "requirements.txt")["kubernetes"]
