# -*- coding: utf-8 -*-
# Copyright: cutover contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every Kubernetes module of cutover.bluegreen shares: options, the client, error handling.

Connection and authentication are kubernetes.core's: its ``AUTH_ARG_SPEC`` (with
the doc fragment ``kubernetes.core.k8s_auth_options``), ``AnsibleK8SModule`` and
``get_api_client``.
"""

from __future__ import annotations

from ansible_collections.cutover.bluegreen.plugins.module_utils import waits
from ansible_collections.cutover.bluegreen.plugins.module_utils.common import CutoverError
from ansible_collections.cutover.bluegreen.plugins.module_utils.fence import CONTROLLER_SPEC
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_api import Kube
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_lease import Fence
from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_pair import discover, validate_app, validate_service_name
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule

# Matches doc fragment cutover.bluegreen.k8s_app.
APP_ARGUMENT_SPEC = dict(
    app=dict(type="str", required=True, aliases=["service"]),
    namespace=dict(type="str", default="default"),
    live_service=dict(type="str"),
    preview_service=dict(type="str"),
    container=dict(type="str"),
)


# Matches doc fragment cutover.bluegreen.k8s_app (fencing): the lock this run holds.
LEASE_ARGUMENT_SPEC = dict(
    lease=dict(
        type="dict",
        options=dict(
            token=dict(type="str", required=True, no_log=False),
            lease_seconds=dict(type="int"),
            controller=CONTROLLER_SPEC,
        ),
    ),
)

# Matches doc fragments cutover.bluegreen.lease.IDENTITY and cutover.bluegreen.k8s_app.LEASE_SECONDS: a module that
# takes the lock itself.
IDENTITY_ARGUMENT_SPEC = dict(
    owner=dict(type="str", required=True),
    token=dict(type="str", required=True, no_log=False),
    takeover=dict(type="str"),
    lease_seconds=dict(type="int", default=60),
)


# The most seconds the Kubernetes modules wait for (a day; a read-back or a drain an hour).
SECONDS_LIMITS = {"wait_timeout": 86400, "unhealthy_timeout": 86400, "verify_timeout": 3600, "drain_timeout": 3600}


def app_module(argument_spec=None, **kwargs):
    """An AnsibleK8SModule with kubernetes.core's connection options, the app options and the module's own.

    The wait options are checked once, before anything is read (:func:`waits.validate`).
    """
    spec = dict(AUTH_ARG_SPEC)
    spec.update(APP_ARGUMENT_SPEC)
    spec.update(argument_spec or {})
    module = AnsibleK8SModule(argument_spec=spec, **kwargs)
    try:
        waits.validate(module.params, SECONDS_LIMITS)
    except CutoverError as exc:
        module.fail_json(msg=exc.message)
    return module


def validate_app_options(module):
    """The app options, checked before anything is read (names the option)."""
    params = module.params
    validate_app(params["app"], params["namespace"])
    validate_service_name("live_service", params.get("live_service"))
    validate_service_name("preview_service", params.get("preview_service"))


def kube(module):
    """The collection's API client, configured by kubernetes.core from the module's connection options."""
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client

    return Kube(get_api_client(module=module).client.client)


def discover_pair(module, client, with_pods=True):
    params = module.params
    return discover(
        client,
        params["app"],
        params["namespace"],
        live_service=params.get("live_service"),
        preview_service=params.get("preview_service"),
        container=params.get("container"),
        with_pods=with_pods,
    )


def fence_of(module, client):
    """The fence the ``lease`` option describes, or None (no option, or check mode: nothing changes)."""
    lease = module.params.get("lease")
    if not lease or module.check_mode:
        return None
    params = module.params
    return Fence(client, params["app"], params["namespace"], lease["token"], lease.get("lease_seconds"), controller=lease.get("controller"))


def validate_lease_option(module):
    from ansible_collections.cutover.bluegreen.plugins.module_utils.k8s_lease import validate

    lease = module.params.get("lease")
    if lease:
        validate(token=lease["token"], lease_seconds=lease.get("lease_seconds"))


def check_time(option, value, parse):
    """``parse(value)`` (a TTL, a moment), failing with the option named; None (not given) passes."""
    if value is None:
        return None
    try:
        return parse(value)
    except CutoverError as exc:
        raise CutoverError("%s: %s" % (option, exc.message)) from None


def step_module(argument_spec=None, **kwargs):
    """The module of a step that changes the pair: :func:`app_module` with the ``lease`` (fencing) option."""
    spec = dict(argument_spec or {})
    spec.update(LEASE_ARGUMENT_SPEC)
    return app_module(spec, **kwargs)


class Step:
    """What a step module works with once its options are checked: the client, the pair, the run's fence and waiter
    (``context``: ``check_mode``, ``fence`` and ``waiter``, as the library's steps take them)."""

    def __init__(self, module, client, pair):
        self.client, self.pair = client, pair
        self.check_mode = module.check_mode
        self.fence = fence_of(module, client)
        self.waiter = waits.waiter_of(module.params, progress_of(module))
        self.context = dict(check_mode=self.check_mode, fence=self.fence, waiter=self.waiter)


def run_step(module, step, check=None, with_pods=False):
    """Run a :func:`step_module`: the app and lease options checked, then the module's own (``check()``), before
    anything is read; then the pair read and ``step(Step)`` run; exits with its result, or fails naming the problem."""

    def operation():
        validate_app_options(module)
        validate_lease_option(module)
        if check:
            check()
        client = kube(module)
        return step(Step(module, client, discover_pair(module, client, with_pods=with_pods)))

    run(module, operation)


def progress_of(module):
    """Where a long wait reports progress: the module's log (AnsibleK8SModule wraps the AnsibleModule) and, for a
    module with a ``progress_file`` option, that file."""
    inner = getattr(module, "_module", module)
    return waits.progress_writer(inner.log, module.params.get("progress_file"))


def run(module, operation):
    """Run ``operation()`` and exit with its result; a CutoverError fails naming the problem and its details."""
    try:
        result = operation()
    except CutoverError as exc:
        module.fail_json(msg=exc.message, **exc.details)
    except Exception as exc:  # the client's configuration errors (no kubeconfig...) and the like
        from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

        if isinstance(exc, CoreException) or type(exc).__name__ in ("ConfigException", "MaxRetryError", "NewConnectionError"):
            module.fail_json(msg="could not reach the Kubernetes API: %s" % exc)
        raise
    module.exit_json(**result)
