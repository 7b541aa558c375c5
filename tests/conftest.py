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
