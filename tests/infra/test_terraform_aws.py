"""The AWS root module applied and destroyed by the real hashicorp/aws provider against moto."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from _terraform import MOTO_REGION, STATE_BUCKET, aws_terraform, moto_endpoint
from botocore.exceptions import ClientError

from eventstate.deploy.session import ensure_state_bucket, image_only_change, upgrade_in_place
from eventstate.deploy.terraform import Terraform

__all__ = ["moto_endpoint"]  # a fixture, used by name

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

STACK = "es-moto"
RUNNER_CIDR = "203.0.113.7/32"
API_KEY = "moto-test-key-0123456789abcdef"
STATE_KEY = f"{STACK}/default/terraform.tfstate"
VARIABLES: dict[str, Any] = {
    "name": STACK,
    "environment": "default",
    "region": MOTO_REGION,
    "allowed_cidrs": [RUNNER_CIDR],
    "api_keys": [API_KEY],
    "image_tag": "0.1.0-0123456789ab",
}
STAGING = {**VARIABLES, "name": f"{STACK}-staging", "environment": "staging"}
STAGING_KEY = f"{STACK}-staging/staging/terraform.tfstate"
# What a second operator's plan printed while the first apply held the state lock.
OBSERVED: dict[str, subprocess.CompletedProcess[str]] = {}


def second_operator_plan(tf: Terraform, variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`terraform plan` run as another operator would, not waiting for a lock it cannot get."""
    var_file = tf.state_dir / "second-operator.tfvars.json"
    var_file.write_text(json.dumps(variables))
    return subprocess.run(
        [tf.executable, "plan", "-input=false", "-no-color", "-lock-timeout=0s", f"-var-file={var_file}"],
        cwd=tf.module_dir,
        env={**os.environ, **tf.env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def wait_for_lock_file(endpoint: str, key: str, timeout: float = 120) -> None:
    """Poll until the S3 backend's lock file for KEY exists (an apply holds the lock)."""
    s3 = client(endpoint, "s3")
    deadline = time.monotonic() + timeout
    while "Contents" not in s3.list_objects_v2(Bucket=STATE_BUCKET, Prefix=f"{key}.tflock"):
        if time.monotonic() > deadline:
            raise AssertionError(f"no lock file for {key} within {timeout:.0f}s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Terraform, dict[str, Any]]]:
    """The stack applied against moto; destroyed again (idempotently) when the module is done."""
    tf = aws_terraform(tmp_path_factory.mktemp("aws"), moto_endpoint, STATE_KEY)
    tf.init()
    started = time.monotonic()
    # A second operator plans while this apply runs: the lock file must turn them away.
    failure: list[BaseException] = []

    def apply() -> None:
        try:
            tf.apply(tf.plan(VARIABLES), stream=False)
        except BaseException as e:  # reported by the main thread
            failure.append(e)

    applying = threading.Thread(target=apply)
    applying.start()
    try:
        wait_for_lock_file(moto_endpoint, STATE_KEY)
        OBSERVED["second_plan"] = second_operator_plan(tf, VARIABLES)
    finally:
        applying.join(timeout=900)
    if failure:
        raise failure[0]
    print(f"moto apply: {time.monotonic() - started:.0f}s")
    yield tf, tf.outputs()
    tf.destroy(VARIABLES, stream=False)


@pytest.fixture(scope="module")
def staging(
    stack: Any, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Terraform, dict[str, Any]]]:
    """A second environment of the same stack, applied beside the first (own state key and names)."""
    tf = aws_terraform(tmp_path_factory.mktemp("aws-staging"), moto_endpoint, STAGING_KEY)
    tf.init()
    started = time.monotonic()
    tf.apply(tf.plan(STAGING), stream=False)
    print(f"moto apply (staging): {time.monotonic() - started:.0f}s")
    yield tf, tf.outputs()
    tf.destroy(STAGING, stream=False)


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


def test_only_ingress_is_https_and_redirects_from_runner(stack: Any, moto_endpoint: str) -> None:
    """The security group lets in 443 (and 80, which only redirects) from the runner's /32; the
    app's own port is not open to anyone."""
    _, outputs = stack
    groups = instance(moto_endpoint, outputs["instance_id"])["SecurityGroups"]
    (group,) = client(moto_endpoint, "ec2").describe_security_groups(GroupIds=[g["GroupId"] for g in groups])[
        "SecurityGroups"
    ]

    rules = [
        (p["IpProtocol"], p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]])
        for p in group["IpPermissions"]
    ]
    assert sorted(rules) == [("tcp", 80, 80, [RUNNER_CIDR]), ("tcp", 443, 443, [RUNNER_CIDR])]
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
    # Sent gzip-compressed (cloud-init unpacks it): the boot script alone is near the 16 KiB limit.
    user_data = gzip.decompress(base64.b64decode(attribute["UserData"]["Value"])).decode()

    # The image is read from its parameter at every `up`: a new image changes no user data.
    assert "EVENTSTATE_BOOT_IMAGE=''" in user_data
    assert f"EVENTSTATE_BOOT_IMAGE_PARAMETER='{outputs['image_parameter']}'" in user_data
    assert outputs["image"].endswith(":0.1.0-0123456789ab")
    assert f"EVENTSTATE_BOOT_DATA_VOLUME_ID='{outputs['data_volume_id']}'" in user_data
    assert "nofail" in user_data
    assert API_KEY not in user_data
    assert f"EVENTSTATE_BOOT_TLS_SITES='{outputs['public_ip']}'" in user_data
    assert f"EVENTSTATE_BOOT_CA_PARAMETER='{outputs['tls_root_ca_parameter']}'" in user_data


def test_stable_https_address_is_the_elastic_ip(stack: Any, moto_endpoint: str) -> None:
    """The URL is HTTPS on an Elastic IP associated with the instance, so it survives replacement;
    the root certificate to trust has its SSM parameter, which the instance may write."""
    _, outputs = stack
    ec2 = client(moto_endpoint, "ec2")
    (address,) = ec2.describe_addresses(PublicIps=[outputs["public_ip"]])["Addresses"]

    assert outputs["url"] == f"https://{outputs['public_ip']}"
    assert address["InstanceId"] == outputs["instance_id"]
    assert outputs["tls_root_ca_parameter"] == f"/{STACK}/tls-root-ca"
    role = f"{STACK}-instance"
    policy = client(moto_endpoint, "iam").get_role_policy(RoleName=role, PolicyName=role)
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["PublishRootCertificate"]["Action"] == "ssm:PutParameter"
    assert statements["PublishRootCertificate"]["Resource"].endswith(f":parameter/{STACK}/tls-root-ca")


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
    user_data = gzip.decompress(base64.b64decode(attribute["UserData"]["Value"])).decode()

    assert f"EVENTSTATE_BOOT_REPLICA_URL='{outputs['replica_url']}'" in user_data
    assert "restore_if_empty" in user_data
    for secret in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "testing", API_KEY):
        assert secret not in user_data


def test_second_operator_is_refused_while_an_apply_holds_the_lock(stack: Any) -> None:
    """While one apply runs, another operator's plan on the same state fails on the lock file."""
    refused = OBSERVED["second_plan"]

    assert refused.returncode != 0
    assert "Error acquiring the state lock" in refused.stderr
    assert f"{STATE_BUCKET}/{STATE_KEY}" in refused.stderr


def test_state_is_shared_in_a_versioned_encrypted_bucket_without_api_keys(
    stack: Any, moto_endpoint: str
) -> None:
    """The state lives in the S3 state bucket (versioned, encrypted, private); the lock is released
    after apply; the API keys reached SSM but are nowhere in the state (write-only attribute)."""
    s3 = client(moto_endpoint, "s3")
    body = s3.get_object(Bucket=STATE_BUCKET, Key=STATE_KEY)["Body"].read().decode()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=STATE_BUCKET)["Contents"]]
    rules = s3.get_bucket_encryption(Bucket=STATE_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    public = s3.get_public_access_block(Bucket=STATE_BUCKET)["PublicAccessBlockConfiguration"]

    assert '"aws_ssm_parameter"' in body
    assert API_KEY not in body
    assert f"{STATE_KEY}.tflock" not in keys
    assert s3.get_bucket_versioning(Bucket=STATE_BUCKET)["Status"] == "Enabled"
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert all(public.values())


def test_state_bucket_refuses_plain_http(moto_endpoint: str) -> None:
    """The state bucket as `nox -s state` makes it refuses requests that do not come over TLS
    (moto enforces the policy, and it is served over plain HTTP: so even its owner is refused)."""
    s3 = client(moto_endpoint, "s3")
    bucket = "eventstate-tfstate-tls-only-check"
    ensure_state_bucket(s3, bucket, MOTO_REGION)
    ensure_state_bucket(s3, bucket, MOTO_REGION)  # idempotent

    with pytest.raises(ClientError, match=r"Forbidden|AccessDenied"):
        s3.put_object(Bucket=bucket, Key="k", Body=b"state")


def test_two_environments_side_by_side(stack: Any, staging: Any, moto_endpoint: str) -> None:
    """staging has its own state key, names, tags and address, and leaves the default one alone."""
    (_, default_outputs), (_, staging_outputs) = stack, staging
    ec2 = client(moto_endpoint, "ec2")
    tags = {
        outputs["instance_id"]: {
            t["Key"]: t["Value"] for t in instance(moto_endpoint, outputs["instance_id"])["Tags"]
        }
        for outputs in (default_outputs, staging_outputs)
    }
    s3_keys = [o["Key"] for o in client(moto_endpoint, "s3").list_objects_v2(Bucket=STATE_BUCKET)["Contents"]]

    assert tags[default_outputs["instance_id"]]["Environment"] == "default"
    assert tags[staging_outputs["instance_id"]]["Environment"] == "staging"
    assert tags[staging_outputs["instance_id"]]["Name"] == f"{STACK}-staging"
    assert staging_outputs["public_ip"] != default_outputs["public_ip"]
    assert staging_outputs["api_keys_parameter"] == f"/{STACK}-staging/api-keys"
    assert {STATE_KEY, STAGING_KEY} <= set(s3_keys)
    running = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert {default_outputs["instance_id"], staging_outputs["instance_id"]} <= set(running)


def test_new_image_is_an_in_place_upgrade_not_a_new_instance(
    stack: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new tag changes only the image parameter; deploy then sends the upgrade document to the
    same instance through SSM Run Command (moto records the command but runs no script)."""
    tf, outputs = stack
    plan = tf.plan({**VARIABLES, "image_tag": "0.1.1-fedcba987654"})
    plan.path.unlink()
    ssm = client(moto_endpoint, "ssm")
    document = ssm.get_document(Name=outputs["upgrade_document"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    said: list[str] = []
    command_id = upgrade_in_place(outputs, timeout=60, say=said.append, interval=0.2)
    (command,) = ssm.list_commands(CommandId=command_id)["Commands"]

    assert [(c.address, c.actions) for c in plan.changes] == [("aws_ssm_parameter.image", ("update",))]
    assert image_only_change(plan)
    assert "/usr/local/sbin/eventstate-boot up" in document["Content"]
    assert command["DocumentName"] == outputs["upgrade_document"]
    # (moto lists every instance it knows under the command; the request named only this one)
    assert outputs["instance_id"] in command["InstanceIds"]
    assert said[0].startswith(f"upgrading {outputs['instance_id']} in place")


def test_ecr_keeps_the_last_ten_images(stack: Any, moto_endpoint: str) -> None:
    """The repository expires all but the last 10 images: what rollback can go back to."""
    _, outputs = stack
    repository = outputs["ecr_repository_url"].split("/", 1)[1]
    policy = client(moto_endpoint, "ecr").get_lifecycle_policy(repositoryName=repository)
    (rule,) = json.loads(policy["lifecyclePolicyText"])["rules"]

    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["selection"]["countNumber"] == 10


def test_logs_and_alarms_go_to_one_topic(stack: Any, moto_endpoint: str) -> None:
    """Container logs have a group with retention; readiness, disk and 5xx alarms notify SNS."""
    _, outputs = stack
    groups = client(moto_endpoint, "logs").describe_log_groups(logGroupNamePrefix=outputs["log_group"])
    (group,) = [g for g in groups["logGroups"] if g["logGroupName"] == outputs["log_group"]]
    filters = client(moto_endpoint, "logs").describe_metric_filters(logGroupName=outputs["log_group"])
    names = [f"{STACK}-not-ready", f"{STACK}-data-disk-80", f"{STACK}-5xx-rate", f"{STACK}-replica-lag"]
    alarms = client(moto_endpoint, "cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
    by_name = {a["AlarmName"]: a for a in alarms}

    assert group["retentionInDays"] == 30
    assert {f["metricTransformations"][0]["metricName"] for f in filters["metricFilters"]} == {
        "Requests",
        "ServerErrors",
    }
    assert set(by_name) == set(names)
    assert all(a["AlarmActions"] == [outputs["alarm_topic_arn"]] for a in alarms)
    assert by_name[f"{STACK}-data-disk-80"]["Threshold"] == 80
    assert by_name[f"{STACK}-not-ready"]["TreatMissingData"] == "breaching"
    assert by_name[f"{STACK}-replica-lag"]["MetricName"] == "ReplicaLagSeconds"
    assert by_name[f"{STACK}-replica-lag"]["Threshold"] == 300


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
    assert ec2.describe_addresses(Filters=stack_filter)["Addresses"] == []
    repositories = client(moto_endpoint, "ecr").describe_repositories()["repositories"]
    assert STACK not in [r["repositoryName"] for r in repositories]
    # The replica bucket was empty (nothing replicated to it here), so destroy could remove it.
    buckets = client(moto_endpoint, "s3").list_buckets()["Buckets"]
    assert outputs["replica_bucket"] not in [b["Name"] for b in buckets]
    roles = client(moto_endpoint, "iam").list_roles()["Roles"]
    assert f"{STACK}-instance" not in [r["RoleName"] for r in roles]
    snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=stack_filter)["Snapshots"]
    assert [s["VolumeId"] for s in snapshots] == [outputs["data_volume_id"]]
