"""Environments of the deploy targets: names, state keys and variable files, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from _terraform import REPO_ROOT

from eventstate.deploy.session import DeployError, Target, s3_backend_config, state_bucket_name


def test_default_environment_keeps_the_historic_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --env the stack is `eventstate`, its state key `eventstate/default/...`."""
    monkeypatch.setenv("EVENTSTATE_DEPLOY_STATE", str(tmp_path))
    target = Target.named("aws", REPO_ROOT)

    assert (target.env, target.stack_name) == ("default", "eventstate")
    assert target.state_key == "eventstate/default/terraform.tfstate"
    assert target.state_dir == tmp_path / "aws"


def test_staging_has_its_own_names_key_files_and_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--env staging: eventstate-staging, its own state key and local files, env/staging.tfvars."""
    monkeypatch.setenv("EVENTSTATE_DEPLOY_STATE", str(tmp_path))
    target = Target.named("aws", REPO_ROOT, "staging")

    assert target.stack_name == "eventstate-staging"
    assert target.state_key == "eventstate-staging/staging/terraform.tfstate"
    assert target.state_dir == tmp_path / "aws-staging"
    assert target.var_files == [REPO_ROOT / "infra" / "aws" / "env" / "staging.tfvars"]


@pytest.mark.parametrize("env", ["", "Staging", "-x", "a" * 17, "stag ing", "../prod"])
def test_bad_environment_names_are_refused(env: str) -> None:
    """An environment name that could not be a resource-name suffix is refused before anything runs."""
    with pytest.raises(DeployError, match="bad environment"):
        Target.named("aws", REPO_ROOT, env)


def test_local_target_has_one_environment() -> None:
    """The local target is this machine: --env is refused there rather than silently ignored."""
    with pytest.raises(DeployError, match="environments are for the aws target"):
        Target.named("local", REPO_ROOT, "staging")


def test_backend_is_encrypted_and_locked() -> None:
    """The S3 backend settings every deploy passes: encryption and the lock file on."""
    config = s3_backend_config(state_bucket_name("123456789012", "eu-west-1"), "k", "eu-west-1")

    assert config == {
        "bucket": "eventstate-tfstate-123456789012-eu-west-1",
        "key": "k",
        "region": "eu-west-1",
        "encrypt": "true",
        "use_lockfile": "true",
    }
