"""Shared test setup: the repo root, infra/aws, infra/kubernetes and the collection are importable.

The collection is the repo root; Ansible imports it as
``ansible_collections.cutover.bluegreen``, so a link to the repo is laid out
under ``.tmp/collections`` and put on sys.path (and on
ANSIBLE_COLLECTIONS_PATH for the ansible-playbook runs of the tests).
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".tmp" / "collections-link"  # where sandbox.playbooks.link_collection links the checkout


for path in (REPO, REPO / "infra" / "aws", REPO / "infra" / "kubernetes", COLLECTIONS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from sandbox.playbooks import link_collection  # noqa: E402 - needs the repo on sys.path

link_collection()
os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)


# `make test` runs the files side by side (pytest-xdist, --dist loadfile: one worker runs a whole file, so a
# file's tests share its sandbox). Workers take files in collection order, so the longest go first: the
# files that wait longest for health checks, metric periods and leases, then the rest, unit tests last.
LONGEST_FIRST = (
    "test_zero_downtime.py",
    "test_bake.py",
    "test_crash_recovery.py",
    "test_playbooks.py",
    "test_fleet.py",
    "test_k8s_playbooks.py",
    "test_metrics_aws_period.py",
    "test_capacity_guard.py",
    "test_awx_job_templates.py",
    "test_molecule.py",
    "test_inputs.py",
    "test_faults.py",
    "test_k8s_zero_downtime.py",
    "test_k8s_modules.py",
    "test_k8s_sandbox.py",
    "test_dataplane.py",
    "test_lock_journal.py",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        path = Path(str(item.fspath))
        if path.name in LONGEST_FIRST:
            return (0, LONGEST_FIRST.index(path.name))
        return (1 if path.parent.name == "integration" else 2, 0)

    items.sort(key=rank)  # stable: each file's tests keep their order
