#!/usr/bin/env bash
# Install the GPU worker's training stack (torch, transformers, sentence-transformers, peft, trl...)
# into the workspace .venv, outside uv.lock: `uv sync --inexact` keeps it afterwards.
#
#   scripts/install-training.sh             # CPU torch if torch is missing, then the stack
#   TORCH_SPEC='torch==2.13.0' scripts/install-training.sh
#
# A machine whose torch is already installed (a CUDA image) keeps it. Wheels in PIP_FIND_LINKS
# (a local wheel folder) are preferred when that variable is set.
#
# Run again with nothing to change it costs a second or two (make dev and make test run it each
# time): importing the whole stack (about 20 s of CPU) proves an install only after one, and
# otherwise the installed versions are read from the packages' metadata.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV="${UV:-$(command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
REQS="$ROOT/services/gpu-worker/requirements-train.txt"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$PYTHON" ]; then
  echo "no virtual environment at $PYTHON: run 'make install' first" >&2
  exit 1
fi

export UV_FIND_LINKS="${UV_FIND_LINKS:-${PIP_FIND_LINKS:-}}"
[ -n "$UV_FIND_LINKS" ] || unset UV_FIND_LINKS

changed=0
if ! "$PYTHON" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)'; then
  changed=1
  echo "torch missing: installing $TORCH_SPEC" >&2
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    # e.g. the CPU-only wheel index of the PyTorch project, when it is reachable.
    $UV pip install --compile-bytecode --python "$PYTHON" --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
  else
    $UV pip install --compile-bytecode --python "$PYTHON" "$TORCH_SPEC"
  fi
fi

# uv says what it installed or removed ("+ name==version" / "- name==version"); nothing, when the
# stack is as the requirements ask.
out=$($UV pip install --compile-bytecode --python "$PYTHON" -r "$REQS" 2>&1) || { echo "$out" >&2; exit 1; }
echo "$out" >&2
if grep -qE '^ *[-+~] ' <<<"$out"; then changed=1; fi

if ((changed)); then
  # Just installed: the stack must import, here rather than at a worker's first job.
  "$PYTHON" -c 'import torch, transformers, sentence_transformers, peft, trl; print("training stack:", "torch", torch.__version__, "transformers", transformers.__version__, "sentence-transformers", sentence_transformers.__version__, "peft", peft.__version__, "trl", trl.__version__)'
else
  "$PYTHON" -c 'from importlib.metadata import version; print("training stack (installed):", *(f"{n} {version(n)}" for n in ("torch", "transformers", "sentence-transformers", "peft", "trl")))'
fi
