"""The python-terraform adapter against the real terraform binary, on provider-free modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from _terraform import terraform_executable

from eventstate.deploy.terraform import (
    PROVIDER_SOURCE,
    Terraform,
    TerraformError,
    cli_config,
    find_provider_mirror,
)

MODULE = """
terraform {
  backend "local" {}
}

variable "greeting" {
  type = string
}

variable "names" {
  type = list(string)
}

resource "terraform_data" "hello" {
  input = "${var.greeting}, ${join(" and ", var.names)}"
}

output "message" {
  value = terraform_data.hello.output
}
"""


@pytest.fixture
def tf(tmp_path: Path) -> Terraform:
    module = tmp_path / "module"
    module.mkdir()
    (module / "main.tf").write_text(MODULE)
    adapter = Terraform(module, tmp_path / "state", executable=terraform_executable())
    adapter.init()
    return adapter


VARIABLES = {"greeting": "hello", "names": ["ada", "grace"]}


@pytest.mark.terraform
def test_plan_reports_changes_without_failing(tf: Terraform) -> None:
    """A plan with changes (exit 2 under -detailed-exitcode) is a result, not an error."""
    plan = tf.plan(VARIABLES)

    assert [(c.address, c.actions) for c in plan.changes] == [("terraform_data.hello", ("create",))]
    assert plan.counts() == {"create": 1, "update": 0, "replace": 0, "delete": 0}


@pytest.mark.terraform
def test_apply_saved_plan_then_outputs(tf: Terraform) -> None:
    """Applying the saved plan needs no prompt and passes list variables through intact."""
    tf.apply(tf.plan(VARIABLES), stream=False)

    assert tf.outputs() == {"message": "hello, ada and grace"}
    assert tf.resources() == ["terraform_data.hello"]


@pytest.mark.terraform
def test_second_plan_has_no_changes(tf: Terraform) -> None:
    """After apply, planning the same variables again changes nothing."""
    tf.apply(tf.plan(VARIABLES), stream=False)

    assert not tf.plan(VARIABLES).has_changes


@pytest.mark.terraform
def test_destroy_empties_state_and_is_idempotent(tf: Terraform) -> None:
    """destroy works on modern Terraform (no -force) and a second destroy still succeeds."""
    tf.apply(tf.plan(VARIABLES), stream=False)

    tf.destroy(VARIABLES, stream=False)
    tf.destroy(VARIABLES, stream=False)

    assert tf.resources() == []
    assert tf.outputs() == {}


@pytest.mark.terraform
def test_state_lives_in_the_state_directory(tf: Terraform) -> None:
    """The state file goes where the adapter was told, not into the module directory."""
    tf.apply(tf.plan(VARIABLES), stream=False)

    assert tf.state_file.exists()
    assert not (tf.module_dir / "terraform.tfstate").exists()


@pytest.mark.terraform
def test_failure_raises_with_terraform_message(tf: Terraform) -> None:
    """A failing command raises TerraformError carrying Terraform's own explanation."""
    with pytest.raises(TerraformError, match="greeting"):
        tf.plan({"names": []})


def test_mirror_found_under_a_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mirror laid out as Terraform's unpacked layout is found by searching a root."""
    monkeypatch.delenv("EVENTSTATE_TF_PROVIDER_MIRROR", raising=False)
    binary = tmp_path / "tf-plugins" / PROVIDER_SOURCE / "5.100.0" / "linux_amd64"
    binary.mkdir(parents=True)
    (binary / "terraform-provider-aws_v5.100.0_x5").write_bytes(b"")

    assert tmp_path / "tf-plugins" == find_provider_mirror(roots=[str(tmp_path)])


def test_mirror_env_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EVENTSTATE_TF_PROVIDER_MIRROR names the mirror without any search."""
    monkeypatch.setenv("EVENTSTATE_TF_PROVIDER_MIRROR", str(tmp_path))

    assert tmp_path == find_provider_mirror(roots=[])


def test_cli_config_limits_mirror_to_aws(tmp_path: Path) -> None:
    """The CLI configuration installs hashicorp/aws from the mirror and excludes it elsewhere."""
    text = cli_config(tmp_path)

    assert f'path    = "{tmp_path}"' in text
    assert f'exclude = ["{PROVIDER_SOURCE}"]' in text
