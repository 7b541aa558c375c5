# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Publish the live colour in an SSM parameter, for whoever wants to read it.

The parameter is a published copy, not the truth: the live colour is what the
production listener forwards to. It is written only when it differs.
"""

from __future__ import annotations

from ansible_collections.cutover.bluegreen.plugins.module_utils.aws import call_errors, error_code
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import COLORS, CutoverError

DEFAULT_NAME = "/cutover/%s/active-color"


def default_parameter_name(service):
    return DEFAULT_NAME % service


def read_parameter(ssm, name):
    """The parameter's value, or None if it does not exist."""
    try:
        return ssm.get_parameter(Name=name, aws_retry=True)["Parameter"]["Value"]
    except call_errors() as exc:
        if error_code(exc) == "ParameterNotFound":
            return None
        raise


def publish_active_color(ssm, name, color, check_mode=False, description=None):
    """Make parameter ``name`` say ``color``: ``(changed, value before or None)``.

    A missing parameter is created (Type String); an existing one is
    overwritten only when its value differs. Check mode reads but never writes.
    """
    if not name:
        raise CutoverError("the parameter name must not be empty")
    if color not in COLORS:
        raise CutoverError("the active colour must be one of %s, got %r" % (", ".join(COLORS), color))
    before = read_parameter(ssm, name)
    if before == color:
        return False, before
    if not check_mode:
        arguments = dict(Name=name, Value=color, Type="String", Overwrite=True)
        if before is None and description:
            arguments["Description"] = description
        ssm.put_parameter(aws_retry=True, **arguments)
    return True, before
