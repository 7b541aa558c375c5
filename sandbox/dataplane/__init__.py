"""The sandbox's data plane: real HTTP traffic with the load-balancer semantics that matter.

moto answers the AWS API; this package makes what that API describes carry
requests, inside the sandbox daemon's process (and process group):

- every running instance of an Auto Scaling group (or registered in a target
  group) is a local HTTP server process (:mod:`.app`) serving the release it was
  launched with: ``version=``/``fail_health=``/``error_rate=``/``delay_ms=`` lines of
  its user data, or its image id;
- one HAProxy process (:mod:`.haproxy`, master-worker, never daemonized) has a
  loopback frontend per ALB listener that routes like the listener (default
  action, rules by priority, weighted forwards) and a backend per target group
  with the group's real health check;
- a reconcile loop (:mod:`.controller`) keeps HAProxy, the processes and moto in
  step within about a second of an API call, drives routing and targets through
  HAProxy's runtime API (no reload for a switch, a registration or a drain), and
  reports HAProxy's health checks as target health: ``initial``, ``healthy``,
  ``unhealthy`` with the reason, ``draining`` for the deregistration delay
  (:mod:`.patches`);
- request metrics (:mod:`.metrics`) go to the sandbox's CloudWatch under
  ``AWS/ApplicationELB`` as ALB publishes them: per clock-aligned period, after a
  publication lag, no datapoint where nothing happened; metric alarms are
  evaluated like CloudWatch does (:mod:`.cloudwatch`).

Nothing here is imported by the instance processes but :mod:`.app`, which uses the
standard library only.
"""

import os

ENABLE_VARIABLE = "CUTOVER_SANDBOX_DATAPLANE"
STATE_FILE = "dataplane.json"


def enabled() -> bool:
    """Whether the daemon runs the data plane (``CUTOVER_SANDBOX_DATAPLANE=0``: the AWS API only)."""
    return os.environ.get(ENABLE_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")
