# syntax=docker/dockerfile:1
# The GPU worker on NVIDIA's CUDA runtime image (services/gpu-worker/Dockerfile builds the same
# worker on python:3.11-slim, with the CUDA libraries that torch's wheels bundle). Use this one
# where a host or platform expects an nvidia/cuda base. Build from the repository root:
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t ftd-worker-cuda .
# Run it as the other worker image (needs the NVIDIA driver and container toolkit on the host):
#   docker run --gpus all -e FTD_WORKER_TOKEN=ftdw_... -e FTD_API_URL=https://ftd.example.org \
#     ftd-worker-cuda
# The CUDA image has no Python 3.11: uv installs one (python-build-standalone) under /opt/python.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04
ARG UV_VERSION=0.13.9
FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM ${CUDA_IMAGE}

ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON=3.11 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    HF_HOME=/work/hf \
    FTD_WORKER_WORK_DIR=/work/ftd-worker \
    FTD_MODEL_STORE_DIR=/work/models \
    FTD_WORKER_PROVIDER=runpod

COPY --from=uv /uv /uvx /usr/local/bin/

RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && uv python install 3.11

WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services

RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package gpu-worker \
    && uv pip install --python /app/.venv/bin/python --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}" \
    && uv pip install --python /app/.venv/bin/python -r services/gpu-worker/requirements-train.txt

# Fail the build, not the first job, when the stack does not import or torch is not a CUDA build.
RUN python -c "import torch, transformers, sentence_transformers, peft, trl, gpu_worker.entrypoints.cli; \
assert torch.version.cuda, 'torch ' + torch.__version__ + ' is not a CUDA build'" \
    && ftd-worker --help >/dev/null

RUN useradd --system --uid 10001 --create-home --home-dir /home/worker worker \
    && mkdir -p /work && chown worker /work
USER worker
VOLUME ["/work"]
WORKDIR /work

# SIGTERM hands the running job back with a checkpoint; give it time: docker stop -t 150.
STOPSIGNAL SIGTERM
ENTRYPOINT ["ftd-worker", "run"]
