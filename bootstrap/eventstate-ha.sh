#!/usr/bin/env bash
# Bring the several-instance eventstate up (default) or down on this host: the `local-ha` target.
#
# What `up` runs, all on one private Docker network NAME-net, named by the prefix NAME:
#   NAME-db      Debian's PostgreSQL from a local image, as its postgres user, data in volume NAME-pgdata
#   NAME-1..N    eventstate instances of one image, all on that database (`eventstate init` runs first)
#   NAME-lb      Caddy from the same eventstate image: HTTPS with its internal CA, load balancing over
#                the instances with active health checks on /health/ready; the only published port
# Every step is idempotent. `down` removes the containers, the network and the database volume.
#
# Parameters (environment):
#   EVENTSTATE_HA_IMAGE            eventstate image to run (required)
#   EVENTSTATE_HA_POSTGRES_IMAGE   image with Debian's PostgreSQL 15 (required for up)
#   EVENTSTATE_HA_NAME             prefix of every container, network and volume (default eventstate-ha)
#   EVENTSTATE_HA_INSTANCES        number of eventstate containers (default 2)
#   EVENTSTATE_HA_HOST_ADDRESS     address the HTTPS port binds to (default 127.0.0.1)
#   EVENTSTATE_HA_HOST_PORT        published HTTPS port (default 5443)
#   EVENTSTATE_HA_STATE_DIR        host directory for the database password, Caddy's keys, the CA copy
#   EVENTSTATE_HA_API_KEYS_FILE    host file with one API key per line, mounted read-only (required)
#   EVENTSTATE_HA_READY_TIMEOUT    seconds to wait for each step to be ready (default 120)
#   EVENTSTATE_HA_LOG_FILE         where this script logs (default STATE_DIR/eventstate-ha.log)
set -euo pipefail

readonly CONTAINER_PORT=5000
readonly CONTAINER_KEYS_FILE=/run/secrets/eventstate-api-keys
# The volume is mounted over the postgres user's home, so it starts owned by that user.
readonly PG_HOME=/var/lib/postgresql
readonly PG_DATA=/var/lib/postgresql/cluster

action="${1:-up}"
name="${EVENTSTATE_HA_NAME:-eventstate-ha}"
state_dir="${EVENTSTATE_HA_STATE_DIR:?EVENTSTATE_HA_STATE_DIR is required}"
network="${name}-net"
db="${name}-db"
volume="${name}-pgdata"
lb="${name}-lb"
instances="${EVENTSTATE_HA_INSTANCES:-2}"
log_file="${EVENTSTATE_HA_LOG_FILE:-$state_dir/eventstate-ha.log}"

mkdir -p "$state_dir" "$(dirname "$log_file")"
exec > >(tee -a "$log_file") 2>&1

log() { printf '%s eventstate-ha[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$action" "$*"; }
die() {
    log "error: $*"
    exit 1
}

until_ready() {
    # until_ready WHAT TIMEOUT COMMAND...: poll COMMAND once a second until it succeeds or time is up.
    local what="$1" timeout="$2" deadline
    shift 2
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what was not ready within ${timeout}s"
        sleep 1
    done
    log "ready: $what"
}

app_name() { printf '%s-%s\n' "$name" "$1"; }

db_password() {
    # Generated once and kept with the target's state: the volume outlives a container, not `down`.
    local file="$state_dir/db-password"
    if [[ ! -s "$file" ]]; then
        (
            umask 077
            head -c 32 /dev/urandom | sha256sum | cut -c1-40 >"$file"
        )
    fi
    cat "$file"
}

start_db() {
    local password="$1"
    docker volume inspect "$volume" >/dev/null 2>&1 || docker volume create "$volume" >/dev/null
    if [[ "$(docker inspect --format '{{.State.Running}}' "$db" 2>/dev/null || true)" == true ]]; then
        log "database $db already runs"
        return
    fi
    docker rm --force "$db" >/dev/null 2>&1 || true
    log "starting PostgreSQL $db (volume $volume)"
    # First start: initdb with a password for every connection; later starts reuse the cluster.
    # shellcheck disable=SC2016  # expanded by the container's shell
    docker run --detach --name "$db" --network "$network" --network-alias db \
        --restart unless-stopped --no-healthcheck \
        --cap-drop ALL --security-opt no-new-privileges \
        --volume "${volume}:${PG_HOME}" \
        --env "PGDATA=${PG_DATA}" --env "EVENTSTATE_DB_PASSWORD=${password}" \
        --entrypoint bash "$postgres_image" -c '
            set -e
            if [ ! -s "$PGDATA/PG_VERSION" ]; then
                initdb --username=eventstate --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
                    --pwfile=<(printf "%s\n" "$EVENTSTATE_DB_PASSWORD") >/dev/null
                echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
            fi
            unset EVENTSTATE_DB_PASSWORD
            exec postgres -c listen_addresses="*" -c unix_socket_directories=/tmp' >/dev/null
}

db_query() {
    docker exec --env "PGPASSWORD=$password" "$db" psql -h 127.0.0.1 -U eventstate -d postgres -tAc "$1"
}

create_database() {
    if [[ "$(db_query "SELECT 1 FROM pg_database WHERE datname = 'eventstate'")" != 1 ]]; then
        log "creating database eventstate"
        db_query "CREATE DATABASE eventstate" >/dev/null
    fi
}

app_health() {
    docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null
}

app_healthy() { [[ "$(app_health "$1")" == healthy ]]; }

start_app() {
    # start_app N: instance N on the private network; the same image, keys and database URL as all.
    local container digest
    container="$(app_name "$1")"
    digest="$(printf '%s\n' "$image_id" "$database_url" "$keys_file" | sha256sum | cut -c1-32)"
    if [[ "$(docker inspect --format '{{index .Config.Labels "eventstate.ha-config"}} {{.State.Running}}' \
        "$container" 2>/dev/null || true)" == "$digest true" ]]; then
        log "instance $container already runs this configuration"
        return
    fi
    docker rm --force "$container" >/dev/null 2>&1 || true
    log "starting instance $container"
    docker run --detach --name "$container" --network "$network" --network-alias "app-$1" \
        --restart unless-stopped --label "eventstate.ha-config=$digest" \
        --health-interval 1s --health-start-period 60s \
        --cap-drop ALL --security-opt no-new-privileges \
        --volume "${keys_file}:${CONTAINER_KEYS_FILE}:ro" \
        --env "EVENTSTATE_API_KEYS_FILE=${CONTAINER_KEYS_FILE}" \
        --env "EVENTSTATE_DATABASE=${database_url}" \
        "$image" serve --host 0.0.0.0 --port "$CONTAINER_PORT" >/dev/null
}

caddyfile() {
    local upstreams="" i
    for ((i = 1; i <= instances; i++)); do upstreams+=" app-$i:$CONTAINER_PORT"; done
    cat <<EOF
{
	admin off
	persist_config off
	skip_install_trust
	default_sni ${host_address}
	# Caddy's own log (a failed proxy attempt logs the request) without the API key either.
	log default {
		output stderr
		format filter {
			wrap json
			request>headers>X-Api-Key delete
		}
	}
}
https://${host_address}, https://localhost {
	tls internal
	# JSON access log, without the API key a client sent.
	log {
		output stdout
		format filter {
			wrap json
			request>headers>X-Api-Key delete
		}
	}
	# Round robin over the instances; an instance failing /health/ready (or a dial) leaves the pool
	# and a request that could not reach one is tried on the next. A request that did reach an
	# instance is never sent twice: only the client may retry it (with its Idempotency-Key).
	reverse_proxy${upstreams} {
		lb_policy round_robin
		lb_retries 3
		lb_try_duration 10s
		lb_try_interval 250ms
		fail_duration 10s
		health_uri /health/ready
		health_interval 1s
		health_timeout 2s
		# Which instance answered (its network alias), for operators and the failover test.
		header_down Eventstate-Instance {http.reverse_proxy.upstream.host}
	}
}
EOF
}

start_lb() {
    local uid="$1" tls_dir="$state_dir/tls" digest
    mkdir -p "$tls_dir"
    caddyfile >"$tls_dir/Caddyfile.new"
    mv "$tls_dir/Caddyfile.new" "$tls_dir/Caddyfile"
    chown -R "$uid" "$tls_dir"
    chmod 0700 "$tls_dir"
    digest="$(printf '%s\n' "$image_id" "$(cat "$tls_dir/Caddyfile")" "$host_address" "$host_port" |
        sha256sum | cut -c1-32)"
    if [[ "$(docker inspect --format '{{index .Config.Labels "eventstate.ha-config"}} {{.State.Running}}' \
        "$lb" 2>/dev/null || true)" == "$digest true" ]]; then
        log "load balancer $lb already runs this configuration"
        return
    fi
    docker rm --force "$lb" >/dev/null 2>&1 || true
    log "starting load balancer $lb on ${host_address}:${host_port}"
    docker run --detach --name "$lb" --network "$network" \
        --restart unless-stopped --no-healthcheck --label "eventstate.ha-config=$digest" \
        --publish "${host_address}:${host_port}:443" \
        --sysctl net.ipv4.ip_unprivileged_port_start=80 \
        --cap-drop ALL --security-opt no-new-privileges \
        --volume "${tls_dir}:/data" \
        --env XDG_DATA_HOME=/data/data --env XDG_CONFIG_HOME=/data/config \
        --entrypoint caddy "$image" run --config /data/Caddyfile --adapter caddyfile >/dev/null
    local root="$tls_dir/data/caddy/pki/authorities/local/root.crt"
    until_ready "the load balancer's root certificate" "$timeout" test -s "$root"
    install -m 0644 "$root" "$state_dir/ca.crt"
}

through_lb() {
    curl -fsS -o /dev/null --max-time 5 --cacert "$state_dir/ca.crt" \
        "https://${host_address}:${host_port}/health/ready"
}

up() {
    image="${EVENTSTATE_HA_IMAGE:?EVENTSTATE_HA_IMAGE is required}"
    postgres_image="${EVENTSTATE_HA_POSTGRES_IMAGE:?EVENTSTATE_HA_POSTGRES_IMAGE is required}"
    host_address="${EVENTSTATE_HA_HOST_ADDRESS:-127.0.0.1}"
    host_port="${EVENTSTATE_HA_HOST_PORT:-5443}"
    keys_file="${EVENTSTATE_HA_API_KEYS_FILE:?EVENTSTATE_HA_API_KEYS_FILE is required}"
    timeout="${EVENTSTATE_HA_READY_TIMEOUT:-120}"
    [[ "$instances" =~ ^[1-9]$ ]] || die "EVENTSTATE_HA_INSTANCES must be 1 to 9, not $instances"
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image is not on this host"
    docker image inspect "$postgres_image" >/dev/null 2>&1 ||
        die "image $postgres_image is not on this host (bash .ci/docker.sh builds it)"
    [[ -s "$keys_file" ]] || die "API keys file $keys_file is missing or empty"
    image_id="$(docker image inspect --format '{{.Id}}' "$image")"

    local uid password i
    uid="$(docker run --rm --no-healthcheck --entrypoint id "$image" -u)"
    chown "$uid" "$keys_file"
    chmod 0400 "$keys_file"
    docker network inspect "$network" >/dev/null 2>&1 ||
        docker network create --driver bridge "$network" >/dev/null

    password="$(db_password)"
    start_db "$password"
    until_ready "PostgreSQL $db" "$timeout" db_query "SELECT 1"
    create_database
    database_url="postgresql://eventstate:${password}@db:5432/eventstate"

    # Once, before any instance: creates or upgrades the schema (safe to repeat).
    log "eventstate init"
    docker run --rm --no-healthcheck --network "$network" --env "EVENTSTATE_DATABASE=${database_url}" \
        --cap-drop ALL --security-opt no-new-privileges "$image" init ||
        die "eventstate init failed"

    for ((i = 1; i <= instances; i++)); do start_app "$i"; done
    for ((i = 1; i <= instances; i++)); do
        until_ready "instance $(app_name "$i")" "$timeout" app_healthy "$(app_name "$i")"
    done
    start_lb "$uid"
    until_ready "https://${host_address}:${host_port} through $lb" "$timeout" through_lb
}

down() {
    local container
    # Every container of this prefix, the instances beyond INSTANCES included.
    for container in "$lb" $(docker ps --all --format '{{.Names}}' --filter "name=^${name}-[0-9]+$") "$db"; do
        if docker inspect "$container" >/dev/null 2>&1; then
            log "removing container $container"
            docker rm --force --volumes "$container" >/dev/null
        fi
    done
    docker network rm "$network" >/dev/null 2>&1 || true
    if docker volume inspect "$volume" >/dev/null 2>&1; then
        log "removing volume $volume"
        docker volume rm "$volume" >/dev/null
    fi
    rm -f "$state_dir/db-password"
}

case "$action" in
up) up ;;
down) down ;;
*) die "usage: $0 [up|down]" ;;
esac
