"""plan, deploy and destroy for the `aws` and `local` targets (`nox -s plan|deploy|destroy`).

deploy = init -> plan summary -> apply -> wait for /health/ready over HTTPS (trusting the target's
CA) -> GET /status -> print the URL, the CA file and a curl command that uses it.
rollback = deploy of an image that was ready before (the previous one, or --to TAG/ID).
destroy = destroy -> confirm the state is empty. All are idempotent.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from eventstate.deploy.terraform import Plan, Terraform, TerraformError, cli_config, find_provider_mirror

TARGETS = ("aws", "local", "local-ha")
LOCAL_IMAGE = "eventstate:latest"
STATE_ENV = "EVENTSTATE_DEPLOY_STATE"
DEFAULT_ENV = "default"
REGION_ENV = "EVENTSTATE_AWS_REGION"
DEFAULT_REGION = "eu-west-1"
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
# Files whose change makes the locally built image stale.
_IMAGE_INPUTS = ("Dockerfile", "pyproject.toml", ".dockerignore", "src")


class DeployError(RuntimeError):
    """A deployment step failed in a way the operator must act on; the message says how."""


@attrs.frozen
class Target:
    """A deployment target: its Terraform root module and where its state is kept."""

    name: str
    root: Path
    state_dir: Path
    env: str = DEFAULT_ENV

    @property
    def stack_name(self) -> str:
        """The name every resource of this environment carries: eventstate, eventstate-staging, ..."""
        return "eventstate" if self.env == DEFAULT_ENV else f"eventstate-{self.env}"

    @property
    def var_files(self) -> list[Path]:
        """The environment's own variables (infra/<target>/env/<env>.tfvars), when it has them."""
        path = self.module_dir / "env" / f"{self.env}.tfvars"
        return [path] if path.exists() else []

    @property
    def state_key(self) -> str:
        """Where this environment's Terraform state lives in the state bucket."""
        return f"{self.stack_name}/{self.env}/terraform.tfstate"

    @property
    def module_dir(self) -> Path:
        """The Terraform root module of this target."""
        return self.root / "infra" / self.name

    @property
    def api_keys_file(self) -> Path:
        """The API keys this target's service accepts, one per line (created on first deploy)."""
        return self.state_dir / "api-keys"

    @property
    def inputs_file(self) -> Path:
        """The non-secret variables of the last deploy, reused by destroy."""
        return self.state_dir / "inputs.json"

    @property
    def ca_file(self) -> Path:
        """The root certificate the target's TLS terminator chains to (its internal CA)."""
        return self.state_dir / "ca.crt"

    @property
    def releases_file(self) -> Path:
        """One line per image that became ready on the target: time, image id, reference."""
        return self.state_dir / "releases"

    @classmethod
    def named(cls, name: str, root: Path, env: str = DEFAULT_ENV) -> Target:
        """The target NAME (environment ENV) of the checkout at ROOT; its local files (API keys,
        inputs) are under infra/.state/ by default."""
        if name not in TARGETS:
            raise DeployError(f"unknown target {name!r}: choose one of {', '.join(TARGETS)}")
        if not _ENV_NAME.match(env):
            raise DeployError(f"bad environment {env!r}: 1-16 of a-z, 0-9, '-', starting with a letter")
        if env != DEFAULT_ENV and name != "aws":
            raise DeployError("environments are for the aws target; the local target has one")
        state_root = Path(os.environ.get(STATE_ENV) or root / "infra" / ".state")
        directory = name if env == DEFAULT_ENV else f"{name}-{env}"
        return cls(name=name, root=root.resolve(), state_dir=(state_root / directory).resolve(), env=env)


def terraform_for(target: Target) -> Terraform:
    """The Terraform adapter for TARGET, using a hashicorp/aws mirror when the machine has one;
    the aws target keeps its state in the S3 state bucket (created here when missing)."""
    env: dict[str, str] = {}
    mirror = find_provider_mirror()
    if mirror is not None and target.name == "aws":
        target.state_dir.mkdir(parents=True, exist_ok=True)
        config = target.state_dir / "terraform.rc"
        config.write_text(cli_config(mirror))
        env["TF_CLI_CONFIG_FILE"] = str(config)
    backend = None
    if target.name == "aws":
        import boto3  # only the aws target needs it

        region = aws_region()
        account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
        bucket = ensure_state_bucket(
            boto3.client("s3", region_name=region), state_bucket_name(account, region), region
        )
        backend = s3_backend_config(bucket, target.state_key, region)
    return Terraform(target.module_dir, target.state_dir, env=env, backend_config=backend)


# ---- shared state ------------------------------------------------------------------------------


def aws_region() -> str:
    """The region of the aws target: EVENTSTATE_AWS_REGION, else AWS_REGION, else eu-west-1."""
    return os.environ.get(REGION_ENV) or os.environ.get("AWS_REGION") or DEFAULT_REGION


def state_bucket_name(account: str, region: str) -> str:
    """One state bucket per account and region, shared by every environment (one key each)."""
    return f"eventstate-tfstate-{account}-{region}"


def s3_backend_config(bucket: str, key: str, region: str) -> dict[str, str]:
    """The S3 backend settings: encrypted state, locked by a lock file beside it (Terraform >= 1.10)."""
    return {"bucket": bucket, "key": key, "region": region, "encrypt": "true", "use_lockfile": "true"}


def ensure_state_bucket(s3: Any, bucket: str, region: str, *, tls_only: bool = True) -> str:
    """Create BUCKET (idempotently) as a Terraform state bucket: versioned (every state ever
    written can be restored), encrypted by default, never public, and (TLS_ONLY, always outside an
    emulator served over plain HTTP) refusing any request that does not come over TLS."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        options: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**options)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}, "BucketKeyEnabled": True}
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    if not tls_only:
        return bucket
    deny_plain_http = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny_plain_http))
    return bucket


def state(target: Target, *, say: Callable[[str], None] = print) -> Terraform:
    """Create the state bucket when missing and initialise TARGET's backend on it."""
    tf = terraform_for(target)
    tf.init()
    if tf.backend_config is not None:
        where = f"s3://{tf.backend_config['bucket']}/{tf.backend_config['key']}"
        say(f"state: {where} (versioned, encrypted, locked with a lock file)")
    else:
        say(f"state: {tf.state_file}")
    return tf


# ---- commands ----------------------------------------------------------------------------------


def plan(target: Target, *, say: Callable[[str], None] = print) -> Plan:
    """Show what deploy would change on TARGET, changing nothing."""
    tf = terraform_for(target)
    tf.init()
    variables = _variables(target, build_command=None, push=False)
    result = tf.plan(variables, var_files=target.var_files)
    say(summary(result))
    return result


def deploy(
    target: Target,
    *,
    build_command: str | None = None,
    ready_timeout: float | None = None,
    image: str | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """Bring TARGET to a healthy service and return its URL (IMAGE: run this image as it is)."""
    tf = terraform_for(target)
    tf.init()
    variables = _variables(target, build_command=build_command, push=True, tf=tf, say=say, image=image)
    result = tf.plan(variables, var_files=target.var_files)
    say(summary(result))
    try:
        if result.has_changes:
            tf.apply(result)
        else:
            result.path.unlink(missing_ok=True)
    except TerraformError as e:
        reason = _boot_error(target)
        raise DeployError(f"{e}\n{reason}" if reason else str(e)) from e
    finally:
        # Also after a failed apply (an image that never got ready): destroy needs the inputs.
        _save_inputs(target, variables)
    outputs = tf.outputs()
    url = str(outputs["url"])
    ca = Path(str(outputs["ca"])) if "ca" in outputs else None
    timeout = ready_timeout or (900.0 if target.name == "aws" else 180.0)
    if target.name == "aws" and image_only_change(result):
        upgrade_in_place(outputs, timeout=timeout, say=say)
    if outputs.get("tls_root_ca_parameter"):
        # No domain: the instance publishes its terminator's root certificate once it has one.
        ca = save_root_ca(
            str(outputs["tls_root_ca_parameter"]), str(outputs["region"]), target.ca_file, timeout=timeout
        )
    wait_until_ready(url, timeout=timeout, cafile=ca)
    status = fetch_status(url, cafile=ca)
    say(f"GET {url}/status -> {json.dumps(status)}")
    say(f"url: {url}")
    if ca is not None:
        say(f"ca: {ca}")
        say(f"try: curl --cacert {shlex.quote(str(ca))} {url}/status")
    say(f"eventstate is up at {url}")
    say(f"API keys (X-API-KEY for POST /update): {target.api_keys_file}")
    if target.name == "aws":
        say(f"shell: aws ssm start-session --target {tf.outputs()['instance_id']}")
    if target.name == "local-ha":
        say(f"instances behind the load balancer: {', '.join(outputs['instances'])}")
    return url


def _boot_error(target: Target) -> str | None:
    # The local target's boot script logs why `up` failed (e.g. "... rolled back to sha256:...").
    script = {"local": "eventstate-boot", "local-ha": "eventstate-ha"}.get(target.name)
    log = target.state_dir / f"{script}.log"
    if script is None or not log.exists():
        return None
    errors = [line for line in log.read_text().splitlines() if f"{script}[up]: error:" in line]
    return errors[-1] if errors else None


def releases(target: Target) -> list[tuple[str, str]]:
    """The images that became ready on TARGET, oldest first, as (image id, reference) pairs."""
    if not target.releases_file.exists():
        return []
    entries = (line.split() for line in target.releases_file.read_text().splitlines())
    return [(fields[1], fields[2]) for fields in entries if len(fields) == 3]


def rollback(
    target: Target,
    *,
    to: str | None = None,
    ready_timeout: float | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """Run the image that was ready before the current one again (or the one TO names)."""
    if target.name == "aws":
        return _rollback_aws(target, to=to, ready_timeout=ready_timeout, say=say)
    history = releases(target)
    if not history:
        raise DeployError(f"no release is recorded in {target.releases_file}: deploy first")
    current = history[-1][0]
    if to is None:
        earlier = [image_id for image_id, _ in history if image_id != current]
        if not earlier:
            raise DeployError("only one image was ever ready here: there is nothing to roll back to")
        chosen = earlier[-1]
    else:
        matches = [i for i, ref in history if to in (i, ref) or i.startswith(f"sha256:{to}")]
        if not matches:
            raise DeployError(f"{to!r} never ran here; known: {', '.join(r for _, r in history)}")
        chosen = matches[-1]
    if local_image_id(chosen) is None:
        raise DeployError(f"image {chosen} is no longer on this machine's Docker engine")
    say(f"rolling back from {current[:19]} to {chosen[:19]}")
    return deploy(target, image=chosen, ready_timeout=ready_timeout, say=say)


def _rollback_aws(
    target: Target, *, to: str | None, ready_timeout: float | None, say: Callable[[str], None]
) -> str:
    import boto3  # only the aws target needs it

    tf = terraform_for(target)
    tf.init()
    outputs = tf.outputs()
    if not outputs.get("image_tag"):
        raise DeployError("rollback needs a deployed stack that runs an image from its own repository")
    repository = str(outputs["ecr_repository_url"]).split("/", 1)[1]
    ecr = boto3.client("ecr", region_name=str(outputs["region"]))
    images = ecr.describe_images(repositoryName=repository, filter={"tagStatus": "TAGGED"})["imageDetails"]
    tags = [t for image in sorted(images, key=lambda i: i["imagePushedAt"]) for t in image["imageTags"]]
    current = str(outputs["image_tag"])
    chosen = to if to is not None else previous_tag(tags, current)
    if chosen not in tags:
        raise DeployError(f"tag {chosen!r} is not in {repository}; it keeps: {', '.join(tags)}")
    say(f"rolling back from {current} to {chosen}")
    return deploy(target, image=chosen, ready_timeout=ready_timeout, say=say)


def previous_tag(tags: list[str], current: str) -> str:
    """The tag pushed just before CURRENT (TAGS oldest first)."""
    if current not in tags or tags.index(current) == 0:
        raise DeployError(f"no image older than {current} is kept in the repository to roll back to")
    return tags[tags.index(current) - 1]


def upgrade_in_place(
    outputs: dict[str, Any], *, timeout: float, say: Callable[[str], None] = print, interval: float = 5.0
) -> str:
    """Run the stack's upgrade document on its instance (SSM Run Command) and wait for its end:
    the boot script replaces the container with the image in the parameter, or rolls back.
    Returns the command id."""
    import boto3  # only the aws target needs it

    ssm = boto3.client("ssm", region_name=str(outputs["region"]))
    instance = str(outputs["instance_id"])
    command = ssm.send_command(
        DocumentName=str(outputs["upgrade_document"]),
        InstanceIds=[instance],
        Comment=f"eventstate: run {outputs['image']}",
    )["Command"]["CommandId"]
    say(f"upgrading {instance} in place (SSM command {command})")
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = ssm.get_command_invocation(CommandId=command, InstanceId=instance)
        except ssm.exceptions.InvocationDoesNotExist:
            result = {"Status": "Pending"}
        if result["Status"] == "Success":
            return str(command)
        if result["Status"] in ("Failed", "Cancelled", "TimedOut", "Cancelling"):
            detail = str(result.get("StandardErrorContent") or result.get("StandardOutputContent") or "")
            raise DeployError(
                f"the upgrade on {instance} ended {result['Status']}; the boot script starts the previous "
                f"image again when the new one never becomes healthy:\n{detail.strip()[-2000:]}"
            )
        if time.monotonic() >= deadline:
            raise DeployError(f"SSM command {command} on {instance} did not finish within {timeout:.0f}s")
        time.sleep(interval)


def image_only_change(result: Plan) -> bool:
    """Whether the plan changes the image reference without creating the instance: an upgrade
    the running (single-topology) instance must be told to perform."""
    image_updated = any(
        c.address == "aws_ssm_parameter.image" and "update" in c.actions for c in result.changes
    )
    instance = ("aws_instance.this", "aws_instance.this[0]")
    instance_created = any(c.address in instance and "create" in c.actions for c in result.changes)
    # The ha topology has no single instance to tell: the image is in its launch template, whose
    # new version the Auto Scaling group's instance refresh rolls out.
    rolled_out = any(c.address.startswith("aws_launch_template.") for c in result.changes)
    return image_updated and not instance_created and not rolled_out


def destroy(target: Target, *, say: Callable[[str], None] = print) -> None:
    """Remove everything deploy created on TARGET and confirm that the state is empty."""
    tf = terraform_for(target)
    tf.init()
    if not tf.resources():
        say(f"nothing deployed on {target.name}")
        return
    tf.destroy(_saved_variables(target), var_files=target.var_files)
    left = tf.resources()
    if left:
        raise DeployError(f"destroy left resources in the state: {', '.join(left)}")
    say(f"destroyed: the {target.name} state is empty")


def summary(result: Plan) -> str:
    """One line per change and a count line, as an operator would want to read before apply."""
    if not result.has_changes:
        return "plan: no changes"
    lines = [f"  {'/'.join(c.actions):>14}  {c.address}" for c in result.changes]
    counts = ", ".join(f"{n} to {action}" for action, n in result.counts().items() if n)
    return "\n".join(["plan:", *lines, f"plan: {counts}"])


# ---- health ------------------------------------------------------------------------------------


def tls_context(cafile: Path | None) -> ssl.SSLContext:
    """Verify servers against CAFILE only (the target's own CA), or the system's roots."""
    return ssl.create_default_context(cafile=str(cafile) if cafile else None)


def wait_until_ready(url: str, *, timeout: float, interval: float = 2.0, cafile: Path | None = None) -> None:
    """Poll URL/health/ready until it answers 200, showing progress; fail after TIMEOUT seconds."""
    started = time.monotonic()
    ready = f"{url}/health/ready"
    tty = sys.stderr.isatty()
    last_line = -10.0
    while True:
        elapsed = time.monotonic() - started
        if _http_status(ready, cafile) == 200:
            sys.stderr.write(f"\r{ready}: ready after {elapsed:.0f}s\n")
            return
        if elapsed >= timeout:
            raise DeployError(f"{ready} was not ready within {timeout:.0f}s")
        if tty:
            sys.stderr.write(f"\rwaiting for {ready}: {elapsed:.0f}s / {timeout:.0f}s")
        elif elapsed - last_line >= 10:
            sys.stderr.write(f"waiting for {ready}: {elapsed:.0f}s / {timeout:.0f}s\n")
            last_line = elapsed
        sys.stderr.flush()
        time.sleep(interval)


def save_root_ca(parameter: str, region: str, path: Path, *, timeout: float) -> Path:
    """Wait until the SSM PARAMETER holds a PEM certificate, write it to PATH and return PATH."""
    import boto3  # only the aws target needs it

    ssm = boto3.client("ssm", region_name=region)
    deadline = time.monotonic() + timeout
    while True:
        value = str(ssm.get_parameter(Name=parameter)["Parameter"]["Value"])
        if value.startswith("-----BEGIN CERTIFICATE-----"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value.rstrip("\n") + "\n")
            return path
        if time.monotonic() >= deadline:
            raise DeployError(f"SSM parameter {parameter} got no root certificate within {timeout:.0f}s")
        time.sleep(5)


def fetch_status(url: str, *, cafile: Path | None = None) -> dict[str, Any]:
    """GET URL/status (trusting CAFILE for HTTPS) and check it has the documented shape."""
    context = tls_context(cafile) if url.startswith("https:") else None
    with urllib.request.urlopen(f"{url}/status", timeout=10, context=context) as response:  # noqa: S310  # http(s) URL from our own output
        body = json.load(response)
    missing = {"counter", "message", "version", "updated_at"} - set(body)
    if missing:
        raise DeployError(f"GET {url}/status lacks {', '.join(sorted(missing))}: {body}")
    return dict(body)


def _http_status(url: str, cafile: Path | None = None) -> int | None:
    context = tls_context(cafile) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:  # noqa: S310  # our own URL
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, OSError):
        return None


# ---- variables ---------------------------------------------------------------------------------


def _variables(
    target: Target,
    *,
    build_command: str | None,
    push: bool,
    tf: Terraform | None = None,
    say: Callable[[str], None] = print,
    image: str | None = None,
) -> dict[str, Any]:
    keys_file = ensure_api_keys(target.api_keys_file)
    if target.name == "local-ha":
        return _local_ha_variables(target, keys_file, build_command=build_command, push=push, say=say)
    if target.name == "local":
        # IMAGE (a rollback) or EVENTSTATE_LOCAL_IMAGE runs an existing image as it is; by default
        # eventstate:latest is (re)built when missing or stale.
        image = image or os.environ.get("EVENTSTATE_LOCAL_IMAGE")
        if image is None:
            image = LOCAL_IMAGE
            if push:
                ensure_local_image(target.root, build_command, say=say)
        image_id = local_image_id(image)
        if push and image_id is None:
            raise DeployError(f"image {image} is not on this machine's Docker engine")
        return {
            "image": image,
            "image_id": image_id or "sha256:" + "0" * 64,
            "state_dir": str(target.state_dir),
            "api_keys_file": str(keys_file),
            "host_port": int(os.environ.get("EVENTSTATE_LOCAL_PORT", "5000")),
            "container_name": os.environ.get("EVENTSTATE_LOCAL_CONTAINER", "eventstate-local"),
        }

    variables: dict[str, Any] = {
        "name": target.stack_name,
        "environment": target.env,
        "region": aws_region(),
        "allowed_cidrs": allowed_cidrs(),
        "api_keys": read_api_keys(keys_file),
        # The keys are write-only in Terraform: SSM gets them again only when this number moves.
        "api_keys_version": int(keys_file.stat().st_mtime),
    }
    if image is not None:
        # A rollback: a tag already in the stack's repository; nothing is built or pushed.
        variables["image_tag"] = image
        return variables
    given_image = os.environ.get("EVENTSTATE_DEPLOY_IMAGE")
    if given_image:
        variables["image"] = given_image
        return variables
    if push:
        ensure_local_image(target.root, build_command, say=say)
    built_id = local_image_id()
    version = project_version(target.root)
    variables["image_tag"] = f"{version}-{built_id[7:19]}" if built_id else version
    if push and tf is not None:
        _push_to_ecr(tf, variables, say=say)
    return variables


# The image `bash .ci/docker.sh` builds with Debian's PostgreSQL (no registry is needed).
POSTGRES_IMAGE = "eventstate-postgres:bookworm"


def _local_ha_variables(
    target: Target, keys_file: Path, *, build_command: str | None, push: bool, say: Callable[[str], None]
) -> dict[str, Any]:
    # As the local target: EVENTSTATE_LOCAL_IMAGE runs an existing image, else eventstate:latest is
    # (re)built when missing or stale. The PostgreSQL image is built by the CI docker script.
    image = os.environ.get("EVENTSTATE_LOCAL_IMAGE")
    if image is None:
        image = LOCAL_IMAGE
        if push:
            ensure_local_image(target.root, build_command, say=say)
    image_id = local_image_id(image)
    postgres_image = os.environ.get("EVENTSTATE_POSTGRES_IMAGE") or POSTGRES_IMAGE
    if push and image_id is None:
        raise DeployError(f"image {image} is not on this machine's Docker engine")
    if push and local_image_id(postgres_image) is None:
        raise DeployError(
            f"image {postgres_image} is not on this machine's Docker engine: bash .ci/docker.sh builds it"
        )
    return {
        "image": image,
        "image_id": image_id or "sha256:" + "0" * 64,
        "postgres_image": postgres_image,
        "state_dir": str(target.state_dir),
        "api_keys_file": str(keys_file),
        "host_port": int(os.environ.get("EVENTSTATE_LOCAL_PORT", "5443")),
        "name": os.environ.get("EVENTSTATE_LOCAL_CONTAINER", "eventstate-ha"),
        "instances": int(os.environ.get("EVENTSTATE_HA_INSTANCES", "2")),
    }


def _push_to_ecr(tf: Terraform, variables: dict[str, Any], *, say: Callable[[str], None]) -> None:
    # The repository is part of the stack, so it is created first on its own, then the image goes
    # in, then the rest of the stack is applied and the instance can pull what it names.
    repo_plan = tf.plan(variables, targets=["aws_ecr_repository.this"], var_files=[])
    if repo_plan.has_changes:
        say(summary(repo_plan))
        tf.apply(repo_plan)
    else:
        repo_plan.path.unlink(missing_ok=True)
    repository = str(tf.outputs()["ecr_repository_url"])
    remote = f"{repository}:{variables['image_tag']}"
    import base64

    import boto3  # only the aws target needs it

    region = str(tf.outputs()["region"])
    token = boto3.client("ecr", region_name=region).get_authorization_token()
    auth = token["authorizationData"][0]
    user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    registry = repository.split("/", 1)[0]
    _run(["docker", "login", "--username", user, "--password-stdin", registry], stdin=password)
    _run(["docker", "tag", LOCAL_IMAGE, remote])
    say(f"pushing {remote}")
    _run(["docker", "push", remote])


def allowed_cidrs() -> list[str]:
    """EVENTSTATE_ALLOWED_CIDRS (comma-separated), else this machine's public IPv4 as a /32."""
    given = os.environ.get("EVENTSTATE_ALLOWED_CIDRS")
    if given:
        return [c.strip() for c in given.split(",") if c.strip()]
    try:
        with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as response:
            address = response.read().decode().strip()
    except (urllib.error.URLError, OSError) as e:
        raise DeployError(
            "cannot detect this machine's public IP; set EVENTSTATE_ALLOWED_CIDRS=203.0.113.7/32"
        ) from e
    return [f"{address}/32"]


def ensure_api_keys(path: Path) -> Path:
    """Create PATH with one fresh random key (mode 0600) unless it already holds keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or not read_api_keys(path):
        given = os.environ.get("EVENTSTATE_API_KEYS", "")
        keys = [k for k in given.split(",") if k] or [secrets.token_urlsafe(32)]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(keys) + "\n")
    return path


def read_api_keys(path: Path) -> list[str]:
    """The keys in PATH, one per line, blank lines ignored."""
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def project_version(root: Path) -> str:
    """The version in pyproject.toml."""
    return str(tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"])


def _save_inputs(target: Target, variables: dict[str, Any]) -> None:
    public = {k: v for k, v in variables.items() if k != "api_keys"}
    target.inputs_file.write_text(json.dumps(public, indent=2, sort_keys=True) + "\n")


def _saved_variables(target: Target) -> dict[str, Any]:
    saved: dict[str, Any] = {}
    if target.inputs_file.exists():
        saved = json.loads(target.inputs_file.read_text())
    if target.name == "aws":
        saved.setdefault("allowed_cidrs", ["127.0.0.1/32"])
        saved.setdefault("name", target.stack_name)
        saved.setdefault("environment", target.env)
        saved.setdefault("region", aws_region())
        saved["api_keys"] = read_api_keys(target.api_keys_file) or ["destroy-needs-no-real-key"]
    else:
        saved.setdefault("image_id", "sha256:" + "0" * 64)
        saved.setdefault("state_dir", str(target.state_dir))
        saved.setdefault("api_keys_file", str(target.api_keys_file))
    return saved


# ---- the local image ---------------------------------------------------------------------------


def local_image_id(image: str = LOCAL_IMAGE) -> str | None:
    """The content id of IMAGE on this machine's Docker engine, or None when it is missing."""
    proc = subprocess.run(  # noqa: S603  # fixed argv, no shell
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],  # noqa: S607  # docker from PATH
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def image_is_stale(root: Path, image: str = LOCAL_IMAGE) -> bool:
    """Whether IMAGE is missing or older than any file it is built from."""
    proc = subprocess.run(  # noqa: S603  # fixed argv, no shell
        ["docker", "image", "inspect", "--format", "{{.Created}}", image],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return True
    created = _parse_docker_time(proc.stdout.strip())
    newest = max((_newest_mtime(root / name) for name in _IMAGE_INPUTS), default=0.0)
    return newest > created


def ensure_local_image(root: Path, build_command: str | None, *, say: Callable[[str], None] = print) -> None:
    """Build eventstate:latest with BUILD_COMMAND when it is missing or stale."""
    if not image_is_stale(root):
        say(f"{LOCAL_IMAGE} is up to date")
        return
    command = build_command or f"{shlex.quote(sys.executable)} -m nox -s image"
    say(f"{LOCAL_IMAGE} is missing or stale: {command}")
    _run(shlex.split(command), cwd=root)
    if local_image_id() is None:
        raise DeployError(f"{command!r} did not produce {LOCAL_IMAGE}")


def _newest_mtime(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    if path.is_dir():
        # Build by-products (bytecode, the egg-info `pip wheel` writes) are not inputs.
        files = (
            p
            for p in path.rglob("*")
            if p.is_file()
            and "__pycache__" not in p.parts
            and not any(part.endswith(".egg-info") for part in p.parts)
        )
        return max((p.stat().st_mtime for p in files), default=0.0)
    return 0.0


def _parse_docker_time(text: str) -> float:
    # e.g. 2026-11-21T22:35:01.123456789Z; Python parses at most microseconds.
    from datetime import datetime

    head, _, rest = text.partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())[:6]
    stamp = datetime.fromisoformat(head + "+00:00")
    return stamp.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


def _run(command: list[str], *, stdin: str | None = None, cwd: Path | None = None) -> None:
    # The operator's own build command and docker; no shell is involved.
    proc = subprocess.run(command, input=stdin, text=True, cwd=cwd, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise DeployError(f"{shlex.join(command[:3])}... exited {proc.returncode}")
