# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The smoke test of a release on Kubernetes: requests through the preview Service before any user reaches it.

The preview Service selects the idle colour, where the release was rolled out;
it is a ``ClusterIP`` Service, so the request goes through the API server's
proxy (``GET /api/v1/namespaces/<ns>/services/<preview>/proxy/<path>``), which
forwards it to one of the Service's ready endpoints: it works from wherever the
kubeconfig works (a CI runner, an AWX job), as ``kubectl get --raw`` does, with
no port-forward and no route into the cluster. The deployer Role grants ``get``
on ``services/proxy`` for the preview Service only.

:func:`plan_smoke_test` checks, before any request, that the preview Service
selects the colour the release went to (else the test would judge the live
release); :func:`judge` is the verdict on one answer; :func:`smoke_test` asks
until an answer passes or the retries are spent.
"""

from __future__ import annotations

import time

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLORS, CutoverError

MAX_CONTENT = 4096
COLOR_CHOICES = COLORS + ("idle",)


def validate_inputs(path="/", statuses=(200,), retries=10, delay=1.0, color="idle"):
    """Bad input fails before anything is read, naming the option and what is allowed."""
    if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
        raise CutoverError("path must start with / and hold no blanks, got %r" % (path,))
    if not statuses or not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses):
        raise CutoverError("status must be a non-empty list of HTTP statuses from 100 to 599, got %r" % (statuses,))
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 1000:
        raise CutoverError("retries must be from 0 to 1000, got %r" % (retries,))
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 300:
        raise CutoverError("delay must be from 0 to 300 seconds, got %r" % (delay,))
    if color not in COLOR_CHOICES:
        raise CutoverError("color must be one of %s, got %r" % (", ".join(COLOR_CHOICES), color))


def plan_smoke_test(pair, color="idle", service=None):
    """``{service, color}`` to request; refuses a preview Service that does not select the colour under test."""
    wanted = pair["idle_color"] if color == "idle" else color
    name = service or pair["names"]["preview_service"]
    if service is None or service == pair["names"]["preview_service"]:
        preview = pair.get("preview_service")
        if preview is None:
            raise CutoverError(
                "the preview Service %s/%s of app %s was not found: the smoke test reaches the new release through it "
                "(infra/kubernetes creates it)" % (pair["namespace"], name, pair["app"]),
                missing=name,
            )
        if pair.get("preview_color") != wanted:
            raise CutoverError(
                "the preview Service %s/%s selects %s, not %s, the colour under test: the smoke test would not reach the new "
                "release. Nothing was requested." % (pair["namespace"], name, pair.get("preview_color") or "no colour", wanted),
                preview_color=pair.get("preview_color"),
            )
    return {"service": name, "color": wanted}


def _text(body):
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return body if isinstance(body, str) else ""


def judge(answer, statuses, expect=None):
    """``(passed, why)`` of one answer ``{status, body}``: a wanted status, and ``expect`` in the body when given."""
    status, content = answer["status"], _text(answer.get("body"))
    if status not in statuses:
        return False, "answered %s, wanted %s%s" % (status, ", ".join(str(s) for s in statuses), (": " + content[:200]) if content else "")
    if expect is not None and expect not in content:
        return False, "answered %s without %r in its body: %s" % (status, expect, content[:200])
    return True, "answered %s" % status


def smoke_test(
    kube,
    pair,
    path="/",
    statuses=(200,),
    expect=None,
    retries=10,
    delay=1.0,
    color="idle",
    service=None,
    sleep=time.sleep,
    clock=time.monotonic,
):
    """Request ``path`` through the Service until an answer passes; returns what it got, or fails naming the last answer."""
    planned = plan_smoke_test(pair, color, service)
    started = clock()
    attempts, why, answer = 0, "no request made", {"status": None, "body": b""}
    for attempt in range(retries + 1):
        attempts = attempt + 1
        try:
            answer = kube.call("get", "services/proxy", pair["namespace"], planned["service"], subpath=path, raw=True)
        except CutoverError as exc:  # no answer at all (the API server unreachable)
            answer, why = {"status": None, "body": b""}, exc.message
        else:
            passed, why = judge(answer, list(statuses), expect)
            if passed:
                break
        if attempt < retries:
            sleep(delay)
    else:
        raise CutoverError(
            "the smoke test of app %s failed: GET %s through the Service %s/%s (%s) %s, after %d attempt(s)"
            % (pair["app"], path, pair["namespace"], planned["service"], planned["color"], why, attempts),
            status=answer["status"],
            content=_text(answer.get("body"))[:MAX_CONTENT],
            attempts=attempts,
            service=planned["service"],
            color=planned["color"],
        )
    return {
        "status": answer["status"],
        "content": _text(answer.get("body"))[:MAX_CONTENT],
        "attempts": attempts,
        "seconds": round(clock() - started, 3),
        "service": planned["service"],
        "color": planned["color"],
        "path": path,
    }
