# syntax=docker/dockerfile:1
# One image recipe for every Python service of the uv workspace:
#   docker build -f deploy/docker/python-service.Dockerfile --build-arg SERVICE=job-api .
# The build context is the repository root (see docker-compose.yml).
FROM python:3.11-slim

ARG SERVICE
ARG UV_VERSION=0.13.9

ENV SERVICE=${SERVICE} \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH

RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services

# Only SERVICE and the workspace libraries it depends on, exactly as uv.lock pins them. Members
# stay editable installs, so a service finds files beside its package (e.g. migrations/).
RUN --mount=type=cache,target=/root/.cache/uv \
    test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<service>" >&2; exit 1; }; \
    uv sync --frozen --no-dev --package "${SERVICE}"

RUN useradd --system --uid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin app
USER app

EXPOSE 8000
CMD ["sh", "-c", "exec \"$SERVICE\" serve --host 0.0.0.0 --port 8000"]
