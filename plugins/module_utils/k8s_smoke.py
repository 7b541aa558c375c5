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
from ansible_collections.cutover.bluegreen.plugins.module_utils.smoke import ask, validate_request

COLOR_CHOICES = COLORS + ("idle",)


def validate_inputs(path="/", statuses=(200,), retries=10, delay=1.0, color="idle"):
    """Bad input fails before anything is read, naming the option and what is allowed."""
    validate_request(path, statuses, retries, delay)
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
    waiter=None,
):
    """Request ``path`` through the Service until an answer passes; returns what it got, or fails naming the last answer.

    A wait (:mod:`waits`) of at most ``retries`` + 1 looks, ``delay`` seconds apart, each one request.
    """
    planned = plan_smoke_test(pair, color, service)

    def fetch():
        return kube.call("get", "services/proxy", pair["namespace"], planned["service"], subpath=path, raw=True)

    what = "GET %s through the Service %s/%s (%s)" % (path, pair["namespace"], planned["service"], planned["color"])
    subject = "the smoke test of app %s" % pair["app"]
    details = dict(service=planned["service"], color=planned["color"])
    result = ask(fetch, what, statuses, expect, retries, delay, waiter, subject=subject, sleep=sleep, clock=clock, **details)
    return dict(result, service=planned["service"], color=planned["color"], path=path)
