"""Bad stack config fails with a message naming the key, and nothing is created in the sandbox."""

from __future__ import annotations

import pytest

from .conftest import Clients, cli


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cutover:health_check_interval=3", "cutover:health_check_interval = 3 is out of range: allowed 5 to 300 seconds"),
        ("cutover:colour=blue", "unknown configuration key(s): cutover:colour"),
        ("cutover:service=Shop_Front", "cutover:service = 'Shop_Front' is not a valid name"),
        ("cutover:min_size=5", "cutover:min_size = 5 is greater than cutover:max_size = 4"),
    ],
)
def test_bad_config_creates_nothing(sandbox, override, message):
    result = cli("--dir", sandbox.state_dir, "provision", "--config", override, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    aws = Clients(sandbox.endpoint)
    assert aws.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert aws.autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"] == []
    assert aws.dynamodb.list_tables()["TableNames"] == []
    assert [v for v in aws.ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
