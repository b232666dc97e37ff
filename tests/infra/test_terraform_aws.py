"""The AWS root module applied and destroyed by the real hashicorp/aws provider against moto."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from _terraform import MOTO_REGION, aws_terraform, moto_endpoint

from eventstate.deploy.terraform import Terraform

__all__ = ["moto_endpoint"]  # a fixture, used by name

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

STACK = "es-moto"
RUNNER_CIDR = "203.0.113.7/32"
API_KEY = "moto-test-key-0123456789abcdef"
VARIABLES: dict[str, Any] = {
    "name": STACK,
    "region": MOTO_REGION,
    "allowed_cidrs": [RUNNER_CIDR],
    "api_keys": [API_KEY],
    "image_tag": "0.1.0-0123456789ab",
}


@pytest.fixture(scope="module")
def stack(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Terraform, dict[str, Any]]]:
    """The stack applied against moto; destroyed again (idempotently) when the module is done."""
    tf = aws_terraform(tmp_path_factory.mktemp("aws"), moto_endpoint)
    tf.init()
    started = time.monotonic()
    tf.apply(tf.plan(VARIABLES), stream=False)
    print(f"moto apply: {time.monotonic() - started:.0f}s")
    yield tf, tf.outputs()
    tf.destroy(VARIABLES, stream=False)


def client(endpoint: str, service: str) -> Any:
    """A boto3 client for SERVICE talking to moto."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=MOTO_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def instance(endpoint: str, instance_id: str) -> dict[str, Any]:
    """The EC2 description of INSTANCE_ID."""
    reservations = client(endpoint, "ec2").describe_instances(InstanceIds=[instance_id])
    return dict(reservations["Reservations"][0]["Instances"][0])


def test_only_ingress_is_app_port_from_runner(stack: Any, moto_endpoint: str) -> None:
    """The security group lets in TCP 5000 from the runner's /32 and nothing else."""
    _, outputs = stack
    groups = instance(moto_endpoint, outputs["instance_id"])["SecurityGroups"]
    (group,) = client(moto_endpoint, "ec2").describe_security_groups(GroupIds=[g["GroupId"] for g in groups])[
        "SecurityGroups"
    ]

    rules = [
        (p["IpProtocol"], p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]])
        for p in group["IpPermissions"]
    ]
    assert rules == [("tcp", 5000, 5000, [RUNNER_CIDR])]
    assert all(r.get("Description") for p in group["IpPermissions"] for r in p["IpRanges"])
    assert [(p["FromPort"], p["ToPort"]) for p in group["IpPermissionsEgress"]] == [(443, 443)]


def test_imdsv2_required(stack: Any, moto_endpoint: str) -> None:
    """The instance refuses IMDSv1 and allows two hops for containers."""
    _, outputs = stack
    options = instance(moto_endpoint, outputs["instance_id"])["MetadataOptions"]

    assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 2)


def test_every_volume_encrypted(stack: Any, moto_endpoint: str) -> None:
    """The root and data volumes of the instance are all encrypted, the data one as gp3."""
    _, outputs = stack
    mappings = instance(moto_endpoint, outputs["instance_id"])["BlockDeviceMappings"]
    volume_ids = [m["Ebs"]["VolumeId"] for m in mappings]
    volumes = client(moto_endpoint, "ec2").describe_volumes(VolumeIds=volume_ids)["Volumes"]

    assert outputs["data_volume_id"] in volume_ids
    assert len(volumes) == 2
    assert all(v["Encrypted"] for v in volumes)


def test_user_data_carries_image_and_mount_not_secret(stack: Any, moto_endpoint: str) -> None:
    """User data names the image and the data volume to mount, and never an API key."""
    _, outputs = stack
    attribute = client(moto_endpoint, "ec2").describe_instance_attribute(
        InstanceId=outputs["instance_id"], Attribute="userData"
    )
    user_data = base64.b64decode(attribute["UserData"]["Value"]).decode()

    assert f"EVENTSTATE_BOOT_IMAGE='{outputs['image']}'" in user_data
    assert outputs["image"].endswith(":0.1.0-0123456789ab")
    assert f"EVENTSTATE_BOOT_DATA_VOLUME_ID='{outputs['data_volume_id']}'" in user_data
    assert "nofail" in user_data
    assert API_KEY not in user_data


def test_api_keys_are_a_secure_string(stack: Any, moto_endpoint: str) -> None:
    """The keys are an SSM SecureString that decrypts to one key per line."""
    _, outputs = stack
    parameter = client(moto_endpoint, "ssm").get_parameter(
        Name=outputs["api_keys_parameter"], WithDecryption=True
    )["Parameter"]

    assert (parameter["Type"], parameter["Value"]) == ("SecureString", API_KEY)


def test_instance_role_has_session_manager(stack: Any, moto_endpoint: str) -> None:
    """The instance role carries AmazonSSMManagedInstanceCore, so no SSH is needed."""
    attached = client(moto_endpoint, "iam").list_attached_role_policies(RoleName=f"{STACK}-instance")[
        "AttachedPolicies"
    ]

    assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]


def _replica_bucket(outputs: dict[str, Any]) -> str:
    return str(outputs["replica_bucket"])


def test_replica_bucket_is_versioned_encrypted_and_private(stack: Any, moto_endpoint: str) -> None:
    """The replica bucket keeps every version, encrypts at rest, blocks public access, refuses
    plain HTTP, and expires only superseded versions."""
    _, outputs = stack
    s3 = client(moto_endpoint, "s3")
    bucket = _replica_bucket(outputs)

    assert outputs["replica_url"] == f"s3://{bucket}/{STACK}"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["Status"] == "Enabled"
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    assert "Expiration" not in lifecycle  # current objects (what a restore needs) never expire
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    (deny,) = policy["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_instance_role_writes_the_replica_but_never_deletes(stack: Any, moto_endpoint: str) -> None:
    """The instance may put, get and list under its prefix; every delete and every change to the
    bucket's settings is denied explicitly, and nothing else about S3 is allowed."""
    _, outputs = stack
    bucket = _replica_bucket(outputs)
    document = client(moto_endpoint, "iam").get_role_policy(
        RoleName=f"{STACK}-instance", PolicyName=f"{STACK}-replica")["PolicyDocument"]
    statements = document["Statement"]

    def actions(statement: dict[str, Any]) -> set[str]:
        value = statement["Action"]
        return {value} if isinstance(value, str) else set(value)

    allowed = set().union(*(actions(s) for s in statements if s["Effect"] == "Allow"))
    denied = set().union(*(actions(s) for s in statements if s["Effect"] == "Deny"))
    assert allowed == {"s3:ListBucket", "s3:PutObject", "s3:GetObject"}
    assert not any("Delete" in a or "*" in a for a in allowed)
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutBucketVersioning",
            "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy"} <= denied
    (writes,) = [s for s in statements if "s3:PutObject" in actions(s)]
    assert writes["Resource"] == f"arn:aws:s3:::{bucket}/{STACK}/*"
    all_policies = client(moto_endpoint, "iam").list_role_policies(RoleName=f"{STACK}-instance")
    others = [p for p in all_policies["PolicyNames"] if p != f"{STACK}-replica"]
    for name in others:
        other = client(moto_endpoint, "iam").get_role_policy(RoleName=f"{STACK}-instance", PolicyName=name)
        assert "s3:" not in json.dumps(other["PolicyDocument"])


def test_user_data_carries_the_replica_url_and_no_secret(stack: Any, moto_endpoint: str) -> None:
    """The boot script learns where the replica is (to restore an empty volume) from the user data,
    which holds no credential: the instance role provides those."""
    _, outputs = stack
    attribute = client(moto_endpoint, "ec2").describe_instance_attribute(
        InstanceId=outputs["instance_id"], Attribute="userData"
    )
    user_data = base64.b64decode(attribute["UserData"]["Value"]).decode()

    assert f"EVENTSTATE_BOOT_REPLICA_URL='{outputs['replica_url']}'" in user_data
    assert "restore_if_empty" in user_data
    for secret in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "testing", API_KEY):
        assert secret not in user_data


def test_second_plan_shows_no_drift(stack: Any) -> None:
    """Planning again right after apply finds nothing to change."""
    tf, _ = stack
    plan = tf.plan(VARIABLES)

    assert [c.address for c in plan.changes] == []


def test_destroy_leaves_nothing_but_final_snapshot(stack: Any, moto_endpoint: str) -> None:
    """destroy empties the state and removes every resource; the log survives as a snapshot."""
    tf, outputs = stack
    started = time.monotonic()
    tf.destroy(VARIABLES, stream=False)
    print(f"moto destroy: {time.monotonic() - started:.0f}s")
    ec2 = client(moto_endpoint, "ec2")
    stack_filter = [{"Name": "tag:Stack", "Values": [STACK]}]

    assert tf.resources() == []
    assert ec2.describe_volumes(Filters=stack_filter)["Volumes"] == []
    states = [
        i["State"]["Name"]
        for r in ec2.describe_instances(Filters=stack_filter)["Reservations"]
        for i in r["Instances"]
    ]
    assert set(states) <= {"terminated"}
    names = [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]]
    assert f"{STACK}-instance" not in names
    parameters = client(moto_endpoint, "ssm").describe_parameters()["Parameters"]
    assert [p["Name"] for p in parameters if p["Name"].startswith(f"/{STACK}/")] == []
    assert client(moto_endpoint, "ecr").describe_repositories()["repositories"] == []
    # The replica bucket was empty (nothing replicated to it here), so destroy could remove it.
    buckets = client(moto_endpoint, "s3").list_buckets()["Buckets"]
    assert outputs["replica_bucket"] not in [b["Name"] for b in buckets]
    roles = client(moto_endpoint, "iam").list_roles()["Roles"]
    assert f"{STACK}-instance" not in [r["RoleName"] for r in roles]
    snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=stack_filter)["Snapshots"]
    assert [s["VolumeId"] for s in snapshots] == [outputs["data_volume_id"]]
