"""Shared test setup: the repo root, infra/aws and the collection are importable.

The collection is the repo root; Ansible imports it as
``ansible_collections.cutover.bluegreen``, so a link to the repo is laid out
under ``.tmp/collections`` and put on sys.path (and on
ANSIBLE_COLLECTIONS_PATH for the ansible-playbook runs of the tests).
"""

import contextlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".tmp" / "collections-link"


def _link_collection() -> None:
    link = COLLECTIONS / "ansible_collections" / "cutover" / "bluegreen"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists():
            raise RuntimeError(f"{link} exists and is not a link to the repo")
        with contextlib.suppress(FileExistsError):  # another test process made it first
            link.symlink_to(REPO, target_is_directory=True)


_link_collection()
for path in (REPO, REPO / "infra" / "aws", COLLECTIONS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
