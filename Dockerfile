# syntax=docker/dockerfile:1
# One image for all five services. Which one runs is the command:
#   python -m services.<trigger|survey|scoring|alerting|reporting> [serve|migrate]
# Build from the repository root:  docker build -t nps-platform:0.1.0 .
# (Checked here by tests/unit/test_deploy_manifests.py; see deploy/README.md for what was and
# was not validated.)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: every wheel the platform needs, built once --------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY libs ./libs
COPY services ./services
# No [embedded] extra: the embedded Postgres, broker and SMTP sink are for `make run` only.
RUN pip wheel --wheel-dir /wheels .

# --- runtime: the wheels installed, no compiler, no source tree, not root ----------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG NPS_UID=10001
LABEL org.opencontainers.image.title="nps-platform" \
      org.opencontainers.image.description="NPS platform: trigger, survey, scoring, alerting, reporting"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONSAFEPATH=1 \
    NPS_ENV=production \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8000
# A fixed UID, so that Kubernetes' runAsNonRoot can check it and volumes can be owned by it.
RUN groupadd --system --gid "${NPS_UID}" nps \
 && useradd --system --uid "${NPS_UID}" --gid nps --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nps
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels nps-platform
# Owned by root, so not writable by the service: nothing there can shadow an installed module.
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Slim images have no curl: ask /healthz with the Python that is there.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8000') + '/healthz', timeout=4)"]
CMD ["python", "-m", "services.trigger"]
