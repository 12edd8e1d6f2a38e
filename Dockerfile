# syntax=docker/dockerfile:1
# The SenderGate gateway: the SMTP listener and the HTTP server (confirmation
# page, API, /healthz, /metrics) in one slim Debian-based image, as an
# unprivileged user, with the configuration and the state in volumes.
# compose.yaml runs it beside clamd and rspamd; README "In containers".
#
#   docker build -t sendergate .
#   docker run -v ./sendergate.toml:/etc/sendergate/sendergate.toml:ro \
#              -v sendergate-state:/var/lib/sendergate -p 25:2525 -p 8025:8025 sendergate
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the package and its dependencies into a virtual environment ----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY app/ app/
COPY resources/ resources/
# Every dependency is a wheel or pure Python (no compiler in the image).
RUN python -m venv /opt/sendergate \
 && /opt/sendergate/bin/pip install /src \
 && /opt/sendergate/bin/sendergate --version

# -- run -------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# The same user and directories as installer/gateway/install.sh and its systemd unit.
RUN groupadd --system sendergate \
 && useradd --system --gid sendergate --home-dir /var/lib/sendergate --no-create-home \
            --shell /usr/sbin/nologin sendergate \
 && install -d -o sendergate -g sendergate -m 0750 /var/lib/sendergate /run/sendergate \
 && install -d -m 0755 /etc/sendergate
COPY --from=build /opt/sendergate /opt/sendergate
COPY installer/container/sendergate.toml /etc/sendergate/sendergate.toml
# SENDERGATE_CONFIG: every `sendergate` command in the container reads this file
# (docker compose exec sendergate sendergate users add alice@example.org).
# SENDERGATE_METRICS_DIR: the workers' shared Prometheus counters, as the unit's RuntimeDirectory.
ENV PATH=/opt/sendergate/bin:$PATH \
    SENDERGATE_CONFIG=/etc/sendergate/sendergate.toml \
    SENDERGATE_METRICS_DIR=/run/sendergate \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER sendergate
WORKDIR /var/lib/sendergate
VOLUME ["/etc/sendergate", "/var/lib/sendergate"]
# SMTP (published as the host's 25) and HTTP, as installer/container/sendergate.toml listens.
EXPOSE 2525 8025
# /healthz at the configured http.listen: 503 (unhealthy) while the store or a scanner is out.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["sendergate", "health", "--timeout", "8"]
# SIGTERM: stop accepting, let open transactions finish (up to 60 s), exit; give it 75 s
# (docker stop -t 75, compose's stop_grace_period), as the unit's TimeoutStopSec.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sendergate"]
CMD ["gateway"]
