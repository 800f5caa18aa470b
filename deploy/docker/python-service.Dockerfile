# syntax=docker/dockerfile:1
# One image recipe for every Python service of the uv workspace:
#   docker build -f deploy/docker/python-service.Dockerfile --build-arg SERVICE=job-api .
# The build context is the repository root (see docker-compose.yml).
#
# model-server loads models, so its image also gets the inference stack (torch, transformers,
# sentence-transformers, peft), which is not in uv.lock: torch from the PyTorch wheel index (CPU
# wheels by default), the rest from services/model-server/requirements-inference.txt, as the
# worker's image installs its training stack. INFERENCE=auto (the default) installs it for
# model-server only, 1 for any SERVICE, 0 never (e.g. a model-server whose LoRA models run on vLLM
# and that serves no embedding or classifier). A GPU model-server:
#   docker build -f deploy/docker/python-service.Dockerfile --build-arg SERVICE=model-server \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#
# PYTHON_IMAGE is the base (an image with Python 3.11 and pip): the official python:3.11-slim by
# default; scripts/compose-test.sh builds a Debian bookworm one where no image can be pulled, and
# hands torch over as a local wheel (TORCH_FIND_LINKS, a folder mounted into the build).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG UV_VERSION=0.13.9

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH

RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /app
ARG SERVICE
ARG INFERENCE=auto
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_FIND_LINKS=
ENV SERVICE=${SERVICE}
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<service>" >&2; exit 1; }; \
    case "${INFERENCE}" in auto|1|0) ;; *) echo "INFERENCE must be auto, 1 or 0" >&2; exit 1 ;; esac

# The inference stack (see the top), before the workspace's code: this layer depends on the
# requirement files only, so a change to the code rebuilds none of it.
COPY services/gpu-worker/requirements-train.txt ./services/gpu-worker/
COPY services/model-server/requirements-inference.txt ./services/model-server/
RUN --mount=type=cache,target=/root/.cache/uv \
    set -e; \
    case "${INFERENCE}:${SERVICE}" in auto:model-server|1:*) ;; *) exit 0 ;; esac; \
    uv venv /app/.venv \
    && uv pip install --python /app/.venv/bin/python --index-url "${TORCH_INDEX_URL}" \
      ${TORCH_FIND_LINKS:+--find-links "${TORCH_FIND_LINKS}"} "${TORCH_SPEC}" \
    && uv pip install --python /app/.venv/bin/python -r services/model-server/requirements-inference.txt

COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services

# Only SERVICE and the workspace libraries it depends on, exactly as uv.lock pins them (--inexact
# keeps the inference stack). Members stay editable installs, so a service finds files beside its
# package (e.g. migrations/). Then the inference stack once more, so that where uv.lock and the
# stack disagree on a shared dependency the stack's requirement wins, as after `make install` and
# scripts/install-training.sh (a no-op otherwise). The build fails, not the first model load,
# when the stack does not import or when the CPU index was asked for and another torch got in.
RUN --mount=type=cache,target=/root/.cache/uv \
    set -e; \
    uv sync --frozen --no-dev --inexact --package "${SERVICE}"; \
    case "${INFERENCE}:${SERVICE}" in auto:model-server|1:*) ;; *) exit 0 ;; esac; \
    uv pip install --python /app/.venv/bin/python -r services/model-server/requirements-inference.txt; \
    python -c "import torch, transformers, sentence_transformers, peft; \
assert torch.version.cuda is None or not '${TORCH_INDEX_URL}'.rstrip('/').endswith('/cpu'), \
'torch ' + torch.__version__ + ' is not the CPU build asked for'; \
print('inference stack: torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"

RUN useradd --system --uid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /var/cache/ftd && chown app /var/cache/ftd
USER app
# /app is read-only to the service: caches (Hub downloads, model-server's build of the offline tiny
# Llama, FTD_TINY_LLAMA_DIR's default) go to a folder it owns (a volume there keeps them).
ENV XDG_CACHE_HOME=/var/cache/ftd

EXPOSE 8000
CMD ["sh", "-c", "exec \"$SERVICE\" serve --host 0.0.0.0 --port 8000"]
