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
values (``{"S": ...}``), converted here from and to plain Python without boto3's
``Decimal`` numbers.
"""

from __future__ import annotations

import contextlib
import math

from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError

try:
    import botocore
except ImportError:
    pass  # the modules report a missing botocore

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


def to_attribute(value):
    """Plain Python -> DynamoDB attribute value (str, int, float, bool, None, dict, list)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise CutoverError("%r cannot be stored in the deployment table" % value)
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {str(key): to_attribute(item) for key, item in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attribute(item) for item in value]}
    raise CutoverError("a value of type %s cannot be stored in the deployment table: %r" % (type(value).__name__, value))


def _number(text):
    """An integer when DynamoDB's number is written without a fraction or exponent, else a float."""
    if any(mark in text for mark in ".eE"):
        return float(text)
    return int(text)


def from_attribute(attribute):
    """DynamoDB attribute value -> plain Python (numbers come back as int when whole, else float)."""
    if len(attribute) != 1:
        raise CutoverError("malformed DynamoDB attribute value %r" % (attribute,))
    kind, value = next(iter(attribute.items()))
    if kind == "S":
        return value
    if kind == "N":
        return _number(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "M":
        return {key: from_attribute(item) for key, item in value.items()}
    if kind == "L":
        return [from_attribute(item) for item in value]
    if kind in ("SS", "BS"):
        return sorted(value)
    if kind == "NS":
        return sorted(_number(item) for item in value)
    if kind == "B":
        return value
    raise CutoverError("unknown DynamoDB attribute type %r" % kind)


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


def error_code(exc):
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")


def is_condition_failure(exc):
    return isinstance(exc, botocore.exceptions.ClientError) and error_code(exc) == "ConditionalCheckFailedException"


class MissingTable(CutoverError):
    """The deployment table does not exist (the stack is not provisioned, or the name is wrong)."""


def missing_table_error(table, service=None):
    return MissingTable(
        "the table %s does not exist; is the stack of service %s provisioned (or is table_name wrong)?" % (table, service or "?"),
        table_name=table,
    )


@contextlib.contextmanager
def table_errors(table, service=None):
    """Turn "the table does not exist" from any call in the block into :class:`MissingTable`."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise missing_table_error(table, service) from exc
        raise


def get_item(dynamodb, table, service, sort_key):
    """The item ``(service#<service>, sort_key)`` as plain Python, or None (a strongly consistent read)."""
    key = to_item({"pk": partition_key(service), "sk": sort_key})
    with table_errors(table, service):
        response = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True, aws_retry=True)
    return from_item(response["Item"]) if response.get("Item") else None
