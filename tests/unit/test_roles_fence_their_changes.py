"""Every task of the roles that changes production runs under the run's lease, and every switch counts capacity alike.

A module that changes production takes ``lease`` (its documentation extends ``cutover.bluegreen.lease``, or
``cutover.bluegreen.k8s_app.fence`` on Kubernetes) and checks it before each change, so a run that lost its lock
changes nothing more; the lease names the run's controller, so the work of a killed run stops too. A task of such a module that
forgets the option would change production without that check: each must pass it, unless it only looks
(``check_mode: true``). Every switch passes ``deregister_foreign`` as the role's variable says, so a canary step,
the switch and a switch back count a colour's capacity the same way.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.conftest import REPO

FENCED = {
    f"cutover.bluegreen.{path.stem}"
    for path in (REPO / "plugins" / "modules").glob("*.py")
    if re.search(r"^\s+- cutover\.bluegreen\.(lease|k8s_app\.fence)$", path.read_text(), re.M)
}
DEREGISTER_FOREIGN = {"cutover.bluegreen.switch", "cutover.bluegreen.rollout"}


def tasks(items: list[dict[str, Any]] | None):
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from tasks(task.get(key))


def role_tasks():
    for path in sorted((REPO / "roles").glob("*/tasks/**/*.yml")):  # each platform's steps in tasks/<platform>/
        for task in tasks(yaml.safe_load(path.read_text())):
            module = next((key for key in task if key.startswith("cutover.bluegreen.")), None)
            if module:
                yield f"{path.relative_to(REPO)}: {task.get('name')}", module, task


def test_the_modules_that_change_production_are_known():
    assert {"cutover.bluegreen.switch", "cutover.bluegreen.rollout", "cutover.bluegreen.standby", "cutover.bluegreen.teardown"} <= FENCED
    assert {"cutover.bluegreen.k8s_switch", "cutover.bluegreen.k8s_rollout", "cutover.bluegreen.k8s_teardown"} <= FENCED


def test_every_change_of_production_in_the_roles_passes_the_lease():
    found = [(where, module, task) for where, module, task in role_tasks() if module in FENCED]
    assert any("canary_step.yml" in where for where, _, _ in found)  # the canary's weighted switch is among them
    assert any("kubernetes/switch_back.yml" in where for where, _, _ in found)  # and the Kubernetes steps
    changing = [(where, module, task) for where, module, task in found if task.get("check_mode") is not True]
    missing = [where for where, module, task in changing if "lease" not in (task[module] or {})]
    assert missing == []
    # the lease names the run's controller: the work of a run whose controller was killed stops (a fact or the mapping)
    without_controller = [
        where for where, module, task in changing if not re.search(r"deploy_lease|controller", str(task[module]["lease"]))
    ]
    assert without_controller == []


def test_every_switch_and_rollout_counts_foreign_targets_as_the_role_says():
    found = [(where, task[module] or {}) for where, module, task in role_tasks() if module in DEREGISTER_FOREIGN]
    assert len(found) >= 4  # the rollout, the canary step, the switch and the switch back
    wrong = [where for where, options in found if "deploy_deregister_foreign" not in str(options.get("deregister_foreign"))]
    assert wrong == []
