# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deployment table of a service: its name, its keys, and items as plain Python.

The stack creates one DynamoDB table per service (``cutover-<service>`` unless
named otherwise) with a string hash key ``pk``, a string range key ``sk`` and
time-to-live on ``expires_at`` (epoch seconds). Every item of a service has
``pk = service#<service>``; the ``sk`` says what it is (``lock``, or
``deploy#<deployment id>`` for the journal). Only the lock carries
``expires_at``: journal items are kept.

The clients are low-level boto3 DynamoDB clients; items travel as attribute
values (``{"S": ...}``), converted from and to plain Python by boto3's own
``TypeSerializer``/``TypeDeserializer``, with numbers as ``int`` or ``float``
instead of ``Decimal`` (JSON and Ansible take those).
"""

from __future__ import annotations

import contextlib
import decimal
import math

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import error_code
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError

try:
    import botocore
    from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
except ImportError:
    pass  # the modules report a missing boto3 or botocore

TTL_ATTRIBUTE = "expires_at"

# Shared by the lock and journal modules (and pair_info); matches doc fragment cutover.bluegreen.table.
TABLE_ARGUMENT_SPEC = dict(
    service=dict(type="str", required=True),
    table_name=dict(type="str"),
)


def table_name(service, name=None):
    """The table of ``service``: ``name`` when given, else ``cutover-<service>`` (as the stack names it)."""
    if not service:
        raise CutoverError("a service name is required")
    return name or "cutover-%s" % service


def partition_key(service):
    return "service#%s" % service


def _storable(value):
    """``value`` as boto3's TypeSerializer takes it: floats as ``Decimal`` (it refuses floats), tuples as lists.

    What an item of ours never holds (sets, bytes, NaN, infinity, other types) is refused here.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise CutoverError("%r cannot be stored in the deployment table" % value)
        return decimal.Decimal(repr(value))
    if isinstance(value, dict):
        return {str(key): _storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(item) for item in value]
    raise CutoverError("a value of type %s cannot be stored in the deployment table: %r" % (type(value).__name__, value))


def to_attribute(value):
    """Plain Python -> DynamoDB attribute value (str, int, float, bool, None, dict, list)."""
    try:
        return TypeSerializer().serialize(_storable(value))
    except (TypeError, decimal.DecimalException) as exc:  # e.g. a number beyond DynamoDB's 38 digits
        raise CutoverError("%r cannot be stored in the deployment table: %s" % (value, exc)) from exc


def _plain(value):
    """What TypeDeserializer returns, as plain Python: a ``Decimal`` written without fraction or exponent is an
    ``int``, any other a ``float``; sets are sorted lists; binary is ``bytes``."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value.as_tuple().exponent == 0 else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(item) for item in value)
    if isinstance(value, Binary):
        return value.value
    return value


def from_attribute(attribute):
    """DynamoDB attribute value -> plain Python (numbers come back as int when whole, else float)."""
    if not isinstance(attribute, dict) or len(attribute) != 1:
        raise CutoverError("malformed DynamoDB attribute value %r" % (attribute,))
    try:
        return _plain(TypeDeserializer().deserialize(attribute))
    except TypeError as exc:
        raise CutoverError("unknown DynamoDB attribute type %r" % next(iter(attribute))) from exc


def to_item(values):
    return {key: to_attribute(value) for key, value in values.items()}


def from_item(item):
    return {key: from_attribute(value) for key, value in (item or {}).items()}


class Expression:
    """Collects placeholder names (``#n0``) and values (``:v0``) for a DynamoDB expression.

    Every attribute name goes through a placeholder, so reserved words
    (``owner``, ``status``, ``message``...) need no special care.
    """

    def __init__(self):
        self.names = {}
        self.values = {}

    def name(self, *path):
        """``#n0.#n1`` for the attribute path ``path`` (map keys)."""
        parts = []
        for part in path:
            for placeholder, existing in self.names.items():
                if existing == part:
                    parts.append(placeholder)
                    break
            else:
                placeholder = "#n%d" % len(self.names)
                self.names[placeholder] = part
                parts.append(placeholder)
        return ".".join(parts)

    def value(self, value):
        placeholder = ":v%d" % len(self.values)
        self.values[placeholder] = to_attribute(value)
        return placeholder

    def arguments(self, **expressions):
        """Keyword arguments for a boto3 call: the expressions given plus the placeholders used."""
        arguments = {key: text for key, text in expressions.items() if text}
        if self.names:
            arguments["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            arguments["ExpressionAttributeValues"] = dict(self.values)
        return arguments


def is_condition_failure(exc):
    return error_code(exc) == "ConditionalCheckFailedException"


class MissingTable(CutoverError):
    """The deployment table does not exist (the stack is not provisioned, or the name is wrong)."""


class ConditionFailed(CutoverError):
    """A conditional write found the item changed since it was read; ``current`` is the item as read then."""

    current = None


def missing_table_error(table, service=None):
    return MissingTable(
        "the table %s does not exist; is the stack of service %s provisioned (or is table_name wrong)?" % (table, service or "?"),
        table_name=table,
    )


def failed_calls():
    """The exceptions a failed AWS call raises: botocore's own (a bare client), or amazon.aws's (a module's client)."""
    return (botocore.exceptions.ClientError, AnsibleAWSError)


@contextlib.contextmanager
def table_errors(table, service=None):
    """Turn "the table does not exist" from any call in the block into :class:`MissingTable`."""
    try:
        yield
    except failed_calls() as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise missing_table_error(table, service) from exc
        raise


def get_item(dynamodb, table, service, sort_key):
    """The item ``(service#<service>, sort_key)`` as plain Python, or None (a strongly consistent read)."""
    key = to_item({"pk": partition_key(service), "sk": sort_key})
    with table_errors(table, service):
        response = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True, aws_retry=True)
    return from_item(response["Item"]) if response.get("Item") else None


def write_conditionally(dynamodb, table, service, sort_key, write, written):
    """Make the conditional ``write()`` of item ``(service#<service>, sort_key)`` take effect once.

    The client retries a write that failed with a server error, and the first
    attempt may have been applied with only its response lost: the retry then
    fails its condition against our own write. So when the condition fails, the
    item is read again, and if ``written(item)`` (the item as read, None when
    there is none) says it is what the write makes, the write took effect: no
    error, and nothing written twice. Otherwise :class:`ConditionFailed`.
    """
    try:
        with table_errors(table, service):
            write()
    except failed_calls() as exc:
        if not is_condition_failure(exc):
            raise
        current = get_item(dynamodb, table, service, sort_key)
        if written(current):
            return
        failed = ConditionFailed(
            "the %s item of service %s in table %s changed while it was being written" % (sort_key, service, table), table_name=table
        )
        failed.current = current
        raise failed from exc
