# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deployment journal of an app on Kubernetes, kept in a ConfigMap.

One ConfigMap per app, ``<app>-cutover-journal``, in the app's namespace. Each
deployment is one key of its ``data``: the deployment id
(``20260101T120000Z-1a2b3c4d``, its UTC start time first, so keys sort by time)
-> the entry as JSON, the same entry the AWS journal keeps in DynamoDB::

    deployment_id, service, owner, started_at, updated_at, finished_at (ISO 8601 UTC)
    outcome          in_progress | succeeded | failed | rolled_back | interrupted
    summary, duration_seconds, steps {name: {status, started, finished, seconds}}, step_order
    record           free-form: colours, versions, images, durations of the phases...

A ConfigMap rather than annotations on the Lease: the journal outlives the lock,
is read by people with ``kubectl get configmap <app>-cutover-journal -o yaml``,
and holds far more than annotations should (the newest ``MAX_ENTRIES`` entries
are kept; a ConfigMap holds up to 1 MiB).

Entries are planned by the pure functions of the AWS journal
(:mod:`journal`: ids, steps, outcomes, durations, views, what a takeover does
to a dead run's entry) and written as one update of the ConfigMap naming the
``resourceVersion`` read, so concurrent writers never lose each other's
entries: the loser of a race (409) reads again and plans again. Opening an
entry under the lock and giving the lock back are ``locking``'s, as on AWS.
"""

from __future__ import annotations

import json

from ansible_collections.cutover.bluegreen.plugins.module_utils import journal, locking
from ansible_collections.cutover.bluegreen.plugins.module_utils import k8s_lease as leases
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.journal import IN_PROGRESS, plan_finish, validate_outcome
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import is_conflict
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import names

# The journal's outcomes and what a takeover does to a dead run's entry, here as well as in journal.
FINAL_OUTCOMES, INTERRUPTED, plan_settle = journal.FINAL_OUTCOMES, journal.INTERRUPTED, journal.plan_settle
ADOPT, INTERRUPT, LEAVE = journal.ADOPT, journal.INTERRUPT, journal.LEAVE
MAX_ENTRIES = 100
MAX_RECENT = journal.MAX_RECENT
ATTEMPTS = 3


# -- input -----------------------------------------------------------------------------------------
def validate_record(record):
    """A record this journal can keep: a dict that JSON can hold."""
    if record is None:
        return {}
    if not isinstance(record, dict):
        raise CutoverError("record must be a dict, got %s" % type(record).__name__)
    try:
        json.dumps(record)
    except (TypeError, ValueError) as exc:
        raise CutoverError("record cannot be stored as JSON: %s" % exc) from None
    return record


# -- plans (pure) -------------------------------------------------------------------------------------
def new_entry(app, deployment_id, now, owner=None, summary=None, record=None):
    entry = journal.new_item(app, deployment_id, now, owner, summary, record)
    for key in ("pk", "sk", "kind"):
        entry.pop(key, None)
    return entry


def prune(entries, keep=MAX_ENTRIES):
    """The entries to keep: the newest ``keep``, dropping the oldest closed ones first (open ones are kept)."""
    if len(entries) <= keep:
        return dict(entries)
    ordered = sorted(entries)
    closed = [key for key in ordered if entries[key].get("outcome") != IN_PROGRESS]
    drop = set(closed[: len(entries) - keep])
    return {key: value for key, value in entries.items() if key not in drop}


# -- the ConfigMap --------------------------------------------------------------------------------------
def read_object(kube, app, namespace):
    return kube.get_or_none("configmaps", namespace, names(app)["journal_config_map"])


def entries_of(obj):
    """Deployment id -> entry (unreadable values are skipped)."""
    out = {}
    for key, value in ((obj or {}).get("data") or {}).items():
        try:
            journal.validate_deployment_id(key)
            entry = json.loads(value)
        except (CutoverError, ValueError):
            continue
        if isinstance(entry, dict):
            out[key] = entry
    return out


def _body(app, namespace, current, entries):
    meta = dict((current or {}).get("metadata") or {})
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names(app)["journal_config_map"],
            "namespace": namespace,
            "labels": dict(meta.get("labels") or {"app": app}),
        },
        "data": {key: json.dumps(entry, sort_keys=True, separators=(",", ":")) for key, entry in sorted(entries.items())},
    }
    if meta.get("annotations"):
        body["metadata"]["annotations"] = meta["annotations"]
    if meta.get("resourceVersion"):
        body["metadata"]["resourceVersion"] = meta["resourceVersion"]
    return body


def _write(kube, app, namespace, current, entries):
    body = _body(app, namespace, current, prune(entries))
    if current is None:
        return kube.call("create", "configmaps", namespace, body=body)
    return kube.call("update", "configmaps", namespace, body["metadata"]["name"], body=body)


def change(kube, app, namespace, plan, check_mode=False, now=None):
    """Read the journal, ``plan(entries, now) -> (deployment_id, before, after)``, write when ``after`` differs.

    ``plan`` runs again on the newest journal when another writer got in first.
    Returns ``{changed, deployment_id, before, after}``.
    """
    for _attempt in range(ATTEMPTS):
        moment = now or utcnow()
        current = read_object(kube, app, namespace)
        entries = entries_of(current)
        deployment_id, before, after = plan(entries, moment)
        changed = after is not None and after != before
        if changed and not check_mode:
            try:
                _write(kube, app, namespace, current, dict(entries, **{deployment_id: after}))
            except CutoverError as exc:
                if is_conflict(exc):
                    continue
                raise
        return dict(changed=changed, deployment_id=deployment_id, before=before, after=after if after is not None else before)
    raise CutoverError("the journal of app %s kept changing while writing it (%d attempts); try again" % (app, ATTEMPTS))


def _updated(entry, changes, now):
    if not changes:
        return entry
    after = journal.apply_changes(entry, changes)
    after["updated_at"] = isoformat(now)
    return after


def start(kube, app, namespace, owner=None, summary=None, record=None, deployment_id=None, check_mode=False, now=None):
    """Open a deployment (a new id unless ``deployment_id``); opening an existing one changes only what differs."""
    record = validate_record(record)
    if deployment_id is not None:
        journal.validate_deployment_id(deployment_id)
    chosen = {"id": deployment_id}

    def plan(entries, moment):
        key = chosen["id"] or journal.new_deployment_id(moment)
        chosen["id"] = key
        existing = entries.get(key)
        if existing is not None:
            return key, existing, _updated(existing, journal.plan_start_existing(existing, owner, summary, record), moment)
        return key, None, new_entry(app, key, moment, owner, summary, record)

    return change(kube, app, namespace, plan, check_mode, now)


def _require(entries, app, deployment_id, check_mode):
    entry = entries.get(deployment_id)
    if entry is None and not check_mode:
        raise CutoverError("deployment %s of app %s is not in the journal" % (deployment_id, app), deployment_id=deployment_id)
    return entry


def step(kube, app, namespace, deployment_id, name, status="finished", record=None, check_mode=False, now=None):
    """Record step ``name`` of a deployment as ``status`` (see :func:`journal.plan_step`)."""
    journal.validate_deployment_id(deployment_id)
    journal.validate_step(name, status)
    record = validate_record(record)

    def plan(entries, moment):
        entry = _require(entries, app, deployment_id, check_mode)
        if entry is None:  # started in check mode: nothing was written
            return deployment_id, None, None
        return deployment_id, entry, _updated(entry, journal.plan_step(entry, name, status, moment, record), moment)

    return change(kube, app, namespace, plan, check_mode, now)


def finish(kube, app, namespace, deployment_id, outcome, summary=None, record=None, check_mode=False, now=None):
    """Close a deployment with ``outcome``; closing again the same way changes nothing."""
    journal.validate_deployment_id(deployment_id)
    validate_outcome(outcome)
    record = validate_record(record)

    def plan(entries, moment):
        entry = _require(entries, app, deployment_id, check_mode)
        if entry is None:
            return deployment_id, None, None
        return deployment_id, entry, _updated(entry, plan_finish(entry, outcome, moment, summary, record), moment)

    return change(kube, app, namespace, plan, check_mode, now)


def recent(kube, app, namespace, limit=5):
    """The newest ``limit`` entries, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_RECENT:
        raise CutoverError("the number of deployments to read must be from 0 to %d, got %r" % (MAX_RECENT, limit))
    entries = entries_of(read_object(kube, app, namespace))
    return [entries[key] for key in sorted(entries, reverse=True)[:limit]]


def get(kube, app, namespace, deployment_id):
    journal.validate_deployment_id(deployment_id)
    return entries_of(read_object(kube, app, namespace)).get(deployment_id)


class Journal:
    """The journal of ``app`` in its ConfigMap, as ``locking`` uses a journal (the AWS one has the same methods)."""

    validate_record = staticmethod(validate_record)

    def __init__(self, kube, app, namespace):
        self.kube, self.app, self.namespace = kube, app, namespace

    def get(self, deployment_id):
        return get(self.kube, self.app, self.namespace, deployment_id)

    def start(self, **kwargs):
        return start(self.kube, self.app, self.namespace, **kwargs)

    def step(self, deployment_id, name, status="finished", **kwargs):
        return step(self.kube, self.app, self.namespace, deployment_id, name, status, **kwargs)

    def finish(self, deployment_id, outcome, **kwargs):
        return finish(self.kube, self.app, self.namespace, deployment_id, outcome, **kwargs)


# -- under the lock (locking's, over the Lease and this journal) ----------------------------------------
def open_under_lock(kube, app, namespace, owner, token, lease_seconds, **options):
    """Take the lock for the run ``token`` and open its entry, which the Lease names; returns ``(entry, lock, settled)``
    (:func:`locking.open_entry`, whose ``options`` these are: ``purpose``, ``takeover``, ``deployment_id``, ...)."""
    lock, entries = leases.LeaseObject(kube, app, namespace), Journal(kube, app, namespace)
    entry, locked, settled = locking.open_entry(lock, entries, owner, token, lease_seconds, **options)
    if settled is not None:
        settled.pop("entry", None)
    return entry, locked, settled


def close_under_lock(kube, app, namespace, token, write, check_mode=False, now=None):
    """``write()`` the run's last journal change, then release its lock; returns ``(entry result, lock result)``
    (:func:`locking.give_back`)."""
    return locking.give_back(leases.LeaseObject(kube, app, namespace), token, write, check_mode, now)
