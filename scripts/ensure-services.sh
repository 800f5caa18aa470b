#!/usr/bin/env bash
# Make sure PostgreSQL and RabbitMQ answer on localhost, starting whichever is down.
# Idempotent: services that are already up are left alone.
#
#   FTD_EXTERNAL_SERVICES=1   the services run elsewhere (docker compose, CI containers): skip all
#   FTD_SERVICES_TIMEOUT=60   seconds to wait for a started service to come up
#
# Every probe has its own time limit: a broker node that is up but stuck (rabbitmqctl hangs, no
# channel opens) counts as down, is stopped (killed if it will not stop) and started again, instead
# of holding the caller forever.
#
# RabbitMQ's management plugin is enabled too (job-api makes each enrolled worker's broker user
# through its API, on 127.0.0.1:15672).
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
AMQP_HOST=127.0.0.1
AMQP_PORT=5672
TIMEOUT=${FTD_SERVICES_TIMEOUT:-60}

log() { echo "ensure-services: $*" >&2; }
die() { log "$*"; exit 1; }

# Runs "$@" until it succeeds or TIMEOUT seconds have passed.
wait_until() {
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

postgres_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
  else
    (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
  fi
}

PROBE_TIMEOUT=${FTD_SERVICES_PROBE_TIMEOUT:-20}

# The first step of an AMQP 0-9-1 handshake: after the protocol header the broker must send its
# connection.start (a method frame, type 1). A node seen here after hours of test churn accepted TCP
# connections and answered its CLI but sent nothing, so every client hung.
amqp_answers() {
  python3 - "$AMQP_HOST" "$AMQP_PORT" <<'PY'
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    s.sendall(b"AMQP\x00\x00\x09\x01")
    first = s.recv(1)
sys.exit(0 if first == b"\x01" else 1)
PY
}

# A node that answers its CLI and starts AMQP handshakes on 5672.
rabbitmq_up() {
  timeout "$PROBE_TIMEOUT" rabbitmqctl -q --timeout 15 status >/dev/null &&
    amqp_answers
}

# The Erlang VM of this machine's default node (rabbit@host), from the pid file it writes; never
# another node (a test's private broker or cluster node has a name and folder of its own).
default_node_pid() {
  local file pid
  for file in "${RABBITMQ_MNESIA_BASE:-/var/lib/rabbitmq/mnesia}"/rabbit@*.pid; do
    pid=$(cat "$file" 2>/dev/null) || continue
    [[ $pid =~ ^[0-9]+$ ]] && ps -p "$pid" -o comm= 2>/dev/null | grep -q beam && echo "$pid" && return
  done
  return 1
}

# Stops a node that does not answer in time; kills its Erlang VM when a polite stop hangs too.
stop_stuck_rabbitmq() {
  local pid=$1
  log "rabbitmq does not answer in time: stopping it"
  timeout "$PROBE_TIMEOUT" rabbitmqctl -q --timeout 15 stop >/dev/null 2>&1 && return
  log "rabbitmq did not stop: killing its Erlang VM (pid $pid)"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 2
}

# A memory or disk alarm blocks every publisher: tests would hang on their first publish.
check_rabbitmq_alarms() {
  local alarms
  if ! alarms=$(timeout "$PROBE_TIMEOUT" rabbitmq-diagnostics -q --timeout 15 check_local_alarms 2>&1); then
    die "rabbitmq has a resource alarm, which blocks every publisher: $alarms"
  fi
}

ensure_postgres() {
  if postgres_up; then
    log "postgresql is up on $PG_HOST:$PG_PORT"
    return
  fi
  command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] ||
    die "postgresql is not answering on $PG_HOST:$PG_PORT and pg_ctlcluster is not here to start it; start it yourself or set FTD_EXTERNAL_SERVICES=1"
  local version
  # shellcheck disable=SC2012  # cluster directories are plain version numbers (15, 16)
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting postgresql $version ..."
  # A cluster that is half up (e.g. still recovering) makes start fail; the wait below decides.
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_until postgres_up || die "postgresql did not come up within ${TIMEOUT}s"
  log "postgresql is up on $PG_HOST:$PG_PORT"
}

ensure_rabbitmq() {
  command -v rabbitmqctl >/dev/null 2>&1 ||
    die "rabbitmqctl is not installed; install rabbitmq-server or set FTD_EXTERNAL_SERVICES=1"
  if rabbitmq_up >/dev/null 2>&1; then
    log "rabbitmq is up"
    return
  fi
  # A node whose Erlang VM runs but that did not answer is stuck, not down.
  local pid
  if pid=$(default_node_pid); then
    stop_stuck_rabbitmq "$pid"
  fi
  log "starting rabbitmq ..."
  rabbitmq-server -detached || true
  # await_startup needs the Erlang node to exist first, so retry it until the deadline.
  wait_until timeout "$PROBE_TIMEOUT" rabbitmqctl -q --timeout 5 await_startup ||
    die "rabbitmq did not come up within ${TIMEOUT}s"
  wait_until rabbitmq_up || die "rabbitmq started but does not accept connections on 5672"
  log "rabbitmq is up"
}

management_up() { (exec 3<>"/dev/tcp/127.0.0.1/15672") 2>/dev/null; }

ensure_rabbitmq_management() {
  if ! timeout "$PROBE_TIMEOUT" rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
    log "enabling rabbitmq's management plugin ..."
    timeout 120 rabbitmq-plugins -q enable rabbitmq_management >/dev/null ||
      die "could not enable rabbitmq_management (job-api needs its API for worker broker users)"
  fi
  wait_until management_up || die "rabbitmq's management API did not answer on 127.0.0.1:15672"
  log "rabbitmq management API is up on 127.0.0.1:15672"
}

if [ "${FTD_EXTERNAL_SERVICES:-0}" = 1 ]; then
  log "FTD_EXTERNAL_SERVICES=1: not checking local postgresql and rabbitmq"
  exit 0
fi

ensure_postgres
ensure_rabbitmq
check_rabbitmq_alarms
ensure_rabbitmq_management
