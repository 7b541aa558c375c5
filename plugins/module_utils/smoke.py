# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The smoke test of a release, whatever reaches it: ask until an answer passes or the retries are spent.

One request per look of the one waiter (:mod:`waits`): a look fetches an answer
``{status, body}`` (or None when nothing answered), :func:`judge` gives its
verdict. On AWS the request goes to the test listener's URL, which forwards to
the idle colour only (:func:`fetch_url`); on Kubernetes through the preview
Service (``k8s_smoke``).
"""

from __future__ import annotations

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.waits import Condition, WaitTimeout, waiter_for

MAX_CONTENT = 4096


def argument_spec():
    """How a smoke test judges and repeats its request: the options of the doc fragment ``cutover.bluegreen.smoke``."""
    return dict(
        status=dict(type="list", elements="int", default=[200]),
        expect=dict(type="str"),
        retries=dict(type="int", default=10),
        delay=dict(type="float", default=1.0),
    )


def validate_request(path="/", statuses=(200,), retries=10, delay=1.0):
    """Bad input fails before anything is requested, naming the option and what is allowed."""
    if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
        raise CutoverError("path must start with / and hold no blanks, got %r" % (path,))
    if not statuses or not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses):
        raise CutoverError("status must be a non-empty list of HTTP statuses from 100 to 599, got %r" % (statuses,))
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 1000:
        raise CutoverError("retries must be from 0 to 1000, got %r" % (retries,))
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 300:
        raise CutoverError("delay must be from 0 to 300 seconds, got %r" % (delay,))


def text(body):
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return body if isinstance(body, str) else ""


def judge(answer, statuses, expect=None):
    """``(passed, why)`` of one answer ``{status, body}``: a wanted status, and ``expect`` in the body when given."""
    status, content = answer["status"], text(answer.get("body"))
    if status not in statuses:
        return False, "answered %s, wanted %s%s" % (status, ", ".join(str(s) for s in statuses), (": " + content[:200]) if content else "")
    if expect is not None and expect not in content:
        return False, "answered %s without %r in its body: %s" % (status, expect, content[:200])
    return True, "answered %s" % status


def ask(
    fetch,
    what,
    statuses,
    expect=None,
    retries=10,
    delay=1.0,
    waiter=None,
    subject="the smoke test",
    progress=None,
    sleep=None,
    clock=None,
    **extra,
):
    """``fetch()`` until an answer passes: ``{status, content, attempts, seconds}``.

    ``fetch()`` returns ``{status, body}`` or raises :class:`CutoverError` when nothing answered; ``what``
    says what is asked (``GET /health through ...``). After ``retries`` + 1 failing looks, ``delay`` seconds
    apart, raises ``CutoverError("<subject> failed: <what> <why of the last answer>, after N attempt(s)")``
    with the last answer's ``status`` and ``content``, the ``attempts`` and ``extra``.
    """
    seen = {"why": "no request made", "answer": {"status": None, "body": b""}}

    def check():
        try:
            seen["answer"] = fetch()
        except CutoverError as exc:  # no answer at all
            seen.update(answer={"status": None, "body": b""}, why=exc.message)
            return None
        passed, seen["why"] = judge(seen["answer"], list(statuses), expect)
        return seen["answer"] if passed else None

    waiter = waiter_for(waiter, progress, clock=clock, sleep=sleep, delay=delay, max_delay=delay, factor=1.0)
    try:
        # The retries bound the wait; the timeout only backs them up.
        waited = waiter.wait(Condition(what + " to pass", check, lambda: seen["why"]), (retries + 1) * (delay + 60), looks=retries + 1)
    except WaitTimeout as exc:
        answer = seen["answer"]
        raise CutoverError(
            "%s failed: %s %s, after %d attempt(s)" % (subject, what, seen["why"], exc.details["attempts"]),
            status=answer["status"],
            content=text(answer.get("body"))[:MAX_CONTENT],
            attempts=exc.details["attempts"],
            **extra,
        ) from exc
    return {
        "status": waited.result["status"],
        "content": text(waited.result.get("body"))[:MAX_CONTENT],
        "attempts": waited.looks,
        "seconds": waited.seconds,
    }


def fetch_url(url, timeout=10.0, opener=None):
    """A ``fetch`` for :func:`ask`: GET ``url`` with ansible's ``open_url``; an HTTP error status is an answer too."""
    import http.client
    import urllib.error

    from ansible.module_utils import urls

    opener = opener or urls.open_url
    no_answer = (urllib.error.URLError, OSError, http.client.HTTPException, urls.ConnectionError, urls.SSLValidationError)

    def fetch():
        try:
            response = opener(url, method="GET", timeout=timeout, follow_redirects="safe")
        except urllib.error.HTTPError as exc:  # a 4XX or 5XX is an answer to judge
            return {"status": exc.code, "body": exc.read() or b""}
        except no_answer as exc:  # refused, reset, timed out, bad certificate
            raise CutoverError("got no answer (%s)" % (getattr(exc, "reason", None) or exc,)) from None
        with response:
            return {"status": response.status, "body": response.read(MAX_CONTENT * 4)}

    return fetch


def smoke_test_url(url, statuses=(200,), expect=None, retries=10, delay=1.0, timeout=10.0, waiter=None, opener=None, **looks):
    """GET ``url`` until an answer passes (see :func:`ask`; ``looks``: its progress, sleep and clock); the result names the url."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise CutoverError("url must start with http:// or https:// and hold no blanks, got %r" % (url,))
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise CutoverError("timeout must be more than 0 and at most 300 seconds, got %r" % (timeout,))
    validate_request("/", statuses, retries, delay)
    result = ask(fetch_url(url, timeout, opener), "GET %s" % url, statuses, expect, retries, delay, waiter, **looks)
    return dict(result, url=url)
