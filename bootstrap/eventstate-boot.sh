#!/usr/bin/env bash
# Bring the eventstate container up (default) or down on this host.
#
# The same script runs as EC2 user data (rendered by bootstrap/user-data.sh.tftpl, which sets the
# EVENTSTATE_BOOT_* variables below) and on the operator's own machine for the `local` target
# (infra/local runs it through a local-exec provisioner). Every step is idempotent: running it again
# on a configured host changes nothing.
#
# Parameters (environment):
#   EVENTSTATE_BOOT_IMAGE              image reference to run (required)
#   EVENTSTATE_BOOT_CONTAINER_NAME     container name (default eventstate)
#   EVENTSTATE_BOOT_HOST_ADDRESS       address the published port binds to (default 0.0.0.0)
#   EVENTSTATE_BOOT_HOST_PORT          published port (default 5000)
#   EVENTSTATE_BOOT_DATA_DIR           host directory mounted at /data (required)
#   EVENTSTATE_BOOT_DATA_VOLUME_ID     EBS volume id to format-if-blank and mount at DATA_DIR (optional)
#   EVENTSTATE_BOOT_API_KEYS_FILE      host file with one API key per line, mounted read-only (required)
#   EVENTSTATE_BOOT_API_KEYS_PARAMETER SSM SecureString the keys file is fetched from (optional)
#   EVENTSTATE_BOOT_AWS_REGION         region for SSM and ECR calls (needed with PARAMETER or REGISTRY)
#   EVENTSTATE_BOOT_REGISTRY           ECR registry host to log in to before pulling (optional)
#   EVENTSTATE_BOOT_INSTALL_DOCKER     1 to install and enable Docker with dnf (Amazon Linux 2023)
#   EVENTSTATE_BOOT_PULL               1 to pull the image (0 for an image built on this host)
#   EVENTSTATE_BOOT_LOG_FILE           where this script logs (default /var/log/eventstate-boot.log)
#   EVENTSTATE_BOOT_READY_TIMEOUT      seconds to wait for /health/ready (default 300)
#   EVENTSTATE_BOOT_REMOVE_ON_FAILURE  1 to remove the container when it never gets ready
#   EVENTSTATE_BOOT_REPLICA_URL        s3://BUCKET/PREFIX to replicate to and restore from (optional)
#   EVENTSTATE_BOOT_REPLICA_ENDPOINT   endpoint of an S3-compatible store (optional; AWS S3 if empty)
set -euo pipefail

readonly CONTAINER_PORT=5000
readonly CONTAINER_KEYS_FILE=/run/secrets/eventstate-api-keys

action="${1:-up}"
name="${EVENTSTATE_BOOT_CONTAINER_NAME:-eventstate}"
log_file="${EVENTSTATE_BOOT_LOG_FILE:-/var/log/eventstate-boot.log}"

mkdir -p "$(dirname "$log_file")"
exec > >(tee -a "$log_file") 2>&1

log() {
    printf '%s eventstate-boot[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$action" "$*"
}

die() {
    log "error: $*"
    exit 1
}

retry() {
    # retry ATTEMPTS DELAY COMMAND...: the network and the AWS APIs may lag behind boot.
    local attempts="$1" delay="$2" n=1
    shift 2
    until "$@"; do
        if ((n >= attempts)); then
            return 1
        fi
        n=$((n + 1))
        sleep "$delay"
    done
}

install_docker() {
    if ! command -v docker >/dev/null 2>&1; then
        log "installing Docker"
        retry 10 6 dnf install -y docker
    fi
    systemctl enable --now docker
}

wait_for_docker() {
    retry 30 2 docker info >/dev/null 2>&1 || die "the Docker engine is not reachable"
}

volume_device() {
    # An attached EBS volume appears on Nitro instances as an NVMe device whose by-id name carries
    # the volume id without its dash; older instance types expose the attachment name instead.
    local volume_id="$1"
    local by_id="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volume_id//-/}"
    local candidate
    for candidate in "$by_id" /dev/sdf /dev/xvdf; do
        if [[ -b "$candidate" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

mount_data_volume() {
    local volume_id="$1" data_dir="$2" device
    log "waiting for data volume $volume_id"
    device="$(retry 120 5 volume_device "$volume_id")" || die "data volume $volume_id never appeared"
    if ! blkid "$device" >/dev/null 2>&1; then
        log "formatting blank data volume $device"
        mkfs.xfs -L eventstate-data "$device"
    fi
    mkdir -p "$data_dir"
    if ! grep -qs " ${data_dir} " /etc/fstab; then
        printf '%s %s xfs defaults,nofail 0 2\n' "$device" "$data_dir" >>/etc/fstab
    fi
    if ! mountpoint -q "$data_dir"; then
        mount "$data_dir"
    fi
}

fetch_api_keys() {
    local parameter="$1" region="$2" keys_file="$3" value
    log "reading API keys from SSM parameter $parameter"
    value="$(retry 20 6 aws ssm get-parameter --region "$region" --name "$parameter" \
        --with-decryption --query Parameter.Value --output text)" ||
        die "cannot read SSM parameter $parameter"
    mkdir -p "$(dirname "$keys_file")"
    (
        umask 077
        printf '%s\n' "$value" >"$keys_file"
    )
}

ecr_login_once() {
    aws ecr get-login-password --region "$1" |
        docker login --username AWS --password-stdin "$2" >/dev/null
}

registry_login() {
    local registry="$1" region="$2"
    log "logging in to $registry"
    retry 20 6 ecr_login_once "$region" "$registry" || die "cannot log in to $registry"
}

container_uid() {
    docker run --rm --entrypoint id "$1" -u
}

config_digest() {
    # Everything that shapes the running container; a change means the container is replaced.
    local image_id="$1"
    printf '%s\n' "$image_id" "$name" "$host_address" "$host_port" "$data_dir" "$keys_file" \
        "$replica_url" "$replica_endpoint" |
        sha256sum | cut -c1-32
}

# ---- restore before serve (replication) --------------------------------------------------------
# On an empty data volume (a replaced instance, another availability zone), bring the log back
# from its replica before the service starts, so that it never begins a new, empty log beside it.
# "No replica yet" (a first boot) starts fresh; any other failure stops the boot: serving an empty
# log while a replica exists but cannot be read would fork the history.
replica_args=()

replica_container_args() {
    replica_args=()
    if [[ -n "$replica_url" ]]; then
        replica_args=(--env "EVENTSTATE_REPLICA_URL=${replica_url}")
        if [[ -n "$replica_endpoint" ]]; then
            replica_args+=(--env "EVENTSTATE_REPLICA_ENDPOINT=${replica_endpoint}")
        fi
        if [[ -n "$region" ]]; then
            replica_args+=(--env "AWS_REGION=${region}")
        fi
    fi
}

restore_if_empty() {
    local image="$1" uid="$2" output status
    [[ -n "$replica_url" ]] || return 0
    if [[ -e "${data_dir}/eventstate.db" ]]; then
        log "the data volume already holds a log; no restore"
        return 0
    fi
    log "empty data volume: restoring the log from $replica_url"
    status=0
    output="$(docker run --rm --user "$uid" --cap-drop ALL --security-opt no-new-privileges \
        --volume "${data_dir}:/data" "${replica_args[@]}" \
        "$image" restore --replica "$replica_url" --database /data/eventstate.db 2>&1)" || status=$?
    log "$output"
    if ((status == 0)); then
        log "restored the log from $replica_url"
    elif [[ "$output" == *"no replica at"* ]]; then
        log "no replica at $replica_url yet: starting a new log"
    else
        die "cannot restore from $replica_url (exit $status); refusing to start an empty log beside it"
    fi
}
# ---- end of restore before serve ---------------------------------------------------------------

wait_until_ready() {
    local url="$1" timeout="$2" deadline
    deadline=$((SECONDS + timeout))
    log "waiting up to ${timeout}s for $url"
    until curl -fs -o /dev/null --max-time 5 "$url"; do
        if ((SECONDS >= deadline)); then
            docker logs --tail 50 "$name" || true
            if [[ "${EVENTSTATE_BOOT_REMOVE_ON_FAILURE:-0}" == 1 ]]; then
                # Terraform runs no destroy provisioner for a resource whose creation failed, so a
                # failed `up` must not leave a container restarting behind it.
                docker rm --force "$name" >/dev/null 2>&1 || true
            fi
            die "$url did not answer within ${timeout}s"
        fi
        sleep 2
    done
    log "ready: $url"
}

up() {
    local image="${EVENTSTATE_BOOT_IMAGE:?EVENTSTATE_BOOT_IMAGE is required}"
    host_address="${EVENTSTATE_BOOT_HOST_ADDRESS:-0.0.0.0}"
    host_port="${EVENTSTATE_BOOT_HOST_PORT:-5000}"
    data_dir="${EVENTSTATE_BOOT_DATA_DIR:?EVENTSTATE_BOOT_DATA_DIR is required}"
    keys_file="${EVENTSTATE_BOOT_API_KEYS_FILE:?EVENTSTATE_BOOT_API_KEYS_FILE is required}"
    local volume_id="${EVENTSTATE_BOOT_DATA_VOLUME_ID:-}"
    local parameter="${EVENTSTATE_BOOT_API_KEYS_PARAMETER:-}"
    local region="${EVENTSTATE_BOOT_AWS_REGION:-}"
    local registry="${EVENTSTATE_BOOT_REGISTRY:-}"
    local timeout="${EVENTSTATE_BOOT_READY_TIMEOUT:-300}"
    replica_url="${EVENTSTATE_BOOT_REPLICA_URL:-}"
    replica_endpoint="${EVENTSTATE_BOOT_REPLICA_ENDPOINT:-}"
    replica_container_args

    if [[ "${EVENTSTATE_BOOT_INSTALL_DOCKER:-0}" == 1 ]]; then
        install_docker
    fi
    wait_for_docker

    if [[ -n "$volume_id" ]]; then
        mount_data_volume "$volume_id" "$data_dir"
    fi
    mkdir -p "$data_dir"

    if [[ -n "$parameter" ]]; then
        fetch_api_keys "$parameter" "$region" "$keys_file"
    fi
    [[ -s "$keys_file" ]] || die "API keys file $keys_file is missing or empty"

    if [[ -n "$registry" ]]; then
        registry_login "$registry" "$region"
    fi
    if [[ "${EVENTSTATE_BOOT_PULL:-1}" == 1 ]]; then
        log "pulling $image"
        retry 60 10 docker pull --quiet "$image" >/dev/null || die "cannot pull $image"
    fi
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image is not on this host"

    # The container runs as a non-root uid: it must own its data and be able to read its keys.
    local uid
    uid="$(container_uid "$image")"
    chown "$uid" "$data_dir" "$keys_file"
    chmod 0700 "$data_dir"
    chmod 0400 "$keys_file"
    restore_if_empty "$image" "$uid"

    local digest running_digest
    digest="$(config_digest "$(docker image inspect --format '{{.Id}}' "$image")")"
    running_digest="$(docker inspect --format \
        '{{index .Config.Labels "eventstate.boot-config"}} {{.State.Running}}' "$name" 2>/dev/null || true)"
    if [[ "$running_digest" == "$digest true" ]]; then
        log "container $name already runs this configuration"
    else
        docker rm --force "$name" >/dev/null 2>&1 || true
        log "starting $name from $image on ${host_address}:${host_port}"
        docker run --detach --name "$name" \
            --restart unless-stopped \
            --label "eventstate.boot-config=$digest" \
            --cap-drop ALL --security-opt no-new-privileges \
            --publish "${host_address}:${host_port}:${CONTAINER_PORT}" \
            --volume "${data_dir}:/data" \
            --volume "${keys_file}:${CONTAINER_KEYS_FILE}:ro" \
            --env "EVENTSTATE_API_KEYS_FILE=${CONTAINER_KEYS_FILE}" \
            "${replica_args[@]}" \
            "$image" >/dev/null
    fi

    local probe_address="$host_address"
    if [[ "$probe_address" == 0.0.0.0 ]]; then
        probe_address=127.0.0.1
    fi
    wait_until_ready "http://${probe_address}:${host_port}/health/ready" "$timeout"
}

down() {
    # Stops and removes the container; the data directory and keys stay, as an EBS volume would.
    if docker inspect "$name" >/dev/null 2>&1; then
        log "removing container $name"
        docker rm --force "$name" >/dev/null
    else
        log "container $name is not present"
    fi
}

case "$action" in
up) up ;;
down) down ;;
*) die "usage: $0 [up|down]" ;;
esac
