# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deployment journal of a service, kept in the service's DynamoDB table.

One item per deployment, ``pk = service#<service>``, ``sk = deploy#<deployment id>``.
A deployment id starts with its UTC start time, ``20260101T120000Z-1a2b3c4d``, so
the journal sorts by time and :func:`recent` is one query, newest first.
Journal items never carry the table's time-to-live attribute (``expires_at``):
they are kept.

An item holds::

    deployment_id, service, owner, started_at, updated_at, finished_at (ISO 8601 UTC)
    outcome          in_progress | succeeded | failed | rolled_back | interrupted
    summary          a line for humans (why it failed, what went live)
    duration_seconds from start to finish
    steps            {name: {status, started, finished, seconds}}
    step_order       step names in the order they were first started
    record           free-form: colors {from, to}, versions {from, to}, image_id, ...

``record`` given to :func:`start`, :func:`step` or :func:`finish` is merged
shallowly: each top-level key replaces the stored one.

A run opens its entry under the service's lock (``locking.open_entry``); the
lease names the entry. When a run dies, the run that takes its lease over
settles that entry (:func:`plan_settle`): a re-run of the same release adopts
it and resumes (:func:`plan_resume` tells the role where), any other run
closes it as ``interrupted``, naming who interrupted it. A canary waiting for
promotion holds no lease, so no takeover ever closes it. These plans are the
journal's on every platform: the Kubernetes journal (``k8s_journal``) keeps the
same entries in a ConfigMap.

Each change is planned by a pure function (``plan_*``) from the stored item
and applied as one ``UpdateItem`` that sets exactly the attributes that change;
a plan that changes nothing writes nothing.
"""

from __future__ import annotations

import datetime
import re
import uuid

from ansible_collections.cutover.bluegreen.plugins.module_utils import lease_rules
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError, isoformat, parse_time, utcnow
from ansible_collections.cutover.bluegreen.plugins.module_utils.table import (
    Expression,
    from_item,
    get_item,
    partition_key,
    table_errors,
    to_attribute,
    to_item,
    write_conditionally,
)

IN_PROGRESS = "in_progress"
LOCK_ACQUIRE = "acquire"
LOCK_RELEASE = "release"
INTERRUPTED = "interrupted"
OUTCOMES = (IN_PROGRESS, "succeeded", "failed", "rolled_back", INTERRUPTED)
FINAL_OUTCOMES = OUTCOMES[1:]
STEP_STATUSES = ("started", "finished", "failed", "skipped")
SORT_PREFIX = "deploy#"
MAX_RECENT = 100
ID_PATTERN = re.compile(r"^(\d{8}T\d{6}Z)-([A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
STEP_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_ID_TIME = "%Y%m%dT%H%M%SZ"


# -- ids and keys ---------------------------------------------------------------------
def new_deployment_id(now, token=None):
    """``<UTC start time>-<8 hex digits>``, e.g. ``20260101T120000Z-1a2b3c4d``: unique and sorted by time."""
    return "%s-%s" % (now.astimezone(datetime.timezone.utc).strftime(_ID_TIME), token or uuid.uuid4().hex[:8])


def validate_deployment_id(deployment_id):
    if not isinstance(deployment_id, str) or not ID_PATTERN.match(deployment_id):
        raise CutoverError(
            "deployment_id %r is not a deployment id: expected <UTC start time>-<suffix>, like 20260101T120000Z-1a2b3c4d" % (deployment_id,)
        )
    return deployment_id


def sort_key(deployment_id):
    return SORT_PREFIX + deployment_id


def validate_step(name, status=None):
    if not isinstance(name, str) or not STEP_PATTERN.match(name):
        raise CutoverError("step %r is not a step name (letters, digits, _ . : -, at most 64 characters)" % (name,))
    if status is not None and status not in STEP_STATUSES:
        raise CutoverError("step status %r is not one of %s" % (status, ", ".join(STEP_STATUSES)))


def validate_outcome(outcome, final=True):
    allowed = FINAL_OUTCOMES if final else OUTCOMES
    if outcome not in allowed:
        raise CutoverError("outcome %r is not one of %s" % (outcome, ", ".join(allowed)))


def validate_record(record):
    if record is None:
        return {}
    if not isinstance(record, dict):
        raise CutoverError("record must be a dict, got %s" % type(record).__name__)
    to_attribute(record)  # values that cannot be stored fail here, before anything is written
    return record


# -- durations ------------------------------------------------------------------------
def seconds_between(start, end):
    """Whole seconds from ``start`` to ``end`` (ISO 8601 texts or datetimes); None when either is missing."""
    if start is None or end is None:
        return None
    start = parse_time(start) if isinstance(start, str) else start
    end = parse_time(end) if isinstance(end, str) else end
    return int(round((end - start).total_seconds()))


def durations(item, now=None):
    """``{deployment_seconds, elapsed_seconds, steps: {name: seconds}}`` of a deployment item.

    ``deployment_seconds`` is None until the deployment finished;
    ``elapsed_seconds`` counts up to ``now`` while it is in progress. Steps that
    have not finished have None.
    """
    steps = item.get("steps") or {}
    finished = item.get("finished_at")
    elapsed = seconds_between(item.get("started_at"), finished or (now or utcnow()))
    return {
        "deployment_seconds": seconds_between(item.get("started_at"), finished),
        "elapsed_seconds": elapsed,
        "steps": {name: seconds_between(entry.get("started"), entry.get("finished")) for name, entry in steps.items()},
    }


# -- plans (pure) ----------------------------------------------------------------------
def new_item(service, deployment_id, now, owner=None, summary=None, record=None):
    """The item :func:`start` writes."""
    stamp = isoformat(now)
    item = {
        "pk": partition_key(service),
        "sk": sort_key(deployment_id),
        "kind": "deployment",
        "service": service,
        "deployment_id": deployment_id,
        "started_at": stamp,
        "updated_at": stamp,
        "outcome": IN_PROGRESS,
        "steps": {},
        "step_order": [],
        "record": dict(record or {}),
    }
    if owner is not None:
        item["owner"] = owner
    if summary is not None:
        item["summary"] = summary
    return item


def _record_changes(item, record):
    stored = item.get("record") or {}
    return {("record", key): value for key, value in (record or {}).items() if stored.get(key) != value}


def plan_start_existing(item, owner=None, summary=None, record=None):
    """Changes to an already started deployment when it is started again: only what differs."""
    changes = _record_changes(item, record)
    if owner is not None and item.get("owner") != owner:
        changes[("owner",)] = owner
    if summary is not None and item.get("summary") != summary:
        changes[("summary",)] = summary
    return changes


def plan_step(item, name, status, now, record=None):
    """Changes recording step ``name`` as ``status`` (``{attribute path: value}``, empty when nothing changes).

    ``started``: (re)starts a step that is new or failed; a step already started
    or finished is left alone (re-entering a step does not reset its time).
    ``finished``, ``failed``, ``skipped``: sets the status, the finish time and
    the seconds since it started, unless it already has that status.
    """
    validate_step(name, status)
    stamp = isoformat(now)
    steps = item.get("steps") or {}
    entry = steps.get(name)
    changes = {}
    if status == "started":
        if entry is None or entry.get("status") == "failed":
            changes[("steps", name)] = {"status": "started", "started": stamp, "finished": None, "seconds": None}
    elif entry is None or entry.get("status") != status:
        started = (entry or {}).get("started") or stamp
        changes[("steps", name)] = {"status": status, "started": started, "finished": stamp, "seconds": seconds_between(started, stamp)}
    order = list(item.get("step_order") or [])
    if name not in order:
        changes[("step_order",)] = order + [name]
    changes.update(_record_changes(item, record))
    return changes


def plan_finish(item, outcome, now, summary=None, record=None):
    """Changes finishing a deployment with ``outcome``; empty when it already finished so (same summary, same record)."""
    validate_outcome(outcome)
    changes = _record_changes(item, record)
    if summary is not None and item.get("summary") != summary:
        changes[("summary",)] = summary
    if item.get("outcome") != outcome:
        stamp = isoformat(now)
        changes[("outcome",)] = outcome
        changes[("finished_at",)] = stamp
        changes[("duration_seconds",)] = seconds_between(item.get("started_at"), stamp)
    return changes


def apply_changes(item, changes):
    """The item after ``changes`` (what an update would store), without touching ``item``."""
    updated = dict(item)
    for path, value in changes.items():
        if len(path) == 1:
            updated[path[0]] = value
        else:
            parent = dict(updated.get(path[0]) or {})
            parent[path[1]] = value
            updated[path[0]] = parent
    return updated


def update_arguments(changes, now):
    """``UpdateExpression`` and placeholders setting each changed path, plus ``updated_at``; the item must exist."""
    expression = Expression()
    assignments = ["%s = %s" % (expression.name(*path), expression.value(value)) for path, value in sorted(changes.items())]
    assignments.append("%s = %s" % (expression.name("updated_at"), expression.value(isoformat(now))))
    condition = "attribute_exists(%s)" % expression.name("pk")
    return expression.arguments(UpdateExpression="SET " + ", ".join(assignments), ConditionExpression=condition)


# -- views ------------------------------------------------------------------------------
def view(item, now=None):
    """A deployment as reported to users: the item without its keys, with ``durations``."""
    if not item:
        return None
    shown = {key: value for key, value in item.items() if key not in ("pk", "sk", "kind")}
    shown["durations"] = durations(item, now)
    return shown


# -- table ----------------------------------------------------------------------------
def _key(service, deployment_id):
    return to_item({"pk": partition_key(service), "sk": sort_key(deployment_id)})


def get(dynamodb, table, service, deployment_id):
    """The stored deployment (plain item) or None."""
    validate_deployment_id(deployment_id)
    return get_item(dynamodb, table, service, sort_key(deployment_id))


def _require(dynamodb, table, service, deployment_id, check_mode=False):
    """The stored deployment; a missing one fails, except in check mode (it may have been started in check mode)."""
    item = get(dynamodb, table, service, deployment_id)
    if item is None and not check_mode:
        raise CutoverError(
            "deployment %s of service %s is not in the journal (table %s)" % (deployment_id, service, table),
            deployment_id=deployment_id,
        )
    return item


def _missing_in_check_mode(deployment_id):
    return dict(changed=True, deployment_id=deployment_id, before=None, after=None, missing=True)


def _update(dynamodb, table, service, item, changes, now, check_mode):
    after = apply_changes(item, changes)
    if changes:
        after["updated_at"] = isoformat(now)
        if not check_mode:
            with table_errors(table, service):
                dynamodb.update_item(
                    TableName=table, Key=_key(service, item["deployment_id"]), aws_retry=True, **update_arguments(changes, now)
                )
    return dict(changed=bool(changes), deployment_id=item["deployment_id"], before=item, after=after)


def start(dynamodb, table, service, owner=None, summary=None, record=None, deployment_id=None, check_mode=False, now=None):
    """Start a deployment; returns ``{changed, deployment_id, before, after}`` (plain items; ``before`` None when new).

    Without ``deployment_id`` a new one is made. With one, a deployment already
    in the journal is left as it is (only a differing owner, summary or record
    is updated), so a resumed run may start again with its id.
    """
    moment = now or utcnow()
    record = validate_record(record)
    if not service:
        raise CutoverError("a service name is required")
    if deployment_id is not None:
        validate_deployment_id(deployment_id)
        existing = get(dynamodb, table, service, deployment_id)
        if existing is not None:
            return _update(dynamodb, table, service, existing, plan_start_existing(existing, owner, summary, record), moment, check_mode)
    else:
        deployment_id = new_deployment_id(moment)
    item = new_item(service, deployment_id, moment, owner, summary, record)
    if not check_mode:
        expression = Expression()
        condition = expression.arguments(ConditionExpression="attribute_not_exists(%s)" % expression.name("pk"))
        write_conditionally(
            dynamodb,
            table,
            service,
            sort_key(deployment_id),
            lambda: dynamodb.put_item(TableName=table, Item=to_item(item), aws_retry=True, **condition),
            lambda stored: stored == item,
        )
    return dict(changed=True, deployment_id=deployment_id, before=None, after=item)


def step(dynamodb, table, service, deployment_id, name, status="finished", record=None, check_mode=False, now=None):
    """Record a step of a deployment (see :func:`plan_step`); returns ``{changed, deployment_id, before, after}``.

    A deployment missing from the journal fails; in check mode it is reported as
    a change with ``missing=True`` instead, since a check run's start wrote nothing.
    """
    moment = now or utcnow()
    validate_deployment_id(deployment_id)
    validate_step(name, status)
    record = validate_record(record)
    item = _require(dynamodb, table, service, deployment_id, check_mode)
    if item is None:
        return _missing_in_check_mode(deployment_id)
    return _update(dynamodb, table, service, item, plan_step(item, name, status, moment, record), moment, check_mode)


def finish(dynamodb, table, service, deployment_id, outcome, summary=None, record=None, check_mode=False, now=None):
    """Finish a deployment with ``outcome``; finishing again with the same outcome (and summary and record) changes nothing."""
    moment = now or utcnow()
    validate_deployment_id(deployment_id)
    validate_outcome(outcome)
    record = validate_record(record)
    item = _require(dynamodb, table, service, deployment_id, check_mode)
    if item is None:
        return _missing_in_check_mode(deployment_id)
    return _update(dynamodb, table, service, item, plan_finish(item, outcome, moment, summary, record), moment, check_mode)


def recent(dynamodb, table, service, limit=5):
    """The newest ``limit`` deployments of ``service`` (plain items), newest first: one query."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0 or limit > MAX_RECENT:
        raise CutoverError("the number of deployments to read must be between 0 and %d, got %r" % (MAX_RECENT, limit))
    if limit == 0:
        return []
    expression = Expression()
    condition = "%s = %s AND begins_with(%s, %s)" % (
        expression.name("pk"),
        expression.value(partition_key(service)),
        expression.name("sk"),
        expression.value(SORT_PREFIX),
    )
    with table_errors(table, service):
        response = dynamodb.query(
            TableName=table,
            ScanIndexForward=False,
            Limit=limit,
            ConsistentRead=True,
            aws_retry=True,
            **expression.arguments(KeyConditionExpression=condition),
        )
    return [from_item(item) for item in response.get("Items") or []]


class Journal:
    """The journal of ``service`` in its table, as ``locking`` uses a journal (the Kubernetes one has the same methods)."""

    validate_record = staticmethod(validate_record)

    def __init__(self, dynamodb, table, service):
        self.dynamodb, self.table, self.service = dynamodb, table, service

    def get(self, deployment_id):
        return get(self.dynamodb, self.table, self.service, deployment_id)

    def start(self, **kwargs):
        return start(self.dynamodb, self.table, self.service, **kwargs)

    def step(self, deployment_id, name, status="finished", **kwargs):
        return step(self.dynamodb, self.table, self.service, deployment_id, name, status, **kwargs)

    def finish(self, deployment_id, outcome, **kwargs):
        return finish(self.dynamodb, self.table, self.service, deployment_id, outcome, **kwargs)


def open_under_lock(dynamodb, table, service, owner, token, lease_seconds, **options):
    """Take the lock of ``service`` for the run ``token`` and open its entry, which the lease names; returns ``(entry,
    lock, settled)``: ``locking.open_entry`` over this table's lease and journal (``options``: ``purpose``,
    ``takeover``, ``deployment_id``, ``summary``, ``record``, ``check_mode``, ``now``)."""
    from ansible_collections.cutover.bluegreen.plugins.module_utils import lease, locking  # locking builds on this module

    return locking.open_entry(
        lease.Table(dynamodb, table, service), Journal(dynamodb, table, service), owner, token, lease_seconds, **options
    )


def close_under_lock(dynamodb, table, service, token, write, check_mode=False, now=None):
    """``write()`` the run's last journal change, then release its lock: ``locking.give_back`` over this table's lease."""
    from ansible_collections.cutover.bluegreen.plugins.module_utils import lease, locking  # locking builds on this module

    return locking.give_back(lease.Table(dynamodb, table, service), token, write, check_mode, now)


# -- under the lock -------------------------------------------------------------------------
# What taking over a dead run's lease does to the journal entry that lease names.
ADOPT = "adopt"
INTERRUPT = "interrupt"
LEAVE = "leave"


# The options of the journal modules (journal, k8s_journal), each documented in its module.
TASK_ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["started", "step", "finished"], required=True),
    deployment_id=dict(type="str"),
    owner=dict(type="str"),
    token=dict(type="str", no_log=False),
    takeover=dict(type="str"),
    step=dict(type="str"),
    status=dict(type="str", choices=list(STEP_STATUSES), default="finished"),
    outcome=dict(type="str", choices=list(FINAL_OUTCOMES)),
    summary=dict(type="str"),
    record=dict(type="dict"),
    lock=dict(type="str", choices=[LOCK_ACQUIRE, LOCK_RELEASE]),
    lease_seconds=dict(type="int", default=60),
    purpose=dict(type="str"),
)
TASK_REQUIRED_IF = [("state", "step", ["deployment_id", "step"]), ("state", "finished", ["deployment_id", "outcome"])]


def validate_lock(lock, state, owner, token, lease_seconds=None, takeover=None):
    """``lock=acquire`` goes with ``state=started`` and needs an owner, ``lock=release`` with a step or a finish; both a token."""
    if lock is None:
        return
    if lock == LOCK_ACQUIRE and state != "started":
        raise CutoverError("lock=acquire opens a deployment under the lock: it needs state=started, not %s" % state)
    if lock == LOCK_RELEASE and state not in ("step", "finished"):
        raise CutoverError("lock=release gives the lock back after a step or a finish: it needs state=step or finished, not %s" % state)
    if lock not in (LOCK_ACQUIRE, LOCK_RELEASE):
        raise CutoverError("lock must be acquire or release, got %r" % (lock,))
    if token is None:
        raise CutoverError("lock=%s needs the token of the run that holds (or takes) the lock" % lock)
    acquire = lock == LOCK_ACQUIRE
    lease_rules.validate(owner, token, lease_seconds if acquire else None, takeover, owner_required=acquire)


def validate_task(params, validate_record=validate_record):
    """The options of a journal module (``state``, ``deployment_id``, ``step``, ``status``, ``outcome``, ``record``, ``lock``,
    ``owner``, ``token``, ``lease_seconds``, ``takeover``), checked before the journal is read."""
    if params["deployment_id"] is not None:
        validate_deployment_id(params["deployment_id"])
    if params["state"] == "step":
        validate_step(params["step"], params["status"])
    if params["state"] == "finished":
        validate_outcome(params["outcome"])
    validate_record(params["record"])
    validate_lock(params["lock"], params["state"], params["owner"], params["token"], params["lease_seconds"], params["takeover"])


def is_waiting_canary(item):
    """A canary run's entry left open for its promotion (its canary step finished; the lock was released)."""
    record = item.get("record") or {}
    step = (item.get("steps") or {}).get("canary") or {}
    return item.get("outcome") == IN_PROGRESS and record.get("phase") == "canary" and step.get("status") == "finished"


def plan_settle(previous, entry, deployment_id):
    """``(ADOPT | INTERRUPT | LEAVE, why)``: what taking over the lease ``previous`` does to the entry it names.

    ``entry`` is that entry (None when missing), ``deployment_id`` the entry
    the new run opens: the same id is a re-run of the same release, which
    adopts it; any other run interrupts it. A closed entry, and a canary that
    waits for its promotion, are left as they are.
    """
    named = (previous or {}).get("deployment_id")
    if not named:
        return LEAVE, "the lease named no journal entry"
    if entry is None:
        return LEAVE, "deployment %s is not in the journal" % named
    if entry.get("outcome") != IN_PROGRESS:
        return LEAVE, "deployment %s is already closed (%s)" % (named, entry.get("outcome"))
    if named == deployment_id:
        return ADOPT, "deployment %s is resumed by a re-run of the same release" % named
    if is_waiting_canary(entry):
        return LEAVE, "deployment %s is a canary waiting for promotion" % named
    return INTERRUPT, "deployment %s was left unfinished by its run" % named


def _taken_how(previous, reason):
    if reason == "named":
        return "took the lock from it by name"
    return "took the lock over after its lease expired at %s" % previous.get("expires_at")


def interrupted_summary(previous, owner, purpose=None, deployment_id=None, reason="expired"):
    """The summary of an entry closed as interrupted: whose run stopped, who took over, for what."""
    text = "interrupted: its run %s stopped; %s %s" % (previous.get("owner"), owner, _taken_how(previous, reason))
    if purpose:
        text += " for %s" % purpose
    if deployment_id:
        text += " (deployment %s)" % deployment_id
    return text


# -- resuming ---------------------------------------------------------------------------------
def _same(left, right):
    return (left or None) == (right or None)


def same_release(record, release):
    """Whether a deploy entry's ``record`` is the release described by ``release``.

    ``release`` has ``phase``, ``image_id``, ``instance_type`` and
    ``user_data_sha256`` (the SHA-256 of the user data, or None when not given)
    on AWS, ``phase`` and ``image`` (the container image) on Kubernetes.
    """
    wanted = (record or {}).get("to_version") or {}
    return (
        (record or {}).get("kind") == "deploy"
        and record.get("phase") == release.get("phase")
        and _same(wanted.get("image"), release.get("image"))
        and _same(wanted.get("image_id"), release.get("image_id"))
        and _same(wanted.get("instance_type"), release.get("instance_type"))
        and _same(wanted.get("user_data_sha256"), release.get("user_data_sha256"))
    )


def plan_resume(lock, entry, release, takeover=None, live_color=None, split=False):
    """The unfinished entry a re-run of the same release resumes, or None (a new release then).

    ``lock`` is the lease (:func:`lease.view`), ``entry`` the journal entry it
    names. The re-run resumes when that lease may be taken (it expired, or
    ``takeover`` names its holder), the entry is still in progress, it is the
    same release (:func:`same_release`), and production is where that release
    left it: still on its old colour (before the switch; split if it had a
    canary share) or all on its new colour (the switch was done). The colours
    come from the entry, not from the pair, which the switch may have turned.
    """
    if not lock or not entry or not lock.get("deployment_id") or lock["deployment_id"] != entry.get("deployment_id"):
        return None
    if not (lock.get("expired") or lease_rules.names_holder(lock, takeover)):
        return None
    record = entry.get("record") or {}
    if entry.get("outcome") != IN_PROGRESS or is_waiting_canary(entry) or not same_release(record, release):
        return None
    old, new = record.get("from_color"), record.get("to_color")
    if split:
        if not record.get("canary_weight"):
            return None
        switched = False
    elif live_color == new:
        switched = True
    elif live_color == old:
        switched = False
    else:
        return None
    return {
        "deployment_id": entry["deployment_id"],
        "from_color": old,
        "to_color": new,
        "from_version": record.get("from_version") or {},
        "switched": switched,
        "switched_at": record.get("switch_started_at") if switched else None,
        "holder": lock.get("owner"),
        "steps_left": "verify, bake, standby, close" if switched else "every step from the rollout on (each done step changes nothing)",
    }
