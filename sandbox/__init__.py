"""The local sandbox: a real AWS API endpoint on loopback, so cutover runs with no AWS account.

``python -m sandbox start`` starts it (clean state every time) and prints its
endpoint; ``python -m sandbox provision`` creates a blue-green pair in it from the
Pulumi program in infra/aws; ``python -m sandbox stop`` stops it and leaves no
process behind.
"""

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # noqa: S105 - the sandbox accepts any key
DEFAULT_PORT = 5055
# The load balancer's metrics in the sandbox: AWS publishes 60-second periods about a minute after they end;
# the sandbox compresses both (as it does the health-check interval), keeping the semantics.
METRIC_PERIOD = 5
METRIC_LAG = 3.0
