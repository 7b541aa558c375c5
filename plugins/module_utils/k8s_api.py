# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Kubernetes API calls of the collection, and what its Kubernetes modules share.

Authentication and the client come from kubernetes.core: the modules take its
``AUTH_ARG_SPEC`` (kubeconfig, context, host, api_key, certificates, proxy,
impersonation, the ``K8S_AUTH_*`` variables) and :func:`api` asks its
``get_api_client`` for the configured ``ApiClient``.

Every request goes through :meth:`Kube.call` with the verb and the resource as
literal strings (``kube.call("patch", "services", namespace, name, body)``), so
the deployer Role of ``infra/kubernetes`` can be compared with the calls the
code makes (a unit test does). Requests go to the resource paths directly and
answers stay plain dicts: kubernetes.core's dynamic client would first discover
the API (requests of its own) and wrap every answer in objects, where the
library's pure functions want the JSON the API server sent.
"""

from __future__ import annotations

import json
import time

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError

# resource (as the code names it) -> (API group, version, plural). The core group is "".
RESOURCES = {
    "apps/deployments": ("apps", "v1", "deployments"),
    "services": ("", "v1", "services"),
    "pods": ("", "v1", "pods"),
    "events": ("", "v1", "events"),
    "configmaps": ("", "v1", "configmaps"),
    "discovery.k8s.io/endpointslices": ("discovery.k8s.io", "v1", "endpointslices"),
    "coordination.k8s.io/leases": ("coordination.k8s.io", "v1", "leases"),
    # The API server's proxy to a Service: a request reaches one of its ready endpoints (what a smoke test asks).
    "services/proxy": ("", "v1", "services/proxy"),
}
VERBS = {"get": "GET", "list": "GET", "create": "POST", "update": "PUT", "patch": "PATCH"}
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
# Answers worth asking again: throttled, or the API server (or what is in front of it) briefly unavailable.
RETRY_STATUSES = (429, 500, 502, 503, 504)
ATTEMPTS = 4
REQUEST_TIMEOUT = 30


class KubeError(CutoverError):
    """A Kubernetes API call failed; ``status`` and ``reason`` are the API's (``status`` 0: no answer)."""

    def __init__(self, message, status=0, reason=None, **details):
        super().__init__(message, status=status, reason=reason, **details)
        self.status = status
        self.reason = reason


def is_conflict(exc):
    return isinstance(exc, KubeError) and exc.status == 409


def is_not_found(exc):
    return isinstance(exc, KubeError) and exc.status == 404


def path(resource, namespace, name=None, subpath=None):
    """The URL path of a namespaced resource (collection, or one object; a subresource such as ``services/proxy``
    after the object's name, then ``subpath``)."""
    group, version, plural = RESOURCES[resource]
    plural, _slash, subresource = plural.partition("/")
    base = "/api/%s" % version if not group else "/apis/%s/%s" % (group, version)
    out = "%s/namespaces/%s/%s" % (base, namespace, plural)
    if name:
        out += "/" + name
    if subresource:
        out += "/" + subresource + "/" + (subpath or "").lstrip("/")
    return out


def describe(verb, resource, namespace, name=None):
    """``patch services shop/shop`` — what a failure message names."""
    return "%s %s %s" % (verb, RESOURCES[resource][2], "%s/%s" % (namespace, name) if name else "in namespace %s" % namespace)


def error_from(exc, verb, resource, namespace, name=None):
    """A :class:`KubeError` from the client's ApiException (or a connection error), naming the call."""
    status = getattr(exc, "status", 0) or 0
    reason, message = getattr(exc, "reason", None), None
    body = getattr(exc, "body", None)
    if body:
        try:
            document = json.loads(body)
            message, reason = document.get("message"), document.get("reason") or reason
        except (TypeError, ValueError):
            message = str(body)[:500]
    text = "%s failed" % describe(verb, resource, namespace, name)
    if status:
        text += ": %s %s" % (status, reason or "")
    text = text.rstrip()
    if message or not status:
        text += ": %s" % (message or exc)
    if status == 403:
        text += " (the deployer Role of infra/kubernetes grants what the collection needs)"
    return KubeError(text, status=status, reason=reason, api_message=message)


class Kube:
    """The collection's requests to one API server, over a configured ``kubernetes.client.ApiClient``."""

    def __init__(self, api_client, timeout=REQUEST_TIMEOUT, sleep=time.sleep):
        self.api_client = api_client
        self.timeout = timeout
        self.sleep = sleep
        self.calls = []  # (verb, resource) of every request, for tests and benchmarks

    def call(
        self,
        verb,
        resource,
        namespace,
        name=None,
        body=None,
        patch="merge",
        label_selector=None,
        field_selector=None,
        subpath=None,
        raw=False,
    ):
        """One request; returns the answer as plain data. Raises :class:`KubeError` naming the call.

        ``subpath`` is the path after a subresource (``services/proxy``); with ``raw`` the answer comes back as
        ``{status, body, headers}`` whatever its status (no retry, no error for a 4XX or 5XX the target gave).
        """
        from kubernetes.client.exceptions import ApiException

        try:
            import urllib3.exceptions as urllib3_errors

            connection_errors = (urllib3_errors.HTTPError, OSError)
        except ImportError:
            connection_errors = (OSError,)
        if verb not in VERBS or resource not in RESOURCES:
            raise ValueError("unknown call %s %s" % (verb, resource))
        if verb in ("get", "update", "patch") and not name:
            raise ValueError("%s %s needs a name" % (verb, resource))
        query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        headers = {"Accept": "*/*" if raw else "application/json"}
        if verb == "patch":
            headers["Content-Type"] = PATCH_TYPES[patch]
        elif body is not None:
            headers["Content-Type"] = "application/json"
        self.calls.append((verb, resource))
        delay = 0.5
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = self.api_client.call_api(
                    path(resource, namespace, name if verb != "create" else None, subpath),
                    VERBS[verb],
                    query_params=query,
                    header_params=headers,
                    body=body,
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _return_http_data_only=True,
                    _request_timeout=self.timeout,
                )
            except ApiException as exc:
                if raw:
                    return {"status": exc.status, "body": exc.body or b"", "headers": dict(exc.headers or {})}
                # A refused request (429) changed nothing; other errors are retried for reads only.
                retry = exc.status == 429 or (exc.status in RETRY_STATUSES and verb in ("get", "list"))
                if retry and attempt < ATTEMPTS:
                    self.sleep(_retry_after(exc, delay))
                    delay *= 2
                    continue
                raise error_from(exc, verb, resource, namespace, name) from None
            except connection_errors as exc:
                if verb in ("get", "list") and attempt < ATTEMPTS:
                    self.sleep(delay)
                    delay *= 2
                    continue
                raise error_from(exc, verb, resource, namespace, name) from None
            data = response.data
            if raw:
                return {"status": response.status, "body": data or b"", "headers": dict(getattr(response, "headers", None) or {})}
            return json.loads(data) if data else {}
        raise KubeError("%s failed after %d attempts" % (describe(verb, resource, namespace, name), ATTEMPTS))

    def get_or_none(self, resource, namespace, name):
        """The object ``name``, or None where the API says it does not exist (any other error is raised)."""
        try:
            return self.call("get", resource, namespace, name)
        except KubeError as exc:
            if is_not_found(exc):
                return None
            raise


def _retry_after(exc, delay):
    headers = getattr(exc, "headers", None) or {}
    try:
        return min(10.0, float(headers.get("Retry-After")))
    except (TypeError, ValueError):
        return delay


def items(answer):
    """The objects of a list answer."""
    return list((answer or {}).get("items") or [])
