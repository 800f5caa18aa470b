#!/usr/bin/env bash
# One command to run the whole platform on this machine (`make dev`). Ctrl-C stops everything.
#
# It installs the workspace, makes sure PostgreSQL and RabbitMQ are up, loads (or creates once) the
# development secrets in .dev/secrets.env, migrates, starts every service in the background with
# its log in .dev/logs/, waits for each to be healthy and prints how to talk to them.
#
# Defaults are what the README says; two settings let a second platform run beside the first
# (the README tour test runs `make dev` itself this way, next to a developer's own):
#   FTD_DEV_DIR (.dev)      state: secrets, logs, the worker's token and work folder, models
#   FTD_DEV_PORT (8000)     the gateway; the services take the six ports above it, in the
#                           order job-api, data-service, registry-service, UI, model-server,
#                           webhook-service (8001 to 8006 by default)
# FTD_DATABASE_NAME and FTD_BROKER_PREFIX (the services read it) name the database and the broker
# namespace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEV_DIR=$(realpath -m "${FTD_DEV_DIR:-.dev}")
LOG_DIR=$DEV_DIR/logs
SECRETS_FILE=$DEV_DIR/secrets.env
HEALTH_TIMEOUT=${FTD_HEALTH_TIMEOUT:-60}
BASE_PORT=${FTD_DEV_PORT:-8000}
if ! [[ $BASE_PORT =~ ^[0-9]+$ ]] || ((BASE_PORT < 1 || BASE_PORT > 65529)); then
  echo "dev: FTD_DEV_PORT must be a port number from 1 to 65529 (got '$BASE_PORT')" >&2
  exit 2
fi
GATEWAY_PORT=$BASE_PORT
JOB_API_PORT=$((BASE_PORT + 1))
DATA_SERVICE_PORT=$((BASE_PORT + 2))
REGISTRY_PORT=$((BASE_PORT + 3))
UI_PORT=$((BASE_PORT + 4))
MODEL_SERVER_PORT=$((BASE_PORT + 5))
WEBHOOK_PORT=$((BASE_PORT + 6))
# The gateway (nginx, scripts/gateway.sh) is the public entry point; services listen behind it.
PUBLIC_URL=http://localhost:$GATEWAY_PORT

log() { echo "dev: $*" >&2; }

# --- processes ----------------------------------------------------------------------------------
NAMES=()
PIDS=()

# start_service NAME CMD...: runs CMD in its own process group (so stopping it also stops what
# `uv run` spawned), logging to .dev/logs/NAME.log. CMD may use the uv function below.
start_service() {
  local name=$1
  shift
  setsid bash -c '"$@"' "$name" "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  NAMES+=("$name")
  PIDS+=("$!")
  log "started $name (pid $!), log: $LOG_DIR/$name.log"
}

# wait_healthy NAME URL: polls URL until it answers; gives up early if the process has died.
wait_healthy() {
  local name=$1 url=$2 pid i
  for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" != "$name" ] || pid=${PIDS[$i]}; done
  local deadline=$((SECONDS + HEALTH_TIMEOUT))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      log "$name did not become healthy at $url within ${HEALTH_TIMEOUT}s; last log lines:"
      tail -n 40 "$LOG_DIR/$name.log" >&2 || true
      exit 1
    fi
    sleep 1
  done
  log "$name is healthy ($url)"
}

require_port() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    log "port $1 is already in use (an earlier 'make dev' still running?); stop that first"
    exit 1
  fi
}

stop_all() {
  # Ignore further INT/TERM until the children are stopped: `make` forwards its SIGTERM, so a
  # second one arrives while we stop, and with the default action it would kill this script
  # half-way, leaving services running. EXIT is cleared so stop_all runs once.
  trap '' INT TERM
  trap - EXIT
  ((${#PIDS[@]})) || return 0
  log "stopping ${NAMES[*]} ..."
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  trap - INT TERM
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- secrets ------------------------------------------------------------------------------------
declare -A SECRET_SOURCE

# The environment wins; otherwise the value saved in .dev/secrets.env; otherwise a new one is
# generated and saved, so tokens and worker keys stay valid across restarts.
load_or_create_secret() {
  local key=$1 value
  if [ -n "${!key:-}" ]; then
    SECRET_SOURCE[$key]="from the environment"
    return
  fi
  value=$(grep -E "^$key=" "$SECRETS_FILE" | tail -n 1 | cut -d= -f2- || true)
  if [ -n "$value" ]; then
    SECRET_SOURCE[$key]="from $SECRETS_FILE"
  else
    value=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
    echo "$key=$value" >>"$SECRETS_FILE"
    SECRET_SOURCE[$key]="generated into $SECRETS_FILE"
  fi
  export "$key=$value"
}

# --- main ---------------------------------------------------------------------------------------
make --no-print-directory install
if [ -z "${UV:-}" ]; then
  if command -v uv >/dev/null 2>&1; then UV=uv; else UV="python3 -m uv"; fi
fi
# UV may be two words ("python3 -m uv"), hence unquoted. Exported for start_service's shells.
# shellcheck disable=SC2086
uv() { command $UV "$@"; }
export UV
export -f uv

bash scripts/ensure-services.sh

mkdir -p "$LOG_DIR"
(umask 077 && touch "$SECRETS_FILE")
chmod 600 "$SECRETS_FILE"
load_or_create_secret FTD_JWT_SECRET
load_or_create_secret FINETUNE_WORKER_KEY

export FTD_ENV=development
export FTD_ENABLE_OFFLINE_MODELS=true
export FTD_PUBLIC_BASE_URL=$PUBLIC_URL
# The gateway (scripts/gateway.sh) and the UI's proxy find the services here.
export FTD_GATEWAY_PORT=$GATEWAY_PORT FTD_GATEWAY_DIR=$DEV_DIR/gateway
export FTD_JOB_API_ADDR=127.0.0.1:$JOB_API_PORT FTD_DATA_SERVICE_ADDR=127.0.0.1:$DATA_SERVICE_PORT
export FTD_REGISTRY_ADDR=127.0.0.1:$REGISTRY_PORT FTD_UI_ADDR=127.0.0.1:$UI_PORT
export FTD_MODEL_SERVER_ADDR=127.0.0.1:$MODEL_SERVER_PORT FTD_WEBHOOK_ADDR=127.0.0.1:$WEBHOOK_PORT
# Each enrolled worker gets a broker user of its own through RabbitMQ's management API
# (scripts/ensure-services.sh enabled it; guest may use it from this machine).
export FTD_BROKER_MANAGEMENT_URL=${FTD_BROKER_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}
# One database per checkout (the Makefile derives it from the path; this default is the same).
FTD_DATABASE_NAME=${FTD_DATABASE_NAME:-finetune_$(printf '%s' "$PWD" | sha256sum | cut -c1-8)}
export FTD_DATABASE_NAME
export JOB_API_DATABASE_URL=${JOB_API_DATABASE_URL:-postgresql://job_api:job_api_dev@127.0.0.1:5432/$FTD_DATABASE_NAME}
export DATA_SERVICE_DATABASE_URL=${DATA_SERVICE_DATABASE_URL:-postgresql://data_service:data_service_dev@127.0.0.1:5432/$FTD_DATABASE_NAME}
export REGISTRY_SERVICE_DATABASE_URL=${REGISTRY_SERVICE_DATABASE_URL:-postgresql://registry_service:registry_service_dev@127.0.0.1:5432/$FTD_DATABASE_NAME}
export MODEL_SERVER_DATABASE_URL=${MODEL_SERVER_DATABASE_URL:-postgresql://model_server:model_server_dev@127.0.0.1:5432/$FTD_DATABASE_NAME}
export WEBHOOK_SERVICE_DATABASE_URL=${WEBHOOK_SERVICE_DATABASE_URL:-postgresql://webhook_service:webhook_service_dev@127.0.0.1:5432/$FTD_DATABASE_NAME}
export PYTHONUNBUFFERED=1

# Every schema first (each service's own migrations; one after another, they share a database).
for service in job-api data-service registry-service model-server webhook-service; do
  uv run "$service" db-init
done

# Then the services, started together and waited for in turn: each is a few seconds of imports and
# start-up, which one after another would add up.
for port in "$JOB_API_PORT" "$DATA_SERVICE_PORT" "$REGISTRY_PORT" "$MODEL_SERVER_PORT" "$WEBHOOK_PORT"; do
  require_port "$port"
done
start_service job-api uv run job-api serve --host 127.0.0.1 --port "$JOB_API_PORT"
DATA_SERVICE_STORAGE_DIR=${DATA_SERVICE_STORAGE_DIR:-$DEV_DIR/datasets} \
  start_service data-service uv run data-service serve --host 127.0.0.1 --port "$DATA_SERVICE_PORT"
# registry-service (:8003): model versions, deploy, LiteLLM config (docs/registry.md)
start_service registry-service uv run registry-service serve --host 127.0.0.1 --port "$REGISTRY_PORT"
# model-server (:8005): serves deployed models (OpenAI-style /v1/*); loads them from the local
# model store the CPU worker below writes (the inference stack comes with install-training.sh)
FTD_MODEL_STORE_DIR="$DEV_DIR/models" \
  start_service model-server uv run model-server serve --host 127.0.0.1 --port "$MODEL_SERVER_PORT"
# webhook-service (:8006): users' webhooks told of job ends and model deployments, signed and
# retried; in development a webhook may also name this machine over plain http (a local receiver)
WEBHOOK_SERVICE_ALLOW_HTTP_LOOPBACK=${WEBHOOK_SERVICE_ALLOW_HTTP_LOOPBACK:-true} \
  start_service webhook-service uv run webhook-service serve --host 127.0.0.1 --port "$WEBHOOK_PORT"
wait_healthy job-api "http://127.0.0.1:$JOB_API_PORT/healthz"
wait_healthy data-service "http://127.0.0.1:$DATA_SERVICE_PORT/healthz"
wait_healthy registry-service "http://127.0.0.1:$REGISTRY_PORT/healthz"
wait_healthy model-server "http://127.0.0.1:$MODEL_SERVER_PORT/healthz"
wait_healthy webhook-service "http://127.0.0.1:$WEBHOOK_PORT/healthz"
# gateway (:8000): nginx routes /api/* to the services (installed by gateway.sh when missing)
require_port "$GATEWAY_PORT"
start_service gateway bash scripts/gateway.sh
wait_healthy gateway "http://127.0.0.1:$GATEWAY_PORT/healthz"

# CPU worker (provider local): the training stack goes into .venv outside uv.lock (install-training.sh),
# then one worker dials RabbitMQ and trains on this machine; models land in the local model store.
bash scripts/install-training.sh
export FTD_MODEL_STORE_DIR="$DEV_DIR/models"
# Enrolled once into the shared pool (token in .dev/worker-token), restarted if it ever dies.
FTD_API_URL=$PUBLIC_URL FTD_DEV_WORKER_TOKEN_FILE=$DEV_DIR/worker-token \
  start_service worker bash scripts/dev-worker.sh --provider local --no-console \
  --work-dir "$DEV_DIR/worker"

# frontend (UI, :8004): the built single-page app, /api/* proxied to :8000 (the gateway serves it at /).
# --bypass-lock: vite allows one preview per project, and a second `make dev` (FTD_DEV_PORT) has its own.
require_port "$UI_PORT"
make --no-print-directory ui-build
FTD_API_URL=http://127.0.0.1:$GATEWAY_PORT \
  start_service frontend npm --prefix frontend run preview -- --port "$UI_PORT" --strictPort --bypass-lock
wait_healthy frontend "http://127.0.0.1:$UI_PORT/"

TOKEN=$(uv run --quiet job-api token --sub dev-user)

cat <<BANNER

  Finetune Dispatcher is running.

    API          $PUBLIC_URL
    Web UI       $PUBLIC_URL   (sign in with the dev token below)
    API docs     $PUBLIC_URL/docs
    Logs         $LOG_DIR/
    Database     $FTD_DATABASE_NAME (this checkout's own)
    Models       $FTD_MODEL_STORE_DIR   (local model store; set HF_TOKEN to push to the Hub)

    Workers      $PUBLIC_URL/workers   (the CPU worker is enrolled; add your own there)
    Worker key   $FINETUNE_WORKER_KEY   (${SECRET_SOURCE[FINETUNE_WORKER_KEY]}; the brief's shared key, development only)
    JWT secret   $FTD_JWT_SECRET   (${SECRET_SOURCE[FTD_JWT_SECRET]})

    Dev token for user "dev-user" (another: make token SUB=alice):
      export TOKEN=$TOKEN
      curl -H "Authorization: Bearer \$TOKEN" $PUBLIC_URL/api/finetune/jobs

  Ctrl-C stops everything.

BANNER

# Runs until Ctrl-C, or until a service exits by itself (then stops the rest and fails).
while true; do
  exited=
  wait -n -p exited "${PIDS[@]}" || true
  for i in "${!PIDS[@]}"; do
    if [ "${PIDS[$i]}" = "$exited" ]; then
      log "${NAMES[$i]} exited; last log lines:"
      tail -n 40 "$LOG_DIR/${NAMES[$i]}.log" >&2 || true
      exit 1
    fi
  done
done
