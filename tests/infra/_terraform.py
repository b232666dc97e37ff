"""Helpers for the Terraform tests: the binary, the aws provider mirror, moto, copies of infra/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from eventstate.deploy.session import ensure_state_bucket, s3_backend_config
from eventstate.deploy.terraform import Terraform, cli_config, find_provider_mirror, find_terraform

REPO_ROOT = Path(__file__).resolve().parents[2]
# Set in CI: there a missing Terraform, provider mirror or Docker engine fails instead of skipping.
REQUIRE_TERRAFORM = "EVENTSTATE_REQUIRE_TERRAFORM"
REQUIRE_DOCKER = "EVENTSTATE_REQUIRE_DOCKER"
MOTO_REGION = "eu-west-1"
# The AWS APIs the root module calls; each is pointed at moto.
MOTO_SERVICES = (
    "acm", "autoscaling", "cloudwatch", "ec2", "ecr", "elbv2", "iam", "kms", "logs", "rds", "route53",
    "s3", "secretsmanager", "sns", "ssm", "sts",
)


def unavailable(reason: str, require_env: str = REQUIRE_TERRAFORM) -> NoReturn:
    """Skip with REASON locally; fail with it where REQUIRE_ENV=1 says the tool must be there."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{reason} (and {require_env}=1)")
    pytest.skip(reason)


def terraform_executable() -> str:
    """A Terraform to run, or skip/fail with the reason there is none."""
    try:
        return find_terraform()
    except Exception as e:  # any lookup failure is the same reason to skip
        unavailable(f"no Terraform: {e}")


def provider_cli_config(directory: Path) -> Path:
    """A CLI configuration installing hashicorp/aws from this machine's mirror (or skip/fail)."""
    mirror = find_provider_mirror()
    if mirror is None:
        unavailable("no filesystem mirror of hashicorp/aws found (set EVENTSTATE_TF_PROVIDER_MIRROR)")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "terraform.rc"
    config.write_text(cli_config(mirror))
    return config


def copy_infra(destination: Path) -> Path:
    """Copy infra/ and bootstrap/ (without state or caches) so a test can add override files."""
    ignore = shutil.ignore_patterns(".terraform", ".state", "*.tfstate*", ".terraform.lock.hcl")
    for name in ("infra", "bootstrap"):
        shutil.copytree(REPO_ROOT / name, destination / name, ignore=ignore)
    return destination


def moto_override(endpoint: str) -> str:
    """An override file pointing the real aws provider at moto, with fake credentials."""
    endpoints = "\n".join(f'    {service} = "{endpoint}"' for service in MOTO_SERVICES)
    return (
        'provider "aws" {\n'
        '  access_key                  = "testing"\n'
        '  secret_key                  = "testing"\n'
        "  skip_credentials_validation = true\n"
        "  skip_metadata_api_check     = true\n"
        "  skip_requesting_account_id  = true\n"
        "  skip_region_validation      = true\n"
        "  s3_use_path_style           = true\n"
        f"  endpoints {{\n{endpoints}\n  }}\n"
        "}\n"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free loopback port, with AWS's managed IAM policies loaded."""
    port = free_port()
    # ACM certificates count as validated on their first description (moto waits 60 s by default).
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "MOTO_ACM_VALIDATION_WAIT": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


STATE_BUCKET = "eventstate-tfstate-123456789012-eu-west-1"


def moto_backend(key: str) -> dict[str, str]:
    """The S3 backend settings a deploy uses, plus what an emulator needs (path-style, no STS)."""
    return {
        **s3_backend_config(STATE_BUCKET, key, MOTO_REGION),
        "use_path_style": "true",
        "skip_credentials_validation": "true",
        "skip_requesting_account_id": "true",
        "skip_metadata_api_check": "true",
        "skip_region_validation": "true",
    }


def aws_terraform(
    workdir: Path, endpoint: str, state_key: str = "eventstate/default/terraform.tfstate"
) -> Terraform:
    """The adapter over a copy of infra/aws that talks to moto at ENDPOINT, its state in the S3
    state bucket there (created as `nox -s state` creates it) under STATE_KEY."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=MOTO_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    # moto is served over plain HTTP, so the TLS-only policy would lock Terraform out of it;
    # test_state_bucket_refuses_plain_http checks that policy on a bucket of its own.
    ensure_state_bucket(s3, STATE_BUCKET, MOTO_REGION, tls_only=False)
    config = provider_cli_config(workdir / "cli")
    copy = copy_infra(workdir / "checkout")
    (copy / "infra" / "aws" / "moto_override.tf").write_text(moto_override(endpoint))
    env = {
        "TF_CLI_CONFIG_FILE": str(config),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        # The S3 backend reads its endpoint from here.
        "AWS_ENDPOINT_URL_S3": endpoint,
    }
    return Terraform(
        copy / "infra" / "aws",
        workdir / "state",
        executable=terraform_executable(),
        env=env,
        backend_config=moto_backend(state_key),
    )
