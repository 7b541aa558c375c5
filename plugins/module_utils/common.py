# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Names, errors and small helpers shared by the cutover.bluegreen library."""

from __future__ import annotations

import datetime

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError

COLORS = ("blue", "green")

TAG_SERVICE = "cutover:service"
TAG_COLOR = "cutover:color"
TAG_LISTENER = "cutover:listener"
TAG_STATE = "cutover:state"
TAG_RETIRE_AFTER = "cutover:retire-after"


class CutoverError(AnsibleAWSError):
    """A blue-green operation cannot go on; the message names the problem.

    ``details`` carries structured context (unhealthy targets, the lock holder,
    ...) that modules return next to the message: amazon.aws's ``kwargs`` of an
    ``AnsibleAWSError``, which ``modules.run`` passes on to ``fail_json``.
    """

    def __init__(self, message, **details):
        super().__init__(message=message, **details)

    @property
    def details(self):
        return self.kwargs


def other_color(color):
    if color not in COLORS:
        raise CutoverError("colour %r is not one of %s" % (color, ", ".join(COLORS)))
    return COLORS[1 - COLORS.index(color)]


# What a colour option may name: a colour, or the colour that is live or idle when the step runs.
COLOR_NAMES = COLORS + ("idle", "live")


def resolve_color(color, live, option="color", allowed=COLOR_NAMES, service=None, split=None):
    """The colour ``color`` names now, on any platform: the one colour resolver of the collection.

    ``blue`` and ``green`` are themselves; ``live`` is the colour production
    goes to (``live``: that colour, or a function that reads it, called only
    when needed), ``idle`` the other one. While production is split between
    both colours (``split``: the weights in words) ``idle`` would name either:
    it is refused, naming ``option``. A name outside ``allowed`` is refused too.
    """
    if color not in allowed:
        raise CutoverError("%s must be one of %s, got %r" % (option, ", ".join(allowed), color))
    if color in COLORS:
        return color
    live = live() if callable(live) else live
    if color == "live":
        return live
    if split:
        raise CutoverError(
            "%s=idle is ambiguous while production traffic%s is split between both colours (a canary phase): %s. To act on "
            "one colour, name it: name the non-live colour (%s) for the one with less of the traffic, or the live colour (%s)"
            % (option, " of %r" % service if service else "", split, other_color(live), live),
            live_color=live,
        )
    return other_color(live)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def isoformat(moment):
    """UTC timestamp as ``2026-01-01T12:00:00Z`` (seconds precision)."""
    return moment.astimezone(datetime.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    """Parse what :func:`isoformat` writes (and ISO 8601 with an offset)."""
    if text is None:
        return None
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise CutoverError("%r is not an ISO 8601 timestamp" % text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment
