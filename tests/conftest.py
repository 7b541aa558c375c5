"""Shared test setup: the repo root and infra/aws are importable."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "infra" / "aws"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
