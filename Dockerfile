# syntax=docker/dockerfile:1.7
#
# Slipway control plane: one image for the web process (gunicorn, the default command),
# the Celery worker and Celery beat (docker-compose.yml and deploy/kubernetes/ pass their
# commands). Two stages: "build" installs the locked dependencies into a virtualenv and
# collects static files; "runtime" copies those into a clean slim image that runs as an
# unprivileged user and holds no compiler, no pip cache and no test code.
#
#   docker build -t slipway:dev .
#
# The base image is pinned by tag and digest: a rebuild gets the same bytes until
# someone moves the pin on purpose (a dependency bot can). The runtime dependencies come
# only from requirements.lock, every file checked against its hash.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# --- build --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src
COPY requirements.lock ./
# requirements.lock may name the package mirrors of the machine it was compiled on
# (--extra-index-url file:///..., --find-links /...); those paths do not exist here, so
# the options are dropped and pip uses the default index. The pins and hashes stay.
# mlflow-skinny (the client) is what the lock has, not the full mlflow server package.
RUN sed -E '/^--(extra-index-url|index-url|find-links)[ =](file:|\/)/d' requirements.lock \
        > /tmp/requirements.txt \
    && pip install --require-hashes --no-deps -r /tmp/requirements.txt \
    && pip check

COPY . .
# collectstatic at build time: the runtime image serves files from STATIC_ROOT through
# whitenoise (compressed, with hashed names) and never writes to its own filesystem.
# Settings refuse to start without SECRET_KEY when DEBUG is off; the value on this line
# is used by this one command and is not kept in any layer's environment.
RUN SECRET_KEY=collectstatic-only-not-a-secret \
    DEBUG=0 \
    SLIPWAY_VAR_DIR=/tmp/slipway-build \
    DATABASE_URL=sqlite:////tmp/slipway-build/build.sqlite3 \
    python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /src/apps /src/controlplane

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# git and ssh: the worker commits to the GitOps repository with the git command line.
# tini as PID 1: it reaps the ssh helpers a killed git leaves behind and forwards
# signals, so gunicorn and Celery shut down cleanly.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 slipway \
    && useradd --system --uid 10001 --gid slipway --home-dir /home/slipway --create-home \
        --shell /usr/sbin/nologin slipway \
    && install -d -o slipway -g slipway -m 0750 /var/lib/slipway

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=controlplane.settings \
    SLIPWAY_VAR_DIR=/var/lib/slipway \
    PORT=8000

COPY --from=build /opt/venv /opt/venv
# The application belongs to root and is read-only for the user it runs as.
COPY --from=build /src /app
WORKDIR /app

USER 10001:10001
EXPOSE 8000

# Python, not curl (the slim image has no curl); deploy/docker/healthcheck.py explains
# the Host header it sends. Worker and beat containers override this (docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/docker/healthcheck.py", "web", "/healthz"]

ENTRYPOINT ["tini", "--"]
CMD ["gunicorn", "--config", "/app/deploy/gunicorn.conf.py"]
