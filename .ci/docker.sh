#!/usr/bin/env bash
# Brings up what the container tests need on a bare Debian bookworm CI machine, where no Docker
# engine runs and no image registry is reachable: Debian's docker.io, a dockerd started by hand and
# a local base image built with debootstrap from the machine's own Debian mirror.
#
#   bash .ci/docker.sh         # idempotent; progress on stderr, `export NAME=value` lines on stdout
#   bash .ci/docker.sh stop    # stops the dockerd this script started (and only that one)
#
# The caller evaluates stdout: `docker_env="$(bash .ci/docker.sh)" && eval "$docker_env"`.
set -euo pipefail

BASE_IMAGE="${EVENTSTATE_BASE_IMAGE:-eventstate-base:bookworm}"
# Debian's PostgreSQL server in an image of its own, for the local-ha target and its test.
POSTGRES_IMAGE="${EVENTSTATE_POSTGRES_IMAGE:-eventstate-postgres:bookworm}"
SUITE=bookworm
STATE_DIR="${EVENTSTATE_DOCKER_STATE:-/var/tmp/eventstate-ci-docker}"
DOCKERD_PID_FILE="$STATE_DIR/dockerd.pid"
DOCKERD_LOG="$STATE_DIR/dockerd.log"

log() { printf 'docker.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
    [ "$(id -u)" -eq 0 ] || die "run as root: it installs packages and starts dockerd"
}

install_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    if [ "${#missing[@]}" -eq 0 ]; then return; fi
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
}

engine_up() { docker info >/dev/null 2>&1; }

start_engine() {
    if engine_up; then
        log "a Docker engine is already reachable; using it"
        return
    fi
    mkdir -p "$STATE_DIR"
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: dockerd outlives this script and does not get the caller's terminal signals.
    setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
    echo $! | tee "$DOCKERD_PID_FILE" >/dev/null
    local deadline=$((SECONDS + 60))
    until engine_up; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            die "dockerd did not answer within 60 s"
        fi
        sleep 0.5
    done
    log "dockerd is up"
}

stop_engine() {
    if [ ! -f "$DOCKERD_PID_FILE" ]; then
        log "no dockerd was started by this script"
        return
    fi
    local pid
    pid="$(cat "$DOCKERD_PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping dockerd (pid $pid)"
        kill -TERM "$pid"
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
    fi
    rm -f "$DOCKERD_PID_FILE"
}

# The first Debian mirror configured for $SUITE, from one-line `.list` or deb822 `.sources` files.
debian_mirror() {
    local files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        if [ -f "$f" ]; then files+=("$f"); fi
    done
    [ "${#files[@]}" -gt 0 ] || die "no apt sources found"
    # Plain POSIX awk (Debian's default is mawk): a deb822 stanza ends at a blank line or end of file.
    awk -v suite="$SUITE" '
        function emit(uri) { if (!found && uri != "") { print uri; found = 1 } }
        function flush(  u) {
            if (types ~ / deb / && suites ~ (" " suite " ")) { split(uris, u, " "); emit(u[1]) }
            uris = ""; suites = ""; types = ""
        }
        FNR == 1 { flush() }
        /^[[:space:]]*#/ { next }
        FILENAME ~ /\.list$/ && $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) emit($i)
            next
        }
        FILENAME ~ /\.sources$/ {
            if ($0 ~ /^[[:space:]]*$/) { flush(); next }
            key = tolower($1); $1 = ""
            if (key == "uris:") uris = $0
            if (key == "suites:") suites = $0 " "
            if (key == "types:") types = $0 " "
        }
        END { flush() }
    ' "${files[@]}"
}

build_base_image() {
    # build_base_image IMAGE PACKAGES [CHANGE...]: a minbase root filesystem with PACKAGES, cached
    # by its tag (a second run reuses it).
    local image="$1" packages="$2"
    shift 2
    if docker image inspect "$image" >/dev/null 2>&1; then
        log "image $image already present; reusing it"
        return
    fi
    local mirror rootfs
    mirror="$(debian_mirror)"
    [ -n "$mirror" ] || die "no Debian mirror for $SUITE in the apt sources"
    rootfs="$(mktemp -d /var/tmp/eventstate-rootfs.XXXXXX)"
    # shellcheck disable=SC2064  # expand now: the path is fixed once chosen
    trap "rm -rf '$rootfs'" EXIT
    log "debootstrapping $SUITE from $mirror into $rootfs"
    debootstrap --variant=minbase --include="$packages" "$SUITE" "$rootfs" "$mirror" >&2
    # An image needs neither the package cache nor the downloaded lists.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    log "importing the root filesystem as $image"
    tar -C "$rootfs" --numeric-owner -c . \
        | docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            "$@" - "$image" >&2
    rm -rf "$rootfs"
    trap - EXIT
}

main() {
    case "${1:-up}" in
        up)
            require_root
            install_packages
            start_engine
            build_base_image "$BASE_IMAGE" python3,python3-venv,ca-certificates \
                --change 'CMD ["python3"]'
            # The server refuses to run as root: the image runs as Debian's postgres user.
            build_base_image "$POSTGRES_IMAGE" postgresql-15,ca-certificates \
                --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                --change 'USER postgres' --change 'CMD ["postgres", "--version"]'
            printf 'export EVENTSTATE_BASE_IMAGE=%q\n' "$BASE_IMAGE"
            printf 'export EVENTSTATE_POSTGRES_IMAGE=%q\n' "$POSTGRES_IMAGE"
            printf 'export EVENTSTATE_REQUIRE_DOCKER=1\n'
            printf 'export DOCKER_BUILDKIT=0\n'
            ;;
        stop) require_root; stop_engine ;;
        mirror) debian_mirror ;;
        *) die "usage: $0 [up|stop|mirror]" ;;
    esac
}

main "$@"
