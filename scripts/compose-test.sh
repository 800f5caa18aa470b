#!/usr/bin/env bash
# docker-compose.yml, for real, with podman (make compose-test): builds every image from a local
# Debian bookworm base (no image is pulled), brings the whole stack up with podman-compose and
# deploy/compose/local.override.yml (moto's S3 server in place of MinIO, local base images), waits
# for each service by polling it, then runs the acceptance flow through the gateway on
# http://127.0.0.1:18000: upload, train an embedding model on the bundled CPU
# worker container (restarting job-api's container and the broker's while the job runs: it must
# still complete), deploy it, call /v1/embeddings. Everything it started, volumes included, is
# removed at the end, failed or not. Prints each phase's time.
#
# Needs root, uv, podman, debootstrap and runc (Debian's, which it installs when missing),
# node/npm on this host (copied into the UI's build image), a torch CPU wheel in $PIP_FIND_LINKS
# or TORCH_WHEELS (default /opt/wheels), about 15 GB of disk.
#   scripts/compose-test.sh           build, up, test, down
#   scripts/compose-test.sh build     build the images only
# FTD_COMPOSE_KEEP=1 leaves the stack up after the test (for a look; `podman-compose ... down -v`
# removes it: the command is printed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export CONTAINERS_CONF="$ROOT/deploy/compose/containers.conf"
PROJECT=ftd-compose-test
DEBIAN_IMAGE=localhost/debian:bookworm
PYTHON_IMAGE=localhost/ftd-python:3.11-bookworm
NGINX_IMAGE=localhost/ftd-nginx:bookworm
NODE_IMAGE=localhost/ftd-node:bookworm
TORCH_WHEELS=${TORCH_WHEELS:-${PIP_FIND_LINKS:-/opt/wheels}}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0+cpu}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ftd-compose-test.XXXXXX")
ENV_FILE="$WORK/compose.env"
# podman-compose >= 1.1 (it knows the override's !reset and !override): PyPI's, run by uv, unless
# PODMAN_COMPOSE names another (Debian bookworm's 1.0.3 appends to lists instead).
if [ -n "${PODMAN_COMPOSE:-}" ]; then
  read -r -a PC <<<"$PODMAN_COMPOSE"
else
  PC=(uv tool run --from "podman-compose==1.6.*" podman-compose)
fi
COMPOSE=("${PC[@]}" -p "$PROJECT" -f docker-compose.yml -f deploy/compose/local.override.yml)
FTD_COMPOSE_PORT=18000  # deploy/compose/local.override.yml publishes the gateway there
BASE_URL="http://127.0.0.1:$FTD_COMPOSE_PORT"

SUMMARY=()
phase_start=0
phase() {
  phase_name=$1
  phase_start=$SECONDS
  echo "=== compose-test: $phase_name" >&2
}
phase_done() {
  local took=$((SECONDS - phase_start))
  SUMMARY+=("$(printf '%-34s %5ss' "$phase_name" "$took")")
  echo "=== compose-test: $phase_name done in ${took}s" >&2
}
summary() {
  echo "--- compose-test timings ---"
  printf '%s\n' "${SUMMARY[@]}"
  echo "total ${SECONDS}s"
}

need() { command -v "$1" >/dev/null || { echo "compose-test: $1 is missing ($2)" >&2; exit 2; }; }

# Debian's podman (with netavark and aardvark-dns: the stack's network and its names), runc and
# debootstrap, installed when missing, as .ci/run installs its own (podman-compose is PyPI's, run
# by uv). Root only: debootstrap and rootful podman.
install_prerequisites() {
  local missing=() pkg
  [ "$(id -u)" = 0 ] || { echo "compose-test: run it as root (debootstrap, rootful podman)" >&2; exit 2; }
  for pkg in podman netavark aardvark-dns runc debootstrap iptables; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return
  echo "compose-test: installing Debian packages: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------
# Images

debian_mirror() {
  # The mirror this host's apt uses (deb822 or one-line sources), else Debian's own.
  [ -n "$DEBIAN_MIRROR" ] && { echo "$DEBIAN_MIRROR"; return; }
  local m
  m=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [ -n "$m" ] || m=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk '{print $2}' | grep -E 'debian/?$' | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}

build_base() {
  if podman image exists "$DEBIAN_IMAGE"; then
    echo "compose-test: $DEBIAN_IMAGE exists, kept" >&2
    return
  fi
  need debootstrap "apt-get install debootstrap"
  local dir mirror
  dir=$(mktemp -d /var/tmp/ftd-debootstrap.XXXXXX)
  mirror=$(debian_mirror)
  echo "compose-test: debootstrap bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; rm -rf "$dir"; return 1; }
  tar -C "$dir" -c . | podman import - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$dir"
}

build() {
  # build TAG DOCKERFILE CONTEXT [podman build options...]
  local tag=$1 file=$2 context=$3
  shift 3
  local t=$SECONDS log
  log="$WORK/build-$(echo "$tag" | tr '/:' '__').log"
  if ! podman build --network=host --layers --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -f "$file" -t "$tag" "$@" "$context" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "compose-test: building $tag failed (log above)" >&2
    return 1
  fi
  echo "compose-test: built $tag in $((SECONDS - t))s" >&2
}

build_images() {
  local py=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
  local torch=(--build-arg "TORCH_SPEC=$TORCH_SPEC" --build-arg "TORCH_INDEX_URL=https://pypi.org/simple"
    --build-arg "TORCH_FIND_LINKS=/wheels" -v "$TORCH_WHEELS:/wheels:ro")
  local pyctx="$WORK/python-context"
  mkdir -p "$pyctx"
  cp "${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$pyctx/ca-certificates.crt"
  build "$PYTHON_IMAGE" deploy/compose/python.Dockerfile "$pyctx"
  build localhost/ftd-postgres:15 deploy/compose/postgres.Dockerfile deploy/compose
  build localhost/ftd-rabbitmq:3.10-management deploy/compose/rabbitmq.Dockerfile deploy/compose
  build "$NGINX_IMAGE" deploy/compose/nginx.Dockerfile deploy/compose
  build localhost/ftd-moto:5 deploy/compose/moto.Dockerfile deploy/compose "${py[@]}"
  local svc
  for svc in job-api data-service registry-service webhook-service model-server; do
    build "finetune-dispatcher/$svc:local" deploy/docker/python-service.Dockerfile . \
      --ignorefile deploy/docker/python-service.Dockerfile.dockerignore \
      "${py[@]}" "${torch[@]}" --build-arg "SERVICE=$svc"
  done
  build finetune-dispatcher/worker-cpu:local services/gpu-worker/Dockerfile . \
    --ignorefile deploy/docker/python-service.Dockerfile.dockerignore \
    "${py[@]}" "${torch[@]}" --build-arg REQUIRE_CUDA=0
  # The UI's build stage needs Node >= 20: this host's, copied in.
  need node "Node.js 20 or newer, as for make ui-build"
  local nodedir="$WORK/node"
  mkdir -p "$nodedir/bin" "$nodedir/lib/node_modules"
  cp "$(command -v node)" "$nodedir/bin/node"
  cp -r "$(dirname "$(readlink -f "$(command -v npm)")")/.." "$nodedir/lib/node_modules/npm"
  build "$NODE_IMAGE" deploy/compose/node.Dockerfile "$nodedir"
  build finetune-dispatcher/ui:local deploy/docker/ui.Dockerfile . \
    --ignorefile deploy/docker/ui.Dockerfile.dockerignore \
    --build-arg "NODE_IMAGE=$NODE_IMAGE" --build-arg "NGINX_IMAGE=$NGINX_IMAGE"
  # The images these builds replaced (each rebuild of a service leaves its old image untagged).
  podman image prune -f >/dev/null
}

install_prerequisites
need podman "apt-get install podman runc"
need uv "see README.md"

if [ "${1:-}" = build ]; then
  trap 'rm -rf "$WORK"' EXIT
  phase "base image"; build_base; phase_done
  phase "images"; build_images; phase_done
  summary
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# The stack

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" != 0 ]; then
    if [ -s "$WORK/up.log" ]; then
      echo "compose-test: FAILED (exit $rc); the last lines podman-compose wrote:" >&2
      tail -15 "$WORK/up.log" | cut -c1-400 >&2
    fi
    echo "compose-test: FAILED (exit $rc); the last lines of each container's log:" >&2
    local c
    for c in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
      echo "--- $c ($(podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$c"))" >&2
      podman logs --tail 15 "$c" 2>&1 | cut -c1-400 >&2 || true
    done
  fi
  if [ "${FTD_COMPOSE_KEEP:-0}" = 1 ] && [ "$rc" = 0 ]; then
    echo "compose-test: left up; remove with: CONTAINERS_CONF=$CONTAINERS_CONF ${COMPOSE[*]} --env-file $ENV_FILE down -v" >&2
  else
    phase "down (containers and volumes)"
    "${COMPOSE[@]}" --env-file "$ENV_FILE" down -v -t 10 >"$WORK/down.log" 2>&1 || true
    # Whatever down left (a container it did not know, a volume in use then).
    podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
    podman volume ls -q | grep "^${PROJECT}_" | xargs -r podman volume rm -f >/dev/null || true
    podman network ls -q | grep "^${PROJECT}_" | xargs -r podman network rm -f >/dev/null || true
    phase_done
    rm -rf "$WORK"
  fi
  summary
  [ "$rc" = 0 ] && echo "compose-test: PASSED" || echo "compose-test: FAILED"
  exit "$rc"
}

# The secrets docker-compose.yml requires, fresh for this run (README.md, Docker Compose).
make_env() {
  local name
  for name in FTD_JWT_SECRET FINETUNE_WORKER_KEY FTD_DATA_TICKET_SECRET FTD_SECRETS_KEY POSTGRES_PASSWORD \
    JOB_API_DB_PASSWORD DATA_SERVICE_DB_PASSWORD REGISTRY_SERVICE_DB_PASSWORD \
    MODEL_SERVER_DB_PASSWORD WEBHOOK_SERVICE_DB_PASSWORD WEBHOOK_SERVICE_SECRETS_KEY \
    FTD_BROKER_ADMIN_PASSWORD FTD_BROKER_JOB_API_PASSWORD \
    FTD_BROKER_DATA_SERVICE_PASSWORD FTD_BROKER_REGISTRY_SERVICE_PASSWORD \
    FTD_BROKER_MODEL_SERVER_PASSWORD FTD_BROKER_WEBHOOK_SERVICE_PASSWORD MINIO_ROOT_PASSWORD; do
    echo "$name=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
  done >"$ENV_FILE"
  # The bundled worker downloads no base model: the offline tiny models are enough here.
  echo "FTD_ENABLE_OFFLINE_MODELS=true" >>"$ENV_FILE"
  chmod 600 "$ENV_FILE"
}

ctr() {
  podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -1
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 2 s.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "compose-test: $what not ready after ${limit}s" >&2
      return 1
    fi
    sleep 2
  done
}

http_ok() { podman exec "$(ctr "$1")" python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000$2', timeout=3)"; }

# up SERVICE...: creates and starts them, their dependencies already up (podman-compose 1.0 does
# not wait for depends_on conditions, so this script waits for each as they say).
up() { "${COMPOSE[@]}" --env-file "$ENV_FILE" up -d --no-deps --no-build "$@" >>"$WORK/up.log" 2>&1; }

# one_shot SERVICE: runs it and fails unless it exits 0 (service_completed_successfully).
one_shot() {
  up "$1"
  local rc
  rc=$(podman wait "$(ctr "$1")")
  if [ "$rc" != 0 ]; then
    podman logs --tail 30 "$(ctr "$1")" >&2
    echo "compose-test: $1 exited with $rc" >&2
    return 1
  fi
}

[ "${1:-}" = "" ] || { echo "usage: $0 [build]" >&2; exit 2; }
trap teardown EXIT
trap 'exit 130' INT TERM

phase "base image"; build_base; phase_done
phase "images"; build_images; phase_done

phase "up: postgres, rabbitmq, S3 (moto)"
echo "compose-test: S3 is moto's server in place of MinIO (deploy/compose/local.override.yml)" >&2
make_env
up postgres rabbitmq minio
wait_until 120 postgres podman exec "$(ctr postgres)" pg_isready -U postgres -h 127.0.0.1
wait_until 180 rabbitmq podman exec "$(ctr rabbitmq)" bash -c 'test -f /tmp/ftd-rabbitmq-ready && rabbitmq-diagnostics -q check_port_connectivity'
wait_until 60 "S3 (moto)" podman exec "$(ctr minio)" python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9000/', timeout=3)"
one_shot minio-init
phase_done

phase "db-init (five one-shots)"
for svc in job-api data-service registry-service model-server webhook-service; do
  one_shot "$svc-db-init"
done
phase_done

phase "up: services and UI"
up job-api data-service registry-service model-server webhook-service ui
for svc in job-api data-service registry-service model-server webhook-service; do
  wait_until 180 "$svc" http_ok "$svc" /readyz
done
wait_until 60 ui podman exec "$(ctr ui)" wget -q -O /dev/null http://127.0.0.1:8004/
phase_done

phase "up: gateway, worker-enrol, worker"
up gateway
wait_until 60 gateway curl -fsS "$BASE_URL/healthz"
one_shot worker-enrol
up worker
phase_done

phase "acceptance flow through the gateway"
FTD_USER=compose-alice
TOKEN=$(podman exec "$(ctr job-api)" job-api token --sub "$FTD_USER" 2>/dev/null | tail -1)
[ -n "$TOKEN" ] || { echo "compose-test: no token from job-api token" >&2; exit 1; }
FTD_TOKEN="$TOKEN" FTD_USER="$FTD_USER" BASE_URL="$BASE_URL" PROJECT="$PROJECT" CONTAINERS_CONF="$CONTAINERS_CONF" \
  uv run --no-sync python "$ROOT/deploy/compose/acceptance.py"
phase_done
