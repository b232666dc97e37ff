#!/usr/bin/env bash
# Bring the eventstate container up (default) or down on this host.
#
# The same script runs as EC2 user data (rendered by bootstrap/user-data.sh.tftpl, which sets the
# EVENTSTATE_BOOT_* variables below) and on the operator's own machine for the `local` target
# (infra/local runs it through a local-exec provisioner). Every step is idempotent: running it again
# on a configured host changes nothing.
#
# The app container listens only on a private Docker network; Caddy, run from the same image as a
# second container, is the only thing published: HTTPS on HOST_PORT (and HTTP on HTTP_PORT, which
# only redirects and answers ACME challenges). A new image replaces the app container, never the data.
#
# Parameters (environment):
#   EVENTSTATE_BOOT_IMAGE              image reference to run (required unless IMAGE_PARAMETER)
#   EVENTSTATE_BOOT_IMAGE_PARAMETER    SSM parameter the image reference is read from (optional)
#   EVENTSTATE_BOOT_CONTAINER_NAME     container name (default eventstate; Caddy runs as NAME-tls)
#   EVENTSTATE_BOOT_HOST_ADDRESS       address the published ports bind to (default 0.0.0.0)
#   EVENTSTATE_BOOT_HOST_PORT          published HTTPS port (default 443)
#   EVENTSTATE_BOOT_HTTP_PORT          published HTTP port for redirects and ACME (default: none)
#   EVENTSTATE_BOOT_TLS_SITES          names/addresses served, space-separated (required)
#   EVENTSTATE_BOOT_TLS_ISSUER         internal (Caddy's own CA) or acme (Let's Encrypt, HSTS)
#   EVENTSTATE_BOOT_ACME_EMAIL         contact for the ACME account (optional)
#   EVENTSTATE_BOOT_TLS_DIR            host directory for Caddy's keys and certificates
#   EVENTSTATE_BOOT_CA_FILE            where to copy the internal root certificate (optional)
#   EVENTSTATE_BOOT_CA_PARAMETER       SSM parameter to publish that certificate to (optional)
#   EVENTSTATE_BOOT_RELEASES_FILE      history of images that became ready, for rollback (optional)
#   EVENTSTATE_BOOT_LOG_GROUP          CloudWatch Logs group for both containers (optional)
#   EVENTSTATE_BOOT_METRICS_NAMESPACE  CloudWatch namespace `report` sends Ready and disk use to
#   EVENTSTATE_BOOT_DATA_DIR           host directory mounted at /data (required)
#   EVENTSTATE_BOOT_DATA_VOLUME_ID     EBS volume id to format-if-blank and mount at DATA_DIR (optional)
#   EVENTSTATE_BOOT_API_KEYS_FILE      host file with one API key per line, mounted read-only (required)
#   EVENTSTATE_BOOT_API_KEYS_PARAMETER SSM SecureString the keys file is fetched from (optional)
#   EVENTSTATE_BOOT_AWS_REGION         region for SSM and ECR calls (needed with PARAMETER or REGISTRY)
#   EVENTSTATE_BOOT_REGISTRY           ECR registry host to log in to before pulling (optional)
#   EVENTSTATE_BOOT_INSTALL_DOCKER     1 to install and enable Docker with dnf (Amazon Linux 2023)
#   EVENTSTATE_BOOT_PULL               1 to pull the image (0 for an image built on this host)
#   EVENTSTATE_BOOT_LOG_FILE           where this script logs (default /var/log/eventstate-boot.log)
#   EVENTSTATE_BOOT_READY_TIMEOUT      seconds to wait for the app to be healthy (default 300)
#   EVENTSTATE_BOOT_REMOVE_ON_FAILURE  1 to remove the container when it never gets healthy
#   EVENTSTATE_BOOT_REPLICA_URL        s3://BUCKET/PREFIX to replicate to and restore from (optional)
#   EVENTSTATE_BOOT_REPLICA_ENDPOINT   endpoint of an S3-compatible store (optional; AWS S3 if empty)
set -euo pipefail

readonly CONTAINER_PORT=5000
readonly CONTAINER_KEYS_FILE=/run/secrets/eventstate-api-keys

action="${1:-up}"
name="${EVENTSTATE_BOOT_CONTAINER_NAME:-eventstate}"
proxy="${name}-tls"
network="${name}-net"
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
    docker run --rm --no-healthcheck --entrypoint id "$1" -u
}

log_options() {
    # log_options STREAM: Docker's awslogs driver when a log group is configured.
    if [[ -n "${EVENTSTATE_BOOT_LOG_GROUP:-}" ]]; then
        printf '%s\n' --log-driver awslogs --log-opt "awslogs-region=${EVENTSTATE_BOOT_AWS_REGION:-}" \
            --log-opt "awslogs-group=${EVENTSTATE_BOOT_LOG_GROUP}" --log-opt "awslogs-stream=$1"
    fi
}

digest_of() {
    printf '%s\n' "$@" | sha256sum | cut -c1-32
}

running_label() {
    # running_label CONTAINER: "<boot-config label> <running?>", empty when there is no such container.
    docker inspect --format '{{index .Config.Labels "eventstate.boot-config"}} {{.State.Running}}' \
        "$1" 2>/dev/null || true
}

app_health() {
    docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' \
        "$name" 2>/dev/null || printf 'missing\n'
}

wait_app_healthy() {
    # The image's own HEALTHCHECK (GET /health/ready inside the container) decides readiness.
    local timeout="$1" deadline status
    deadline=$((SECONDS + timeout))
    log "waiting up to ${timeout}s for $name to be healthy"
    until [[ "$(app_health)" == healthy ]]; do
        # A container that exited or was restarted after a crash will not become healthy by waiting.
        status="$(docker inspect --format '{{.State.Status}} {{.RestartCount}}' "$name" 2>/dev/null ||
            printf 'missing 0')"
        if ((SECONDS >= deadline)) || [[ "$status" != "running 0" && "$status" != "created 0" ]]; then
            docker logs --tail 30 "$name" 2>&1 || true
            return 1
        fi
        sleep 1
    done
    log "healthy: $name"
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

start_app() {
    # start_app IMAGE: replace the app container by one of IMAGE on the private network only.
    local image="$1" digest="$2" logging
    mapfile -t logging < <(log_options "$name")
    docker rm --force "$name" >/dev/null 2>&1 || true
    log "starting $name from $image"
    docker run --detach --name "$name" "${logging[@]}" \
        --restart unless-stopped \
        --label "eventstate.boot-config=$digest" \
        --network "$network" --network-alias app \
        --health-interval 1s --health-start-period 60s \
        --cap-drop ALL --security-opt no-new-privileges \
        --volume "${data_dir}:/data" \
        --volume "${keys_file}:${CONTAINER_KEYS_FILE}:ro" \
        --env "EVENTSTATE_API_KEYS_FILE=${CONTAINER_KEYS_FILE}" \
        "${replica_args[@]}" \
        "$image" >/dev/null
}

caddyfile() {
    # The TLS terminator's configuration: HTTPS for SITES, HTTP only to redirect (and for ACME).
    local site sites="" first=""
    for site in $tls_sites; do
        sites+="${sites:+, }https://${site}"
        first="${first:-$site}"
    done
    printf '{\n\tadmin off\n\tpersist_config off\n\tservers {\n\t\tprotocols h1 h2\n\t}\n'
    # Caddy's own log (a failed proxy attempt logs the request) leaves the client's API key out.
    printf '\tlog default {\n\t\toutput stderr\n\t\tformat filter {\n\t\t\twrap json\n'
    printf '\t\t\trequest>headers>X-Api-Key delete\n\t\t}\n\t}\n'
    if [[ "$tls_issuer" == internal ]]; then
        printf '\tskip_install_trust\n\tdefault_sni %s\n' "$first"
    elif [[ -n "$acme_email" ]]; then
        printf '\temail %s\n' "$acme_email"
    fi
    printf '}\n%s {\n' "$sites"
    if [[ "$tls_issuer" == internal ]]; then
        printf '\ttls internal\n'
    else
        printf '\theader Strict-Transport-Security "max-age=31536000; includeSubDomains"\n'
    fi
    # The JSON access log (status per request) is what the 5xx-rate alarm counts; the API key a
    # client sent is left out of it.
    printf '\tlog {\n\t\toutput stdout\n\t\tformat filter {\n\t\t\twrap json\n'
    printf '\t\t\trequest>headers>X-Api-Key delete\n\t\t}\n\t}\n'
    printf '\treverse_proxy app:%s\n}\n' "$CONTAINER_PORT"
}

start_proxy() {
    local image="$1" uid="$2" digest image_id published=() logging
    mapfile -t logging < <(log_options "$proxy")
    mkdir -p "$tls_dir"
    caddyfile >"$tls_dir/Caddyfile.new"
    mv "$tls_dir/Caddyfile.new" "$tls_dir/Caddyfile"
    chown -R "$uid" "$tls_dir"
    chmod 0700 "$tls_dir"
    published=(--publish "${host_address}:${host_port}:443")
    if [[ -n "$http_port" ]]; then
        published+=(--publish "${host_address}:${http_port}:80")
    fi
    image_id="$(docker image inspect --format '{{.Id}}' "$image")"
    digest="$(digest_of "$image_id" "$(cat "$tls_dir/Caddyfile")" "${published[@]}" "$network" "${logging[@]}")"
    if [[ "$(running_label "$proxy")" == "$digest true" ]]; then
        log "TLS terminator $proxy already runs this configuration"
        return
    fi
    docker rm --force "$proxy" >/dev/null 2>&1 || true
    log "starting TLS terminator $proxy on ${host_address}:${host_port} for: $tls_sites ($tls_issuer)"
    # The same image carries Caddy; it binds 80/443 inside its own network namespace as non-root.
    docker run --detach --name "$proxy" "${logging[@]}" \
        --restart unless-stopped --no-healthcheck \
        --label "eventstate.boot-config=$digest" \
        --network "$network" "${published[@]}" \
        --sysctl net.ipv4.ip_unprivileged_port_start=80 \
        --cap-drop ALL --security-opt no-new-privileges \
        --volume "${tls_dir}:/data" \
        --env XDG_DATA_HOME=/data/data --env XDG_CONFIG_HOME=/data/config \
        --entrypoint caddy \
        "$image" run --config /data/Caddyfile --adapter caddyfile >/dev/null
}

publish_root_ca() {
    # With the internal issuer, clients trust Caddy's root certificate: copy it out (and to SSM).
    local root="$tls_dir/data/caddy/pki/authorities/local/root.crt" deadline=$((SECONDS + 60))
    until [[ -s "$root" ]]; do
        ((SECONDS < deadline)) || die "the TLS terminator never created its root certificate"
        sleep 1
    done
    if [[ -n "$ca_file" ]]; then
        install -m 0644 "$root" "$ca_file"
        log "root certificate: $ca_file"
    fi
    if [[ -n "$ca_parameter" ]]; then
        retry 10 6 aws ssm put-parameter --region "$region" --name "$ca_parameter" --type String \
            --overwrite --value "file://$root" >/dev/null || die "cannot publish the root certificate"
        log "root certificate published to SSM parameter $ca_parameter"
    fi
}

wait_through_tls() {
    # End to end through the terminator, verifying its certificate (internal issuer only: an ACME
    # certificate may wait for DNS, which is no reason to call the service down).
    local site="${tls_sites%% *}" probe="$host_address" deadline=$((SECONDS + 60))
    [[ "$probe" == 0.0.0.0 ]] && probe=127.0.0.1
    until curl -fs -o /dev/null --max-time 5 --cacert "$tls_dir/data/caddy/pki/authorities/local/root.crt" \
        --connect-to "${site}:${host_port}:${probe}:${host_port}" "https://${site}:${host_port}/health/ready"; do
        ((SECONDS < deadline)) || die "https://${site}:${host_port}/health/ready did not answer"
        sleep 1
    done
    log "ready: https://${site}:${host_port}"
}

record_release() {
    # One line per image that became ready: "<time> <image id> <image reference>".
    [[ -n "$releases_file" ]] || return 0
    mkdir -p "$(dirname "$releases_file")"
    local last
    last="$(tail -n 1 "$releases_file" 2>/dev/null | cut -d' ' -f2 || true)"
    if [[ "$last" != "$1" ]]; then
        printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" >>"$releases_file"
    fi
}

up() {
    local image="${EVENTSTATE_BOOT_IMAGE:-}"
    host_address="${EVENTSTATE_BOOT_HOST_ADDRESS:-0.0.0.0}"
    host_port="${EVENTSTATE_BOOT_HOST_PORT:-443}"
    http_port="${EVENTSTATE_BOOT_HTTP_PORT:-}"
    data_dir="${EVENTSTATE_BOOT_DATA_DIR:?EVENTSTATE_BOOT_DATA_DIR is required}"
    keys_file="${EVENTSTATE_BOOT_API_KEYS_FILE:?EVENTSTATE_BOOT_API_KEYS_FILE is required}"
    tls_sites="${EVENTSTATE_BOOT_TLS_SITES:?EVENTSTATE_BOOT_TLS_SITES is required}"
    tls_sites="${tls_sites//,/ }"
    tls_issuer="${EVENTSTATE_BOOT_TLS_ISSUER:-internal}"
    acme_email="${EVENTSTATE_BOOT_ACME_EMAIL:-}"
    tls_dir="${EVENTSTATE_BOOT_TLS_DIR:-/var/lib/eventstate/tls}"
    ca_file="${EVENTSTATE_BOOT_CA_FILE:-}"
    ca_parameter="${EVENTSTATE_BOOT_CA_PARAMETER:-}"
    releases_file="${EVENTSTATE_BOOT_RELEASES_FILE:-}"
    region="${EVENTSTATE_BOOT_AWS_REGION:-}"
    local volume_id="${EVENTSTATE_BOOT_DATA_VOLUME_ID:-}"
    local parameter="${EVENTSTATE_BOOT_API_KEYS_PARAMETER:-}"
    local registry="${EVENTSTATE_BOOT_REGISTRY:-}"
    local timeout="${EVENTSTATE_BOOT_READY_TIMEOUT:-300}"
    [[ "$tls_issuer" == internal || "$tls_issuer" == acme ]] ||
        die "EVENTSTATE_BOOT_TLS_ISSUER must be internal or acme, not $tls_issuer"
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
    if [[ -n "${EVENTSTATE_BOOT_IMAGE_PARAMETER:-}" ]]; then
        image="$(retry 20 6 aws ssm get-parameter --region "$region" \
            --name "$EVENTSTATE_BOOT_IMAGE_PARAMETER" --query Parameter.Value --output text)" ||
            die "cannot read SSM parameter $EVENTSTATE_BOOT_IMAGE_PARAMETER"
    fi
    [[ -n "$image" ]] || die "no image: set EVENTSTATE_BOOT_IMAGE or EVENTSTATE_BOOT_IMAGE_PARAMETER"
    [[ -s "$keys_file" ]] || die "API keys file $keys_file is missing or empty"

    if [[ -n "$registry" ]]; then
        registry_login "$registry" "$region"
    fi
    if [[ "${EVENTSTATE_BOOT_PULL:-1}" == 1 ]]; then
        log "pulling $image"
        retry 60 10 docker pull --quiet "$image" >/dev/null || die "cannot pull $image"
    fi
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image is not on this host"

    # The containers run as a non-root uid: it must own its data and be able to read its keys.
    local uid image_id digest previous
    uid="$(container_uid "$image")"
    chown "$uid" "$data_dir" "$keys_file"
    chmod 0700 "$data_dir"
    chmod 0400 "$keys_file"

    docker network inspect "$network" >/dev/null 2>&1 ||
        docker network create --driver bridge "$network" >/dev/null

    image_id="$(docker image inspect --format '{{.Id}}' "$image")"
    restore_if_empty "$image" "$uid"
    digest="$(digest_of "$image_id" "$name" "$network" "$data_dir" "$keys_file" "${EVENTSTATE_BOOT_LOG_GROUP:-}" \
        "$replica_url" "$replica_endpoint")"
    if [[ "$(running_label "$name")" == "$digest true" ]]; then
        log "container $name already runs this configuration"
    else
        # Upgrade in place: the data directory stays, only the container is replaced. If the new
        # image never becomes healthy, the image that ran before is started again.
        previous="$(docker inspect --format '{{.Image}}' "$name" 2>/dev/null || true)"
        start_app "$image" "$digest"
        if ! wait_app_healthy "$timeout"; then
            if [[ -n "$previous" && "$previous" != "$image_id" ]]; then
                log "rolling back: $image never became healthy; starting $previous again"
                start_app "$previous" "$(digest_of "$previous" "$name" "$network" "$data_dir" "$keys_file" \
                    "${EVENTSTATE_BOOT_LOG_GROUP:-}" "$replica_url" "$replica_endpoint")"
                wait_app_healthy "$timeout" || die "the previous image $previous is not healthy either"
                start_proxy "$previous" "$uid"
                die "$image never became healthy; rolled back to $previous"
            fi
            if [[ "${EVENTSTATE_BOOT_REMOVE_ON_FAILURE:-0}" == 1 ]]; then
                # Terraform runs no destroy provisioner for a resource whose creation failed.
                docker rm --force "$name" >/dev/null 2>&1 || true
            fi
            die "$name did not become healthy within ${timeout}s"
        fi
    fi

    start_proxy "$image" "$uid"
    if [[ "$tls_issuer" == internal ]]; then
        publish_root_ca
        wait_through_tls
    fi
    record_release "$image_id" "$image"
}

down() {
    # Removes the containers and their network; the data directory and keys stay, as an EBS volume
    # would.
    local container
    for container in "$proxy" "$name"; do
        if docker inspect "$container" >/dev/null 2>&1; then
            log "removing container $container"
            docker rm --force "$container" >/dev/null
        fi
    done
    docker network rm "$network" >/dev/null 2>&1 || true
}

replica_lag() {
    # The app's own eventstate_replica_lag_seconds from /metrics, read inside its container (the
    # app port is never published); empty when replication is off or the app does not answer.
    docker exec "$name" /opt/eventstate/bin/python -c '
import os, urllib.request
request = urllib.request.Request("http://127.0.0.1:5000/metrics")
keys = os.environ.get("EVENTSTATE_API_KEYS_FILE")
if keys:
    with open(keys) as f:
        request.add_header("X-API-KEY", f.readline().strip())
for line in urllib.request.urlopen(request, timeout=5).read().decode().splitlines():
    if line.startswith("eventstate_replica_lag_seconds "):
        print(line.split()[1])
' 2>/dev/null || true
}

report() {
    # Readiness (the app container's health check) and data disk use, as CloudWatch metrics.
    local namespace="${EVENTSTATE_BOOT_METRICS_NAMESPACE:?EVENTSTATE_BOOT_METRICS_NAMESPACE is required}"
    local data_dir="${EVENTSTATE_BOOT_DATA_DIR:?EVENTSTATE_BOOT_DATA_DIR is required}" ready=0 used
    [[ "$(app_health)" == healthy ]] && ready=1
    used="$(df --output=pcent "$data_dir" | tail -n 1 | tr -dc '0-9')"
    local data=("MetricName=Ready,Value=${ready},Unit=Count"
        "MetricName=DataDiskUsedPercent,Value=${used:-0},Unit=Percent")
    local lag
    lag="$(replica_lag)"
    if [[ -n "$lag" ]]; then
        data+=("MetricName=ReplicaLagSeconds,Value=${lag},Unit=Seconds")
    fi
    aws cloudwatch put-metric-data --region "${EVENTSTATE_BOOT_AWS_REGION:?}" --namespace "$namespace" \
        --metric-data "${data[@]}"
}

case "$action" in
up) up ;;
down) down ;;
report) report ;;
*) die "usage: $0 [up|down|report]" ;;
esac
