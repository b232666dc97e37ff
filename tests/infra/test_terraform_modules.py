"""The Terraform modules themselves: their `terraform test` suites and the rendered user data."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _terraform import REPO_ROOT, provider_cli_config, terraform_executable, unavailable

from eventstate.deploy.terraform import Terraform

USER_DATA_VARIABLES = {
    "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/eventstate:0.1.0-0123456789ab",
    "data_volume_id": "vol-0123456789abcdef0",
    "api_keys_parameter": "/eventstate/api-keys",
    "aws_region": "eu-west-1",
    "registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    "tls_sites": ["203.0.113.10"],
    "ca_parameter": "/eventstate/tls-root-ca",
}


@pytest.fixture
def rendered_user_data(tmp_path: Path) -> str:
    """The user data exactly as the AWS module hands it to EC2, rendered by real Terraform."""
    root = tmp_path / "root"
    root.mkdir()
    # A relative source is used in place; an absolute one would be copied away from bootstrap/.
    source = json.dumps(os.path.relpath(REPO_ROOT / "infra" / "modules" / "user-data", root))
    arguments = "\n".join(f"  {k} = {json.dumps(v)}" for k, v in USER_DATA_VARIABLES.items())
    (root / "main.tf").write_text(
        'terraform {\n  backend "local" {}\n}\n'
        f'module "user_data" {{\n  source = {source}\n{arguments}\n}}\n'
        'output "rendered" {\n  value = module.user_data.rendered\n}\n'
    )
    tf = Terraform(root, tmp_path / "state", executable=terraform_executable())
    tf.init()
    tf.apply(tf.plan({}), stream=False)
    return str(tf.outputs()["rendered"])


@pytest.mark.terraform
def test_user_data_module_suite_passes(tmp_path: Path) -> None:
    """infra/modules/user-data's `terraform test` suite passes (provider-free)."""
    tf = Terraform(
        REPO_ROOT / "infra" / "modules" / "user-data",
        tmp_path,
        executable=terraform_executable(),
    )
    tf.init(backend=False)

    assert "0 failed" in tf.test()


@pytest.mark.terraform
def test_aws_module_validation_suite_passes(tmp_path: Path) -> None:
    """infra/aws's variable-validation suite passes against the mocked aws provider."""
    config = provider_cli_config(tmp_path / "cli")
    tf = Terraform(
        REPO_ROOT / "infra" / "aws",
        tmp_path / "state",
        executable=terraform_executable(),
        env={"TF_CLI_CONFIG_FILE": str(config)},
    )
    tf.init(backend=False)

    assert "0 failed" in tf.test()


@pytest.mark.terraform
def test_rendered_user_data_is_shellcheck_clean(rendered_user_data: str, tmp_path: Path) -> None:
    """The rendered user data, not just its template, passes shellcheck."""
    if shutil.which("shellcheck") is None:
        unavailable("shellcheck is not installed (apt-get install shellcheck)")
    script = tmp_path / "user-data.sh"
    script.write_text(rendered_user_data)

    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout


@pytest.mark.terraform
def test_rendered_user_data_embeds_the_boot_script_verbatim(rendered_user_data: str) -> None:
    """The instance runs byte for byte the script the local target runs."""
    embedded = re.search(
        r"<<'EVENTSTATE_BOOT_SCRIPT'\n(.*)\nEVENTSTATE_BOOT_SCRIPT\n", rendered_user_data, re.S
    )

    assert embedded is not None
    assert (REPO_ROOT / "bootstrap" / "eventstate-boot.sh").read_text().rstrip("\n") == embedded.group(1)


@pytest.mark.terraform
def test_rendered_user_data_names_secret_parameter_not_keys(rendered_user_data: str) -> None:
    """User data points at the SSM parameter and the image; it carries no API key."""
    assert "EVENTSTATE_BOOT_API_KEYS_PARAMETER='/eventstate/api-keys'" in rendered_user_data
    assert f"EVENTSTATE_BOOT_IMAGE='{USER_DATA_VARIABLES['image']}'" in rendered_user_data
    assert "EVENTSTATE_API_KEYS=" not in rendered_user_data
