"""record_file: the deployment record written on the controller by an action, without a module run."""

from __future__ import annotations

import json
import stat

from .ansible_harness import run_module

MODULE = "cutover.bluegreen.record_file"
# The action makes no AWS call; the harness wants an endpoint all the same.
NO_ENDPOINT = "http://127.0.0.1:9"
RECORD = {"deployment_id": "20260101T120000Z-1a2b3c4d", "outcome": "succeeded", "durations": {"cutover_seconds": 0.05}, "note": "grün"}


def write(path, check=False, diff=False, **args):
    return run_module(MODULE, {"path": str(path), "content": RECORD, **args}, NO_ENDPOINT, check=check, diff=diff)


def test_check_mode_then_write_then_idempotent(tmp_path):
    path = tmp_path / "shop.json"
    checked = write(path, check=True, diff=True)
    assert not checked.get("failed"), checked
    assert checked["changed"] and not path.exists()
    assert json.loads(checked["diff"]["after"]) == RECORD and checked["diff"]["before"] == ""

    written = write(path)
    assert not written.get("failed"), written
    assert written["changed"] and written["path"] == str(path)
    assert json.loads(path.read_text(encoding="utf-8")) == RECORD
    assert path.read_text(encoding="utf-8").startswith('{\n    "deployment_id"')  # indented, keys sorted
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert written["bytes"] == len(path.read_bytes())
    assert [p.name for p in tmp_path.iterdir()] == ["shop.json"]  # no temporary file left

    again = write(path)
    assert not again.get("failed") and again["changed"] is False

    private = write(path, mode="0600")
    assert private["changed"] and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_bad_input_fails_clearly_and_writes_nothing(tmp_path):
    missing = write(tmp_path / "nosuch" / "shop.json")
    assert missing.get("failed") and f"the folder {tmp_path / 'nosuch'} does not exist" in missing["msg"]
    bad_mode = write(tmp_path / "shop.json", mode="rw-r--r--")
    assert bad_mode.get("failed") and "mode 'rw-r--r--' is not an octal file mode" in bad_mode["msg"]
    assert list(tmp_path.iterdir()) == []
