"""The collection's metadata says what is true: versions, dependencies, licence, links.

galaxy.yml, meta/runtime.yml, the roles' meta, the execution environment (extensions/ee/) and the
README each state part of it; these tests hold them to each other and to what the code uses and
what the tests run with.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import ansible.release
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.conftest import REPO

GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
RUNTIME = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
EE_DIR = REPO / "extensions" / "ee"
EE = yaml.safe_load((EE_DIR / "execution-environment.yml").read_text())
ROLES = sorted(p.parent.parent for p in (REPO / "roles").glob("*/meta/main.yml"))
# Collections that ship with ansible-core, and the collection itself.
BUILT_IN = {"ansible.builtin", "ansible.legacy", f"{GALAXY['namespace']}.{GALAXY['name']}"}


def pins(path):
    """``{name: version}`` of the ``name==version`` lines of a pip requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\[\]-]+)==([^\s#]+)", line)
        if match:
            found[re.sub(r"\[.*\]", "", match.group(1)).lower()] = match.group(2)
    return found


REQUIREMENTS = pins(REPO / "requirements.txt")


def minor(version):
    return ".".join(str(version).split(".")[:2])


def test_the_ansible_core_floor_is_the_version_the_tests_run_on():
    """requires_ansible, every role and the README name one floor: the ansible-core that CI tests."""
    tested = minor(REQUIREMENTS["ansible-core"])
    assert RUNTIME["requires_ansible"] == f">={tested}.0"
    assert SpecifierSet(RUNTIME["requires_ansible"]).contains(ansible.release.__version__)
    for role in ROLES:
        meta = yaml.safe_load((role / "meta" / "main.yml").read_text())
        assert str(meta["galaxy_info"]["min_ansible_version"]) == tested, role.name
    assert f"ansible-core {tested} or later" in (REPO / "README.md").read_text()
    assert EE["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={REQUIREMENTS['ansible-core']}"


def test_the_dependencies_agree_with_the_execution_environment():
    ee_collections = yaml.safe_load((EE_DIR / "requirements.yml").read_text())["collections"]
    from_galaxy = {entry["name"]: entry["version"] for entry in ee_collections if entry.get("type") != "file"}
    assert from_galaxy == GALAXY["dependencies"]
    # the collection itself is installed from the tarball extensions/ee/build makes
    assert [entry["name"] for entry in ee_collections if entry.get("type") == "file"] == ["collections/cutover-bluegreen.tar.gz"]
    assert EE["dependencies"]["ansible_runner"]["package_pip"] == f"ansible-runner=={REQUIREMENTS['ansible-runner']}"
    for name, version in pins(EE_DIR / "requirements.txt").items():
        assert REQUIREMENTS[name] == version, name


def test_the_tested_collections_satisfy_the_dependency_ranges():
    import ansible_collections

    for dependency, spec in GALAXY["dependencies"].items():
        manifests = [Path(base, *dependency.split("."), "MANIFEST.json") for base in ansible_collections.__path__]
        versions = [json.loads(m.read_text())["collection_info"]["version"] for m in manifests if m.is_file()]
        assert versions, f"{dependency} is not installed with the ansible package"
        assert SpecifierSet(spec).contains(Version(versions[0])), f"{dependency} {versions[0]} is outside {spec}"


def used_collections():
    """Every collection the collection's code refers to, by import, doc fragment, FQCN or action group."""
    used = set()
    for path in (REPO / "plugins").rglob("*.py"):
        text = path.read_text()
        used |= {f"{ns}.{name}" for ns, name in re.findall(r"ansible_collections\.(\w+)\.(\w+)\.", text)}
        match = re.search(r'DOCUMENTATION = r?"""(.*?)"""', text, re.S)
        if match:
            doc = yaml.safe_load(match.group(1)) or {}
            used |= {".".join(fragment.split(".")[:2]) for fragment in doc.get("extends_documentation_fragment", [])}
    for path in [*(REPO / "roles").rglob("*.yml"), *(REPO / "playbooks").glob("*.yml")]:
        text = path.read_text()
        used |= set(re.findall(r"^\s*(?:- )?(\w+\.\w+)\.\w+:", text, re.M))  # tasks: ns.coll.module:
        used |= set(re.findall(r"group/(\w+\.\w+)\.\w+", text))  # module_defaults groups
        used |= set(re.findall(r"role: (\w+\.\w+)\.\w+", text))
    for group in RUNTIME["action_groups"].values():
        for item in group:
            if isinstance(item, dict):
                used |= {".".join(extended.split(".")[:2]) for extended in item["metadata"].get("extend_group", [])}
    return used - BUILT_IN


def test_the_dependencies_are_exactly_what_the_code_uses():
    used = used_collections()
    assert "amazon.aws" in used  # the scan sees the imports and doc fragments
    assert used == set(GALAXY["dependencies"]), f"the code uses {sorted(used)}, galaxy.yml declares {sorted(GALAXY['dependencies'])}"


def test_the_licence_is_there_and_everyone_names_the_same():
    text = (REPO / "LICENSE").read_text()
    assert text.split("\n", 2)[:2] == ["                    GNU GENERAL PUBLIC LICENSE", "                       Version 3, 29 June 2007"]
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 30000  # the full text, not a pointer
    assert GALAXY["license"] == ["GPL-3.0-or-later"]
    for role in ROLES:
        assert yaml.safe_load((role / "meta" / "main.yml").read_text())["galaxy_info"]["license"] == "GPL-3.0-or-later"
    for path in (REPO / "plugins").rglob("*.py"):
        assert "GNU General Public License v3.0+" in path.read_text()[:400], path


def test_the_links_are_real_and_consistent():
    repository = GALAXY["repository"]
    assert re.fullmatch(r"https://github\.com/[\w-]+/[\w-]+", repository)
    assert GALAXY["homepage"] == repository
    assert GALAXY["issues"] == f"{repository}/issues"
    assert GALAXY["documentation"].startswith(f"{repository}/")
    assert "example" not in (REPO / "galaxy.yml").read_text()
