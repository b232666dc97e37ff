"""`python -m eventstate.deploy.lint`: terraform fmt -check and validate over the modules in infra/.

A module that needs hashicorp/aws is validated only where the provider can be installed (a
filesystem mirror on this machine, or the registry); without one it is reported as skipped, unless
EVENTSTATE_REQUIRE_TERRAFORM=1 makes that a failure.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from eventstate.deploy.terraform import Terraform, TerraformError, cli_config, find_provider_mirror

MODULES = ("infra/modules/user-data", "infra/local", "infra/local-ha", "infra/aws")
REQUIRE_ENV = "EVENTSTATE_REQUIRE_TERRAFORM"


def main(root: Path) -> int:
    """Check formatting and validity of the modules under ROOT; return the exit code."""
    failures = 0
    with tempfile.TemporaryDirectory(prefix="eventstate-lint-") as scratch:
        env: dict[str, str] = {}
        mirror = find_provider_mirror()
        if mirror is not None:
            config = Path(scratch) / "terraform.rc"
            config.write_text(cli_config(mirror))
            env["TF_CLI_CONFIG_FILE"] = str(config)
        fmt = Terraform(root / "infra", Path(scratch) / "fmt", env=env)
        try:
            fmt.fmt_check()
            print("terraform fmt: clean")
        except TerraformError as e:
            print(f"terraform fmt: {e}", file=sys.stderr)
            failures += 1
        for module in MODULES:
            tf = Terraform(root / module, Path(scratch) / module.replace("/", "-"), env=env)
            try:
                tf.init(backend=False)
            except TerraformError as e:
                if os.environ.get(REQUIRE_ENV) == "1" or "hashicorp/aws" not in str(e):
                    print(f"{module}: {e}", file=sys.stderr)
                    failures += 1
                else:
                    print(f"{module}: validate skipped, hashicorp/aws cannot be installed here")
                continue
            try:
                tf.validate()
                print(f"{module}: valid")
            except TerraformError as e:
                print(f"{module}: {e}", file=sys.stderr)
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path.cwd()))
