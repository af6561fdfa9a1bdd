# rollback-watchdog container image.
#
# Two stages: the builder installs the package and its dependencies into a virtualenv at
# /opt/watchdog; the runtime copies only that venv onto a clean slim image, so no compiler,
# pip cache or source tree ships. The image runs as a fixed non-root UID and works with a
# read-only root filesystem: state lives on the /var/lib/watchdog volume, scratch in /tmp.
#
#   docker build -t rollback-watchdog .
#   docker run --read-only --tmpfs /tmp -v watchdog-state:/var/lib/watchdog \
#     -v "$PWD/config.yaml:/etc/watchdog/config.yaml:ro" rollback-watchdog

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/watchdog
# .dockerignore keeps tests, caches and the local venv out of this copy
COPY . .
# the postgres extra brings asyncpg, for HA mode with WATCHDOG_STORE__URL
RUN /opt/watchdog/bin/pip install --no-cache-dir ".[postgres]" \
    && /opt/watchdog/bin/watchdog --version

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="rollback-watchdog" \
      org.opencontainers.image.description="Watches a production web app, decides by its written rollback procedure, pages or rolls back." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="python:3.11-slim-bookworm"

# fixed UID/GID so volume ownership and Kubernetes runAsUser/fsGroup can be set in advance
ARG UID=10001
ARG GID=10001
RUN groupadd --system --gid "${GID}" watchdog \
    && useradd --system --uid "${UID}" --gid watchdog --home-dir /var/lib/watchdog \
       --no-create-home --shell /usr/sbin/nologin watchdog \
    && install -d -o watchdog -g watchdog -m 0750 /var/lib/watchdog \
    && install -d -m 0755 /etc/watchdog/rules /run/secrets/watchdog

COPY --from=builder /opt/watchdog /opt/watchdog
# the default rule pack (the team's procedure), overridable by mounting /etc/watchdog/rules
COPY rules/default.yaml /etc/watchdog/rules/default.yaml

# no .pyc writes (read-only root), logs straight to the collector, venv first on PATH
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/watchdog/bin:${PATH}" \
    TMPDIR=/tmp

USER ${UID}:${GID}
WORKDIR /var/lib/watchdog
VOLUME ["/var/lib/watchdog", "/tmp"]
EXPOSE 8080

# python, not curl: the slim image has no curl and we do not add one. urlopen raises on
# non-2xx and on refused/timeouts, which exits non-zero. HEALTHCHECK_URL follows a changed port.
ENV HEALTHCHECK_URL=http://127.0.0.1:8080/healthz
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["watchdog"]
CMD ["run", "--config", "/etc/watchdog/config.yaml"]
