"""`python -m eventstate.deploy {plan,deploy,destroy,rollback} [aws|local]`: what the nox sessions run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eventstate.deploy.session import (
    DEFAULT_ENV,
    TARGETS,
    DeployError,
    Target,
    deploy,
    destroy,
    plan,
    rollback,
    state,
)
from eventstate.deploy.terraform import TerraformError


def main(argv: list[str] | None = None) -> int:
    """Run one deployment command; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m eventstate.deploy")
    parser.add_argument("command", choices=("plan", "deploy", "destroy", "rollback", "state"))
    parser.add_argument("target", nargs="?", default="aws", choices=TARGETS)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the eventstate checkout")
    parser.add_argument(
        "--build-command", help="command that builds eventstate:latest (default: nox -s image)"
    )
    parser.add_argument("--ready-timeout", type=float, help="seconds to wait for /health/ready")
    parser.add_argument(
        "--to", help="rollback: the image tag, reference or id to run (default: the previous one)"
    )
    parser.add_argument(
        "--env", default=DEFAULT_ENV, help="environment (aws): its own state key, names, tags, env/ENV.tfvars"
    )
    args = parser.parse_args(argv)
    try:
        target = Target.named(args.target, args.root, args.env)
        if args.command == "state":
            state(target)
        elif args.command == "plan":
            plan(target)
        elif args.command == "deploy":
            deploy(target, build_command=args.build_command, ready_timeout=args.ready_timeout)
        elif args.command == "rollback":
            rollback(target, to=args.to, ready_timeout=args.ready_timeout)
        else:
            destroy(target)
    except (DeployError, TerraformError) as e:
        print(f"{args.command} {args.target} failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
