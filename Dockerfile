# syntax=docker/dockerfile:1
# The ingestion service's image for Cloud Run (docs/deploy.md). Build it from the repository root:
#   docker build -t ingest .                               the example pipelines (examples/)
#   docker build --build-arg CONFIG=config -t ingest .     your own folder: pipelines.toml, schemas

# One base for both stages, pinned to a patch release; append @sha256:... to pin the exact build.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: the project and its runtime dependencies (no dev extra) in a venv, at the versions
# constraints.txt pins. Every dependency ships binary wheels, so no compiler is needed.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY service/ service/
RUN /opt/venv/bin/pip install --no-cache-dir -c constraints.txt . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# --- runtime: the venv, the Hypercorn settings and the pipelines, run by an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime
ARG CONFIG=examples
# PORT is Cloud Run's; the service binds every interface inside the container and runs on the
# Google Cloud backends (INGEST_PROJECT and the rest are set at deploy time, see eventarc.yaml).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080 \
    INGEST_HOST=0.0.0.0 \
    INGEST_BACKEND=gcp \
    INGEST_PIPELINES=/app/config/pipelines.toml \
    INGEST_DATA_DIR=/tmp/ingest-data
RUN groupadd --system --gid 10001 ingest \
    && useradd --system --uid 10001 --gid ingest --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ingest
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY hypercorn.toml ./
COPY ${CONFIG}/ config/
USER 10001:10001
EXPOSE 8080
# Exec form: the service is PID 1 and gets Cloud Run's SIGTERM itself (graceful shutdown).
CMD ["ingest", "serve"]
