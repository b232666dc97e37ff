"""The ha topology (RDS PostgreSQL Multi-AZ, an Auto Scaling group behind an HTTPS load balancer)
applied, planned again and destroyed by the real hashicorp/aws provider against moto."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from _terraform import MOTO_REGION, STATE_BUCKET, aws_terraform, moto_endpoint, unavailable

from eventstate.deploy.terraform import Terraform

__all__ = ["moto_endpoint"]  # a fixture, used by name

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

STACK = "es-ha"
DOMAIN = "ha.eventstate.example.com"
RUNNER_CIDR = "203.0.113.7/32"
API_KEY = "moto-ha-key-0123456789abcdef"
STATE_KEY = f"{STACK}/default/terraform.tfstate"
BASE: dict[str, Any] = {
    "name": STACK,
    "region": MOTO_REGION,
    "topology": "ha",
    "domain": DOMAIN,
    "allowed_cidrs": [RUNNER_CIDR],
    "api_keys": [API_KEY],
    "image_tag": "0.1.0-0123456789ab",
    # A test stack must be destroyable: deletion protection is a variable (on by default).
    "deletion_protection": False,
    "destroy_data_volume": True,
}
TIMINGS: dict[str, float] = {}
# Where moto answers differently from AWS, so that a second plan would show changes that are not
# there: it reports no parameters of a custom DB parameter group, echoes a launch template's own
# tags back as its instances' tag specifications, and returns security group rules' referenced
# groups as "<account>/sg-..." without their descriptions. Only these attributes are ignored, only
# against moto; the parameters themselves are checked by infra/aws/tests/ha.tftest.hcl.
MOTO_DIFFERENCES = """
resource "aws_db_parameter_group" "ha" {
  lifecycle {
    ignore_changes = [parameter]
  }
}

resource "aws_launch_template" "ha" {
  lifecycle {
    ignore_changes = [tag_specifications]
  }
}
""" + "".join(
    f"""
resource "aws_vpc_security_group_{kind}_rule" "{name}" {{
  lifecycle {{
    ignore_changes = [referenced_security_group_id, description]
  }}
}}
"""
    for kind, name in (
        ("egress", "alb_to_app"),
        ("egress", "app_to_db"),
        ("ingress", "app_from_alb"),
        ("ingress", "db_from_app"),
    )
)


def client(endpoint: str, service: str) -> Any:
    """A boto3 client for SERVICE talking to moto."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=MOTO_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def zone_id(moto_endpoint: str) -> str:
    """A Route 53 zone for the domain: the certificate is DNS-validated and the alias made in it."""
    route53 = client(moto_endpoint, "route53")
    # Real zone ids start with Z, and the module's validation insists; moto draws all 22 characters
    # at random (1 in 36 starts with Z), so zones are made until one does and the others deleted.
    for attempt in range(1000):
        zone = route53.create_hosted_zone(Name="eventstate.example.com", CallerReference=f"{STACK}-{attempt}")
        zone_id = str(zone["HostedZone"]["Id"]).rsplit("/", 1)[-1]
        if zone_id.startswith("Z"):
            return zone_id
        route53.delete_hosted_zone(Id=zone_id)
    raise AssertionError("moto made no zone id starting with Z in 1000 tries")


@pytest.fixture(scope="module")
def variables(zone_id: str) -> dict[str, Any]:
    return {**BASE, "route53_zone_id": zone_id}


@pytest.fixture(scope="module")
def stack(
    moto_endpoint: str, variables: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Terraform, dict[str, Any]]]:
    """The ha stack applied against moto; destroyed again (idempotently) when the module is done."""
    tf = aws_terraform(tmp_path_factory.mktemp("aws-ha"), moto_endpoint, STATE_KEY)
    (tf.module_dir / "moto_ha_override.tf").write_text(MOTO_DIFFERENCES)
    tf.init()
    started = time.monotonic()
    tf.apply(tf.plan(variables), stream=False)
    TIMINGS["apply"] = time.monotonic() - started
    print(f"moto apply (ha): {TIMINGS['apply']:.0f}s")
    yield tf, tf.outputs()
    tf.destroy(variables, stream=False)


def database(endpoint: str) -> dict[str, Any]:
    (db,) = client(endpoint, "rds").describe_db_instances(DBInstanceIdentifier=STACK)["DBInstances"]
    return dict(db)


def test_log_is_in_encrypted_multi_az_postgresql_with_backups(stack: Any, moto_endpoint: str) -> None:
    """RDS PostgreSQL, Multi-AZ, encrypted, automated backups kept, deletion protection as asked
    (off only because this test stack must be destroyed), not reachable from the internet."""
    _, outputs = stack
    db = database(moto_endpoint)

    assert db["Engine"] == "postgres"
    assert db["MultiAZ"] is True
    assert db["StorageEncrypted"] is True
    assert db["BackupRetentionPeriod"] == 7
    assert db["DeletionProtection"] is False
    assert db["PubliclyAccessible"] is False
    assert outputs["database_endpoint"] == f"{db['Endpoint']['Address']}:{db['Endpoint']['Port']}"


def test_password_is_managed_by_rds_and_in_no_state_or_user_data(stack: Any, moto_endpoint: str) -> None:
    """The master password lives in an RDS-managed Secrets Manager secret; neither the Terraform
    state nor the launch template's user data contains it or the API key; the user data names the
    secret and the instance role may read that secret only."""
    _, outputs = stack
    db = database(moto_endpoint)
    secret_arn = db["MasterUserSecret"]["SecretArn"]
    password = client(moto_endpoint, "secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    state = client(moto_endpoint, "s3").get_object(Bucket=STATE_BUCKET, Key=STATE_KEY)["Body"].read().decode()
    template = client(moto_endpoint, "ec2").describe_launch_template_versions(
        LaunchTemplateName=f"{STACK}-ha", Versions=["$Latest"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    user_data = gzip.decompress(base64.b64decode(template["UserData"])).decode()
    policy = client(moto_endpoint, "iam").get_role_policy(
        RoleName=f"{STACK}-instance", PolicyName=f"{STACK}-read-db-secret"
    )["PolicyDocument"]

    assert (
        template["MetadataOptions"]["HttpTokens"],
        template["MetadataOptions"]["HttpPutResponseHopLimit"],
    ) == (
        "required",
        1,
    )
    assert '"password"' in password
    secret_password = json.loads(password)["password"]
    assert len(secret_password) >= 8
    assert secret_password not in state
    assert secret_password not in user_data
    assert API_KEY not in state
    assert API_KEY not in user_data
    assert outputs["database_secret_arn"] == secret_arn
    assert f"--secret-id '{secret_arn}'" in user_data
    assert f"@{db['Endpoint']['Address']}:5432/eventstate?sslmode=verify-full" in user_data
    assert " init" in user_data
    assert "serve --host 0.0.0.0 --port 5000" in user_data
    (read,) = [s for s in policy["Statement"] if s["Sid"] == "ReadDatabaseSecret"]
    assert read["Action"] == "secretsmanager:GetSecretValue"
    assert read["Resource"] == secret_arn


def launch_template_user_data(endpoint: str) -> str:
    """The user data of the group's launch template, as EC2 holds it (gzip, base64)."""
    template = client(endpoint, "ec2").describe_launch_template_versions(
        LaunchTemplateName=f"{STACK}-ha", Versions=["$Latest"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    return gzip.decompress(base64.b64decode(template["UserData"])).decode()


def test_user_data_is_shellcheck_clean(stack: Any, moto_endpoint: str, tmp_path: Any) -> None:
    """The ha boot script, as Terraform rendered it into the launch template, passes shellcheck."""
    if shutil.which("shellcheck") is None:
        unavailable("shellcheck is not installed (apt-get install shellcheck)")
    script = tmp_path / "ha-user-data.sh"
    script.write_text(launch_template_user_data(moto_endpoint))

    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout


def test_at_least_two_instances_in_two_zones_behind_the_load_balancer(stack: Any, moto_endpoint: str) -> None:
    """The Auto Scaling group keeps two or more instances, spread over two or more zones, registered
    with the target group, replaced when the load balancer finds them unhealthy."""
    _, outputs = stack
    (group,) = client(moto_endpoint, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[STACK]
    )["AutoScalingGroups"]
    subnets = client(moto_endpoint, "ec2").describe_subnets(SubnetIds=group["VPCZoneIdentifier"].split(","))
    subnet_zones = {s["AvailabilityZone"] for s in subnets["Subnets"]}

    assert group["MinSize"] >= 2
    assert group["DesiredCapacity"] >= 2
    assert len(group["Instances"]) >= 2
    # The group may launch in every zone of its subnets and AWS balances it over them; moto places
    # all instances in one zone, so the spread is checked on the subnets the group is given.
    assert len(subnet_zones) >= 2
    assert set(group["AvailabilityZones"]) == subnet_zones
    assert group["HealthCheckType"] == "ELB"
    assert group["TargetGroupARNs"] == [outputs["target_group_arn"]]


def test_load_balancer_serves_https_with_acm_and_redirects_http(
    stack: Any, zone_id: str, moto_endpoint: str
) -> None:
    """443 with the ACM certificate for the domain and a TLS 1.2+ policy; 80 only redirects to
    HTTPS; health checks ask /health/ready; the domain is an alias of the load balancer."""
    _, outputs = stack
    elb = client(moto_endpoint, "elbv2")
    (lb,) = elb.describe_load_balancers(Names=[STACK])["LoadBalancers"]
    listeners = {
        lst["Port"]: lst for lst in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    }
    (target_group,) = elb.describe_target_groups(TargetGroupArns=[outputs["target_group_arn"]])[
        "TargetGroups"
    ]
    certificate = client(moto_endpoint, "acm").describe_certificate(
        CertificateArn=listeners[443]["Certificates"][0]["CertificateArn"]
    )["Certificate"]
    records = client(moto_endpoint, "route53").list_resource_record_sets(HostedZoneId=zone_id)[
        "ResourceRecordSets"
    ]

    assert sorted(listeners) == [80, 443]
    assert listeners[443]["Protocol"] == "HTTPS"
    assert listeners[443]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert (certificate["DomainName"], certificate["Status"]) == (DOMAIN, "ISSUED")
    (redirect,) = listeners[80]["DefaultActions"]
    assert redirect["Type"] == "redirect"
    assert (redirect["RedirectConfig"]["Protocol"], redirect["RedirectConfig"]["StatusCode"]) == (
        "HTTPS",
        "HTTP_301",
    )
    assert (target_group["Port"], target_group["Protocol"]) == (5000, "HTTP")
    assert target_group["HealthCheckPath"] == "/health/ready"
    assert outputs["url"] == f"https://{DOMAIN}"
    assert any(r["Name"].rstrip(".") == DOMAIN and r["Type"] == "A" and "AliasTarget" in r for r in records)


def test_security_groups_chain_clients_to_alb_to_instances_to_database(
    stack: Any, moto_endpoint: str
) -> None:
    """The allowed CIDR reaches only the load balancer (443, 80); the instances accept only the load
    balancer on 5000; the database accepts only the instances on 5432."""
    ec2 = client(moto_endpoint, "ec2")
    groups = {
        g["GroupName"]: g
        for g in ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [f"{STACK}-alb", f"{STACK}-app", f"{STACK}-db"]}]
        )["SecurityGroups"]
    }
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [g["GroupId"] for g in groups.values()]}]
    )["SecurityGroupRules"]

    def ingress(name: str) -> list[tuple[int, str]]:
        return sorted(
            (r["FromPort"], r.get("CidrIpv4") or r["ReferencedGroupInfo"]["GroupId"])
            for r in rules
            if r["GroupId"] == groups[name]["GroupId"] and not r["IsEgress"]
        )

    assert ingress(f"{STACK}-alb") == [(80, RUNNER_CIDR), (443, RUNNER_CIDR)]
    assert ingress(f"{STACK}-app") == [(5000, groups[f"{STACK}-alb"]["GroupId"])]
    assert ingress(f"{STACK}-db") == [(5432, groups[f"{STACK}-app"]["GroupId"])]
    (db_group,) = database(moto_endpoint)["VpcSecurityGroups"]
    assert db_group["VpcSecurityGroupId"] == groups[f"{STACK}-db"]["GroupId"]


def test_no_single_instance_resources(stack: Any, moto_endpoint: str) -> None:
    """The ha topology creates no lone instance, data volume, Elastic IP or Caddy CA parameter."""
    tf, outputs = stack
    addresses = {r.split("[", 1)[0] for r in tf.resources()}

    assert not addresses & {
        "aws_instance.this",
        "aws_ebs_volume.data",
        "aws_eip.this",
        "aws_ssm_parameter.tls_root_ca",
    }
    assert (outputs["instance_id"], outputs["public_ip"], outputs["tls_root_ca_parameter"]) == ("", "", "")


def test_second_plan_shows_no_drift(stack: Any, variables: dict[str, Any]) -> None:
    """Planning again right after apply finds nothing to change."""
    tf, _ = stack
    started = time.monotonic()
    plan = tf.plan(variables)
    print(f"moto plan (ha, no changes): {time.monotonic() - started:.0f}s")

    assert [c.address for c in plan.changes] == []


def test_destroy_leaves_nothing(stack: Any, variables: dict[str, Any], moto_endpoint: str) -> None:
    """destroy (deletion protection off for this test stack) removes the database, the group, the
    load balancer, the certificate and the security groups, and empties the state."""
    tf, _ = stack
    started = time.monotonic()
    tf.destroy(variables, stream=False)
    print(f"moto destroy (ha): {time.monotonic() - started:.0f}s")

    assert tf.resources() == []
    assert client(moto_endpoint, "rds").describe_db_instances()["DBInstances"] == []
    assert client(moto_endpoint, "autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"] == []
    assert client(moto_endpoint, "elbv2").describe_load_balancers()["LoadBalancers"] == []
    assert client(moto_endpoint, "elbv2").describe_target_groups()["TargetGroups"] == []
    assert client(moto_endpoint, "acm").list_certificates()["CertificateSummaryList"] == []
    names = [
        g["GroupName"] for g in client(moto_endpoint, "ec2").describe_security_groups()["SecurityGroups"]
    ]
    assert not {f"{STACK}-alb", f"{STACK}-app", f"{STACK}-db"} & set(names)
    running = [
        i["InstanceId"]
        for r in client(moto_endpoint, "ec2").describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )["Reservations"]
        for i in r["Instances"]
    ]
    assert running == []
